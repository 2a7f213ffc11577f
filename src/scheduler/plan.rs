//! Placement: which host runs each slot `(stack, service, replica)`. Pure and
//! deterministic: the same stacks, hosts and current placements give the same answer,
//! ties broken by host id. No IO and no clock: host readiness arrives already judged.
//!
//! Two passes. First every slot that already has a host keeps it while that host is
//! usable and still satisfies the slot's constraints (stickiness: adding a host never
//! moves anything). Then the remaining slots are placed stack by stack, in start order,
//! by the stack's strategy, through one filter (readiness, cordon, labels, capacity,
//! ports) and a strategy-specific choice among the hosts that pass.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{
    DeploymentMode, HostConstraints, HostRegistration, PlacementStrategy, Service, Stack,
};

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
}

/// What is already booked on one host. Ports borrow their protocol from the specs and
/// registrations, so booking a slot copies no strings.
#[derive(Debug, Clone, Default)]
struct Book<'a> {
    slots: usize,
    cpus: f64,
    memory_mb: u64,
    ports: BTreeSet<(u16, &'a str)>,
}

/// One slot's needs, resolved from its service and stack.
struct Need<'s> {
    svc: &'s Service,
    /// The stack's index in the plan's sorted stacks, and the service's in the stack:
    /// who holds what is tracked by index, not by cloned names.
    stack: usize,
    service: usize,
    constraints: Vec<&'s HostConstraints>,
    ports: Vec<(u16, &'s str)>,
    cpus: f64,
    memory_mb: u64,
    /// The largest `minCpu` and `minMemory` of the constraints, 0 for none.
    min_cpu: f64,
    min_memory: i64,
    preferred_dc: Option<&'s str>,
}

impl<'s> Need<'s> {
    fn of(stack: &'s Stack, at: (usize, usize), svc: &'s Service) -> Need<'s> {
        let mut constraints: Vec<&HostConstraints> = stack
            .deployment
            .iter()
            .flat_map(|d| d.host_constraints.iter())
            .collect();
        constraints.extend(svc.host_constraints.as_ref());
        let preferred_dc = constraints
            .iter()
            .rev()
            .find_map(|c| c.preferred_datacenter.as_deref());
        let min_cpu = constraints
            .iter()
            .filter_map(|c| c.min_cpu)
            .fold(0.0, f64::max);
        let min_memory = constraints
            .iter()
            .filter_map(|c| c.min_memory)
            .max()
            .unwrap_or(0) as i64;
        Need {
            svc,
            stack: at.0,
            service: at.1,
            constraints,
            min_cpu,
            min_memory,
            ports: host_ports(svc),
            cpus: svc.resources.as_ref().and_then(|r| r.cpus).unwrap_or(0.0),
            memory_mb: svc
                .resources
                .as_ref()
                .and_then(|r| r.memory_mb)
                .unwrap_or(0),
            preferred_dc,
        }
    }
}

fn host_ports(svc: &Service) -> Vec<(u16, &str)> {
    svc.ports
        .iter()
        .filter_map(|p| {
            let hp = u16::try_from(p.host_port?).ok()?;
            Some((hp, p.protocol()))
        })
        .collect()
}

/// Why a host was filtered out; the first failing check wins. It borrows from the spec
/// rather than formatting: most rejections are only counted or dropped, so the text is
/// made only when [`Reject::describe`] is asked for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Reject<'s> {
    NotReady,
    Cordoned,
    Degraded,
    /// A required label `key=value`.
    Label(&'s str, &'s str),
    BindMount(&'s str),
    Cpu,
    Memory,
    /// A host port and its protocol.
    Port(u16, &'s str),
}

impl Reject<'_> {
    fn describe(&self, n: usize) -> String {
        let one = n == 1;
        let text = match self {
            Reject::NotReady => if one { "is not ready" } else { "are not ready" }.to_owned(),
            Reject::Cordoned => if one { "is cordoned" } else { "are cordoned" }.to_owned(),
            Reject::Degraded => if one { "is degraded" } else { "are degraded" }.to_owned(),
            Reject::BindMount(src) => format!(
                "{} bind mounts of {src}",
                if one {
                    "does not allow"
                } else {
                    "do not allow"
                }
            ),
            Reject::Label(k, v) => {
                format!("{} label {k}={v}", if one { "lacks" } else { "lack" })
            }
            Reject::Cpu => format!("{} too little free CPU", if one { "has" } else { "have" }),
            Reject::Memory => format!(
                "{} too little free memory",
                if one { "has" } else { "have" }
            ),
            Reject::Port(port, proto) => format!(
                "{} port {port}/{proto} taken",
                if one { "has" } else { "have" }
            ),
        };
        format!("{n} {text}")
    }
}

