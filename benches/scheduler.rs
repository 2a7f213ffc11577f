//! `cargo bench --bench scheduler`: placements per second of the pure planner, in
//! process, for large clusters. Prints one line per size for the mixed workload, then the
//! large size once per strategy, all in the same run: absolute numbers vary from machine
//! to machine, so compare within a run (each strategy against the mix, and the fresh
//! placement against the re-plan of the same converged cluster).
//!
//! `BERTH_BENCH_STRATEGY=datacenter` (or `auto`, `spread`) gives every stack that one
//! strategy instead of the mix, and runs only that. Each line ends with a checksum of the
//! whole result, so a change meant only to be faster can show it places exactly as before.

use std::collections::BTreeMap;
use std::time::Instant;

use berth::scheduler::plan::{plan, HostView, Liveness, Options, Placement};
use berth::spec::{parse_stack, HostRegistration, Stack};

fn hosts(n: usize) -> Vec<HostRegistration> {
    (0..n)
        .map(|i| HostRegistration {
            id: format!("host-{i:05}"),
            address: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            datacenter: Some(format!("dc{}", i % 4)),
            labels: if i % 3 == 0 {
                BTreeMap::from([("disk".to_owned(), "ssd".to_owned())])
            } else {
                BTreeMap::new()
            },
            cpus: 16.0,
            memory_mb: 65536,
            ..Default::default()
        })
        .collect()
}

/// `n_stacks` stacks of 10 services each, a mix of strategies (or `only` one), ports and
/// constraints.
fn stacks(n_stacks: usize, only: Option<&str>) -> Vec<(String, Stack)> {
    (0..n_stacks)
        .map(|s| {
            let strategy = only.unwrap_or(["auto", "spread", "datacenter"][s % 3]);
            let items: Vec<serde_json::Value> = (0..10)
                .map(|i| {
                    let mut v = serde_json::json!({"name": format!("svc{i}"), "image": "i", "resources": {"cpus": 0.1, "memoryMb": 64}});
                    if i == 0 {
                        v["ports"] = serde_json::json!([{"containerPort": 80, "hostPort": 20000 + (s % 1000)}]);
                    }
                    if i == 1 {
                        v["hostConstraints"] = serde_json::json!({"requiredLabels": {"disk": "ssd"}});
                    }
                    v
                })
                .collect();
            let json = serde_json::json!({"deployment": {"mode": "multi-host", "placementStrategy": strategy}, "itemListElement": items});
            (format!("stack-{s:05}"), parse_stack(json.to_string().as_bytes()).expect("valid"))
        })
        .collect()
}

/// FNV-1a of the result's debug text: placements, unschedulable reasons, moves, storm.
/// Stable across runs and toolchains, unlike `DefaultHasher`.
fn checksum(p: &Placement) -> u64 {
    format!("{p:?}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn run(label: &str, n_hosts: usize, n_slots: usize, only: Option<&str>) {
    let regs = hosts(n_hosts);
    let views: Vec<HostView> = regs
        .iter()
        .map(|reg| HostView {
            reg,
            liveness: Liveness::Ready,
            cordoned: false,
            draining: false,
            removing: false,
        })
        .collect();
    let st = stacks(n_slots / 10, only);
    let refs: Vec<(&str, &Stack)> = st.iter().map(|(i, s)| (i.as_str(), s)).collect();
    let opts = Options {
        max_unavailable_fraction: 0.5,
        ..Options::default()
    };

    let t = Instant::now();
    let p = plan(&refs, &views, &BTreeMap::new(), &opts);
    let fresh = t.elapsed().as_secs_f64();
    let placed = p.hosts.len();

    // Re-planning a converged cluster (every slot sticky): the controller's common case.
    let t = Instant::now();
    let again = plan(&refs, &views, &p.hosts, &opts);
    let sticky = t.elapsed().as_secs_f64();
    assert_eq!(again.hosts, p.hosts);

    println!(
        "{label}: {placed} slots on {n_hosts} hosts: fresh placement {:.3}s = {:.0} placements/s; re-plan of a converged cluster {:.3}s = {:.0} slots/s; ratio fresh/re-plan {:.1}x; unschedulable {}; checksum {:016x}",
        fresh,
        placed as f64 / fresh,
        sticky,
        placed as f64 / sticky,
        fresh / sticky,
        p.unschedulable.len(),
        checksum(&p)
    );
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, unoptimised: only measure when
    // cargo bench asked for it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scheduler benchmark skipped: run it with `make bench`");
        return;
    }
    let only = std::env::var("BERTH_BENCH_STRATEGY").ok();
    let label = |size: &str| match &only {
        Some(s) => format!("{size} ({s})"),
        None => size.to_owned(),
    };
    run(&label("small"), 1_000, 10_000, only.as_deref());
    run(&label("large"), 5_000, 100_000, only.as_deref());
    if only.is_none() {
        for strategy in ["auto", "spread", "datacenter"] {
            run(
                &format!("large ({strategy})"),
                5_000,
                100_000,
                Some(strategy),
            );
        }
    }
}
