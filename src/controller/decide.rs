//! The controller's decision, pure: from the decoded world, the parsed stacks and each
//! host's liveness, the placement and every assignment that should exist, decided one
//! stack at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::pins;
use super::rollout::{self, Rollout, RolloutEvent};
use super::world::World;
use crate::assignment::{Assignment, Deletion, Slot};
use crate::report::SlotReport;
use crate::scheduler::assign;
use crate::scheduler::plan::{
    self, HostView, Liveness, Move, MoveReason, Options, Placement, SlotId,
};
use crate::spec::{DependencyCondition, HostRegistration, Limits, Problem, Stack, UpdatePolicy};

/// Each stack's spec as last parsed, by stack id.
pub type Parsed = BTreeMap<String, ParsedSpec>;

/// One stack key, parsed and validated.
#[derive(Debug, Clone)]
pub struct ParsedSpec {
    /// The key's `mod_revision`: parsing again is needed only when it changes.
    pub revision: i64,
    pub spec: Result<Stack, Vec<Problem>>,
    /// What placement reads of a valid spec ([`plan::placement_key`]), computed once per
    /// revision.
    pub placement_key: Option<u64>,
}

impl ParsedSpec {
    pub fn new(revision: i64, spec: Result<Stack, Vec<Problem>>) -> ParsedSpec {
        let placement_key = spec.as_ref().ok().map(plan::placement_key);
        ParsedSpec {
            revision,
            spec,
            placement_key,
        }
    }
}

/// The placement a pass made, with the placement key of each stack it placed, kept for
/// the next pass: one over a few stacks whose placement inputs are all unchanged keeps it
/// rather than placing every slot of the cluster again ([`still_placed`]).
#[derive(Debug, Clone, Default)]
pub struct Placed {
    pub placement: Placement,
    pub keys: BTreeMap<String, u64>,
}

pub struct Decision {
    /// The stacks this decision covers: what the pass was asked for, and every stack the
    /// placement moved, placed anew or could not place. The assignments, rollouts and
    /// waits below are those of these stacks only; the placement is of every stack.
    pub scope: Scope,
    pub placement: Placement,
    /// The placement key of each stack placed (see [`Placed`]).
    pub placement_keys: BTreeMap<String, u64>,
    /// The last pass's placement was kept: nothing it depends on changed.
    pub placement_kept: bool,
    /// (host, stack) -> assignment. One the pass leaves as held is the world's, shared.
    pub assignments: BTreeMap<(String, String), Arc<Assignment>>,
    /// Registrations of every host a slot may refer to (live ones and those in grace).
    pub addresses: BTreeMap<String, HostRegistration>,
    /// Each valid stack's rollout record as it should now be (`None`: no record).
    pub rollouts: BTreeMap<String, Option<Rollout>>,
    /// What the rollouts did this pass, by stack.
    pub rollout_events: Vec<(String, RolloutEvent)>,
    /// When each stack's soonest rollout timer (monitor, deadline, delay) runs out,
    /// wall-clock ms: the stack is due a pass then, whether or not anything changes.
    pub rollout_due_ms: BTreeMap<String, u64>,
}

/// The stacks a pass decides and writes: every one, or those whose inputs changed (the
/// dirty set), so that a change costs a pass in proportion to what it touches rather than
/// to the cluster. A stack outside the scope had nothing change since a pass that decided
/// it and left nothing to write, so deciding it again would only find that again. A pass
/// over a few stacks is only asked for when nothing every stack depends on changed (the
/// hosts, their liveness and holds, secrets, registry logins): that is the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Everything,
    Stacks(BTreeSet<String>),
}

impl Scope {
    pub fn has(&self, stack: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Stacks(s) => s.contains(stack),
        }
    }

    pub fn add(&mut self, stack: &str) {
        if let Scope::Stacks(s) = self {
            if !s.contains(stack) {
                s.insert(stack.to_owned());
            }
        }
    }

    pub fn is_everything(&self) -> bool {
        matches!(self, Scope::Everything)
    }
}

/// `liveness` covers every host known to be absent; registered hosts are Ready. `now_ms`
/// (wall clock) times the rollouts. Only the stacks in `scope` are decided (see
/// [`Decision::scope`]), one stack at a time: each one's assignments are built, rolled,
/// marked and compared with those held before the next is looked at, and an assignment
/// left as held is the held one, shared. A pass over every stack of a converged cluster
/// so holds one stack's assignments at a time rather than a copy of every one.
pub fn decide(
    world: &World,
    parsed: &Parsed,
    absent: &BTreeMap<String, (Liveness, HostRegistration)>,
    opts: &Options,
    now_ms: u64,
    mut scope: Scope,
    last: Option<Placed>,
) -> Decision {
    let regs = registrations(world, absent);
    let (placement, placement_keys, placement_kept) =
        match last.filter(|l| still_placed(l, world, parsed, &scope, opts)) {
            Some(l) => (l.placement, l.keys, true),
            None => {
                let (placement, keys) = place_afresh(world, parsed, &regs, absent, opts);
                (placement, keys, false)
            }
        };
    for id in &placement.unsettled {
        scope.add(id);
    }
    let by = ByStack::of(world, &scope, &placement);
    let ids: BTreeSet<&str> = match &scope {
        Scope::Everything => parsed
            .keys()
            .map(String::as_str)
            .chain(by.held.keys().copied())
            .collect(),
        Scope::Stacks(ids) => ids
            .iter()
            .map(String::as_str)
            .filter(|id| parsed.contains_key(*id) || by.held.contains_key(id))
            .collect(),
    };
    let cx = Context {
        world,
        placement: &placement,
        regs: &regs,
        now_ms,
    };
    let mut rolled = Rolled::default();
    let mut assignments = BTreeMap::new();
    for id in ids {
        let held = by.held_of(id);
        let mine = match parsed.get(id).map(|p| (p.revision, &p.spec)) {
            Some((rev, Ok(stack))) => {
                let own = by.inputs(id, stack, rev);
                let mut mine = placed_target(&cx, &own);
                roll(&cx, &own, &mut mine, &mut rolled);
                mark_waiting(id, stack, &mut mine, &placement, own.reports);
                mine
            }
            // The last valid version keeps running.
            Some((_, Err(_))) => held
                .iter()
                .map(|(h, a)| ((*h).to_owned(), Assignment::clone(a)))
                .collect(),
            None => tombstones(&cx, held),
        };
        for (host, mut a) in mine {
            mark_actions_done(world, id, &mut a);
            // Left as held: the held one, shared, so the decision costs no copy of it.
            let a = match held.get(host.as_str()) {
                Some(h) if ***h == a => Arc::clone(h),
                _ => Arc::new(a),
            };
            assignments.insert((host, id.to_owned()), a);
        }
    }
    Decision {
        scope,
        placement,
        placement_keys,
        placement_kept,
        assignments,
        addresses: regs,
        rollouts: rolled.records,
        rollout_events: rolled.events,
        rollout_due_ms: rolled.due_ms,
    }
}

