//! The heart of the agent: compare the containers that should exist with the ones that do
//! and list the actions that close the gap. Pure: no IO, no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::actual::{ActualContainer, RunState};
use super::desired::DesiredContainer;
use crate::health::Health;
use crate::slot::SlotId;
use crate::spec::UpdateOrder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// No slot on this host wants it (stack deleted, slot moved, replicas lowered).
    Orphan,
    /// A second container for a slot that already has one.
    Duplicate,
    /// The slot's new container (started first, beside it) is ready: its predecessor goes.
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the desired container `name` and start it if it should run.
    Create {
        name: String,
    },
    /// Start an existing container; `restart` when it had run and exited.
    Start {
        id: String,
        name: String,
        restart: bool,
    },
    /// Restart a running container that stays unhealthy (a liveness failure).
    Restart {
        id: String,
        name: String,
    },
    Stop {
        id: String,
        name: String,
    },
    /// Put `name` on the new spec in place of `old_id`. Stop-first: stop and remove the
    /// old container, then create the new one. `start_first` when both can run at once
    /// (no shared host port, no shared data mount): only create and start the new one,
    /// under a temporary name; the old one keeps serving until a later pass finds the new
    /// one ready and removes it ([`RemoveReason::Replaced`]), so the slot is never empty.
    Replace {
        old_id: String,
        name: String,
        start_first: bool,
    },
    /// Put a hand-renamed container's name back.
    Rename {
        id: String,
        to: String,
    },
    Remove {
        id: String,
        name: String,
        stack: String,
        /// The container's start-order level: removal goes in reverse.
        order: u32,
        reason: RemoveReason,
    },
}

impl Action {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Start { restart: true, .. } | Action::Restart { .. } => "restart",
            Action::Start { .. } => "start",
            Action::Stop { .. } => "stop",
            Action::Replace { .. } => "replace",
            Action::Rename { .. } => "rename",
            Action::Remove { .. } => "remove",
        }
    }

    /// Starting it again after a crash or a failed health check: crash-loop backoff
    /// applies.
    pub fn is_restart(&self) -> bool {
        matches!(
            self,
            Action::Start { restart: true, .. } | Action::Restart { .. }
        )
    }
}

fn remove(c: &ActualContainer, reason: RemoveReason) -> Action {
    Action::Remove {
        id: c.id.clone(),
        name: c.name.clone(),
        stack: c.slot.stack.clone(),
        order: c.order,
        reason,
    }
}

/// How an exited container ended, when its service's `restartPolicy` says it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Exited 0 under `on-failure` or `never`.
    Completed,
    /// Exited non-zero under `never` (`None`: Docker did not say with what).
    Failed { exit_code: Option<i64> },
}

/// Whether `a`, a container of `d`'s slot, has finished: it exited, and its restart
/// policy does not start it again. A finished container is kept as it is (its logs stay
/// readable) and is neither started nor replaced until the spec changes. Only while it
/// should run: a container that `desiredState: stopped` stopped is merely stopped.
pub fn finished(d: &DesiredContainer, a: &ActualContainer) -> Option<Finished> {
    if !d.run || a.state != RunState::Exited || d.slot.restart_policy.restarts_after(a.exit_code) {
        return None;
    }
    Some(match a.exit_code {
        Some(0) => Finished::Completed,
        exit_code => Finished::Failed { exit_code },
    })
}

/// Ready to take over from a predecessor: running, and healthy when it has a check; or
/// a one-shot service that completed, which will never run again to be ready.
fn ready(c: &ActualContainer, d: &DesiredContainer) -> bool {
    let up = c.state == RunState::Running
        && (d.slot.health_check.is_none() || c.health == Some(Health::Healthy));
    up || finished(d, c) == Some(Finished::Completed)
}

/// Can the replacement run beside the old container? Only beside a running one, and not
/// when they clash ([`ContainerSpec::clash_with`](crate::assignment::ContainerSpec)).
fn can_coexist(old: &ActualContainer, new: &DesiredContainer) -> bool {
    old.state == RunState::Running && new.spec().clash_with(&old.host_ports).is_none()
}

