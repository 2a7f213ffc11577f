//! Health probes the agent runs itself (`http` and `tcp` checks), and the state machine
//! that turns probe results into `starting|healthy|unhealthy`. `command` checks are Docker
//! HEALTHCHECKs instead.
//!
//! An agent probes the container's address on its network. The controller driving an
//! agentless host cannot reach that address, so it probes the host's address and the
//! published port when the check's port is published, and otherwise (or when that gets
//! no answer) runs the check inside the container through the engine (`inside`).

pub mod inside;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use inside::ExecResult;

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

/// Runs a command inside one container, up to a time limit: the engine's exec, handed in
/// by the agent (only its runtime talks to Docker). An error is the engine's, not the
/// command's.
pub type Exec = Arc<
    dyn Fn(Vec<String>, Duration) -> BoxFuture<'static, Result<ExecResult, String>> + Send + Sync,
>;

/// Where a container's probes go.
#[derive(Clone)]
pub enum Via {
    /// Its address on its network: the agent runs beside the engine.
    Address { ip: String, port: u16 },
    /// From away from the engine (the controller driving an agentless host): through
    /// `published` (the host's address and the port the check's `port` is published on)
    /// when there is one, else inside the container.
    Remote {
        published: Option<(String, u16)>,
        port: u16,
        exec: Exec,
    },
}

/// What one probe learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Healthy,
    Unhealthy,
    /// Nothing about the service: the probe could not run. Counts neither way.
    Unknown(String),
}

/// Slack over the check's timeout for an exec's round trips to the engine.
const EXEC_SLACK: Duration = Duration::from_secs(5);

