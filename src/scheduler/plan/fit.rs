//! The per-host bookkeeping the planner stands on: what each host already holds, the
//! filter a host must pass for one slot, why it fails, and the `auto` strategy's scores.
//! Pure: plain values in, plain values out; no IO and no clock.

use std::collections::{BTreeMap, BTreeSet};

use super::{HostView, Liveness};
use crate::spec::{HostConstraints, PlacementStrategy, Service, Stack};

/// What is already booked on one host. Ports borrow their protocol from the specs and
/// registrations, so booking a slot copies no strings.
#[derive(Debug, Clone, Default)]
pub(super) struct Book<'a> {
    slots: usize,
    pub(super) cpus: f64,
    pub(super) memory_mb: u64,
    pub(super) ports: BTreeSet<(u16, &'a str)>,
}

/// One slot's needs, resolved from its service and stack.
pub(super) struct Need<'s> {
    pub(super) svc: &'s Service,
    /// The stack's index in the plan's sorted stacks, and the service's in the stack:
    /// who holds what is tracked by index, not by cloned names.
    stack: usize,
    service: usize,
    constraints: Vec<&'s HostConstraints>,
    pub(super) ports: Vec<(u16, &'s str)>,
    pub(super) cpus: f64,
    pub(super) memory_mb: u64,
    /// The largest `minCpu` and `minMemory` of the constraints, 0 for none.
    min_cpu: f64,
    min_memory: u64,
    pub(super) preferred_dc: Option<&'s str>,
}

impl<'s> Need<'s> {
    pub(super) fn of(stack: &'s Stack, at: (usize, usize), svc: &'s Service) -> Need<'s> {
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
            .map(cpu_count)
            .fold(0.0, f64::max);
        let min_memory = constraints
            .iter()
            .filter_map(|c| c.min_memory)
            .max()
            .unwrap_or(0);
        Need {
            svc,
            stack: at.0,
            service: at.1,
            constraints,
            min_cpu,
            min_memory,
            ports: host_ports(svc),
            cpus: cpu_count(svc.resources.as_ref().and_then(|r| r.cpus).unwrap_or(0.0)),
            memory_mb: svc
                .resources
                .as_ref()
                .and_then(|r| r.memory_mb)
                .unwrap_or(0),
            preferred_dc,
        }
    }
}