/// Removals come first (they free names and host ports), then everything else in the
/// desired containers' start order.
pub fn plan(desired: &[DesiredContainer], actual: &[ActualContainer]) -> Vec<Action> {
    let mut by_slot: BTreeMap<&SlotId, Vec<&ActualContainer>> = BTreeMap::new();
    for a in actual {
        // Docker is already removing it; acting again would only fail.
        if a.state == RunState::Removing {
            continue;
        }
        by_slot.entry(&a.slot).or_default().push(a);
    }

    let mut removals = Vec::new();
    let mut ordered: Vec<(u32, &str, Action)> = Vec::new();
    for d in desired {
        // Waiting for a dependency to be healthy: bring nothing new up for this slot.
        let gated = !d.slot.waiting_for.is_empty();
        let mut push = |a: Action| ordered.push((d.order(), &d.name, a));
        let candidates = by_slot.remove(&d.id).unwrap_or_default();
        let Some((keep, extra)) = pick(d, candidates) else {
            if !gated {
                push(Action::Create {
                    name: d.name.clone(),
                });
            }
            continue;
        };
        // A start-first replacement under way: the new container (current spec) is not
        // ready yet, so a predecessor still running keeps serving and keeps its name.
        let current = keep.spec_hash == d.spec_hash;
        let replacing = current && !ready(keep, d);
        let mut held = false;
        for dup in extra {
            // The one it replaces still has the slot's name; an older-spec container under
            // another name is a replacement given up on (the spec went back), a duplicate.
            let predecessor = current
                && dup.name == d.name
                && dup.spec_hash != d.spec_hash
                && dup.state == RunState::Running;
            if predecessor && replacing {
                held = true;
                continue;
            }
            let reason = if predecessor {
                RemoveReason::Replaced
            } else {
                RemoveReason::Duplicate
            };
            removals.push(remove(dup, reason));
        }
        // A dead replacement goes; its predecessor serves and holds the name meanwhile, so
        // the next pass starts another replacement beside it.
        if held && keep.state == RunState::Dead {
            removals.push(remove(keep, RemoveReason::Duplicate));
            continue;
        }
        // A dead container cannot be started again; a new spec needs a new container.
        if !current || keep.state == RunState::Dead {
            if !gated {
                push(Action::Replace {
                    old_id: keep.id.clone(),
                    name: d.name.clone(),
                    start_first: d.slot.update_order != Some(UpdateOrder::StopFirst)
                        && can_coexist(keep, d),
                });
            }
            continue;
        }
        // The name is free once the predecessor is gone (removals run first).
        if keep.name != d.name && !held {
            push(Action::Rename {
                id: keep.id.clone(),
                to: d.name.clone(),
            });
        }
        // Finished as its restart policy asks: not started again, and kept (no liveness
        // restart either: an exited container has no health to check).
        if finished(d, keep).is_some() {
            continue;
        }
        match (d.run, keep.state) {
            (true, RunState::Created | RunState::Exited) if !gated => push(Action::Start {
                id: keep.id.clone(),
                name: d.name.clone(),
                restart: keep.state == RunState::Exited,
            }),
            (true, RunState::Running) if keep.health == Some(Health::Unhealthy) => {
                push(Action::Restart {
                    id: keep.id.clone(),
                    name: d.name.clone(),
                })
            }
            (false, RunState::Running | RunState::Restarting | RunState::Paused) => {
                push(Action::Stop {
                    id: keep.id.clone(),
                    name: d.name.clone(),
                })
            }
            _ => {}
        }
    }
    for orphans in by_slot.into_values() {
        for o in orphans {
            removals.push(remove(o, RemoveReason::Orphan));
        }
    }
    ordered.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    removals.extend(ordered.into_iter().map(|(_, _, a)| a));
    removals
}