/// One probe by `via`.
pub async fn probe_via(check: &HealthCheck, via: &Via) -> Outcome {
    let answered = |ok| {
        if ok {
            Outcome::Healthy
        } else {
            Outcome::Unhealthy
        }
    };
    match via {
        Via::Address { ip, port } => answered(probe(check, ip, *port).await),
        Via::Remote {
            published,
            port,
            exec,
        } => {
            if let Some((ip, p)) = published {
                if probe(check, ip, *p).await {
                    return Outcome::Healthy;
                }
            }
            // Not published, or no answer through it: ask inside the container, so that
            // the network between the controller and the host never counts against it.
            let timeout = Pace::of(check).timeout;
            let argv = inside::command(check, *port, timeout);
            match exec(argv, timeout + EXEC_SLACK).await {
                Ok(r) => match inside::judge(&r) {
                    inside::Inside::Answered(ok) => answered(ok),
                    // The published port's silence is then the only answer there is.
                    inside::Inside::CannotRun(_) if published.is_some() => Outcome::Unhealthy,
                    inside::Inside::CannotRun(why) => Outcome::Unknown(format!(
                        "{} check cannot be probed: port {port} is not published and {why}; publish it (hostPort) or use a command check",
                        check.type_
                    )),
                },
                Err(e) => Outcome::Unknown(format!("{} check not run: {e}", check.type_)),
            }
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
    running: HashMap<String, (JoinHandle<()>, watch::Receiver<Probed>)>,
}

/// What a container's probes have found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probed {
    health: Health,
    /// Why the last probe could not run, until one does.
    note: Option<String>,
}

/// What to probe for one container.
pub struct Target {
    /// The container run it belongs to (id and start time).
    pub key: String,
    pub via: Via,
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
            let (tx, rx) = watch::channel(Probed {
                health: Health::Starting,
                note: None,
            });
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
                    let now = match probe_via(&t.check, &t.via).await {
                        Outcome::Unknown(why) => Probed {
                            health: tracker.status,
                            note: Some(why),
                        },
                        outcome => {
                            let ok = outcome == Outcome::Healthy;
                            crate::metrics::HEALTH_CHECKS
                                .with_label_values(&[if ok { "healthy" } else { "unhealthy" }])
                                .inc();
                            Probed {
                                health: tracker.observe(ok, started.elapsed()),
                                note: None,
                            }
                        }
                    };
                    if tx.send_if_modified(|cur| std::mem::replace(cur, now.clone()) != now) {
                        changed.notify_one();
                    }
                }
            });
            self.running.insert(id, (task, rx));
        }
    }

    pub fn health_of(&self, key: &str) -> Option<Health> {
        self.running.get(key).map(|(_, rx)| rx.borrow().health)
    }

    /// Why the container's last probe could not run, if it could not.
    pub fn note_of(&self, key: &str) -> Option<String> {
        self.running
            .get(key)
            .and_then(|(_, rx)| rx.borrow().note.clone())
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

    /// An exec that answers as given and counts its calls.
    fn fake_exec(answer: Result<ExecResult, String>) -> (Exec, Arc<std::sync::atomic::AtomicU32>) {
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = calls.clone();
        let exec: Exec = Arc::new(move |_argv, _timeout| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let answer = answer.clone();
            Box::pin(async move { answer })
        });
        (exec, calls)
    }

    fn exited(code: i64, output: &str) -> Result<ExecResult, String> {
        Ok(ExecResult {
            exit_code: Some(code),
            output: output.into(),
        })
    }

    #[tokio::test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    async fn from_afar_the_published_port_answers_first_and_the_container_itself_decides_the_rest()
    {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let tcp = HealthCheck {
            type_: "tcp".into(),
            timeout: Some(1.0),
            ..Default::default()
        };
        let remote = |published: Option<u16>, exec: Exec| Via::Remote {
            published: published.map(|p| ("127.0.0.1".to_owned(), p)),
            port: 8080,
            exec,
        };
        let no_client = exited(3, "berth-probe: no curl or wget");
        // (name, published port, exec's answer, outcome, exec called)
        let cases: Vec<(&str, Option<u16>, Result<ExecResult, String>, Outcome, bool)> = vec![
            (
                "published port answers: healthy, no exec",
                Some(open),
                exited(1, ""),
                Outcome::Healthy,
                false,
            ),
            (
                "published port silent, healthy inside: healthy",
                Some(closed),
                exited(0, ""),
                Outcome::Healthy,
                true,
            ),
            (
                "published port silent, failing inside: unhealthy",
                Some(closed),
                exited(1, ""),
                Outcome::Unhealthy,
                true,
            ),
            (
                "published port silent, nothing to run inside: unhealthy",
                Some(closed),
                no_client.clone(),
                Outcome::Unhealthy,
                true,
            ),
            (
                "not published, healthy inside: healthy",
                None,
                exited(0, ""),
                Outcome::Healthy,
                true,
            ),
            (
                "not published, failing inside: unhealthy",
                None,
                exited(1, ""),
                Outcome::Unhealthy,
                true,
            ),
            (
                "not published, nothing to run inside: unknown",
                None,
                no_client,
                Outcome::Unknown(String::new()),
                true,
            ),
            (
                "the engine does not answer: unknown",
                Some(closed),
                Err("docker exec_create: 500".into()),
                Outcome::Unknown(String::new()),
                true,
            ),
        ];
        for (name, published, answer, want, exec_called) in cases {
            let (exec, calls) = fake_exec(answer);
            let got = probe_via(&tcp, &remote(published, exec)).await;
            match (&got, &want) {
                (Outcome::Unknown(why), Outcome::Unknown(_)) => assert!(!why.is_empty(), "{name}"),
                _ => assert_eq!(got, want, "{name}"),
            }
            let called = calls.load(std::sync::atomic::Ordering::Relaxed) > 0;
            assert_eq!(called, exec_called, "{name}: exec called");
        }
        drop(l);
    }

    #[tokio::test]
    async fn a_probe_that_cannot_run_never_counts_against_the_container_and_says_why() {
        let (exec, _) = fake_exec(exited(127, "exec: \"sh\": executable file not found"));
        let check = HealthCheck {
            type_: "http".into(),
            path: Some("/".into()),
            interval: Some(0.1),
            timeout: Some(1.0),
            retries: Some(1),
            ..Default::default()
        };
        let mut probes = Probes::default();
        let changed = Arc::new(Notify::new());
        probes.sync(
            vec![Target {
                key: "c1@t".into(),
                via: Via::Remote {
                    published: None,
                    port: 8080,
                    exec,
                },
                check,
            }],
            &changed,
        );
        tokio::time::timeout(Duration::from_secs(5), changed.notified())
            .await
            .expect("the note is published");
        // Well past retries × interval: still not unhealthy, so never restarted.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(probes.health_of("c1@t"), Some(Health::Starting));
        let note = probes.note_of("c1@t").unwrap_or_default();
        assert!(
            note.contains("port 8080 is not published") && note.contains("sh"),
            "{note}"
        );
    }
}
