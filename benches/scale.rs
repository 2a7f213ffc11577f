//! `cargo bench --bench scale` (part of `make bench`): Berth's control plane at hundreds
//! and thousands of hosts on this one machine. A real etcd and the real `berth controller`
//! (a child process, so its CPU and peak memory are its own, read from /proc) against N
//! simulated agents in this process ([`berth::agent::simulated`]): each registers its
//! host under its own lease, watches only `assignments/<host>/` and its own reports, and
//! runs the agent's planner, report fold and compare-and-swap report writes, against a
//! **test double** of Docker in which containers start at once in memory. Simulated
//! agents share one etcd connection per group of [`GROUP`]; a real deployment has one per
//! agent (N connections and HTTP/2 streams on etcd instead of N/GROUP: the same leases,
//! watches and requests, more sockets).
//!
//! For each size: every host gets 10 slots (N stacks of 10 services, spread), and the run
//! measures the time from the puts to every slot placed (its assignment written, seen on
//! a watch) and to every stack `Running` (its status), controller CPU over that, etcd
//! requests by type (etcd's own `grpc_server_msg_received_total`), database size and
//! watchers; then a one-service change on the converged cluster (time until the simulated
//! agent of its host has it, and the wake-ups it caused on every other host); then
//! [`idle`] seconds of nothing (etcd requests per host per minute beyond lease
//! keep-alives, and controller writes). The controller's peak RSS is its high-water mark
//! over the whole run: the converge, the changes, and the passes over every stack that the
//! resync brings while idle.
//!
//! Knobs (environment): `BERTH_SCALE_HOSTS=100,1000,5000`, `BERTH_SCALE_IDLE_SECS=30`,
//! `BERTH_SCALE_CHANGES=5`.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use berth::agent::simulated::{self, SimulatedAgent};
use berth::embedded::EmbeddedEtcd;
use berth::spec::HostRegistration;
use berth::store::Store;
use etcd_client::{Client, EventType, WatchOptions};
use futures::StreamExt;
use support::{err, Etcd, Metrics, Proc, Res, PREFIX};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Simulated agents per etcd connection.
const GROUP: usize = 100;
const SLOTS_PER_HOST: usize = 10;
const LEASE_TTL: Duration = Duration::from_secs(10);
/// The agent's default resync.
const RESYNC: Duration = Duration::from_secs(30);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(900);

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn idle() -> u64 {
    knob("BERTH_SCALE_IDLE_SECS", 30)
}

/// What one size measured.
#[derive(Debug, Default, Clone)]
struct Row {
    hosts: usize,
    slots: usize,
    placed_s: f64,
    running_s: f64,
    /// Median time for a one-service change to reach its host's agent.
    change_s: f64,
    /// Wake-ups, over all the changes, of agents of hosts that hold no slot of the
    /// changed stack: must be 0.
    other_wakes: u64,
    /// Wake-ups of agents of hosts holding another slot of the changed stack (its
    /// assignment there carries the stack's new revision).
    same_stack_wakes: u64,
    ctl_cpu_s: f64,
    /// The controller's high-water mark over the whole run (VmHWM).
    ctl_hwm_mb: f64,
    /// etcd requests (messages received) from the puts to all Running, by method.
    requests: BTreeMap<String, f64>,
    writes_per_slot: f64,
    /// Key writes from the puts to all Running, by key kind (etcd's history), the
    /// bench's own stack puts left out.
    writes: BTreeMap<String, (u64, u64)>,
    db_mb: f64,
    watchers: f64,
    /// Idle: etcd requests per host per minute other than lease keep-alives.
    idle_per_host_min: f64,
    /// Idle: writes the controller made.
    idle_ctl_writes: f64,
    /// Key kind (first path segment) -> (keys, bytes of key and value), converged.
    keys: BTreeMap<String, (u64, u64)>,
}

/// etcd's own counters: requests by method, database size, watchers.
struct EtcdStats {
    requests: BTreeMap<String, f64>,
    db_bytes: f64,
    watchers: f64,
}

