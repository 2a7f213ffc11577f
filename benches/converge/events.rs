//! Docker's event stream read by name: which containers of a stack did something, and
//! when Docker first and last acted for it.

use crate::support::DockerEvent;

/// Distinct containers of `stack` that did `action`, and when the last one did.
pub(crate) fn count(events: &[DockerEvent], stack: &str, action: &str) -> (usize, i64) {
    let prefix = format!("{stack}.");
    let mut names = std::collections::BTreeSet::new();
    let mut last = 0;
    for e in events {
        if e.typ == "container" && e.action == action && e.name.starts_with(&prefix) {
            names.insert(e.name.clone());
            last = last.max(e.nanos);
        }
    }
    (names.len(), last)
}

/// When Docker first did anything for `stack` (its network or one of its containers).
pub(crate) fn first_event(events: &[DockerEvent], stack: &str) -> i64 {
    let prefix = format!("{stack}.");
    let net = format!("berth-{stack}");
    events
        .iter()
        .filter(|e| e.name == net || (e.typ == "container" && e.name.starts_with(&prefix)))
        .map(|e| e.nanos)
        .min()
        .unwrap_or(0)
}

pub(crate) fn network_event(events: &[DockerEvent], name: &str, action: &str) -> Option<i64> {
    events
        .iter()
        .find(|e| e.typ == "network" && e.action == action && e.name == name)
        .map(|e| e.nanos)
}