/// The stack networks this host made (as (name, stack)) whose stack has no container
/// here any more, wanted or running: a stack that left the host, or was deleted. Nothing
/// is removed while a container of the stack is still wanted or still exists.
pub fn stale_networks(
    networks: &[(String, String)],
    desired: &[DesiredContainer],
    actual: &[ActualContainer],
) -> Vec<String> {
    let here: BTreeSet<&str> = desired
        .iter()
        .map(|d| d.id.stack.as_str())
        .chain(actual.iter().map(|a| a.slot.stack.as_str()))
        .collect();
    networks
        .iter()
        .filter(|(_, stack)| !here.contains(stack.as_str()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The container to keep for a slot, and the rest. Prefer the current spec, then a running
/// one, then the expected name, then the lowest id, so the choice is stable across passes.
fn pick<'a>(
    d: &DesiredContainer,
    mut candidates: Vec<&'a ActualContainer>,
) -> Option<(&'a ActualContainer, Vec<&'a ActualContainer>)> {
    if candidates.is_empty() {
        return None;
    }
    candidates.sort_by_key(|c| {
        (
            c.spec_hash != d.spec_hash,
            c.state != RunState::Running,
            c.name != d.name,
            c.id.clone(),
        )
    });
    let keep = candidates.remove(0);
    Some((keep, candidates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::desired::spec_hash;
    use crate::assignment::{ContainerSpec, Slot};
    use crate::spec::RestartPolicy;

    fn want(service: &str, image: &str, order: u32) -> DesiredContainer {
        let spec = ContainerSpec {
            image: image.into(),
            ..Default::default()
        };
        let id = SlotId::new("s", service, 1);
        DesiredContainer {
            name: id.container_name(),
            id,
            spec_hash: spec_hash(&spec, "net"),
            slot: Slot {
                order,
                ..Slot::bare(service, 1, spec.clone())
            },
            spec_revision: 7,
            run: true,
            network: "net".into(),
        }
    }

    fn have(id: &str, d: &DesiredContainer, state: RunState) -> ActualContainer {
        ActualContainer::made_for(id, d, state)
    }

    #[test]
    fn stale_networks_table() {
        let web = want("web", "img:1", 0);
        let other = DesiredContainer {
            id: SlotId::new("t", "web", 1),
            ..web.clone()
        };
        let nets = vec![
            ("berth-s".to_owned(), "s".to_owned()),
            ("berth-t".to_owned(), "t".to_owned()),
        ];
        type Case<'a> = (
            &'a str,
            Vec<DesiredContainer>,
            Vec<ActualContainer>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "both stacks wanted: keep both",
                vec![web.clone(), other.clone()],
                vec![],
                vec![],
            ),
            (
                "stack deleted, its container still being removed: keep",
                vec![other.clone()],
                vec![have("c1", &web, RunState::Exited)],
                vec![],
            ),
            (
                "stack deleted and its containers gone: remove its network only",
                vec![other.clone()],
                vec![have("c2", &other, RunState::Running)],
                vec!["berth-s"],
            ),
            (
                "wanted but not created yet (network made first): keep",
                vec![web.clone()],
                vec![have("c2", &other, RunState::Running)],
                vec![],
            ),
            (
                "nothing here at all: remove both",
                vec![],
                vec![],
                vec!["berth-s", "berth-t"],
            ),
        ];
        for (name, desired, actual, want) in cases {
            assert_eq!(stale_networks(&nets, &desired, &actual), want, "{name}");
        }
    }

    #[test]
    fn plan_table() {
        let web = want("web", "img:1", 0);
        let db = want("db", "db:1", 0);
        let app = want("app", "app:1", 1);
        let stopped_web = DesiredContainer {
            run: false,
            ..web.clone()
        };
        let web_v2 = want("web", "img:2", 0);
        let mut waiting = web.clone();
        waiting.slot.waiting_for = vec!["db (h2)".into()];
        let mut waiting_v2 = web_v2.clone();
        waiting_v2.slot.waiting_for = vec!["db (h2)".into()];
        let with_port = |d: &DesiredContainer| {
            let mut d = d.clone();
            d.slot.container.ports.push(crate::assignment::PortBinding {
                container_port: 80,
                host_port: Some(8080),
                protocol: "tcp".into(),
                host_ip: None,
            });
            d
        };
        let ordered = |order| {
            let mut d = web_v2.clone();
            d.slot.update_order = Some(order);
            d
        };
        let stop_first_v2 = ordered(UpdateOrder::StopFirst);
        let start_first_v2 = ordered(UpdateOrder::StartFirst);
        let web_port = with_port(&web);
        let web_port_v2 = with_port(&web_v2);
        let unhealthy = ActualContainer {
            health: Some(Health::Unhealthy),
            ..have("c1", &web, RunState::Running)
        };
        let renamed = ActualContainer {
            name: "someone-renamed-it".into(),
            ..have("c1", &web, RunState::Running)
        };
        // A start-first replacement under way: the old container still has the slot's
        // name, the new one (current spec) runs beside it under a temporary name.
        let mut checked_v2 = web_v2.clone();
        checked_v2.slot.health_check = Some(crate::spec::HealthCheck {
            type_: "http".into(),
            ..Default::default()
        });
        let old = have("old", &web, RunState::Running);
        let new = |state: RunState, health: Option<Health>| ActualContainer {
            name: "s.web.1.tempname".into(),
            health,
            ..have("new", &checked_v2, state)
        };
        let removed_old = Action::Remove {
            id: "old".into(),
            name: "s.web.1".into(),
            stack: "s".into(),
            order: 0,
            reason: RemoveReason::Replaced,
        };
        let renamed_new = Action::Rename {
            id: "new".into(),
            to: "s.web.1".into(),
        };
        // One-shot services: (restart policy, spec) and a container of it that exited.
        let policy = |p: RestartPolicy, d: &DesiredContainer| {
            let mut d = d.clone();
            d.slot.restart_policy = p;
            d
        };
        let exited = |id: &str, d: &DesiredContainer, code: Option<i64>| ActualContainer {
            exit_code: code,
            ..have(id, d, RunState::Exited)
        };
        let job = policy(RestartPolicy::OnFailure, &web);
        let once = policy(RestartPolicy::Never, &web);
        let job_v2 = policy(RestartPolicy::OnFailure, &web_v2);
        let once_v2 = policy(RestartPolicy::Never, &web_v2);
        let restarted = Action::Start {
            id: "c1".into(),
            name: "s.web.1".into(),
            restart: true,
        };
        let new_exited = |d: &DesiredContainer, code| ActualContainer {
            name: "s.web.1.tempname".into(),
            ..exited("new", d, Some(code))
        };

        struct Case {
            name: &'static str,
            desired: Vec<DesiredContainer>,
            actual: Vec<ActualContainer>,
            want: Vec<Action>,
        }
        let cases = vec![
            Case {
                name: "missing container: create",
                desired: vec![web.clone()],
                actual: vec![],
                want: vec![Action::Create {
                    name: "s.web.1".into(),
                }],
            },
            Case {
                name: "running with current spec: nothing to do",
                desired: vec![web.clone()],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![],
            },
            Case {
                name: "container exited: restart",
                desired: vec![web.clone()],
                actual: vec![have("c1", &web, RunState::Exited)],
                want: vec![Action::Start {
                    id: "c1".into(),
                    name: "s.web.1".into(),
                    restart: true,
                }],
            },
            Case {
                name: "always, exited 0: restarted all the same",
                desired: vec![web.clone()],
                actual: vec![exited("c1", &web, Some(0))],
                want: vec![restarted.clone()],
            },
            Case {
                name: "on-failure, exited 0: completed, kept as it is",
                desired: vec![job.clone()],
                actual: vec![exited("c1", &job, Some(0))],
                want: vec![],
            },
            Case {
                name: "on-failure, exited non-zero: restarted",
                desired: vec![job.clone()],
                actual: vec![exited("c1", &job, Some(3))],
                want: vec![restarted.clone()],
            },
            Case {
                name: "on-failure, exit code unknown: restarted",
                desired: vec![job.clone()],
                actual: vec![exited("c1", &job, None)],
                want: vec![restarted.clone()],
            },
            Case {
                name: "never, exited non-zero: failed, kept as it is",
                desired: vec![once.clone()],
                actual: vec![exited("c1", &once, Some(3))],
                want: vec![],
            },
            Case {
                name: "never, exited 0: completed, kept as it is",
                desired: vec![once.clone()],
                actual: vec![exited("c1", &once, Some(0))],
                want: vec![],
            },
            Case {
                name: "never, created but never started: started once",
                desired: vec![once.clone()],
                actual: vec![have("c1", &once, RunState::Created)],
                want: vec![Action::Start {
                    id: "c1".into(),
                    name: "s.web.1".into(),
                    restart: false,
                }],
            },
            Case {
                name: "never, running: left to finish",
                desired: vec![once.clone()],
                actual: vec![have("c1", &once, RunState::Running)],
                want: vec![],
            },
            Case {
                name: "completed, then the spec changed: replaced, stop first (it does not run)",
                desired: vec![job_v2.clone()],
                actual: vec![exited("c1", &job, Some(0))],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: false,
                }],
            },
            Case {
                name: "failed under never, then the spec changed: replaced",
                desired: vec![once_v2.clone()],
                actual: vec![exited("c1", &once, Some(3))],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: false,
                }],
            },
            Case {
                name: "completed, renamed by hand: renamed back, not started",
                desired: vec![job.clone()],
                actual: vec![ActualContainer {
                    name: "someone-renamed-it".into(),
                    ..exited("c1", &job, Some(0))
                }],
                want: vec![Action::Rename {
                    id: "c1".into(),
                    to: "s.web.1".into(),
                }],
            },
            Case {
                name: "start-first replacement completed: the old one goes, the new one takes the name",
                desired: vec![job_v2.clone()],
                actual: vec![old.clone(), new_exited(&job_v2, 0)],
                want: vec![removed_old.clone(), renamed_new.clone()],
            },
            Case {
                name: "start-first replacement failed under never: kept, the old one keeps serving",
                desired: vec![once_v2.clone()],
                actual: vec![old.clone(), new_exited(&once_v2, 3)],
                want: vec![],
            },
            Case {
                name: "created but never started: start",
                desired: vec![web.clone()],
                actual: vec![have("c1", &web, RunState::Created)],
                want: vec![Action::Start {
                    id: "c1".into(),
                    name: "s.web.1".into(),
                    restart: false,
                }],
            },
            Case {
                name: "spec hash differs: replace",
                desired: vec![web_v2.clone()],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: true,
                }],
            },
            Case {
                name: "spec changed, stop-first asked: stop first though both could run",
                desired: vec![stop_first_v2.clone()],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: false,
                }],
            },
            Case {
                name: "spec changed, start-first asked: start first",
                desired: vec![start_first_v2.clone()],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: true,
                }],
            },
            Case {
                name: "start-first asked but the old one binds the same host port: stop first",
                desired: vec![with_port(&start_first_v2)],
                actual: vec![have("c1", &web_port, RunState::Running)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: false,
                }],
            },
            Case {
                name: "spec changed but the old one binds the same host port: stop first",
                desired: vec![web_port_v2.clone()],
                actual: vec![have("c1", &web_port, RunState::Running)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: false,
                }],
            },
            Case {
                name: "start-first replacement still starting: the old one keeps serving",
                desired: vec![checked_v2.clone()],
                actual: vec![old.clone(), new(RunState::Running, Some(Health::Starting))],
                want: vec![],
            },
            Case {
                name:
                    "start-first replacement healthy: the old one goes, the new one takes the name",
                desired: vec![checked_v2.clone()],
                actual: vec![old.clone(), new(RunState::Running, Some(Health::Healthy))],
                want: vec![removed_old.clone(), renamed_new.clone()],
            },
            Case {
                name: "start-first replacement without a check: ready once running",
                desired: vec![web_v2.clone()],
                actual: vec![
                    old.clone(),
                    ActualContainer {
                        name: "s.web.1.tempname".into(),
                        ..have("new", &web_v2, RunState::Running)
                    },
                ],
                want: vec![removed_old.clone(), renamed_new.clone()],
            },
            Case {
                name: "start-first replacement unhealthy: restarted, the old one keeps serving",
                desired: vec![checked_v2.clone()],
                actual: vec![old.clone(), new(RunState::Running, Some(Health::Unhealthy))],
                want: vec![Action::Restart {
                    id: "new".into(),
                    name: "s.web.1".into(),
                }],
            },
            Case {
                name: "start-first replacement crashed: started again, the old one keeps serving",
                desired: vec![checked_v2.clone()],
                actual: vec![old.clone(), new(RunState::Exited, None)],
                want: vec![Action::Start {
                    id: "new".into(),
                    name: "s.web.1".into(),
                    restart: true,
                }],
            },
            Case {
                name: "start-first replacement dead: removed, the old one keeps serving",
                desired: vec![checked_v2.clone()],
                actual: vec![old.clone(), new(RunState::Dead, None)],
                want: vec![Action::Remove {
                    id: "new".into(),
                    name: "s.web.1.tempname".into(),
                    stack: "s".into(),
                    order: 0,
                    reason: RemoveReason::Duplicate,
                }],
            },
            Case {
                name: "rolled back before the replacement was ready: the replacement goes",
                desired: vec![web.clone()],
                actual: vec![old.clone(), new(RunState::Running, Some(Health::Starting))],
                want: vec![Action::Remove {
                    id: "new".into(),
                    name: "s.web.1.tempname".into(),
                    stack: "s".into(),
                    order: 0,
                    reason: RemoveReason::Duplicate,
                }],
            },
            Case {
                name: "unhealthy and running: restart",
                desired: vec![web.clone()],
                actual: vec![unhealthy],
                want: vec![Action::Restart {
                    id: "c1".into(),
                    name: "s.web.1".into(),
                }],
            },
            Case {
                name: "waiting for a dependency: not created yet",
                desired: vec![waiting.clone()],
                actual: vec![],
                want: vec![],
            },
            Case {
                name: "waiting for a dependency: the old version keeps running",
                desired: vec![waiting_v2.clone()],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![],
            },
            Case {
                name: "waiting for a dependency: an exited container is not started",
                desired: vec![waiting.clone()],
                actual: vec![have("c1", &web, RunState::Exited)],
                want: vec![],
            },
            Case {
                name: "dead container: replace",
                desired: vec![web.clone()],
                actual: vec![have("c1", &web, RunState::Dead)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
                    start_first: false,
                }],
            },
            Case {
                name: "orphan: remove",
                desired: vec![],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![Action::Remove {
                    id: "c1".into(),
                    name: "s.web.1".into(),
                    stack: "s".into(),
                    order: 0,
                    reason: RemoveReason::Orphan,
                }],
            },
            Case {
                name: "two containers for one slot: keep the running current one",
                desired: vec![web.clone()],
                actual: vec![
                    have("c2", &web, RunState::Exited),
                    have("c1", &web, RunState::Running),
                ],
                want: vec![Action::Remove {
                    id: "c2".into(),
                    name: "s.web.1".into(),
                    stack: "s".into(),
                    order: 0,
                    reason: RemoveReason::Duplicate,
                }],
            },
            Case {
                name: "renamed by hand: rename back, keep running",
                desired: vec![web.clone()],
                actual: vec![renamed],
                want: vec![Action::Rename {
                    id: "c1".into(),
                    to: "s.web.1".into(),
                }],
            },
            Case {
                name: "desired stopped and running: stop",
                desired: vec![stopped_web.clone()],
                actual: vec![have("c1", &web, RunState::Running)],
                want: vec![Action::Stop {
                    id: "c1".into(),
                    name: "s.web.1".into(),
                }],
            },
            Case {
                name: "desired stopped and exited: leave it",
                desired: vec![stopped_web.clone()],
                actual: vec![have("c1", &web, RunState::Exited)],
                want: vec![],
            },
            Case {
                name: "being removed by docker: ignored, then recreated",
                desired: vec![web.clone()],
                actual: vec![have("c1", &web, RunState::Removing)],
                want: vec![Action::Create {
                    name: "s.web.1".into(),
                }],
            },
            Case {
                name: "dependencies first, removals before creates",
                desired: vec![app.clone(), db.clone()],
                actual: vec![have("old", &want("gone", "x", 0), RunState::Running)],
                want: vec![
                    Action::Remove {
                        id: "old".into(),
                        name: "s.gone.1".into(),
                        stack: "s".into(),
                        order: 0,
                        reason: RemoveReason::Orphan,
                    },
                    Action::Create {
                        name: "s.db.1".into(),
                    },
                    Action::Create {
                        name: "s.app.1".into(),
                    },
                ],
            },
        ];
        for c in cases {
            assert_eq!(plan(&c.desired, &c.actual), c.want, "case: {}", c.name);
        }
    }

    #[test]
    fn plan_is_idempotent_once_converged() {
        let web = want("web", "img:1", 0);
        let actual = vec![have("c1", &web, RunState::Running)];
        assert!(plan(std::slice::from_ref(&web), &actual).is_empty());
    }
}
