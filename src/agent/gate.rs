//! What holds a planned action back on this host, decided in one place: a stack whose
//! assignment cannot be read keeps its containers, a restart waits out its crash-loop
//! backoff, this host's bind-mount policy refuses a spec, and a slot whose last failure
//! was permanent waits for a new spec instead of failing again. Pure: the caller passes
//! the clock and the state.

use std::collections::BTreeMap;
use std::time::Instant;

use super::crash_backoff::CrashBackoff;
use super::desired::DesiredContainer;
use super::plan::Action;
use super::report::SlotError;
use crate::requeue::Requeue;

/// What the gate looks at.
pub struct Holds<'a> {
    pub desired: &'a [DesiredContainer],
    /// Stack ids whose assignment could not be read.
    pub unreadable: &'a [String],
    /// Host paths under which bind mounts are allowed.
    pub allow_bind_prefixes: &'a [String],
    /// Per-container failures so far, by name.
    pub errors: &'a BTreeMap<String, SlotError>,
    pub crash: &'a CrashBackoff,
    pub now: Instant,
}

/// The actions that may run now, what the host refuses, and when a held restart is due.
#[derive(Debug, PartialEq)]
pub struct Gated {
    pub actions: Vec<Action>,
    /// Slots this host's policy refuses, by container name: permanent errors to report.
    pub refused: BTreeMap<String, SlotError>,
    /// The soonest a held restart may go.
    pub requeue: Requeue,
}

pub fn gate(planned: Vec<Action>, h: &Holds<'_>) -> Gated {
    let refused: BTreeMap<String, SlotError> = h
        .desired
        .iter()
        .filter_map(|d| Some((d.name.clone(), bind_refusal(d, h.allow_bind_prefixes)?)))
        .collect();
    let mut requeue = Requeue::AtResync;
    let actions = planned
        .into_iter()
        .filter(|a| match a {
            // A stack whose assignment we cannot read is not a deleted stack.
            Action::Remove { stack, .. } => !h.unreadable.contains(stack),
            Action::Start { name, .. } | Action::Restart { name, .. } if a.is_restart() => {
                match h.crash.wait(name, h.now) {
                    Some(left) => {
                        requeue = requeue.min(Requeue::After(left));
                        false
                    }
                    None => true,
                }
            }
            Action::Create { name } | Action::Replace { name, .. } => {
                let permanent = h.errors.get(name).is_some_and(|e| e.permanent);
                !permanent && !refused.contains_key(name)
            }
            _ => true,
        })
        .collect();
    Gated {
        actions,
        refused,
        requeue,
    }
}

