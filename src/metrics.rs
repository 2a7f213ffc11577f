//! Every Prometheus metric Berth exports, defined in one registry. Labels are bounded
//! sets (components, ops, results, reasons), never ids or error strings.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{LazyLock, Mutex};

use prometheus::proto::MetricType;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Every registered family and its type, including families with no series yet, which
/// `render()` leaves out: what dashboards and alerts may name (see [`exported_names`]).
static FAMILIES: LazyLock<Mutex<BTreeMap<String, MetricType>>> = LazyLock::new(Default::default);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // Registration fails only on a duplicate name, which is a programming error caught by
    // the unit test below.
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric registered twice");
    let mut families = FAMILIES.lock().unwrap_or_else(|e| e.into_inner());
    for mf in c.collect() {
        families.insert(mf.name().to_owned(), mf.get_field_type());
    }
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
/// Which loop a reconcile pass belongs to: the `component` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Agent,
    Scheduler,
    Status,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Agent, Component::Scheduler, Component::Status];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Agent => "agent",
            Component::Scheduler => "scheduler",
            Component::Status => "status",
        }
    }
}

/// Every `action` label of `berth_container_actions_total`: the agent's actions (see
/// `agent::plan::Action::metric_label`) and `adopt`, containers found running at start.
pub const CONTAINER_ACTION_LABELS: [&str; 8] = [
    "create", "start", "restart", "replace", "stop", "remove", "rename", ADOPT,
];
pub const ADOPT: &str = "adopt";

/// How one reconcile pass ended, for [`observe_reconcile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    Success,
    /// Succeeded, and asked to run again before the resync.
    Requeue,
    /// Failed; `reason` is the error's bounded `metric_label()`.
    Error {
        reason: &'static str,
    },
}

/// Record one reconcile pass of `component` (agent|scheduler|status) that began at
/// `started`: its duration, its result and, on failure, its reason. The one place the
/// three reconcile metrics are written together.
pub fn observe_reconcile(component: Component, started: std::time::Instant, result: PassResult) {
    let component = component.as_str();
    RECONCILE_DURATION
        .with_label_values(&[component])
        .observe(started.elapsed().as_secs_f64());
    let label = match result {
        PassResult::Success => "success",
        PassResult::Requeue => "requeue",
        PassResult::Error { reason } => {
            RECONCILE_ERRORS
                .with_label_values(&[component, reason])
                .inc();
            "error"
        }
    };
    RECONCILE.with_label_values(&[component, label]).inc();
}

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
pub static FENCED_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "berth_fenced_writes_total",
            "Writes refused because this controller was no longer the leader",
        )
        .expect("valid metric"),
    )
});
pub static PLACEMENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "berth_placements_total",
            "Slots given a host (new slots and moves)",
        )
        .expect("valid metric"),
    )
});
/// `reason` = host_down|drain|constraints|rebalance.
pub static RESCHEDULES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_reschedules_total",
        "Slots moved to another host, by reason",
        &["reason"],
    )
});
pub static SCHEDULING_DURATION: LazyLock<prometheus::Histogram> = LazyLock::new(|| {
    register(
        prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "berth_scheduling_duration_seconds",
                "Time one placement plan took",
            )
            .buckets(SECONDS.to_vec()),
        )
        .expect("valid metric"),
    )
});
pub static STORM_GUARD: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "berth_storm_guard",
            "1 while too many hosts are not ready and rescheduling is held back",
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
/// Renders of the web view's pages: one per change of the controller's cache (bursts
/// coalesced), however many pages are open.
pub static WEB_RENDERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "berth_web_renders_total",
            "times the web view rendered its pages, once per change for every viewer",
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

