//! `cargo bench --bench converge` (part of `make bench`): how fast Berth converges one
//! host, side by side with the same containers created directly through bollard at the
//! concurrency Berth uses, and with `docker-compose up -d`; how that scales; how fast it
//! reacts to a killed container and to a spec change; what an idle agent and controller
//! cost; and how much etcd traffic each converged container makes.
//!
//! Berth runs as it does in production: a private etcd, and `berth controller` and
//! `berth agent` as child processes with their default intervals, so their CPU time and
//! peak memory come from /proc. Times come from Docker's event stream (Docker's own
//! clock) or from the status the controller writes, never from polling. The three
//! systems take turns within each round, in a rotating order, and every round prints
//! its own ratios: the machine may be busy with other work, and a ratio inside one
//! round is what stays trustworthy.
//!
//! Knobs (environment): `BERTH_BENCH_SIZES=10:3,30:5,100:2` (services:rounds),
//! `BERTH_BENCH_REPEATS=6` (reaction repeats), `BERTH_BENCH_IDLE_SECS=120`,
//! `BERTH_BENCH_ONLY=converge,react,idle` (sections to run; `concurrency` adds a sweep of
//! raw Docker at several concurrency limits), `BERTH_BENCH_KEEP_LOGS=1` (keep the Berth
//! processes' logs; with `RUST_LOG=berth=debug` they time every step of a pass).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::future::join_all;
use futures::StreamExt;

use support::{
    docker, docker_cli, err, nanos, stats, sweep, Cluster, DockerEvent, Events, Metrics, Res,
    Writes, IMAGE, SERVE,
};

/// Host ports: Berth, raw Docker and compose each get their own range, so a slow
/// teardown of one can never collide with the next system's start.
const PORTS_BERTH: u16 = 20000;
const PORTS_RAW: u16 = 20200;
const PORTS_COMPOSE: u16 = 20400;
const PORTS_REACT: u16 = 20600;
const PORT_REACT_RAW: u16 = 20700;
/// Stop grace Berth gives a container (agent::execute::STOP_GRACE); the raw baseline
/// uses the same.
const STOP_GRACE_SECS: i32 = 10;

const TARGET_CONVERGE: f64 = 1.15;
const TARGET_COMPOSE: f64 = 1.5;
const TARGET_TEARDOWN: f64 = 1.0;
const TARGET_REACTION: f64 = 0.5;
const TARGET_IDLE_CPU: f64 = 1.0;
const TARGET_IDLE_RSS_MB: f64 = 30.0;

struct Config {
    sizes: Vec<(usize, usize)>,
    repeats: usize,
    idle_secs: u64,
    only: Option<Vec<String>>,
}

