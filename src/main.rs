//! The `berth` binary: command-line parsing and wiring only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use berth::agent::{self, AgentConfig};
use berth::controller::{self, ControllerConfig};
use berth::embedded::EmbeddedEtcd;
use berth::serve::{self, ReadyCheck};
use berth::spec;
use berth::store::{keys, Store};
use berth::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Keeps container stacks running across many Docker hosts, with etcd as the source of truth"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct EtcdArgs {
    /// etcd endpoints, comma separated.
    #[arg(
        long,
        env = "BERTH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_endpoints: Vec<String>,
    /// Key prefix every Berth key lives under.
    #[arg(long, env = "BERTH_PREFIX", default_value = "/berth")]
    prefix: String,
}

#[derive(Args, Clone)]
struct ControllerArgs {
    /// How long a host may be unregistered before its slots are placed elsewhere.
    #[arg(long, env = "BERTH_HOST_DOWN_GRACE", value_parser = humantime::parse_duration, default_value = "30s")]
    host_down_grace: Duration,
    /// Full recompute at least this often, even without events.
    #[arg(long, env = "BERTH_CONTROLLER_RESYNC", value_parser = humantime::parse_duration, default_value = "30s")]
    controller_resync: Duration,
}

#[derive(Args, Clone)]
struct AgentArgs {
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
    /// TTL of the host registration's lease.
    #[arg(long, env = "BERTH_LEASE_TTL", value_parser = humantime::parse_duration, default_value = "10s")]
    lease_ttl: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: schedule stacks and write their status.
    Controller {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[command(flatten)]
        ctl: ControllerArgs,
        /// Where to serve /metrics, /healthz and /readyz.
        #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9420")]
        metrics_addr: SocketAddr,
    },
    /// Run a host's agent: register the host and converge its Docker engine.
    Agent {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[command(flatten)]
        agent: AgentArgs,
        /// Where to serve /metrics, /healthz and /readyz.
        #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9421")]
        metrics_addr: SocketAddr,
    },
    /// Everything on one machine: etcd (unless given), a controller and an agent for the
    /// local Docker engine. Ctrl-C stops Berth and leaves the containers running.
    Up {
        /// Use this etcd instead of starting one.
        #[arg(long, env = "BERTH_ETCD_ENDPOINTS", value_delimiter = ',')]
        etcd_endpoints: Option<Vec<String>>,
        #[arg(long, env = "BERTH_PREFIX", default_value = "/berth")]
        prefix: String,
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
        #[command(flatten)]
        ctl: ControllerArgs,
        #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9420")]
        metrics_addr: SocketAddr,
    },
    /// Check stack files; prints every problem. Exit 0 valid, 1 invalid, 2 unreadable.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate a stack file and write it to stacks/<id> (id defaults to the file name).
    Apply {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[arg(short = 'f', long)]
        file: PathBuf,
        #[arg(long)]
        id: Option<String>,
    },
    /// Delete stacks/<id>; its containers are removed everywhere.
    Delete {
        #[command(flatten)]
        etcd: EtcdArgs,
        id: String,
    },
    /// Print stack status JSON (all stacks, or one).
    Status {
        #[command(flatten)]
        etcd: EtcdArgs,
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    berth::metrics::init();
    if let Command::Validate { files } = &cli.command {
        return validate(files);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut worst = 0u8;
    for f in files {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", f.display());
                worst = 2;
                continue;
            }
        };
        match spec::parse_stack(&bytes) {
            Ok(s) => println!(
                "{}: valid ({} service(s))",
                f.display(),
                s.item_list_element.len()
            ),
            Err(problems) => {
                for p in &problems {
                    println!("{}: {p}", f.display());
                }
                worst = worst.max(1);
            }
        }
    }
    ExitCode::from(worst)
}

async fn connect(etcd: &EtcdArgs) -> Result<Store> {
    Store::connect(&etcd.etcd_endpoints, &etcd.prefix)
        .await
        .with_context(|| format!("connecting to etcd at {}", etcd.etcd_endpoints.join(",")))
}

fn agent_config(a: &AgentArgs) -> Result<AgentConfig> {
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?}: expected key=value");
        };
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(AgentConfig {
        host_id: a.host_id.clone(),
        address: a.address.clone(),
        docker_host: a.docker_host.clone(),
        datacenter: a.datacenter.clone(),
        labels,
        resync_interval: a.resync_interval,
        lease_ttl: a.lease_ttl,
    })
}

