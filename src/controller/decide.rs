//! The controller's decision, pure: from the decoded world, the parsed stacks and each
//! host's liveness, the placement and every assignment that should exist.

use std::collections::{BTreeMap, BTreeSet};

use super::world::World;
use crate::assignment::{Assignment, Slot};
use crate::scheduler::assign;
use crate::scheduler::plan::{self, HostView, Liveness, MoveReason, Options, Placement, SlotId};
use crate::spec::{HostRegistration, Problem, Stack};

pub type Parsed = BTreeMap<String, (i64, Result<Stack, Vec<Problem>>)>;

pub struct Decision {
    pub placement: Placement,
    /// (host, stack) -> assignment.
    pub assignments: BTreeMap<(String, String), Assignment>,
    /// Registrations of every host a slot may refer to (live ones and those in grace).
    pub addresses: BTreeMap<String, HostRegistration>,
}

/// `liveness` covers every host known to be absent; registered hosts are Ready.
pub fn decide(
    world: &World,
    parsed: &Parsed,
    absent: &BTreeMap<String, (Liveness, HostRegistration)>,
    opts: &Options,
) -> Decision {
    let mut regs: BTreeMap<String, HostRegistration> = world.hosts.clone();
    for (h, (_, reg)) in absent {
        regs.entry(h.clone()).or_insert_with(|| reg.clone());
    }
    let views: Vec<HostView> = regs
        .values()
        .map(|reg| {
            let m = world.maintenance.get(&reg.id).copied().unwrap_or_default();
            HostView {
                reg,
                liveness: absent.get(&reg.id).map_or(Liveness::Ready, |(l, _)| *l),
                cordoned: m.cordoned || m.draining,
                draining: m.draining,
            }
        })
        .collect();

    // Where each slot is now; hand-off copies are leaving, so they do not count.
    let mut current: BTreeMap<SlotId, String> = BTreeMap::new();
    for ((host, stack), (a, _)) in &world.assignments {
        for slot in a.slots.iter().filter(|s| !s.handoff) {
            current.insert(slot_id(stack, slot), host.clone());
        }
    }
    let valid: Vec<(&str, &Stack)> = parsed
        .iter()
        .filter_map(|(id, (_, p))| p.as_ref().ok().map(|s| (id.as_str(), s)))
        .collect();
    let placement = plan::plan(&valid, &views, &current, opts);

    // Valid stacks from the plan; an invalid stack keeps what it had (the last valid
    // version keeps running); a deleted one gets nothing.
    let mut out: BTreeMap<(String, String), Assignment> = BTreeMap::new();
    for (id, stack) in &valid {
        let rev = parsed.get(*id).map(|(r, _)| *r).unwrap_or(0);
        for (host, a) in assign::assignments_for(id, stack, rev, &placement.hosts, &regs) {
            out.insert((host, (*id).to_owned()), a);
        }
    }
    for ((host, stack), (a, _)) in &world.assignments {
        if matches!(parsed.get(stack), Some((_, Err(_)))) {
            out.insert((host.clone(), stack.clone()), a.clone());
        }
    }

    // A slot moving off a live host keeps its old copy until the new one is available,
    // so it is never without a running copy (they are on different hosts, so no port
    // clash). Copies on dead hosts need no such care.
    let available = |sid: &SlotId| -> bool {
        let Some(host) = placement.hosts.get(sid) else {
            return false;
        };
        let rev = parsed.get(&sid.stack).map(|(r, _)| *r).unwrap_or(0);
        world.reports.iter().any(|r| {
            &r.host == host
                && r.stack == sid.stack
                && r.service == sid.service
                && r.replica == sid.replica
                && r.spec_revision == rev
                && r.is_available()
        })
    };
    let live = |h: &str| world.hosts.contains_key(h);
    let mut handoffs: BTreeSet<(String, SlotId)> = BTreeSet::new();
    for ((host, stack), (a, _)) in &world.assignments {
        for slot in a.slots.iter().filter(|s| s.handoff) {
            let sid = slot_id(stack, slot);
            if live(host) && placement.hosts.get(&sid) != Some(host) && !available(&sid) {
                handoffs.insert((host.clone(), sid));
            }
        }
    }
    for m in &placement.moves {
        if m.reason != MoveReason::HostDown && live(&m.from) && !available(&m.slot) {
            handoffs.insert((m.from.clone(), m.slot.clone()));
        }
    }
    for (host, sid) in handoffs {
        let Some((old, _)) = world.assignments.get(&(host.clone(), sid.stack.clone())) else {
            continue;
        };
        let Some(slot) = old
            .slots
            .iter()
            .find(|s| s.service == sid.service && s.replica == sid.replica)
        else {
            continue;
        };
        let a = out
            .entry((host.clone(), sid.stack.clone()))
            .or_insert_with(|| Assignment {
                slots: Vec::new(),
                ..old.clone()
            });
        if !a
            .slots
            .iter()
            .any(|s| s.service == sid.service && s.replica == sid.replica)
        {
            a.slots.push(Slot {
                handoff: true,
                ..slot.clone()
            });
        }
    }

    Decision {
        placement,
        assignments: out,
        addresses: regs,
    }
}

/// Parse and validate one stack; the key's id must be a DNS label too.
pub fn parse_one(id: &str, raw: &[u8]) -> Result<Stack, Vec<Problem>> {
    let parsed = crate::spec::parse_stack(raw);
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

/// What `berth rebalance STACK` would do now: the moves of placing that stack afresh.
/// Hosts that are unregistered count as not ready (the CLI has no grace clock).
pub fn preview_rebalance(world: &World, stack: &str, max_unavailable_fraction: f64) -> Placement {
    let parsed: Parsed = world
        .stacks
        .iter()
        .map(|(id, (rev, raw))| (id.clone(), (*rev, parse_one(id, raw))))
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
        rebalance: BTreeSet::from([stack.to_owned()]),
    };
    let mut placement = decide(world, &parsed, &absent, &opts).placement;
    placement.moves.retain(|m| m.slot.stack == stack);
    placement
}

fn slot_id(stack: &str, slot: &Slot) -> SlotId {
    SlotId {
        stack: stack.to_owned(),
        service: slot.service.clone(),
        replica: slot.replica,
    }
}