/// The spread of the candidates' free capacity and load, which scores are relative to.
#[derive(Default)]
struct Range {
    max_cpu: f64,
    max_mem: f64,
    min_slots: usize,
    max_slots: usize,
}

/// On clusters larger than this, `auto` scores only this many of the least-loaded hosts
/// that fit (and as many in the preferred datacenter), like the kube scheduler's
/// percentageOfNodesToScore: placement stays fast and still deterministic.
const SCORE_LIMIT: usize = 100;

/// The hosts a slot may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Any,
    /// One datacenter's hosts, by index into [`Scheduler::dcs`].
    Datacenter(usize),
    /// None at all: a `datacenter` stack that fits in no datacenter.
    Empty,
}

struct Scheduler<'a> {
    hosts: Vec<&'a HostView<'a>>,
    by_id: BTreeMap<&'a str, usize>,
    books: Vec<Book<'a>>,
    /// `(slots, host index)`, so the least-loaded hosts come first.
    load: BTreeSet<(usize, usize)>,
    /// Every datacenter name, sorted; hosts that name none are in `""`.
    dcs: Vec<&'a str>,
    /// Each host's datacenter, as an index into `dcs`.
    dc: Vec<usize>,
    /// `load` split by datacenter: the least-loaded host of one datacenter without
    /// walking past every other datacenter's hosts, which a `datacenter` stack leaves the
    /// least loaded precisely because it keeps out of them.
    load_by_dc: Vec<BTreeSet<(usize, usize)>>,
    /// Hosts holding each stack's slots, and each service's, by [`Need::stack`] and
    /// [`Need::service`]; grown on demand.
    by_stack: Vec<Vec<usize>>,
    by_service: Vec<Vec<Vec<usize>>>,
}