async fn etcd_stats(url: &str) -> Res<EtcdStats> {
    let addr = url.trim_start_matches("http://");
    let m = Metrics::parse(support::http_get(addr, "/metrics").await?.1);
    Ok(EtcdStats {
        requests: m.by("grpc_server_msg_received_total", "grpc_method"),
        db_bytes: m.sum("etcd_mvcc_db_total_size_in_bytes", |_| true),
        watchers: m.sum("etcd_debugging_mvcc_watcher_total", |_| true),
    })
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// What each kind of key costs once converged: count and bytes, by first path segment.
async fn key_sizes(store: &Store) -> Res<BTreeMap<String, (u64, u64)>> {
    let (kvs, _) = store.list("").await.map_err(|e| berth::error_chain(&e))?;
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for kv in kvs {
        let kind = kv.key.split('/').next().unwrap_or_default().to_owned();
        let e = out.entry(kind).or_default();
        e.0 += 1;
        e.1 += (kv.key.len() + kv.value.len()) as u64;
    }
    Ok(out)
}

fn host_id(i: usize) -> String {
    format!("h{i:05}")
}

/// Stack `s`: 10 services, spread, small reservations so every host fits its 10.
fn stack(s: usize, version: &str) -> String {
    let items: Vec<serde_json::Value> = (0..SLOTS_PER_HOST)
        .map(|i| {
            serde_json::json!({"name": format!("svc{i}"), "image": "berth-test/busybox:latest",
                "command": ["sh", "-c", "sleep 100000"],
                "environment": {"VERSION": version, "STACK": s.to_string()},
                "resources": {"cpus": 0.1, "memoryMb": 64}})
        })
        .collect();
    serde_json::json!({"deployment": {"mode": "multi-host", "placementStrategy": "spread"},
        "itemListElement": items})
    .to_string()
}

/// Slots placed, counted from a watch on `assignments/`: key -> (host, its slots' services).
type Placed = BTreeMap<String, (String, Vec<String>)>;

async fn watch_assignments(url: &str) -> Res<watch::Receiver<Placed>> {
    let mut c = Client::connect([url], None).await.map_err(err)?;
    let prefix = format!("{PREFIX}assignments/");
    let (tx, rx) = watch::channel(Placed::new());
    let mut stream = c
        .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
        .await
        .map_err(err)?;
    let decode = move |key: &str, value: &[u8]| -> Option<(String, (String, Vec<String>))> {
        let rest = key.strip_prefix(&prefix)?;
        let (host, _) = rest.split_once('/')?;
        let a: berth::assignment::Assignment = serde_json::from_slice(value).ok()?;
        let services = a.slots.iter().map(|s| s.service.clone()).collect();
        Some((key.to_owned(), (host.to_owned(), services)))
    };
    tokio::spawn(async move {
        while let Ok(Some(resp)) = stream.message().await {
            tx.send_modify(|m| {
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Ok(k) = kv.key_str() else { continue };
                    match ev.event_type() {
                        EventType::Put => {
                            if let Some((k, v)) = decode(k, kv.value()) {
                                m.insert(k, v);
                            }
                        }
                        EventType::Delete => {
                            m.remove(k);
                        }
                    }
                }
            });
        }
    });
    Ok(rx)
}

