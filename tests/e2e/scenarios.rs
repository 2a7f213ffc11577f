//! The nineteen scenarios of the multi-host suite. Each asserts one invariant, returns its
//! figure (one line for the summary table) and names the stacks it used, so the runner
//! can clean up after it whatever happened. Host ports are in 19000-19999.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use berth::assignment::Assignment;
use berth::report::{SlotReport, SlotState};
use berth::spec::{ConditionStatus, Phase, StackStatus};
use berth::store::{keys, Store};
use serde_json::{json, Value};

use crate::harness::{
    brief_services, copies, health_of, metric, timed, until, Cluster, Ctr, Start, AGENTLESS_ID,
    HOST_DOWN_GRACE, IMAGE, LEADER_TTL, LEASE_TTL, R,
};

/// One scenario: its number, title and the stacks it may leave behind; [`run`] has its body.
pub struct Scenario {
    pub n: u32,
    pub title: &'static str,
    pub stacks: &'static [&'static str],
    /// Upper bound on its run time; past it, it fails and the runner cleans up.
    pub limit: Duration,
}

pub const ALL: &[Scenario] = &[
    Scenario {
        n: 1,
        title: "three-tier across three hosts",
        stacks: &["e2e-shop"],
        limit: Duration::from_secs(180),
    },
    Scenario {
        n: 2,
        title: "spread 6 services over 3 hosts",
        stacks: &["e2e-spread"],
        limit: Duration::from_secs(120),
    },
    Scenario {
        n: 3,
        title: "host-2 agent+dockerd killed",
        stacks: &["e2e-kill"],
        limit: Duration::from_secs(240),
    },
    Scenario {
        n: 4,
        title: "partition > grace, heal",
        stacks: &["e2e-part"],
        limit: Duration::from_secs(240),
    },
    Scenario {
        n: 5,
        title: "partition < grace",
        stacks: &["e2e-blip"],
        limit: Duration::from_secs(180),
    },
    Scenario {
        n: 6,
        title: "leader SIGSTOP past its lease",
        stacks: &["e2e-ha"],
        limit: Duration::from_secs(180),
    },
    Scenario {
        n: 7,
        title: "dockerd restart on host-1",
        stacks: &["e2e-dock"],
        limit: Duration::from_secs(180),
    },
    Scenario {
        n: 8,
        title: "etcd quorum lost",
        stacks: &["e2e-quorum", "e2e-quorum-after"],
        limit: Duration::from_secs(420),
    },
    Scenario {
        n: 9,
        title: "env update, dependency order",
        stacks: &["e2e-upd"],
        limit: Duration::from_secs(240),
    },
    Scenario {
        n: 10,
        title: "bad inputs while running",
        stacks: &[
            "e2e-good",
            "e2e-garbage",
            "e2e-huge",
            "e2e-cycle",
            "e2e-ghost",
            "e2e-after-bad",
        ],
        limit: Duration::from_secs(240),
    },
    Scenario {
        n: 11,
        title: "delete while partitioned",
        stacks: &["e2e-orph"],
        limit: Duration::from_secs(180),
    },
    Scenario {
        n: 12,
        title: "drain host-1",
        stacks: &["e2e-drain"],
        limit: Duration::from_secs(240),
    },
    Scenario {
        n: 13,
        title: "rolling update, 6 slots on 3 hosts",
        stacks: &["e2e-roll"],
        limit: Duration::from_secs(90),
    },
    Scenario {
        n: 14,
        title: "crashing version rolled back",
        stacks: &["e2e-rollback"],
        limit: Duration::from_secs(60),
    },
    Scenario {
        n: 15,
        title: "leader SIGSTOP mid-rollout",
        stacks: &["e2e-roll-ha"],
        limit: Duration::from_secs(90),
    },
    Scenario {
        n: 16,
        title: "agentless TLS host: http checks",
        stacks: &["e2e-remote"],
        limit: Duration::from_secs(150),
    },
    Scenario {
        n: 17,
        title: "berth host remove of host-4",
        stacks: &["e2e-remove"],
        limit: Duration::from_secs(150),
    },
    Scenario {
        n: 18,
        title: "pinned digests across two hosts",
        stacks: &["e2e-pin", "e2e-nopin"],
        limit: Duration::from_secs(120),
    },
    Scenario {
        n: 19,
        title: "berth logs across hosts, one cut",
        stacks: &["e2e-logs"],
        limit: Duration::from_secs(90),
    },
];

pub async fn run(n: u32, c: &mut Cluster) -> R<String> {
    match n {
        1 => three_tier(c).await,
        2 => spread(c).await,
        3 => host_killed(c).await,
        4 => long_partition(c).await,
        5 => short_partition(c).await,
        6 => leader_frozen(c).await,
        7 => dockerd_restart(c).await,
        8 => quorum_lost(c).await,
        9 => env_update(c).await,
        10 => bad_inputs(c).await,
        11 => delete_while_partitioned(c).await,
        12 => drain(c).await,
        13 => rolling_update(c).await,
        14 => crash_rolled_back(c).await,
        15 => rollout_leader_frozen(c).await,
        16 => agentless_health(c).await,
        17 => remove_agentless(c).await,
        18 => pinned_digests(c).await,
        19 => logs_across_hosts(c).await,
        _ => Err(format!("no scenario {n}")),
    }
}

macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

const T: Duration = Duration::from_secs(60);

fn busy(script: &str) -> Value {
    json!(["sh", "-c", format!("trap 'exit 0' TERM; {script} & wait")])
}

fn sleeper(name: &str) -> Value {
    json!({"@type": "SoftwareApplication", "name": name, "image": IMAGE, "command": busy("sleep 100000")})
}

/// An HTTP server on container port 8080 answering `/index.html` with `body`.
fn web(name: &str, body: &str, host_port: u16) -> Value {
    json!({
        "@type": "SoftwareApplication", "name": name, "image": IMAGE,
        "command": busy(&format!("mkdir -p /www; echo {body} > /www/index.html; httpd -f -p 8080 -h /www")),
        "ports": [{"containerPort": 8080, "hostPort": host_port, "protocol": "tcp"}],
        "healthCheck": {"type": "http", "path": "/index.html", "port": 8080, "interval": 1, "timeout": 1, "retries": 2}
    })
}

fn stack(strategy: &str, services: Vec<Value>) -> String {
    json!({
        "@context": "https://schema.org", "@type": "ItemList", "name": "e2e",
        "deployment": {"mode": "multi-host", "placementStrategy": strategy},
        "itemListElement": services
    })
    .to_string()
}

fn spread_of(names: &[&str]) -> String {
    stack("spread", names.iter().map(|n| sleeper(n)).collect())
}

fn example(name: &str) -> R<String> {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

fn running_on<'a>(ctrs: &'a [Ctr], host: &str) -> Vec<&'a Ctr> {
    ctrs.iter()
        .filter(|c| c.host == host && c.running())
        .collect()
}

/// Running copies of `stack` on the given hosts only (the others may be unreachable).
async fn containers_on(c: &Cluster, stack: &str, hosts: &[&str]) -> R<Vec<Ctr>> {
    let mut all = Vec::new();
    for h in hosts {
        all.extend(
            c.host(h)
                .ps(&["berth.managed=true", &format!("berth.stack={stack}")])
                .await?,
        );
    }
    Ok(all)
}

/// Each slot has exactly one running copy, and nothing of the stack is on `not_on`.
fn one_copy_each(ctrs: &[Ctr], slots: &BTreeSet<String>, not_on: &str) -> R<()> {
    let copies = copies(ctrs);
    for s in slots {
        let n = copies.get(s).map(Vec::len).unwrap_or(0);
        check!(n == 1, "slot {s} has {n} running copies: {copies:?}");
    }
    let left: Vec<&Ctr> = ctrs.iter().filter(|c| c.host == not_on).collect();
    check!(
        left.is_empty(),
        "{} container(s) left on {not_on}: {:?}",
        left.len(),
        left.iter().map(|c| (&c.name, &c.state)).collect::<Vec<_>>()
    );
    Ok(())
}