/// `result` = healthy|unhealthy: each http/tcp probe the agent ran.
pub static HEALTH_CHECKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_health_checks_total",
        "Health probes the agent ran, by result",
        &["result"],
    )
});
pub static CONVERGENCE: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "berth_convergence_seconds",
                "Seconds from a stack spec revision being written to all its slots running",
            )
            // Pulls and health checks make convergence take seconds to minutes.
            .buckets(vec![
                0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ]),
        )
        .expect("valid metric"),
    )
});

/// `outcome` = complete|rolled_back|paused.
pub static ROLLOUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "berth_rollouts_total",
        "Rolling updates that ended, by outcome",
        &["outcome"],
    )
});
pub static ROLLOUT_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "berth_rollout_duration_seconds",
                "Seconds from a rolling update's start to its end (complete, rolled back or paused)",
            )
            .buckets(vec![
                1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
        )
        .expect("valid metric"),
    )
});

/// Touch every metric so each series family exists from start-up, not from first use.
pub fn init() {
    LazyLock::force(&HEALTH_CHECKS);
    LazyLock::force(&ROLLOUTS);
    LazyLock::force(&ROLLOUT_DURATION);
    LazyLock::force(&CONVERGENCE);
    LazyLock::force(&RECONCILE);
    LazyLock::force(&RECONCILE_DURATION);
    LazyLock::force(&RECONCILE_ERRORS);
    LazyLock::force(&CONTAINER_ACTIONS);
    LazyLock::force(&CONTAINERS);
    LazyLock::force(&ORPHANS_REMOVED);
    LazyLock::force(&CONTAINER_RESTARTS);
    LazyLock::force(&HOSTS);
    LazyLock::force(&FENCED_WRITES);
    LazyLock::force(&PLACEMENTS);
    LazyLock::force(&RESCHEDULES);
    LazyLock::force(&SCHEDULING_DURATION);
    LazyLock::force(&STORM_GUARD);
    LazyLock::force(&STACKS);
    LazyLock::force(&SLOTS);
    LazyLock::force(&LEADER);
    LazyLock::force(&ETCD_REQUESTS);
    LazyLock::force(&ETCD_WATCH_RESTARTS);
    LazyLock::force(&WEB_RENDERS);
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

/// Every series name the registered metrics can export: counters and gauges by their
/// name, histograms as `_bucket`, `_sum` and `_count`. Unlike `render()`, this includes
/// labelled families that have no series yet.
pub fn exported_names() -> BTreeSet<String> {
    let families = FAMILIES.lock().unwrap_or_else(|e| e.into_inner());
    let mut names = BTreeSet::new();
    for (name, kind) in families.iter() {
        match kind {
            MetricType::HISTOGRAM => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            MetricType::SUMMARY => {
                for suffix in ["", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.clone());
            }
        }
    }
    names
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

    #[test]
    fn exported_names_include_families_without_series_and_histogram_suffixes() {
        super::init();
        let names = super::exported_names();
        for want in [
            "berth_health_checks_total",
            "berth_convergence_seconds_bucket",
            "berth_convergence_seconds_count",
            "berth_reconcile_duration_seconds_sum",
        ] {
            assert!(names.contains(want), "{want} missing from {names:?}");
        }
        assert!(!names.contains("berth_convergence_seconds"));
    }

    /// The values the README's metrics table lists for `label` of `metric`.
    fn documented(metric: &str, label: &str) -> Vec<String> {
        let readme = include_str!("../README.md");
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{metric}{{")))
            .unwrap_or_else(|| panic!("no README row for {metric}"));
        let start = row.find(&format!("{label}=\"")).expect("label documented") + label.len() + 2;
        let values = &row[start..];
        let values = &values[..values.find('"').expect("closing quote")];
        values.split("\\|").map(str::to_owned).collect()
    }

    #[test]
    fn the_readme_lists_every_component_and_action_label() {
        let components: Vec<&str> = super::Component::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented("berth_reconcile_total", "component"), components);
        assert_eq!(
            documented("berth_container_actions_total", "action"),
            super::CONTAINER_ACTION_LABELS
        );
    }
}
