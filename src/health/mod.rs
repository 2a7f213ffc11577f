//! Health probes the agent runs itself (`http` and `tcp` checks, against the container's
//! address on its network), and the state machine that turns probe results into
//! `starting|healthy|unhealthy`. `command` checks are Docker HEALTHCHECKs instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::spec::{HealthCheck, HealthCheckKind, Seconds};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Docker's HEALTHCHECK semantics: failures inside the start period do not count; one
/// success makes it healthy; `retries` consecutive failures make it unhealthy.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub status: Health,
    failures: u32,
    retries: u32,
    start_period: Duration,
}

impl Tracker {
    pub fn new(retries: u32, start_period: Duration) -> Tracker {
        Tracker {
            status: Health::Starting,
            failures: 0,
            retries: retries.max(1),
            start_period,
        }
    }

    /// Record one probe result `since_start` after the container started.
    pub fn observe(&mut self, ok: bool, since_start: Duration) -> Health {
        if ok {
            self.failures = 0;
            self.status = Health::Healthy;
        } else if since_start >= self.start_period || self.status == Health::Healthy {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status
    }
}

/// When a check's probes run and how long each may take: the check's times as
/// [`Seconds`] reads them, the interval and timeout at least [`MIN_PROBE_TIME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
}

/// A tiny interval or timeout would spin the agent's probe task.
pub const MIN_PROBE_TIME: Duration = Duration::from_millis(100);

impl Pace {
    pub fn of(check: &HealthCheck) -> Pace {
        Pace {
            interval: Seconds::CHECK_INTERVAL
                .duration(check.interval)
                .max(MIN_PROBE_TIME),
            timeout: Seconds::CHECK_TIMEOUT
                .duration(check.timeout)
                .max(MIN_PROBE_TIME),
            start_period: Seconds::CHECK_START_PERIOD.duration(check.start_period),
        }
    }
}