/// What every stack's decision reads besides its own inputs.
struct Context<'a> {
    world: &'a World,
    placement: &'a Placement,
    /// Every host a slot may refer to: the registered ones and those in their grace.
    regs: &'a BTreeMap<String, HostRegistration>,
    now_ms: u64,
}

/// A valid stack's own inputs to its decision.
struct StackInputs<'a> {
    id: &'a str,
    stack: &'a Stack,
    /// Its spec key's `mod_revision`.
    rev: i64,
    /// Host -> what the host holds of it.
    held: &'a BTreeMap<&'a str, &'a Arc<Assignment>>,
    reports: &'a [&'a SlotReport],
    /// The placement's moves of its slots.
    moves: &'a [&'a Move],
}

/// The held assignments and reports of the stacks in scope, and the placement's moves,
/// grouped by stack once, so a pass stays linear in them rather than stacks x slots.
struct ByStack<'w> {
    /// Stack -> host -> what it holds.
    held: BTreeMap<&'w str, BTreeMap<&'w str, &'w Arc<Assignment>>>,
    reports: BTreeMap<&'w str, Vec<&'w SlotReport>>,
    moves: BTreeMap<&'w str, Vec<&'w Move>>,
}

impl<'w> ByStack<'w> {
    fn of(world: &'w World, scope: &Scope, placement: &'w Placement) -> ByStack<'w> {
        let mut by = ByStack {
            held: BTreeMap::new(),
            reports: BTreeMap::new(),
            moves: BTreeMap::new(),
        };
        for ((host, stack), (a, _)) in world.assignments.iter().filter(|((_, s), _)| scope.has(s)) {
            by.held
                .entry(stack.as_str())
                .or_default()
                .insert(host.as_str(), a);
        }
        for r in world.reports.values().filter(|r| scope.has(&r.stack)) {
            by.reports.entry(r.stack.as_str()).or_default().push(r);
        }
        for m in &placement.moves {
            by.moves.entry(m.slot.stack.as_str()).or_default().push(m);
        }
        by
    }

    /// What each host holds of stack `id`.
    fn held_of(&self, id: &str) -> &BTreeMap<&'w str, &'w Arc<Assignment>> {
        static NONE: BTreeMap<&str, &Arc<Assignment>> = BTreeMap::new();
        self.held.get(id).unwrap_or(&NONE)
    }

    /// Valid stack `id`'s own inputs, its spec being `stack` at `rev`.
    fn inputs<'a>(&'a self, id: &'a str, stack: &'a Stack, rev: i64) -> StackInputs<'a> {
        StackInputs {
            id,
            stack,
            rev,
            held: self.held_of(id),
            reports: self.reports.get(id).map_or(&[], Vec::as_slice),
            moves: self.moves.get(id).map_or(&[], Vec::as_slice),
        }
    }
}

/// The registrations of every host a slot may refer to: live ones, and absent ones by
/// their last registration seen.
fn registrations(
    world: &World,
    absent: &BTreeMap<String, (Liveness, HostRegistration)>,
) -> BTreeMap<String, HostRegistration> {
    let mut regs: BTreeMap<String, HostRegistration> = world.hosts.clone();
    for (h, (_, reg)) in absent {
        regs.entry(h.clone()).or_insert_with(|| reg.clone());
    }
    regs
}

fn valid_stacks(parsed: &Parsed) -> Vec<(&str, &Stack)> {
    parsed
        .iter()
        .filter_map(|(id, p)| p.spec.as_ref().ok().map(|s| (id.as_str(), s)))
        .collect()
}

/// A valid stack's assignments by host, from the placement: each placed slot's container
/// (with its pins, for a stack that pins digests), and, for a slot moving off a live
/// host, its old copy kept there until the new one is available.
fn placed_target(cx: &Context, own: &StackInputs) -> BTreeMap<String, Assignment> {
    let (id, stack, rev, held, reports) = (own.id, own.stack, own.rev, own.held, own.reports);
    let placement = cx.placement;
    let mut mine =
        assign::assignments_for(id, stack, rev, &placement.hosts, cx.regs, &cx.world.secrets);
    if stack.pin_digests() {
        let current: BTreeMap<&str, &Assignment> =
            held.iter().map(|(h, a)| (*h, a.as_ref())).collect();
        let pinned = pins::pins(stack, rev, &current, reports, &mine);
        pins::apply(&pinned, rev, &current, reports, &mut mine);
    }

    // A slot moving off a live host keeps its old copy until the new one is available
    // (or, a one-shot service, completed), so it is never without a running copy (they
    // are on different hosts, so no port clash). Copies on dead hosts need no such care.
    let available = |sid: &SlotId| -> bool {
        placement.hosts.get(sid).is_some_and(|host| {
            reports.iter().any(|r| {
                &r.host == host
                    && r.is_for(sid)
                    && r.spec_revision == rev
                    && r.is_available_or_completed()
            })
        })
    };
    let live = |h: &str| cx.world.hosts.contains_key(h);
    let mut handoffs: BTreeSet<(&str, SlotId)> = BTreeSet::new();
    for (host, a) in held {
        for slot in a.slots.iter().filter(|s| s.handoff) {
            let sid = slot.id(id);
            if live(host)
                && placement.hosts.get(&sid).map(String::as_str) != Some(*host)
                && !available(&sid)
            {
                handoffs.insert((host, sid));
            }
        }
    }
    for m in own.moves {
        if m.reason != MoveReason::HostDown && live(&m.from) && !available(&m.slot) {
            handoffs.insert((m.from.as_str(), m.slot.clone()));
        }
    }
    for (host, sid) in handoffs {
        let Some(old) = held.get(host) else {
            continue;
        };
        let Some(slot) = old.slot(&sid) else {
            continue;
        };
        let a = mine.entry(host.to_owned()).or_insert_with(|| Assignment {
            slots: Vec::new(),
            ..Assignment::clone(old)
        });
        if a.slot(&sid).is_none() {
            a.slots.push(Slot {
                handoff: true,
                ..slot.clone()
            });
        }
    }
    mine
}

