//! What several commands share: etcd connection flags, Docker TLS flags, output flags,
//! the storm-guard threshold, and the plumbing for printing, shutting down and serving
//! metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use berth::controller::DEFAULT_MAX_UNAVAILABLE_FRACTION;
use berth::serve::{self, ReadyCheck};
use berth::store::Store;

#[derive(Args, Clone, Default)]
pub struct EtcdArgs {
    /// etcd endpoints, comma separated.
    #[arg(
        long,
        global = true,
        env = "BERTH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_endpoints: Vec<String>,
    /// Key prefix every Berth key lives under.
    #[arg(long, global = true, env = "BERTH_PREFIX", default_value = "/berth")]
    pub prefix: String,
    #[command(flatten)]
    pub auth: EtcdAuthArgs,
}

/// etcd TLS and user authentication (see SECURITY.md).
#[derive(Args, Clone, Default)]
pub struct EtcdAuthArgs {
    /// CA certificate (PEM) to trust for etcd's TLS; use https:// endpoints.
    #[arg(long, global = true, env = "BERTH_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's TLS client authentication.
    #[arg(long, global = true, env = "BERTH_ETCD_CERT", requires = "etcd_key")]
    etcd_cert: Option<PathBuf>,
    /// Key (PEM) of --etcd-cert.
    #[arg(long, global = true, env = "BERTH_ETCD_KEY", requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// etcd user; the password comes from --etcd-password-file or BERTH_ETCD_PASSWORD,
    /// never from a flag value (which `ps` would show).
    #[arg(long, global = true, env = "BERTH_ETCD_USER")]
    etcd_user: Option<String>,
    /// File holding the etcd user's password.
    #[arg(long, global = true, env = "BERTH_ETCD_PASSWORD_FILE")]
    etcd_password_file: Option<PathBuf>,
}

impl EtcdAuthArgs {
    fn load(&self) -> Result<berth::store::EtcdAuth> {
        let read = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>> {
            p.as_ref()
                .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
                .transpose()
        };
        let user = match &self.etcd_user {
            None => None,
            Some(u) => {
                let password = match (&self.etcd_password_file, std::env::var("BERTH_ETCD_PASSWORD")) {
                    (Some(f), _) => std::fs::read_to_string(f)
                        .with_context(|| format!("reading {}", f.display()))?
                        .trim_end_matches(['\n', '\r'])
                        .to_owned(),
                    (None, Ok(p)) => p,
                    (None, Err(_)) => bail!(
                        "--etcd-user {u} needs a password: --etcd-password-file or BERTH_ETCD_PASSWORD"
                    ),
                };
                Some((u.clone(), password))
            }
        };
        Ok(berth::store::EtcdAuth {
            ca: read(&self.etcd_ca)?,
            cert: read(&self.etcd_cert)?,
            key: read(&self.etcd_key)?,
            user,
        })
    }
}

pub async fn connect(etcd: &EtcdArgs) -> Result<Store> {
    let auth = etcd.auth.load()?;
    Store::connect_with(&etcd.etcd_endpoints, &etcd.prefix, &auth)
        .await
        .with_context(|| format!("connecting to etcd at {}", etcd.etcd_endpoints.join(",")))
}

/// TLS for a `tcp://` Docker engine (see SECURITY.md).
#[derive(Args, Clone, Default)]
pub struct DockerTlsArgs {
    /// CA certificate (PEM) the Docker engine's certificate must chain to.
    #[arg(long = "tls-ca", env = "BERTH_DOCKER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) presented to the Docker engine.
    #[arg(long = "tls-cert", env = "BERTH_DOCKER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Key (PEM) of --tls-cert.
    #[arg(long = "tls-key", env = "BERTH_DOCKER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Accept plain TCP to Docker (anyone on the network could run containers).
    #[arg(long, env = "BERTH_INSECURE_DOCKER")]
    pub insecure_docker: bool,
}

impl DockerTlsArgs {
    pub fn tls(&self) -> berth::agent::runtime::DockerTls {
        berth::agent::runtime::DockerTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            insecure: self.insecure_docker,
        }
    }
}

/// The storm guard's threshold: the controller obeys it, and `apply --dry-run` and
/// `rebalance` assume it, so a preview holds back what the controller would.
#[derive(Args, Clone, Copy)]
pub struct StormGuardArgs {
    /// With more than this fraction of hosts not ready at once, nothing is rescheduled.
    #[arg(long, env = "BERTH_MAX_UNAVAILABLE_FRACTION", default_value_t = DEFAULT_MAX_UNAVAILABLE_FRACTION)]
    pub max_unavailable_fraction: f64,
}

/// `--label key=value` flags as a map; the first `=` splits, so a value may hold more.
pub fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("--label {l:?}: expected key=value"),
        })
        .collect()
}

#[derive(Args, Clone)]
pub struct ViewArgs {
    /// Output format.
    #[arg(short, long, env = "BERTH_OUTPUT", value_enum, default_value = "table")]
    pub output: Output,
    /// Terminal width tables fit into; longer cells end in `…`.
    #[arg(long, env = "COLUMNS", default_value_t = berth::view::DEFAULT_WIDTH)]
    pub width: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Print `text`; `Ok(false)` once the reader went away (`berth status | head`), which
/// ends the output instead of panicking like `print!` does.
pub fn emit(text: &str) -> Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Cancel on Ctrl-C or SIGTERM.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// Serve /metrics, /healthz and /readyz on `addr`, with `routes` beside them.
pub async fn serve_metrics(
    addr: SocketAddr,
    ready: Vec<ReadyCheck>,
    routes: axum::Router,
    cancel: CancellationToken,
) -> Result<SocketAddr> {
    let bound = serve::spawn_with(addr, ready, routes, cancel)
        .await
        .with_context(|| format!("serving metrics on {addr}"))?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
    Ok(bound)
}
