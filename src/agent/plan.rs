//! The heart of the agent: compare the containers that should exist with the ones that do
//! and list the actions that close the gap. Pure: no IO, no clock.

use std::collections::BTreeMap;

use super::desired::DesiredContainer;

/// Docker's view of a container's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Removing => "removing",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
        }
    }
}

/// A managed container as Docker reports it (identity from its `berth.*` labels).
#[derive(Debug, Clone, PartialEq)]
pub struct ActualContainer {
    pub id: String,
    pub name: String,
    pub stack: String,
    pub service: String,
    pub replica: u32,
    pub spec_hash: String,
    pub state: RunState,
    pub exit_code: Option<i64>,
    /// Docker's own health status when the container has a HEALTHCHECK.
    pub docker_health: Option<String>,
    pub ip: Option<String>,
    pub started_at: Option<String>,
}

impl ActualContainer {
    fn slot_key(&self) -> (String, String, u32) {
        (self.stack.clone(), self.service.clone(), self.replica)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// No slot on this host wants it (stack deleted, slot moved, replicas lowered).
    Orphan,
    /// A second container for a slot that already has one.
    Duplicate,
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
    Stop {
        id: String,
        name: String,
    },
    /// Remove `old_id` and create `name` from the new spec.
    Replace {
        old_id: String,
        name: String,
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
        reason: RemoveReason,
    },
}

impl Action {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Start { restart: true, .. } => "restart",
            Action::Start { .. } => "start",
            Action::Stop { .. } => "stop",
            Action::Replace { .. } => "replace",
            Action::Rename { .. } => "rename",
            Action::Remove { .. } => "remove",
        }
    }
}

/// Removals come first (they free names and host ports), then everything else in the
/// desired containers' start order.
pub fn plan(desired: &[DesiredContainer], actual: &[ActualContainer]) -> Vec<Action> {
    let mut by_slot: BTreeMap<(String, String, u32), Vec<&ActualContainer>> = BTreeMap::new();
    for a in actual {
        // Docker is already removing it; acting again would only fail.
        if a.state == RunState::Removing {
            continue;
        }
        by_slot.entry(a.slot_key()).or_default().push(a);
    }

    let mut removals = Vec::new();
    let mut ordered: Vec<(u32, &str, Action)> = Vec::new();
    for d in desired {
        let candidates = by_slot.remove(&d.slot_key()).unwrap_or_default();
        let Some((keep, extra)) = pick(d, candidates) else {
            ordered.push((
                d.order,
                &d.name,
                Action::Create {
                    name: d.name.clone(),
                },
            ));
            continue;
        };
        for dup in extra {
            removals.push(Action::Remove {
                id: dup.id.clone(),
                name: dup.name.clone(),
                stack: dup.stack.clone(),
                reason: RemoveReason::Duplicate,
            });
        }
        // A dead container cannot be started again; a new spec needs a new container.
        if keep.spec_hash != d.spec_hash || keep.state == RunState::Dead {
            ordered.push((
                d.order,
                &d.name,
                Action::Replace {
                    old_id: keep.id.clone(),
                    name: d.name.clone(),
                },
            ));
            continue;
        }
        if keep.name != d.name {
            ordered.push((
                d.order,
                &d.name,
                Action::Rename {
                    id: keep.id.clone(),
                    to: d.name.clone(),
                },
            ));
        }
        match (d.run, keep.state) {
            (true, RunState::Created | RunState::Exited) => ordered.push((
                d.order,
                &d.name,
                Action::Start {
                    id: keep.id.clone(),
                    name: d.name.clone(),
                    restart: keep.state == RunState::Exited,
                },
            )),
            (false, RunState::Running | RunState::Restarting | RunState::Paused) => ordered.push((
                d.order,
                &d.name,
                Action::Stop {
                    id: keep.id.clone(),
                    name: d.name.clone(),
                },
            )),
            _ => {}
        }
    }
    for orphans in by_slot.into_values() {
        for o in orphans {
            removals.push(Action::Remove {
                id: o.id.clone(),
                name: o.name.clone(),
                stack: o.stack.clone(),
                reason: RemoveReason::Orphan,
            });
        }
    }
    ordered.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    removals.extend(ordered.into_iter().map(|(_, _, a)| a));
    removals
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
    use crate::agent::desired::{container_name, spec_hash};
    use crate::assignment::{ContainerSpec, Slot};

    fn want(service: &str, image: &str, order: u32) -> DesiredContainer {
        let spec = ContainerSpec {
            image: image.into(),
            ..Default::default()
        };
        DesiredContainer {
            stack: "s".into(),
            service: service.into(),
            replica: 1,
            name: container_name("s", service, 1),
            spec_hash: spec_hash(&spec, "net"),
            slot: Slot {
                service: service.into(),
                replica: 1,
                order,
                container: spec.clone(),
                health_check: None,
                handoff: false,
            },
            spec,
            spec_revision: 7,
            run: true,
            network: "net".into(),
            order,
        }
    }

    fn have(id: &str, d: &DesiredContainer, state: RunState) -> ActualContainer {
        ActualContainer {
            id: id.into(),
            name: d.name.clone(),
            stack: d.stack.clone(),
            service: d.service.clone(),
            replica: d.replica,
            spec_hash: d.spec_hash.clone(),
            state,
            exit_code: None,
            docker_health: None,
            ip: None,
            started_at: None,
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
        let renamed = ActualContainer {
            name: "someone-renamed-it".into(),
            ..have("c1", &web, RunState::Running)
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
                }],
            },
            Case {
                name: "dead container: replace",
                desired: vec![web.clone()],
                actual: vec![have("c1", &web, RunState::Dead)],
                want: vec![Action::Replace {
                    old_id: "c1".into(),
                    name: "s.web.1".into(),
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