fn controller_config(c: &ControllerArgs) -> ControllerConfig {
    ControllerConfig {
        host_down_grace: c.host_down_grace,
        resync_interval: c.controller_resync,
    }
}

/// Cancel on Ctrl-C or SIGTERM.
fn shutdown_token() -> CancellationToken {
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

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Validate { .. } => unreachable!("handled before the runtime starts"),
        Command::Controller {
            etcd,
            ctl,
            metrics_addr,
        } => {
            let store = connect(&etcd).await?;
            let cancel = shutdown_token();
            let c = controller::spawn(store, controller_config(&ctl), cancel.clone());
            serve_metrics(metrics_addr, vec![c.ready], cancel.clone()).await?;
            c.done.await.ok();
        }
        Command::Agent {
            etcd,
            agent: a,
            metrics_addr,
        } => {
            let cfg = agent_config(&a)?;
            let store = connect(&etcd).await?;
            let cancel = shutdown_token();
            let h = agent::spawn(store, cfg, cancel.clone())?;
            serve_metrics(metrics_addr, vec![h.ready], cancel.clone()).await?;
            h.done.await.ok();
        }
        Command::Up {
            etcd_endpoints,
            prefix,
            data_dir,
            etcd_port,
            host_id,
            address,
            docker_host,
            ctl,
            metrics_addr,
        } => {
            let (endpoints, embedded) = match etcd_endpoints {
                Some(e) => (e, None),
                None => {
                    let etcd = EmbeddedEtcd::start(&data_dir, Some(etcd_port))
                        .await
                        .context("starting the embedded etcd")?;
                    (vec![etcd.client_url.clone()], Some(etcd))
                }
            };
            let store = connect(&EtcdArgs {
                etcd_endpoints: endpoints.clone(),
                prefix: prefix.clone(),
            })
            .await?;
            let cancel = shutdown_token();
            let c = controller::spawn(store.clone(), controller_config(&ctl), cancel.clone());
            let a = agent::spawn(
                store,
                AgentConfig {
                    host_id: host_id.clone(),
                    address,
                    docker_host,
                    datacenter: None,
                    labels: BTreeMap::new(),
                    resync_interval: Duration::from_secs(30),
                    lease_ttl: Duration::from_secs(10),
                },
                cancel.clone(),
            )?;
            let bound = serve_metrics(metrics_addr, vec![c.ready, a.ready], cancel.clone()).await?;
            let ep = endpoints.join(",");
            let p = prefix.trim_end_matches('/');
            println!("Berth is up: etcd {ep}, host {host_id:?}, metrics http://{bound}/metrics");
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
        }
        Command::Apply { etcd, file, id } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            if let Err(problems) = spec::parse_stack(&bytes) {
                for p in &problems {
                    eprintln!("{}: {p}", file.display());
                }
                return Ok(ExitCode::from(1));
            }
            let id = match id {
                Some(i) => i,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned(),
            };
            if !spec::is_dns_label(&id) {
                bail!("stack id {id:?} is not a DNS label; pass --id");
            }
            let store = connect(&etcd).await?;
            let rev = store.put(&keys::stack(&id), bytes).await?;
            println!("stack {id} applied at revision {rev}");
        }
        Command::Delete { etcd, id } => {
            let store = connect(&etcd).await?;
            if store.delete(&keys::stack(&id)).await? == 0 {
                eprintln!("no stack {id}");
                return Ok(ExitCode::from(1));
            }
            println!("stack {id} deleted; its containers are being removed");
        }
        Command::Status { etcd, id } => {
            let store = connect(&etcd).await?;
            let prefix = match &id {
                Some(i) => keys::status(i),
                None => keys::STATUS.to_owned(),
            };
            let (kvs, _) = store.list(&prefix).await?;
            let kvs: Vec<_> = kvs
                .into_iter()
                .filter(|kv| id.as_ref().is_none_or(|i| kv.key == keys::status(i)))
                .collect();
            if kvs.is_empty() {
                eprintln!("no status yet");
                return Ok(ExitCode::from(1));
            }
            for kv in kvs {
                let v: serde_json::Value = serde_json::from_slice(&kv.value)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve_metrics(
    addr: SocketAddr,
    ready: Vec<ReadyCheck>,
    cancel: CancellationToken,
) -> Result<SocketAddr> {
    let bound = serve::spawn(addr, ready, cancel)
        .await
        .with_context(|| format!("serving metrics on {addr}"))?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
    Ok(bound)
}