/// Place every slot of every valid stack from where the world holds them now, with the
/// placement key of each stack placed.
fn place_afresh(
    world: &World,
    parsed: &Parsed,
    regs: &BTreeMap<String, HostRegistration>,
    absent: &BTreeMap<String, (Liveness, HostRegistration)>,
    opts: &Options,
) -> (Placement, BTreeMap<String, u64>) {
    let views: Vec<HostView> = regs
        .values()
        .map(|reg| {
            let m = world.maintenance.get(&reg.id).copied().unwrap_or_default();
            let removing = world.removing(&reg.id);
            HostView {
                reg,
                liveness: absent.get(&reg.id).map_or(Liveness::Ready, |(l, _)| *l),
                cordoned: m.cordoned || m.draining || removing,
                draining: m.draining || removing,
                removing,
            }
        })
        .collect();
    // Where each slot is now; hand-off copies are leaving, so they do not count.
    let mut current: BTreeMap<SlotId, String> = BTreeMap::new();
    for ((host, stack), (a, _)) in &world.assignments {
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            current.insert(slot.id(stack), host.clone());
        }
    }
    let placement = plan::plan(&valid_stacks(parsed), &views, &current, opts);
    let keys = parsed
        .iter()
        .filter_map(|(id, p)| Some((id.clone(), p.placement_key?)))
        .collect();
    (placement, keys)
}

/// Whether `last`'s placement is what placing every slot again would give: the pass
/// covers only a few stacks (so no host, liveness or hold changed), the last placement
/// left every slot where it was, nothing asks for a rebalance, and each covered stack
/// has the placement key it was placed with and its slots held where they were placed.
/// Placement is a function of exactly those inputs.
fn still_placed(
    last: &Placed,
    world: &World,
    parsed: &Parsed,
    scope: &Scope,
    opts: &Options,
) -> bool {
    let Scope::Stacks(ids) = scope else {
        return false;
    };
    let p = &last.placement;
    if !opts.rebalance.is_empty() || !p.unsettled.is_empty() || !p.moves.is_empty() {
        return false;
    }
    let key = |id: &str| parsed.get(id).and_then(|p| p.placement_key);
    if ids.iter().any(|id| key(id) != last.keys.get(id).copied()) {
        return false;
    }
    let mut held: BTreeMap<&str, Vec<(SlotId, &str)>> = BTreeMap::new();
    for ((host, stack), (a, _)) in world
        .assignments
        .iter()
        .filter(|((_, s), _)| ids.contains(s))
    {
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            held.entry(stack)
                .or_default()
                .push((slot.id(stack), host.as_str()));
        }
    }
    ids.iter().filter(|id| key(id).is_some()).all(|id| {
        let mut held = held.remove(id.as_str()).unwrap_or_default();
        held.sort();
        held.iter()
            .map(|(s, h)| (s, *h))
            .eq(p.hosts_of(id).map(|(s, h)| (s, h.as_str())))
    })
}

/// A stack whose spec is gone leaves, on each host that held it, a tombstone in place of
/// its assignment: no slots, and the time the leader first saw it deleted. The agent
/// reads only its own assignments, so this is how it tells a deleted stack (whose
/// `removeVolumesOnDelete` volumes go) from one moved elsewhere (whose data stays). Kept
/// for [`Deletion::RETENTION_MS`], or until the host leaves the cluster or the stack's
/// id is used again.
fn tombstones(
    cx: &Context,
    held: &BTreeMap<&str, &Arc<Assignment>>,
) -> BTreeMap<String, Assignment> {
    let mut out = BTreeMap::new();
    for (host, a) in held {
        if !cx.regs.contains_key(*host) {
            continue;
        }
        let at_ms = a.deleted.map_or(cx.now_ms, |d| d.at_ms);
        if cx.now_ms.saturating_sub(at_ms) >= Deletion::RETENTION_MS {
            // Expired: the tombstone itself goes.
            continue;
        }
        out.insert(
            (*host).to_owned(),
            Assignment {
                slots: Vec::new(),
                deleted: Some(Deletion { at_ms }),
                ..Assignment::clone(a)
            },
        );
    }
    out
}

/// Whether each slot's post-start actions ran for the version it is assigned (the
/// stack's action record, `actions/`).
fn mark_actions_done(world: &World, stack: &str, a: &mut Assignment) {
    let network = &a.network.name;
    for slot in a.slots.iter_mut().filter(|s| !s.post_start.is_empty()) {
        slot.actions_done = world
            .actions
            .get(&(stack.to_owned(), slot.service.clone()))
            .is_some_and(|r| slot.actions_ran(&r.key, network));
    }
}

/// The rollouts' part of a decision, over its stacks.
#[derive(Default)]
struct Rolled {
    records: BTreeMap<String, Option<Rollout>>,
    events: Vec<(String, RolloutEvent)>,
    due_ms: BTreeMap<String, u64>,
}

/// Hold back in `target` (host -> the stack's assignment) the changed slots of stack `id`
/// whose batch has not come, and keep its rollout record, events and next timer.
fn roll(
    cx: &Context,
    own: &StackInputs,
    target: &mut BTreeMap<String, Assignment>,
    rolled: &mut Rolled,
) {
    let (id, stack) = (own.id, own.stack);
    if target.is_empty() {
        return;
    }
    let policies: BTreeMap<String, UpdatePolicy> = stack
        .item_list_element
        .iter()
        .map(|s| (s.name.clone(), stack.update_policy(s)))
        .collect();
    // A rotated secret is a new version too: the newest of the spec's revision and
    // those of the secrets the target pins.
    let revision = target
        .values()
        .map(Assignment::revision)
        .fold(own.rev, i64::max);
    let (record, events) = rollout::step(
        &rollout::Inputs {
            stack: id,
            revision,
            now_ms: cx.now_ms,
            previous: cx.world.rollouts.get(id).map(|(r, _)| r),
            current: own.held.iter().map(|(h, a)| (*h, a.as_ref())).collect(),
            reports: own.reports,
            policies: &policies,
            paused: cx.world.paused.contains(id),
        },
        target,
    );
    if let Some(due) = record
        .as_ref()
        .and_then(|r| rollout::next_due(r, &policies))
    {
        rolled.due_ms.insert(id.to_owned(), due);
    }
    rolled
        .events
        .extend(events.into_iter().map(|e| (id.to_owned(), e)));
    rolled.records.insert(id.to_owned(), record);
}