/// CPUs as the planner counts them. Host registrations are not validated, so a count
/// that is no number of CPUs (NaN, infinite, negative) is 0: not reported.
fn cpu_count(cpus: f64) -> f64 {
    if cpus.is_finite() && cpus > 0.0 {
        cpus
    } else {
        0.0
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
pub(super) enum Reject<'s> {
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
    pub(super) fn describe(&self, n: usize) -> String {
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
pub(super) const SCORE_LIMIT: usize = 100;

/// The hosts a slot may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pool {
    Any,
    /// One datacenter's hosts, by index into [`Scheduler::dcs`].
    Datacenter(usize),
    /// None at all: a `datacenter` stack that fits in no datacenter.
    Empty,
}

pub(super) struct Scheduler<'a> {
    pub(super) hosts: Vec<&'a HostView<'a>>,
    pub(super) by_id: BTreeMap<&'a str, usize>,
    books: Vec<Book<'a>>,
    /// `(slots, host index)`, so the least-loaded hosts come first.
    load: BTreeSet<(usize, usize)>,
    /// Every datacenter name, sorted; hosts that name none are in `""`.
    pub(super) dcs: Vec<&'a str>,
    /// Each host's datacenter, as an index into `dcs`.
    pub(super) dc: Vec<usize>,
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
    pub(super) fn new(hosts: &'a [HostView<'a>]) -> Scheduler<'a> {
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

    pub(super) fn book(&mut self, h: usize, need: &Need<'a>) {
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
        // Saturating here and below: registrations and reservations may be near u64::MAX.
        b.memory_mb = b.memory_mb.saturating_add(need.memory_mb);
        b.ports.extend(need.ports.iter().copied());
    }

    /// Hosts holding slots of the stack at `stack` (an index, as [`Need::stack`]).
    pub(super) fn stack_hosts(&self, stack: usize) -> &[usize] {
        self.by_stack.get(stack).map_or(&[], Vec::as_slice)
    }

    /// Hosts holding replicas of `need`'s service.
    pub(super) fn service_hosts(&self, need: &Need<'_>) -> &[usize] {
        self.by_service
            .get(need.stack)
            .and_then(|s| s.get(need.service))
            .map_or(&[], Vec::as_slice)
    }

    pub(super) fn labels_fit(&self, h: usize, need: &Need<'a>) -> Result<(), Reject<'a>> {
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

    pub(super) fn ports_fit(&self, h: usize, need: &Need<'a>) -> Result<(), Reject<'a>> {
        match need.ports.iter().find(|p| self.books[h].ports.contains(*p)) {
            Some(&(port, proto)) => Err(Reject::Port(port, proto)),
            None => Ok(()),
        }
    }

    /// Every check a new placement must pass, `extra` being what else lands on the host
    /// in the same decision (the rest of a single-host stack).
    pub(super) fn filter(
        &self,
        h: usize,
        need: &Need<'a>,
        extra: &Book<'a>,
    ) -> Result<(), Reject<'a>> {
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
        let host_cpus = cpu_count(reg.cpus);
        let free_cpu = host_cpus - b.cpus - extra.cpus;
        if (need.min_cpu > 0.0 && free_cpu < need.min_cpu)
            || (need.cpus > 0.0 && host_cpus > 0.0 && free_cpu < need.cpus)
        {
            return Err(Reject::Cpu);
        }
        let free_mem = reg
            .memory_mb
            .saturating_sub(b.memory_mb.saturating_add(extra.memory_mb));
        if (need.min_memory > 0 && free_mem < need.min_memory)
            || (need.memory_mb > 0 && reg.memory_mb > 0 && free_mem < need.memory_mb)
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
    pub(super) fn explain(
        &self,
        need: &Need<'a>,
        extra: &Book<'a>,
        within: Option<&[usize]>,
    ) -> String {
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
        let cpu = (cpu_count(reg.cpus) - b.cpus - extra.cpus - need.cpus).max(0.0);
        let booked = b
            .memory_mb
            .saturating_add(extra.memory_mb)
            .saturating_add(need.memory_mb);
        let mem = reg.memory_mb.saturating_sub(booked) as f64;
        (cpu, mem)
    }

    /// The auto strategy's score, in thousandths: base 100; free CPU 0-30 and free
    /// memory 0-30, each relative to the candidate with the most; fewer slots +10 down to
    /// more slots -10; the preferred datacenter +20, another one -20.
    fn score(&self, h: usize, need: &Need<'a>, extra: &Book<'a>, range: &Range) -> i64 {
        let (cpu, mem) = self.free_after(h, need, extra);
        let mut s: i64 = 100_000;
        // The ratio first: 30_000 times a huge capacity is infinite.
        if range.max_cpu > 0.0 {
            s += (30_000.0 * (cpu / range.max_cpu).clamp(0.0, 1.0)) as i64;
        }
        if range.max_mem > 0.0 {
            s += (30_000.0 * (mem / range.max_mem).clamp(0.0, 1.0)) as i64;
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
    pub(super) fn dc_index(&self, name: &str) -> Option<usize> {
        self.dcs.binary_search(&name).ok()
    }

    /// The hosts of `pool`, least loaded first, ties by host id.
    pub(super) fn by_load(&self, pool: Pool) -> impl Iterator<Item = usize> + '_ {
        let set = match pool {
            Pool::Any => Some(&self.load),
            Pool::Datacenter(d) => self.load_by_dc.get(d),
            Pool::Empty => None,
        };
        set.into_iter().flatten().map(|(_, h)| *h)
    }

    /// Hosts of `pool` passing `ok`, least loaded first, at most `limit` of them (all on
    /// small clusters), skipping `exclude`.
    pub(super) fn feasible(
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
    pub(super) fn candidates(
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
    pub(super) fn choose(
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