impl<'a> Scheduler<'a> {
    fn new(hosts: &'a [HostView<'a>]) -> Scheduler<'a> {
        let mut sorted: Vec<&HostView> = hosts.iter().collect();
        sorted.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
        let by_id = sorted
            .iter()
            .enumerate()
            .map(|(i, h)| (h.reg.id.as_str(), i))
            .collect();
        let books = sorted
            .iter()
            .map(|h| Book {
                ports: h
                    .reg
                    .used_ports
                    .iter()
                    .map(|p| (p.port, p.protocol.as_str()))
                    .collect(),
                ..Book::default()
            })
            .collect();
        let load = (0..sorted.len()).map(|h| (0, h)).collect();
        let dc_name = |h: &HostView<'a>| h.reg.datacenter.as_deref().unwrap_or("");
        let dcs: Vec<&str> = sorted
            .iter()
            .map(|h| dc_name(h))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let dc: Vec<usize> = sorted
            .iter()
            // Always found: `dcs` was collected from these very names.
            .map(|h| dcs.binary_search(&dc_name(h)).unwrap_or_default())
            .collect();
        let mut load_by_dc = vec![BTreeSet::new(); dcs.len()];
        for (h, d) in dc.iter().enumerate() {
            load_by_dc[*d].insert((0, h));
        }
        Scheduler {
            hosts: sorted,
            by_id,
            books,
            load,
            dcs,
            dc,
            load_by_dc,
            by_stack: Vec::new(),
            by_service: Vec::new(),
        }
    }

    fn book(&mut self, h: usize, need: &Need<'a>) {
        let b = &mut self.books[h];
        self.load.remove(&(b.slots, h));
        self.load.insert((b.slots + 1, h));
        let by_dc = &mut self.load_by_dc[self.dc[h]];
        by_dc.remove(&(b.slots, h));
        by_dc.insert((b.slots + 1, h));
        if self.by_stack.len() <= need.stack {
            self.by_stack.resize_with(need.stack + 1, Vec::new);
            self.by_service.resize_with(need.stack + 1, Vec::new);
        }
        self.by_stack[need.stack].push(h);
        let services = &mut self.by_service[need.stack];
        if services.len() <= need.service {
            services.resize_with(need.service + 1, Vec::new);
        }
        services[need.service].push(h);
        b.slots += 1;
        b.cpus += need.cpus;
        b.memory_mb += need.memory_mb;
        b.ports.extend(need.ports.iter().copied());
    }

    /// Hosts holding slots of the stack at `stack` (an index, as [`Need::stack`]).
    fn stack_hosts(&self, stack: usize) -> &[usize] {
        self.by_stack.get(stack).map_or(&[], Vec::as_slice)
    }

    /// Hosts holding replicas of `need`'s service.
    fn service_hosts(&self, need: &Need<'_>) -> &[usize] {
        self.by_service
            .get(need.stack)
            .and_then(|s| s.get(need.service))
            .map_or(&[], Vec::as_slice)
    }

    fn labels_fit(&self, h: usize, need: &Need<'a>) -> Result<(), Reject<'a>> {
        let reg = self.hosts[h].reg;
        for c in &need.constraints {
            for (k, v) in &c.required_labels {
                if reg.labels.get(k) != Some(v) {
                    return Err(Reject::Label(k, v));
                }
            }
        }
        Ok(())
    }

    fn ports_fit(&self, h: usize, need: &Need<'a>) -> Result<(), Reject<'a>> {
        match need.ports.iter().find(|p| self.books[h].ports.contains(*p)) {
            Some(&(port, proto)) => Err(Reject::Port(port, proto)),
            None => Ok(()),
        }
    }

    /// Every check a new placement must pass, `extra` being what else lands on the host
    /// in the same decision (the rest of a single-host stack).
    fn filter(&self, h: usize, need: &Need<'a>, extra: &Book<'a>) -> Result<(), Reject<'a>> {
        let view = self.hosts[h];
        if view.liveness != Liveness::Ready {
            return Err(Reject::NotReady);
        }
        if view.cordoned || view.draining {
            return Err(Reject::Cordoned);
        }
        if view.reg.degraded.is_some() {
            return Err(Reject::Degraded);
        }
        if let Some(m) = need.svc.volume_mounts.iter().find(|m| {
            m.type_.as_deref() == Some("bind")
                && !crate::spec::bind_allowed(&m.source, &view.reg.allow_bind_prefixes)
        }) {
            return Err(Reject::BindMount(&m.source));
        }
        self.labels_fit(h, need)?;
        let reg = view.reg;
        let b = &self.books[h];
        let free_cpu = reg.cpus - b.cpus - extra.cpus;
        if (need.min_cpu > 0.0 && free_cpu < need.min_cpu)
            || (need.cpus > 0.0 && reg.cpus > 0.0 && free_cpu < need.cpus)
        {
            return Err(Reject::Cpu);
        }
        let free_mem = reg.memory_mb as i64 - b.memory_mb as i64 - extra.memory_mb as i64;
        if (need.min_memory > 0 && free_mem < need.min_memory)
            || (need.memory_mb > 0 && reg.memory_mb > 0 && free_mem < need.memory_mb as i64)
        {
            return Err(Reject::Memory);
        }
        self.ports_fit(h, need)?;
        if let Some(&(port, proto)) = need.ports.iter().find(|p| extra.ports.contains(*p)) {
            return Err(Reject::Port(port, proto));
        }
        Ok(())
    }

    /// "0/3 hosts fit: 2 lack label disk=ssd, 1 has port 8080/tcp taken".
    fn explain(&self, need: &Need<'a>, extra: &Book<'a>, within: Option<&[usize]>) -> String {
        let all: Vec<usize> = match within {
            Some(w) => w.to_vec(),
            None => (0..self.hosts.len()).collect(),
        };
        if all.is_empty() {
            return "no hosts: start a berth agent or register a host".to_owned();
        }
        let mut counts: BTreeMap<Reject, usize> = BTreeMap::new();
        let mut fit = 0;
        for h in &all {
            match self.filter(*h, need, extra) {
                Ok(()) => fit += 1,
                Err(r) => *counts.entry(r).or_default() += 1,
            }
        }
        let reasons: Vec<String> = counts.iter().map(|(r, n)| r.describe(*n)).collect();
        let mut msg = format!("{fit}/{} hosts fit", all.len());
        if !reasons.is_empty() {
            msg.push_str(": ");
            msg.push_str(&reasons.join(", "));
        }
        if fit > 0 {
            // Hosts fit one by one, but not together with the stack's other slots.
            msg.push_str(", none with room for the whole stack");
        }
        msg
    }

    /// Free CPU and memory on host `h` once `need` and `extra` are added.
    fn free_after(&self, h: usize, need: &Need<'a>, extra: &Book<'a>) -> (f64, f64) {
        let reg = self.hosts[h].reg;
        let b = &self.books[h];
        let cpu = (reg.cpus - b.cpus - extra.cpus - need.cpus).max(0.0);
        let mem =
            reg.memory_mb
                .saturating_sub(b.memory_mb + extra.memory_mb + need.memory_mb) as f64;
        (cpu, mem)
    }

    /// The auto strategy's score, in thousandths: base 100; free CPU 0-30 and free
    /// memory 0-30, each relative to the candidate with the most; fewer slots +10 down to
    /// more slots -10; the preferred datacenter +20, another one -20.
    fn score(&self, h: usize, need: &Need<'a>, extra: &Book<'a>, range: &Range) -> i64 {
        let (cpu, mem) = self.free_after(h, need, extra);
        let mut s: i64 = 100_000;
        if range.max_cpu > 0.0 {
            s += (30_000.0 * cpu / range.max_cpu) as i64;
        }
        if range.max_mem > 0.0 {
            s += (30_000.0 * mem / range.max_mem) as i64;
        }
        let slots = self.books[h].slots;
        s += if range.max_slots > range.min_slots {
            10_000
                - (20_000 * (slots - range.min_slots) / (range.max_slots - range.min_slots)) as i64
        } else {
            10_000
        };
        if let Some(dc) = need.preferred_dc {
            s += if self.hosts[h].reg.datacenter.as_deref() == Some(dc) {
                20_000
            } else {
                -20_000
            };
        }
        s
    }

    /// The datacenter called `name` (hosts naming none are in `""`).
    fn dc_index(&self, name: &str) -> Option<usize> {
        self.dcs.binary_search(&name).ok()
    }

    /// The hosts of `pool`, least loaded first, ties by host id.
    fn by_load(&self, pool: Pool) -> impl Iterator<Item = usize> + '_ {
        let set = match pool {
            Pool::Any => Some(&self.load),
            Pool::Datacenter(d) => self.load_by_dc.get(d),
            Pool::Empty => None,
        };
        set.into_iter().flatten().map(|(_, h)| *h)
    }

    /// Hosts of `pool` passing `ok`, least loaded first, at most `limit` of them (all on
    /// small clusters), skipping `exclude`.
    fn feasible(
        &self,
        pool: Pool,
        limit: usize,
        exclude: &[usize],
        ok: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let limit = if self.hosts.len() <= 2 * SCORE_LIMIT {
            usize::MAX
        } else {
            limit
        };
        let mut found = Vec::with_capacity(limit.min(self.hosts.len()));
        found.extend(
            self.by_load(pool)
                .filter(|h| !exclude.contains(h) && ok(*h))
                .take(limit),
        );
        found
    }

    /// Candidates for one slot: the least-loaded fitting hosts, plus for `auto` the
    /// least-loaded ones in the preferred datacenter so the preference can win.
    fn candidates(
        &self,
        strategy: PlacementStrategy,
        pool: Pool,
        need: &Need<'a>,
        extra: &Book<'a>,
        exclude: &[usize],
    ) -> Vec<usize> {
        let fits = |h: usize| self.filter(h, need, extra).is_ok();
        let limit = match strategy {
            PlacementStrategy::Spread | PlacementStrategy::Datacenter => 1,
            _ => SCORE_LIMIT,
        };
        let mut c = self.feasible(pool, limit, exclude, fits);
        if limit > 1 {
            if let Some(d) = need.preferred_dc.and_then(|dc| self.dc_index(dc)) {
                let preferred = match pool {
                    Pool::Any => Pool::Datacenter(d),
                    Pool::Datacenter(p) if p == d => pool,
                    _ => Pool::Empty,
                };
                // Preferring "" means hosts that name "", not hosts that name none,
                // although `dcs` files both under "".
                let in_dc = self.feasible(preferred, limit, exclude, |h| {
                    self.hosts[h].reg.datacenter.is_some() && fits(h)
                });
                for h in in_dc {
                    if !c.contains(&h) {
                        c.push(h);
                    }
                }
            }
        }
        c
    }

    /// Among `candidates` (already filtered), the host the strategy picks.
    fn choose(
        &self,
        strategy: PlacementStrategy,
        candidates: &[usize],
        need: &Need<'a>,
        extra: &Book<'a>,
    ) -> Option<usize> {
        match strategy {
            PlacementStrategy::Auto | PlacementStrategy::Manual => {
                let mut range = Range {
                    min_slots: usize::MAX,
                    ..Range::default()
                };
                for h in candidates {
                    let (cpu, mem) = self.free_after(*h, need, extra);
                    range.max_cpu = range.max_cpu.max(cpu);
                    range.max_mem = range.max_mem.max(mem);
                    range.min_slots = range.min_slots.min(self.books[*h].slots);
                    range.max_slots = range.max_slots.max(self.books[*h].slots);
                }
                // Highest score; the lowest index (host id) among equals.
                candidates
                    .iter()
                    .copied()
                    .max_by_key(|h| (self.score(*h, need, extra, &range), std::cmp::Reverse(*h)))
            }
            PlacementStrategy::Spread | PlacementStrategy::Datacenter => candidates
                .iter()
                .copied()
                .min_by_key(|h| (self.books[*h].slots, *h)),
        }
    }
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
            let reason = if rebalance && pinned.is_none() {
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
                together.memory_mb += p.need.memory_mb;
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
                        others.memory_mb -= p.need.memory_mb;
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
                    // Nowhere better to go: stay where it was rather than vanish.
                    if let Some((from, _)) = p.from {
                        if let Some(&h) = s.by_id.get(from.as_str()) {
                            s.book(h, &p.need);
                        }
                        out.hosts.insert(p.slot, from);
                    }
                }
            }
        }
    }
    out
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
