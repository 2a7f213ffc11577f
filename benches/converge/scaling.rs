//! How convergence and teardown times grow with the number of services: one table
//! across the sizes (section 2).

use crate::sizes::{Round, SizeResult};
use crate::support::stats;

pub(crate) fn report_scaling(sizes: &[SizeResult], compose: bool) {
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