/// Why this host refuses `d`'s bind mounts, if it does.
fn bind_refusal(d: &DesiredContainer, allowed: &[String]) -> Option<SlotError> {
    let m = d
        .spec()
        .mounts
        .iter()
        .find(|m| m.kind == "bind" && !crate::spec::bind_allowed(&m.source, allowed))?;
    Some(SlotError {
        message: format!(
            "bind mount of {} refused: this host allows bind mounts only under {} (agent flag --allow-bind-prefix)",
            m.source,
            if allowed.is_empty() {
                "no path".to_owned()
            } else {
                allowed.join(", ")
            }
        ),
        permanent: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::plan::RemoveReason;
    use crate::assignment::{ContainerSpec, MountSpec, Slot};
    use crate::slot::SlotId;
    use std::time::Duration;

    fn desired(service: &str, bind: Option<&str>) -> DesiredContainer {
        let id = SlotId::new("s", service, 1);
        DesiredContainer {
            name: id.container_name(),
            id,
            spec_hash: "h".into(),
            spec_revision: 1,
            run: true,
            network: "n".into(),
            slot: Slot::bare(
                service,
                1,
                ContainerSpec {
                    image: "i".into(),
                    mounts: bind
                        .map(|src| MountSpec {
                            kind: "bind".into(),
                            source: src.into(),
                            target: "/data".into(),
                            read_only: false,
                        })
                        .into_iter()
                        .collect(),
                    ..Default::default()
                },
            ),
        }
    }

    fn create(name: &str) -> Action {
        Action::Create { name: name.into() }
    }
    fn replace(name: &str) -> Action {
        Action::Replace {
            old_id: "old".into(),
            name: name.into(),
            start_first: true,
        }
    }
    fn restart_exited(name: &str) -> Action {
        Action::Start {
            id: "c".into(),
            name: name.into(),
            restart: true,
        }
    }
    fn first_start(name: &str) -> Action {
        Action::Start {
            id: "c".into(),
            name: name.into(),
            restart: false,
        }
    }
    fn restart_unhealthy(name: &str) -> Action {
        Action::Restart {
            id: "c".into(),
            name: name.into(),
        }
    }
    fn remove(stack: &str) -> Action {
        Action::Remove {
            id: "c".into(),
            name: format!("{stack}.web.1"),
            stack: stack.into(),
            order: 0,
            reason: RemoveReason::Orphan,
        }
    }

    #[test]
    fn gate_table() {
        let now = Instant::now();
        let web = desired("web", None);
        let data = desired("data", Some("/srv/data"));
        let mut backing_off = CrashBackoff::default();
        backing_off.restarted("s.web.1", now);
        let mut backed_off = CrashBackoff::default();
        backed_off.restarted("s.web.1", now - Duration::from_secs(5));
        let none = CrashBackoff::default();
        let failed = |permanent| {
            BTreeMap::from([(
                "s.web.1".to_owned(),
                SlotError {
                    message: "image i not found".into(),
                    permanent,
                },
            )])
        };
        let (permanent, transient, clean) = (failed(true), failed(false), BTreeMap::new());
        let srv = vec!["/srv".to_owned()];
        let unreadable = vec!["gone".to_owned()];
        // (name, action, unreadable stacks, allowed prefixes, errors, backoff, runs?, requeue?)
        type Case<'a> = (
            &'a str,
            Action,
            &'a [String],
            &'a [String],
            &'a BTreeMap<String, SlotError>,
            &'a CrashBackoff,
            bool,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "orphan of a readable stack: removed",
                remove("s"),
                &[],
                &[],
                &clean,
                &none,
                true,
                false,
            ),
            (
                "container of an unreadable stack: kept",
                remove("gone"),
                &unreadable,
                &[],
                &clean,
                &none,
                false,
                false,
            ),
            (
                "restart inside its backoff: held, pass due when it ends",
                restart_exited("s.web.1"),
                &[],
                &[],
                &clean,
                &backing_off,
                false,
                true,
            ),
            (
                "unhealthy restart inside its backoff: held",
                restart_unhealthy("s.web.1"),
                &[],
                &[],
                &clean,
                &backing_off,
                false,
                true,
            ),
            (
                "restart after its backoff ran out: runs",
                restart_exited("s.web.1"),
                &[],
                &[],
                &clean,
                &backed_off,
                true,
                false,
            ),
            (
                "first start is no restart: runs despite a backoff",
                first_start("s.web.1"),
                &[],
                &[],
                &clean,
                &backing_off,
                true,
                false,
            ),
            (
                "create after a permanent failure: held until the spec changes",
                create("s.web.1"),
                &[],
                &[],
                &permanent,
                &none,
                false,
                false,
            ),
            (
                "replace after a permanent failure: held",
                replace("s.web.1"),
                &[],
                &[],
                &permanent,
                &none,
                false,
                false,
            ),
            (
                "create after a passing failure: retried",
                create("s.web.1"),
                &[],
                &[],
                &transient,
                &none,
                true,
                false,
            ),
            (
                "bind mount outside the allowed prefixes: refused",
                create("s.data.1"),
                &[],
                &[],
                &clean,
                &none,
                false,
                false,
            ),
            (
                "bind mount under an allowed prefix: created",
                create("s.data.1"),
                &[],
                &srv,
                &clean,
                &none,
                true,
                false,
            ),
        ];
        let all = [web.clone(), data.clone()];
        for (name, action, unreadable, allowed, errors, crash, runs, requeue) in cases {
            let g = gate(
                vec![action.clone()],
                &Holds {
                    desired: &all,
                    unreadable,
                    allow_bind_prefixes: allowed,
                    errors,
                    crash,
                    now,
                },
            );
            assert_eq!(g.actions.is_empty(), !runs, "{name}");
            assert_eq!(g.requeue != Requeue::AtResync, requeue, "{name}");
        }
    }

    #[test]
    fn a_refused_bind_mount_says_why_and_where_it_may_be() {
        let data = desired("data", Some("/etc"));
        let g = |allowed: &[String]| {
            gate(
                vec![],
                &Holds {
                    desired: std::slice::from_ref(&data),
                    unreadable: &[],
                    allow_bind_prefixes: allowed,
                    errors: &BTreeMap::new(),
                    crash: &CrashBackoff::default(),
                    now: Instant::now(),
                },
            )
        };
        let none = g(&[]).refused;
        assert_eq!(
            none["s.data.1"].message,
            "bind mount of /etc refused: this host allows bind mounts only under no path (agent flag --allow-bind-prefix)"
        );
        assert!(none["s.data.1"].permanent);
        let some = g(&["/srv".to_owned(), "/data".to_owned()]).refused;
        assert!(some["s.data.1"].message.contains("only under /srv, /data"));
        assert!(g(&["/etc".to_owned()]).refused.is_empty());
    }
}
