//! Rolling updates, driven by the leader across all hosts: which slots of a changed
//! service take their new container now and which keep the one they run, so that at most
//! `parallelism` slots of a service are being replaced at any moment, a batch starts only
//! once every slot of the one before it is ready (plus `delay`), each replaced slot is
//! watched for `monitor` while the next batches go, and
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
use crate::spec::{FailureAction, UpdateOrder, UpdatePolicy};

fn is_zero(n: &u32) -> bool {
    *n == 0
}

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
    /// Held by an operator (`berth rollout pause`): no further batch starts, and the one
    /// in flight is still judged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
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
    /// When the last batch finished (every slot in it ready, or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_done_at_ms: Option<u64>,
    /// Going back to `stable` (a rollback, or a pause after a failed rollback).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub back: bool,
    /// Slots that failed going forward, counted when the rollback began (their progress
    /// then starts over, toward the slots they ran before).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_forward: u32,
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
    /// Ready and stayed ready for `monitor`, or (a one-shot service) completed.
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
    /// A batch of `service` is done: each slot in it ready, or failed.
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
    /// An operator paused (`true`) or resumed (`false`) it.
    Held {
        paused: bool,
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
    /// An operator's pause (`pause/<stack>`): it also holds a rollout that starts later.
    pub paused: bool,
}

/// Hold back, in `target` (host -> this stack's assignment), every changed slot whose batch
/// has not come, and return the record to keep and what happened.
pub fn step(
    i: &Inputs<'_>,
    target: &mut BTreeMap<String, Assignment>,
) -> (Option<Rollout>, Vec<RolloutEvent>) {
    let mut events = Vec::new();
    let mut rollout = match i.previous {
        Some(p) if p.to_revision == i.revision => {
            let mut r = p.clone();
            join(i, &mut r, target, &mut events);
            r
        }
        previous => {
            let changed = changed_slots(i.stack, &i.current, target);
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
    let held = i.paused && rollout.state.is_active();
    if held != rollout.held {
        events.push(RolloutEvent::Held { paused: held });
    }
    rollout.held = held;
    for (service, sr) in rollout.services.iter_mut() {
        let policy = i.policies.get(service).copied().unwrap_or_default();
        advance(i, service, sr, &policy, held, target, &mut events);
    }
    rollout.state = rollout
        .services
        .values()
        .map(|s| s.state)
        .max()
        .unwrap_or(RolloutState::Complete);
    if rollout.state != stack_state_before && !rollout.state.is_active() {
        rollout.held = false;
        rollout.ended_at_ms = Some(i.now_ms);
        if rollout.state == RolloutState::Complete {
            events.push(RolloutEvent::Complete { to: i.revision });
        }
    }
    (Some(rollout), events)
}

/// Slots on the same host now and in the target whose container differs, by service.
fn changed_slots<'t>(
    stack: &str,
    current: &BTreeMap<&str, &Assignment>,
    target: &'t BTreeMap<String, Assignment>,
) -> BTreeMap<String, BTreeMap<u32, (&'t str, Slot)>> {
    let mut out: BTreeMap<String, BTreeMap<u32, (&str, Slot)>> = BTreeMap::new();
    for (host, a) in target {
        let Some(cur) = current.get(host.as_str()) else {
            continue;
        };
        for s in a.slots.iter().filter(|s| !s.handoff) {
            let id = s.id(stack);
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

/// Slots that changed at the same spec revision as the record's, in services that are not
/// part of it or finished theirs: a dependency that moved host (its injected address), a
/// rotated secret. They roll out under the same record, by the same rules. (A service
/// still rolling keeps its held slots on what they ran; they take the new target with
/// their batch.)
fn join(
    i: &Inputs<'_>,
    r: &mut Rollout,
    target: &BTreeMap<String, Assignment>,
    events: &mut Vec<RolloutEvent>,
) {
    let changed: BTreeMap<String, BTreeMap<u32, (&str, Slot)>> =
        changed_slots(i.stack, &i.current, target)
            .into_iter()
            .filter(|(svc, _)| {
                r.services
                    .get(svc)
                    .is_none_or(|s| s.state == RolloutState::Complete)
            })
            .collect();
    if changed.is_empty() {
        return;
    }
    if !r.state.is_active() {
        events.push(RolloutEvent::Started {
            to: i.revision,
            from: i.revision,
        });
        if r.state == RolloutState::Complete {
            r.from_revision = i.revision;
        }
        r.state = RolloutState::Progressing;
        r.started_at_ms = i.now_ms;
        r.ended_at_ms = None;
    }
    r.services.extend(fresh(changed, None));
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
    Rollout {
        to_revision: i.revision,
        from_revision: unfinished.map_or(from, |p| p.from_revision),
        state: RolloutState::Progressing,
        started_at_ms: i.now_ms,
        ended_at_ms: None,
        held: false,
        services: fresh(changed, unfinished),
    }
}

/// Each changed service's part, every slot waiting for its batch; its stable slots are
/// what they run now, or what they ran before `unfinished` (a rollout this one
/// supersedes) changed them.
fn fresh(
    changed: BTreeMap<String, BTreeMap<u32, (&str, Slot)>>,
    unfinished: Option<&Rollout>,
) -> BTreeMap<String, ServiceRollout> {
    changed
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
                    failed_forward: 0,
                    message: None,
                },
            )
        })
        .collect()
}

