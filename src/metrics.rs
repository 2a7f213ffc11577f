//! Every Prometheus metric Berth exports, defined in one registry. Labels are bounded
//! sets (components, ops, results, reasons), never ids or error strings.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // Registration fails only on a duplicate name, which is a programming error caught by
    // the unit test below.
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric registered twice");
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    register(
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric"),
    )
}

const SECONDS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `component` = agent|scheduler|status; `result` = success|error|requeue.
pub static RECONCILE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_reconcile_total",
        "Reconcile passes by component and result",
        &["component", "result"],
    )
});
pub static RECONCILE_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "berth_reconcile_duration_seconds",
        "Time one reconcile pass took",
        &["component"],
        SECONDS.to_vec(),
    )
});
/// `reason` is an error's `metric_label()`.
pub static RECONCILE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_reconcile_errors_total",
        "Reconcile errors by component and bounded reason",
        &["component", "reason"],
    )
});
/// `action` = create|start|restart|replace|stop|remove|adopt|rename.
pub static CONTAINER_ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_container_actions_total",
        "Container actions the agent performed",
        &["action"],
    )
});
pub static CONTAINERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "berth_containers",
        "Managed containers on this agent's host by state",
        &["state"],
    )
});
pub static ORPHANS_REMOVED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "berth_orphans_removed_total",
            "Managed containers removed because no slot wants them",
        )
        .expect("valid metric"),
    )
});
pub static CONTAINER_RESTARTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "berth_container_restarts_total",
            "Exited managed containers the agent started again",
        )
        .expect("valid metric"),
    )
});
pub static HOSTS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("berth_hosts", "Registered hosts by state", &["state"]));
pub static STACKS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("berth_stacks", "Stacks by phase", &["phase"]));
pub static SLOTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "berth_slots",
        "Service slots by state (placed|pending)",
        &["state"],
    )
});
pub static LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    register(IntGauge::new("berth_leader", "1 while this controller schedules").expect("valid"))
});
/// `op` = get|list|txn|put|delete; `result` = success|error.
pub static ETCD_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_etcd_requests_total",
        "etcd requests by op and result",
        &["op", "result"],
    )
});
pub static ETCD_WATCH_RESTARTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "berth_etcd_watch_restarts_total",
            "etcd watches that broke and were relisted",
        )
        .expect("valid metric"),
    )
});
/// `op` is the Docker call (list|inspect|create|start|stop|remove|...).
pub static DOCKER_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_docker_requests_total",
        "Docker API requests by op and result",
        &["op", "result"],
    )
});
pub static DOCKER_REQUEST_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "berth_docker_request_duration_seconds",
        "Docker API request latency by op",
        &["op"],
        SECONDS.to_vec(),
    )
});

/// Touch every metric so each series family exists from start-up, not from first use.
pub fn init() {
    LazyLock::force(&RECONCILE);
    LazyLock::force(&RECONCILE_DURATION);
    LazyLock::force(&RECONCILE_ERRORS);
    LazyLock::force(&CONTAINER_ACTIONS);
    LazyLock::force(&CONTAINERS);
    LazyLock::force(&ORPHANS_REMOVED);
    LazyLock::force(&CONTAINER_RESTARTS);
    LazyLock::force(&HOSTS);
    LazyLock::force(&STACKS);
    LazyLock::force(&SLOTS);
    LazyLock::force(&LEADER);
    LazyLock::force(&ETCD_REQUESTS);
    LazyLock::force(&ETCD_WATCH_RESTARTS);
    LazyLock::force(&DOCKER_REQUESTS);
    LazyLock::force(&DOCKER_REQUEST_DURATION);
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metrics.
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metric_registers_once_and_renders() {
        super::init();
        super::LEADER.set(1);
        let text = super::render();
        assert!(text.contains("berth_leader 1"), "{text}");
    }
}
