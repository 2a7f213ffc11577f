//! Convergence and teardown of `n` services by Berth, raw Docker and docker-compose,
//! in rounds, and the report of one size round by round (section 1).

use std::path::Path;
use std::time::Duration;

use bollard::Docker;

use crate::berth::{berth_down, berth_up};
use crate::compose::{compose, compose_cleanup};
use crate::load::{add_load, Load};
use crate::raw::{raw_down, raw_up};
use crate::report::{fmt3, Summary, TARGET_COMPOSE, TARGET_CONVERGE, TARGET_TEARDOWN};
use crate::support::{stats, Cluster, Res};
use crate::workload::{round_id, settle, ROUND};

#[derive(Default)]
pub(crate) struct Round {
    pub(crate) berth_up: f64,
    pub(crate) berth_up_docker: f64,
    pub(crate) berth_up_first: f64,
    pub(crate) berth_up_assigned: f64,
    pub(crate) berth_down_assigned: f64,
    pub(crate) berth_down: f64,
    pub(crate) berth_down_first: f64,
    pub(crate) berth_down_status: f64,
    pub(crate) raw_up: f64,
    pub(crate) raw_down: f64,
    pub(crate) raw_down_first: f64,
    pub(crate) compose_up: Option<f64>,
    pub(crate) compose_down: Option<f64>,
    pub(crate) compose_hung: bool,
    pub(crate) berth_network_left: Option<String>,
}

pub(crate) struct SizeResult {
    pub(crate) n: usize,
    pub(crate) rounds: Vec<Round>,
    pub(crate) up_load: Load,
    pub(crate) down_load: Load,
}

pub(crate) async fn converge_size(
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

pub(crate) fn report_size(s: &SizeResult, compose: bool, detail: bool, sum: &mut Summary) {
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