/// One service's pass: judge the slots handed their target, act on failures, start the
/// next batch when the last one is done (unless `held`), and write into `target` what
/// each slot runs.
fn advance(
    i: &Inputs<'_>,
    service: &str,
    sr: &mut ServiceRollout,
    policy: &UpdatePolicy,
    held: bool,
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
        judge(p, report.copied(), policy, sr.back, i.now_ms);
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
                sr.failed_forward = failures as u32;
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

    // The next batch, once every slot handed its container is ready (those still within
    // `monitor` are serving, and are judged on as the next batch goes) and the delay
    // after the last batch is over.
    let unjudged = |p: &&SlotProgress| p.assigned_at_ms.is_some() && p.outcome.is_none();
    let not_ready = sr
        .slots
        .values()
        .filter(unjudged)
        .filter(|p| p.available_since_ms.is_none())
        .count();
    let judging = sr.slots.values().filter(unjudged).count();
    let waiting: Vec<u32> = sr
        .slots
        .iter()
        .filter(|(_, p)| p.assigned_at_ms.is_none())
        .map(|(r, _)| *r)
        .collect();
    if sr.state.is_active() && not_ready == 0 {
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
        if !waiting.is_empty() && delay_over && !held {
            let size = match policy.parallelism {
                0 => waiting.len(),
                n => n as usize,
            };
            for r in next_batch(i, service, &waiting, size, &sr.stable) {
                if let Some(p) = sr.slots.get_mut(&r) {
                    p.assigned_at_ms = Some(i.now_ms);
                }
            }
        } else if waiting.is_empty() && judging == 0 {
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

/// Judge one handed slot by its report on the container it was handed. Going `back` to
/// the last stable container, ready is done: that container has passed its monitor
/// before, and most often it never stopped serving.
fn judge(
    p: &mut SlotProgress,
    report: Option<&SlotReport>,
    policy: &UpdatePolicy,
    back: bool,
    now: u64,
) {
    let assigned = p.assigned_at_ms.unwrap_or(now);
    let past_deadline = now >= assigned + policy.deadline.as_millis() as u64;
    let Some(r) = report else {
        // No report on that container: the agent has not seen the assignment yet, and may
        // still report the container the slot leaves (a rollback's failed replacement,
        // exiting beside the old one). Nothing to judge by, so readiness seen before
        // does not carry over the gap; only the deadline runs.
        p.available_since_ms = None;
        if past_deadline {
            p.outcome = Some(SlotOutcome::Failed);
        }
        return;
    };
    let broken = matches!(
        r.state,
        SlotState::Exited | SlotState::Dead | SlotState::Failed
    ) || r.health == SlotHealth::Unhealthy;
    if r.is_completed() {
        // A one-shot service's new version did its job (exited 0, and its restart policy
        // keeps it so): that is its success, with nothing left to monitor.
        p.outcome = Some(SlotOutcome::Done);
    } else if r.is_available() {
        let since = *p.available_since_ms.get_or_insert(now);
        if back || now >= since + policy.monitor.as_millis() as u64 {
            p.outcome = Some(SlotOutcome::Done);
        }
    } else if broken || p.available_since_ms.is_some() || past_deadline {
        // It exited, turned unhealthy, stopped being ready within `monitor`, or was never
        // ready by `deadline`.
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
        if let (true, Some(done), false) = (waiting, sr.batch_done_at_ms, r.held) {
            at(done + ms(policy.delay));
        }
    }
    due
}

/// How one changed service would roll out, for `berth apply --dry-run`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub service: String,
    /// Replicas with their hosts, batch by batch, in replica order (at run time a slot
    /// that is down anyway goes first).
    pub batches: Vec<Vec<(u32, String)>>,
    /// `stop-first` or `start-first`, as the agents will do it.
    pub order: UpdateOrder,
    /// Why start-first falls back to stop-first, on the first slot where it would.
    pub fallback: Option<String>,
    pub policy: UpdatePolicy,
}

/// The batches of each changed service when the stack's assignments go from `current` to
/// `target` (host -> assignment); empty when nothing would be throttled.
pub fn plan(
    stack: &str,
    current: &BTreeMap<&str, &Assignment>,
    target: &BTreeMap<String, Assignment>,
    policies: &BTreeMap<String, UpdatePolicy>,
) -> Vec<ServicePlan> {
    changed_slots(stack, current, target)
        .into_iter()
        .map(|(service, slots)| {
            let policy = policies.get(&service).copied().unwrap_or_default();
            let size = match policy.parallelism {
                0 => slots.len().max(1),
                n => n as usize,
            };
            let mut fallback = None;
            for (host, old) in slots.values() {
                let new = target.get(*host).and_then(|a| {
                    a.slots
                        .iter()
                        .find(|s| !s.handoff && s.service == service && s.replica == old.replica)
                });
                if let Some(clash) =
                    new.and_then(|n| n.container.clash_with(&old.container.host_ports()))
                {
                    fallback = Some(format!(
                        "replica {} on {host}: old and new would share {clash}",
                        old.replica
                    ));
                    break;
                }
            }
            let order = match (policy.order, &fallback) {
                (Some(UpdateOrder::StopFirst), _) | (_, Some(_)) => UpdateOrder::StopFirst,
                _ => UpdateOrder::StartFirst,
            };
            let all: Vec<(u32, String)> = slots
                .iter()
                .map(|(r, (host, _))| (*r, (*host).to_owned()))
                .collect();
            ServicePlan {
                service,
                batches: all.chunks(size).map(<[_]>::to_vec).collect(),
                order,
                fallback: fallback.filter(|_| policy.order != Some(UpdateOrder::StopFirst)),
                policy,
            }
        })
        .collect()
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
