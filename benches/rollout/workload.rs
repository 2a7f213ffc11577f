//! The one service both systems roll: its container, its health check and its update
//! rules, written once and rendered as a Berth stack and as `docker service` flags, so
//! the two can only differ where the systems do.

use crate::support::IMAGE;

pub(crate) const REPLICAS: usize = 10;
pub(crate) const PARALLELISM: usize = 2;

/// The container label that carries the version, on Berth's containers and on Swarm's:
/// a `docker ps` tells which version a container runs without inspecting it.
pub(crate) const VERSION_LABEL: &str = "bench.version";

/// Ready one second after start, like a service loading its configuration; exits at
/// once when `BENCH_CRASH=1` (the bad version); exits at once on SIGTERM too, so stop
/// times are Docker's, not a grace period running out.
pub(crate) const COMMAND: &str = "trap 'exit 0' TERM; [ \"$BENCH_CRASH\" = 1 ] && exit 1; \
     httpd -f -p 8080 -h / & sleep 1; touch /ready; wait";

/// Docker's HEALTHCHECK on both sides, as `sh -c` (Swarm's `--health-cmd` is CMD-SHELL).
/// Lenient on purpose: on a busy machine an exec can take over a second, and with one
/// retry and a 1 s timeout healthy containers turned unhealthy and were restarted.
pub(crate) const HEALTH_CMD: &str = "test -f /ready";
pub(crate) const HEALTH_INTERVAL_MS: u64 = 1000;
pub(crate) const HEALTH_TIMEOUT_S: u64 = 5;
pub(crate) const HEALTH_RETRIES: u32 = 3;
pub(crate) const HEALTH_START_PERIOD_S: u64 = 10;

/// One version of the service.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) name: String,
    pub(crate) crash: bool,
}

impl Version {
    pub(crate) fn good(n: usize) -> Version {
        Version {
            name: format!("v{n}"),
            crash: false,
        }
    }

    pub(crate) fn bad(n: usize) -> Version {
        Version {
            name: format!("bad{n}"),
            crash: true,
        }
    }

    fn crash_env(&self) -> &'static str {
        if self.crash {
            "1"
        } else {
            "0"
        }
    }
}

/// The update rules, the same for both systems (and for Swarm's rollback).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) monitor_secs: u64,
}

/// The Berth stack: one service `web` of [`REPLICAS`] slots on the stack's bridge network,
/// no published port.
pub(crate) fn stack_json(v: &Version, rules: Rules) -> String {
    serde_json::json!({
        "@context": "https://schema.org",
        "@type": "ItemList",
        "name": "bench-rollout",
        "itemListElement": [{
            "@type": "SoftwareApplication",
            "position": 1,
            "name": "web",
            "image": IMAGE,
            "command": ["sh", "-c", COMMAND],
            "environment": {"BENCH_VERSION": v.name, "BENCH_CRASH": v.crash_env()},
            "labels": {VERSION_LABEL: v.name},
            "replicas": REPLICAS,
            "healthCheck": {
                "type": "command",
                "command": ["sh", "-c", HEALTH_CMD],
                "interval": HEALTH_INTERVAL_MS as f64 / 1000.0,
                "timeout": HEALTH_TIMEOUT_S,
                "retries": HEALTH_RETRIES,
                "startPeriod": HEALTH_START_PERIOD_S,
            },
            "update": {
                "parallelism": PARALLELISM,
                "order": "start-first",
                "delay": 0,
                "monitor": rules.monitor_secs,
                "failureAction": "rollback",
                "maxFailureRatio": 0,
            },
        }],
    })
    .to_string()
}

/// `docker service create` flags for the same service (before the image and command).
pub(crate) fn swarm_create_flags(network: &str, v: &Version, rules: Rules) -> Vec<String> {
    let monitor = format!("{}s", rules.monitor_secs);
    let mut f: Vec<String> = [
        "--replicas",
        &REPLICAS.to_string(),
        "--network",
        network,
        "--health-cmd",
        HEALTH_CMD,
        "--health-interval",
        &format!("{HEALTH_INTERVAL_MS}ms"),
        "--health-timeout",
        &format!("{HEALTH_TIMEOUT_S}s"),
        "--health-retries",
        &HEALTH_RETRIES.to_string(),
        "--health-start-period",
        &format!("{HEALTH_START_PERIOD_S}s"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The same rules forward and back; a rollback that fails pauses, as Berth's does.
    for (phase, on_failure) in [("update", "rollback"), ("rollback", "pause")] {
        f.extend(
            [
                (format!("--{phase}-parallelism"), PARALLELISM.to_string()),
                (format!("--{phase}-delay"), "0s".to_owned()),
                (format!("--{phase}-monitor"), monitor.clone()),
                (format!("--{phase}-order"), "start-first".to_owned()),
                (format!("--{phase}-failure-action"), on_failure.to_owned()),
                (format!("--{phase}-max-failure-ratio"), "0".to_owned()),
            ]
            .into_iter()
            .flat_map(|(k, v)| [k, v]),
        );
    }
    f.extend([
        "--env".to_owned(),
        format!("BENCH_VERSION={}", v.name),
        "--env".to_owned(),
        format!("BENCH_CRASH={}", v.crash_env()),
        "--container-label".to_owned(),
        format!("{VERSION_LABEL}={}", v.name),
    ]);
    f
}

/// `docker service update` flags that change the service to `v`.
pub(crate) fn swarm_update_flags(v: &Version) -> Vec<String> {
    vec![
        "--env-add".to_owned(),
        format!("BENCH_VERSION={}", v.name),
        "--env-add".to_owned(),
        format!("BENCH_CRASH={}", v.crash_env()),
        "--container-label-add".to_owned(),
        format!("{VERSION_LABEL}={}", v.name),
    ]
}
