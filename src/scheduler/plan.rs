//! Placement: which host runs each slot `(stack, service, replica)`. Pure and
//! deterministic: the same stacks, hosts and current placements give the same answer,
//! ties broken by host id. No IO and no clock: host readiness arrives already judged.
//!
//! Two passes. First every slot that already has a host keeps it while that host is
//! usable and still satisfies the slot's constraints (stickiness: adding a host never
//! moves anything). Then the remaining slots are placed stack by stack, in start order,
//! by the stack's strategy, through one filter (readiness, cordon, labels, capacity,
//! ports) and a strategy-specific choice among the hosts that pass. That filter, the
//! per-host bookkeeping and the scores live in `plan/fit.rs`; this file is the contract
//! and the two passes.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{DeploymentMode, HostRegistration, PlacementStrategy, Service, Stack};

mod fit;

use fit::{Book, Need, Pool, Scheduler, SCORE_LIMIT};

pub use crate::slot::SlotId;

/// How the controller judges a host's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Its lease lives.
    Ready,
    /// Its lease is gone, but for less than the grace period: keep its slots, add none.
    NotReady,
    /// Gone for longer than the grace period: its slots may move.
    Down,
}

/// A host as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct HostView<'a> {
    pub reg: &'a HostRegistration,
    pub liveness: Liveness,
    /// Gets no new slots (`berth host cordon`).
    pub cordoned: bool,
    /// Its slots move elsewhere (`berth host drain`); implies cordoned.
    pub draining: bool,
    /// Being forgotten (`berth host remove`): every slot leaves it, pinned ones too, and
    /// none stays for want of another host; implies draining.
    pub removing: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// When more than this fraction of hosts is not ready, nothing is rescheduled: a
    /// network or etcd problem is likelier than that many dead hosts.
    pub max_unavailable_fraction: f64,
    /// Stacks placed from scratch this time, ignoring stickiness (`berth rebalance`).
    pub rebalance: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MoveReason {
    HostDown,
    Drain,
    Constraints,
    Rebalance,
}

impl MoveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveReason::HostDown => "host_down",
            MoveReason::Drain => "drain",
            MoveReason::Constraints => "constraints",
            MoveReason::Rebalance => "rebalance",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub slot: SlotId,
    pub from: String,
    pub to: String,
    pub reason: MoveReason,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Placement {
    pub hosts: BTreeMap<SlotId, String>,
    /// `(stack, service)` -> why (some of) its slots have no suitable host.
    pub unschedulable: BTreeMap<(String, String), String>,
    /// Slots whose host changed, and why.
    pub moves: Vec<Move>,
    /// The storm guard held back rescheduling this time.
    pub storm: Option<String>,
    /// Stacks with a slot that did not simply stay where it was: placed anew, moved, or
    /// without a host. Every other stack's slots are exactly where `current` had them.
    pub unsettled: BTreeSet<String>,
}

impl Placement {
    /// The slots of `stack` with their hosts, found by range rather than by a scan of
    /// every slot.
    pub fn hosts_of<'a>(
        &'a self,
        stack: &'a str,
    ) -> impl Iterator<Item = (&'a SlotId, &'a String)> {
        self.hosts
            .range(SlotId::new(stack, "", 0)..)
            .take_while(move |(sid, _)| sid.stack == stack)
    }
}