/// Polls the agents' reports for when each `(host, stack, slot)` first reports healthy at a
/// spec revision of at least `min_rev`. The times are when this poller saw it (at most
/// ~50 ms after the report landed), never before it was true.
fn watch_healthy(
    store: Store,
    slots: Vec<(String, String, String)>,
    min_rev: i64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<String, SystemTime>> {
    tokio::spawn(async move {
        let mut seen = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) && seen.len() < slots.len() {
            for (host, stack, slot) in &slots {
                if seen.contains_key(slot) {
                    continue;
                }
                let Ok(Some(kv)) = timed(store.get(&keys::report(host, stack, slot))).await else {
                    continue;
                };
                let Ok(r) = serde_json::from_slice::<Value>(&kv.value) else {
                    continue;
                };
                let rev = r["specRevision"].as_i64().unwrap_or(0);
                if r["health"] == "healthy" && r["state"] == "running" && rev >= min_rev {
                    seen.insert(slot.clone(), SystemTime::now());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    })
}

fn secs_between(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Slack for "A happened after B was seen": B's time is when the poller saw it, up to
/// ~50 ms late, while a start gated on B lags it by a controller and an agent pass.
const SEEN_SLACK: f64 = 0.25;

/// Scenario 1: db on host-1, cache on host-2, app on host-3; the app starts only once both are
/// healthy, and reaches both across hosts through its injected addresses.
async fn three_tier(c: &mut Cluster) -> R<String> {
    let id = "e2e-shop";
    let t0 = SystemTime::now() - Duration::from_secs(1);
    let stop = Arc::new(AtomicBool::new(false));
    let rev_floor = c.revision().await?;
    let healthy = watch_healthy(
        c.store.clone(),
        vec![
            ("host-1".into(), id.into(), "db.1".into()),
            ("host-2".into(), id.into(), "cache.1".into()),
        ],
        rev_floor,
        stop.clone(),
    );
    let rev = c.put_stack(id, example("three-tier.json")?).await?;
    let st = c.wait_running(id, rev, Duration::from_secs(90)).await;
    stop.store(true, Ordering::Relaxed);
    let healthy = healthy.await.map_err(|e| e.to_string())?;
    let st = st?;
    for (svc, host) in [("db", "host-1"), ("cache", "host-2"), ("app", "host-3")] {
        let on = st.services.get(svc).and_then(|s| s.host.as_deref());
        check!(on == Some(host), "{svc} is on {on:?}, not {host}");
    }
    let (Some(db_ok), Some(cache_ok)) = (healthy.get("db.1"), healthy.get("cache.1")) else {
        return Err(format!("never saw db and cache healthy: {healthy:?}"));
    };
    let deps_ok = *db_ok.max(cache_ok);
    let h3 = c.host("host-3");
    let starts = h3
        .starts_since(t0, &[&format!("berth.stack={id}"), "berth.service=app"])
        .await?;
    let first = starts
        .iter()
        .map(|s| s.at)
        .min()
        .ok_or("no start event of app on host-3")?;
    let lead = secs_between(first, deps_ok);
    if lead < -SEEN_SLACK {
        return Err(format!(
            "app started {:.2}s BEFORE db and cache were both healthy \
             (db healthy at +{:.2}s, cache at +{:.2}s, app started at +{:.2}s after the put)",
            -lead,
            secs_between(*db_ok, t0) - 1.0,
            secs_between(*cache_ok, t0) - 1.0,
            secs_between(first, t0) - 1.0
        ));
    }

    let ctrs = c.containers(id).await?;
    let app = running_on(&ctrs, "host-3")
        .into_iter()
        .find(|x| x.service == "app")
        .ok_or("no running app container on host-3")?
        .id
        .clone();
    let env = h3.docker(&["exec", &app, "env"]).await?;
    check!(
        env.lines().any(|l| l == "DB_HOST=10.77.0.1"),
        "app's DB_HOST is not host-1's address: {env}"
    );
    for (var, want) in [("DB_URL", "db"), ("CACHE_URL", "cache")] {
        let script =
            format!("hp=${{{var}#*://}}; hp=${{hp%%/*}}; timeout 3 wget -q -O- http://$hp/");
        let body = h3.docker(&["exec", &app, "sh", "-c", &script]).await?;
        check!(
            body.trim() == want,
            "wget of ${var} from the app on host-3 returned {body:?}, want {want:?}"
        );
    }
    // Host-3's agent, which converged the app, runs from Berth's image as a container
    // with no `berth.*` labels, and the scenario's work left it running.
    let agent = h3
        .docker(&[
            "inspect",
            "-f",
            "{{.Config.Image}}|{{.State.Running}}|{{json .Config.Labels}}",
            "berth-agent",
        ])
        .await?;
    check!(
        agent.starts_with("berth-e2e/berth:latest|true|") && !agent.contains("\"berth."),
        "host-3's agent container: {agent}"
    );
    Ok(format!(
        "app started {lead:.1}s after db+cache healthy; wget DB_URL (host-1), CACHE_URL (host-2) from host-3 ok; host-3's agent ran from the image"
    ))
}

/// Scenario 2: Six services with `spread` over three empty hosts land 2/2/2.
async fn spread(c: &mut Cluster) -> R<String> {
    let id = "e2e-spread";
    let rev = c.put_stack(id, example("spread.json")?).await?;
    c.wait_running(id, rev, T).await?;
    let ctrs = c.containers(id).await?;
    let counts: Vec<usize> = c
        .hosts
        .iter()
        .map(|h| running_on(&ctrs, &h.id).len())
        .collect();
    let figure = counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("/");
    check!(counts == [2, 2, 2], "spread gave {figure}, want 2/2/2");
    Ok(format!("host-1/2/3 run {figure}"))
}

/// Scenario 3: Host-2 dies (agent and dockerd killed): after the grace its slots run elsewhere;
/// when it comes back, its stale copies go.
async fn host_killed(c: &mut Cluster) -> R<String> {
    let id = "e2e-kill";
    let rev = c.put_stack(id, spread_of(&["a", "b", "c"])).await?;
    c.wait_running(id, rev, T).await?;
    let ctrs = c.containers(id).await?;
    let slots: BTreeSet<String> = ctrs.iter().map(Ctr::slot).collect();
    let on2: Vec<String> = running_on(&ctrs, "host-2")
        .iter()
        .map(|x| x.service.clone())
        .collect();
    check!(!on2.is_empty(), "nothing of {id} runs on host-2: {ctrs:?}");

    let t0 = Instant::now();
    let h2 = c.host_mut("host-2");
    h2.agent.kill();
    h2.dockerd.kill();
    let moved = until("host-2's slots running on host-1/3", T, || async {
        let st = c.status(id).await?.ok_or("no status")?;
        check!(
            st.phase == Phase::Running
                && st
                    .services
                    .values()
                    .all(|s| s.host.as_deref() != Some("host-2")),
            "phase {:?}: {}",
            st.phase,
            brief_services(&st)
        );
        let now = containers_on(c, id, &["host-1", "host-3"]).await?;
        let copies = copies(&now);
        check!(
            slots.iter().all(|s| copies.get(s).map(Vec::len) == Some(1)),
            "running on host-1/3: {copies:?}"
        );
        Ok(t0.elapsed())
    })
    .await?;
    check!(
        moved >= HOST_DOWN_GRACE,
        "rescheduled after {:.1}s, before the {}s grace",
        moved.as_secs_f64(),
        HOST_DOWN_GRACE.as_secs()
    );

    let h2 = c.host_mut("host-2");
    h2.start_dockerd()?;
    h2.wait_docker(T).await?;
    h2.agent.start()?;
    let back = Instant::now();
    c.wait_hosts_ready(T).await?;
    until("host-2's stale copies removed", T, || async {
        one_copy_each(&c.containers(id).await?, &slots, "host-2")
    })
    .await?;
    Ok(format!(
        "{} slot(s) running elsewhere {:.1}s after the kill (lease {}s + grace {}s); stale copies gone {:.1}s after host-2 returned",
        on2.len(),
        moved.as_secs_f64(),
        LEASE_TTL.as_secs(),
        HOST_DOWN_GRACE.as_secs(),
        back.elapsed().as_secs_f64()
    ))
}

/// Samples every host's running containers of one stack, all hosts at once, about every
/// 200 ms until finished (or dropped: a scenario that fails half-way stops it too), and
/// folds each sample into an `S`. A sample has one entry per host, `None` where its engine
/// did not answer.
struct Sampler<S> {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<S>>,
}

impl<S: Default + Send + 'static> Sampler<S> {
    /// Samples the three agent hosts.
    fn start<F>(c: &Cluster, stack: &str, fold: F) -> Sampler<S>
    where
        F: FnMut(&mut S, &[Option<Vec<Ctr>>]) + Send + 'static,
    {
        Sampler::start_on(c.hosts.iter(), stack, fold)
    }

    fn start_on<'h, F>(
        on: impl Iterator<Item = &'h crate::harness::Host>,
        stack: &str,
        mut fold: F,
    ) -> Sampler<S>
    where
        F: FnMut(&mut S, &[Option<Vec<Ctr>>]) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let hosts: Vec<(String, String)> = on.map(|h| (h.id.clone(), h.sock.clone())).collect();
        let stack = stack.to_owned();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut state = S::default();
            while !flag.load(Ordering::Relaxed) {
                let views = futures::future::join_all(
                    hosts.iter().map(|(id, sock)| ps_running(sock, id, &stack)),
                )
                .await;
                fold(&mut state, &views);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            state
        });
        Sampler {
            stop,
            task: Some(task),
        }
    }

    async fn finish(mut self) -> S {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => S::default(),
        }
    }
}

impl<S> Drop for Sampler<S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What [`watch_copies`] saw.
#[derive(Debug, Default)]
struct Copies {
    /// Seconds during which some slot had two or more running copies.
    dup_secs: f64,
    /// Slots seen with no running copy.
    uncovered: BTreeSet<String>,
    last: Option<Instant>,
}

fn watch_copies(c: &Cluster, stack: &str, slots: BTreeSet<String>) -> Sampler<Copies> {
    watch_copies_on(c.hosts.iter(), stack, slots)
}

fn watch_copies_on<'h>(
    on: impl Iterator<Item = &'h crate::harness::Host>,
    stack: &str,
    slots: BTreeSet<String>,
) -> Sampler<Copies> {
    Sampler::start_on(on, stack, move |seen: &mut Copies, views| {
        let now = Instant::now();
        let ctrs: Vec<Ctr> = views.iter().flatten().flatten().cloned().collect();
        let copies = copies(&ctrs);
        if copies.values().any(|v| v.len() > 1) {
            seen.dup_secs += (now - seen.last.unwrap_or(now)).as_secs_f64();
        }
        // A slot counts as uncovered only on a complete view of every host.
        if views.iter().all(Option::is_some) {
            for s in &slots {
                if !copies.contains_key(s) {
                    seen.uncovered.insert(s.clone());
                }
            }
        }
        seen.last = Some(now);
    })
}

/// What [`watch_ready`] saw.
#[derive(Debug, Default)]
struct Readiness {
    /// Samples on a complete view of every host.
    samples: u32,
    /// Samples with some slot down.
    with_down: u32,
    /// The most slots down in one sample, and which.
    max_down: usize,
    worst: BTreeSet<String>,
}

/// How many of `slots` were down at once. A slot is up while a container of it, old or
/// new, runs and is healthy (or runs, with no check).
fn watch_ready(c: &Cluster, stack: &str, slots: BTreeSet<String>) -> Sampler<Readiness> {
    Sampler::start(c, stack, move |seen: &mut Readiness, views| {
        if views.iter().any(Option::is_none) {
            return;
        }
        let up: BTreeSet<String> = views
            .iter()
            .flatten()
            .flatten()
            .filter(|x| x.ready())
            .map(Ctr::slot)
            .collect();
        let down: BTreeSet<String> = slots.difference(&up).cloned().collect();
        seen.samples += 1;
        if !down.is_empty() {
            seen.with_down += 1;
        }
        if down.len() > seen.max_down {
            seen.max_down = down.len();
            seen.worst = down;
        }
    })
}

async fn ps_running(sock: &str, host: &str, stack: &str) -> Option<Vec<Ctr>> {
    let out = tokio::process::Command::new("docker")
        .args([
            "-H",
            sock,
            "ps",
            "--no-trunc",
            "--filter",
            "label=berth.managed=true",
            "--filter",
            &format!("label=berth.stack={stack}"),
            "--format",
            "{{.ID}}|{{.Label \"berth.service\"}}|{{.Label \"berth.replica\"}}|{{.Status}}",
        ])
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                Ctr {
                    host: host.to_owned(),
                    id: f[0].to_owned(),
                    name: String::new(),
                    state: "running".into(),
                    managed: true,
                    stack: stack.to_owned(),
                    service: f.get(1).unwrap_or(&"").to_string(),
                    replica: f.get(2).unwrap_or(&"").to_string(),
                    health: health_of(f.get(3).unwrap_or(&"")),
                }
            })
            .collect(),
    )
}

