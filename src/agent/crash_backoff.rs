//! Crash-loop backoff, the one home of it: the first restart of a container is
//! immediate, each later one waits longer (1 s doubling to 60 s, with jitter), and a
//! container that stays up [`FORGIVE_AFTER`] past its last restart is forgiven and starts
//! from nothing again, like kube-rs's `ResetTimerBackoff` and the kubelet's `doBackOff`.
//! Pure: the caller passes the clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::retry;

/// How long a restarted container must keep running to be forgiven its crashes.
pub const FORGIVE_AFTER: Duration = Duration::from_secs(30);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);

struct Entry {
    policy: retry::Policy,
    /// No restart before this.
    not_before: Instant,
    last_restart: Instant,
}

/// Backoff state by container name.
#[derive(Default)]
pub struct CrashBackoff {
    entries: HashMap<String, Entry>,
}

impl CrashBackoff {
    /// How long a restart of `name` must still wait at `now`; `None` when it may go now.
    pub fn wait(&self, name: &str, now: Instant) -> Option<Duration> {
        let e = self.entries.get(name)?;
        (e.not_before > now).then(|| e.not_before - now)
    }

    /// `name` was restarted at `now`: the next restart waits longer.
    pub fn restarted(&mut self, name: &str, now: Instant) {
        let e = self
            .entries
            .entry(name.to_owned())
            .or_insert_with(|| Entry {
                policy: retry::Policy::with(FIRST_DELAY, MAX_DELAY),
                not_before: now,
                last_restart: now,
            });
        e.last_restart = now;
        e.not_before = now + e.policy.next_delay();
    }

    /// Forget containers that have stayed up for [`FORGIVE_AFTER`] since their last
    /// restart (`up` says which run now, or finished as their restart policy asks: a job
    /// that completed after a crash or two is no crash loop), and those no longer `wanted`
    /// here.
    pub fn forgive(
        &mut self,
        now: Instant,
        up: impl Fn(&str) -> bool,
        wanted: impl Fn(&str) -> bool,
    ) {
        self.entries.retain(|name, e| {
            let stable = up(name) && now.duration_since(e.last_restart) > FORGIVE_AFTER;
            wanted(name) && !stable
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What happens to container `web` (or `db`), at a second since the start.
    #[derive(Clone, Copy)]
    enum Step {
        Restarted(&'static str, u64),
        /// A pass at `at` forgives, seeing `web` running or not, and wanted or not.
        Forgive {
            at: u64,
            running: bool,
            wanted: bool,
        },
    }
    use Step::*;

    struct Case {
        name: &'static str,
        steps: Vec<Step>,
        /// Asked at this second, for this container...
        ask: (&'static str, u64),
        /// ...the wait is about this many seconds (±20 % jitter); `None`: restart now.
        want: Option<f64>,
    }

    fn crashes(times: &[u64]) -> Vec<Step> {
        times.iter().map(|t| Restarted("web", *t)).collect()
    }

    fn then(mut steps: Vec<Step>, more: &[Step]) -> Vec<Step> {
        steps.extend_from_slice(more);
        steps
    }

    fn up(at: u64) -> Step {
        Forgive {
            at,
            running: true,
            wanted: true,
        }
    }

    #[test]
    fn backoff_table() {
        // Three crashes: the next restart would wait about 8 s.
        let three = || crashes(&[0, 2, 5]);
        let cases = vec![
            Case {
                name: "never restarted: the first restart is immediate",
                steps: vec![],
                ask: ("web", 0),
                want: None,
            },
            Case {
                name: "restarted once: the next restart waits about 1 s",
                steps: crashes(&[0]),
                ask: ("web", 0),
                want: Some(1.0),
            },
            Case {
                name: "once the wait has run out the restart goes at once",
                steps: crashes(&[0]),
                ask: ("web", 2),
                want: None,
            },
            Case {
                name: "the backoff is per container",
                steps: crashes(&[0]),
                ask: ("db", 0),
                want: None,
            },
            Case {
                name: "growth: the second wait is about 2 s",
                steps: crashes(&[0, 2]),
                ask: ("web", 2),
                want: Some(2.0),
            },
            Case {
                name: "growth: the third wait is about 4 s",
                steps: crashes(&[0, 2, 5]),
                ask: ("web", 5),
                want: Some(4.0),
            },
            Case {
                name: "growth: the fourth wait is about 8 s",
                steps: crashes(&[0, 2, 5, 10]),
                ask: ("web", 10),
                want: Some(8.0),
            },
            Case {
                name: "growth stops at a minute",
                steps: crashes(&[0; 20]),
                ask: ("web", 0),
                want: Some(60.0),
            },
            Case {
                name: "reset: running past FORGIVE_AFTER since the last restart forgives",
                steps: then(three(), &[up(5 + 31), Restarted("web", 36)]),
                ask: ("web", 36),
                want: Some(1.0),
            },
            Case {
                name: "no reset at exactly FORGIVE_AFTER",
                steps: then(three(), &[up(5 + 30), Restarted("web", 35)]),
                ask: ("web", 35),
                want: Some(8.0),
            },
            Case {
                name: "no reset while up for less than FORGIVE_AFTER",
                steps: then(three(), &[up(20), Restarted("web", 20)]),
                ask: ("web", 20),
                want: Some(8.0),
            },
            Case {
                name: "no reset for a container that is not running, however long ago",
                steps: then(
                    three(),
                    &[
                        Forgive {
                            at: 500,
                            running: false,
                            wanted: true,
                        },
                        Restarted("web", 500),
                    ],
                ),
                ask: ("web", 500),
                want: Some(8.0),
            },
            Case {
                name: "no reset without a pass to forgive: time alone does not",
                steps: then(three(), &[Restarted("web", 500)]),
                ask: ("web", 500),
                want: Some(8.0),
            },
            Case {
                name: "a container no longer wanted here is forgotten",
                steps: then(
                    three(),
                    &[Forgive {
                        at: 6,
                        running: false,
                        wanted: false,
                    }],
                ),
                ask: ("web", 6),
                want: None,
            },
        ];
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for c in cases {
            let mut b = CrashBackoff::default();
            for step in &c.steps {
                match *step {
                    Restarted(name, t) => b.restarted(name, at(t)),
                    Forgive {
                        at: t,
                        running,
                        wanted,
                    } => b.forgive(at(t), |n| n == "web" && running, |n| n != "web" || wanted),
                }
            }
            let got = b.wait(c.ask.0, at(c.ask.1));
            match c.want {
                None => assert_eq!(got, None, "case {:?}", c.name),
                Some(secs) => {
                    let d = Duration::from_secs_f64(secs);
                    assert!(
                        got.is_some_and(|g| g >= d.mul_f64(0.79) && g <= d.mul_f64(1.21)),
                        "case {:?}: want about {d:?}, got {got:?}",
                        c.name
                    );
                }
            }
        }
    }
}
