//! What one Berth convergence or teardown cost beyond its time: etcd writes and
//! requests, Docker calls and their latency, reconcile passes and CPU.

use std::collections::BTreeMap;

use crate::support::{Cluster, Metrics, Res, Writes};

/// What one Berth convergence (or teardown) cost, beyond its time.
#[derive(Default, Clone)]
pub(crate) struct Load {
    pub(crate) writes: Writes,
    pub(crate) agent_etcd: f64,
    pub(crate) controller_etcd: f64,
    pub(crate) docker_calls: BTreeMap<String, f64>,
    /// etcd requests of the agent and of the controller, by op (reads too).
    pub(crate) agent_ops: BTreeMap<String, f64>,
    pub(crate) controller_ops: BTreeMap<String, f64>,
    /// Docker call latency seen by the agent: (seconds, calls) by op.
    pub(crate) docker_latency: BTreeMap<String, (f64, f64)>,
    /// Reconcile passes of the agent and of the controller's scheduler.
    pub(crate) agent_passes: f64,
    pub(crate) controller_passes: f64,
    /// CPU seconds the agent and the controller used.
    pub(crate) agent_cpu: f64,
    pub(crate) controller_cpu: f64,
}

/// The processes' counters when a phase starts.
pub(crate) struct Before {
    agent: Metrics,
    controller: Metrics,
    agent_cpu: f64,
    controller_cpu: f64,
}

pub(crate) async fn before(c: &Cluster) -> Before {
    Before {
        agent: c.agent.scrape().await,
        controller: c.controller.scrape().await,
        agent_cpu: c.agent.usage().cpu_secs,
        controller_cpu: c.controller.usage().cpu_secs,
    }
}

pub(crate) fn passes(m: &Metrics, component: &str) -> f64 {
    m.sum("berth_reconcile_total", |l| {
        l.get("component").map(String::as_str) == Some(component)
    })
}

/// `after - before`, by key, dropping what did not grow.
pub(crate) fn delta(
    after: BTreeMap<String, f64>,
    before: BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    let mut out = after;
    for (k, n) in before {
        *out.entry(k).or_default() -= n;
    }
    out.retain(|_, n| *n > 0.0);
    out
}

pub(crate) async fn load_between(
    c: &Cluster,
    before: &Before,
    after_rev: i64,
    upto: i64,
) -> Res<Load> {
    let agent = c.agent.scrape().await;
    let ctl = c.controller.scrape().await;
    let etcd_ops = "berth_etcd_requests_total";
    let latency = "berth_docker_request_duration_seconds";
    let mut docker_latency = agent.histogram(latency, "op");
    for (op, (s, n)) in before.agent.histogram(latency, "op") {
        let e = docker_latency.entry(op).or_default();
        e.0 -= s;
        e.1 -= n;
    }
    docker_latency.retain(|_, (_, n)| *n > 0.0);
    Ok(Load {
        writes: c.etcd.replay(after_rev, upto).await?,
        agent_etcd: agent.etcd_writes() - before.agent.etcd_writes(),
        controller_etcd: ctl.etcd_writes() - before.controller.etcd_writes(),
        docker_calls: delta(
            agent.by("berth_docker_requests_total", "op"),
            before.agent.by("berth_docker_requests_total", "op"),
        ),
        agent_ops: delta(agent.by(etcd_ops, "op"), before.agent.by(etcd_ops, "op")),
        controller_ops: delta(ctl.by(etcd_ops, "op"), before.controller.by(etcd_ops, "op")),
        docker_latency,
        agent_passes: passes(&agent, "agent") - passes(&before.agent, "agent"),
        controller_passes: passes(&ctl, "scheduler") - passes(&before.controller, "scheduler"),
        agent_cpu: c.agent.usage().cpu_secs - before.agent_cpu,
        controller_cpu: c.controller.usage().cpu_secs - before.controller_cpu,
    })
}

pub(crate) fn add_load(into: &mut Load, l: &Load) {
    into.writes.add(&l.writes);
    into.agent_etcd += l.agent_etcd;
    into.controller_etcd += l.controller_etcd;
    into.agent_passes += l.agent_passes;
    into.controller_passes += l.controller_passes;
    into.agent_cpu += l.agent_cpu;
    into.controller_cpu += l.controller_cpu;
    for (from, to) in [
        (&l.docker_calls, &mut into.docker_calls),
        (&l.agent_ops, &mut into.agent_ops),
        (&l.controller_ops, &mut into.controller_ops),
    ] {
        for (op, n) in from {
            *to.entry(op.clone()).or_default() += n;
        }
    }
    for (op, (s, n)) in &l.docker_latency {
        let e = into.docker_latency.entry(op.clone()).or_default();
        e.0 += s;
        e.1 += n;
    }
}
