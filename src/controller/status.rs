//! Folds a stack's validation, placement and slot reports into the [`StackStatus`] users
//! read. Pure: the clock comes in as `now`, and transition times carry over from the
//! previous status so an unchanged condition does not rewrite the key.

use std::collections::BTreeMap;

use super::rollout::{Rollout, RolloutState, SlotOutcome};
use crate::assignment::Assignment;
use crate::report::{ActionRecord, SlotHealth, SlotReport, SlotState};
use crate::spec::{
    Condition, ConditionStatus, DesiredState, Endpoint, HostRegistration, LastTermination, Phase,
    Problem, RolloutStatus, ServiceStatus, Stack, StackStatus,
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
    /// The stack's rolling update, if the controller keeps a record of one.
    pub rollout: Option<&'a Rollout>,
}

/// What a stack's slots add up to this pass: the counts the phase is decided on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Slots assigned (hand-off copies not counted).
    pub total: usize,
    /// Reported on the current revision.
    pub current: usize,
    /// Current, running, and healthy or without a check.
    pub available: usize,
    /// Current and exited 0 under `restartPolicy: on-failure` or `never`: done.
    pub completed: usize,
    /// Current and neither available, nor still starting, nor completed.
    pub bad: usize,
    /// Current and exited or created.
    pub stopped: usize,
    /// The stack asks for `desiredState: stopped`.
    pub desired_stopped: bool,
}

/// A stack's phase and the message that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub phase: Phase,
    pub message: String,
    /// `None` for a deleted stack; else whether the spec is valid, and if not why.
    pub valid: Option<Result<(), String>>,
}

