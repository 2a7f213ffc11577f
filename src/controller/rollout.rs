//! Rolling updates, driven by the leader across all hosts: which slots of a changed
//! service take their new container now and which keep the one they run, so that at most
//! `parallelism` slots of a service are being replaced at any moment, a batch starts only
//! once the one before it is ready and has stayed ready for `monitor` (plus `delay`), and
//! a slot that fails (exits, turns unhealthy, or misses its `deadline`) counts against
//! `maxFailureRatio` until `failureAction` fires: roll back to the slots as they were,
//! pause, or continue.
//!
//! Pure: the clock comes in as wall-clock milliseconds, and what must outlive a pass (and a
//! leader) is the [`Rollout`] record the controller keeps at `rollouts/<stack>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::assignment::{Assignment, Slot};
use crate::report::{SlotHealth, SlotReport, SlotState};
use crate::slot::SlotId;
use crate::spec::{FailureAction, UpdatePolicy};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RolloutState {
    /// Finished: every changed slot runs its new container (failures within the ratio).
    #[default]
    Complete,
    /// Rolled back to the slots as they were before; the stack key still holds the spec
    /// that failed.
    RolledBack,
    /// Replacing slots, a batch at a time.
    Progressing,
    /// Stopped where it was: `failureAction: pause`, or a rollback that failed itself.
    Paused,
    /// Returning the replaced slots to the ones they replaced, a batch at a time.
    RollingBack,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Complete => "Complete",
            RolloutState::RolledBack => "RolledBack",
            RolloutState::Progressing => "Progressing",
            RolloutState::Paused => "Paused",
            RolloutState::RollingBack => "RollingBack",
        }
    }

    /// Still moving slots.
    pub fn is_active(self) -> bool {
        matches!(self, RolloutState::Progressing | RolloutState::RollingBack)
    }
}

/// One stack's rollout toward one spec revision, at `rollouts/<stack>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The revision rolled out: the stack key's `mod_revision`, or a newer one of a secret
    /// its containers use (a rotation).
    pub to_revision: i64,
    /// The revision the replaced slots ran before, reckoned the same way.
    pub from_revision: i64,
    pub state: RolloutState,
    pub started_at_ms: u64,
    /// When it reached `Complete`, `RolledBack` or `Paused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// Each service with changed slots.
    pub services: BTreeMap<String, ServiceRollout>,
}

/// One service's part of a rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRollout {
    pub state: RolloutState,
    /// The changed slots as they ran before the rollout, by replica (with their host):
    /// what a rollback returns them to.
    pub stable: BTreeMap<u32, StableSlot>,
    /// Progress of each changed slot toward its target, by replica.
    #[serde(default)]
    pub slots: BTreeMap<u32, SlotProgress>,
    /// When the last batch finished (every slot in it ready past `monitor`, or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_done_at_ms: Option<u64>,
    /// Going back to `stable` (a rollback, or a pause after a failed rollback).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub back: bool,
    /// Why it paused or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StableSlot {
    pub host: String,
    pub slot: Slot,
}

/// One changed slot's way to its target container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotProgress {
    /// When it was handed its target (`None`: its batch has not come).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_at_ms: Option<u64>,
    /// Since when it has been running and healthy on its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_since_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SlotOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotOutcome {
    /// Ready and stayed ready for `monitor`.
    Done,
    /// Exited, turned unhealthy within `monitor`, or missed `deadline`.
    Failed,
}

/// What happened this pass, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutEvent {
    Started {
        to: i64,
        from: i64,
    },
    /// A batch of `service` is done: each slot in it ready past `monitor`, or failed.
    BatchReplaced {
        service: String,
        replicas: Vec<u32>,
    },
    /// `service` failed past its ratio; `action` says what follows.
    Failed {
        service: String,
        why: String,
        action: FailureAction,
    },
    RolledBack {
        service: String,
    },
    Complete {
        to: i64,
    },
}

/// One stack, this pass.
pub struct Inputs<'a> {
    pub stack: &'a str,
    /// The revision of the target: the stack key's, or a newer one of a secret the target
    /// pins (see [`Assignment::revision`]), so that a rotated secret rolls out like a new
    /// spec.
    pub revision: i64,
    pub now_ms: u64,
    /// The record kept from earlier passes, if any.
    pub previous: Option<&'a Rollout>,
    /// What each host is assigned now, for this stack.
    pub current: BTreeMap<&'a str, &'a Assignment>,
    /// The agents' reports of this stack.
    pub reports: &'a [&'a SlotReport],
    /// Each service's rules.
    pub policies: &'a BTreeMap<String, UpdatePolicy>,
}

