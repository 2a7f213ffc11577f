//! `berth host`: cordon, uncordon or drain a host (its `maintenance/<host>` key), and add
//! or remove an agentless host (its `agentless/<host>` key).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::common::{connect, parse_labels, DockerTlsArgs, EtcdArgs};
use berth::controller::world::{AgentlessHost, Maintenance, World};
use berth::spec;
use berth::store::{keys, Expect, Store, Write};
use berth::view;

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
    /// Remove an agentless host: its slots move elsewhere (each replacement started
    /// before the old copy goes), slots pinned to it by targetHost lose their host, the
    /// controller removes Berth's containers there as their slots leave, and then
    /// forgets the host. Waits for that, printing progress.
    Remove(RemoveArgs),
}

#[derive(Args)]
struct RemoveArgs {
    host: String,
    /// How long to wait for the host to be emptied and forgotten; past it the command
    /// exits 2 and the controller carries on. 0 returns at once.
    #[arg(long, env = "BERTH_REMOVE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5m")]
    timeout: Duration,
    /// Forget the host at once, moving nothing first and removing no container: for an
    /// engine that cannot be reached any more. What runs there keeps running, unmanaged.
    #[arg(long)]
    force: bool,
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

/// `remove` exits 1 when there is no such agentless host, 2 when it is still being
/// removed at its `--timeout`.
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
        HostAction::Remove(remove) => return remove_agentless(&store, remove).await,
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
        // Adding it again calls off a removal under way.
        removing: false,
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

/// Mark the host as being removed, then wait for the leading controller to empty and
/// forget it, and tell where its slots went.
async fn remove_agentless(store: &Store, args: RemoveArgs) -> Result<ExitCode> {
    let RemoveArgs {
        host,
        timeout,
        force,
    } = args;
    let key = keys::agentless(&host);
    let Some(kv) = store.get(&key).await? else {
        eprintln!("no agentless host {host}");
        return Ok(ExitCode::from(1));
    };
    let mut spec: AgentlessHost =
        serde_json::from_slice(&kv.value).with_context(|| format!("reading {key}"))?;
    let before = view::held(&host_world(store, &host).await?, &host);
    if force {
        store.delete(&key).await?;
        store.delete(&keys::maintenance(&host)).await?;
        println!(
            "host {host} forgotten at once (--force): the {} Berth container(s) it ran are left there, unmanaged; its {} slot(s) move elsewhere once the controller's --host-down-grace runs out",
            before.containers.len(),
            before.slots.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !spec.removing {
        spec.removing = true;
        let marked = store
            .write(&[Write::Put {
                key: key.clone(),
                value: serde_json::to_vec(&spec)?,
                expect: Expect::Revision(kv.mod_revision),
            }])
            .await?;
        if !marked {
            bail!("{key} changed while it was being read; run the command again");
        }
    }
    println!(
        "removing host {host}: its {} slot(s) move elsewhere, each replacement started before the old copy goes; the leading controller removes Berth's containers there as their slots leave, then forgets the host",
        before.slots.len()
    );
    let deadline = Instant::now() + timeout;
    let mut ran = before.containers.clone();
    let mut shown = None;
    loop {
        let w = host_world(store, &host).await?;
        if !w.agentless.contains_key(&host) {
            let after = read(store, &[keys::STACKS, keys::ASSIGNMENTS, keys::STATUS]).await?;
            let r = view::removal(&before, ran.len(), &after, &host);
            print!("{}", view::render_removal(&host, &r));
            return Ok(ExitCode::SUCCESS);
        }
        let now = view::held(&w, &host);
        ran.extend(now.containers.iter().cloned());
        let left = (now.slots.len(), now.containers.len());
        if shown != Some(left) {
            println!("  {host}: {} slot(s), {} container(s) left", left.0, left.1);
            shown = Some(left);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "host {host} is still being removed after {}: the leading controller carries on (berth hosts shows it Removing). If its engine cannot be reached any more, `berth host remove {host} --force` forgets it, leaving what runs there.",
                humantime::format_duration(timeout)
            );
            return Ok(ExitCode::from(2));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the removal of `host` is watched through: its agentless key, assignments and
/// reports, rather than the whole prefix every half second.
async fn host_world(store: &Store, host: &str) -> Result<World> {
    let agentless = keys::agentless(host);
    let mut w = read(
        store,
        &[
            &agentless,
            &keys::assignments_of(host),
            &keys::reports_of(host),
        ],
    )
    .await?;
    // `agentless/<host>` as a prefix also matches longer host ids.
    w.agentless.retain(|id, _| id == host);
    Ok(w)
}

/// The keys under `prefixes` only: an operator may not read every key (secrets).
async fn read(store: &Store, prefixes: &[&str]) -> Result<World> {
    let mut kvs = Vec::new();
    let mut revision = 0;
    for prefix in prefixes {
        let (mut got, rev) = store.list(prefix).await?;
        kvs.append(&mut got);
        revision = revision.max(rev);
    }
    Ok(view::world_of(kvs, revision))
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
