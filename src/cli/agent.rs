//! `berth agent`: register this host and converge its Docker engine until Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::common::{
    connect, parse_labels, serve_metrics, shutdown_token, DockerTlsArgs, EtcdArgs,
};
use berth::agent::{self, AgentConfig};
use berth::api::server::ApiConfig;
use berth::api::tls::TlsFiles;
use berth::registry;

#[derive(Args)]
pub struct AgentArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// This host's id (its key under hosts/).
    #[arg(long, env = "BERTH_HOST_ID")]
    host_id: String,
    /// The IP other hosts use to reach ports published here.
    #[arg(long, env = "BERTH_ADDRESS")]
    address: String,
    /// Docker engine to drive: unix:///path or tcp://host:port.
    #[arg(
        long,
        env = "BERTH_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
    #[arg(long, env = "BERTH_DATACENTER")]
    datacenter: Option<String>,
    /// Host label `key=value`; repeat for more.
    #[arg(long = "label", env = "BERTH_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// Full pass at least this often, even without Docker events.
    #[arg(long, env = "BERTH_RESYNC_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    resync_interval: Duration,
    #[command(flatten)]
    docker_tls: DockerTlsArgs,
    /// Allow bind mounts of host paths under this prefix; repeat for more. None by
    /// default: a spec asking for a bind mount is refused here.
    #[arg(
        long = "allow-bind-prefix",
        env = "BERTH_ALLOW_BIND_PREFIXES",
        value_delimiter = ','
    )]
    allow_bind_prefixes: Vec<String>,
    /// TTL of the host registration's lease.
    #[arg(long, env = "BERTH_LEASE_TTL", value_parser = humantime::parse_duration, default_value = "10s")]
    lease_ttl: Duration,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9421")]
    metrics_addr: SocketAddr,
    /// A Docker config file whose `auths` the agent uses for pulls. Default:
    /// $DOCKER_CONFIG/config.json or ~/.docker/config.json, when present. Logins in etcd
    /// at /berth/registries/ win over it.
    #[arg(long, env = "BERTH_DOCKER_CONFIG")]
    docker_config: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

/// The agent API: this host's container logs, for `berth logs`.
#[derive(Args)]
pub struct ApiArgs {
    /// Where to serve it. Default: `<--address>:9422`.
    #[arg(long, env = "BERTH_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// Certificate of the API listener (PEM); with --api-tls-key and --api-client-ca it
    /// requires mutual TLS.
    #[arg(long, env = "BERTH_API_TLS_CERT", requires_all = ["api_tls_key", "api_client_ca"])]
    api_tls_cert: Option<PathBuf>,
    #[arg(long, env = "BERTH_API_TLS_KEY", requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
    /// The CA a client's certificate (`berth logs --tls-cert`) must be signed by.
    #[arg(long, env = "BERTH_API_CLIENT_CA", requires = "api_tls_cert")]
    api_client_ca: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback: anyone who reaches it can read
    /// every container's logs.
    #[arg(long, env = "BERTH_API_INSECURE")]
    api_insecure: bool,
    /// Serve no agent API (then `berth logs` cannot read this host).
    #[arg(long, env = "BERTH_NO_API", conflicts_with_all = ["api_addr", "api_tls_cert"])]
    no_api: bool,
}

impl ApiArgs {
    /// The listener's configuration; `address` is the host's, the default's IP.
    pub fn config(&self, address: &str) -> Result<Option<ApiConfig>> {
        if self.no_api {
            return Ok(None);
        }
        let addr = match self.api_addr {
            Some(a) => a,
            None => format!("{address}:9422").parse().map_err(|e| {
                anyhow::anyhow!("--address {address:?} is not an IP for the agent API's default address ({e}); give --api-addr")
            })?,
        };
        let tls = match (&self.api_tls_cert, &self.api_tls_key, &self.api_client_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            }),
            _ => None,
        };
        Ok(Some(ApiConfig {
            addr,
            tls,
            insecure: self.api_insecure,
        }))
    }
}

pub async fn run(args: AgentArgs) -> Result<ExitCode> {
    // Before connecting: a bad flag is reported as such, not as an etcd problem.
    let api = args.api.config(&args.address)?;
    if let Some(why) = api.as_ref().and_then(ApiConfig::refusal) {
        anyhow::bail!(why);
    }
    let cfg = AgentConfig {
        labels: parse_labels(&args.labels)?,
        host_id: args.host_id,
        address: args.address,
        docker_host: args.docker_host,
        datacenter: args.datacenter,
        resync_interval: args.resync_interval,
        lease_ttl: args.lease_ttl,
        allow_bind_prefixes: args.allow_bind_prefixes,
        docker_tls: args.docker_tls.tls(),
        vantage: agent::Vantage::Local,
        docker_config: args.docker_config.or_else(registry::default_docker_config),
        secret_source: agent::SecretSource::HostCopies,
        api,
    };
    let store = connect(&args.etcd).await?;
    let cancel = shutdown_token();
    let h = agent::spawn(store, cfg, cancel.clone())?;
    serve_metrics(
        args.metrics_addr,
        vec![h.ready],
        axum::Router::new(),
        cancel.clone(),
    )
    .await?;
    h.done.await.ok();
    Ok(ExitCode::SUCCESS)
}
