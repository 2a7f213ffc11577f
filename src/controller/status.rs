//! Folds a stack's validation, placement and slot reports into the [`StackStatus`] users
//! read. Pure: the clock comes in as `now`, and transition times carry over from the
//! previous status so an unchanged condition does not rewrite the key.

use std::collections::BTreeMap;

use crate::assignment::Assignment;
use crate::report::{ActionRecord, SlotReport};
use crate::spec::{
    Condition, DesiredState, Endpoint, HostRegistration, Phase, Problem, ServiceStatus, Stack,
    StackStatus,
};

/// What the controller knows about one stack this pass.
pub struct Inputs<'a> {
    pub id: &'a str,
    /// `mod_revision` of the spec key; 0 once the key is deleted.
    pub revision: i64,
    /// `None` when the stack key is deleted.
    pub spec: Option<Result<&'a Stack, &'a [Problem]>>,
    /// Current assignments of this stack, by host.
    pub assignments: BTreeMap<&'a str, &'a Assignment>,
    /// Reports by (host, service, replica).
    pub reports: &'a [&'a SlotReport],
    /// service -> why it has no host.
    pub unschedulable: BTreeMap<&'a str, &'a str>,
    pub hosts: &'a BTreeMap<String, HostRegistration>,
    /// service -> the record of its post-start actions for the current version.
    pub actions: BTreeMap<&'a str, &'a ActionRecord>,
    pub previous: Option<&'a StackStatus>,
    pub now: &'a str,
}