impl Config {
    fn from_env() -> Config {
        let sizes = std::env::var("BERTH_BENCH_SIZES")
            .ok()
            .map(|s| {
                s.split(',')
                    .filter_map(|p| {
                        let (n, r) = p.split_once(':')?;
                        Some((n.trim().parse().ok()?, r.trim().parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![(10, 3), (30, 5), (100, 2)]);
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        Config {
            sizes,
            repeats: num("BERTH_BENCH_REPEATS", 6) as usize,
            idle_secs: num("BERTH_BENCH_IDLE_SECS", 120),
            only: std::env::var("BERTH_BENCH_ONLY")
                .ok()
                .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect()),
        }
    }

    /// The concurrency sweep only runs when asked for: it shows something about the
    /// engine, not about Berth, and costs a minute and a half.
    fn runs(&self, section: &str) -> bool {
        match &self.only {
            Some(o) => o.iter().any(|s| s == section),
            None => section != "concurrency",
        }
    }
}

/// Names of this run's stacks and networks end in it: Docker on this machine sometimes
/// keeps a network it cannot remove (a phantom endpoint), and a later run must not reuse it.
fn run_id() -> u32 {
    std::process::id() % 100_000
}

/// The convergence round under way: names of what a round creates end in it too, so a
/// network Docker refused to remove in one round is never met again in the next.
static ROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn round_id() -> String {
    format!(
        "{}r{}",
        run_id(),
        ROUND.load(std::sync::atomic::Ordering::Relaxed)
    )
}

fn svc(i: usize) -> String {
    format!("s{i:03}")
}

/// `n` web services, each publishing `ports + i` when given; `env` sets `BENCH_REV` on
/// some services (a spec change).
fn stack_json(n: usize, ports: Option<u16>, env: &BTreeMap<usize, u32>) -> String {
    let items: Vec<serde_json::Value> = (1..=n)
        .map(|i| {
            let mut s = serde_json::json!({
                "@type": "SoftwareApplication",
                "position": i,
                "name": svc(i),
                "image": IMAGE,
                "command": ["sh", "-c", SERVE],
            });
            if let Some(p) = ports {
                s["ports"] = serde_json::json!([{"containerPort": 8080, "hostPort": p + i as u16, "protocol": "tcp"}]);
            }
            if let Some(rev) = env.get(&i) {
                s["environment"] = serde_json::json!({"BENCH_REV": rev.to_string()});
            }
            s
        })
        .collect();
    serde_json::json!({
        "@context": "https://schema.org",
        "@type": "ItemList",
        "name": "bench",
        "itemListElement": items,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------
// Berth

/// Distinct containers of `stack` that did `action`, and when the last one did.
fn count(events: &[DockerEvent], stack: &str, action: &str) -> (usize, i64) {
    let prefix = format!("{stack}.");
    let mut names = std::collections::BTreeSet::new();
    let mut last = 0;
    for e in events {
        if e.typ == "container" && e.action == action && e.name.starts_with(&prefix) {
            names.insert(e.name.clone());
            last = last.max(e.nanos);
        }
    }
    (names.len(), last)
}

/// When Docker first did anything for `stack` (its network or one of its containers).
fn first_event(events: &[DockerEvent], stack: &str) -> i64 {
    let prefix = format!("{stack}.");
    let net = format!("berth-{stack}");
    events
        .iter()
        .filter(|e| e.name == net || (e.typ == "container" && e.name.starts_with(&prefix)))
        .map(|e| e.nanos)
        .min()
        .unwrap_or(0)
}

fn network_event(events: &[DockerEvent], name: &str, action: &str) -> Option<i64> {
    events
        .iter()
        .find(|e| e.typ == "network" && e.action == action && e.name == name)
        .map(|e| e.nanos)
}

/// What one Berth convergence (or teardown) cost, beyond its time.
#[derive(Default, Clone)]
struct Load {
    writes: Writes,
    agent_etcd: f64,
    controller_etcd: f64,
    docker_calls: BTreeMap<String, f64>,
    /// etcd requests of the agent and of the controller, by op (reads too).
    agent_ops: BTreeMap<String, f64>,
    controller_ops: BTreeMap<String, f64>,
    /// Docker call latency seen by the agent: (seconds, calls) by op.
    docker_latency: BTreeMap<String, (f64, f64)>,
    /// Reconcile passes of the agent and of the controller's scheduler.
    agent_passes: f64,
    controller_passes: f64,
    /// CPU seconds the agent and the controller used.
    agent_cpu: f64,
    controller_cpu: f64,
}

/// The processes' counters when a phase starts.
struct Before {
    agent: Metrics,
    controller: Metrics,
    agent_cpu: f64,
    controller_cpu: f64,
}

async fn before(c: &Cluster) -> Before {
    Before {
        agent: c.agent.scrape().await,
        controller: c.controller.scrape().await,
        agent_cpu: c.agent.usage().cpu_secs,
        controller_cpu: c.controller.usage().cpu_secs,
    }
}

fn passes(m: &Metrics, component: &str) -> f64 {
    m.sum("berth_reconcile_total", |l| {
        l.get("component").map(String::as_str) == Some(component)
    })
}

/// `after - before`, by key, dropping what did not grow.
fn delta(after: BTreeMap<String, f64>, before: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out = after;
    for (k, n) in before {
        *out.entry(k).or_default() -= n;
    }
    out.retain(|_, n| *n > 0.0);
    out
}

async fn load_between(c: &Cluster, before: &Before, after_rev: i64, upto: i64) -> Res<Load> {
    let agent = c.agent.scrape().await;
    let ctl = c.controller.scrape().await;
    let etcd_ops = "berth_etcd_requests_total";
    let latency = "berth_docker_request_duration_seconds";
    let mut docker_latency = agent.histogram(latency, "op");
    for (op, (s, n)) in before.agent.histogram(latency, "op") {
        let e = docker_latency.entry(op).or_default();
        e.0 -= s;
        e.1 -= n;
    }
    docker_latency.retain(|_, (_, n)| *n > 0.0);
    Ok(Load {
        writes: c.etcd.replay(after_rev, upto).await?,
        agent_etcd: agent.etcd_writes() - before.agent.etcd_writes(),
        controller_etcd: ctl.etcd_writes() - before.controller.etcd_writes(),
        docker_calls: delta(
            agent.by("berth_docker_requests_total", "op"),
            before.agent.by("berth_docker_requests_total", "op"),
        ),
        agent_ops: delta(agent.by(etcd_ops, "op"), before.agent.by(etcd_ops, "op")),
        controller_ops: delta(ctl.by(etcd_ops, "op"), before.controller.by(etcd_ops, "op")),
        docker_latency,
        agent_passes: passes(&agent, "agent") - passes(&before.agent, "agent"),
        controller_passes: passes(&ctl, "scheduler") - passes(&before.controller, "scheduler"),
        agent_cpu: c.agent.usage().cpu_secs - before.agent_cpu,
        controller_cpu: c.controller.usage().cpu_secs - before.controller_cpu,
    })
}

struct BerthUp {
    /// put -> status Running at that revision.
    status: f64,
    /// put -> the controller's assignment for the host arrives on a watch.
    assigned: f64,
    /// put -> Docker's last `start` event.
    docker: f64,
    /// put -> Docker's first event for the stack (the network, or a container).
    first: f64,
    load: Load,
}

async fn berth_up(c: &Cluster, d: &Docker, id: &str, n: usize) -> Res<BerthUp> {
    let json = stack_json(n, Some(PORTS_BERTH), &BTreeMap::new());
    let before = before(c).await;
    let assignment = c.etcd.first_change("assignments/").await?;
    let wall = SystemTime::now();
    let mut events = Events::since(d, wall);
    let t0 = Instant::now();
    let rev = c.etcd.put(&format!("stacks/{id}"), json).await?;
    let running = c
        .etcd
        .wait_running(id, rev, Duration::from_secs(300))
        .await?;
    events
        .until(Duration::from_secs(60), "every container started", |s| {
            count(s, id, "start").0 >= n
        })
        .await?;
    let docker = (count(&events.seen, id, "start").1 - nanos(wall)) as f64 / 1e9;
    let first = (first_event(&events.seen, id) - nanos(wall)) as f64 / 1e9;
    // Let the last reports and events land before counting the writes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upto = c.etcd.revision().await?;
    let assigned = assignment
        .await
        .ok()
        .flatten()
        .map_or(f64::NAN, |t| (t - t0).as_secs_f64());
    Ok(BerthUp {
        status: (running - t0).as_secs_f64(),
        assigned,
        docker,
        first,
        load: load_between(c, &before, rev, upto).await?,
    })
}

struct BerthDown {
    /// delete -> Docker's last `destroy` (containers and the stack network).
    docker: f64,
    /// The stack network was still there 20s after the last container went: what
    /// `docker network rm` said when the bench removed it.
    network_left: Option<String>,
    /// delete -> the controller's deletion of the assignment arrives on a watch.
    assigned: f64,
    /// delete -> Docker's first event for the stack (a container killed).
    first: f64,
    /// delete -> the status key removed (everything reported gone).
    status: f64,
    load: Load,
}

async fn berth_down(c: &Cluster, d: &Docker, id: &str, n: usize) -> Res<BerthDown> {
    let before = before(c).await;
    let net = format!("berth-{id}");
    let assignment = c.etcd.first_change("assignments/").await?;
    let wall = SystemTime::now();
    let mut events = Events::since(d, wall);
    let t0 = Instant::now();
    let rev = c.etcd.delete(&format!("stacks/{id}")).await?;
    events
        .until(Duration::from_secs(120), "every container removed", |s| {
            count(s, id, "destroy").0 >= n
        })
        .await?;
    // The network goes after the last container; Berth does not always manage it (see
    // docs/benchmarks.md), so its absence is recorded instead of failing the run.
    let network_left = match events
        .until(Duration::from_secs(20), "the stack network removed", |s| {
            network_event(s, &net, "destroy").is_some()
        })
        .await
    {
        Ok(()) => None,
        Err(_) => {
            let why = std::process::Command::new("docker")
                .args(["network", "rm", &net])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
                .unwrap_or_default();
            eprintln!("  Berth left network {net} behind; `docker network rm` then said: {why:?}");
            Some(why)
        }
    };
    let last = count(&events.seen, id, "destroy")
        .1
        .max(network_event(&events.seen, &net, "destroy").unwrap_or(0));
    let gone = c.etcd.wait_gone(id, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upto = c.etcd.revision().await?;
    let assigned = assignment
        .await
        .ok()
        .flatten()
        .map_or(f64::NAN, |t| (t - t0).as_secs_f64());
    Ok(BerthDown {
        docker: (last - nanos(wall)) as f64 / 1e9,
        network_left,
        assigned,
        first: (first_event(&events.seen, id) - nanos(wall)) as f64 / 1e9,
        status: (gone - t0).as_secs_f64(),
        load: load_between(c, &before, rev, upto).await?,
    })
}

// ---------------------------------------------------------------------------------------
// Raw Docker, through bollard, at Berth's concurrency: every container of a wave at once.

fn raw_body(network: &str, service: &str, port: Option<u16>) -> ContainerCreateBody {
    let bindings = port.map(|p| {
        HashMap::from([(
            "8080/tcp".to_owned(),
            Some(vec![PortBinding {
                host_ip: None,
                host_port: Some(p.to_string()),
            }]),
        )])
    });
    ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["sh".into(), "-c".into(), SERVE.into()]),
        env: Some(Vec::new()),
        labels: Some(HashMap::from([(
            "berth-bench".to_owned(),
            "raw".to_owned(),
        )])),
        exposed_ports: Some(vec!["8080/tcp".to_owned()]),
        host_config: Some(HostConfig {
            port_bindings: bindings,
            network_mode: Some(network.to_owned()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![service.to_owned()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

async fn raw_network(d: &Docker, name: &str) -> Res<()> {
    d.create_network(NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(HashMap::from([(
            "berth-bench".to_owned(),
            "raw".to_owned(),
        )])),
        ..Default::default()
    })
    .await
    .map_err(err)?;
    Ok(())
}

async fn raw_create_start(
    d: &Docker,
    network: &str,
    name: &str,
    service: &str,
    port: Option<u16>,
) -> Res<()> {
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    let id = d
        .create_container(Some(opts), raw_body(network, service, port))
        .await
        .map_err(err)?
        .id;
    d.start_container(&id, None).await.map_err(err)
}

async fn raw_stop_remove(d: &Docker, name: &str) -> Res<()> {
    let stop = StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_SECS)
        .build();
    d.stop_container(name, Some(stop)).await.map_err(err)?;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    d.remove_container(name, Some(rm)).await.map_err(err)
}

/// Create and start `n` containers, at most `limit` at a time (`n`: all at once, as
/// Berth does within one start-order level).
async fn raw_up(d: &Docker, n: usize, limit: usize) -> Res<f64> {
    let net = format!("bench-raw-n{n}-{}", round_id());
    let t0 = Instant::now();
    raw_network(d, &net).await?;
    let results: Vec<Res<()>> = futures::stream::iter(1..=n)
        .map(|i| {
            let net = net.clone();
            async move {
                let name = format!("{net}.{}", svc(i));
                raw_create_start(d, &net, &name, &svc(i), Some(PORTS_RAW + i as u16)).await
            }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Res<Vec<()>>>()?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Stop and remove the `n` containers of `raw_up`, all at once, then their network; the
/// seconds it took, and from its first call to Docker's first event (a `kill`), which is
/// Docker's own share of Berth's "delete to first event".
async fn raw_down(d: &Docker, n: usize) -> Res<(f64, f64)> {
    let net = format!("bench-raw-n{n}-{}", round_id());
    let wall = SystemTime::now();
    let mut events = Events::since(d, wall);
    let t0 = Instant::now();
    let results = join_all((1..=n).map(|i| {
        let name = format!("{net}.{}", svc(i));
        async move { raw_stop_remove(d, &name).await }
    }))
    .await;
    results.into_iter().collect::<Res<Vec<()>>>()?;
    if let Err(e) = d.remove_network(&net).await {
        // Docker on this machine sometimes keeps a phantom endpoint (docs/benchmarks.md).
        eprintln!("  raw Docker could not remove network {net}: {e}");
    }
    let total = t0.elapsed().as_secs_f64();
    events
        .until(
            Duration::from_secs(10),
            "raw Docker's destroy events",
            |s| count(s, &net, "destroy").0 >= n,
        )
        .await?;
    let first = (first_event(&events.seen, &net) - nanos(wall)) as f64 / 1e9;
    Ok((total, first))
}

// ---------------------------------------------------------------------------------------
// docker-compose

fn compose_available() -> bool {
    std::process::Command::new("docker-compose")
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn compose_version() -> String {
    std::process::Command::new("docker-compose")
        .args(["version", "--short"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The same services as [`stack_json`], as a compose file (JSON is YAML).
fn write_compose(dir: &Path, n: usize) -> Res<std::path::PathBuf> {
    let services: serde_json::Map<String, serde_json::Value> = (1..=n)
        .map(|i| {
            (
                svc(i),
                serde_json::json!({
                    "image": IMAGE,
                    "command": ["sh", "-c", SERVE],
                    "ports": [format!("{}:8080", PORTS_COMPOSE + i as u16)],
                }),
            )
        })
        .collect();
    let path = dir.join(format!("compose-{n}.yml"));
    let doc = serde_json::json!({"version": "2.4", "services": services});
    std::fs::write(&path, doc.to_string()).map_err(err)?;
    Ok(path)
}

/// How long docker-compose may go without Docker doing anything for its project before
/// it counts as hung: docker-compose 1.29 sometimes deadlocks while creating many services
/// at once (see docs/benchmarks.md).
const COMPOSE_STALL: Duration = Duration::from_secs(20);

/// The compose project of `n` services in this round. Unique per round: a compose killed
/// mid-create, or Docker's stale-endpoint refusal, can leave a network Docker refuses to
/// remove until the engine restarts, and the next round must not trip over it.
fn compose_project(n: usize) -> String {
    format!("berthbench{n}x{}", round_id())
}

/// What a killed docker-compose may leave behind: containers it was still creating when
/// `down` listed the project, and so the network.
fn compose_cleanup(n: usize) {
    let label = format!("label=com.docker.compose.project={}", compose_project(n));
    for id in docker_cli(&["ps", "-aq", "--filter", &label]).lines() {
        docker_cli(&["rm", "-f", id]);
    }
    docker_cli(&["network", "rm", &format!("{}_default", compose_project(n))]);
}

/// Run `docker-compose <args>` for the `n`-service project; its time, or `None` when it
/// hung (it is then killed).
async fn compose(d: &Docker, file: &Path, n: usize, args: &[&str]) -> Res<Option<f64>> {
    let project = compose_project(n);
    let log = file.with_extension(format!("{}.log", args[0]));
    let mut events = Events::since(d, SystemTime::now());
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new("docker-compose")
        .arg("-p")
        .arg(&project)
        .arg("-f")
        .arg(file)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(err)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(err)?;
    let mut progress = (0, Instant::now());
    loop {
        tokio::select! {
            status = child.wait() => {
                let took = t0.elapsed().as_secs_f64();
                if !status.map_err(err)?.success() {
                    let out = std::fs::read_to_string(&log).unwrap_or_default();
                    let label = format!("label=com.docker.compose.project={project}");
                    // Docker's stale-endpoint refusal (docs/benchmarks.md) hits compose's
                    // network too: every container is gone, so the teardown is timed
                    // and the network left (the next round's project has another name).
                    if args[0] == "down"
                        && out.contains("has active endpoints")
                        && docker_cli(&["ps", "-aq", "--filter", &label]).is_empty()
                    {
                        eprintln!("  docker-compose down of {n} services: Docker refused to remove the project network (stale endpoint); containers all removed, time kept");
                        return Ok(Some(took));
                    }
                    return Err(format!("docker-compose {args:?} failed: {out}"));
                }
                return Ok(Some(took));
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                events.drain();
                let ours = events.seen.iter().filter(|e| e.name.starts_with(&project)).count();
                if ours > progress.0 {
                    progress = (ours, Instant::now());
                }
                if progress.1.elapsed() > COMPOSE_STALL {
                    let _ = child.kill().await;
                    eprintln!(
                        "  docker-compose {args:?} of {n} services hung: no Docker event for {}s after {ours} events; killed",
                        COMPOSE_STALL.as_secs()
                    );
                    return Ok(None);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Section 1, 2, 6: convergence and teardown at several sizes

#[derive(Default)]
struct Round {
    berth_up: f64,
    berth_up_docker: f64,
    berth_up_first: f64,
    berth_up_assigned: f64,
    berth_down_assigned: f64,
    berth_down: f64,
    berth_down_first: f64,
    berth_down_status: f64,
    raw_up: f64,
    raw_down: f64,
    raw_down_first: f64,
    compose_up: Option<f64>,
    compose_down: Option<f64>,
    compose_hung: bool,
    berth_network_left: Option<String>,
}

struct SizeResult {
    n: usize,
    rounds: Vec<Round>,
    up_load: Load,
    down_load: Load,
}

async fn converge_size(
    c: &Cluster,
    d: &Docker,
    n: usize,
    rounds: usize,
    compose_file: Option<&Path>,
) -> Res<SizeResult> {
    let mut out = SizeResult {
        n,
        rounds: Vec::new(),
        up_load: Load::default(),
        down_load: Load::default(),
    };
    for r in 0..rounds {
        ROUND.store(r, std::sync::atomic::Ordering::Relaxed);
        let id = format!("bench-n{n}-{}", round_id());
        let mut round = Round::default();
        // Rotate who goes first: the engine warms up and the machine's load drifts.
        for k in 0..3 {
            match (r + k) % 3 {
                0 => {
                    let up = berth_up(c, d, &id, n).await?;
                    let down = berth_down(c, d, &id, n).await?;
                    round.berth_up = up.status;
                    round.berth_up_docker = up.docker;
                    round.berth_up_first = up.first;
                    round.berth_network_left = down.network_left.clone();
                    round.berth_up_assigned = up.assigned;
                    round.berth_down_assigned = down.assigned;
                    round.berth_down_first = down.first;
                    round.berth_down = down.docker;
                    round.berth_down_status = down.status;
                    add_load(&mut out.up_load, &up.load);
                    add_load(&mut out.down_load, &down.load);
                }
                1 => {
                    round.raw_up = raw_up(d, n, n).await?;
                    settle().await;
                    (round.raw_down, round.raw_down_first) = raw_down(d, n).await?;
                }
                _ => {
                    if let Some(f) = compose_file {
                        round.compose_up = compose(d, f, n, &["up", "-d"]).await?;
                        round.compose_hung = round.compose_up.is_none();
                        settle().await;
                        if round.compose_hung {
                            // Taking down half a project is no comparison; just clean up,
                            // once the creates it had in flight are done.
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            let _ = compose(d, f, n, &["down"]).await;
                            compose_cleanup(n);
                        } else {
                            round.compose_down = compose(d, f, n, &["down"]).await?;
                        }
                    }
                }
            }
            settle().await;
        }
        eprintln!(
            "  n={n} round {}: berth {:.2}s/{:.2}s raw {:.2}s/{:.2}s compose {}",
            r + 1,
            round.berth_up,
            round.berth_down,
            round.raw_up,
            round.raw_down,
            if round.compose_hung {
                "hung".to_owned()
            } else {
                round
                    .compose_up
                    .zip(round.compose_down)
                    .map_or("-".to_owned(), |(u, d)| format!("{u:.2}s/{d:.2}s"))
            }
        );
        out.rounds.push(round);
    }
    Ok(out)
}

fn add_load(into: &mut Load, l: &Load) {
    into.writes.add(&l.writes);
    into.agent_etcd += l.agent_etcd;
    into.controller_etcd += l.controller_etcd;
    into.agent_passes += l.agent_passes;
    into.controller_passes += l.controller_passes;
    into.agent_cpu += l.agent_cpu;
    into.controller_cpu += l.controller_cpu;
    for (from, to) in [
        (&l.docker_calls, &mut into.docker_calls),
        (&l.agent_ops, &mut into.agent_ops),
        (&l.controller_ops, &mut into.controller_ops),
    ] {
        for (op, n) in from {
            *to.entry(op.clone()).or_default() += n;
        }
    }
    for (op, (s, n)) in &l.docker_latency {
        let e = into.docker_latency.entry(op.clone()).or_default();
        e.0 += s;
        e.1 += n;
    }
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Raw Docker at several concurrency limits, rounds interleaved: does the engine on this
/// machine create containers faster when fewer calls run at once?
async fn concurrency_sweep(
    d: &Docker,
    n: usize,
    limits: &[usize],
    rounds: usize,
) -> Res<BTreeMap<usize, Vec<f64>>> {
    let mut out: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for r in 0..rounds {
        for k in 0..limits.len() {
            let limit = limits[(r + k) % limits.len()];
            let t = raw_up(d, n, limit).await?;
            settle().await;
            raw_down(d, n).await?;
            settle().await;
            eprintln!("  concurrency {limit}: {t:.2}s");
            out.entry(limit).or_default().push(t);
        }
    }
    Ok(out)
}

fn report_sweep(n: usize, sweep: &BTreeMap<usize, Vec<f64>>) {
    println!("\n### Raw Docker: create+start of {n} containers at several concurrency limits (seconds)\n");
    println!("| at most at once | median | min | max | vs all at once |");
    println!("|---|---|---|---|---|");
    let all = sweep.get(&n).map(|v| stats(v).0).unwrap_or(f64::NAN);
    for (limit, v) in sweep {
        let (m, lo, hi) = stats(v);
        println!("| {limit} | {m:.2} | {lo:.2} | {hi:.2} | {:.2}x |", m / all);
    }
}

// ---------------------------------------------------------------------------------------
// Section 3: reaction

struct Reaction {
    kill_berth: Vec<f64>,
    kill_docker: Vec<f64>,
    change_berth_docker: Vec<f64>,
    change_berth_status: Vec<f64>,
    change_docker: Vec<f64>,
}

async fn reaction(c: &Cluster, d: &Docker, n: usize, repeats: usize) -> Res<Reaction> {
    let id = &format!("bench-react-{}", run_id());
    let mut env: BTreeMap<usize, u32> = BTreeMap::new();
    let rev = c
        .etcd
        .put(
            &format!("stacks/{id}"),
            stack_json(n, Some(PORTS_REACT), &env),
        )
        .await?;
    c.etcd
        .wait_running(id, rev, Duration::from_secs(300))
        .await?;
    // Docker's own times, on a twin container outside Berth, in the same run.
    let raw_net = &format!("bench-raw-react-{}", run_id());
    let raw = &format!("{raw_net}.s001");
    raw_network(d, raw_net).await?;
    raw_create_start(d, raw_net, raw, "s001", Some(PORT_REACT_RAW)).await?;
    let mut out = Reaction {
        kill_berth: Vec::new(),
        kill_docker: Vec::new(),
        change_berth_docker: Vec::new(),
        change_berth_status: Vec::new(),
        change_docker: Vec::new(),
    };
    let kill = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..repeats.min(n / 2) {
        // A different service each time: the first restart of a slot is immediate,
        // later ones back off on purpose.
        let name = format!("{id}.{}.1", svc(i + 1));
        let mut events = Events::since(d, SystemTime::now());
        d.kill_container(&name, Some(kill.clone()))
            .await
            .map_err(err)?;
        events
            .until(Duration::from_secs(30), "killed container started", |s| {
                let died = s.iter().position(|e| e.name == name && e.action == "die");
                died.is_some_and(|p| s[p..].iter().any(|e| e.name == name && e.action == "start"))
            })
            .await?;
        let died = events
            .seen
            .iter()
            .find(|e| e.name == name && e.action == "die")
            .map(|e| e.nanos)
            .unwrap_or(0);
        let started = events
            .seen
            .iter()
            .rev()
            .find(|e| e.name == name && e.action == "start")
            .map(|e| e.nanos)
            .unwrap_or(0);
        out.kill_berth.push((started - died) as f64 / 1e9);

        d.kill_container(raw, Some(kill.clone()))
            .await
            .map_err(err)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while docker_cli(&["inspect", "-f", "{{.State.Running}}", raw]) != "false" {
            if Instant::now() > deadline {
                return Err("raw container did not die".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        d.start_container(raw, None).await.map_err(err)?;
        out.kill_docker.push(t.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for i in 0..repeats.min(n / 2) {
        let k = n - i;
        let name = format!("{id}.{}.1", svc(k));
        let old = docker_cli(&["inspect", "-f", "{{.Id}}", &name]);
        env.insert(k, i as u32 + 1);
        let json = stack_json(n, Some(PORTS_REACT), &env);
        let wall = SystemTime::now();
        let mut events = Events::since(d, wall);
        let t0 = Instant::now();
        let rev = c.etcd.put(&format!("stacks/{id}"), json).await?;
        let prefix = format!("{name}.");
        let fresh = |e: &DockerEvent| {
            e.action == "start" && e.id != old && (e.name == name || e.name.starts_with(&prefix))
        };
        events
            .until(Duration::from_secs(60), "replacement started", |s| {
                s.iter().any(fresh)
            })
            .await?;
        let started = events
            .seen
            .iter()
            .find(|e| fresh(e))
            .map(|e| e.nanos)
            .unwrap_or(0);
        out.change_berth_docker
            .push((started - nanos(wall)) as f64 / 1e9);
        let running = c
            .etcd
            .wait_running(id, rev, Duration::from_secs(60))
            .await?;
        out.change_berth_status.push((running - t0).as_secs_f64());

        // Docker's own replace of a container that shares its host port: stop first.
        let t = Instant::now();
        raw_stop_remove(d, raw).await?;
        raw_create_start(d, raw_net, raw, "s001", Some(PORT_REACT_RAW)).await?;
        out.change_docker.push(t.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    raw_stop_remove(d, raw).await?;
    if let Err(e) = d.remove_network(raw_net).await {
        eprintln!("  raw Docker could not remove network {raw_net}: {e}");
    }
    c.etcd.delete(&format!("stacks/{id}")).await?;
    c.etcd.wait_gone(id, Duration::from_secs(120)).await?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Section 5: idle cost

struct Side {
    cpu_secs: f64,
    hwm_mb: f64,
    rss_mb: f64,
    etcd_writes: f64,
    docker_calls: BTreeMap<String, f64>,
}

struct Idle {
    containers: usize,
    converge_secs: f64,
    teardown_secs: f64,
    adopted_without_actions: bool,
    secs: f64,
    agent: Side,
    controller: Side,
    etcd_revisions: i64,
    writes: Writes,
    /// Mean seconds of the agent's passes in the idle window, and how many there were.
    agent_pass: (f64, f64),
    listing: Listing,
}

/// What it costs to look at the managed containers the way the agent did before it
/// remembered its inspects (one list, then an inspect of each, 8 at a time) against the
/// list alone (an idle pass now).
struct Listing {
    containers: usize,
    list_and_inspect: f64,
    list_only: f64,
}

async fn listing_cost(d: &Docker) -> Res<Listing> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let filters: HashMap<String, Vec<String>> = HashMap::from([(
        "label".to_owned(),
        vec![format!("berth.host={}", support::HOST_ID)],
    )]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let (mut both, mut only, mut containers) = (Vec::new(), Vec::new(), 0);
    for _ in 0..5 {
        let t = Instant::now();
        let list = d.list_containers(Some(opts.clone())).await.map_err(err)?;
        only.push(t.elapsed().as_secs_f64());
        containers = list.len();
        let t = Instant::now();
        let list = d.list_containers(Some(opts.clone())).await.map_err(err)?;
        let inspected: Vec<_> = futures::stream::iter(list.into_iter().filter_map(|c| c.id))
            .map(|id| async move { d.inspect_container(&id, None).await })
            .buffer_unordered(8)
            .collect()
            .await;
        both.push(t.elapsed().as_secs_f64());
        inspected
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
    }
    Ok(Listing {
        containers,
        list_and_inspect: stats(&both).0,
        list_only: stats(&only).0,
    })
}

fn side(u0: support::Usage, u1: support::Usage, m0: &Metrics, m1: &Metrics) -> Side {
    let mut calls = m1.by("berth_docker_requests_total", "op");
    for (op, n) in m0.by("berth_docker_requests_total", "op") {
        *calls.entry(op).or_default() -= n;
    }
    calls.retain(|_, n| *n > 0.0);
    Side {
        cpu_secs: u1.cpu_secs - u0.cpu_secs,
        hwm_mb: u1.hwm_kb as f64 / 1024.0,
        rss_mb: u1.rss_kb as f64 / 1024.0,
        etcd_writes: m1.etcd_writes() - m0.etcd_writes(),
        docker_calls: calls,
    }
}

async fn idle(
    c: &mut Cluster,
    d: &Docker,
    stacks: usize,
    per_stack: usize,
    secs: u64,
) -> Res<Idle> {
    let ids: Vec<String> = (1..=stacks)
        .map(|s| format!("bench-idle-{s}-{}", run_id()))
        .collect();
    let t0 = Instant::now();
    let mut revs = Vec::new();
    for id in &ids {
        let json = stack_json(per_stack, None, &BTreeMap::new());
        revs.push(c.etcd.put(&format!("stacks/{id}"), json).await?);
    }
    for (id, rev) in ids.iter().zip(&revs) {
        c.etcd
            .wait_running(id, *rev, Duration::from_secs(600))
            .await?;
    }
    let converge_secs = t0.elapsed().as_secs_f64();

    // Fresh processes: their peak memory is that of adopting and watching these
    // containers, not of the convergence runs before.
    c.restart(1).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = c.agent.scrape().await;
        let passes = m.sum("berth_reconcile_total", |l| {
            l.get("component").map(String::as_str) == Some("agent")
        });
        if passes >= 1.0
            && ids
                .iter()
                .all(|id| c.etcd.status(id).is_some_and(|s| s.1 == "Running"))
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the restarted agent did not settle".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let acted = c
        .agent
        .scrape()
        .await
        .sum("berth_container_actions_total", |l| {
            l.get("action").map(String::as_str) != Some("adopt")
        });

    let (a0, c0) = (c.agent.usage(), c.controller.usage());
    let (am0, cm0) = (c.agent.scrape().await, c.controller.scrape().await);
    let rev0 = c.etcd.revision().await?;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let measured = t.elapsed().as_secs_f64();
    let (a1, c1) = (c.agent.usage(), c.controller.usage());
    let (am1, cm1) = (c.agent.scrape().await, c.controller.scrape().await);
    let rev1 = c.etcd.revision().await?;
    let writes = c.etcd.replay(rev0, rev1).await?;
    let passes = |m: &Metrics| {
        m.histogram("berth_reconcile_duration_seconds", "component")
            .remove("agent")
            .unwrap_or_default()
    };
    let (p0, p1) = (passes(&am0), passes(&am1));
    let listing = listing_cost(d).await?;

    let t0 = Instant::now();
    for id in &ids {
        c.etcd.delete(&format!("stacks/{id}")).await?;
    }
    for id in &ids {
        c.etcd.wait_gone(id, Duration::from_secs(600)).await?;
    }
    Ok(Idle {
        containers: stacks * per_stack,
        converge_secs,
        teardown_secs: t0.elapsed().as_secs_f64(),
        adopted_without_actions: acted == 0.0,
        secs: measured,
        agent: side(a0, a1, &am0, &am1),
        controller: side(c0, c1, &cm0, &cm1),
        etcd_revisions: rev1 - rev0,
        writes,
        agent_pass: ((p1.0 - p0.0) / (p1.1 - p0.1), p1.1 - p0.1),
        listing,
    })
}

// ---------------------------------------------------------------------------------------
// Report

fn fmt3(v: (f64, f64, f64)) -> String {
    format!("{:.2} ({:.2}-{:.2})", v.0, v.1, v.2)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

struct Summary {
    rows: Vec<(String, String, String, &'static str)>,
}

impl Summary {
    fn add(&mut self, what: &str, figure: String, target: &str, ok: bool) {
        self.rows
            .push((what.to_owned(), figure, target.to_owned(), verdict(ok)));
    }
}

fn report_size(s: &SizeResult, compose: bool, detail: bool, sum: &mut Summary) {
    let col = |f: &dyn Fn(&Round) -> f64| -> Vec<f64> { s.rounds.iter().map(f).collect() };
    let n = s.n;
    if detail {
        println!("\n### Convergence and teardown, {n} services on one host, per round\n");
        println!("Seconds. Berth up = `etcd put` to status Running at that revision (Docker's last `start` event in brackets); Berth down = `etcd delete` to Docker's last `destroy` (status key gone in brackets); raw = bollard create+start / stop+remove, all at once as Berth does; compose = `docker-compose up -d` / `down`.\n");
        println!("| round | Berth up | raw up | compose up | Berth/raw | compose/Berth | Berth down | raw down | compose down | Berth/raw down |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for (i, r) in s.rounds.iter().enumerate() {
            println!(
                "| {} | {:.2} ({:.2}) | {:.2} | {} | {:.2}x | {} | {:.2} ({:.2}) | {:.2} | {} | {:.2}x |",
                i + 1,
                r.berth_up,
                r.berth_up_docker,
                r.raw_up,
                r.compose_up.map_or(
                    if r.compose_hung { "hung" } else { "-" }.into(),
                    |v| format!("{v:.2}")
                ),
                r.berth_up / r.raw_up,
                r.compose_up.map_or("-".into(), |v| format!("{:.2}x", v / r.berth_up)),
                r.berth_down,
                r.berth_down_status,
                r.raw_down,
                r.compose_down.map_or("-".into(), |v| format!("{v:.2}")),
                r.berth_down / r.raw_down,
            );
        }
        let up_ratio = stats(&col(&|r| r.berth_up / r.raw_up));
        let up_docker_ratio = stats(&col(&|r| r.berth_up_docker / r.raw_up));
        let down_ratio = stats(&col(&|r| r.berth_down / r.raw_down));
        println!(
            "\nMedian (min-max): Berth up {}, raw up {}, Berth/raw {} (Docker-level {}); Berth down {}, raw down {}, Berth/raw {}.",
            fmt3(stats(&col(&|r| r.berth_up))),
            fmt3(stats(&col(&|r| r.raw_up))),
            fmt3(up_ratio),
            fmt3(up_docker_ratio),
            fmt3(stats(&col(&|r| r.berth_down))),
            fmt3(stats(&col(&|r| r.raw_down))),
            fmt3(down_ratio),
        );
        let med = |f: &dyn Fn(&Round) -> f64| stats(&col(f)).0;
        println!("\nWhere Berth's time goes (medians over rounds, seconds):\n");
        println!("| step | up (`put`) | down (`delete`) |");
        println!("|---|---|---|");
        println!(
            "| the controller's assignment write arrives on a watch | {:.3} | {:.3} |",
            med(&|r| r.berth_up_assigned),
            med(&|r| r.berth_down_assigned),
        );
        println!(
            "| then Docker's first event for the stack (the agent's pass up to its first call, then Docker's own delay to its first event) | {:.3} | {:.3} |",
            med(&|r| r.berth_up_first - r.berth_up_assigned),
            med(&|r| r.berth_down_first - r.berth_down_assigned),
        );
        println!(
            "| then the last container started / network removed | {:.3} | {:.3} |",
            med(&|r| r.berth_up_docker - r.berth_up_first),
            med(&|r| r.berth_down - r.berth_down_first),
        );
        println!(
            "| raw Docker's whole run, for comparison | {:.3} | {:.3} |",
            med(&|r| r.raw_up),
            med(&|r| r.raw_down),
        );
        println!(
            "| raw Docker from its first call to its first event (inside its whole run; Berth waits for it too) | - | {:.3} |",
            med(&|r| r.raw_down_first),
        );
        println!(
            "| then status Running / status key removed | {:.3} | {:.3} |",
            med(&|r| r.berth_up - r.berth_up_docker),
            med(&|r| r.berth_down_status - r.berth_down),
        );
        sum.add(
            &format!("convergence, {n} services: Berth/raw (median of rounds)"),
            format!("{:.2}x", up_ratio.0),
            &format!("<= {TARGET_CONVERGE}x"),
            up_ratio.0 <= TARGET_CONVERGE,
        );
        let completed = s.rounds.iter().filter(|r| r.compose_up.is_some()).count();
        if compose && completed == 0 {
            println!("\ndocker-compose hung in every round: no comparison.");
            sum.add(
                &format!("convergence, {n} services: compose/Berth (how much faster Berth is)"),
                "compose hung".to_owned(),
                &format!(">= {TARGET_COMPOSE}x"),
                false,
            );
        } else if compose {
            let c_ratio = stats(
                &s.rounds
                    .iter()
                    .filter_map(|r| Some(r.compose_up? / r.berth_up))
                    .collect::<Vec<_>>(),
            );
            let cd_ratio = stats(
                &s.rounds
                    .iter()
                    .filter_map(|r| Some(r.compose_down? / r.berth_down))
                    .collect::<Vec<_>>(),
            );
            let raw_ratio = stats(
                &s.rounds
                    .iter()
                    .filter_map(|r| Some(r.compose_up? / r.raw_up))
                    .collect::<Vec<_>>(),
            );
            println!(
                "\ncompose up {}, compose/Berth {} (compose/raw Docker {}: the most any tool driving this engine could gain over compose); compose down {}, compose/Berth down {}.",
                fmt3(stats(
                    &s.rounds
                        .iter()
                        .filter_map(|r| r.compose_up)
                        .collect::<Vec<_>>()
                )),
                fmt3(c_ratio),
                fmt3(raw_ratio),
                fmt3(stats(
                    &s.rounds
                        .iter()
                        .filter_map(|r| r.compose_down)
                        .collect::<Vec<_>>()
                )),
                fmt3(cd_ratio),
            );
            sum.add(
                &format!("convergence, {n} services: compose/Berth (how much faster Berth is)"),
                format!("{:.2}x", c_ratio.0),
                &format!(">= {TARGET_COMPOSE}x"),
                c_ratio.0 >= TARGET_COMPOSE,
            );
        }
        sum.add(
            &format!("teardown, {n} services: Berth/raw stop+remove"),
            format!("{:.2}x", down_ratio.0),
            &format!("<= {TARGET_TEARDOWN}x"),
            down_ratio.0 <= TARGET_TEARDOWN,
        );
    }
}

fn report_scaling(sizes: &[SizeResult], compose: bool) {
    println!("\n### Scaling with the number of services (medians over rounds, seconds)\n");
    println!("| services | rounds | Berth up | raw up | compose up | Berth/raw up | compose/Berth up | Berth up per container | raw up per container | Berth down | raw down | compose down | Berth/raw down |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in sizes {
        let col = |f: &dyn Fn(&Round) -> f64| -> f64 {
            stats(&s.rounds.iter().map(f).collect::<Vec<_>>()).0
        };
        let ocol = |f: &dyn Fn(&Round) -> Option<f64>| -> String {
            let v: Vec<f64> = s.rounds.iter().filter_map(f).collect();
            if v.is_empty() || !compose {
                "-".into()
            } else {
                format!("{:.2}", stats(&v).0)
            }
        };
        let n = s.n as f64;
        let hung = s.rounds.iter().filter(|r| r.compose_hung).count();
        println!(
            "| {} | {}{} | {:.2} | {:.2} | {} | {:.2}x | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {:.2}x |",
            s.n,
            s.rounds.len(),
            if hung > 0 {
                format!(" (compose hung in {hung})")
            } else {
                String::new()
            },
            col(&|r| r.berth_up),
            col(&|r| r.raw_up),
            ocol(&|r| r.compose_up),
            col(&|r| r.berth_up / r.raw_up),
            ocol(&|r| Some(r.compose_up? / r.berth_up)),
            col(&|r| r.berth_up) / n,
            col(&|r| r.raw_up) / n,
            col(&|r| r.berth_down),
            col(&|r| r.raw_down),
            ocol(&|r| r.compose_down),
            col(&|r| r.berth_down / r.raw_down),
        );
    }
    let left: Vec<String> = sizes
        .iter()
        .flat_map(|s| {
            s.rounds.iter().enumerate().filter_map(move |(r, round)| {
                let why = round.berth_network_left.as_ref()?;
                Some(format!("{} services, round {}: {why:?}", s.n, r + 1))
            })
        })
        .collect();
    if !left.is_empty() {
        println!(
            "\nBerth left its stack network behind in {} teardown(s); the bench removed it (`docker network rm` said): {}. Teardown times above then end at the last container.",
            left.len(),
            left.join("; ")
        );
    }
}

fn report_load(sizes: &[SizeResult]) {
    println!("\n### etcd and Docker traffic per converged container (mean over rounds)\n");
    println!("Key modifications (and bytes of key + value) found in etcd's history between the user's write and the settled result, by key kind; the user's own put/delete excluded. `write requests` are the txn/put/delete calls Berth's processes made (`berth_etcd_requests_total`), including those that changed nothing.\n");
    println!("| services | phase | kind | writes / container | bytes / container |");
    println!("|---|---|---|---|---|");
    for s in sizes {
        let per = (s.rounds.len() * s.n) as f64;
        for (phase, load) in [("converge", &s.up_load), ("teardown", &s.down_load)] {
            for (kind, (w, b)) in &load.writes.0 {
                println!(
                    "| {} | {phase} | {kind} | {:.2} | {:.0} |",
                    s.n,
                    *w as f64 / per,
                    *b as f64 / per
                );
            }
            let (w, b) = load.writes.total();
            println!(
                "| {} | {phase} | **total** | **{:.2}** | **{:.0}** |",
                s.n,
                w as f64 / per,
                b as f64 / per
            );
            let ops = |m: &BTreeMap<String, f64>| -> String {
                m.iter()
                    .map(|(op, c)| format!("{op} {:.2}", c / per))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "| {} | {phase} | write requests: agent / controller | {:.2} / {:.2} | all requests by op: agent {}; controller {} |",
                s.n,
                load.agent_etcd / per,
                load.controller_etcd / per,
                ops(&load.agent_ops),
                ops(&load.controller_ops),
            );
            let calls: Vec<String> = load
                .docker_calls
                .iter()
                .map(|(op, c)| format!("{op} {:.2}", c / per))
                .collect();
            let latency: Vec<String> = load
                .docker_latency
                .iter()
                .map(|(op, (t, c))| format!("{op} {:.0} ms", 1000.0 * t / c))
                .collect();
            println!(
                "| {} | {phase} | Docker calls by the agent | {:.2} | {}; mean latency: {} |",
                s.n,
                load.docker_calls.values().fold(0.0, |a, b| a + b) / per,
                calls.join(", "),
                latency.join(", ")
            );
            let rounds = s.rounds.len() as f64;
            println!(
                "| {} | {phase} | passes per round: agent / controller | {:.1} / {:.1} | CPU per container: agent {:.1} ms, controller {:.1} ms |",
                s.n,
                load.agent_passes / rounds,
                load.controller_passes / rounds,
                1000.0 * load.agent_cpu / per,
                1000.0 * load.controller_cpu / per,
            );
        }
    }
}

fn report_reaction(r: &Reaction, sum: &mut Summary) {
    println!(
        "\n### Reaction (seconds; median (min-max) over {} repeats)\n",
        r.kill_berth.len()
    );
    let kb = stats(&r.kill_berth);
    let kd = stats(&r.kill_docker);
    let cb = stats(&r.change_berth_docker);
    let cs = stats(&r.change_berth_status);
    let cd = stats(&r.change_docker);
    println!("| event | Berth | Docker's own | Berth beyond Docker |");
    println!("|---|---|---|---|");
    println!(
        "| container killed (SIGKILL) -> running again (Docker `die` to `start`) | {} | {} (start) | {:.3} |",
        fmt3(kb),
        fmt3(kd),
        kb.0 - kd.0
    );
    println!(
        "| spec change (one service's env) -> replacement started (put to Docker `start`) | {} | {} (stop+remove+create+start) | {:.3} |",
        fmt3(cb),
        fmt3(cd),
        cb.0 - cd.0
    );
    println!(
        "| spec change -> status Running at the new revision | {} | {} | {:.3} |",
        fmt3(cs),
        fmt3(cd),
        cs.0 - cd.0
    );
    sum.add(
        "reaction: killed -> running, beyond Docker's start",
        format!("{:.3} s", kb.0 - kd.0),
        &format!("< {TARGET_REACTION} s"),
        kb.0 - kd.0 < TARGET_REACTION,
    );
    sum.add(
        "reaction: spec change -> replaced, beyond Docker's own",
        format!("{:.3} s", cb.0 - cd.0),
        &format!("< {TARGET_REACTION} s"),
        cb.0 - cd.0 < TARGET_REACTION,
    );
}

fn report_idle(i: &Idle, sum: &mut Summary) {
    println!(
        "\n### Idle cost: {} containers (4 stacks), {:.0} s idle\n",
        i.containers, i.secs
    );
    println!(
        "Converging the {} containers took {:.1} s and removing them {:.1} s. The agent and controller were restarted before measuring (their peak memory is that of adopting and watching these containers); the restarted agent {}\n",
        i.containers,
        i.converge_secs,
        i.teardown_secs,
        if i.adopted_without_actions {
            "adopted every container without touching it."
        } else {
            "**acted on containers while adopting**."
        }
    );
    let min = i.secs / 60.0;
    println!("| process | CPU s | % of a core | peak RSS (VmHWM) MB | RSS now MB | etcd writes/min | Docker calls/min |");
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in [("agent", &i.agent), ("controller", &i.controller)] {
        let calls: Vec<String> = s
            .docker_calls
            .iter()
            .map(|(op, c)| format!("{op} {:.0}", c / min))
            .collect();
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.0}{} |",
            s.cpu_secs,
            100.0 * s.cpu_secs / i.secs,
            s.hwm_mb,
            s.rss_mb,
            s.etcd_writes / min,
            s.docker_calls.values().fold(0.0, |a, b| a + b) / min,
            if calls.is_empty() {
                String::new()
            } else {
                format!(" ({})", calls.join(", "))
            }
        );
    }
    println!(
        "\nThe agent ran {:.0} passes in the window (its resync), {:.0} ms each on average. Looking at its {} containers by a list and an inspect of each (8 at a time, what every pass did before the agent remembered its inspects) takes {:.0} ms; the list alone, which is what an idle pass now makes, {:.0} ms (medians of 5).",
        i.agent_pass.1,
        1000.0 * i.agent_pass.0,
        i.listing.containers,
        1000.0 * i.listing.list_and_inspect,
        1000.0 * i.listing.list_only,
    );
    let kinds: Vec<String> = i
        .writes
        .0
        .iter()
        .map(|(k, (n, _))| format!("{k} {n}"))
        .collect();
    println!(
        "\netcd's revision advanced by {} during the idle window (every writer; lease keep-alives do not advance it){}.",
        i.etcd_revisions,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(": {}", kinds.join(", "))
        }
    );
    let cpu = 100.0 * i.agent.cpu_secs / i.secs;
    sum.add(
        &format!("idle agent ({} containers): CPU", i.containers),
        format!("{cpu:.2} % of a core"),
        &format!("< {TARGET_IDLE_CPU} %"),
        cpu < TARGET_IDLE_CPU,
    );
    sum.add(
        "idle agent: peak RSS",
        format!("{:.1} MB", i.agent.hwm_mb),
        &format!("< {TARGET_IDLE_RSS_MB} MB"),
        i.agent.hwm_mb < TARGET_IDLE_RSS_MB,
    );
    sum.add(
        "idle agent + controller: etcd writes beyond keep-alives",
        format!(
            "{:.0} + {:.0} ({} revisions)",
            i.agent.etcd_writes, i.controller.etcd_writes, i.etcd_revisions
        ),
        "0",
        i.agent.etcd_writes == 0.0 && i.controller.etcd_writes == 0.0 && i.etcd_revisions == 0,
    );
}

// ---------------------------------------------------------------------------------------

async fn run(cfg: &Config) -> Res<()> {
    let d = docker().await?;
    let version = d.version().await.map_err(err)?;
    let compose = compose_available();
    let scratch = tempfile::tempdir().map_err(err)?;
    let mut c = Cluster::start().await?;
    println!("## Berth convergence benchmark\n");
    println!(
        "Docker {} ({}), {} CPUs; docker-compose {}; the Berth processes are `{}`.",
        version.version.unwrap_or_default(),
        version.kernel_version.unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if compose {
            compose_version()
        } else {
            "absent: comparison skipped".to_owned()
        },
        env!("CARGO_BIN_EXE_berth")
    );
    if !compose {
        println!("\ndocker-compose is not installed (`scripts/setup.sh --bench` installs it): the compose comparison is skipped.");
    }
    let mut sum = Summary { rows: Vec::new() };
    let started = Instant::now();
    let outcome = async {
        if cfg.runs("converge") {
            let mut sizes = Vec::new();
            for &(n, rounds) in &cfg.sizes {
                eprintln!("converge: {n} services, {rounds} rounds");
                let file = if compose {
                    Some(write_compose(scratch.path(), n)?)
                } else {
                    None
                };
                sizes.push(converge_size(&c, &d, n, rounds, file.as_deref()).await?);
            }
            let detail = sizes
                .iter()
                .find(|s| s.n == 30)
                .or(sizes.first())
                .map(|s| s.n);
            for s in &sizes {
                report_size(s, compose, Some(s.n) == detail, &mut sum);
            }
            report_scaling(&sizes, compose);
            report_load(&sizes);
        }
        if cfg.runs("concurrency") {
            eprintln!("raw Docker concurrency sweep: 30 containers");
            let s = concurrency_sweep(&d, 30, &[2, 4, 8, 30], 2).await?;
            report_sweep(30, &s);
        }
        if cfg.runs("react") {
            eprintln!("reaction: {} repeats", cfg.repeats);
            let r = reaction(&c, &d, 30, cfg.repeats).await?;
            report_reaction(&r, &mut sum);
        }
        if cfg.runs("idle") {
            eprintln!("idle: 200 containers, {} s", cfg.idle_secs);
            let i = idle(&mut c, &d, 4, 50, cfg.idle_secs).await?;
            report_idle(&i, &mut sum);
        }
        Ok::<(), String>(())
    }
    .await;
    if outcome.is_ok() && std::env::var_os("BERTH_BENCH_KEEP_LOGS").is_some() {
        eprintln!("Berth's logs kept in {}", c.keep_logs().display());
    } else if let Err(e) = outcome {
        let logs = c.logs();
        let kept = c.keep_logs();
        return Err(format!(
            "{e}\n(Berth's logs: {logs}, kept in {})",
            kept.display()
        ));
    }
    println!("\n### Summary against the targets\n");
    println!("| what | figure | target | |");
    println!("|---|---|---|---|");
    for (what, figure, target, v) in &sum.rows {
        println!("| {what} | {figure} | {target} | {v} |");
    }
    println!(
        "\nScheduler placements/s: see `cargo bench --bench scheduler` (target >= 100,000/s). This benchmark took {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sweeps what a run leaves, even when it fails halfway.
struct Sweep;

impl Drop for Sweep {
    fn drop(&mut self) {
        sweep();
    }
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, unoptimised: only measure when
    // cargo bench asked for it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("converge benchmark skipped: run it with `make bench`");
        return;
    }
    let cfg = Config::from_env();
    sweep();
    let _sweep = Sweep;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(&cfg)) {
        eprintln!("converge benchmark failed: {e}");
        drop(_sweep);
        std::process::exit(1);
    }
}
