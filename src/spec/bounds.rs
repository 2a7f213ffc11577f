//! The range of every time and size a stack sets, and the one way a time in seconds
//! becomes a `Duration`. Pure.
//!
//! `validate` reports a value outside its range with its path. Whatever reads a time
//! goes through [`Seconds::duration`], which never panics: a value that would not
//! validate (huge, negative, NaN, infinite) is as if it were absent.

use std::time::Duration;

/// The longest health check and action time.
pub(super) const DAY: f64 = 86_400.0;
/// The longest `update` time: a slow rollout may wait hours between batches.
pub(super) const WEEK: f64 = 7.0 * DAY;

/// More CPUs than any one machine has, which still multiplies into nanoCPUs without loss.
pub const MAX_CPUS: f64 = 4096.0;

/// 64 TiB: more memory than any one machine has, which still fits Docker's byte count.
pub const MAX_MEMORY_MB: u64 = 64 * 1024 * 1024;

/// One time field of a stack, in seconds: what it may be, and what it is when absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds {
    /// Whether 0 is allowed, or the time must be positive.
    zero: bool,
    max: f64,
    /// The longest time, in words, for the message.
    max_words: &'static str,
    default: f64,
}

impl Seconds {
    /// `healthCheck.interval`: seconds between checks.
    pub const CHECK_INTERVAL: Seconds = Seconds::positive(DAY, "a day", 10.0);
    /// `healthCheck.timeout`: seconds one check may take.
    pub const CHECK_TIMEOUT: Seconds = Seconds::positive(DAY, "a day", 5.0);
    /// `healthCheck.startPeriod`: seconds after start during which failures do not count.
    pub const CHECK_START_PERIOD: Seconds = Seconds::or_zero(DAY, "a day", 0.0);
    /// `potentialAction[].timeout`: seconds one action may run.
    pub const ACTION_TIMEOUT: Seconds = Seconds::positive(DAY, "a day", 60.0);
    /// `update.delay`: seconds between batches.
    pub const UPDATE_DELAY: Seconds = Seconds::or_zero(WEEK, "a week", 0.0);
    /// `update.monitor`: seconds a replaced slot must stay ready.
    pub const UPDATE_MONITOR: Seconds = Seconds::or_zero(WEEK, "a week", 5.0);
    /// `update.deadline`: seconds a replaced slot has to become ready.
    pub const UPDATE_DEADLINE: Seconds = Seconds::or_zero(WEEK, "a week", 120.0);

    const fn positive(max: f64, max_words: &'static str, default: f64) -> Seconds {
        Seconds {
            zero: false,
            max,
            max_words,
            default,
        }
    }

    const fn or_zero(max: f64, max_words: &'static str, default: f64) -> Seconds {
        Seconds {
            zero: true,
            ..Seconds::positive(max, max_words, default)
        }
    }

    /// What is wrong with `seconds`, if anything.
    pub fn complaint(&self, seconds: f64) -> Option<String> {
        // NaN fails both comparisons.
        let high_enough = if self.zero {
            seconds >= 0.0
        } else {
            seconds > 0.0
        };
        if !high_enough {
            let range = if self.zero { " (0 or more)" } else { "" };
            let kind = if self.zero { "" } else { "positive " };
            return Some(format!("{seconds} is not a {kind}number of seconds{range}"));
        }
        (seconds > self.max).then(|| {
            format!(
                "{seconds} seconds is more than the maximum of {} ({})",
                self.max, self.max_words
            )
        })
    }

    /// The time `written`, or the default when it is absent or would not validate.
    pub fn duration(&self, written: Option<f64>) -> Duration {
        let seconds = written
            .filter(|s| self.complaint(*s).is_none())
            .unwrap_or(self.default);
        // Cannot fail: `seconds` is finite, not negative and at most a week.
        Duration::try_from_secs_f64(seconds).unwrap_or_default()
    }
}

/// What is wrong with a number of CPUs (`resources.cpus`, `minCPU`), if anything.
pub(super) fn cpus_complaint(cpus: f64) -> Option<String> {
    (!(0.0..=MAX_CPUS).contains(&cpus))
        .then(|| format!("{cpus} is not a number of CPUs from 0 to {MAX_CPUS}"))
}

/// What is wrong with megabytes of memory (`resources.memoryMb`, `minMemory`), if anything.
pub(super) fn memory_complaint(mb: u64) -> Option<String> {
    (mb > MAX_MEMORY_MB)
        .then(|| format!("{mb} megabytes is more than the maximum of {MAX_MEMORY_MB} (64 TiB)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_as_written_within_its_bounds_and_the_default_outside() {
        let s = Duration::from_secs;
        let interval = Seconds::CHECK_INTERVAL;
        let start = Seconds::CHECK_START_PERIOD;
        // (name, field, written, expected)
        let cases = [
            ("absent", interval, None, s(10)),
            ("within", interval, Some(1.5), Duration::from_millis(1500)),
            ("at the bound", interval, Some(86_400.0), s(86_400)),
            ("past the bound", interval, Some(86_400.5), s(10)),
            ("zero where it must be positive", interval, Some(0.0), s(10)),
            ("zero where allowed", start, Some(0.0), s(0)),
            ("negative", start, Some(-1.0), s(0)),
            ("huge", interval, Some(1e20), s(10)),
            ("largest float", interval, Some(f64::MAX), s(10)),
            ("not a number", interval, Some(f64::NAN), s(10)),
            ("infinite", start, Some(f64::INFINITY), s(0)),
            (
                "a week",
                Seconds::UPDATE_DEADLINE,
                Some(604_800.0),
                s(604_800),
            ),
        ];
        for (name, field, written, want) in cases {
            assert_eq!(field.duration(written), want, "{name}");
        }
    }

    #[test]
    fn sizes_have_upper_bounds_that_docker_can_take() {
        assert!(cpus_complaint(MAX_CPUS).is_none() && cpus_complaint(0.0).is_none());
        for bad in [-0.5, MAX_CPUS + 1.0, f64::NAN, f64::INFINITY] {
            assert!(cpus_complaint(bad).is_some(), "{bad}");
        }
        assert!(memory_complaint(MAX_MEMORY_MB).is_none());
        assert!(memory_complaint(MAX_MEMORY_MB + 1).is_some());
        // Both convert to Docker's i64 without overflow.
        assert!((MAX_CPUS * 1e9) < i64::MAX as f64);
        assert!(MAX_MEMORY_MB
            .checked_mul(1024 * 1024)
            .is_some_and(|b| b < i64::MAX as u64));
    }
}
