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

    /// Within the policy's ±20 % jitter of `d`.
    fn about(got: Option<Duration>, d: Duration) -> bool {
        got.is_some_and(|g| g >= d.mul_f64(0.79) && g <= d.mul_f64(1.21))
    }

    #[test]
    fn restarts_wait_longer_each_time_until_the_container_stays_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = CrashBackoff::default();
        let always = |_: &str| true;
        assert_eq!(b.wait("web", t0), None, "the first restart is immediate");

        b.restarted("web", t0);
        assert!(about(b.wait("web", t0), s(1)), "then about 1 s");
        assert_eq!(b.wait("web", t0 + s(2)), None, "and not after it ran out");
        assert_eq!(b.wait("db", t0), None, "per container");

        b.restarted("web", t0 + s(2));
        assert!(about(b.wait("web", t0 + s(2)), s(2)), "then about 2 s");
        b.restarted("web", t0 + s(5));
        assert!(about(b.wait("web", t0 + s(5)), s(4)), "then about 4 s");

        b.forgive(t0 + s(20), always, always);
        assert!(
            b.wait("web", t0 + s(5)).is_some(),
            "up 15 s: not forgiven yet"
        );
        b.forgive(t0 + s(40), |_| false, always);
        assert!(
            b.wait("web", t0 + s(5)).is_some(),
            "not running: not forgiven"
        );
        b.forgive(t0 + s(40), always, always);
        b.restarted("web", t0 + s(40));
        assert!(
            about(b.wait("web", t0 + s(40)), s(1)),
            "up 35 s: forgiven, the next crash starts from 1 s again"
        );

        b.forgive(t0 + s(41), |_| false, |n| n != "web");
        assert_eq!(
            b.wait("web", t0 + s(40)),
            None,
            "no longer wanted: forgotten"
        );
    }

    #[test]
    fn the_delay_is_capped_at_a_minute() {
        let t0 = Instant::now();
        let mut b = CrashBackoff::default();
        for _ in 0..20 {
            b.restarted("web", t0);
        }
        assert!(about(b.wait("web", t0), MAX_DELAY));
    }
}