/// One probe: `true` when the service answered as the check asks.
pub async fn probe(check: &HealthCheck, ip: &str, port: u16) -> bool {
    let timeout = Pace::of(check).timeout;
    let attempt = async {
        match check.kind() {
            Some(HealthCheckKind::Tcp) => TcpStream::connect((ip, port)).await.is_ok(),
            Some(HealthCheckKind::Http) => {
                http_get_ok(ip, port, check.path.as_deref().unwrap_or("/")).await
            }
            _ => false,
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

/// A minimal HTTP/1.0 GET: 2xx and 3xx are healthy, like Kubernetes' httpGet probe.
async fn http_get_ok(ip: &str, port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect((ip, port)).await else {
        return false;
    };
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: berth-probe\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    matches!(code, Some(200..=399))
}

/// Probe tasks, one per running container with an http/tcp check, keyed by container id.
#[derive(Default)]
pub struct Probes {
    running: HashMap<String, (JoinHandle<()>, watch::Receiver<Health>)>,
}

/// What to probe for one container.
pub struct Target {
    /// The container run it belongs to (id and start time).
    pub key: String,
    pub ip: String,
    pub port: u16,
    pub check: HealthCheck,
}

impl Probes {
    /// Run exactly the probes for `targets`: start new ones, stop those whose container
    /// went. `changed` is notified whenever a container's health flips.
    pub fn sync(&mut self, targets: Vec<Target>, changed: &Arc<Notify>) {
        let wanted: HashMap<String, Target> =
            targets.into_iter().map(|t| (t.key.clone(), t)).collect();
        self.running.retain(|id, (task, _)| {
            let keep = wanted.contains_key(id);
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, t) in wanted {
            if self.running.contains_key(&id) {
                continue;
            }
            let (tx, rx) = watch::channel(Health::Starting);
            let changed = changed.clone();
            let task = tokio::spawn(async move {
                let Pace {
                    interval,
                    start_period,
                    ..
                } = Pace::of(&t.check);
                let mut tracker = Tracker::new(t.check.retries.unwrap_or(3), start_period);
                let started = tokio::time::Instant::now();
                // First probe soon after start, so a fast service is healthy quickly.
                let mut wait = Duration::from_millis(200).min(interval);
                loop {
                    tokio::time::sleep(wait).await;
                    wait = interval;
                    let ok = probe(&t.check, &t.ip, t.port).await;
                    crate::metrics::HEALTH_CHECKS
                        .with_label_values(&[if ok { "healthy" } else { "unhealthy" }])
                        .inc();
                    let h = tracker.observe(ok, started.elapsed());
                    if tx.send_if_modified(|cur| std::mem::replace(cur, h) != h) {
                        changed.notify_one();
                    }
                }
            });
            self.running.insert(id, (task, rx));
        }
    }

    pub fn health_of(&self, key: &str) -> Option<Health> {
        self.running.get(key).map(|(_, rx)| *rx.borrow())
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        for (task, _) in self.running.values() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn tracker_follows_docker_healthcheck_rules() {
        let s = Duration::from_secs;
        // (name, start_period, retries, observations (ok, since_start), expected final)
        let cases: Vec<(&str, u64, u32, Vec<(bool, u64)>, Health)> = vec![
            (
                "no result yet stays starting",
                0,
                3,
                vec![],
                Health::Starting,
            ),
            (
                "one success is healthy",
                0,
                3,
                vec![(true, 1)],
                Health::Healthy,
            ),
            (
                "failures in start period do not count",
                10,
                1,
                vec![(false, 1), (false, 5)],
                Health::Starting,
            ),
            (
                "retries failures after start period: unhealthy",
                0,
                2,
                vec![(false, 1), (false, 2)],
                Health::Unhealthy,
            ),
            (
                "fewer failures than retries: still healthy",
                0,
                3,
                vec![(true, 1), (false, 2), (false, 3)],
                Health::Healthy,
            ),
            (
                "recovers after a success",
                0,
                1,
                vec![(false, 1), (true, 2)],
                Health::Healthy,
            ),
        ];
        for (name, start, retries, obs, want) in cases {
            let mut t = Tracker::new(retries, s(start));
            for (ok, at) in obs {
                t.observe(ok, s(at));
            }
            assert_eq!(t.status, want, "{name}");
        }
    }

    #[test]
    fn a_checks_pace_is_bounded_whatever_its_numbers() {
        let s = Duration::from_secs;
        let pace = |interval, timeout, start_period| {
            Pace::of(&HealthCheck {
                type_: "tcp".into(),
                interval,
                timeout,
                start_period,
                ..Default::default()
            })
        };
        let defaults = Pace {
            interval: s(10),
            timeout: s(5),
            start_period: s(0),
        };
        // (name, interval, timeout, startPeriod, expected)
        let cases = [
            ("absent: the defaults", None, None, None, defaults),
            (
                "within bounds: as written",
                Some(86_400.0),
                Some(2.5),
                Some(30.0),
                Pace {
                    interval: s(86_400),
                    timeout: Duration::from_millis(2500),
                    start_period: s(30),
                },
            ),
            (
                "tiny: the probe's floor",
                Some(1e-9),
                Some(0.001),
                Some(0.0),
                Pace {
                    interval: MIN_PROBE_TIME,
                    timeout: MIN_PROBE_TIME,
                    start_period: s(0),
                },
            ),
            (
                "huge: the defaults",
                Some(1e20),
                Some(f64::MAX),
                Some(1e300),
                defaults,
            ),
            (
                "not a number: the defaults",
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                defaults,
            ),
            (
                "negative: the defaults",
                Some(-1.0),
                Some(0.0),
                Some(-1.0),
                defaults,
            ),
        ];
        for (name, interval, timeout, start_period, want) in cases {
            assert_eq!(pace(interval, timeout, start_period), want, "{name}");
        }
    }

    #[tokio::test]
    async fn http_probe_accepts_2xx_and_rejects_5xx_and_closed_ports() {
        async fn serve(status: &'static str) -> u16 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(format!("HTTP/1.0 {status}\r\n\r\n").as_bytes())
                        .await;
                }
            });
            port
        }
        let check = HealthCheck {
            type_: "http".into(),
            path: Some("/".into()),
            timeout: Some(1.0),
            ..Default::default()
        };
        let ok = serve("200 OK").await;
        let bad = serve("503 Unavailable").await;
        assert!(probe(&check, "127.0.0.1", ok).await);
        assert!(!probe(&check, "127.0.0.1", bad).await);
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(!probe(&check, "127.0.0.1", closed).await);
        let tcp = HealthCheck {
            type_: "tcp".into(),
            timeout: Some(1.0),
            ..Default::default()
        };
        assert!(probe(&tcp, "127.0.0.1", ok).await);
        assert!(!probe(&tcp, "127.0.0.1", closed).await);
    }
}