pub fn aggregate(i: &Inputs<'_>) -> StackStatus {
    let mut services: BTreeMap<String, ServiceStatus> = BTreeMap::new();
    let mut total = 0usize;
    let mut available = 0usize;
    let mut current = 0usize;
    let mut failed: Vec<String> = Vec::new();
    let mut stopped = 0usize;
    let mut bad = 0usize;
    let mut desired_stopped = false;

    for (host, a) in &i.assignments {
        desired_stopped |= a.desired_state == DesiredState::Stopped;
        // A hand-off copy is on its way out; its replacement speaks for the slot.
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            total += 1;
            let report = i.reports.iter().find(|r| {
                r.host == *host && r.service == slot.service && r.replica == slot.replica
            });
            let fresh = report.filter(|r| r.spec_revision == a.spec_revision);
            if let Some(r) = fresh {
                current += 1;
                if r.is_available() {
                    available += 1;
                } else if !(r.is_running() && r.health == "starting") {
                    bad += 1;
                }
                if r.state == "failed" {
                    failed.push(format!(
                        "{}: {}",
                        slot.service,
                        r.message.clone().unwrap_or_default()
                    ));
                }
                if matches!(r.state.as_str(), "exited" | "created") {
                    stopped += 1;
                }
            }
            let endpoint = slot
                .container
                .ports
                .iter()
                .find_map(|p| p.host_port)
                .and_then(|port| {
                    Some(Endpoint {
                        host: i.hosts.get(*host)?.address.clone(),
                        port,
                    })
                });
            let s = ServiceStatus {
                host: Some((*host).to_owned()),
                container_id: report.and_then(|r| r.container_id.clone()),
                state: report
                    .map(|r| r.state.clone())
                    .unwrap_or_else(|| "pending".to_owned()),
                health: report
                    .map(|r| r.health.clone())
                    .unwrap_or_else(|| "none".to_owned()),
                restarts: report.map(|r| r.restarts).unwrap_or(0),
                endpoint,
                exit_code: report.and_then(|r| r.exit_code),
                actions: Vec::new(),
                message: report.and_then(|r| r.message.clone()).or_else(|| {
                    if i.hosts.contains_key(*host) {
                        None
                    } else {
                        Some(format!("host {host} is not ready"))
                    }
                }),
                replicas: Vec::new(),
            };
            merge_replica(&mut services, &slot.service, s);
        }
    }
    for (svc, record) in &i.actions {
        if let Some(fail) = record.failure() {
            failed.push(format!(
                "{svc}: action {:?} failed{}: {}",
                fail.name,
                fail.exit_code
                    .map(|c| format!(" with exit code {c}"))
                    .unwrap_or_default(),
                fail.message.clone().unwrap_or_default()
            ));
        }
        if let Some(s) = services.get_mut(*svc) {
            s.actions = record.results.clone();
        }
    }
    for (svc, why) in &i.unschedulable {
        services
            .entry((*svc).to_owned())
            .and_modify(|s| {
                if s.message.is_none() {
                    s.message = Some((*why).to_owned());
                }
            })
            .or_insert_with(|| ServiceStatus {
                state: "pending".to_owned(),
                health: "none".to_owned(),
                message: Some((*why).to_owned()),
                ..Default::default()
            });
    }

    let mut problem_list = Vec::new();
    let (phase, message, valid) = match &i.spec {
        None => (
            Phase::Progressing,
            format!("stack deleted; removing {total} container(s)"),
            None,
        ),
        Some(Err(problems)) => {
            let msgs: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            problem_list = msgs.clone();
            let kept = if total > 0 {
                " (the last valid version keeps running)"
            } else {
                ""
            };
            (
                Phase::Invalid,
                format!("invalid spec{kept}: {}", msgs.join("; ")),
                Some(Err(msgs.join("; "))),
            )
        }
        Some(Ok(_)) => {
            let (p, m) = if !failed.is_empty() {
                (Phase::Failed, failed.join("; "))
            } else if !i.unschedulable.is_empty() {
                let why: Vec<String> = i
                    .unschedulable
                    .iter()
                    .map(|(s, w)| format!("{s}: {w}"))
                    .collect();
                (Phase::Pending, format!("unschedulable: {}", why.join("; ")))
            } else if desired_stopped && current == total && stopped == total {
                (Phase::Stopped, format!("{total} container(s) stopped"))
            } else if total > 0 && available == total && current == total {
                (
                    Phase::Running,
                    format!("{available}/{total} containers running"),
                )
            } else if bad > 0 && !desired_stopped {
                (
                    Phase::Degraded,
                    format!("{available}/{total} containers running and healthy"),
                )
            } else {
                (
                    Phase::Progressing,
                    format!("{available}/{total} containers running"),
                )
            };
            (p, m, Some(Ok(())))
        }
    };

    let mut conditions = Vec::new();
    if let Some(v) = valid {
        let (status, reason, msg) = match v {
            Ok(()) => ("True", "Valid", String::new()),
            Err(m) => ("False", "InvalidSpec", m),
        };
        conditions.push(condition(i, "Valid", status, reason, &msg));
        if status == "True" {
            let (s, r, m) = if i.unschedulable.is_empty() {
                ("True", "Scheduled", String::new())
            } else {
                ("False", "Unschedulable", message.clone())
            };
            conditions.push(condition(i, "Scheduled", s, r, &m));
            let (s, r) = if phase == Phase::Running {
                ("True", "AllRunning")
            } else {
                ("False", "NotAllRunning")
            };
            conditions.push(condition(
                i,
                "Available",
                s,
                r,
                &format!("{available}/{total} available"),
            ));
        }
    }

    StackStatus {
        stack: i.id.to_owned(),
        observed_revision: i.revision,
        phase,
        message,
        problems: problem_list,
        conditions,
        services,
    }
}

fn merge_replica(services: &mut BTreeMap<String, ServiceStatus>, name: &str, s: ServiceStatus) {
    match services.get_mut(name) {
        None => {
            services.insert(name.to_owned(), s);
        }
        Some(first) => {
            // Several replicas: the entry summarises, `replicas` has each one.
            if first.replicas.is_empty() {
                let mut copy = first.clone();
                copy.replicas.clear();
                first.replicas.push(copy);
            }
            first.restarts += s.restarts;
            if s.state != "running" {
                first.state = s.state.clone();
            }
            first.replicas.push(s);
        }
    }
}

