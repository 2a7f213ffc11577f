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
use berth::controller::decide::preview_rebalance;
use berth::controller::world::{AgentlessHost, Maintenance, World};
use berth::controller::{self, ControllerConfig};
use berth::embedded::EmbeddedEtcd;
use berth::serve::{self, ReadyCheck};
use berth::spec;
use berth::store::{keys, Cache, Reflector, Store};
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

#[derive(Args, Clone, Default)]
struct EtcdArgs {
    /// etcd endpoints, comma separated.
    #[arg(
        long,
        global = true,
        env = "BERTH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    etcd_endpoints: Vec<String>,
    /// Key prefix every Berth key lives under.
    #[arg(long, global = true, env = "BERTH_PREFIX", default_value = "/berth")]
    prefix: String,
    #[command(flatten)]
    auth: EtcdAuthArgs,
}

/// TLS for a `tcp://` Docker engine (see SECURITY.md).
#[derive(Args, Clone, Default)]
struct DockerTlsArgs {
    /// CA certificate (PEM) the Docker engine's certificate must chain to.
    #[arg(long = "tls-ca", env = "BERTH_DOCKER_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) presented to the Docker engine.
    #[arg(long = "tls-cert", env = "BERTH_DOCKER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Key (PEM) of --tls-cert.
    #[arg(long = "tls-key", env = "BERTH_DOCKER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Accept plain TCP to Docker (anyone on the network could run containers).
    #[arg(long, env = "BERTH_INSECURE_DOCKER")]
    insecure_docker: bool,
}

impl DockerTlsArgs {
    fn tls(&self) -> berth::agent::runtime::DockerTls {
        berth::agent::runtime::DockerTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            insecure: self.insecure_docker,
        }
    }
}