/// Fill each slot's `waiting_for`, in `out` (host -> stack `id`'s assignment), with the
/// dependencies it waits for (`condition: healthy` or `waitForHealthy: true`, and
/// `condition: completed`) that are not there yet: every replica placed, and reported by
/// its host with the spec it is assigned now (its hash), so a dependency being replaced
/// counts as not there. `healthy` asks for each replica running and healthy;
/// `completed`, for each one exited 0 and done.
pub fn mark_waiting(
    id: &str,
    spec: &Stack,
    out: &mut BTreeMap<String, Assignment>,
    placement: &Placement,
    reports: &[&SlotReport],
) {
    // A stack with no dependency that waits (healthy, completed) has nothing to mark,
    // and its slots are not indexed for nothing.
    let waits = |svc: &crate::spec::Service| {
        svc.software_requirements
            .iter()
            .any(|d| d.condition() != DependencyCondition::Started)
    };
    if !spec.item_list_element.iter().any(waits) {
        return;
    }
    // slot -> (host, its slot, its network), from what is being assigned. The spec hash
    // is computed only for the slots some dependent asks about.
    let mut expected: BTreeMap<SlotId, (&str, &Slot, &str)> = BTreeMap::new();
    for (host, a) in out.iter() {
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            expected.insert(slot.id(id), (host.as_str(), slot, a.network.name.as_str()));
        }
    }
    // Reports by (host, service, replica), looked up rather than scanned.
    let mut reported: BTreeMap<(&str, &str, u32), Vec<&SlotReport>> = BTreeMap::new();
    for r in reports {
        reported
            .entry((r.host.as_str(), r.service.as_str(), r.replica))
            .or_default()
            .push(r);
    }
    // `Err` says what is awaited, as the dependent's status shows it.
    let there = |sid: &SlotId, condition: DependencyCondition| -> Result<(), String> {
        let (met, awaited): (fn(&SlotReport) -> bool, &str) = match condition {
            DependencyCondition::Completed => (|r| r.is_completed(), "to complete"),
            // `started` asks for nothing more than the start order, and never gets here.
            DependencyCondition::Healthy | DependencyCondition::Started => {
                (|r| r.is_available(), "to be healthy")
            }
        };
        let service = &sid.service;
        let Some((host, slot, network)) = expected.get(sid) else {
            let on = placement
                .hosts
                .get(sid)
                .map_or("not scheduled", String::as_str);
            return Err(format!("{service} ({on}) {awaited}"));
        };
        let hash = slot.container.hash(network);
        let ok = reported
            .get(&(*host, sid.service.as_str(), sid.replica))
            .is_some_and(|rs| rs.iter().any(|r| r.spec_hash == hash && met(r)));
        if ok {
            Ok(())
        } else {
            Err(format!("{service} ({host}) {awaited}"))
        }
    };
    // (host, slot) -> the dependencies it waits for.
    let mut waits: BTreeMap<(String, SlotId), Vec<String>> = BTreeMap::new();
    for (host, a) in out.iter() {
        for slot in &a.slots {
            let Some(svc) = spec
                .item_list_element
                .iter()
                .find(|s| s.name == slot.service)
            else {
                continue;
            };
            let mut waiting = Vec::new();
            for dep in &svc.software_requirements {
                let condition = dep.condition();
                if condition == DependencyCondition::Started {
                    continue;
                }
                let replicas = spec
                    .item_list_element
                    .iter()
                    .find(|s| s.name == dep.name)
                    .map_or(1, |s| s.replica_count());
                if let Some(Err(w)) = (1..=replicas)
                    .map(|r| there(&SlotId::new(id, &dep.name, r), condition))
                    .find(Result::is_err)
                {
                    waiting.push(w);
                }
            }
            if !waiting.is_empty() {
                waits.insert((host.clone(), slot.id(id)), waiting);
            }
        }
    }
    for ((host, sid), w) in waits {
        if let Some(a) = out.get_mut(&host) {
            if let Some(slot) = a.slots.iter_mut().find(|s| s.is(&sid)) {
                slot.waiting_for = w;
            }
        }
    }
}

/// Parse and validate one stack; the key's id must be a DNS label too.
pub fn parse_one(id: &str, raw: &[u8], limits: &Limits) -> Result<Stack, Vec<Problem>> {
    let parsed = crate::spec::parse_stack_with(raw, limits);
    if crate::spec::is_dns_label(id) {
        return parsed;
    }
    let p = Problem::new(
        "",
        format!("stack id {id:?} in the key is not a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters)"),
    );
    match parsed {
        Ok(_) => Err(vec![p]),
        Err(mut v) => {
            v.insert(0, p);
            Err(v)
        }
    }
}

/// What `berth apply --dry-run` shows.
pub struct ApplyPreview {
    /// Where each slot would go (moves relative to where its slots are now).
    pub placement: Placement,
    /// How each changed service would roll out.
    pub rollouts: Vec<rollout::ServicePlan>,
}

/// What `berth apply --dry-run` and the web view's preview show for `raw` as the spec of
/// `stack`: every validation problem (the id's too), or where each slot would go and how
/// the change would roll out. Writes nothing: `world` is the caller's copy.
pub fn dry_run(
    world: &mut World,
    stack: &str,
    raw: Vec<u8>,
    max_unavailable_fraction: f64,
) -> Result<ApplyPreview, Vec<Problem>> {
    parse_one(stack, &raw, &Limits::default())?;
    Ok(preview_apply(world, stack, raw, max_unavailable_fraction))
}

/// What `berth apply --dry-run` would do: the world as it is, with `raw` as the spec of
/// `stack`.
pub fn preview_apply(
    world: &mut World,
    stack: &str,
    raw: Vec<u8>,
    max_unavailable_fraction: f64,
) -> ApplyPreview {
    let next = world.stacks.get(stack).map_or(1, |(r, _)| r + 1);
    world.stacks.insert(stack.to_owned(), (next, raw));
    let (mut placement, target) = preview(world, stack, false, max_unavailable_fraction);
    placement.hosts.retain(|sid, _| sid.stack == stack);
    placement.unschedulable.retain(|(s, _), _| s == stack);
    let rollouts = match world
        .stacks
        .get(stack)
        .map(|(_, raw)| parse_one(stack, raw, &Limits::default()))
    {
        Some(Ok(spec)) => {
            let policies: BTreeMap<String, UpdatePolicy> = spec
                .item_list_element
                .iter()
                .map(|s| (s.name.clone(), spec.update_policy(s)))
                .collect();
            let current: BTreeMap<&str, &Assignment> = world
                .assignments
                .iter()
                .filter(|((_, s), _)| s == stack)
                .map(|((h, _), (a, _))| (h.as_str(), a.as_ref()))
                .collect();
            rollout::plan(stack, &current, &target, &policies)
        }
        _ => Vec::new(),
    };
    ApplyPreview {
        placement,
        rollouts,
    }
}