/// Scenario 4: Host-3 cut off longer than the grace: its slots run elsewhere meanwhile, and after
/// healing its stale copies go, leaving exactly one copy of each slot.
async fn long_partition(c: &mut Cluster) -> R<String> {
    let id = "e2e-part";
    let rev = c.put_stack(id, spread_of(&["a", "b", "c"])).await?;
    c.wait_running(id, rev, T).await?;
    let ctrs = c.containers(id).await?;
    let slots: BTreeSet<String> = ctrs.iter().map(Ctr::slot).collect();
    let on3: Vec<String> = running_on(&ctrs, "host-3")
        .iter()
        .map(|x| x.slot())
        .collect();
    check!(!on3.is_empty(), "nothing of {id} runs on host-3");
    let monitor = watch_copies(c, id, slots.clone());

    c.host("host-3").cut()?;
    let cut = Instant::now();
    let moved = until("host-3's slots running on host-1/2", T, || async {
        let now = containers_on(c, id, &["host-1", "host-2"]).await?;
        let copies = copies(&now);
        check!(
            on3.iter().all(|s| copies.contains_key(s)),
            "running on host-1/2: {copies:?}"
        );
        Ok(cut.elapsed())
    })
    .await;
    let moved = match moved {
        Ok(m) => m,
        Err(e) => {
            monitor.finish().await;
            return Err(e);
        }
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.host("host-3").heal()?;
    let partition = cut.elapsed();
    let healed = Instant::now();
    let settled = until("host-3's stale copies removed", T, || async {
        one_copy_each(&c.containers(id).await?, &slots, "host-3")
    })
    .await;
    let removed = healed.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dup_secs = monitor.finish().await.dup_secs;
    settled?;
    let after = copies(&c.containers(id).await?);
    let dups = after.values().filter(|v| v.len() > 1).count();
    check!(dups == 0, "duplicates after heal: {after:?}");
    c.wait_hosts_ready(T).await?;
    c.wait_running(id, rev, T).await?;
    Ok(format!(
        "cut {:.1}s: moved after {:.1}s; stale copies removed {:.1}s after heal; two copies for {dup_secs:.1}s; duplicates after heal: {dups}",
        partition.as_secs_f64(),
        moved.as_secs_f64(),
        removed.as_secs_f64()
    ))
}

/// Scenario 5: Host-3 cut off for less than the grace: nothing moves, nothing restarts.
async fn short_partition(c: &mut Cluster) -> R<String> {
    let id = "e2e-blip";
    let cut_for = Duration::from_secs(3);
    let rev = c.put_stack(id, spread_of(&["a", "b", "c"])).await?;
    c.wait_running(id, rev, T).await?;
    let before = c.containers(id).await?;
    let mut started = BTreeMap::new();
    for x in &before {
        let v = c.host(&x.host).inspect(&x.id).await?;
        started.insert(x.id.clone(), v["State"]["StartedAt"].clone());
    }

    // How long the controller sees host-3 gone, sampled from its registration.
    let stop = Arc::new(AtomicBool::new(false));
    let absent = {
        let store = c.store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut gone = 0.0;
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let present = matches!(timed(store.get(&keys::host("host-3"))).await, Ok(Some(_)));
                let now = Instant::now();
                if !present {
                    gone += (now - last).as_secs_f64();
                }
                last = now;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            gone
        })
    };
    let cut = Instant::now();
    c.host("host-3").cut()?;
    tokio::time::sleep(cut_for).await;
    c.host("host-3").heal()?;
    // A reschedule needs a pass that finds host-3 gone for longer than the grace, and its
    // registration lapses at most a lease TTL after the cut: once that time is past, a
    // whole scheduler pass after it is one that would have moved the slots.
    tokio::time::sleep_until((cut + LEASE_TTL + HOST_DOWN_GRACE).into()).await;
    let back = async {
        c.wait_full_pass(T).await?;
        c.wait_hosts_ready(T).await
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    let unregistered = absent.await.unwrap_or(0.0);
    back?;

    let after = c.containers(id).await?;
    let key = |v: &[Ctr]| -> BTreeSet<(String, String, String)> {
        v.iter()
            .map(|x| (x.host.clone(), x.id.clone(), x.state.clone()))
            .collect()
    };
    let moved = key(&after).symmetric_difference(&key(&before)).count();
    check!(
        moved == 0,
        "containers changed: before {:?}, after {:?}",
        key(&before),
        key(&after)
    );
    let mut restarted = 0;
    for x in &after {
        let v = c.host(&x.host).inspect(&x.id).await?;
        if Some(&v["State"]["StartedAt"]) != started.get(&x.id) {
            restarted += 1;
        }
    }
    let st = c.wait_running(id, rev, T).await?;
    let restarts: u32 = st.services.values().map(|s| s.restarts).sum();
    check!(
        restarted == 0 && restarts == 0,
        "restarted: {restarted} by StartedAt, status restarts {restarts}"
    );
    Ok(format!(
        "cut {}s (grace {}s), host-3 unregistered {unregistered:.1}s: rescheduled 0, restarted 0",
        cut_for.as_secs(),
        HOST_DOWN_GRACE.as_secs()
    ))
}