/// etcd TLS and user authentication (see SECURITY.md).
#[derive(Args, Clone, Default)]
struct EtcdAuthArgs {
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

#[derive(Args, Clone)]
struct ControllerArgs {
    /// How long a host may be unregistered before its slots are placed elsewhere.
    #[arg(long, env = "BERTH_HOST_DOWN_GRACE", value_parser = humantime::parse_duration, default_value = "30s")]
    host_down_grace: Duration,
    /// Full recompute at least this often, even without events.
    #[arg(long, env = "BERTH_CONTROLLER_RESYNC", value_parser = humantime::parse_duration, default_value = "30s")]
    controller_resync: Duration,
    /// With more than this fraction of hosts not ready at once, nothing is rescheduled.
    #[arg(long, env = "BERTH_MAX_UNAVAILABLE_FRACTION", default_value_t = 0.5)]
    max_unavailable_fraction: f64,
    /// This controller's name in the leader election (default: hostname and pid).
    #[arg(long, env = "BERTH_CONTROLLER_ID")]
    controller_id: Option<String>,
    /// Largest stack spec accepted, in bytes; a larger one is Invalid without being parsed.
    #[arg(long, env = "BERTH_MAX_SPEC_BYTES", default_value_t = 1024 * 1024)]
    max_spec_bytes: usize,
    /// Leadership lease TTL: how long a dead leader blocks failover.
    #[arg(long, env = "BERTH_LEADER_TTL", value_parser = humantime::parse_duration, default_value = "10s")]
    leader_ttl: Duration,
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
}

#[derive(Subcommand)]
enum RbacAction {
    /// Create roles and users (controller, operator, one agent per host), write each new
    /// user's random password to OUT/<user>.password (mode 600), and enable etcd auth.
    Setup {
        /// Host ids to create agent users for, comma separated.
        #[arg(long, env = "BERTH_RBAC_HOSTS", value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// Directory for the password files.
        #[arg(long, env = "BERTH_RBAC_OUT")]
        out: PathBuf,
        /// File holding the password to give etcd's `root` user.
        #[arg(long, env = "BERTH_RBAC_ROOT_PASSWORD_FILE")]
        root_password_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum HostAction {
    /// No new slots go to HOST; what runs there stays.
    Cordon { host: String },
    /// Undo cordon and drain.
    Uncordon { host: String },
    /// Cordon HOST and move its slots elsewhere, each replacement started before the old
    /// copy is removed. Slots pinned by targetHost stay.
    Drain { host: String },
    /// Register a Docker host that runs no agent: the leading controller drives it over
    /// the remote Docker API with the same reconciler an agent runs.
    Add {
        host: String,
        /// tcp://IP:2376 (or unix:///path).
        #[arg(long, env = "BERTH_DOCKER_HOST")]
        docker_host: String,
        /// The IP other hosts use to reach ports published there.
        #[arg(long, env = "BERTH_ADDRESS")]
        address: String,
        #[arg(long, env = "BERTH_DATACENTER")]
        datacenter: Option<String>,
        /// Host label `key=value`; repeat for more.
        #[arg(long = "label", env = "BERTH_LABELS", value_delimiter = ',')]
        labels: Vec<String>,
        /// Allow bind mounts of host paths under this prefix there; repeat for more.
        #[arg(
            long = "allow-bind-prefix",
            env = "BERTH_ALLOW_BIND_PREFIXES",
            value_delimiter = ','
        )]
        allow_bind_prefixes: Vec<String>,
        #[command(flatten)]
        docker_tls: DockerTlsArgs,
    },
    /// Stop driving an agentless host (its containers keep running).
    Remove { host: String },
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
        ctl: ControllerArgs,
        #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "127.0.0.1:9420")]
        metrics_addr: SocketAddr,
    },
    /// Check stack files; prints every problem. Exit 0 valid, 1 invalid, 2 unreadable.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write schemas generated from Berth's types.
    Schema {
        #[command(subcommand)]
        what: SchemaCommand,
    },
    /// Validate a stack file and write it to stacks/<id> (id defaults to the file name).
    Apply {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[arg(short = 'f', long, env = "BERTH_APPLY_FILE")]
        file: PathBuf,
        #[arg(long, env = "BERTH_STACK_ID")]
        id: Option<String>,
        /// Show where the scheduler would place each slot (the same planner), and write
        /// nothing.
        #[arg(long, env = "BERTH_DRY_RUN")]
        dry_run: bool,
    },
    /// Delete stacks/<id>; its containers are removed everywhere.
    Delete {
        #[command(flatten)]
        etcd: EtcdArgs,
        id: String,
    },
    /// Cordon, uncordon or drain a host (kept in etcd at maintenance/<host>); add or remove
    /// an agentless host.
    Host {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[command(subcommand)]
        action: HostAction,
    },
    /// etcd roles and users for least privilege (see SECURITY.md).
    EtcdRbac {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[command(subcommand)]
        action: RbacAction,
    },
    /// Show how a stack would be placed afresh (dry run); `--apply` asks the controller
    /// to do it. Nothing moves otherwise: placement is sticky.
    Rebalance {
        #[command(flatten)]
        etcd: EtcdArgs,
        stack: String,
        #[arg(long, env = "BERTH_REBALANCE_APPLY")]
        apply: bool,
    },
    /// The deployment map: each stack's phase and progress, then per host its services
    /// with state, health, restarts, ports and what each connects to. `-o json` prints the
    /// status objects. Exit 0 shown, 1 no such stack (or, with `-o json`, no status yet),
    /// 2 error.
    Status {
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Only this stack.
        id: Option<String>,
        #[command(flatten)]
        view: ViewArgs,
        /// Redraw on every change until Ctrl-C (JSON: one line per change).
        #[arg(short, long, env = "BERTH_WATCH")]
        watch: bool,
    },
    /// Hosts: readiness, address, datacenter, slots, reserved/total capacity, labels.
    /// Exit 0 shown, 2 error.
    Hosts {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Recent events (placed, started, restarted, unhealthy, rescheduled, orphan removed,
    /// ...), oldest first: at most 100 per stack are kept. Exit 0 shown, 2 error.
    Events {
        #[command(flatten)]
        etcd: EtcdArgs,
        #[command(flatten)]
        view: ViewArgs,
        /// Only this stack's events.
        id: Option<String>,
    },
}

#[derive(Args, Clone)]
struct ViewArgs {
    /// Output format.
    #[arg(short, long, env = "BERTH_OUTPUT", value_enum, default_value = "table")]
    output: Output,
    /// Terminal width tables fit into; longer cells end in `…`.
    #[arg(long, env = "COLUMNS", default_value_t = berth::view::DEFAULT_WIDTH)]
    width: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// CustomResourceDefinitions and JSON Schemas for stacks, hosts and stack statuses.
    Crds {
        /// Directory to write the files into; created if missing.
        #[arg(long, env = "BERTH_SCHEMA_OUT", default_value = "crds")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    berth::metrics::init();
    if let Command::Validate { files } = &cli.command {
        return validate(files);
    }
    if let Command::Schema {
        what: SchemaCommand::Crds { out },
    } = &cli.command
    {
        return match write_crds(out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
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

fn write_crds(out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for file in berth::schema::files().context("rendering the CRDs as YAML")? {
        let path = out.join(&file.name);
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
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

/// 24 random bytes from the kernel, hex encoded.
fn random_password() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write a file only its owner can read.
fn write_secret_file(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

/// An absolute path as text (the controllers read it, perhaps from another directory).
fn path_string(p: &Option<PathBuf>) -> Result<Option<String>> {
    p.as_ref()
        .map(|p| {
            let abs =
                std::fs::canonicalize(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(abs.display().to_string())
        })
        .transpose()
}

async fn connect(etcd: &EtcdArgs) -> Result<Store> {
    let auth = etcd.auth.load()?;
    Store::connect_with(&etcd.etcd_endpoints, &etcd.prefix, &auth)
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
        allow_bind_prefixes: a.allow_bind_prefixes.clone(),
        docker_tls: a.docker_tls.tls(),
    })
}

fn controller_config(c: &ControllerArgs) -> ControllerConfig {
    let id = c.controller_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    ControllerConfig {
        id,
        host_down_grace: c.host_down_grace,
        max_unavailable_fraction: c.max_unavailable_fraction,
        leader_ttl: c.leader_ttl,
        resync_interval: c.controller_resync,
        limits: spec::Limits {
            max_bytes: c.max_spec_bytes,
            ..spec::Limits::default()
        },
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
        Command::Validate { .. } | Command::Schema { .. } => {
            unreachable!("handled before the runtime starts")
        }
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
            etcd_auth,
            data_dir,
            etcd_port,
            host_id,
            address,
            docker_host,
            allow_bind_prefixes,
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
                auth: etcd_auth,
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
                    allow_bind_prefixes: allow_bind_prefixes.clone(),
                    docker_tls: Default::default(),
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
        Command::Apply {
            etcd,
            file,
            id,
            dry_run,
        } => {
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
            if dry_run {
                let (kvs, revision) = store.list("").await?;
                let mut world = berth::view::world_of(kvs, revision);
                let p = berth::controller::decide::preview_apply(&mut world, &id, bytes, 0.5);
                let mut t = berth::view::Table::new(&["SERVICE", "REPLICA", "HOST", "NOTE"]);
                for (sid, host) in &p.hosts {
                    let note = p
                        .moves
                        .iter()
                        .find(|m| &m.slot == sid)
                        .map(|m| format!("moves from {} ({})", m.from, m.reason.as_str()))
                        .unwrap_or_default();
                    t.row(vec![
                        sid.service.clone(),
                        sid.replica.to_string(),
                        host.clone(),
                        note,
                    ]);
                }
                for ((_, svc), why) in &p.unschedulable {
                    t.row(vec![svc.clone(), "-".into(), "(none)".into(), why.clone()]);
                }
                emit(&t.render(berth::view::DEFAULT_WIDTH))?;
                println!("(dry run: nothing written)");
                return Ok(ExitCode::SUCCESS);
            }
            let rev = store.put(&keys::stack(&id), bytes).await?;
            println!("stack {id} applied at revision {rev}");
        }
        Command::Host { etcd, action } => {
            let store = connect(&etcd).await?;
            let (host, state) = match &action {
                HostAction::Cordon { host } => (
                    host,
                    Some(Maintenance {
                        cordoned: true,
                        draining: false,
                    }),
                ),
                HostAction::Drain { host } => (
                    host,
                    Some(Maintenance {
                        cordoned: true,
                        draining: true,
                    }),
                ),
                HostAction::Uncordon { host } => (host, None),
                HostAction::Add {
                    host,
                    docker_host,
                    address,
                    datacenter,
                    labels,
                    allow_bind_prefixes,
                    docker_tls,
                } => {
                    if !spec::is_host_id(host) {
                        bail!(
                            "host id {host:?} is not valid: use letters, digits, '.', '_' or '-'"
                        );
                    }
                    let mut l = BTreeMap::new();
                    for kv in labels {
                        let Some((k, v)) = kv.split_once('=') else {
                            bail!("--label {kv:?}: expected key=value");
                        };
                        l.insert(k.to_owned(), v.to_owned());
                    }
                    let spec = AgentlessHost {
                        docker_host: docker_host.clone(),
                        address: address.clone(),
                        datacenter: datacenter.clone(),
                        labels: l,
                        allow_bind_prefixes: allow_bind_prefixes.clone(),
                        tls_ca: path_string(&docker_tls.tls_ca)?,
                        tls_cert: path_string(&docker_tls.tls_cert)?,
                        tls_key: path_string(&docker_tls.tls_key)?,
                        insecure: docker_tls.insecure_docker,
                    };
                    if docker_host.starts_with("tcp://")
                        && spec.tls_cert.is_none()
                        && !spec.insecure
                    {
                        bail!("{docker_host} is plain TCP: give --tls-ca/--tls-cert/--tls-key, or --insecure-docker to accept that anyone on the network could run containers there");
                    }
                    store
                        .put(&keys::agentless(host), serde_json::to_vec(&spec)?)
                        .await?;
                    println!("host {host} added; the leading controller drives {docker_host}");
                    return Ok(ExitCode::SUCCESS);
                }
                HostAction::Remove { host } => {
                    if store.delete(&keys::agentless(host)).await? == 0 {
                        eprintln!("no agentless host {host}");
                        return Ok(ExitCode::from(1));
                    }
                    println!(
                        "host {host} removed; its containers keep running until their slots move"
                    );
                    return Ok(ExitCode::SUCCESS);
                }
            };
            match state {
                Some(m) => {
                    store
                        .put(&keys::maintenance(host), serde_json::to_vec(&m)?)
                        .await?;
                    let verb = if m.draining { "draining" } else { "cordoned" };
                    println!("host {host} {verb}");
                }
                None => {
                    store.delete(&keys::maintenance(host)).await?;
                    println!("host {host} uncordoned");
                }
            }
        }
        Command::EtcdRbac {
            etcd,
            action:
                RbacAction::Setup {
                    hosts,
                    out,
                    root_password_file,
                },
        } => {
            for h in &hosts {
                if !spec::is_host_id(h) {
                    bail!("host id {h:?} is not valid");
                }
            }
            let root = std::fs::read_to_string(&root_password_file)
                .with_context(|| format!("reading {}", root_password_file.display()))?;
            let store = connect(&etcd).await?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let roles = berth::store::rbac::plan(&hosts);
            let mut users = Vec::new();
            for r in &roles {
                let file = out.join(format!("{}.password", r.name));
                let password = random_password()?;
                write_secret_file(&file, &password)?;
                users.push((r.name.clone(), password, r.name.clone()));
            }
            berth::store::rbac::apply(&store, &roles, &users, root.trim_end()).await?;
            for (user, _, _) in &users {
                println!(
                    "user {user}: password in {}",
                    out.join(format!("{user}.password")).display()
                );
            }
            println!("etcd authentication enabled");
        }
        Command::Rebalance { etcd, stack, apply } => {
            let store = connect(&etcd).await?;
            let (kvs, revision) = store.list("").await?;
            let cache = Cache {
                entries: kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
                revision,
            };
            let world = World::decode(&cache);
            if !world.stacks.contains_key(&stack) {
                eprintln!("no stack {stack}");
                return Ok(ExitCode::from(1));
            }
            let preview = preview_rebalance(&world, &stack, 0.5);
            if preview.moves.is_empty() {
                println!(
                    "stack {stack} is already placed as it would be afresh; nothing would move"
                );
            }
            for m in &preview.moves {
                println!(
                    "{}.{}: {} -> {}",
                    m.slot.service, m.slot.replica, m.from, m.to
                );
            }
            for ((_, svc), why) in preview
                .unschedulable
                .iter()
                .filter(|((s, _), _)| *s == stack)
            {
                println!("{svc}: unschedulable: {why}");
            }
            if apply && !preview.moves.is_empty() {
                store.put(&keys::rebalance(&stack), b"{}".to_vec()).await?;
                println!("rebalance of {stack} requested; each replacement starts before its old copy is removed");
            } else if !apply {
                println!("(dry run: add --apply to move)");
            }
        }
        Command::Delete { etcd, id } => {
            let store = connect(&etcd).await?;
            if store.delete(&keys::stack(&id)).await? == 0 {
                eprintln!("no stack {id}");
                return Ok(ExitCode::from(1));
            }
            println!("stack {id} deleted; its containers are being removed");
        }
        Command::Status {
            etcd,
            id,
            view,
            watch,
        } => {
            let store = connect(&etcd).await?;
            return if watch {
                watch_status(store, id, view).await
            } else {
                status(store, id, view).await
            };
        }
        Command::Events { etcd, view, id } => {
            let store = connect(&etcd).await?;
            let events = berth::events::list(&store, id.as_deref()).await?;
            emit(&match view.output {
                Output::Table => berth::view::render_events(&events, view.width),
                Output::Json => serde_json::to_string_pretty(&events)? + "\n",
            })?;
        }
        Command::Hosts { etcd, view } => {
            let store = connect(&etcd).await?;
            let (kvs, revision) = store.list("").await?;
            let hosts = berth::view::hosts(&berth::view::world_of(kvs, revision));
            emit(&match view.output {
                Output::Table => berth::view::render_hosts(&hosts, view.width),
                Output::Json => serde_json::to_string_pretty(&hosts)? + "\n",
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth status` once: the map, or the status objects as JSON.
async fn status(store: Store, id: Option<String>, view: ViewArgs) -> Result<ExitCode> {
    let (kvs, revision) = store.list("").await?;
    let world = berth::view::world_of(kvs, revision);
    if let Some(i) = &id {
        if !berth::view::has_stack(&world, i) {
            eprintln!("no stack {i}");
            return Ok(ExitCode::from(1));
        }
    }
    match status_text(&world, id.as_deref(), &view, true)? {
        Some(text) => {
            emit(&text)?;
        }
        None => {
            eprintln!("stack {} has no status yet", id.unwrap_or_default());
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth status --watch`: list-then-watch every key and redraw whenever what would be
/// printed changes (most report writes change nothing visible).
async fn watch_status(store: Store, id: Option<String>, view: ViewArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let cancel = CancellationToken::new();
    // Dropped on return, so the watch stops with the command.
    let _stop = cancel.clone().drop_guard();
    let reflector = Reflector::spawn(store, String::new(), cancel.clone());
    let mut changes = reflector.subscribe();
    let redraw = view.output == Output::Table && std::io::stdout().is_terminal();
    let mut last = None;
    // One listener for the whole watch, so a Ctrl-C while drawing is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
        let Some((world, revision)) = reflector.read(|c| (World::decode(c), c.revision)).await
        else {
            continue;
        };
        // A stack that does not exist yet may be created while we watch: show `null`.
        let text = status_text(&world, id.as_deref(), &view, false)?
            .unwrap_or_else(|| "null\n".to_owned());
        if last.as_ref() == Some(&text) {
            continue;
        }
        let frame = if redraw {
            // Clear the screen and home the cursor, like watch(1).
            format!(
                "\x1b[H\x1b[2Jrevision {revision}; redraws on every change; Ctrl-C stops\n\n{text}"
            )
        } else if last.is_some() && view.output == Output::Table {
            format!("\n{text}")
        } else {
            text.clone()
        };
        if !emit(&frame)? {
            break;
        }
        last = Some(text);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print `text`; `Ok(false)` once the reader went away (`berth status | head`), which
/// ends the output instead of panicking like `print!` does.
fn emit(text: &str) -> Result<bool> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What `berth status` prints for `world`; `None` when JSON for stack `id` is asked
/// and it has no status. `pretty` JSON for one-shot output, one line per change otherwise.
fn status_text(
    world: &World,
    id: Option<&str>,
    view: &ViewArgs,
    pretty: bool,
) -> Result<Option<String>> {
    fn json<T: serde::Serialize>(v: &T, pretty: bool) -> Result<String> {
        let text = if pretty {
            serde_json::to_string_pretty(v)?
        } else {
            serde_json::to_string(v)?
        };
        Ok(text + "\n")
    }
    Ok(match (view.output, id) {
        (Output::Table, _) => Some(berth::view::render_deployment(
            &berth::view::deployment_map(world, id),
            view.width,
        )),
        (Output::Json, Some(i)) => match world.statuses.get(i) {
            Some((Some(st), _)) => Some(json(st, pretty)?),
            _ => None,
        },
        (Output::Json, None) => {
            let all: Vec<_> = world
                .statuses
                .values()
                .filter_map(|(st, _)| st.as_ref())
                .collect();
            Some(json(&all, pretty)?)
        }
    })
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

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
