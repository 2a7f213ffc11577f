//! Berth across real hosts on one machine: three network namespaces, each with its own
//! Docker engine and agent (host-3's runs from Berth's own image, as a container), a fourth whose engine is driven over TCP with TLS by the
//! controller (an agentless host), a 3-member etcd and two controllers; hosts are killed,
//! cut off, healed and removed, and stacks rolled out (one from a private registry with
//! TLS), while nineteen scenarios check what must hold (issues 6, 15, 16, 17 and 18). Needs
//! root.
//!
//! `make e2e` runs it alone; `make test` runs it with everything else. Environment:
//! - `BERTH_E2E=skip` skips the suite (for machines without root or Docker);
//! - `BERTH_E2E_ONLY=3,4` runs only those scenarios;
//! - `BERTH_E2E_OUTAGE_SECS` shortens scenario 8's etcd outage (default 60).
//!
//! Daemon logs are kept in `target/tmp/e2e-logs/` after the run.

mod harness;
mod scenarios;

use std::time::{Duration, Instant};

use futures::FutureExt;

use harness::{leftovers, Cluster};

/// Wall time the suite may take, cluster setup and teardown included (issue 6: < 20 min).
const BUDGET: Duration = Duration::from_secs(17 * 60);

struct Outcome {
    n: u32,
    title: &'static str,
    pass: bool,
    secs: f64,
    figure: String,
}

#[test]
fn berth_holds_its_invariants_across_three_hosts_under_faults() {
    if std::env::var("BERTH_E2E").as_deref() == Ok("skip") {
        say!("BERTH_E2E=skip: the multi-host suite is skipped");
        return;
    }
    let only: Option<Vec<u32>> = std::env::var("BERTH_E2E_ONLY")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let outcomes = rt.block_on(async {
        let mut cluster = match Cluster::start().await {
            Ok(c) => c,
            Err(e) => panic!("e2e cluster did not start: {e}"),
        };
        let mut outcomes = Vec::new();
        for s in scenarios::ALL {
            if only.as_ref().is_some_and(|o| !o.contains(&s.n)) {
                continue;
            }
            // The whole suite stays under its budget even if every scenario hangs.
            let left = BUDGET.saturating_sub(started.elapsed());
            if left < Duration::from_secs(60) {
                say!(
                    "scenario {}: not run, the suite's time budget is spent",
                    s.n
                );
                outcomes.push(Outcome {
                    n: s.n,
                    title: s.title,
                    pass: false,
                    secs: 0.0,
                    figure: format!("not run: {BUDGET:?} budget spent"),
                });
                continue;
            }
            let limit = s.limit.min(left - Duration::from_secs(45));
            say!("scenario {}: {}", s.n, s.title);
            let t0 = Instant::now();
            let run = std::panic::AssertUnwindSafe(scenarios::run(s.n, &mut cluster));
            let result = match tokio::time::timeout(limit, run.catch_unwind()).await {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => Err(format!(
                    "panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
                Err(_) => Err(format!("did not finish within {limit:?}")),
            };
            let secs = t0.elapsed().as_secs_f64();
            let stacks: Vec<String> = s.stacks.iter().map(|x| x.to_string()).collect();
            let notes = cluster.reset(&stacks).await;
            let (pass, mut figure) = match result {
                Ok(f) => (true, f),
                Err(e) => (false, format!("FAILED: {e}")),
            };
            if !notes.is_empty() {
                figure.push_str(&format!(" [cleanup: {}]", notes.join("; ")));
            }
            say!(
                "scenario {} {} in {secs:.1}s: {figure}",
                s.n,
                if pass { "passed" } else { "FAILED" }
            );
            if !pass {
                for p in cluster
                    .controllers
                    .iter()
                    .map(|c| &c.proc)
                    .chain(cluster.hosts.iter().map(|h| &h.agent))
                {
                    say!("log tail:\n{}", p.log_tail(8));
                }
            }
            outcomes.push(Outcome {
                n: s.n,
                title: s.title,
                pass,
                secs,
                figure,
            });
        }
        drop(cluster);
        outcomes
    });
    drop(rt);
    let left = leftovers();
    summary(&outcomes, started.elapsed());
    assert!(left.is_empty(), "the suite left behind: {left:?}");
    let failed: Vec<u32> = outcomes.iter().filter(|o| !o.pass).map(|o| o.n).collect();
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}

fn summary(outcomes: &[Outcome], total: Duration) {
    let mut out =
        String::from("\nscenario                               | result | time   | figure\n");
    out.push_str("---------------------------------------|--------|--------|-------\n");
    for o in outcomes {
        out.push_str(&format!(
            "{:>2} {:<35} | {:<6} | {:>5.1}s | {}\n",
            o.n,
            o.title,
            if o.pass { "pass" } else { "FAIL" },
            o.secs,
            o.figure
        ));
    }
    out.push_str(&format!(
        "{} passed, {} failed; total wall time {:.0}s\n",
        outcomes.iter().filter(|o| o.pass).count(),
        outcomes.iter().filter(|o| !o.pass).count(),
        total.as_secs_f64()
    ));
    say!("{out}");
}
