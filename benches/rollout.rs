//! `cargo bench --bench rollout` (part of `make bench`): a rolling update of one service
//! of 10 replicas by Berth and by Docker Swarm, on this machine's engine, in one run: the
//! time from the write to every replica on the new version (a good update), the time from
//! a bad update to every replica back on the old one, and the most replicas unavailable
//! at any moment of either.
//!
//! Both roll the same container with the same health check and the same rules
//! (parallelism 2, monitor 2 s, start-first, no delay, roll back on the first failure).
//! Swarm runs as a single-node swarm on the local engine, created at the start and left
//! at the end by a guard, whatever happens; an engine already in a swarm is refused. Both
//! are followed the same way: `docker ps` every 100 ms from the write on, until every
//! slot runs the version it should end on and the system says its rollout is over
//! (Berth's status, Swarm's `UpdateStatus`). The two take turns within each round, in a
//! rotating order.
//!
//! Knobs (environment): `BERTH_BENCH_ROLLOUT_ROUNDS=3`, `BERTH_BENCH_ROLLOUT_MONITOR=2`
//! (seconds, both systems), `BERTH_BENCH_KEEP_LOGS=1` (keep the Berth processes' logs).
//!
//! # Layout
//!
//! - `workload.rs`: the service, its versions and its rules, as a Berth stack and as
//!   `docker service` flags;
//! - `fleet.rs`: the containers as Docker lists them, and following a rollout by them;
//! - `berth.rs`, `swarm.rs`: one rollout by each system (and the swarm's guard);
//! - `measure.rs`: what one rollout measured; `report.rs`: the tables and the targets;
//! - `support/`: the private etcd and the Berth processes, shared with `converge`.

// Shared with the convergence bench, which uses all of it.
#[allow(dead_code)]
mod support;

#[path = "rollout/berth.rs"]
mod berth;
#[path = "rollout/fleet.rs"]
mod fleet;
#[path = "rollout/measure.rs"]
mod measure;
#[path = "rollout/report.rs"]
mod report;
#[path = "rollout/swarm.rs"]
mod swarm;
#[path = "rollout/workload.rs"]
mod workload;

use std::time::{Duration, Instant};

use crate::berth::BerthStack;
use bollard::Docker;
use measure::{Kind, Measured, System};
use report::{report, report_one, Results};
use support::{docker, err, measuring, Cluster, Res, Sweep, IMAGE};
use swarm::{Swarm, SwarmService, NAME_PREFIX};
use workload::{Rules, Version};

struct Config {
    rounds: usize,
    rules: Rules,
}

impl Config {
    fn from_env() -> Config {
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        Config {
            rounds: num("BERTH_BENCH_ROLLOUT_ROUNDS", 3).max(1) as usize,
            rules: Rules {
                monitor_secs: num("BERTH_BENCH_ROLLOUT_MONITOR", 2),
            },
        }
    }
}

/// The pause between two measurements, so that one's tail (a failed task's restart, a
/// late removal) cannot land in the next.
const PAUSE: Duration = Duration::from_secs(3);

/// A good update to `v{n}`, then a bad one, which must come back to `v{n}`.
async fn turn(
    d: &Docker,
    system: System,
    berth: &BerthStack<'_>,
    swarm: &SwarmService,
    n: usize,
) -> Res<[Measured; 2]> {
    let (from, good, bad) = (Version::good(n - 1), Version::good(n), Version::bad(n));
    let roll = |kind, to: &Version, back_to: &Version| {
        let (to, back_to) = (to.clone(), back_to.clone());
        async move {
            match system {
                System::Berth => berth.roll(d, kind, &to, &back_to).await,
                System::Swarm => swarm.roll(d, kind, &to, &back_to).await,
            }
        }
    };
    let g = roll(Kind::Good, &good, &from).await?;
    tokio::time::sleep(PAUSE).await;
    let b = roll(Kind::Bad, &bad, &good).await?;
    tokio::time::sleep(PAUSE).await;
    Ok([g, b])
}

async fn run(cfg: &Config, c: &Cluster) -> Res<()> {
    let d = docker().await?;
    if d.inspect_image(IMAGE).await.is_err() {
        return Err(format!(
            "{IMAGE} is not on this engine: `scripts/setup.sh --bench` builds it"
        ));
    }
    let version = d.version().await.map_err(err)?;
    println!("## Berth against Docker Swarm: rolling updates\n");
    println!(
        "Docker {} ({}), {} CPUs; single-node swarm on the same engine; the Berth processes are `{}`.",
        version.version.unwrap_or_default(),
        version.kernel_version.unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env!("CARGO_BIN_EXE_berth")
    );
    let started = Instant::now();
    let load_before = load_average();
    let run_id = std::process::id() % 100_000;
    let berth = BerthStack::new(c, &format!("bench-rollout-berth-{run_id}"), cfg.rules);
    eprintln!("rollout: deploying v1 on both");
    berth.deploy(&d, &Version::good(1)).await?;
    let swarm = SwarmService::create(
        &d,
        &format!("{NAME_PREFIX}{run_id}"),
        &Version::good(1),
        cfg.rules,
    )
    .await?;
    tokio::time::sleep(PAUSE).await;
    let mut results = Results::default();
    for round in 1..=cfg.rounds {
        eprintln!("rollout: round {round} of {}", cfg.rounds);
        let order = if round % 2 == 1 {
            [System::Berth, System::Swarm]
        } else {
            [System::Swarm, System::Berth]
        };
        for system in order {
            let [good, bad] = turn(&d, system, &berth, &swarm, round + 1).await?;
            for (kind, m) in [(Kind::Good, good), (Kind::Bad, bad)] {
                report_one(round, system, kind, &m);
                results.0.entry((system, kind)).or_default().push(m);
            }
        }
    }
    berth.remove().await?;
    report(&results, cfg.rules, cfg.rounds);
    println!(
        "\nThis benchmark took {:.0} s. Load average at the start {load_before}, at the end {}.",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}

/// The 1, 5 and 15 minute load averages: the machine may be busy with other work.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Ctrl-C or SIGTERM: end the run through the guards rather than die inside it.
async fn interrupted() -> String {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted".to_owned(),
        _ = term.recv() => "terminated".to_owned(),
    }
}

fn main() {
    if !measuring("rollout") {
        return;
    }
    let cfg = Config::from_env();
    // Berth's containers and networks; the swarm has its own guard.
    let sweep = Sweep::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = rt.block_on(async {
        let c = Cluster::start().await?;
        // Declared after the cluster, so it is dropped (the swarm left) before it.
        let swarm = Swarm::init()?;
        let r = tokio::select! {
            r = run(&cfg, &c) => r,
            why = interrupted() => Err(why),
        };
        drop(swarm);
        c.finish(r)
    });
    if let Err(e) = outcome {
        eprintln!("rollout benchmark failed: {e}");
        drop(sweep);
        std::process::exit(1);
    }
}
