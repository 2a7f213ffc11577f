//! When a reconcile wants to run again: a value, not an `Option<Duration>` whose `None`
//! had to be remembered as "at the resync" (kube-rs returns `Action` for the same reason).

use std::time::Duration;

/// What a reconcile asks of its loop besides the events that wake it anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing is due before the periodic resync.
    AtResync,
    /// Something is due: a backoff running out, a grace period ending, a retry.
    After(Duration),
}

impl Requeue {
    /// `After(d)` when there is a `d`, else `AtResync`.
    pub fn after(delay: Option<Duration>) -> Requeue {
        delay.map_or(Requeue::AtResync, Requeue::After)
    }

    /// The sooner of the two.
    pub fn min(self, other: Requeue) -> Requeue {
        match (self, other) {
            (Requeue::After(a), Requeue::After(b)) => Requeue::After(a.min(b)),
            (Requeue::After(a), Requeue::AtResync) | (Requeue::AtResync, Requeue::After(a)) => {
                Requeue::After(a)
            }
            (Requeue::AtResync, Requeue::AtResync) => Requeue::AtResync,
        }
    }

    /// How long the loop sleeps: never past the resync.
    pub fn delay(self, resync: Duration) -> Duration {
        match self {
            Requeue::AtResync => resync,
            Requeue::After(d) => d.min(resync),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sooner_wins_and_nothing_sleeps_past_the_resync() {
        let s = Duration::from_secs;
        let resync = s(30);
        let cases = [
            (
                "both at resync",
                Requeue::AtResync,
                Requeue::AtResync,
                s(30),
            ),
            ("one due", Requeue::AtResync, Requeue::After(s(2)), s(2)),
            (
                "the sooner of two",
                Requeue::After(s(5)),
                Requeue::After(s(2)),
                s(2),
            ),
            (
                "due after the resync: the resync",
                Requeue::After(s(90)),
                Requeue::AtResync,
                s(30),
            ),
        ];
        for (name, a, b, want) in cases {
            assert_eq!(a.min(b).delay(resync), want, "{name}");
            assert_eq!(b.min(a).delay(resync), want, "{name} (swapped)");
        }
        assert_eq!(Requeue::after(None), Requeue::AtResync);
        assert_eq!(Requeue::after(Some(s(1))), Requeue::After(s(1)));
    }
}
