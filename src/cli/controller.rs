//! `berth controller`: run the scheduling and status loop until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::common::{connect, serve_metrics, shutdown_token, EtcdArgs, StormGuardArgs};
use berth::api::server::ApiConfig;
use berth::api::tls::TlsFiles;
use berth::controller::{self, ControllerConfig};
use berth::spec;
use berth::store::Reflector;
use berth::web;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    ctl: ControllerSettings,
    /// Where to serve /metrics, /healthz, /readyz and the web view (`/`).
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9420")]
    metrics_addr: SocketAddr,
}

/// The controller's settings, shared with `berth up`.
#[derive(Args, Clone)]
pub struct ControllerSettings {
    /// How long a host may be unregistered before its slots are placed elsewhere.
    #[arg(long, env = "BERTH_HOST_DOWN_GRACE", value_parser = humantime::parse_duration, default_value = "30s")]
    host_down_grace: Duration,
    /// Full recompute at least this often, even without events.
    #[arg(long, env = "BERTH_CONTROLLER_RESYNC", value_parser = humantime::parse_duration, default_value = "30s")]
    controller_resync: Duration,
    #[command(flatten)]
    storm_guard: StormGuardArgs,
    /// This controller's name in the leader election (default: hostname and pid).
    #[arg(long, env = "BERTH_CONTROLLER_ID")]
    controller_id: Option<String>,
    /// Largest stack spec accepted, in bytes; a larger one is Invalid without being parsed.
    #[arg(long, env = "BERTH_MAX_SPEC_BYTES", default_value_t = 1024 * 1024)]
    max_spec_bytes: usize,
    /// Leadership lease TTL: how long a dead leader blocks failover.
    #[arg(long, env = "BERTH_LEADER_TTL", value_parser = humantime::parse_duration, default_value = "10s")]
    leader_ttl: Duration,
    /// Spec revisions kept per stack (`berth history`, `berth rollback`).
    #[arg(long, env = "BERTH_HISTORY_LIMIT", default_value_t = controller::history::DEFAULT_LIMIT)]
    history_limit: usize,
    /// The IP on which the leader serves agentless hosts' logs (`berth logs`), one port
    /// per host, advertised in each host's registration.
    #[arg(long, env = "BERTH_AGENTLESS_API_IP", default_value = "127.0.0.1")]
    agentless_api_ip: std::net::IpAddr,
    /// Certificate of those listeners (PEM); with the key and client CA, mutual TLS.
    #[arg(long, env = "BERTH_AGENTLESS_API_TLS_CERT", requires_all = ["agentless_api_tls_key", "agentless_api_client_ca"])]
    agentless_api_tls_cert: Option<std::path::PathBuf>,
    #[arg(
        long,
        env = "BERTH_AGENTLESS_API_TLS_KEY",
        requires = "agentless_api_tls_cert"
    )]
    agentless_api_tls_key: Option<std::path::PathBuf>,
    #[arg(
        long,
        env = "BERTH_AGENTLESS_API_CLIENT_CA",
        requires = "agentless_api_tls_cert"
    )]
    agentless_api_client_ca: Option<std::path::PathBuf>,
    /// Serve them as plain HTTP on an IP other than loopback.
    #[arg(long, env = "BERTH_AGENTLESS_API_INSECURE")]
    agentless_api_insecure: bool,
}

impl ControllerSettings {
    pub fn config(&self) -> ControllerConfig {
        let id = self.controller_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        ControllerConfig {
            id,
            host_down_grace: self.host_down_grace,
            max_unavailable_fraction: self.storm_guard.max_unavailable_fraction,
            leader_ttl: self.leader_ttl,
            resync_interval: self.controller_resync,
            limits: spec::Limits {
                max_bytes: self.max_spec_bytes,
                ..spec::Limits::default()
            },
            history_limit: self.history_limit,
            agentless_api: Some(self.agentless_api()),
        }
    }

    /// The agentless hosts' log listeners: port 0, so each host gets one of its own.
    fn agentless_api(&self) -> ApiConfig {
        let tls = match (
            &self.agentless_api_tls_cert,
            &self.agentless_api_tls_key,
            &self.agentless_api_client_ca,
        ) {
            (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            }),
            _ => None,
        };
        ApiConfig {
            addr: SocketAddr::new(self.agentless_api_ip, 0),
            tls,
            insecure: self.agentless_api_insecure,
        }
    }

    /// The web view's routes over the controller's cache, served beside /metrics.
    pub fn web(&self, cache: Reflector, cancel: CancellationToken) -> axum::Router {
        web::routes(
            cache,
            web::WebConfig {
                max_unavailable_fraction: self.storm_guard.max_unavailable_fraction,
            },
            cancel,
        )
    }

    /// Why these settings must not start, if they must not.
    pub fn refusal(&self) -> Option<String> {
        self.agentless_api().refusal()
    }
}

pub async fn run(args: ControllerArgs) -> Result<ExitCode> {
    if let Some(why) = args.ctl.refusal() {
        anyhow::bail!(why);
    }
    let store = connect(&args.etcd).await?;
    let cancel = shutdown_token();
    let c = controller::spawn(store, args.ctl.config(), cancel.clone());
    let web = args.ctl.web(c.cache.clone(), cancel.clone());
    let bound = serve_metrics(args.metrics_addr, vec![c.ready], web, cancel.clone()).await?;
    tracing::info!(url = %format!("http://{bound}/"), "serving the web view");
    c.done.await.ok();
    Ok(ExitCode::SUCCESS)
}