fn condition(i: &Inputs<'_>, type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    let last = i
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| i.now.to_owned());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::{ContainerSpec, NetworkSpec, Slot};

    fn assignment(rev: i64, state: DesiredState) -> Assignment {
        Assignment {
            stack: "s".into(),
            spec_revision: rev,
            desired_state: state,
            network: NetworkSpec {
                name: "n".into(),
                driver: "bridge".into(),
            },
            volumes: vec![],
            slots: vec![Slot {
                service: "web".into(),
                replica: 1,
                order: 0,
                container: ContainerSpec::default(),
                health_check: None,
                handoff: false,
                waiting_for: Vec::new(),
                post_start: Vec::new(),
                actions_done: false,
            }],
        }
    }

    fn report(rev: i64, state: &str, health: &str) -> SlotReport {
        SlotReport {
            stack: "s".into(),
            service: "web".into(),
            replica: 1,
            host: "h1".into(),
            spec_revision: rev,
            spec_hash: "x".into(),
            container_id: Some("c".into()),
            state: state.into(),
            health: health.into(),
            restarts: 0,
            exit_code: None,
            message: None,
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn phase_table() {
        let stack = Stack::default();
        let problems = vec![Problem {
            path: "itemListElement".into(),
            message: "a stack needs at least one service".into(),
        }];
        let hosts = BTreeMap::new();
        let running = assignment(5, DesiredState::Running);
        let stopping = assignment(5, DesiredState::Stopped);
        // (name, spec, assignment, report, unschedulable, phase)
        let cases: Vec<(
            &str,
            Option<Result<&Stack, &[Problem]>>,
            Option<&Assignment>,
            Option<SlotReport>,
            bool,
            Phase,
        )> = vec![
            (
                "running and current",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "running", "none")),
                false,
                Phase::Running,
            ),
            (
                "healthy",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "running", "healthy")),
                false,
                Phase::Running,
            ),
            (
                "still starting",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "running", "starting")),
                false,
                Phase::Progressing,
            ),
            (
                "unhealthy",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "running", "unhealthy")),
                false,
                Phase::Degraded,
            ),
            (
                "report of an older revision",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(4, "running", "none")),
                false,
                Phase::Progressing,
            ),
            (
                "no report yet",
                Some(Ok(&stack)),
                Some(&running),
                None,
                false,
                Phase::Progressing,
            ),
            (
                "exited",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "exited", "none")),
                false,
                Phase::Degraded,
            ),
            (
                "image cannot be had",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "failed", "none")),
                false,
                Phase::Failed,
            ),
            (
                "no host",
                Some(Ok(&stack)),
                None,
                None,
                true,
                Phase::Pending,
            ),
            (
                "invalid",
                Some(Err(&problems)),
                None,
                None,
                false,
                Phase::Invalid,
            ),
            (
                "stopped as asked",
                Some(Ok(&stack)),
                Some(&stopping),
                Some(report(5, "exited", "none")),
                false,
                Phase::Stopped,
            ),
            (
                "deleted",
                None,
                Some(&running),
                Some(report(5, "running", "none")),
                false,
                Phase::Progressing,
            ),
        ];
        for (name, spec, a, r, unsched, want) in cases {
            let reports: Vec<SlotReport> = r.into_iter().collect();
            let refs: Vec<&SlotReport> = reports.iter().collect();
            let s = aggregate(&Inputs {
                id: "s",
                revision: 5,
                spec,
                assignments: a.map(|a| ("h1", a)).into_iter().collect(),
                reports: &refs,
                unschedulable: if unsched {
                    BTreeMap::from([("web", "no ready host")])
                } else {
                    BTreeMap::new()
                },
                hosts: &hosts,
                actions: BTreeMap::new(),
                previous: None,
                now: "2026-01-01T00:00:00Z",
            });
            assert_eq!(s.phase, want, "case: {name}: {}", s.message);
        }
    }

    #[test]
    fn invalid_status_lists_every_problem_and_keeps_transition_times() {
        let problems = vec![
            Problem {
                path: "a".into(),
                message: "one".into(),
            },
            Problem {
                path: "b".into(),
                message: "two".into(),
            },
        ];
        let hosts = BTreeMap::new();
        let mk = |prev: Option<&StackStatus>, now: &str| {
            aggregate(&Inputs {
                id: "s",
                revision: 9,
                spec: Some(Err(&problems)),
                assignments: BTreeMap::new(),
                reports: &[],
                unschedulable: BTreeMap::new(),
                hosts: &hosts,
                actions: BTreeMap::new(),
                previous: prev,
                now,
            })
        };
        let first = mk(None, "T1");
        assert!(
            first.message.contains("a: one") && first.message.contains("b: two"),
            "{}",
            first.message
        );
        let second = mk(Some(&first), "T2");
        assert_eq!(second, first, "nothing changed, so nothing is rewritten");
    }
}
