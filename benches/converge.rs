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
//!
//! # Layout
//!
//! This file reads the knobs and runs the sections in order. Each file of
//! `benches/converge/` measures or reports one thing (a bench is a crate of its own,
//! hence the `#[path]`s):
//! - `workload.rs`: the services every section runs, their names and host ports;
//! - `events.rs`: Docker's event stream read by name;
//! - `berth.rs`, `raw.rs`, `compose.rs`: one convergence and teardown by each system;
//! - `load.rs`: what a Berth phase cost beyond its time (etcd, Docker calls, passes, CPU);
//! - `sizes.rs`: the rounds at each size and their report; `scaling.rs` and `traffic.rs`:
//!   the tables across sizes;
//! - `concurrency.rs`, `reaction.rs`, `idle.rs`: the other sections, each with its report;
//! - `report.rs`: the targets and the summary against them;
//! - `support/`: the private etcd, the Berth processes, their /metrics, Docker's events.

mod support;

#[path = "converge/berth.rs"]
mod berth;
#[path = "converge/compose.rs"]
mod compose;
#[path = "converge/concurrency.rs"]
mod concurrency;
#[path = "converge/events.rs"]
mod events;
#[path = "converge/idle.rs"]
mod idle;
#[path = "converge/load.rs"]
mod load;
#[path = "converge/raw.rs"]
mod raw;
#[path = "converge/reaction.rs"]
mod reaction;
#[path = "converge/report.rs"]
mod report;
#[path = "converge/scaling.rs"]
mod scaling;
#[path = "converge/sizes.rs"]
mod sizes;
#[path = "converge/traffic.rs"]
mod traffic;
#[path = "converge/workload.rs"]
mod workload;

use std::time::Instant;

use compose::{compose_available, compose_version, write_compose};
use concurrency::{concurrency_sweep, report_sweep};
use idle::{idle, report_idle};
use reaction::{reaction, report_reaction};
use report::Summary;
use scaling::report_scaling;
use sizes::{converge_size, report_size};
use support::{docker, err, measuring, Cluster, Res, Sweep};
use traffic::report_load;

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
    let mut sum = Summary::default();
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
    c.finish(outcome)?;
    sum.print();
    println!(
        "\nScheduler placements/s: see `cargo bench --bench scheduler` (target >= 100,000/s). This benchmark took {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() {
    if !measuring("converge") {
        return;
    }
    let cfg = Config::from_env();
    let _sweep = Sweep::start();
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
