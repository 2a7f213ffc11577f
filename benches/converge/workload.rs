//! What every section runs: `n` web services, their names, their host ports and the
//! stack that declares them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{IMAGE, SERVE};

/// Host ports: Berth, raw Docker and compose each get their own range, so a slow
/// teardown of one can never collide with the next system's start.
pub(crate) const PORTS_BERTH: u16 = 20000;
pub(crate) const PORTS_RAW: u16 = 20200;
pub(crate) const PORTS_COMPOSE: u16 = 20400;
pub(crate) const PORTS_REACT: u16 = 20600;
pub(crate) const PORT_REACT_RAW: u16 = 20700;

/// Names of this run's stacks and networks end in it: Docker on this machine sometimes
/// keeps a network it cannot remove (a phantom endpoint), and a later run must not reuse it.
pub(crate) fn run_id() -> u32 {
    std::process::id() % 100_000
}

/// The convergence round under way: names of what a round creates end in it too, so a
/// network Docker refused to remove in one round is never met again in the next.
pub(crate) static ROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) fn round_id() -> String {
    format!(
        "{}r{}",
        run_id(),
        ROUND.load(std::sync::atomic::Ordering::Relaxed)
    )
}

pub(crate) fn svc(i: usize) -> String {
    format!("s{i:03}")
}

/// `n` web services, each publishing `ports + i` when given; `env` sets `BENCH_REV` on
/// some services (a spec change).
pub(crate) fn stack_json(n: usize, ports: Option<u16>, env: &BTreeMap<usize, u32>) -> String {
    let items: Vec<serde_json::Value> = (1..=n)
        .map(|i| {
            let mut s = serde_json::json!({
                "@type": "SoftwareApplication",
                "position": i,
                "name": svc(i),
                "image": IMAGE,
                "command": ["sh", "-c", SERVE],
            });
            if let Some(p) = ports {
                s["ports"] = serde_json::json!([{"containerPort": 8080, "hostPort": p + i as u16, "protocol": "tcp"}]);
            }
            if let Some(rev) = env.get(&i) {
                s["environment"] = serde_json::json!({"BENCH_REV": rev.to_string()});
            }
            s
        })
        .collect();
    serde_json::json!({
        "@context": "https://schema.org",
        "@type": "ItemList",
        "name": "bench",
        "itemListElement": items,
    })
    .to_string()
}

/// The pause after each system's turn.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}