/// Scenario 6: The leading controller frozen past its lease: the other takes over, and once
/// thawed the ex-leader's writes land nowhere.
async fn leader_frozen(c: &mut Cluster) -> R<String> {
    let id = "e2e-ha";
    let tagged = |tag: &str| {
        let mut s = sleeper("a");
        s["environment"] = json!({"TAG": tag});
        stack("spread", vec![s])
    };
    let rev1 = c.put_stack(id, tagged("one")).await?;
    c.wait_running(id, rev1, T).await?;
    let leader = c.leader(Duration::from_secs(10)).await?;
    let other = 1 - leader;
    let (lport, oport) = (
        c.controllers[leader].metrics_port,
        c.controllers[other].metrics_port,
    );
    let took = freeze_leader(c, leader).await?;

    let rev2 = c.put_stack(id, tagged("two")).await?;
    c.wait_running(id, rev2, T).await?;
    let ctrs = c.containers(id).await?;
    let a = ctrs
        .iter()
        .find(|x| x.running())
        .ok_or("no running container")?;
    let env = c.host(&a.host).docker(&["exec", &a.id, "env"]).await?;
    check!(
        env.lines().any(|l| l == "TAG=two"),
        "the new leader's change did not land: {env}"
    );

    let thaw_rev = c.revision().await?;
    // The ex-leader reports `berth_leader 0` only once its pass loop has ended, so every
    // write it tried after the thaw is in the history read below.
    thaw_ex_leader(c, leader).await?;
    let mut stale = Vec::new();
    for (key, value) in c.history("/berth/", thaw_rev).await? {
        let v: Value = serde_json::from_str(&value).unwrap_or(Value::Null);
        let seen = if key.starts_with("/berth/assignments/") && key.ends_with(&format!("/{id}")) {
            v["specRevision"].as_i64()
        } else if key == format!("/berth/status/stacks/{id}") {
            v["observedRevision"].as_i64()
        } else {
            None
        };
        if let Some(r) = seen.filter(|r| *r < rev2) {
            stale.push(format!("{key} at spec revision {r}"));
        }
    }
    check!(
        stale.is_empty(),
        "stale writes accepted after the thaw: {stale:?}"
    );
    check!(
        metric(oport, "berth_leader").await == Some(1.0),
        "the new leader lost the lead after the thaw"
    );
    c.wait_running(id, rev2, T).await?;
    let fenced = metric(lport, "berth_fenced_writes_total")
        .await
        .unwrap_or(0.0);
    // Live leases: one per agent, the leader's, and one of the campaigning standby. A
    // lease that holds no key across more than its TTL is kept alive by someone who
    // does not use it: a leak.
    let bare = |l: &[(String, Vec<String>)]| -> BTreeSet<String> {
        l.iter()
            .filter(|(_, keys)| keys.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    };
    let first = c.leases().await?;
    tokio::time::sleep(LEADER_TTL + Duration::from_secs(2)).await;
    let leases = c.leases().await?;
    let leaked: BTreeSet<String> = bare(&first).intersection(&bare(&leases)).cloned().collect();
    let figure = format!(
        "failover {:.1}s (leader TTL {}s); stale writes accepted 0; ex-leader writes fenced {fenced}; {} live leases",
        took.as_secs_f64(),
        LEADER_TTL.as_secs(),
        leases.len()
    );
    // The takeover and the fence held; these two are about how the election is kept.
    let mut problems = Vec::new();
    if !leaked.is_empty() {
        problems.push(format!(
            "{} etcd lease(s) kept alive for over {}s without a key (leaked by failed campaigns): {leaked:?}",
            leaked.len(),
            LEADER_TTL.as_secs() + 2
        ));
    }
    // The README: "If the leader dies, another controller takes over within the TTL".
    if took > LEADER_TTL + Duration::from_secs(2) {
        problems.push(format!(
            "failover took {:.1}s with a leader TTL of {}s",
            took.as_secs_f64(),
            LEADER_TTL.as_secs()
        ));
    }
    check!(problems.is_empty(), "{figure}; but {}", problems.join("; "));
    Ok(figure)
}

/// SIGSTOP the leading controller (index `leader`); how long until the other one leads.
async fn freeze_leader(c: &Cluster, leader: usize) -> R<Duration> {
    let standby = c.controllers[1 - leader].metrics_port;
    c.controllers[leader].proc.signal("STOP");
    let frozen = Instant::now();
    until("the standby controller leads", T, || async {
        check!(
            metric(standby, "berth_leader").await == Some(1.0),
            "standby not leading yet"
        );
        Ok(frozen.elapsed())
    })
    .await
}

/// SIGCONT the frozen ex-leader and wait until it says it no longer leads.
async fn thaw_ex_leader(c: &Cluster, leader: usize) -> R<()> {
    let port = c.controllers[leader].metrics_port;
    c.controllers[leader].proc.signal("CONT");
    until("the ex-leader steps down", T, || async {
        check!(
            metric(port, "berth_leader").await == Some(0.0),
            "ex-leader still says it leads"
        );
        Ok(())
    })
    .await
}

/// Scenario 7: Host-1's dockerd stops (its containers with it) and starts again: the containers
/// come back and the status recovers.
async fn dockerd_restart(c: &mut Cluster) -> R<String> {
    let id = "e2e-dock";
    let mut w = web("web", "dock", 19071);
    w["targetHost"] = json!("host-1");
    let mut s = sleeper("worker");
    s["targetHost"] = json!("host-1");
    let rev = c.put_stack(id, stack("manual", vec![w, s])).await?;
    c.wait_running(id, rev, T).await?;

    let t0 = Instant::now();
    let h1 = c.host_mut("host-1");
    h1.dockerd.stop(Duration::from_secs(30));
    h1.start_dockerd()?;
    h1.wait_docker(T).await?;
    let back = until(
        "host-1's containers running and the stack Running",
        T,
        || async {
            let ctrs = c.host("host-1").ps(&[&format!("berth.stack={id}")]).await?;
            let up = ctrs.iter().filter(|x| x.running()).count();
            check!(up == 2, "{up}/2 running on host-1: {ctrs:?}");
            let st = c.status(id).await?.ok_or("no status")?;
            check!(
                st.phase == Phase::Running && st.observed_revision == rev,
                "phase {:?}: {}",
                st.phase,
                brief_services(&st)
            );
            Ok(t0.elapsed())
        },
    )
    .await?;
    let body = c
        .host("host-2")
        .docker(&[
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "timeout 3 wget -q -O- http://10.77.0.1:19071/index.html",
        ])
        .await?;
    check!(
        body.trim() == "dock",
        "web on host-1 did not answer host-2: {body:?}"
    );
    Ok(format!(
        "both containers back and Running {:.1}s after dockerd stopped; served to host-2",
        back.as_secs_f64()
    ))
}

/// Scenario 8: Two of three etcd members stopped for a minute: no container stops, and Berth
/// converges again once etcd is back.
async fn quorum_lost(c: &mut Cluster) -> R<String> {
    let id = "e2e-quorum";
    let outage = Duration::from_secs(
        std::env::var("BERTH_E2E_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let rev = c.put_stack(id, spread_of(&["a", "b", "c"])).await?;
    c.wait_running(id, rev, T).await?;
    let before: BTreeSet<String> = c
        .all_managed()
        .await?
        .into_iter()
        .filter(Ctr::running)
        .map(|x| x.id)
        .collect();
    let pids = berth_pids(c);

    c.etcd[1].proc.kill();
    c.etcd[2].proc.kill();
    let down = Instant::now();
    let mut worst = 0;
    let mut samples = 0;
    while down.elapsed() < outage {
        if let Ok(now) = c.all_managed().await {
            let running: BTreeSet<String> =
                now.into_iter().filter(Ctr::running).map(|x| x.id).collect();
            worst = worst.max(before.difference(&running).count());
            samples += 1;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    c.etcd[1].proc.start()?;
    c.etcd[2].proc.start()?;
    let up = Instant::now();
    check!(
        worst == 0,
        "{worst} container(s) stopped while etcd had no quorum"
    );
    until("etcd answers", T, || c.revision()).await?;
    c.wait_hosts_ready(T).await?;
    c.wait_running(id, rev, T).await?;
    // The first request after the outage can still meet a member mid-election ("leader
    // changed"), as any client can: retry it, as a user would (the put is idempotent).
    let rev2 = until("the put after the outage", T, || {
        c.put_stack("e2e-quorum-after", spread_of(&["x", "y"]))
    })
    .await?;
    c.wait_running("e2e-quorum-after", rev2, T).await?;
    let recovered = up.elapsed();
    check!(
        berth_pids(c) == pids,
        "a Berth process exited during the outage: {pids:?} -> {:?}",
        berth_pids(c)
    );
    Ok(format!(
        "etcd without quorum {}s: {worst} of {} containers stopped ({samples} samples); a new stack Running {:.1}s after etcd returned",
        outage.as_secs(),
        before.len(),
        recovered.as_secs_f64()
    ))
}

/// Pids of every agent and controller, `None` for one that is not running.
fn berth_pids(c: &mut Cluster) -> Vec<Option<u32>> {
    let mut v = Vec::new();
    for h in &mut c.hosts {
        v.push(h.agent.alive().then(|| h.agent.pid()).flatten());
    }
    for x in &mut c.controllers {
        v.push(x.proc.alive().then(|| x.proc.pid()).flatten());
    }
    v
}

/// Scenario 9: An env change of a dependency replaces only it while its address stays; a change
/// of its address replaces it and then, in dependency order, its dependent.
async fn env_update(c: &mut Cluster) -> R<String> {
    let id = "e2e-upd";
    let spec = |tag: &str, port: u16| {
        stack(
            "manual",
            vec![
                json!({
                    "@type": "SoftwareApplication", "name": "db", "image": IMAGE, "targetHost": "host-1",
                    "command": busy("mkdir -p /www; echo db > /www/index.html; httpd -f -p 5432 -h /www"),
                    "environment": {"DB_TAG": tag},
                    "ports": [{"containerPort": 5432, "hostPort": port, "protocol": "tcp"}],
                    "serviceEndpoint": {"type": "host-port", "exposedPort": port, "connectionTemplate": "http://{{HOST}}:{{PORT}}/"},
                    "healthCheck": {"type": "tcp", "port": 5432, "interval": 1, "timeout": 1, "retries": 2}
                }),
                json!({
                    "@type": "SoftwareApplication", "name": "app", "image": IMAGE, "targetHost": "host-2",
                    "command": busy("sleep 100000"),
                    "softwareRequirements": [{"name": "db", "waitForHealthy": true}]
                }),
            ],
        )
    };
    let ids = |ctrs: &[Ctr]| -> R<(String, String)> {
        let find = |svc: &str| {
            ctrs.iter()
                .find(|x| x.service == svc && x.running())
                .map(|x| x.id.clone())
                .ok_or(format!("no running {svc}: {ctrs:?}"))
        };
        Ok((find("db")?, find("app")?))
    };
    let rev1 = c.put_stack(id, spec("v1", 19091)).await?;
    c.wait_running(id, rev1, T).await?;
    let (db0, app0) = ids(&c.containers(id).await?)?;

    // A: only db's env changes; its address does not.
    let rev2 = c.put_stack(id, spec("v2", 19091)).await?;
    c.wait_running(id, rev2, T).await?;
    // Host-2's agent has applied app's assignment of revision 2 once it reports it, and a
    // replaced app would carry another spec hash and container there.
    let before = report_at(c, "host-2", id, "app.1", rev1).await?;
    let after = report_at(c, "host-2", id, "app.1", rev2).await?;
    check!(
        after.spec_hash == before.spec_hash && after.container_id == before.container_id,
        "app was replaced although db's address did not change: {before:?} then {after:?}"
    );
    let (db1, app1) = ids(&c.containers(id).await?)?;
    check!(db1 != db0, "db was not replaced after its env changed");
    check!(
        app1 == app0,
        "app was replaced although db's address did not change"
    );

    // B: db's published port changes, so app's injected DB_PORT does too.
    let t0 = SystemTime::now() - Duration::from_millis(500);
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = watch_healthy(
        c.store.clone(),
        vec![("host-1".into(), id.into(), "db.1".into())],
        rev2 + 1,
        stop.clone(),
    );
    let rev3 = c.put_stack(id, spec("v2", 19092)).await?;
    let st = c.wait_running(id, rev3, Duration::from_secs(90)).await;
    stop.store(true, Ordering::Relaxed);
    let healthy = healthy.await.map_err(|e| e.to_string())?;
    st?;
    let (db2, app2) = ids(&c.containers(id).await?)?;
    check!(
        db2 != db1 && app2 != app1,
        "after the address change: db replaced {}, app replaced {}",
        db2 != db1,
        app2 != app1
    );
    let env = c.host("host-2").docker(&["exec", &app2, "env"]).await?;
    check!(
        env.lines().any(|l| l == "DB_PORT=19092"),
        "app's DB_PORT is not the new port: {env}"
    );
    let first = |v: Vec<Start>| v.into_iter().map(|s| s.at).min();
    let db_start = first(
        c.host("host-1")
            .starts_since(t0, &[&format!("berth.stack={id}"), "berth.service=db"])
            .await?,
    )
    .ok_or("no start of the new db")?;
    let app_start = first(
        c.host("host-2")
            .starts_since(t0, &[&format!("berth.stack={id}"), "berth.service=app"])
            .await?,
    )
    .ok_or("no start of the new app")?;
    let gap = secs_between(app_start, db_start);
    if gap < 0.0 {
        return Err(format!(
            "app's replacement started {:.2}s before db's replacement",
            -gap
        ));
    }
    let db_ok = healthy.get("db.1").ok_or("never saw the new db healthy")?;
    let after_healthy = secs_between(app_start, *db_ok);
    if after_healthy < -SEEN_SLACK {
        return Err(format!(
            "app's replacement started {:.2}s before the new db was healthy (waitForHealthy)",
            -after_healthy
        ));
    }
    Ok(format!(
        "env change: db replaced, app kept; address change: db then app (+{gap:.1}s, {after_healthy:.1}s after db healthy)"
    ))
}

/// A predicate on a status, for the table of bad inputs.
type StatusTest = dyn Fn(&berth::spec::StackStatus) -> bool;

/// `host`'s report of `slot` of `stack` once it reflects spec revision `rev` or later.
async fn report_at(
    c: &Cluster,
    host: &str,
    stack: &str,
    slot: &str,
    rev: i64,
) -> R<berth::report::SlotReport> {
    until(
        &format!("{host}'s report of {slot} at revision {rev}"),
        T,
        || async {
            let kv = timed(c.store.get(&keys::report(host, stack, slot)))
                .await?
                .ok_or(format!("no report of {slot}"))?;
            let r: berth::report::SlotReport =
                serde_json::from_slice(&kv.value).map_err(|e| e.to_string())?;
            check!(
                r.spec_revision >= rev,
                "{slot} reported at revision {}",
                r.spec_revision
            );
            Ok(r)
        },
    )
    .await
}

/// Scenario 10: Garbage, a 10 MB value, a cycle and an unknown target host: each gets a status
/// that says why, every other stack keeps running, and no Berth process restarts.
async fn bad_inputs(c: &mut Cluster) -> R<String> {
    let good = "e2e-good";
    let rev = c.put_stack(good, spread_of(&["a", "b"])).await?;
    c.wait_running(good, rev, T).await?;
    let before: BTreeSet<String> = c
        .containers(good)
        .await?
        .into_iter()
        .map(|x| x.id)
        .collect();
    let pids = berth_pids(c);

    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(7919) % 256) as u8)
        .collect();
    let mut huge: Value = serde_json::from_str(&spread_of(&["big"])).unwrap();
    huge["description"] = json!("x".repeat(10 * 1024 * 1024));
    let mut ghost = sleeper("lost");
    ghost["targetHost"] = json!("host-9");
    // The 10 MB value goes last, so the others are judged on their own.
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("e2e-garbage", garbage),
        ("e2e-cycle", example("invalid/cycle.json")?.into_bytes()),
        ("e2e-ghost", stack("manual", vec![ghost]).into_bytes()),
        ("e2e-huge", huge.to_string().into_bytes()),
    ];
    let mut revs = Vec::new();
    for (id, bytes) in inputs {
        revs.push((id, c.put_stack(id, bytes).await?));
    }
    let mut explained = Vec::new();
    let mut failures = Vec::new();
    for (id, rev) in &revs {
        let (what, pred): (&str, Box<StatusTest>) = match *id {
            "e2e-ghost" => (
                "Pending, naming host-9",
                Box::new(|s| {
                    s.phase == Phase::Pending
                        && (s.message.contains("host-9")
                            || s.conditions.iter().any(|x| x.message.contains("host-9")))
                }),
            ),
            "e2e-cycle" => (
                "Invalid, naming the cycle",
                Box::new(|s| {
                    s.phase == Phase::Invalid && s.problems.iter().any(|p| p.contains("->"))
                }),
            ),
            _ => (
                "Invalid, with problems",
                Box::new(|s| s.phase == Phase::Invalid && !s.problems.is_empty()),
            ),
        };
        match c
            .wait_status(id, *rev, Duration::from_secs(30), what, pred)
            .await
        {
            Ok(s) => {
                let why = s.problems.first().cloned().unwrap_or(s.message.clone());
                let why: String = why.chars().take(60).collect();
                explained.push(format!("{id}: {:?} ({why})", s.phase));
            }
            Err(e) => failures.push(e),
        }
    }
    // The controller and agents still work: the good stack is untouched, a new one runs.
    let after = c.put_stack("e2e-after-bad", spread_of(&["z"])).await?;
    if let Err(e) = c.wait_running("e2e-after-bad", after, T).await {
        failures.push(format!("a good stack put after the bad ones: {e}"));
    }
    match c.wait_running(good, rev, Duration::from_secs(10)).await {
        Ok(st) => {
            let restarts: u32 = st.services.values().map(|s| s.restarts).sum();
            if restarts != 0 {
                failures.push(format!("{good} restarted {restarts} time(s)"));
            }
        }
        Err(e) => failures.push(e),
    }
    let now: BTreeSet<String> = c
        .containers(good)
        .await?
        .into_iter()
        .map(|x| x.id)
        .collect();
    if now != before {
        failures.push(format!(
            "{good}'s containers changed: {before:?} -> {now:?}"
        ));
    }
    let pids_after = berth_pids(c);
    if pids_after != pids {
        failures.push(format!(
            "a Berth process exited: {pids:?} -> {pids_after:?}"
        ));
    }
    // Deleting the 10 MB key first lets a controller that choked on it recover for the
    // scenarios after this one.
    let _ = c.delete_stack("e2e-huge").await;
    check!(
        failures.is_empty(),
        "{} of 4 explained; failures: {}",
        explained.len(),
        failures.join(" | ")
    );
    Ok(format!(
        "4/4 explained [{}]; other stacks Running; 0 restarts",
        explained.join("; ")
    ))
}

/// Scenario 11: A stack deleted while its host is cut off: after healing, its containers there go,
/// and containers Berth does not manage on that host stay.
async fn delete_while_partitioned(c: &mut Cluster) -> R<String> {
    let id = "e2e-orph";
    let pinned = |name: &str| {
        let mut s = sleeper(name);
        s["targetHost"] = json!("host-3");
        s
    };
    let rev = c
        .put_stack(id, stack("manual", vec![pinned("a"), pinned("b")]))
        .await?;
    c.wait_running(id, rev, T).await?;
    let h3 = c.host("host-3");
    let cmd = "trap 'exit 0' TERM; sleep 100000 & wait";
    let plain = h3
        .docker(&[
            "run",
            "-d",
            "--name",
            "e2e-unmanaged",
            IMAGE,
            "sh",
            "-c",
            cmd,
        ])
        .await?;
    // Carries some berth labels, but not berth.managed: still not Berth's.
    let lookalike = h3
        .docker(&[
            "run",
            "-d",
            "--name",
            "e2e-lookalike",
            "--label",
            &format!("berth.stack={id}"),
            "--label",
            "berth.service=a",
            "--label",
            "berth.host=host-3",
            IMAGE,
            "sh",
            "-c",
            cmd,
        ])
        .await?;
    let mut started = BTreeMap::new();
    for x in [&plain, &lookalike] {
        started.insert(
            x.clone(),
            h3.inspect(x).await?["State"]["StartedAt"].clone(),
        );
    }

    h3.cut()?;
    c.delete_stack(id).await?;
    // The deletion must reach the controller while host-3 is away, and host-3 must lose its
    // registration, so its agent comes back to a world it has to list again.
    // Its assignment there becomes a tombstone: no slots, and "deleted" (issue 22: the
    // agent reads no spec, so this is how it learns the stack is gone, not moved).
    until(
        "host-3's assignment a tombstone and its registration lapsed",
        T,
        || async {
            let assigned = timed(c.store.get(&keys::assignment("host-3", id))).await?;
            let tombstone = assigned
                .and_then(|kv| serde_json::from_slice::<Assignment>(&kv.value).ok())
                .is_some_and(|a| a.is_tombstone() && a.slots.is_empty());
            let registered = timed(c.store.get(&keys::host("host-3"))).await?;
            check!(
                tombstone && registered.is_none(),
                "assignment a tombstone {tombstone}, registered {}",
                registered.is_some()
            );
            Ok(())
        },
    )
    .await?;
    let h3 = c.host("host-3");
    h3.heal()?;
    let healed = Instant::now();
    let took = until(
        "host-3's containers of the deleted stack removed",
        T,
        || async {
            let left = c
                .host("host-3")
                .ps(&["berth.managed=true", &format!("berth.stack={id}")])
                .await?;
            check!(left.is_empty(), "left on host-3: {left:?}");
            check!(c.status(id).await?.is_none(), "status still there");
            Ok(healed.elapsed())
        },
    )
    .await?;
    let mut kept = 0;
    for (x, at) in &started {
        let v = h3.inspect(x).await?;
        check!(
            v["State"]["Status"] == "running" && &v["State"]["StartedAt"] == at,
            "unmanaged container {} was touched: {}",
            v["Name"],
            v["State"]
        );
        kept += 1;
    }
    for x in [&plain, &lookalike] {
        let _ = h3.docker(&["rm", "-f", x]).await;
    }
    Ok(format!(
        "orphans removed and status gone {:.1}s after heal; {kept}/2 unmanaged containers untouched",
        took.as_secs_f64()
    ))
}

/// Scenario 12: Drain host-1: its slots move, it ends empty, and no slot is ever without a
/// running copy. Every service uses a secret: host-1's copy of it goes with its slots,
/// and the hosts they move to get theirs (issue 22).
async fn drain(c: &mut Cluster) -> R<String> {
    let id = "e2e-drain";
    const SECRET: &str = "e2e-drain-pw";
    c.etcdctl(&["put", &format!("/berth/secrets/{SECRET}"), "drain-7c1"])
        .await?;
    let mut services: Vec<Value> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| sleeper(n))
        .collect();
    services.push(web("web", "drain", 19121));
    for svc in &mut services {
        svc["environment"] = json!({"PW": format!("{{{{secret:{SECRET}}}}}")});
    }
    let rev = c.put_stack(id, stack("spread", services)).await?;
    c.wait_running(id, rev, T).await?;
    let ctrs = c.containers(id).await?;
    let slots: BTreeSet<String> = ctrs.iter().map(Ctr::slot).collect();
    let on1 = running_on(&ctrs, "host-1").len();
    check!(on1 > 0, "nothing of {id} on host-1");
    // The hosts holding a copy of the secret: exactly those running the stack.
    let holders = || async {
        let keys = c
            .etcdctl(&["get", "--prefix", "--keys-only", "/berth/hostsecrets/"])
            .await?;
        R::Ok(
            keys.lines()
                .filter(|k| k.ends_with(&format!("/{SECRET}")))
                .filter_map(|k| k.split('/').nth(3).map(str::to_owned))
                .collect::<BTreeSet<String>>(),
        )
    };
    let hosts_of =
        |ctrs: &[Ctr]| -> BTreeSet<String> { ctrs.iter().map(|x| x.host.clone()).collect() };
    check!(
        holders().await? == hosts_of(&ctrs),
        "copies on {:?}, containers on {:?}",
        holders().await?,
        hosts_of(&ctrs)
    );
    let monitor = watch_copies(c, id, slots.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t0 = Instant::now();
    c.berth(&["host", "drain", "host-1"]).await?;
    let done = until("host-1 drained", Duration::from_secs(90), || async {
        one_copy_each(&c.containers(id).await?, &slots, "host-1")?;
        let st = c.status(id).await?.ok_or("no status")?;
        check!(
            st.phase == Phase::Running
                && st
                    .services
                    .values()
                    .all(|s| s.host.as_deref() != Some("host-1")),
            "phase {:?}: {}",
            st.phase,
            brief_services(&st)
        );
        Ok(t0.elapsed())
    })
    .await;
    let uncovered = monitor.finish().await.uncovered;
    let uncordon = c.berth(&["host", "uncordon", "host-1"]).await;
    let done = done?;
    check!(
        uncovered.is_empty(),
        "slots seen without a running copy during the drain: {uncovered:?}"
    );
    uncordon?;
    let after = c.containers(id).await?;
    let copies = until("host-1's copy gone with its slots", T, || async {
        let held = holders().await?;
        check!(
            held == hosts_of(&after),
            "copies on {held:?}, containers on {:?}",
            hosts_of(&after)
        );
        Ok(held)
    })
    .await?;
    Ok(format!(
        "{on1} slot(s) moved off host-1 in {:.1}s; host-1 empty; slots without a running copy: 0; secret copies on {copies:?} only",
        done.as_secs_f64()
    ))
}

/// `replicas` of an HTTP server on container port 8080 whose page says `version`, ready once
/// Docker's health check fetches that page. No host port: two replicas share each host.
fn versioned(version: &str, replicas: u32, update: &Value) -> Value {
    json!({
        "@type": "SoftwareApplication", "name": "web", "image": IMAGE, "replicas": replicas,
        "command": busy(&format!("mkdir -p /www; echo {version} > /www/index.html; httpd -f -p 8080 -h /www")),
        "environment": {"VERSION": version},
        "update": update,
        "healthCheck": {
            "type": "command", "interval": 1, "timeout": 2, "retries": 3,
            "command": ["sh", "-c", "timeout 2 wget -q -O- http://127.0.0.1:8080/index.html"]
        }
    })
}

/// Waits until `stack` has exactly `n` containers, one per slot, each running and healthy by
/// Docker's check; they by slot.
async fn healthy_slots(c: &Cluster, stack: &str, n: usize) -> R<BTreeMap<String, Ctr>> {
    until(
        &format!("{n} slots of {stack}, each one healthy container"),
        T,
        || async {
            let ctrs = c.containers(stack).await?;
            let by_slot: BTreeMap<String, Ctr> = ctrs
                .iter()
                .filter(|x| x.running() && x.health == "healthy")
                .map(|x| (x.slot(), x.clone()))
                .collect();
            check!(
                ctrs.len() == n && by_slot.len() == n,
                "{} container(s), {} slot(s) healthy: {:?}",
                ctrs.len(),
                by_slot.len(),
                ctrs.iter()
                    .map(|x| format!("{}@{} {} {}", x.slot(), x.host, x.state, x.health))
                    .collect::<Vec<_>>()
            );
            Ok(by_slot)
        },
    )
    .await
}

/// Container starts of `stack` on every host since `t0`, by slot.
async fn starts_by_slot(
    c: &Cluster,
    stack: &str,
    t0: SystemTime,
) -> R<BTreeMap<String, BTreeSet<String>>> {
    let mut by_slot: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &c.hosts {
        for s in h
            .starts_since(t0, &[&format!("berth.stack={stack}")])
            .await?
        {
            by_slot.entry(s.slot).or_default().insert(s.id);
        }
    }
    Ok(by_slot)
}

/// Every slot ran exactly one new container since the rollout began, the one it runs now
/// (on the host it ran on before), with `VERSION=<version>`.
async fn replaced_once(
    c: &Cluster,
    stack: &str,
    t0: SystemTime,
    before: &BTreeMap<String, Ctr>,
    after: &BTreeMap<String, Ctr>,
    version: &str,
) -> R<()> {
    let starts = starts_by_slot(c, stack, t0).await?;
    for (slot, old) in before {
        let now = after.get(slot).ok_or(format!("slot {slot} is gone"))?;
        check!(
            now.host == old.host && now.id != old.id,
            "slot {slot}: {} on {} before, {} on {} after",
            old.id,
            old.host,
            now.id,
            now.host
        );
        let started = starts.get(slot).cloned().unwrap_or_default();
        check!(
            started.len() == 1 && started.contains(&now.id),
            "slot {slot} started {started:?} during the rollout; it runs {}",
            now.id
        );
        let env = c.host(&now.host).inspect(&now.id).await?["Config"]["Env"].clone();
        check!(
            env.as_array()
                .is_some_and(|e| e.iter().any(|v| v == &json!(format!("VERSION={version}")))),
            "slot {slot} ({}) does not run VERSION={version}: {env}",
            now.id
        );
    }
    Ok(())
}

/// The controller's record of the rollout of `stack`, if it has one.
async fn rollout_record(
    c: &Cluster,
    stack: &str,
) -> R<Option<berth::controller::rollout::Rollout>> {
    let Some(kv) = timed(c.store.get(&keys::rollout(stack))).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&kv.value)
        .map(Some)
        .map_err(|e| format!("the rollout record of {stack} does not parse: {e}"))
}

/// Waits for the status of `stack` at `rev` to show the rollout `state` and the phase Running.
async fn wait_rollout(
    c: &Cluster,
    stack: &str,
    rev: i64,
    state: &str,
    timeout: Duration,
) -> R<berth::spec::StackStatus> {
    c.wait_status(
        stack,
        rev,
        timeout,
        &format!("rollout {state}, phase Running"),
        |s| {
            s.phase == Phase::Running
                && s.rollout
                    .as_ref()
                    .is_some_and(|r| r.state == state && r.to_revision == rev)
        },
    )
    .await
}

/// Scenario 13: Six replicas spread 2/2/2 rolled to a new version one slot at a time,
/// stop-first (so the slot being replaced is down): sampled through each host's Docker,
/// never more than one slot is down across the cluster, and every slot ends on the new
/// version, replaced once, where it ran.
async fn rolling_update(c: &mut Cluster) -> R<String> {
    let id = "e2e-roll";
    let update = json!({"parallelism": 1, "order": "stop-first", "monitor": 1});
    let spec = |v: &str| stack("spread", vec![versioned(v, 6, &update)]);
    let rev1 = c.put_stack(id, spec("v1")).await?;
    c.wait_running(id, rev1, T).await?;
    let before = healthy_slots(c, id, 6).await?;
    let per_host: Vec<usize> = c
        .hosts
        .iter()
        .map(|h| before.values().filter(|x| x.host == h.id).count())
        .collect();
    check!(
        per_host == [2, 2, 2],
        "spread placed the 6 replicas {per_host:?}, want 2/2/2"
    );

    let monitor = watch_ready(c, id, before.keys().cloned().collect());
    let t0 = SystemTime::now();
    let started = Instant::now();
    let rev2 = c.put_stack(id, spec("v2")).await?;
    let st = wait_rollout(c, id, rev2, "Complete", Duration::from_secs(60)).await;
    let took = started.elapsed();
    let seen = monitor.finish().await;
    let st = st?;
    check!(
        seen.max_down <= 1,
        "{} slots down at once with parallelism 1: {:?}",
        seen.max_down,
        seen.worst
    );
    // The bound means something only if the sampler can see a stop-first replacement.
    check!(
        seen.max_down == 1,
        "no sample of {} saw a slot down, though stop-first takes each one down",
        seen.samples
    );
    let r = st.rollout.as_ref().ok_or("no rollout in the status")?;
    check!(
        (r.from_revision, r.updated, r.total, r.failures) == (rev1, 6, 6, 0),
        "rollout {r:?}, want from {rev1}, 6 of 6 updated, 0 failures"
    );
    let after = healthy_slots(c, id, 6).await?;
    replaced_once(c, id, t0, &before, &after, "v2").await?;
    Ok(format!(
        "6 slots 2/2/2, parallelism 1 stop-first: max down {} ({} of {} samples with one down); Complete in {:.1}s, each slot replaced once",
        seen.max_down,
        seen.with_down,
        seen.samples,
        took.as_secs_f64()
    ))
}

/// Scenario 14: A version that exits at once, two slots at a time, one replica per host, is
/// rolled back: the status says RolledBack, every slot runs the very container it ran before
/// (start-first: it never stopped, and no slot was ever down), no slot past the first batch
/// tried the bad version, and the key still holds it.
async fn crash_rolled_back(c: &mut Cluster) -> R<String> {
    let id = "e2e-rollback";
    let update = json!({"parallelism": 2, "monitor": 1, "deadline": 20});
    let good = stack("spread", vec![versioned("v1", 3, &update)]);
    let mut crashing = versioned("v2", 3, &update);
    crashing["command"] = json!(["sh", "-c", "exit 1"]);
    let bad = stack("spread", vec![crashing]);
    let rev1 = c.put_stack(id, good).await?;
    c.wait_running(id, rev1, T).await?;
    let before = healthy_slots(c, id, 3).await?;
    let hosts: BTreeSet<&str> = before.values().map(|x| x.host.as_str()).collect();
    check!(
        hosts.len() == 3,
        "spread put the 3 replicas on {hosts:?}, want one per host"
    );
    let mut started_at = BTreeMap::new();
    for x in before.values() {
        started_at.insert(
            x.id.clone(),
            c.host(&x.host).inspect(&x.id).await?["State"]["StartedAt"].clone(),
        );
    }

    let monitor = watch_ready(c, id, before.keys().cloned().collect());
    let t0 = SystemTime::now();
    let started = Instant::now();
    let rev2 = c.put_stack(id, bad.clone()).await?;
    let st = wait_rollout(c, id, rev2, "RolledBack", Duration::from_secs(40)).await;
    let took = started.elapsed();
    // The crashed replacement goes; only the old containers stay.
    let after = match &st {
        Ok(_) => healthy_slots(c, id, 3).await,
        Err(e) => Err(e.clone()),
    };
    let seen = monitor.finish().await;
    let (st, after) = (st?, after?);
    for (slot, old) in &before {
        let now = after.get(slot).ok_or(format!("slot {slot} is gone"))?;
        check!(
            now.id == old.id,
            "slot {slot} runs {} on {}, not its old container {} on {}",
            now.id,
            now.host,
            old.id,
            old.host
        );
        let v = c.host(&now.host).inspect(&now.id).await?;
        check!(
            Some(&v["State"]["StartedAt"]) == started_at.get(&now.id) && v["RestartCount"] == 0,
            "slot {slot}'s old container was restarted: {}",
            v["State"]
        );
    }
    check!(
        seen.max_down == 0,
        "{} slot(s) down at once during a start-first rollout and rollback: {:?}",
        seen.max_down,
        seen.worst
    );
    let tried: Vec<String> = starts_by_slot(c, id, t0)
        .await?
        .into_iter()
        .filter(|(_, ids)| ids.iter().any(|x| !started_at.contains_key(x)))
        .map(|(slot, _)| slot)
        .collect();
    check!(
        (1..=2).contains(&tried.len()),
        "the bad version started in slots {tried:?}, want the first batch only (parallelism 2, no failure tolerated)"
    );
    check!(
        st.message.contains(&format!(
            "runs revision {rev1} because revision {rev2} failed"
        )),
        "status message: {}",
        st.message
    );
    let kv = timed(c.store.get(&keys::stack(id)))
        .await?
        .ok_or("the stack key is gone")?;
    check!(
        kv.mod_revision == rev2 && kv.value == bad.as_bytes(),
        "the stack key was rewritten: mod_revision {} (put at {rev2})",
        kv.mod_revision
    );
    Ok(format!(
        "parallelism 2: bad version tried in {} and RolledBack in {:.1}s; 3/3 slots on their old containers, never restarted; max down 0 ({} samples); key unchanged",
        tried.join(","),
        took.as_secs_f64(),
        seen.samples
    ))
}

/// Scenario 15: The leading controller SIGSTOPped once the first batch is handed out: the
/// standby takes the rollout over from its record and finishes it, never more than
/// `parallelism` slots down, each slot replaced once; thawed, the ex-leader rewrites
/// neither the rollout's record nor its assignments.
async fn rollout_leader_frozen(c: &mut Cluster) -> R<String> {
    let id = "e2e-roll-ha";
    let update = json!({"parallelism": 2, "order": "stop-first", "monitor": 1});
    let spec = |v: &str| stack("spread", vec![versioned(v, 6, &update)]);
    let rev1 = c.put_stack(id, spec("v1")).await?;
    c.wait_running(id, rev1, T).await?;
    let before = healthy_slots(c, id, 6).await?;
    let leader = c.leader(Duration::from_secs(10)).await?;
    let other = 1 - leader;
    let (lport, oport) = (
        c.controllers[leader].metrics_port,
        c.controllers[other].metrics_port,
    );

    let monitor = watch_ready(c, id, before.keys().cloned().collect());
    let t0 = SystemTime::now();
    let rev2 = c.put_stack(id, spec("v2")).await?;
    let (first, handed) = until(
        "the first batch handed out",
        Duration::from_secs(30),
        || async {
            let r = rollout_record(c, id).await?.ok_or("no rollout record")?;
            check!(
                r.to_revision == rev2,
                "a record of revision {}",
                r.to_revision
            );
            let web = r.services.get("web").ok_or("no service in the record")?;
            let handed: Vec<u32> = web
                .slots
                .iter()
                .filter(|(_, p)| p.assigned_at_ms.is_some())
                .map(|(n, _)| *n)
                .collect();
            check!(!handed.is_empty(), "no slot handed its new container yet");
            Ok((r, handed))
        },
    )
    .await?;
    let frozen = Instant::now();
    let failover = freeze_leader(c, leader).await?;
    let st = wait_rollout(c, id, rev2, "Complete", Duration::from_secs(60)).await?;
    let finished = frozen.elapsed();
    let after = healthy_slots(c, id, 6).await?;

    // Thaw the ex-leader, and replay what was written to this stack's rollout record and
    // assignments from then until it has stepped down and a little past.
    let watched: Vec<String> = std::iter::once(keys::rollout(id))
        .chain(c.hosts.iter().map(|h| keys::assignment(&h.id, id)))
        .collect();
    let mut at_thaw = BTreeMap::new();
    for k in &watched {
        if let Some(kv) = timed(c.store.get(k)).await? {
            at_thaw.insert(
                format!("/berth/{k}"),
                String::from_utf8_lossy(&kv.value).into_owned(),
            );
        }
    }
    let thaw_rev = c.revision().await?;
    thaw_ex_leader(c, leader).await?;
    let rewritten: Vec<String> = c
        .history("/berth/", thaw_rev + 1)
        .await?
        .into_iter()
        .filter(|(k, v)| at_thaw.get(k).is_some_and(|was| was != v))
        .map(|(k, _)| k)
        .collect();
    let seen = monitor.finish().await;

    check!(
        seen.max_down <= 2,
        "{} slots down at once with parallelism 2: {:?}",
        seen.max_down,
        seen.worst
    );
    check!(
        seen.max_down >= 1,
        "no sample of {} saw a slot down, though stop-first takes each one down",
        seen.samples
    );
    check!(
        handed.len() <= 2,
        "the first batch was {handed:?}, more than parallelism 2"
    );
    let last = rollout_record(c, id)
        .await?
        .ok_or("the rollout record is gone")?;
    check!(
        (last.started_at_ms, last.from_revision) == (first.started_at_ms, rev1),
        "the standby started a rollout of its own (started {} from {}), not the one under way (started {} from {rev1})",
        last.started_at_ms,
        last.from_revision,
        first.started_at_ms
    );
    let r = st.rollout.as_ref().ok_or("no rollout in the status")?;
    check!(
        (r.updated, r.total, r.failures) == (6, 6, 0),
        "rollout {r:?}, want 6 of 6 updated, 0 failures"
    );
    replaced_once(c, id, t0, &before, &after, "v2").await?;
    check!(
        rewritten.is_empty(),
        "written after the thaw with other values: {rewritten:?}"
    );
    check!(
        metric(oport, "berth_leader").await == Some(1.0),
        "the standby lost the lead after the thaw"
    );
    let fenced = metric(lport, "berth_fenced_writes_total")
        .await
        .unwrap_or(0.0);
    Ok(format!(
        "parallelism 2: leader frozen with replicas {handed:?} in flight; standby led after {:.1}s and finished {:.1}s after the freeze; max down {} ({} samples); after the thaw 0 rewrites ({fenced} fenced writes in all)",
        failover.as_secs_f64(),
        finished.as_secs_f64(),
        seen.max_down,
        seen.samples
    ))
}

/// An `http`-checked web server (see [`web`]) pinned to the agentless host, publishing
/// its port on `host_port`, or publishing nothing.
fn pinned_web(name: &str, body: &str, host_port: Option<u16>) -> Value {
    let mut v = web(name, body, host_port.unwrap_or(0));
    if host_port.is_none() {
        if let Some(o) = v.as_object_mut() {
            o.remove("ports");
        }
    }
    v["targetHost"] = json!(AGENTLESS_ID);
    v
}

/// How long the agentless host's services are watched for a restart (issue 18).
const WATCH_WINDOW: Duration = Duration::from_secs(30);

/// Scenario 16: The agentless host, its engine on TCP with TLS and driven by the leading
/// controller from the root namespace, where the containers' bridge addresses are out of
/// reach: an `http`-checked service publishing its port and one publishing nothing both
/// turn healthy, and then for 30 s stay `Running` with no restart.
async fn agentless_health(c: &mut Cluster) -> R<String> {
    let id = "e2e-remote";
    c.add_agentless().await?;
    let t_put = Instant::now();
    let rev = c
        .put_stack(
            id,
            stack(
                "spread",
                vec![
                    pinned_web("web", "remote", Some(19161)),
                    pinned_web("inner", "inside", None),
                ],
            ),
        )
        .await?;
    c.wait_status(id, rev, T, "Running, both services healthy", |s| {
        s.phase == Phase::Running
            && ["web", "inner"].iter().all(|n| {
                s.services.get(*n).is_some_and(|x| {
                    x.health == "healthy" && x.host.as_deref() == Some(AGENTLESS_ID)
                })
            })
    })
    .await?;
    let healthy_after = t_put.elapsed();
    let h4 = &c.agentless;
    let before: BTreeSet<String> = h4
        .ps(&[&format!("berth.stack={id}")])
        .await?
        .into_iter()
        .map(|x| x.id)
        .collect();
    check!(
        before.len() == 2,
        "{} containers of {id} on {AGENTLESS_ID}, want 2",
        before.len()
    );

    // The window: every second the status must still say Running with both healthy; at the
    // end the engine's own events must show no container start since it opened.
    let since = SystemTime::now();
    let opened = Instant::now();
    let mut samples = 0;
    while opened.elapsed() < WATCH_WINDOW {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = c.status(id).await?.ok_or("no status")?;
        let bad: Vec<String> = st
            .services
            .iter()
            .filter(|(_, x)| x.state != "running" || x.health != "healthy" || x.restarts > 0)
            .map(|(n, x)| format!("{n} {}/{} restarts {}", x.state, x.health, x.restarts))
            .collect();
        check!(
            st.phase == Phase::Running && bad.is_empty(),
            "{:.0}s into the window: phase {:?}, {}",
            opened.elapsed().as_secs_f64(),
            st.phase,
            bad.join(", ")
        );
        samples += 1;
    }
    let starts = h4
        .starts_since(since, &[&format!("berth.stack={id}")])
        .await?;
    check!(
        starts.is_empty(),
        "{} container start(s) on {AGENTLESS_ID} during the {}s window: {:?}",
        starts.len(),
        WATCH_WINDOW.as_secs(),
        starts.iter().map(|s| &s.slot).collect::<Vec<_>>()
    );
    let after: BTreeSet<String> = h4
        .ps(&[&format!("berth.stack={id}")])
        .await?
        .into_iter()
        .filter(Ctr::running)
        .map(|x| x.id)
        .collect();
    check!(
        after == before,
        "the containers changed during the window: {before:?} -> {after:?}"
    );
    c.berth(&["host", "remove", AGENTLESS_ID]).await?;
    Ok(format!(
        "over TLS, web (port published) and inner (none) healthy {:.1}s after the put; {}s watched ({samples} samples): always Running, 0 restarts, 0 container starts",
        healthy_after.as_secs_f64(),
        WATCH_WINDOW.as_secs()
    ))
}

/// Scenario 17: `berth host remove` of the agentless host: its slots move to the other
/// hosts, each replacement started before its old copy goes, the one pinned to it by
/// `targetHost` is left without a host, and its engine keeps no Berth container: exactly
/// one copy of each slot, as the command reports.
async fn remove_agentless(c: &mut Cluster) -> R<String> {
    let id = "e2e-remove";
    c.add_agentless().await?;
    let mut services: Vec<Value> = ["a", "b", "c", "d", "e", "f", "g"]
        .iter()
        .map(|n| sleeper(n))
        .collect();
    let mut pinned = sleeper("pinned");
    pinned["targetHost"] = json!(AGENTLESS_ID);
    services.push(pinned);
    let rev = c.put_stack(id, stack("spread", services)).await?;
    c.wait_running(id, rev, T).await?;
    let ctrs = c.containers(id).await?;
    let on4: BTreeSet<String> = running_on(&ctrs, AGENTLESS_ID)
        .iter()
        .map(|x| x.slot())
        .collect();
    check!(
        on4.contains("pinned.1") && on4.len() >= 2,
        "{AGENTLESS_ID} runs {on4:?}: want pinned.1 and at least one more"
    );
    let slots: BTreeSet<String> = ctrs
        .iter()
        .map(Ctr::slot)
        .filter(|s| s != "pinned.1")
        .collect();
    let monitor = watch_copies_on(c.engines(), id, slots.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let t0 = Instant::now();
    let out = c.berth(&["host", "remove", AGENTLESS_ID]).await;
    let took = t0.elapsed();
    let settled = until(
        "one copy of each slot, none on the removed host",
        T,
        || async { one_copy_each(&c.containers(id).await?, &slots, AGENTLESS_ID) },
    )
    .await;
    let seen = monitor.finish().await;
    let out = out?;
    settled?;
    let left = c.agentless.ps(&["berth.managed=true"]).await?;
    check!(
        left.is_empty(),
        "Berth containers left on {AGENTLESS_ID}: {:?}",
        left.iter().map(|x| &x.name).collect::<Vec<_>>()
    );
    check!(
        seen.uncovered.is_empty(),
        "slots seen without a running copy during the removal: {:?}",
        seen.uncovered
    );
    let moved = on4.len() - 1;
    for want in [
        format!("moved {moved} slot"),
        format!("removed {} container", on4.len()),
        "1 pinned slot".to_owned(),
    ] {
        check!(
            out.contains(&want),
            "berth host remove printed no {want:?}: {out}"
        );
    }
    let st = c.status(id).await?.ok_or("no status")?;
    let p = st
        .services
        .get("pinned")
        .ok_or("no pinned service in the status")?;
    check!(
        p.host.is_none()
            && st.phase == Phase::Pending
            && st
                .message
                .contains(&format!("target host {AGENTLESS_ID} is")),
        "pinned: host {:?}, state {}; phase {:?}: {}",
        p.host,
        p.state,
        st.phase,
        st.message
    );
    check!(
        timed(c.store.get(&keys::agentless(AGENTLESS_ID)))
            .await?
            .is_none()
            && !c.registered().await?.iter().any(|h| h == AGENTLESS_ID),
        "{AGENTLESS_ID} is still known to etcd"
    );
    Ok(format!(
        "host remove took {:.1}s: {moved} slot(s) moved, {} container(s) removed, pinned.1 has no host; every other slot 1 copy, none uncovered",
        took.as_secs_f64(),
        on4.len()
    ))
}

/// The tag scenario 18 pulls and moves, in the harness's private registry.
const PIN_TAG: &str = "team/pin:1";

/// Two replicas of a sleeper on `image`, pulled before every create (`pullPolicy:
/// always`), rolled one slot at a time 5 s apart; a revision changes `version` (its
/// `VERSION`), and `pin` is `deployment.pinDigests`.
fn pin_stack(image: &str, pin: bool, version: &str) -> String {
    json!({
        "@context": "https://schema.org", "@type": "ItemList", "name": "e2e",
        "deployment": {"mode": "multi-host", "placementStrategy": "spread", "pinDigests": pin},
        "itemListElement": [{
            "@type": "SoftwareApplication", "name": "web", "image": image, "replicas": 2,
            "command": busy("sleep 100000"),
            "environment": {"VERSION": version},
            "pullPolicy": "always",
            "update": {"parallelism": 1, "delay": 5, "monitor": 1}
        }]
    })
    .to_string()
}

/// One slot as the controller assigns it and its agent reports it.
#[derive(Debug, Clone)]
struct SlotSeen {
    host: String,
    replica: u32,
    /// The assignment's spec revision.
    rev: i64,
    /// The image reference assigned (`repo@sha256:...` once pinned).
    image: String,
    /// The `VERSION` of the container assigned: a slot whose batch has not come keeps the
    /// last revision's container, and so its `VERSION`.
    version: String,
    /// Its agent's report, if it speaks of the container assigned now.
    report: Option<SlotReport>,
}

impl SlotSeen {
    /// Running what is assigned at `rev`, with the digest its host knows.
    fn runs_at(&self, rev: i64) -> bool {
        self.rev == rev
            && self.report.as_ref().is_some_and(|r| {
                r.spec_revision == rev && r.state == SlotState::Running && r.image_digest.is_some()
            })
    }

    fn digest(&self) -> &str {
        self.report
            .as_ref()
            .and_then(|r| r.image_digest.as_deref())
            .unwrap_or("-")
    }

    fn image_id(&self) -> &str {
        self.report
            .as_ref()
            .and_then(|r| r.image_id.as_deref())
            .unwrap_or("-")
    }
}

/// The slots of `stack` on the agents' hosts, by replica.
async fn slots_seen(c: &Cluster, stack: &str) -> R<Vec<SlotSeen>> {
    let mut out = Vec::new();
    for h in &c.hosts {
        let Some(kv) = timed(c.store.get(&keys::assignment(&h.id, stack))).await? else {
            continue;
        };
        let a: Assignment = serde_json::from_slice(&kv.value)
            .map_err(|e| format!("the assignment of {stack} to {} does not parse: {e}", h.id))?;
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            let hash = slot.container.hash(&a.network.name);
            let report = match timed(c.store.get(&keys::report(&h.id, stack, &slot.key()))).await? {
                Some(kv) => Some(
                    serde_json::from_slice::<SlotReport>(&kv.value)
                        .map_err(|e| format!("a report of {stack} does not parse: {e}"))?,
                ),
                None => None,
            };
            out.push(SlotSeen {
                host: h.id.clone(),
                replica: slot.replica,
                rev: a.spec_revision,
                image: slot.container.image.clone(),
                version: slot
                    .container
                    .env
                    .get("VERSION")
                    .cloned()
                    .unwrap_or_default(),
                report: report.filter(|r| r.spec_hash == hash),
            });
        }
    }
    out.sort_by_key(|s| s.replica);
    Ok(out)
}

fn brief_slots(seen: &[SlotSeen]) -> String {
    let each: Vec<String> = seen
        .iter()
        .map(|s| {
            format!(
                "web.{}@{} rev {} V{} {} -> {}",
                s.replica,
                s.host,
                s.rev,
                s.version,
                s.image,
                s.report.as_ref().map_or_else(
                    || "no report of it".to_owned(),
                    |r| format!(
                        "{} at {} digest {}",
                        r.state.as_str(),
                        r.spec_revision,
                        s.digest()
                    )
                )
            )
        })
        .collect();
    each.join("; ")
}

/// Waits until both replicas of `stack` run what they are assigned at `rev`; by replica.
async fn running_assigned(c: &Cluster, stack: &str, rev: i64) -> R<Vec<SlotSeen>> {
    until(
        &format!("{stack}: both replicas run what they are assigned at {rev}"),
        T,
        || async {
            let seen = slots_seen(c, stack).await?;
            check!(
                seen.len() == 2 && seen.iter().all(|s| s.runs_at(rev)),
                "{}",
                brief_slots(&seen)
            );
            Ok(seen)
        },
    )
    .await
}

fn images_consistent(s: &StackStatus) -> Option<(ConditionStatus, String)> {
    s.conditions
        .iter()
        .find(|x| x.type_ == "ImagesConsistent")
        .map(|x| (x.status, x.reason.clone()))
}

/// `cat /version` in the container `seen`'s report names, on its host's engine.
async fn marker(c: &Cluster, seen: &SlotSeen) -> R<String> {
    let id = seen
        .report
        .as_ref()
        .and_then(|r| r.container_id.clone())
        .ok_or(format!("web.{} has no container", seen.replica))?;
    c.host(&seen.host)
        .docker(&["exec", &id, "cat", "/version"])
        .await
}

/// Scenario 18: `deployment.pinDigests` across two hosts, against the harness's private
/// registry (TLS, htpasswd; the login in etcd). Two stacks of the same shape, one pinned
/// and one not, run `team/pin:1` with `pullPolicy: always`; the tag moves to v2 before
/// revision 2, whose rollout is held (`berth rollout pause`) once each stack's first slot
/// has it, and moves again, to v3, before the rollout goes on. The pinned stack's second
/// slot is assigned the digest its first slot pulled and runs v2: one image, no drift. The
/// other pulls the moved tag and runs v3 beside v2: `imageDrift` and `ImagesConsistent`
/// False. (The tag moving before revision 2 also shows a pin is per revision: v2, not the
/// v1 that revision 1 was pinned to.)
async fn pinned_digests(c: &mut Cluster) -> R<String> {
    let (pinned, free) = ("e2e-pin", "e2e-nopin");
    let reg = c.start_registry().await?;
    let (addr, user, password) = (reg.addr.clone(), reg.user.clone(), reg.password.clone());
    let image = format!("{addr}/{PIN_TAG}");
    // Every version built up front: moving the tag mid-rollout is then one push.
    let mut builds = BTreeMap::new();
    for v in ["v1", "v2", "v3"] {
        builds.insert(v, reg.build(v).await?);
    }
    let d1 = reg.push(&builds["v1"], PIN_TAG).await?;
    c.berth_stdin(
        &[
            "registry",
            "login",
            &addr,
            "--username",
            &user,
            "--password-stdin",
        ],
        &password,
    )
    .await?;

    let t0 = Instant::now();
    let stacks = [(pinned, true), (free, false)];
    let mut rev1 = BTreeMap::new();
    for (id, pin) in stacks {
        rev1.insert(id, c.put_stack(id, pin_stack(&image, pin, "1")).await?);
    }
    for (id, _) in stacks {
        c.wait_running(id, rev1[id], T).await?;
        running_assigned(c, id, rev1[id]).await?;
    }
    // Two more controller passes, in which a pin of revision 1 would have been assigned
    // (the replica that reported last re-created on `repo@digest`), and then settled.
    c.wait_full_pass(T).await?;
    for (id, _) in stacks {
        let seen = running_assigned(c, id, rev1[id]).await?;
        check!(
            seen[0].host != seen[1].host,
            "{id}: both replicas on {}, want two hosts",
            seen[0].host
        );
        check!(
            seen.iter().all(|s| s.digest() == d1),
            "{id} at revision 1: want both on {d1}: {}",
            brief_slots(&seen)
        );
    }

    crate::say!(
        "scenario 18: revision 1 runs v1 on both stacks ({:.1}s)",
        t0.elapsed().as_secs_f64()
    );

    // The tag moves before revision 2: with `always`, revision 2 brings v2.
    let d2 = c
        .registry
        .as_ref()
        .ok_or("no registry")?
        .push(&builds["v2"], PIN_TAG)
        .await?;
    let t_rev2 = Instant::now();
    let mut rev2 = BTreeMap::new();
    for (id, pin) in stacks {
        rev2.insert(id, c.put_stack(id, pin_stack(&image, pin, "2")).await?);
    }
    // Hold each rollout once its first slot is handed revision 2 (`delay` leaves seconds
    // for that), so that the tag moves while the second slot waits, whatever the timing.
    for (id, _) in stacks {
        until(
            &format!("{id}: a slot handed revision {}", rev2[id]),
            T,
            || async {
                let seen = slots_seen(c, id).await?;
                check!(
                    seen.iter().any(|s| s.version == "2"),
                    "{}",
                    brief_slots(&seen)
                );
                Ok(())
            },
        )
        .await?;
        c.berth(&["rollout", "pause", id]).await?;
    }
    let mut first = BTreeMap::new();
    for (id, _) in stacks {
        until(&format!("{id}: rollout held"), T, || async {
            let r = rollout_record(c, id).await?.ok_or("no rollout record")?;
            check!(
                r.held && r.to_revision == rev2[id],
                "rollout to {} held {}",
                r.to_revision,
                r.held
            );
            Ok(())
        })
        .await?;
        // Held: no further batch starts. The first slot runs revision 2, pulled at v2.
        let slot = until(
            &format!("{id}: the first slot of revision {} runs", rev2[id]),
            T,
            || async {
                let seen = slots_seen(c, id).await?;
                let handed: Vec<&SlotSeen> = seen.iter().filter(|s| s.version == "2").collect();
                check!(
                    handed.len() == 1 && handed[0].runs_at(rev2[id]),
                    "{}",
                    brief_slots(&seen)
                );
                Ok(handed[0].clone())
            },
        )
        .await?;
        check!(
            slot.digest() == d2,
            "{id}: the first slot of revision 2 pulled {}, want the tag's {d2}",
            slot.digest()
        );
        first.insert(id, slot);
    }

    crate::say!(
        "scenario 18: both rollouts held after their first slot, on v2 ({:.1}s); the tag moves to v3",
        t0.elapsed().as_secs_f64()
    );

    // The tag moves mid-rollout; then the rollouts go on.
    let d3 = c
        .registry
        .as_ref()
        .ok_or("no registry")?
        .push(&builds["v3"], PIN_TAG)
        .await?;
    for (id, _) in stacks {
        c.berth(&["rollout", "resume", id]).await?;
    }
    let mut done = BTreeMap::new();
    for (id, _) in stacks {
        wait_rollout(c, id, rev2[id], "Complete", T).await?;
        let seen = running_assigned(c, id, rev2[id]).await?;
        let second = seen
            .iter()
            .find(|s| s.replica != first[id].replica)
            .cloned()
            .ok_or(format!("{id}: one replica: {}", brief_slots(&seen)))?;
        done.insert(id, (seen, second));
    }
    let rolled = t_rev2.elapsed();

    // Pinned: the second slot was assigned the first one's digest, and runs its bits.
    let (seen, second) = &done[pinned];
    check!(
        second.image == d2 && seen.iter().all(|s| s.digest() == d2),
        "{pinned}: want both replicas on {d2} (the second assigned it), the tag now at {d3}: {}",
        brief_slots(seen)
    );
    check!(
        seen[0].image_id() == seen[1].image_id(),
        "{pinned}: image IDs {} and {}",
        seen[0].image_id(),
        seen[1].image_id()
    );
    let m = marker(c, second).await?;
    check!(
        m == "v2",
        "{pinned}: web.{} on {} runs /version {m:?}, want v2",
        second.replica,
        second.host
    );
    let st = c
        .wait_status(pinned, rev2[pinned], T, "one image, no drift", |s| {
            s.services.get("web").is_some_and(|w| !w.image_drift)
                && images_consistent(s).is_some_and(|(x, _)| x == ConditionStatus::True)
        })
        .await?;
    check!(st.phase == Phase::Running, "{pinned}: phase {:?}", st.phase);

    // Not pinned: the second slot pulled the moved tag, and the status says so.
    let (seen, second) = &done[free];
    check!(
        second.image == image && second.digest() == d3 && first[free].digest() == d2,
        "{free}: want the first replica on {d2} and the second on the moved tag's {d3}: {}",
        brief_slots(seen)
    );
    check!(
        seen[0].image_id() != seen[1].image_id(),
        "{free}: both replicas on image {}",
        seen[0].image_id()
    );
    let m_free = marker(c, second).await?;
    check!(
        m_free == "v3",
        "{free}: web.{} on {} runs /version {m_free:?}, want v3",
        second.replica,
        second.host
    );
    c.wait_status(
        free,
        rev2[free],
        T,
        "imageDrift, ImagesConsistent False",
        |s| {
            s.services.get("web").is_some_and(|w| w.image_drift)
                && images_consistent(s)
                    .is_some_and(|(x, r)| x == ConditionStatus::False && r == "ImageDrift")
        },
    )
    .await?;
    let short = |d: &str| {
        d.rsplit(':')
            .next()
            .unwrap_or(d)
            .chars()
            .take(12)
            .collect::<String>()
    };
    Ok(format!(
        "tag moved v2 -> v3 while each rollout was held after its first slot: pinned, web.{}@{} assigned @{} and runs v2 (no drift); unpinned, web.{}@{} runs v3 ({}) beside v2: imageDrift, ImagesConsistent False; revision 2 rolled in {:.1}s, {:.1}s in all",
        done[pinned].1.replica,
        done[pinned].1.host,
        short(&d2),
        done[free].1.replica,
        done[free].1.host,
        short(&d3),
        rolled.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ))
}

/// Scenario 19: `berth logs` merges the lines of three replicas on three hosts; with host-3
/// cut off, `berth logs -f` names it on stderr and the other two keep streaming.
async fn logs_across_hosts(c: &mut Cluster) -> R<String> {
    let id = "e2e-logs";
    let script = "trap 'exit 0' TERM; while true; do echo tick-$(cat /proc/sys/kernel/random/uuid); sleep 1; done & wait";
    let ticker = json!({"@type": "SoftwareApplication", "name": "tick", "image": IMAGE,
        "replicas": 3, "command": ["sh", "-c", script]});
    let rev = c.put_stack(id, stack("spread", vec![ticker])).await?;
    c.wait_running(id, rev, T).await?;
    let hosts: BTreeSet<String> = c
        .containers(id)
        .await?
        .into_iter()
        .map(|x| x.host)
        .collect();
    check!(hosts.len() == 3, "not one replica per host: {hosts:?}");
    let prefixed = |out: &str, host: &str| {
        out.lines()
            .filter(|l| {
                l.split(" | ")
                    .next()
                    .is_some_and(|p| p.trim_end().ends_with(&format!("@{host}")))
            })
            .filter(|l| l.contains("tick-"))
            .count()
    };
    let all = until("berth logs shows every host's lines", T, || async {
        let out = c.berth(&["logs", id]).await?;
        let missing: Vec<&String> = hosts.iter().filter(|h| prefixed(&out, h) == 0).collect();
        check!(missing.is_empty(), "no lines from {missing:?}");
        Ok(out)
    })
    .await?;
    let lines = all.lines().count();

    c.host("host-3").cut()?;
    let cut = Instant::now();
    let mut follow = tokio::process::Command::new(&c.berth)
        .args(["logs", id, "-f", "--tail", "1"])
        .env("BERTH_ETCD_ENDPOINTS", c.endpoints.join(","))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = tokio::io::BufReader::new(follow.stdout.take().ok_or("no stdout")?).lines();
    let mut err = tokio::io::BufReader::new(follow.stderr.take().ok_or("no stderr")?).lines();
    use tokio::io::AsyncBufReadExt;
    let mut ticks: BTreeMap<String, usize> = BTreeMap::new();
    let mut named = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Each host's first line is its --tail; two more from host-1 and host-2 each are
    // lines that streamed while host-3 was away.
    while named.is_none()
        || ["host-1", "host-2"]
            .iter()
            .any(|h| ticks.get(*h).copied().unwrap_or(0) < 3)
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = follow.kill().await;
            c.host("host-3").heal()?;
            return Err(format!(
                "berth logs -f with host-3 cut: ticks {ticks:?}, host-3 named: {named:?}"
            ));
        }
        tokio::select! {
            line = out.next_line() => {
                let Ok(Some(line)) = line else { break };
                for h in ["host-1", "host-2", "host-3"] {
                    if prefixed(&line, h) > 0 {
                        *ticks.entry(h.to_owned()).or_default() += 1;
                    }
                }
            }
            line = err.next_line() => {
                if let Ok(Some(line)) = line {
                    if line.starts_with("host host-3 unreachable") {
                        named = Some(cut.elapsed());
                    }
                }
            }
            _ = tokio::time::sleep(left) => {}
        }
    }
    let _ = follow.kill().await;
    c.host("host-3").heal()?;
    c.wait_hosts_ready(T).await?;
    let named = named.ok_or("host-3 never named")?;
    check!(
        ticks.get("host-1").copied().unwrap_or(0) >= 3
            && ticks.get("host-2").copied().unwrap_or(0) >= 3,
        "the other hosts did not stream: {ticks:?}"
    );
    Ok(format!(
        "{lines} lines from 3 hosts; host-3 cut: named on stderr after {:.1}s while host-1/2 streamed {}/{} lines",
        named.as_secs_f64(),
        ticks.get("host-1").copied().unwrap_or(0),
        ticks.get("host-2").copied().unwrap_or(0)
    ))
}
