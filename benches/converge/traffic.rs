//! etcd and Docker traffic per converged container, by size and phase: one table from
//! the load each size's rounds summed (section 6).

use std::collections::BTreeMap;

use crate::sizes::SizeResult;

pub(crate) fn report_load(sizes: &[SizeResult]) {
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