/// What `berth rebalance STACK` would do now: the moves of placing that stack afresh.
pub fn preview_rebalance(world: &World, stack: &str, max_unavailable_fraction: f64) -> Placement {
    preview(world, stack, true, max_unavailable_fraction).0
}

/// The controller's placement, and `stack`'s assignments by host before rollouts hold
/// anything back, as the CLI can compute them: without the controller's grace clock,
/// hosts that are assigned but unregistered count as not ready (their slots stay, nothing
/// new goes there). Moves are kept for `stack` only.
fn preview(
    world: &World,
    stack: &str,
    rebalance: bool,
    max_unavailable_fraction: f64,
) -> (Placement, BTreeMap<String, Assignment>) {
    let parsed: Parsed = world
        .stacks
        .iter()
        .map(|(id, (rev, raw))| {
            let spec = parse_one(id, raw, &Limits::default());
            (id.clone(), ParsedSpec::new(*rev, spec))
        })
        .collect();
    let absent: BTreeMap<String, (Liveness, HostRegistration)> = world
        .unregistered_hosts()
        .into_iter()
        .map(|h| {
            let reg = HostRegistration {
                id: h.to_owned(),
                ..Default::default()
            };
            (h.to_owned(), (Liveness::NotReady, reg))
        })
        .collect();
    let opts = Options {
        max_unavailable_fraction,
        rebalance: if rebalance {
            BTreeSet::from([stack.to_owned()])
        } else {
            BTreeSet::new()
        },
    };
    let regs = registrations(world, &absent);
    let (mut placement, _) = place_afresh(world, &parsed, &regs, &absent, &opts);
    placement.moves.retain(|m| m.slot.stack == stack);
    // Only `stack` is asked about: the others are placed, but not built.
    let target = match parsed.get(stack) {
        Some(ParsedSpec {
            revision,
            spec: Ok(spec),
            ..
        }) => {
            let only = Scope::Stacks(BTreeSet::from([stack.to_owned()]));
            let by = ByStack::of(world, &only, &placement);
            let cx = Context {
                world,
                placement: &placement,
                regs: &regs,
                now_ms: 0,
            };
            placed_target(&cx, &by.inputs(stack, spec, *revision))
        }
        _ => BTreeMap::new(),
    };
    (placement, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SlotReport;
    use crate::scheduler::assign::assignments_for;
    use crate::spec::parse_stack;

    const STACK: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"manual"},"itemListElement":[
      {"name":"db","image":"i","targetHost":"h1","ports":[{"containerPort":5432,"hostPort":15432}]},
      {"name":"cache","image":"i","targetHost":"h1"},
      {"name":"app","image":"i","targetHost":"h2","softwareRequirements":[{"name":"db","waitForHealthy":true},{"name":"cache","waitForHealthy":false}]}]}"#;

    fn report(service: &str, host: &str, hash: &str, state: &str, health: &str) -> SlotReport {
        SlotReport {
            stack: "s".into(),
            service: service.into(),
            replica: 1,
            host: host.into(),
            spec_revision: 1,
            spec_hash: hash.into(),
            container_id: None,
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

    /// What `app` (the only service on h2) waits for in `json`, given the reports.
    fn app_waits_in(json: &str) -> impl Fn(Vec<SlotReport>) -> Vec<String> {
        let stack = parse_stack(json.as_bytes()).unwrap();
        let hosts: BTreeMap<String, HostRegistration> = ["h1", "h2"]
            .iter()
            .map(|h| {
                (
                    h.to_string(),
                    HostRegistration {
                        id: h.to_string(),
                        address: format!("10.0.0.{}", h.len()),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let mut placement = Placement::default();
        for svc in &stack.item_list_element {
            let h = svc.target_host.clone().unwrap_or_default();
            placement.hosts.insert(SlotId::new("s", &svc.name, 1), h);
        }
        let base: BTreeMap<String, Assignment> =
            assignments_for("s", &stack, 1, &placement.hosts, &hosts, &BTreeMap::new());
        move |reports: Vec<SlotReport>| {
            let mut out = base.clone();
            let reports: Vec<&SlotReport> = reports.iter().collect();
            mark_waiting("s", &stack, &mut out, &placement, &reports);
            out["h2"].slots[0].waiting_for.clone()
        }
    }

    /// The spec hash `service` (on h1) is assigned in `json`.
    fn hash_on_h1(json: &str, service: &str) -> String {
        let stack = parse_stack(json.as_bytes()).unwrap();
        let hosts = BTreeMap::from([("h1".to_owned(), HostRegistration::default())]);
        let placed = BTreeMap::from([(SlotId::new("s", service, 1), "h1".to_owned())]);
        let a = &assignments_for("s", &stack, 1, &placed, &hosts, &BTreeMap::new())["h1"];
        a.slots[0].container.hash(&a.network.name)
    }

    #[test]
    fn a_dependent_waits_until_its_dependency_runs_healthy_with_its_current_spec() {
        let app_waits = app_waits_in(STACK);
        let db_hash = hash_on_h1(STACK, "db");
        // (case, reports, what app waits for)
        let cases: Vec<(&str, Vec<SlotReport>, Vec<&str>)> = vec![
            ("no report yet", vec![], vec!["db (h1) to be healthy"]),
            (
                "running but still starting",
                vec![report("db", "h1", &db_hash, "running", "starting")],
                vec!["db (h1) to be healthy"],
            ),
            (
                "healthy, but an older spec",
                vec![report("db", "h1", "old", "running", "healthy")],
                vec!["db (h1) to be healthy"],
            ),
            (
                "healthy with the current spec",
                vec![report("db", "h1", &db_hash, "running", "healthy")],
                vec![],
            ),
            (
                "running without a check counts as healthy",
                vec![report("db", "h1", &db_hash, "running", "none")],
                vec![],
            ),
        ];
        for (name, reports, want) in cases {
            assert_eq!(app_waits(reports), want, "{name}");
        }
    }

    #[test]
    fn a_dependent_waits_until_its_dependency_completed_with_its_current_spec() {
        const JOBS: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"manual"},"itemListElement":[
          {"name":"migrate","image":"i","targetHost":"h1","restartPolicy":"on-failure"},
          {"name":"db","image":"i","targetHost":"h1"},
          {"name":"app","image":"i","targetHost":"h2","softwareRequirements":[{"name":"migrate","condition":"completed"},{"name":"db","condition":"started"}]}]}"#;
        let app_waits = app_waits_in(JOBS);
        let hash = hash_on_h1(JOBS, "migrate");
        let migrate = |hash: &str, state: &str| report("migrate", "h1", hash, state, "none");
        // (case, reports, what app waits for)
        let cases: Vec<(&str, Vec<SlotReport>, Vec<&str>)> = vec![
            ("no report yet", vec![], vec!["migrate (h1) to complete"]),
            (
                "running is not enough",
                vec![migrate(&hash, "running")],
                vec!["migrate (h1) to complete"],
            ),
            (
                "exited non-zero (it will be restarted)",
                vec![migrate(&hash, "exited")],
                vec!["migrate (h1) to complete"],
            ),
            (
                "failed under never",
                vec![migrate(&hash, "failed")],
                vec!["migrate (h1) to complete"],
            ),
            (
                "completed, but an older spec",
                vec![migrate("old", "completed")],
                vec!["migrate (h1) to complete"],
            ),
            (
                "completed with the current spec; db is only started first",
                vec![migrate(&hash, "completed")],
                vec![],
            ),
        ];
        for (name, reports, want) in cases {
            assert_eq!(app_waits(reports), want, "{name}");
        }
    }

    /// One pass of the leader over `world` at `now_ms`, written back into it as the next
    /// pass will read it: the assignments and the rollout record. Returns the events.
    fn pass(world: &mut World, parsed: &Parsed, now_ms: u64) -> Vec<RolloutEvent> {
        let d = decide(
            world,
            parsed,
            &BTreeMap::new(),
            &Options::default(),
            now_ms,
            Scope::Everything,
            None,
        );
        world.assignments = d
            .assignments
            .into_iter()
            .map(|(k, a)| (k, (a, 1)))
            .collect();
        world.rollouts = d
            .rollouts
            .into_iter()
            .filter_map(|(id, r)| Some((id, (r?, 1))))
            .collect();
        d.rollout_events.into_iter().map(|(_, e)| e).collect()
    }

    /// (service, replica) -> the revision of `pw` it pins, `None` for no pin.
    fn pins(world: &World) -> BTreeMap<(String, u32), Option<i64>> {
        let mut out = BTreeMap::new();
        for (a, _) in world.assignments.values() {
            for s in &a.slots {
                let pin = s.container.secret_revisions.get("pw").copied();
                out.insert((s.service.clone(), s.replica), pin);
            }
        }
        out
    }

    /// Every slot reported on what it is assigned, `exited` for those in `crashed`.
    fn reports_of(world: &World, crashed: &[(&str, u32)]) -> BTreeMap<String, SlotReport> {
        let mut out = BTreeMap::new();
        for ((host, _), (a, _)) in &world.assignments {
            for s in &a.slots {
                let state = if crashed.contains(&(s.service.as_str(), s.replica)) {
                    "exited"
                } else {
                    "running"
                };
                let mut r = report(
                    &s.service,
                    host,
                    &s.container.hash(&a.network.name),
                    state,
                    "none",
                );
                r.replica = s.replica;
                out.insert(
                    crate::store::keys::report(
                        host,
                        &r.stack,
                        &crate::slot::slot_key(&s.service, s.replica),
                    ),
                    r,
                );
            }
        }
        out
    }

    #[test]
    fn a_rotated_secret_rolls_out_to_the_services_that_use_it_and_a_rollback_pins_the_old_version_again(
    ) {
        let raw = br#"{"itemListElement": [
          {"name": "app", "image": "i", "replicas": 2, "environment": {"PW": "{{secret:pw}}"},
           "update": {"parallelism": 1, "monitor": 1}},
          {"name": "other", "image": "i", "environment": {"A": "1"}}]}"#;
        let parsed: Parsed = BTreeMap::from([(
            "s".to_owned(),
            ParsedSpec::new(5, Ok(parse_stack(raw).unwrap())),
        )]);
        let mut world = World::default();
        world.hosts.insert(
            "h1".into(),
            HostRegistration {
                id: "h1".into(),
                address: "10.0.0.1".into(),
                ..Default::default()
            },
        );
        world.secrets.insert("pw".into(), 3);
        let app = |r: u32| ("app".to_owned(), r);
        let other = ("other".to_owned(), 1);

        // First deployment: every slot at once, pinned to the secret as it is.
        assert!(pass(&mut world, &parsed, 0).is_empty());
        assert_eq!(
            pins(&world),
            BTreeMap::from([(app(1), Some(3)), (app(2), Some(3)), (other.clone(), None)])
        );
        // A rollout of this spec revision already ran to completion: the rotation below
        // must start a rollout of its own all the same.
        world.rollouts.insert(
            "s".into(),
            (
                Rollout {
                    to_revision: 5,
                    from_revision: 4,
                    ..Default::default()
                },
                1,
            ),
        );
        let other_before = world.assignments[&("h1".to_owned(), "s".to_owned())]
            .0
            .slots
            .iter()
            .find(|s| s.service == "other")
            .cloned();
        world.reports = reports_of(&world, &[]);

        // The secret is rotated: the spec key is not touched.
        world.secrets.insert("pw".into(), 9);
        let events = pass(&mut world, &parsed, 1_000);
        assert_eq!(events, vec![RolloutEvent::Started { to: 9, from: 5 }]);
        assert_eq!(
            pins(&world),
            BTreeMap::from([(app(1), Some(9)), (app(2), Some(3)), (other.clone(), None)]),
            "one batch of the service that uses it; the other service as it was"
        );
        let other_after = world.assignments[&("h1".to_owned(), "s".to_owned())]
            .0
            .slots
            .iter()
            .find(|s| s.service == "other")
            .cloned();
        assert_eq!(other_after, other_before);

        // The new value breaks the app: back to the version it ran before.
        world.reports = reports_of(&world, &[("app", 1)]);
        let events = pass(&mut world, &parsed, 2_000);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RolloutEvent::Failed { service, .. } if service == "app")),
            "{events:?}"
        );
        assert_eq!(
            pins(&world),
            BTreeMap::from([(app(1), Some(3)), (app(2), Some(3)), (other, None)]),
            "the agent fills in pw as of revision 3 again"
        );
        let record = &world.rollouts["s"].0;
        assert_eq!((record.from_revision, record.to_revision), (5, 9));
    }

    #[test]
    fn a_deleted_stack_leaves_a_tombstone_on_each_host_that_held_it_for_a_day() {
        let stack = parse_stack(STACK.as_bytes()).unwrap();
        let regs: BTreeMap<String, HostRegistration> = ["h1", "h2"]
            .iter()
            .map(|h| (h.to_string(), HostRegistration::default()))
            .collect();
        let placed: BTreeMap<SlotId, String> = stack
            .item_list_element
            .iter()
            .map(|s| {
                let h = s.target_host.clone().unwrap_or_default();
                (SlotId::new("s", &s.name, 1), h)
            })
            .collect();
        let held = assignments_for("s", &stack, 1, &placed, &regs, &BTreeMap::new());
        const NOW: u64 = 5_000_000_000;
        let day = Deletion::RETENTION_MS;
        let world = |deleted_at: Option<u64>, spec: bool| {
            let mut w = World::default();
            let mut parsed = Parsed::new();
            if spec {
                let spec = Ok(stack.clone());
                parsed.insert("s".into(), ParsedSpec::new(1, spec));
            }
            for (h, a) in &held {
                let a = Assignment {
                    deleted: deleted_at.map(|at_ms| Deletion { at_ms }),
                    slots: if deleted_at.is_some() {
                        vec![]
                    } else {
                        a.slots.clone()
                    },
                    ..a.clone()
                };
                w.assignments
                    .insert((h.clone(), "s".into()), (Arc::new(a), 1));
            }
            (w, parsed)
        };
        /// (case, world, hosts still in the cluster, deletion time of each tombstone kept)
        type Case = (
            &'static str,
            (World, Parsed),
            Vec<&'static str>,
            Vec<(&'static str, u64)>,
        );
        let cases: Vec<Case> = vec![
            (
                "spec still there: no tombstone",
                world(None, true),
                vec!["h1", "h2"],
                vec![],
            ),
            (
                "spec just deleted: one per host, stamped now",
                world(None, false),
                vec!["h1", "h2"],
                vec![("h1", NOW), ("h2", NOW)],
            ),
            (
                "kept: the time it was first seen deleted stays",
                world(Some(NOW - day + 1), false),
                vec!["h1", "h2"],
                vec![("h1", NOW - day + 1), ("h2", NOW - day + 1)],
            ),
            (
                "a day old: gone",
                world(Some(NOW - day), false),
                vec!["h1", "h2"],
                vec![],
            ),
            (
                "a host that left the cluster keeps none",
                world(None, false),
                vec!["h2"],
                vec![("h2", NOW)],
            ),
            (
                "the id used again: the new spec's assignments replace them",
                world(Some(NOW - 1), true),
                vec!["h1", "h2"],
                vec![],
            ),
        ];
        for (name, (mut w, parsed), hosts, want) in cases {
            w.hosts = hosts
                .into_iter()
                .map(|h| {
                    let reg = HostRegistration {
                        id: h.to_owned(),
                        ..Default::default()
                    };
                    (h.to_owned(), reg)
                })
                .collect();
            let opts = Options::default();
            let none = BTreeMap::new();
            let d = decide(&w, &parsed, &none, &opts, NOW, Scope::Everything, None);
            let got: Vec<(&str, u64)> = d
                .assignments
                .iter()
                .filter(|(_, a)| a.is_tombstone())
                .map(|((h, _), a)| {
                    assert!(a.slots.is_empty(), "{name}: a tombstone runs nothing");
                    (h.as_str(), a.deleted.expect("a tombstone").at_ms)
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    /// A converged world of four hosts and three spread stacks (a, b, c), every slot
    /// reported running, and the parsed specs.
    fn converged() -> (World, Parsed) {
        let mut world = World::default();
        for i in 1..=4 {
            let id = format!("h{i}");
            world.hosts.insert(
                id.clone(),
                HostRegistration {
                    id,
                    address: format!("10.0.0.{i}"),
                    ..Default::default()
                },
            );
        }
        let mut parsed = Parsed::new();
        for (id, raw) in [
            ("a", spread_stack("1", 2, None)),
            ("b", spread_stack("1", 1, None)),
            ("c", spread_stack("1", 1, Some(8080))),
        ] {
            set_spec(&mut world, &mut parsed, id, &raw);
        }
        pass(&mut world, &parsed, 0);
        world.reports = reports_of_all(&world);
        pass(&mut world, &parsed, 0);
        (world, parsed)
    }

    fn spread_stack(version: &str, replicas: u32, port: Option<u16>) -> String {
        let ports = port.map_or(String::new(), |p| {
            format!(r#","ports":[{{"containerPort":80,"hostPort":{p}}}]"#)
        });
        format!(
            r#"{{"deployment":{{"mode":"multi-host","placementStrategy":"spread"}},"itemListElement":[
              {{"name":"web","image":"i","replicas":{replicas},"environment":{{"V":"{version}"}}{ports}}},
              {{"name":"db","image":"i"}}]}}"#
        )
    }

    fn set_spec(world: &mut World, parsed: &mut Parsed, id: &str, raw: &str) {
        let rev = world.stacks.values().map(|(r, _)| *r).max().unwrap_or(0) + 1;
        world
            .stacks
            .insert(id.to_owned(), (rev, raw.as_bytes().to_vec()));
        parsed.insert(
            id.to_owned(),
            ParsedSpec::new(rev, parse_one(id, raw.as_bytes(), &Limits::default())),
        );
    }

    /// Every slot of every stack reported running with what it is assigned.
    fn reports_of_all(world: &World) -> BTreeMap<String, SlotReport> {
        let mut out = BTreeMap::new();
        for ((host, stack), (a, _)) in &world.assignments {
            for s in &a.slots {
                let mut r = report(
                    &s.service,
                    host,
                    &s.container.hash(&a.network.name),
                    "running",
                    "none",
                );
                r.stack = stack.clone();
                r.replica = s.replica;
                r.spec_revision = a.spec_revision;
                out.insert(
                    crate::store::keys::report(
                        host,
                        stack,
                        &crate::slot::slot_key(&s.service, s.replica),
                    ),
                    r,
                );
            }
        }
        out
    }

    /// A pass holds no copy of what it leaves as held: over a converged cluster, every
    /// decided assignment is the world's own; after a change to one stack, only that
    /// stack's are new.
    #[test]
    fn a_pass_shares_the_assignments_it_leaves_as_held() {
        let (mut world, mut parsed) = converged();
        let shared = |world: &World, d: &Decision| -> BTreeMap<String, (usize, usize)> {
            let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for ((host, stack), a) in &d.assignments {
                let held = world.assignments.get(&(host.clone(), stack.clone()));
                let n = out.entry(stack.clone()).or_default();
                if held.is_some_and(|(h, _)| Arc::ptr_eq(h, a)) {
                    n.0 += 1;
                } else {
                    n.1 += 1;
                }
            }
            out
        };
        let full = |world: &World, parsed: &Parsed| {
            let none = BTreeMap::new();
            let opts = Options::default();
            decide(world, parsed, &none, &opts, 0, Scope::Everything, None)
        };
        let held_of = |world: &World, stack: &str| {
            world.assignments.keys().filter(|(_, s)| s == stack).count()
        };
        let (a, b, c) = (
            held_of(&world, "a"),
            held_of(&world, "b"),
            held_of(&world, "c"),
        );
        assert!(a > 0 && b > 0 && c > 0, "every stack is held somewhere");
        let d = full(&world, &parsed);
        // (shared, new) by stack.
        let want = BTreeMap::from([
            ("a".to_owned(), (a, 0)),
            ("b".to_owned(), (b, 0)),
            ("c".to_owned(), (c, 0)),
        ]);
        assert_eq!(shared(&world, &d), want, "converged: all shared");
        set_spec(&mut world, &mut parsed, "b", &spread_stack("2", 1, None));
        let d = full(&world, &parsed);
        let want = BTreeMap::from([
            ("a".to_owned(), (a, 0)),
            ("b".to_owned(), (0, b)),
            ("c".to_owned(), (c, 0)),
        ]);
        assert_eq!(shared(&world, &d), want, "b changed: only b's are new");
    }

    /// The invariant behind deciding only the stacks that changed: for each change, a
    /// pass over the changed stack decides every stack it covers as a pass over all
    /// stacks does, and every stack it leaves out is decided by the full pass exactly as
    /// it is held, so leaving it out loses no write.
    #[test]
    fn a_pass_over_the_changed_stacks_writes_what_a_pass_over_every_stack_writes() {
        type Change = fn(&mut World, &mut Parsed);
        // (what, the stack that changed, the change, the stacks the pass covers, whether
        // the last placement is kept)
        let cases: Vec<(&str, &str, Change, &[&str], bool)> = vec![
            ("nothing changed", "a", |_, _| {}, &["a"], true),
            (
                "a new version of b",
                "b",
                |w, p| set_spec(w, p, "b", &spread_stack("2", 1, None)),
                &["b"],
                true,
            ),
            (
                "a scaled up",
                "a",
                |w, p| set_spec(w, p, "a", &spread_stack("1", 4, None)),
                &["a"],
                false,
            ),
            (
                "a new stack d",
                "d",
                |w, p| set_spec(w, p, "d", &spread_stack("1", 1, None)),
                &["d"],
                false,
            ),
            (
                "c deleted",
                "c",
                |w, p| {
                    w.stacks.remove("c");
                    p.remove("c");
                },
                &["c"],
                false,
            ),
            (
                "b made invalid",
                "b",
                |w, p| set_spec(w, p, "b", r#"{"itemListElement": 7}"#),
                &["b"],
                false,
            ),
            (
                // a's slots are on three of the four hosts, c's web on one of them. a
                // sorts before c, so a's slot there keeps its host and takes the port,
                // and c's web has to move: c is decided too, though only a changed.
                "a takes the host port c's web holds",
                "a",
                |w, p| {
                    let raw = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[
                      {"name":"web","image":"i","replicas":2,"environment":{"V":"1"},
                       "ports":[{"containerPort":80,"hostPort":8080}]},
                      {"name":"db","image":"i","ports":[{"containerPort":81,"hostPort":8080}]}]}"#;
                    set_spec(w, p, "a", raw)
                },
                &["a", "c"],
                false,
            ),
            (
                "a report of b's db crashed",
                "b",
                |w, _| {
                    for r in w.reports.values_mut().filter(|r| r.stack == "b") {
                        r.state = "exited".parse().unwrap();
                    }
                },
                &["b"],
                true,
            ),
            (
                "b's assignment on its host edited away from the placement",
                "b",
                |w, _| {
                    let (at, held) = w
                        .assignments
                        .iter()
                        .find(|((_, s), _)| s == "b")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap();
                    w.assignments.remove(&at);
                    w.assignments.insert(("h4".into(), "b".into()), held);
                },
                &["b"],
                false,
            ),
        ];
        for (name, changed, change, want_scope, kept) in cases {
            let (mut world, mut parsed) = converged();
            let decide_in = |world: &World, parsed: &Parsed, scope: Scope, last| {
                decide(
                    world,
                    parsed,
                    &BTreeMap::new(),
                    &Options::default(),
                    7,
                    scope,
                    last,
                )
            };
            let before = decide_in(&world, &parsed, Scope::Everything, None);
            let last = Placed {
                placement: before.placement,
                keys: before.placement_keys,
            };
            change(&mut world, &mut parsed);
            let full = decide_in(&world, &parsed, Scope::Everything, None);
            let narrow = decide_in(
                &world,
                &parsed,
                Scope::Stacks(BTreeSet::from([changed.to_owned()])),
                Some(last),
            );
            assert_eq!(narrow.placement_kept, kept, "{name}: placement kept");
            let Scope::Stacks(covered) = &narrow.scope else {
                panic!("{name}: a narrow pass stays narrow");
            };
            let want: BTreeSet<String> = want_scope.iter().map(|s| s.to_string()).collect();
            assert_eq!(covered, &want, "{name}: stacks covered");
            assert_eq!(full.placement, narrow.placement, "{name}: placement");
            let of = |m: &BTreeMap<(String, String), Arc<Assignment>>, inside: bool| {
                m.iter()
                    .filter(|((_, s), _)| covered.contains(s) == inside)
                    .map(|(k, a)| (k.clone(), a.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            let held: BTreeMap<(String, String), Arc<Assignment>> = world
                .assignments
                .iter()
                .map(|(k, (a, _))| (k.clone(), a.clone()))
                .collect();
            assert_eq!(
                of(&narrow.assignments, true),
                of(&full.assignments, true),
                "{name}: the covered stacks are decided as a full pass decides them"
            );
            assert!(
                of(&narrow.assignments, false).is_empty(),
                "{name}: nothing decided outside the scope"
            );
            assert_eq!(
                of(&full.assignments, false),
                of(&held, false),
                "{name}: a full pass would write nothing for the stacks left out"
            );
            for (id, r) in &full.rollouts {
                if covered.contains(id) {
                    assert_eq!(narrow.rollouts.get(id), Some(r), "{name}: rollout of {id}");
                } else {
                    assert_eq!(
                        r.as_ref(),
                        world.rollouts.get(id).map(|(r, _)| r),
                        "{name}: rollout of {id} left out but due a write"
                    );
                }
            }
            assert!(narrow.rollouts.keys().all(|id| covered.contains(id)));
        }
    }
}