pub fn aggregate(i: &Inputs<'_>) -> StackStatus {
    let mut services: BTreeMap<String, ServiceStatus> = BTreeMap::new();
    let mut t = Tally::default();
    let mut failed: Vec<String> = Vec::new();
    // The image IDs each service's up-to-date replicas run, with where, by spec: only
    // replicas with the same spec should run the same bits (during a rollout, a slot still
    // waiting for its batch reports the new revision but runs the old spec).
    let mut images: BTreeMap<(&str, &str), BTreeMap<&str, Vec<String>>> = BTreeMap::new();

    for (host, a) in &i.assignments {
        t.desired_stopped |= a.desired_state == DesiredState::Stopped;
        // A hand-off copy is on its way out; its replacement speaks for the slot.
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            t.total += 1;
            let report = i
                .reports
                .iter()
                .find(|r| r.host == *host && r.is_for_assigned(&a.stack, slot));
            let fresh = report.filter(|r| r.spec_revision == a.spec_revision);
            if let Some(r) = fresh {
                t.current += 1;
                if let Some(id) = &r.image_id {
                    images
                        .entry((slot.service.as_str(), r.spec_hash.as_str()))
                        .or_default()
                        .entry(id.as_str())
                        .or_default()
                        .push(format!("{}@{host}", slot.key()));
                }
                if r.is_available() {
                    t.available += 1;
                } else if r.is_completed() {
                    t.completed += 1;
                } else if !(r.is_running() && r.health == SlotHealth::Starting) {
                    t.bad += 1;
                }
                if r.state == SlotState::Failed {
                    failed.push(format!(
                        "{}: {}",
                        slot.service,
                        r.message.clone().unwrap_or_default()
                    ));
                }
                if matches!(r.state, SlotState::Exited | SlotState::Created) {
                    t.stopped += 1;
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
                    .map(|r| r.state.as_str().to_owned())
                    .unwrap_or_else(|| "pending".to_owned()),
                health: report
                    .map(|r| r.health.as_str().to_owned())
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
                image_id: report.and_then(|r| r.image_id.clone()),
                image_digest: report.and_then(|r| r.image_digest.clone()),
                pull: report.and_then(|r| r.pull),
                last_termination: report.and_then(|r| r.last_termination.clone()),
                image_drift: false,
                replicas: Vec::new(),
            };
            merge_replica(&mut services, &slot.service, s);
        }
    }
    let drift = image_drift(&images);
    for svc in drift.keys() {
        if let Some(s) = services.get_mut(*svc) {
            s.image_drift = true;
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

    let problems: Vec<String> = match i.spec {
        Some(Err(problems)) => problems.iter().map(|p| p.to_string()).collect(),
        _ => Vec::new(),
    };
    let rollout = i.rollout.map(rollout_status);
    let spec = match i.spec {
        None => SpecState::Deleted,
        Some(Err(_)) => SpecState::Invalid(&problems),
        Some(Ok(_)) => SpecState::Valid,
    };
    let Verdict {
        phase,
        message,
        valid,
    } = verdict(spec, &t, &failed, &i.unschedulable, rollout.as_ref());
    let (total, available) = (t.total, t.available);

    let mut conditions = Vec::new();
    if let Some(v) = valid {
        use ConditionStatus::{False, True};
        let (status, reason, msg) = match v {
            Ok(()) => (True, "Valid", String::new()),
            Err(m) => (False, "InvalidSpec", m),
        };
        conditions.push(condition(i, "Valid", status, reason, &msg));
        if status == True {
            let (s, r, m) = if i.unschedulable.is_empty() {
                (True, "Scheduled", String::new())
            } else {
                (False, "Unschedulable", message.clone())
            };
            conditions.push(condition(i, "Scheduled", s, r, &m));
            let (s, r) = match phase {
                Phase::Running => (True, "AllRunning"),
                // Nothing runs, and nothing has to: every service was a job, and is done.
                Phase::Succeeded => (False, "Completed"),
                _ => (False, "NotAllRunning"),
            };
            conditions.push(condition(
                i,
                "Available",
                s,
                r,
                &format!("{available}/{total} available"),
            ));
            let (s, r, m) = if drift.is_empty() {
                (True, "OneImagePerService", String::new())
            } else {
                let each: Vec<&str> = drift.values().map(String::as_str).collect();
                (False, "ImageDrift", each.join("; "))
            };
            conditions.push(condition(i, "ImagesConsistent", s, r, &m));
        }
    }

    StackStatus {
        stack: i.id.to_owned(),
        observed_revision: i.revision,
        phase,
        message,
        problems,
        conditions,
        services,
        rollout,
    }
}

/// What users see of a rollout record.
///
/// `updated` counts slots that run the new revision: none of a service going back.
/// `failures` counts each slot that failed, going forward or back.
pub fn rollout_status(r: &Rollout) -> RolloutStatus {
    let slots = r.services.values().flat_map(|s| s.slots.values());
    let count = |o: SlotOutcome, forward_only: bool| {
        r.services
            .values()
            .filter(|s| !(forward_only && s.back))
            .flat_map(|s| s.slots.values())
            .filter(|p| p.outcome == Some(o))
            .count() as u32
    };
    let failed_forward: u32 = r.services.values().map(|s| s.failed_forward).sum();
    let messages: Vec<String> = r
        .services
        .iter()
        .filter_map(|(svc, s)| Some(format!("{svc}: {}", s.message.as_ref()?)))
        .collect();
    let state = if r.held {
        RolloutState::Paused
    } else {
        r.state
    };
    RolloutStatus {
        state: state.as_str().to_owned(),
        paused_by_operator: r.held,
        from_revision: r.from_revision,
        to_revision: r.to_revision,
        updated: count(SlotOutcome::Done, true),
        total: slots.count() as u32,
        failures: failed_forward + count(SlotOutcome::Failed, false),
        message: messages.join("; "),
    }
}

/// What became of a stack's spec key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecState<'a> {
    Deleted,
    /// Each problem, with its JSON path.
    Invalid(&'a [String]),
    Valid,
}

/// The phase, from the spec's state, the tally, the failures (slots the agents cannot
/// create or that exited non-zero under `restartPolicy: never`, post-start actions that
/// failed) and the services without a host. The first that applies wins: deleted,
/// invalid, failed, pending, stopped, succeeded (every slot completed), running (every
/// slot available or completed), degraded, progressing.
pub fn verdict(
    spec: SpecState<'_>,
    t: &Tally,
    failed: &[String],
    unschedulable: &BTreeMap<&str, &str>,
    rollout: Option<&RolloutStatus>,
) -> Verdict {
    let Tally {
        total,
        current,
        available,
        completed,
        bad,
        stopped,
        desired_stopped,
    } = *t;
    match spec {
        SpecState::Deleted => {
            return Verdict {
                phase: Phase::Progressing,
                message: format!("stack deleted; removing {total} container(s)"),
                valid: None,
            }
        }
        SpecState::Invalid(problems) => {
            let kept = if total > 0 {
                " (the last valid version keeps running)"
            } else {
                ""
            };
            return Verdict {
                phase: Phase::Invalid,
                message: format!("invalid spec{kept}: {}", problems.join("; ")),
                valid: Some(Err(problems.join("; "))),
            };
        }
        SpecState::Valid => {}
    }
    let state = rollout.map(|r| r.state.as_str());
    // One-shot services that are done count beside the running ones.
    let done = if completed > 0 {
        format!(", {completed} completed")
    } else {
        String::new()
    };
    let (phase, message) = if !failed.is_empty() {
        (Phase::Failed, failed.join("; "))
    } else if let (Some("Progressing" | "RollingBack" | "Paused"), Some(r)) = (state, rollout) {
        rollout_verdict(r)
    } else if !unschedulable.is_empty() {
        let why: Vec<String> = unschedulable
            .iter()
            .map(|(s, w)| format!("{s}: {w}"))
            .collect();
        (Phase::Pending, format!("unschedulable: {}", why.join("; ")))
    } else if desired_stopped && current == total && stopped == total {
        (Phase::Stopped, format!("{total} container(s) stopped"))
    } else if total > 0 && completed == total && current == total {
        (Phase::Succeeded, format!("{total} container(s) completed"))
    } else if total > 0 && available + completed == total && current == total {
        (
            Phase::Running,
            format!("{available}/{total} containers running{done}"),
        )
    } else if bad > 0 && !desired_stopped {
        (
            Phase::Degraded,
            format!("{available}/{total} containers running and healthy{done}"),
        )
    } else {
        (
            Phase::Progressing,
            format!("{available}/{total} containers running{done}"),
        )
    };
    // Rolled back: say so, whatever the slots add up to.
    let message = match rollout.filter(|r| r.state == "RolledBack") {
        Some(r) => format!(
            "runs revision {} because revision {} failed ({}); {message}",
            r.from_revision, r.to_revision, r.message
        ),
        None => message,
    };
    Verdict {
        phase,
        message,
        valid: Some(Ok(())),
    }
}

/// The phase while a rollout moves slots, or is paused.
fn rollout_verdict(r: &RolloutStatus) -> (Phase, String) {
    let progress = format!("{}/{} slot(s) replaced", r.updated, r.total);
    match r.state.as_str() {
        "Paused" if r.paused_by_operator => (
            Phase::Progressing,
            format!(
                "rollout of revision {} paused by an operator (`berth rollout resume` goes on); {progress}",
                r.to_revision
            ),
        ),
        "Paused" => (
            Phase::Degraded,
            format!(
                "rollout of revision {} paused: {}; {progress}",
                r.to_revision, r.message
            ),
        ),
        "RollingBack" => (
            Phase::Progressing,
            format!(
                "rolling back to revision {}: {}",
                r.from_revision, r.message
            ),
        ),
        _ => (
            Phase::Progressing,
            format!("rolling out revision {}: {progress}", r.to_revision),
        ),
    }
}

/// Services whose up-to-date replicas of one spec run more than one image ID, each with a line that
/// says which runs where (`web: sha256:1a2b3c4d5e6f on web.1@h1; sha256:... on web.2@h2`).
fn image_drift<'a>(
    images: &BTreeMap<(&'a str, &str), BTreeMap<&str, Vec<String>>>,
) -> BTreeMap<&'a str, String> {
    images
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((svc, _), ids)| {
            let each: Vec<String> = ids
                .iter()
                .map(|(id, at)| format!("{} on {}", short_image_id(id), at.join(", ")))
                .collect();
            (
                *svc,
                format!("{svc} runs {} images: {}", ids.len(), each.join("; ")),
            )
        })
        .collect()
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows an ID.
fn short_image_id(id: &str) -> &str {
    let end = id.find(':').map_or(0, |i| i + 1) + 12;
    id.get(..end).unwrap_or(id)
}

/// Whether termination `a` ended after `b` (any termination is later than none). By
/// Docker's `FinishedAt` read as a time: its RFC 3339 drops trailing zeros of the
/// fraction, so the text does not always sort.
fn later_end(a: Option<&LastTermination>, b: Option<&LastTermination>) -> bool {
    let at = |t: &LastTermination| {
        t.finished_at
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339(s).ok())
    };
    match (a, b) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(a), Some(b)) => at(a) > at(b),
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
            if later_end(s.last_termination.as_ref(), first.last_termination.as_ref()) {
                first.last_termination = s.last_termination.clone();
            }
            first.replicas.push(s);
        }
    }
}

