//! `berth host`: cordon, uncordon or drain a host (its `maintenance/<host>` key), and add
//! or remove an agentless host (its `agentless/<host>` key).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::common::{connect, parse_labels, DockerTlsArgs, EtcdArgs};
use berth::controller::world::{AgentlessHost, Maintenance};
use berth::spec;
use berth::store::{keys, Store};

#[derive(Args)]
pub struct HostArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(subcommand)]
    action: HostAction,
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
    Add(AddArgs),
    /// Stop driving an agentless host (its containers keep running).
    Remove { host: String },
}

#[derive(Args)]
struct AddArgs {
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
}

/// `remove` exits 1 when there is no such agentless host.
pub async fn run(args: HostArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    let (host, state) = match args.action {
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
        HostAction::Add(add) => return add_agentless(&store, add).await,
        HostAction::Remove { host } => {
            if store.delete(&keys::agentless(&host)).await? == 0 {
                eprintln!("no agentless host {host}");
                return Ok(ExitCode::from(1));
            }
            println!("host {host} removed; its containers keep running until their slots move");
            return Ok(ExitCode::SUCCESS);
        }
    };
    match state {
        Some(m) => {
            store
                .put(&keys::maintenance(&host), serde_json::to_vec(&m)?)
                .await?;
            let verb = if m.draining { "draining" } else { "cordoned" };
            println!("host {host} {verb}");
        }
        None => {
            store.delete(&keys::maintenance(&host)).await?;
            println!("host {host} uncordoned");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add_agentless(store: &Store, add: AddArgs) -> Result<ExitCode> {
    let AddArgs {
        host,
        docker_host,
        address,
        datacenter,
        labels,
        allow_bind_prefixes,
        docker_tls,
    } = add;
    if !spec::is_host_id(&host) {
        bail!("host id {host:?} is not valid: use letters, digits, '.', '_' or '-'");
    }
    let spec = AgentlessHost {
        docker_host: docker_host.clone(),
        address,
        datacenter,
        labels: parse_labels(&labels)?,
        allow_bind_prefixes,
        tls_ca: path_string(&docker_tls.tls_ca)?,
        tls_cert: path_string(&docker_tls.tls_cert)?,
        tls_key: path_string(&docker_tls.tls_key)?,
        insecure: docker_tls.insecure_docker,
    };
    if docker_host.starts_with("tcp://") && spec.tls_cert.is_none() && !spec.insecure {
        bail!("{docker_host} is plain TCP: give --tls-ca/--tls-cert/--tls-key, or --insecure-docker to accept that anyone on the network could run containers there");
    }
    store
        .put(&keys::agentless(&host), serde_json::to_vec(&spec)?)
        .await?;
    println!("host {host} added; the leading controller drives {docker_host}");
    Ok(ExitCode::SUCCESS)
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
