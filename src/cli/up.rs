//! `berth up`: everything on one machine — an embedded etcd unless one is given, a
//! controller, and an agent for the local Docker engine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::common::{connect, serve_metrics, shutdown_token, EtcdArgs, EtcdAuthArgs};
use super::controller::ControllerSettings;
use berth::agent::{self, AgentConfig};
use berth::controller;
use berth::embedded::EmbeddedEtcd;
use berth::registry;

#[derive(Args)]
pub struct UpArgs {
    /// Use this etcd instead of starting one.
    #[arg(long, env = "BERTH_ETCD_ENDPOINTS", value_delimiter = ',')]
    etcd_endpoints: Option<Vec<String>>,
    #[arg(long, env = "BERTH_PREFIX", default_value = "/berth")]
    prefix: String,
    #[command(flatten)]
    etcd_auth: EtcdAuthArgs,
    /// Where the embedded etcd keeps its data.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    data_dir: PathBuf,
    /// Client port of the embedded etcd (2379 lets plain `etcdctl` find it).
    #[arg(long, env = "BERTH_ETCD_PORT", default_value_t = 2379)]
    etcd_port: u16,
    #[arg(long, env = "BERTH_HOST_ID", default_value = "local")]
    host_id: String,
    #[arg(long, env = "BERTH_ADDRESS", default_value = "127.0.0.1")]
    address: String,
    #[arg(
        long,
        env = "BERTH_DOCKER_HOST",
        default_value = "unix:///var/run/docker.sock"
    )]
    docker_host: String,
    /// Allow bind mounts of host paths under this prefix; repeat for more (none by
    /// default).
    #[arg(
        long = "allow-bind-prefix",
        env = "BERTH_ALLOW_BIND_PREFIXES",
        value_delimiter = ','
    )]
    allow_bind_prefixes: Vec<String>,
    #[command(flatten)]
    ctl: ControllerSettings,
    /// Where to serve /metrics, /healthz, /readyz and the web view (`/`).
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9420")]
    metrics_addr: SocketAddr,
}

pub async fn run(args: UpArgs) -> Result<ExitCode> {
    let (endpoints, embedded) = match args.etcd_endpoints {
        Some(e) => (e, None),
        None => {
            let etcd = EmbeddedEtcd::start(&args.data_dir, Some(args.etcd_port))
                .await
                .context("starting the embedded etcd")?;
            (vec![etcd.client_url.clone()], Some(etcd))
        }
    };
    let store = connect(&EtcdArgs {
        etcd_endpoints: endpoints.clone(),
        prefix: args.prefix.clone(),
        auth: args.etcd_auth,
    })
    .await?;
    let cancel = shutdown_token();
    if let Some(why) = args.ctl.refusal() {
        anyhow::bail!(why);
    }
    let c = controller::spawn(store.clone(), args.ctl.config(), cancel.clone());
    let a = agent::spawn(
        store,
        AgentConfig {
            host_id: args.host_id.clone(),
            address: args.address,
            docker_host: args.docker_host,
            datacenter: None,
            labels: BTreeMap::new(),
            resync_interval: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(10),
            allow_bind_prefixes: args.allow_bind_prefixes,
            docker_tls: Default::default(),
            vantage: agent::Vantage::Local,
            docker_config: registry::default_docker_config(),
            secret_source: agent::SecretSource::HostCopies,
            // Loopback: `berth logs` on this machine reads it without TLS.
            api: Some(berth::api::server::ApiConfig {
                addr: SocketAddr::from(([127, 0, 0, 1], 9422)),
                tls: None,
                insecure: false,
            }),
        },
        cancel.clone(),
    )?;
    let web = args.ctl.web(c.cache.clone(), cancel.clone());
    let bound = serve_metrics(
        args.metrics_addr,
        vec![c.ready, a.ready],
        web,
        cancel.clone(),
    )
    .await?;
    let ep = endpoints.join(",");
    let p = args.prefix.trim_end_matches('/');
    let host_id = &args.host_id;
    println!("Berth is up: etcd {ep}, host {host_id:?}, metrics http://{bound}/metrics");
    println!("Web view (read-only, live): http://{bound}/");
    println!("Try:");
    println!("  export ETCDCTL_API=3 ETCDCTL_ENDPOINTS={ep}");
    println!("  etcdctl put {p}/stacks/hello \"$(cat examples/hello.json)\"");
    println!("  etcdctl get {p}/status/stacks/hello");
    println!("  etcdctl watch --prefix {p}/status/");
    println!("Ctrl-C stops Berth; containers keep running.");
    c.done.await.ok();
    a.done.await.ok();
    if let Some(e) = embedded {
        e.stop().await;
    }
    Ok(ExitCode::SUCCESS)
}