async fn run_size(hosts: usize) -> Res<Row> {
    let dir = tempfile::tempdir().map_err(err)?;
    let embedded = EmbeddedEtcd::start_with(
        &dir.path().join("etcd"),
        None,
        &["--quota-backend-bytes=8589934592"],
    )
    .await
    .map_err(|e| berth::error_chain(&e))?;
    let url = embedded.client_url.clone();
    let etcd = Etcd::connect(&url).await?;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let args: Vec<String> = [
        "controller",
        "--etcd-endpoints",
        &url,
        "--controller-id",
        "scale",
        "--host-down-grace",
        "300s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let controller = Proc::spawn(&bin, &args, &dir.path().join("controller.log"));
    controller.wait_ready(Duration::from_secs(30)).await?;

    // The simulated agents, GROUP to a connection.
    let cancel = CancellationToken::new();
    let mut agents: Vec<SimulatedAgent> = Vec::with_capacity(hosts);
    let mut store = None;
    for i in 0..hosts {
        if i % GROUP == 0 {
            store = Some(
                Store::connect(std::slice::from_ref(&url), "/berth")
                    .await
                    .map_err(|e| berth::error_chain(&e))?,
            );
        }
        let reg = HostRegistration {
            id: host_id(i),
            address: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            cpus: 16.0,
            memory_mb: 65536,
            agent_version: Some(berth::VERSION.to_owned()),
            ..Default::default()
        };
        agents.push(simulated::spawn(
            store.clone().expect("a store"),
            reg,
            LEASE_TTL,
            RESYNC,
            cancel.clone(),
        ));
    }
    let index: BTreeMap<String, usize> = (0..hosts).map(|i| (host_id(i), i)).collect();
    let counter = Store::connect(std::slice::from_ref(&url), "/berth")
        .await
        .map_err(|e| berth::error_chain(&e))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (kvs, _) = counter
            .list("hosts/")
            .await
            .map_err(|e| berth::error_chain(&e))?;
        let first_passes = agents.iter().filter(|a| *a.passes.borrow() > 0).count();
        if kvs.len() == hosts && first_passes == hosts {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {hosts} hosts registered, {first_passes} agents synced",
                kvs.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let placed = watch_assignments(&url).await?;

    // Converge: N stacks of 10, put all at once.
    let before = etcd_stats(&url).await?;
    let cpu0 = controller.usage().cpu_secs;
    let rev0 = etcd.revision().await?;
    let t0 = Instant::now();
    futures::stream::iter(0..hosts)
        .map(|s| {
            let etcd = etcd.clone();
            async move { etcd.put(&format!("stacks/s{s:05}"), stack(s, "v1")).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<Res<i64>>>()
        .await
        .into_iter()
        .collect::<Res<Vec<i64>>>()?;
    let slots = hosts * SLOTS_PER_HOST;
    let mut rx = placed.clone();
    tokio::time::timeout(
        CONVERGE_TIMEOUT,
        rx.wait_for(|m| m.values().map(|(_, s)| s.len()).sum::<usize>() >= slots),
    )
    .await
    .map_err(|_| "not every slot placed in time".to_owned())?
    .map_err(err)?;
    let placed_s = t0.elapsed().as_secs_f64();
    let mut statuses = etcd.statuses();
    tokio::time::timeout(
        CONVERGE_TIMEOUT,
        statuses.wait_for(|m| m.values().filter(|(_, phase)| phase == "Running").count() >= hosts),
    )
    .await
    .map_err(|_| {
        let running = etcd
            .statuses()
            .borrow()
            .values()
            .filter(|(_, p)| p == "Running")
            .count();
        format!("{running} of {hosts} stacks Running in time")
    })?
    .map_err(err)?;
    let running_s = t0.elapsed().as_secs_f64();
    let after = etcd_stats(&url).await?;
    let usage = controller.usage();
    let keys = key_sizes(&counter).await?;
    let requests = delta(&after.requests, &before.requests);
    let rev1 = etcd.revision().await?;
    let mut writes = etcd.replay(rev0, rev1).await?.0;
    writes.remove("stacks");
    let written: u64 = writes.values().map(|(n, _)| n).sum();

    // One-service changes on the converged cluster.
    let changes: usize = knob("BERTH_SCALE_CHANGES", 5);
    let mut times = Vec::new();
    let mut other_wakes = 0;
    let mut same_stack_wakes = 0;
    for k in 0..changes {
        let s = k * hosts / changes.max(1);
        let id = format!("s{s:05}");
        let host = placed
            .borrow()
            .iter()
            .find(|(key, (_, services))| {
                key.ends_with(&format!("/{id}")) && services.iter().any(|x| x == "svc0")
            })
            .map(|(_, (h, _))| h.clone())
            .ok_or(format!("no host for {id}.svc0"))?;
        let target = index[&host];
        // Hosts holding another slot of the same stack get its new spec revision too.
        let same_stack: Vec<usize> = placed
            .borrow()
            .iter()
            .filter(|(key, _)| key.ends_with(&format!("/{id}")))
            .map(|(_, (h, _))| index[h])
            .filter(|i| *i != target)
            .collect();
        let wakes_before: Vec<u64> = agents
            .iter()
            .map(|a| a.wakes.load(Ordering::Relaxed))
            .collect();
        let mut changed: serde_json::Value = serde_json::from_str(&stack(s, "v1")).map_err(err)?;
        changed["itemListElement"][0]["environment"]["VERSION"] = format!("v{}", k + 2).into();
        let t = Instant::now();
        let rev = etcd
            .put(&format!("stacks/{id}"), changed.to_string())
            .await?;
        let mut seen = agents[target].revisions.clone();
        tokio::time::timeout(
            Duration::from_secs(60),
            seen.wait_for(|r| r.get(&id).is_some_and(|v| *v >= rev)),
        )
        .await
        .map_err(|_| format!("{host} never saw the change of {id}"))?
        .map_err(err)?;
        times.push(t.elapsed().as_secs_f64());
        // Let the change settle (status, reports) before counting who else it woke.
        let mut st = etcd.statuses();
        let _ = tokio::time::timeout(
            Duration::from_secs(30),
            st.wait_for(|m| m.get(&id).is_some_and(|(r, p)| *r >= rev && p == "Running")),
        )
        .await;
        for (i, a) in agents.iter().enumerate().filter(|(i, _)| *i != target) {
            let woken = a.wakes.load(Ordering::Relaxed) - wakes_before[i];
            if same_stack.contains(&i) {
                same_stack_wakes += woken;
            } else {
                other_wakes += woken;
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let change_s = times.get(times.len() / 2).copied().unwrap_or(0.0);

    // Idle.
    let idle_before = etcd_stats(&url).await?;
    let ctl_before = controller.scrape().await.etcd_writes();
    tokio::time::sleep(Duration::from_secs(idle())).await;
    let idle_after = etcd_stats(&url).await?;
    let ctl_after = controller.scrape().await.etcd_writes();
    let idle_requests = delta(&idle_after.requests, &idle_before.requests);
    let beyond: f64 = idle_requests
        .iter()
        .filter(|(m, _)| m.as_str() != "LeaseKeepAlive")
        .map(|(_, v)| v)
        .sum();

    // The high-water mark only rises: read last, it covers every phase.
    let peak = controller.usage();
    cancel.cancel();
    let row = Row {
        hosts,
        slots,
        placed_s,
        running_s,
        change_s,
        other_wakes,
        same_stack_wakes,
        ctl_cpu_s: usage.cpu_secs - cpu0,
        ctl_hwm_mb: peak.hwm_kb as f64 / 1024.0,
        writes_per_slot: written as f64 / slots as f64,
        writes,
        requests,
        db_mb: after.db_bytes / 1e6,
        watchers: after.watchers,
        idle_per_host_min: beyond / hosts as f64 / (idle() as f64 / 60.0),
        idle_ctl_writes: ctl_after - ctl_before,
        keys,
    };
    drop(controller);
    drop(embedded);
    Ok(row)
}

fn report(rows: &[Row]) {
    println!("\n| hosts | slots | all placed | all Running | controller CPU | peak RSS | one-service change | hosts without the stack woken | same-stack hosts woken | etcd writes / slot | etcd DB | watchers | idle requests / host / min | idle controller writes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.1} s | {:.1} s | {:.1} s | {:.0} MB | {:.3} s | {} | {} | {:.2} | {:.0} MB | {:.0} | {:.2} | {:.0} |",
            r.hosts,
            r.slots,
            r.placed_s,
            r.running_s,
            r.ctl_cpu_s,
            r.ctl_hwm_mb,
            r.change_s,
            r.other_wakes,
            r.same_stack_wakes,
            r.writes_per_slot,
            r.db_mb,
            r.watchers,
            r.idle_per_host_min,
            r.idle_ctl_writes
        );
    }
    println!("\netcd requests from the puts to all Running, by method:");
    for r in rows {
        let total: f64 = r.requests.values().sum();
        let parts: Vec<String> = r
            .requests
            .iter()
            .map(|(m, v)| format!("{m} {v:.0}"))
            .collect();
        println!(
            "- {} hosts: {total:.0} in all ({})",
            r.hosts,
            parts.join(", ")
        );
    }
    println!("\nKey writes from the puts to all Running, by kind (the stack puts left out):");
    for r in rows {
        let parts: Vec<String> = r
            .writes
            .iter()
            .map(|(k, (n, _))| format!("{k} {n} ({:.2}/slot)", *n as f64 / r.slots as f64))
            .collect();
        println!("- {} hosts: {}", r.hosts, parts.join(", "));
    }
    println!("\nKeys once converged (count, mean bytes of key and value):");
    for r in rows {
        let parts: Vec<String> = r
            .keys
            .iter()
            .map(|(k, (n, b))| format!("{k} {n} x {:.0} B", *b as f64 / (*n).max(1) as f64))
            .collect();
        println!("- {} hosts: {}", r.hosts, parts.join(", "));
    }
    if let (Some(a), Some(b)) = (
        rows.iter().find(|r| r.hosts == 100),
        rows.iter().find(|r| r.hosts == 1000),
    ) {
        println!("\n1,000 against 100 hosts (10x the slots), this run:");
        println!(
            "- all placed: {:.1}x (target <= 12x)",
            b.placed_s / a.placed_s
        );
        println!(
            "- all Running: {:.1}x (target <= 12x)",
            b.running_s / a.running_s
        );
        println!(
            "- controller CPU: {:.1}x (target <= 12x)",
            b.ctl_cpu_s / a.ctl_cpu_s
        );
        println!(
            "- one-service change: {:.1}x (target <= 2x)",
            b.change_s / a.change_s
        );
        println!(
            "- controller peak RSS at 1,000 hosts: {:.0} MB (target < 150 MB)",
            b.ctl_hwm_mb
        );
        println!(
            "- all Running at 1,000 hosts: {:.1} s (target < 60 s)",
            b.running_s
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs bench targets too, unoptimised: only measure when
    // cargo bench asked for it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale benchmark skipped: run it with `make bench`");
        return;
    }
    let sizes: Vec<usize> = std::env::var("BERTH_SCALE_HOSTS")
        .unwrap_or_else(|_| "100,1000,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("scale: {n} hosts x {SLOTS_PER_HOST} slots ...");
        match run_size(n).await {
            Ok(r) => {
                eprintln!("scale: {r:?}");
                rows.push(r);
            }
            Err(e) => eprintln!("scale: {n} hosts FAILED: {e}"),
        }
    }
    report(&rows);
}