/// Hold back, in `target` (host -> this stack's assignment), every changed slot whose batch
/// has not come, and return the record to keep and what happened.
pub fn step(
    i: &Inputs<'_>,
    target: &mut BTreeMap<String, Assignment>,
) -> (Option<Rollout>, Vec<RolloutEvent>) {
    let mut events = Vec::new();
    let mut rollout = match i.previous {
        // A finished rollout has nothing left to replace: a container that differs all the
        // same is a change it never covered (a Berth upgrade that builds specs otherwise,
        // such as one that starts pinning secret revisions), so it is rolled out afresh
        // rather than all at once.
        Some(p)
            if p.to_revision == i.revision
                && (p.state != RolloutState::Complete || changed_slots(i, target).is_empty()) =>
        {
            p.clone()
        }
        previous => {
            let changed = changed_slots(i, target);
            if changed.is_empty() {
                // Nothing to roll: a first deployment, a move, or no change at all. A
                // record of an earlier revision no longer says what runs.
                return (None, events);
            }
            let from = i.current.values().map(|a| a.revision()).max().unwrap_or(0);
            events.push(RolloutEvent::Started {
                to: i.revision,
                from,
            });
            start(i, previous, changed, from)
        }
    };
    let stack_state_before = rollout.state;
    for (service, sr) in rollout.services.iter_mut() {
        let policy = i.policies.get(service).copied().unwrap_or_default();
        advance(i, service, sr, &policy, target, &mut events);
    }
    rollout.state = rollout
        .services
        .values()
        .map(|s| s.state)
        .max()
        .unwrap_or(RolloutState::Complete);
    if rollout.state != stack_state_before && !rollout.state.is_active() {
        rollout.ended_at_ms = Some(i.now_ms);
        if rollout.state == RolloutState::Complete {
            events.push(RolloutEvent::Complete { to: i.revision });
        }
    }
    (Some(rollout), events)
}

/// Slots on the same host now and in the target whose container differs, by service.
fn changed_slots<'t>(
    i: &Inputs<'_>,
    target: &'t BTreeMap<String, Assignment>,
) -> BTreeMap<String, BTreeMap<u32, (&'t str, Slot)>> {
    let mut out: BTreeMap<String, BTreeMap<u32, (&str, Slot)>> = BTreeMap::new();
    for (host, a) in target {
        let Some(cur) = i.current.get(host.as_str()) else {
            continue;
        };
        for s in a.slots.iter().filter(|s| !s.handoff) {
            let id = s.id(i.stack);
            let Some(old) = cur.slot(&id).filter(|o| !o.handoff) else {
                continue;
            };
            // What the spec hash covers, compared without hashing: every slot, every pass.
            if old.container != s.container || cur.network.name != a.network.name {
                out.entry(s.service.clone())
                    .or_default()
                    .insert(s.replica, (host.as_str(), old.clone()));
            }
        }
    }
    out
}

/// A new rollout of the changed slots. A rollout it supersedes before it finished leaves
/// its own stable slots as the base, so a rollback returns to what last ran whole.
fn start(
    i: &Inputs<'_>,
    previous: Option<&Rollout>,
    changed: BTreeMap<String, BTreeMap<u32, (&str, Slot)>>,
    from: i64,
) -> Rollout {
    let unfinished = previous.filter(|p| p.state != RolloutState::Complete);
    let services = changed
        .into_iter()
        .map(|(service, slots)| {
            let earlier = unfinished.and_then(|p| p.services.get(&service));
            let stable = slots
                .into_iter()
                .map(|(replica, (host, slot))| {
                    let base = earlier
                        .and_then(|e| e.stable.get(&replica))
                        .cloned()
                        .unwrap_or(StableSlot {
                            host: host.to_owned(),
                            slot,
                        });
                    (replica, base)
                })
                .collect::<BTreeMap<_, _>>();
            let slots = stable
                .keys()
                .map(|r| (*r, SlotProgress::default()))
                .collect();
            (
                service,
                ServiceRollout {
                    state: RolloutState::Progressing,
                    stable,
                    slots,
                    batch_done_at_ms: None,
                    back: false,
                    message: None,
                },
            )
        })
        .collect();
    Rollout {
        to_revision: i.revision,
        from_revision: unfinished.map_or(from, |p| p.from_revision),
        state: RolloutState::Progressing,
        started_at_ms: i.now_ms,
        ended_at_ms: None,
        services,
    }
}

