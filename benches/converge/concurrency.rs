//! Raw Docker creating the same containers at several concurrency limits (run only when
//! asked for).

use std::collections::BTreeMap;

use bollard::Docker;

use crate::raw::{raw_down, raw_up};
use crate::support::{stats, Res};
use crate::workload::settle;

/// Raw Docker at several concurrency limits, rounds interleaved: does the engine on this
/// machine create containers faster when fewer calls run at once?
pub(crate) async fn concurrency_sweep(
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

pub(crate) fn report_sweep(n: usize, sweep: &BTreeMap<usize, Vec<f64>>) {
    println!("\n### Raw Docker: create+start of {n} containers at several concurrency limits (seconds)\n");
    println!("| at most at once | median | min | max | vs all at once |");
    println!("|---|---|---|---|---|");
    let all = sweep.get(&n).map(|v| stats(v).0).unwrap_or(f64::NAN);
    for (limit, v) in sweep {
        let (m, lo, hi) = stats(v);
        println!("| {limit} | {m:.2} | {lo:.2} | {hi:.2} | {:.2}x |", m / all);
    }
}