fn condition(
    i: &Inputs<'_>,
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
) -> Condition {
    let last = i
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| i.now.to_owned());
    Condition {
        type_: type_.to_owned(),
        status,
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
            deleted: None,
            stack: "s".into(),
            spec_revision: rev,
            desired_state: state,
            network: NetworkSpec {
                name: "n".into(),
                driver: "bridge".into(),
                create: true,
            },
            volumes: vec![],
            slots: vec![Slot::bare("web", 1, ContainerSpec::default())],
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
            state: state.parse().unwrap(),
            health: health.parse().unwrap(),
            restarts: 0,
            exit_code: None,
            message: None,
            image_id: None,
            image_digest: None,
            pull: None,
            last_termination: None,
        }
    }

    /// The status of stack `s` at revision 5 (valid, no hosts registered) with `placed`
    /// slots as (host, assignment) and these reports.
    fn status_of(placed: &[(String, Assignment)], reports: &[SlotReport]) -> StackStatus {
        let refs: Vec<&SlotReport> = reports.iter().collect();
        aggregate(&Inputs {
            id: "s",
            revision: 5,
            spec: Some(Ok(&Stack::default())),
            assignments: placed.iter().map(|(h, a)| (h.as_str(), a)).collect(),
            reports: &refs,
            unschedulable: BTreeMap::new(),
            hosts: &BTreeMap::new(),
            actions: BTreeMap::new(),
            previous: None,
            now: "T",
            rollout: None,
        })
    }

    #[test]
    fn phase_table() {
        let problems = vec!["itemListElement: a stack needs at least one service".to_owned()];
        let failed = vec!["web: image i not found".to_owned()];
        let no_host = BTreeMap::from([("web", "no ready host")]);
        let none = BTreeMap::new();
        let tally = |current, available, bad, stopped, desired_stopped| Tally {
            total: 1,
            current,
            available,
            completed: 0,
            bad,
            stopped,
            desired_stopped,
        };
        let running = tally(1, 1, 0, 0, false);
        // Three slots, some of them one-shot services that exited 0.
        let jobs = |current, available, completed, bad| Tally {
            total: 3,
            current,
            available,
            completed,
            bad,
            ..Tally::default()
        };
        let job_failed = vec!["migrate: exited with code 3; restartPolicy never".to_owned()];
        // (name, spec, tally, failed, unschedulable, phase)
        type Case<'a> = (
            &'a str,
            SpecState<'a>,
            Tally,
            &'a [String],
            &'a BTreeMap<&'a str, &'a str>,
            Phase,
        );
        let cases: Vec<Case> = vec![
            (
                "all current and available",
                SpecState::Valid,
                running,
                &[],
                &none,
                Phase::Running,
            ),
            (
                "still starting",
                SpecState::Valid,
                tally(1, 0, 0, 0, false),
                &[],
                &none,
                Phase::Progressing,
            ),
            (
                "not reported on this revision yet",
                SpecState::Valid,
                tally(0, 0, 0, 0, false),
                &[],
                &none,
                Phase::Progressing,
            ),
            (
                "unhealthy or exited",
                SpecState::Valid,
                tally(1, 0, 1, 1, false),
                &[],
                &none,
                Phase::Degraded,
            ),
            (
                "a slot cannot be created",
                SpecState::Valid,
                running,
                &failed,
                &none,
                Phase::Failed,
            ),
            (
                "a failure outranks no host",
                SpecState::Valid,
                running,
                &failed,
                &no_host,
                Phase::Failed,
            ),
            (
                "no host",
                SpecState::Valid,
                Tally::default(),
                &[],
                &no_host,
                Phase::Pending,
            ),
            (
                "stopped as asked",
                SpecState::Valid,
                tally(1, 0, 1, 1, true),
                &[],
                &none,
                Phase::Stopped,
            ),
            (
                "stopping as asked, not yet stopped",
                SpecState::Valid,
                tally(1, 0, 1, 0, true),
                &[],
                &none,
                Phase::Progressing,
            ),
            (
                "nothing placed yet",
                SpecState::Valid,
                Tally::default(),
                &[],
                &none,
                Phase::Progressing,
            ),
            (
                "running beside completed jobs",
                SpecState::Valid,
                jobs(3, 2, 1, 0),
                &[],
                &none,
                Phase::Running,
            ),
            (
                "every slot a job that completed",
                SpecState::Valid,
                jobs(3, 0, 3, 0),
                &[],
                &none,
                Phase::Succeeded,
            ),
            (
                "completed jobs, one still running",
                SpecState::Valid,
                jobs(3, 1, 2, 0),
                &[],
                &none,
                Phase::Running,
            ),
            (
                "completed jobs, one not reported on this revision yet",
                SpecState::Valid,
                jobs(2, 0, 2, 0),
                &[],
                &none,
                Phase::Progressing,
            ),
            (
                "completed jobs and one that exited, to be restarted",
                SpecState::Valid,
                jobs(3, 0, 2, 1),
                &[],
                &none,
                Phase::Degraded,
            ),
            (
                "completed jobs and one that failed under never",
                SpecState::Valid,
                jobs(3, 0, 2, 1),
                &job_failed,
                &none,
                Phase::Failed,
            ),
            (
                "invalid",
                SpecState::Invalid(&problems),
                running,
                &[],
                &none,
                Phase::Invalid,
            ),
            (
                "invalid outranks failed",
                SpecState::Invalid(&problems),
                running,
                &failed,
                &none,
                Phase::Invalid,
            ),
            (
                "deleted",
                SpecState::Deleted,
                running,
                &[],
                &none,
                Phase::Progressing,
            ),
        ];
        for (name, spec, t, failed, unschedulable, want) in cases {
            let v = verdict(spec, &t, failed, unschedulable, None);
            assert_eq!(v.phase, want, "case: {name}: {}", v.message);
        }
    }

    #[test]
    fn the_message_says_how_many_completed() {
        let none = BTreeMap::new();
        let t = |available, completed| Tally {
            total: 3,
            current: 3,
            available,
            completed,
            ..Tally::default()
        };
        let cases = [
            (t(3, 0), "3/3 containers running"),
            (t(2, 1), "2/3 containers running, 1 completed"),
            (t(0, 3), "3 container(s) completed"),
        ];
        for (tally, want) in cases {
            let v = verdict(SpecState::Valid, &tally, &[], &none, None);
            assert_eq!(v.message, want);
        }
    }

    #[test]
    fn a_rollout_shows_in_the_phase_and_the_message() {
        let running = Tally {
            total: 2,
            current: 2,
            available: 2,
            ..Tally::default()
        };
        let none = BTreeMap::new();
        let rollout = |state: &str| RolloutStatus {
            state: state.trim_end_matches(" by an operator").into(),
            paused_by_operator: state.ends_with(" by an operator"),
            from_revision: 4,
            to_revision: 7,
            updated: 1,
            total: 2,
            failures: 1,
            message: "web: 1 of 2 replaced slot(s) failed".into(),
        };
        let cases = [
            (
                "Progressing",
                Phase::Progressing,
                "rolling out revision 7: 1/2",
            ),
            (
                "RollingBack",
                Phase::Progressing,
                "rolling back to revision 4",
            ),
            ("Paused", Phase::Degraded, "rollout of revision 7 paused"),
            (
                "Paused by an operator",
                Phase::Progressing,
                "rollout of revision 7 paused by an operator",
            ),
            (
                "RolledBack",
                Phase::Running,
                "runs revision 4 because revision 7 failed",
            ),
            ("Complete", Phase::Running, "2/2 containers running"),
        ];
        for (state, phase, message) in cases {
            let r = rollout(state);
            let v = verdict(SpecState::Valid, &running, &[], &none, Some(&r));
            assert_eq!(v.phase, phase, "{state}");
            assert!(v.message.contains(message), "{state}: {}", v.message);
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn reports_fold_into_the_phase() {
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
                "a job that completed",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(5, "completed", "none")),
                false,
                Phase::Succeeded,
            ),
            (
                "a job that completed on an older revision",
                Some(Ok(&stack)),
                Some(&running),
                Some(report(4, "completed", "none")),
                false,
                Phase::Progressing,
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
                rollout: None,
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
                rollout: None,
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

    #[test]
    fn replicas_on_other_images_at_one_revision_are_drift_in_the_service_and_a_condition() {
        let on = |host: &str, replica: u32| {
            let mut a = assignment(5, DesiredState::Running);
            a.slots = vec![Slot::bare("web", replica, ContainerSpec::default())];
            (host.to_owned(), a)
        };
        let placed = [on("h1", 1), on("h2", 2)];
        let running = |host: &str, replica: u32, rev: i64, image: &str| {
            let mut r = report(rev, "running", "none");
            r.host = host.into();
            r.replica = replica;
            r.image_id = Some(image.into());
            r
        };
        let a = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let b = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let status = |reports: Vec<SlotReport>| status_of(&placed, &reports);
        let consistent = |s: &StackStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "ImagesConsistent")
                .map(|c| (c.status, c.reason.clone(), c.message.clone()))
        };

        let same = status(vec![running("h1", 1, 5, a), running("h2", 2, 5, a)]);
        assert!(!same.services["web"].image_drift);
        assert_eq!(consistent(&same).map(|c| c.0), Some(ConditionStatus::True));
        assert_eq!(
            same.services["web"].replicas[0].image_id.as_deref(),
            Some(a)
        );

        let drift = status(vec![running("h1", 1, 5, a), running("h2", 2, 5, b)]);
        assert!(drift.services["web"].image_drift);
        let (st, reason, message) = consistent(&drift).expect("a condition");
        assert_eq!(
            (st, reason.as_str()),
            (ConditionStatus::False, "ImageDrift")
        );
        assert_eq!(
            message,
            "web runs 2 images: sha256:aaaaaaaaaaaa on web.1@h1; sha256:bbbbbbbbbbbb on web.2@h2"
        );

        // A replica still on the last revision is a rollout under way, not drift; so is
        // one that reports this revision but still runs the last spec, waiting for its
        // batch.
        let rolling = status(vec![running("h1", 1, 5, a), running("h2", 2, 4, b)]);
        assert!(!rolling.services["web"].image_drift);
        let mut waiting = running("h2", 2, 5, b);
        waiting.spec_hash = "the-last-spec".into();
        let rolling = status(vec![running("h1", 1, 5, a), waiting]);
        assert!(!rolling.services["web"].image_drift);
    }

    #[test]
    fn a_termination_shows_per_replica_and_the_latest_for_the_service() {
        use crate::spec::TerminationReason;
        let on = |host: &str, replica: u32| {
            let mut a = assignment(5, DesiredState::Running);
            a.slots = vec![Slot::bare("web", replica, ContainerSpec::default())];
            (host.to_owned(), a)
        };
        let ended = |code: i64, at: &str| LastTermination {
            exit_code: Some(code),
            reason: TerminationReason::Exited,
            message: format!("exited with code {code}"),
            finished_at: Some(at.into()),
            log_tail: format!("bye {code}"),
        };
        let replica = |host: &str, n: u32, last: Option<LastTermination>| {
            let mut r = report(5, "running", "none");
            r.host = host.into();
            r.replica = n;
            r.last_termination = last;
            r
        };

        let one = status_of(
            &[on("h1", 1)],
            &[replica("h1", 1, Some(ended(7, "2026-12-03T10:00:00Z")))],
        );
        assert_eq!(
            one.services["web"].last_termination,
            Some(ended(7, "2026-12-03T10:00:00Z"))
        );

        // Later by time, though not as text: Docker drops trailing zeros of the fraction.
        let early = ended(1, "2026-12-03T10:00:05Z");
        let late = ended(2, "2026-12-03T10:00:05.5Z");
        for order in [[1, 2, 3], [3, 2, 1], [2, 3, 1]] {
            let placed: Vec<_> = order.iter().map(|n| on(&format!("h{n}"), *n)).collect();
            let reports: Vec<SlotReport> = order
                .iter()
                .map(|n| {
                    let last = match n {
                        1 => Some(early.clone()),
                        2 => None,
                        _ => Some(late.clone()),
                    };
                    replica(&format!("h{n}"), *n, last)
                })
                .collect();
            let st = status_of(&placed, &reports);
            let web = &st.services["web"];
            assert_eq!(web.last_termination, Some(late.clone()), "{order:?}");
            let each: Vec<Option<i64>> = web
                .replicas
                .iter()
                .map(|r| r.last_termination.as_ref().and_then(|t| t.exit_code))
                .collect();
            assert_eq!(each.len(), 3, "{order:?}");
            assert!(
                each.contains(&Some(1)) && each.contains(&None) && each.contains(&Some(2)),
                "each replica its own: {each:?}"
            );
        }
    }
}