/// One service's pass: judge the slots handed their target, act on failures, start the
/// next batch when the last one is done, and write into `target` what each slot runs.
fn advance(
    i: &Inputs<'_>,
    service: &str,
    sr: &mut ServiceRollout,
    policy: &UpdatePolicy,
    target: &mut BTreeMap<String, Assignment>,
    events: &mut Vec<RolloutEvent>,
) {
    // Judge the slots in flight against what they were handed.
    for (replica, p) in sr.slots.iter_mut() {
        if p.assigned_at_ms.is_none() || p.outcome.is_some() {
            continue;
        }
        let Some(stable) = sr.stable.get(replica) else {
            continue;
        };
        let id = SlotId::new(i.stack, service, *replica);
        let want = match wanted(&stable.host, &id, sr.back, &sr.stable, target) {
            Some(w) => w,
            None => continue,
        };
        let report = i
            .reports
            .iter()
            .find(|r| r.host == stable.host && r.is_for(&id) && r.spec_hash == want);
        judge(p, report.copied(), policy, i.now_ms);
    }

    let total = sr.slots.len().max(1) as f64;
    let failures = sr
        .slots
        .values()
        .filter(|p| p.outcome == Some(SlotOutcome::Failed))
        .count();
    let too_many = failures as f64 / total > policy.max_failure_ratio;
    if too_many && sr.state == RolloutState::Progressing {
        let why = format!("{failures} of {} replaced slot(s) failed", sr.slots.len());
        match policy.failure_action {
            FailureAction::Rollback => {
                sr.state = RolloutState::RollingBack;
                sr.back = true;
                sr.message = Some(format!("{why}; rolling back"));
                // Every slot handed the failed container goes back, a batch at a time;
                // the others never left what they ran.
                for p in sr.slots.values_mut() {
                    *p = match p.assigned_at_ms {
                        Some(_) => SlotProgress::default(),
                        None => SlotProgress {
                            assigned_at_ms: Some(i.now_ms),
                            available_since_ms: None,
                            outcome: Some(SlotOutcome::Done),
                        },
                    };
                }
                sr.batch_done_at_ms = None;
            }
            FailureAction::Pause => {
                sr.state = RolloutState::Paused;
                sr.message = Some(format!("{why}; paused"));
            }
            FailureAction::Continue => {}
        }
        if policy.failure_action != FailureAction::Continue {
            events.push(RolloutEvent::Failed {
                service: service.to_owned(),
                why,
                action: policy.failure_action,
            });
        }
    } else if too_many && sr.state == RolloutState::RollingBack {
        // A rollback that fails is never rolled back again.
        sr.state = RolloutState::Paused;
        sr.message = Some(format!(
            "the rollback failed too ({failures} slot(s)); paused"
        ));
        events.push(RolloutEvent::Failed {
            service: service.to_owned(),
            why: "the rollback failed".to_owned(),
            action: FailureAction::Pause,
        });
    }

    // The next batch, once none is in flight and the delay after the last one is over.
    let in_flight = sr
        .slots
        .values()
        .filter(|p| p.assigned_at_ms.is_some() && p.outcome.is_none())
        .count();
    let waiting: Vec<u32> = sr
        .slots
        .iter()
        .filter(|(_, p)| p.assigned_at_ms.is_none())
        .map(|(r, _)| *r)
        .collect();
    if sr.state.is_active() && in_flight == 0 {
        let last = last_assigned(sr);
        let handed_any = sr.slots.values().any(|p| p.assigned_at_ms.is_some());
        if handed_any && sr.batch_done_at_ms.is_none_or(|t| t < last) {
            sr.batch_done_at_ms = Some(i.now_ms);
            // Judged slots only: those a rollback found where they were are not a batch.
            let replicas: Vec<u32> = sr
                .slots
                .iter()
                .filter(|(_, p)| {
                    p.assigned_at_ms == Some(last)
                        && (p.available_since_ms.is_some()
                            || p.outcome == Some(SlotOutcome::Failed))
                })
                .map(|(r, _)| *r)
                .collect();
            if !replicas.is_empty() {
                events.push(RolloutEvent::BatchReplaced {
                    service: service.to_owned(),
                    replicas,
                });
            }
        }
        let delay_over = sr
            .batch_done_at_ms
            .is_none_or(|t| i.now_ms >= t + policy.delay.as_millis() as u64);
        if !waiting.is_empty() && delay_over {
            let size = match policy.parallelism {
                0 => waiting.len(),
                n => n as usize,
            };
            for r in next_batch(i, service, &waiting, size, &sr.stable) {
                if let Some(p) = sr.slots.get_mut(&r) {
                    p.assigned_at_ms = Some(i.now_ms);
                }
            }
        } else if waiting.is_empty() {
            sr.state = if sr.state == RolloutState::RollingBack {
                events.push(RolloutEvent::RolledBack {
                    service: service.to_owned(),
                });
                RolloutState::RolledBack
            } else {
                RolloutState::Complete
            };
        }
    }

    // What each changed slot runs. Forward: its target once handed it, else what it ran
    // before. Back: what it ran before once handed it, else the target it was handed.
    for (replica, stable) in &sr.stable {
        let handed = sr
            .slots
            .get(replica)
            .is_some_and(|p| p.assigned_at_ms.is_some());
        let Some(a) = target.get_mut(&stable.host) else {
            continue;
        };
        let Some(slot) = a
            .slots
            .iter_mut()
            .find(|s| !s.handoff && s.service == service && s.replica == *replica)
        else {
            continue;
        };
        if handed == sr.back {
            // The old slot; what it waits for is marked afresh after this step.
            *slot = Slot {
                waiting_for: Vec::new(),
                ..stable.slot.clone()
            };
        }
    }
}