/// A fingerprint of what [`plan`] reads of `stack`: two versions with the same one are
/// placed alike, so a change that keeps it (a new image, environment, command, health
/// check, update policy) needs no new placement. The fields left out are named, so a field
/// added to the spec later counts until someone shows placement ignores it.
pub fn placement_key(stack: &Stack) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut s = stack.clone();
    for svc in &mut s.item_list_element {
        svc.image.clear();
        svc.command = None;
        svc.entrypoint = None;
        svc.user = None;
        svc.working_dir = None;
        svc.cap_drop.clear();
        svc.environment.clear();
        svc.health_check = None;
        svc.potential_action.clear();
        svc.labels.clear();
        svc.update = None;
        svc.restart_policy = None;
        svc.pull_policy = None;
        svc.software_version = None;
        svc.application_category = None;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(&s).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Place every slot of `stacks` (all already validated) on `hosts`.
pub fn plan(
    stacks: &[(&str, &Stack)],
    hosts: &[HostView<'_>],
    current: &BTreeMap<SlotId, String>,
    opts: &Options,
) -> Placement {
    let mut out = Placement::default();

    // Storm guard: with too many hosts away at once, treat the Down ones as merely not
    // ready, so their slots stay where they are.
    let unavailable = hosts
        .iter()
        .filter(|h| h.liveness != Liveness::Ready)
        .count();
    let down = hosts
        .iter()
        .filter(|h| h.liveness == Liveness::Down)
        .count();
    let storm = !hosts.is_empty()
        && down > 0
        && unavailable as f64 / hosts.len() as f64 > opts.max_unavailable_fraction;
    let guarded: Vec<HostView> = hosts
        .iter()
        .map(|h| {
            let mut h = h.clone();
            if storm && h.liveness == Liveness::Down {
                h.liveness = Liveness::NotReady;
            }
            h
        })
        .collect();
    if storm {
        out.storm = Some(format!(
            "{unavailable}/{} hosts are not ready (more than {:.0}%): not rescheduling, as this looks like a network or etcd problem",
            hosts.len(),
            opts.max_unavailable_fraction * 100.0
        ));
    }
    let mut s = Scheduler::new(&guarded);

    let mut sorted: Vec<(&str, &Stack)> = stacks.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));

    // Pass 1: sticky slots.
    struct Pending<'s> {
        slot: SlotId,
        need: Need<'s>,
        from: Option<(String, MoveReason)>,
    }
    let mut pending: Vec<(usize, &Stack, Vec<Pending>)> = Vec::new();
    for (stack_index, (id, stack)) in sorted.iter().enumerate() {
        let single = stack.mode() == DeploymentMode::SingleHost;
        let rebalance = opts.rebalance.contains(*id);
        let mut stack_host: Option<usize> = None;
        let mut left = Vec::new();
        for (slot, service_index, svc) in slots_of(id, stack) {
            let need = Need::of(stack, (stack_index, service_index), svc);
            let Some(cur) = current.get(&slot) else {
                left.push(Pending {
                    slot,
                    need,
                    from: None,
                });
                continue;
            };
            let Some(&h) = s.by_id.get(cur.as_str()) else {
                // A host nobody knows any more: as good as down.
                left.push(Pending {
                    from: Some((cur.clone(), MoveReason::HostDown)),
                    slot,
                    need,
                });
                continue;
            };
            let view = s.hosts[h];
            let pinned = svc.target_host.as_deref();
            let reason = if view.removing {
                // Before the pin: a pinned slot loses its host with it.
                Some(MoveReason::Drain)
            } else if rebalance && pinned.is_none() {
                Some(MoveReason::Rebalance)
            } else if pinned.is_some_and(|t| t != cur) {
                Some(MoveReason::Constraints)
            } else if pinned.is_some() {
                // A pinned slot stays on its host whatever happens to it.
                None
            } else if view.liveness == Liveness::Down {
                Some(MoveReason::HostDown)
            } else if view.draining {
                Some(MoveReason::Drain)
            } else if s.labels_fit(h, &need).is_err()
                || s.ports_fit(h, &need).is_err()
                || (single && stack_host.is_some_and(|sh| sh != h))
            {
                Some(MoveReason::Constraints)
            } else {
                None
            };
            match reason {
                None => {
                    s.book(h, &need);
                    if pinned.is_some() && view.liveness != Liveness::Ready {
                        out.unschedulable.insert(
                            (slot.stack.clone(), slot.service.clone()),
                            format!("target host {cur} is not ready"),
                        );
                    }
                    stack_host.get_or_insert(h);
                    out.hosts.insert(slot, cur.clone());
                }
                Some(r) => left.push(Pending {
                    from: Some((cur.clone(), r)),
                    slot,
                    need,
                }),
            }
        }
        if !left.is_empty() {
            out.unsettled.insert((*id).to_owned());
            pending.push((stack_index, stack, left));
        }
    }

    // Pass 2: everything else, stack by stack.
    for (stack_index, stack, slots) in pending {
        let strategy = stack.strategy();
        let single = stack.mode() == DeploymentMode::SingleHost;
        let placed_here: Vec<usize> = s.stack_hosts(stack_index).to_vec();

        // Single-host stacks choose one host for all their remaining slots at once.
        let mut stack_choice: Option<Result<usize, String>> = None;
        if single {
            let mut together = Book::default();
            for p in &slots {
                together.cpus += p.need.cpus;
                together.memory_mb = together.memory_mb.saturating_add(p.need.memory_mb);
                together.ports.extend(p.need.ports.iter().cloned());
            }
            let target = stack
                .item_list_element
                .iter()
                .find_map(|x| x.target_host.as_deref());
            stack_choice = Some(if let Some(&h) = placed_here.first() {
                Ok(h)
            } else if let Some(t) = target {
                match s.by_id.get(t) {
                    Some(&h) if s.hosts[h].removing => Err(removed(t)),
                    Some(&h) if s.hosts[h].liveness == Liveness::Ready => Ok(h),
                    Some(_) => Err(format!("target host {t} is not ready")),
                    None => Err(format!("target host {t} is not registered")),
                }
            } else {
                // Every slot's checks against each host, with the other slots' load.
                let candidates = s.feasible(Pool::Any, SCORE_LIMIT, &[], |h| {
                    slots.iter().all(|p| {
                        let mut others = together.clone();
                        others.cpus -= p.need.cpus;
                        others.memory_mb = others.memory_mb.saturating_sub(p.need.memory_mb);
                        for port in &p.need.ports {
                            others.ports.remove(port);
                        }
                        s.filter(h, &p.need, &others).is_ok()
                    })
                });
                let first = &slots[0].need;
                s.choose(strategy, &candidates, first, &together)
                    .ok_or_else(|| s.explain(first, &Book::default(), None))
            });
        }

        // Datacenter stacks keep to one datacenter: the one they are in, else the
        // preferred one if anything fits there, else the first that fits.
        let mut pool = Pool::Any;
        if !single && strategy == PlacementStrategy::Datacenter {
            let existing = placed_here.first().map(|h| s.dc[*h]);
            let preferred = slots
                .iter()
                .find_map(|p| p.need.preferred_dc)
                .and_then(|p| s.dc_index(p));
            let mut order = preferred
                .into_iter()
                .chain((0..s.dcs.len()).filter(|d| Some(*d) != preferred));
            let fits_in = |d: usize| {
                slots.iter().all(|p| {
                    s.by_load(Pool::Datacenter(d))
                        .any(|h| s.filter(h, &p.need, &Book::default()).is_ok())
                })
            };
            // No datacenter has room for every slot: place none of them rather than
            // split the stack.
            pool = match existing.or_else(|| order.find(|d| fits_in(*d))) {
                Some(d) => Pool::Datacenter(d),
                None => Pool::Empty,
            };
        }

        for p in slots {
            let svc = p.need.svc;
            let chosen: Result<usize, String> = if let Some(t) = svc.target_host.as_deref() {
                match s.by_id.get(t) {
                    None => Err(format!("target host {t} is not registered")),
                    Some(&h) if s.hosts[h].removing => Err(removed(t)),
                    Some(&h) => s
                        .filter(h, &p.need, &Book::default())
                        .map(|()| h)
                        .map_err(|r| {
                            format!("target host {t} {}", r.describe(1).trim_start_matches("1 "))
                        }),
                }
            } else if let Some(choice) = &stack_choice {
                match choice {
                    Ok(h) => s
                        .filter(*h, &p.need, &Book::default())
                        .map(|()| *h)
                        .map_err(|r| {
                            format!(
                                "host {} of this single-host stack {}",
                                s.hosts[*h].reg.id,
                                r.describe(1).trim_start_matches("1 ")
                            )
                        }),
                    Err(e) => Err(e.clone()),
                }
            } else {
                let strategy = if strategy == PlacementStrategy::Manual {
                    PlacementStrategy::Auto
                } else {
                    strategy
                };
                let none = Book::default();
                // Replicas of one service on distinct hosts when possible.
                let siblings = s.service_hosts(&p.need);
                let apart = s.candidates(strategy, pool, &p.need, &none, siblings);
                s.choose(strategy, &apart, &p.need, &none)
                    .or_else(|| {
                        let any = s.candidates(strategy, pool, &p.need, &none, &[]);
                        s.choose(strategy, &any, &p.need, &none)
                    })
                    .ok_or_else(|| match pool {
                        Pool::Any => s.explain(&p.need, &none, None),
                        Pool::Datacenter(d) => {
                            let within: Vec<usize> =
                                (0..s.hosts.len()).filter(|h| s.dc[*h] == d).collect();
                            s.explain(&p.need, &none, Some(&within))
                        }
                        // This slot may fit somewhere; the stack as a whole fits nowhere.
                        Pool::Empty => format!(
                            "no single datacenter has room for every service of this datacenter stack; for this service, {}",
                            s.explain(&p.need, &none, None)
                        ),
                    })
            };
            match chosen {
                Ok(h) => {
                    s.book(h, &p.need);
                    let to = s.hosts[h].reg.id.clone();
                    if let Some((from, reason)) = p.from {
                        if from != to {
                            out.moves.push(Move {
                                slot: p.slot.clone(),
                                from,
                                to: to.clone(),
                                reason,
                            });
                        }
                    }
                    out.hosts.insert(p.slot, to);
                }
                Err(why) => {
                    out.unschedulable
                        .entry((p.slot.stack.clone(), p.slot.service.clone()))
                        .or_insert(why);
                    // Nowhere better to go: stay where it was rather than vanish, unless
                    // that host is being removed.
                    if let Some((from, _)) = p.from {
                        match s.by_id.get(from.as_str()) {
                            Some(&h) if s.hosts[h].removing => {}
                            Some(&h) => {
                                s.book(h, &p.need);
                                out.hosts.insert(p.slot, from);
                            }
                            None => {
                                out.hosts.insert(p.slot, from);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Why a slot pinned to a host being removed has no host.
fn removed(host: &str) -> String {
    format!("target host {host} is being removed (berth host remove)")
}

/// Every slot of a stack, in start order, with its service's index in the stack.
fn slots_of<'s>(id: &str, stack: &'s Stack) -> Vec<(SlotId, usize, &'s Service)> {
    let mut v = Vec::new();
    for i in crate::spec::start_order(stack) {
        let Some(svc) = stack.item_list_element.get(i) else {
            continue;
        };
        for r in 1..=svc.replica_count() {
            v.push((
                SlotId {
                    stack: id.to_owned(),
                    service: svc.name.clone(),
                    replica: r,
                },
                i,
                svc,
            ));
        }
    }
    v
}

#[cfg(test)]
mod tests;
