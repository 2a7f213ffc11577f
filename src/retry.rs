//! Retry delays for etcd and Docker calls. The `backoff` crate is unmaintained, so it is
//! used here and nowhere else: swapping it means changing this file only.

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

/// Exponential delays with jitter, capped, that never give up: a controller outlives any
/// outage of the systems it drives.
pub struct Policy {
    inner: ExponentialBackoff,
}

impl Policy {
    /// 200 ms doubling up to 10 s.
    pub fn new() -> Policy {
        Policy::with(Duration::from_millis(200), Duration::from_secs(10))
    }

    pub fn with(initial: Duration, max: Duration) -> Policy {
        let inner = ExponentialBackoff {
            initial_interval: initial,
            current_interval: initial,
            max_interval: max,
            multiplier: 2.0,
            randomization_factor: 0.2,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        Policy { inner }
    }

    pub fn next_delay(&mut self) -> Duration {
        self.inner.next_backoff().unwrap_or(self.inner.max_interval)
    }

    /// Call after a success so the next failure starts small again.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut p = Policy::with(Duration::from_millis(100), Duration::from_secs(1));
        let first = p.next_delay();
        assert!(first <= Duration::from_millis(120), "{first:?}");
        let mut last = first;
        for _ in 0..20 {
            last = p.next_delay();
        }
        assert!(last <= Duration::from_millis(1200), "{last:?}");
        assert!(last >= Duration::from_millis(800), "{last:?}");
        p.reset();
        assert!(p.next_delay() <= Duration::from_millis(120));
    }
}