/// The spec hash a handed slot should now run: the target's going forward, the stable
/// slot's going back.
fn wanted(
    host: &str,
    id: &SlotId,
    rolling_back: bool,
    stable: &BTreeMap<u32, StableSlot>,
    target: &BTreeMap<String, Assignment>,
) -> Option<String> {
    let a = target.get(host)?;
    if rolling_back {
        let s = stable.get(&id.replica)?;
        return Some(s.slot.container.hash(&a.network.name));
    }
    let s = a.slots.iter().find(|s| !s.handoff && s.is(id))?;
    Some(s.container.hash(&a.network.name))
}

/// Judge one handed slot by its report on the container it was handed.
fn judge(p: &mut SlotProgress, report: Option<&SlotReport>, policy: &UpdatePolicy, now: u64) {
    let assigned = p.assigned_at_ms.unwrap_or(now);
    let available = report.is_some_and(|r| r.is_available());
    let broken = report.is_some_and(|r| {
        matches!(
            r.state,
            SlotState::Exited | SlotState::Dead | SlotState::Failed
        ) || r.health == SlotHealth::Unhealthy
    });
    if available {
        let since = *p.available_since_ms.get_or_insert(now);
        if now >= since + policy.monitor.as_millis() as u64 {
            p.outcome = Some(SlotOutcome::Done);
        }
    } else if broken || p.available_since_ms.is_some() {
        // It exited, turned unhealthy, or stopped being ready within `monitor`.
        p.outcome = Some(SlotOutcome::Failed);
    } else if now >= assigned + policy.deadline.as_millis() as u64 {
        p.outcome = Some(SlotOutcome::Failed);
    }
}

/// The soonest a timer of `r` runs out (a monitor, a deadline, a delay), wall-clock ms:
/// when the next pass is due even if nothing else changes.
pub fn next_due(r: &Rollout, policies: &BTreeMap<String, UpdatePolicy>) -> Option<u64> {
    if !r.state.is_active() {
        return None;
    }
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let mut due: Option<u64> = None;
    let mut at = |t: u64| due = Some(due.map_or(t, |d| d.min(t)));
    for (service, sr) in &r.services {
        if !sr.state.is_active() {
            continue;
        }
        let policy = policies.get(service).copied().unwrap_or_default();
        let mut waiting = false;
        for p in sr.slots.values() {
            match (p.assigned_at_ms, p.outcome) {
                (None, _) => waiting = true,
                (Some(assigned), None) => {
                    at(assigned + ms(policy.deadline));
                    if let Some(since) = p.available_since_ms {
                        at(since + ms(policy.monitor));
                    }
                }
                _ => {}
            }
        }
        if let (true, Some(done)) = (waiting, sr.batch_done_at_ms) {
            at(done + ms(policy.delay));
        }
    }
    due
}

fn last_assigned(sr: &ServiceRollout) -> u64 {
    sr.slots
        .values()
        .filter_map(|p| p.assigned_at_ms)
        .max()
        .unwrap_or(0)
}

/// The next `size` slots to hand their target: those not serving anyway first (they cost
/// no availability), then by replica.
fn next_batch(
    i: &Inputs<'_>,
    service: &str,
    waiting: &[u32],
    size: usize,
    stable: &BTreeMap<u32, StableSlot>,
) -> Vec<u32> {
    let serving = |r: u32| {
        let id = SlotId::new(i.stack, service, r);
        let host = stable.get(&r).map(|s| s.host.as_str()).unwrap_or("");
        i.reports
            .iter()
            .any(|rep| rep.host == host && rep.is_for(&id) && rep.is_available())
    };
    let mut order: Vec<u32> = waiting.to_vec();
    order.sort_by_key(|r| (serving(*r), *r));
    order.truncate(size);
    order.sort();
    order
}

#[cfg(test)]
mod tests;
