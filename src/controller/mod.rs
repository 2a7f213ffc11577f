//! The controller: reads every stack, host, assignment and report through one
//! list-then-watch cache, schedules, writes the per-host assignments and folds the agents'
//! reports into stack statuses. Each pass recomputes everything from the cache
//! (level-triggered) and writes only what differs, each write a compare-and-swap.

pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::assignment::Assignment;
use crate::report::SlotReport;
use crate::scheduler::{self, HostView, SlotId};
use crate::serve::ReadyCheck;
use crate::spec::{self, HostRegistration, Phase, Problem, Stack, StackStatus};
use crate::store::{keys, Cache, Expect, Reflector, Store, Write};
use crate::{metrics, retry};

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How long a host may be gone before its slots move elsewhere.
    pub host_down_grace: Duration,
    pub resync_interval: Duration,
}

pub struct ControllerHandle {
    pub ready: ReadyCheck,
    pub done: tokio::task::JoinHandle<()>,
}

pub fn spawn(store: Store, cfg: ControllerConfig, cancel: CancellationToken) -> ControllerHandle {
    let cache = Reflector::spawn(store.clone(), String::new(), cancel.clone());
    let ready: ReadyCheck = {
        let cache = cache.clone();
        Arc::new(move || {
            if !cache.synced() {
                return Err("initial etcd list not done".into());
            }
            if !cache.connected() {
                return Err("etcd watch not connected".into());
            }
            Ok(())
        })
    };
    let done = tokio::spawn(run(store, cfg, cache, cancel));
    ControllerHandle { ready, done }
}

async fn run(store: Store, cfg: ControllerConfig, cache: Reflector, cancel: CancellationToken) {
    let wake = Arc::new(Notify::new());
    {
        let mut changes = cache.subscribe();
        let wake = wake.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                wake.notify_one();
            }
        });
    }
    let mut c = Controller {
        store,
        cfg: cfg.clone(),
        parsed: HashMap::new(),
        gone_since: HashMap::new(),
        last_seen: HashMap::new(),
    };
    let mut policy = retry::Policy::new();
    cache.wait_synced().await;
    tracing::info!("controller started");
    loop {
        let next = match cache.snapshot().await {
            Some(snap) => match c.reconcile(&snap).await {
                Ok(wait) => {
                    policy.reset();
                    wait.unwrap_or(cfg.resync_interval)
                }
                Err(e) => {
                    let d = policy.next_delay();
                    tracing::warn!(error = %crate::error_chain(&e), retry_in = ?d, "controller pass failed");
                    d
                }
            },
            None => Duration::from_millis(200),
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {
                // Let a burst of watch events land before the next pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = tokio::time::sleep(next) => {}
        }
    }
    tracing::info!("controller stopped");
}

struct Controller {
    store: Store,
    cfg: ControllerConfig,
    /// Parsed specs by stack id, reused while the key's revision is unchanged.
    parsed: HashMap<String, (i64, Result<Stack, Vec<Problem>>)>,
    /// Hosts that have assignments but no registration, and since when.
    gone_since: HashMap<String, Instant>,
    /// The last registration seen of each host, for hosts in their grace period.
    last_seen: HashMap<String, HostRegistration>,
}

/// Everything under the prefix, decoded.
#[derive(Default)]
struct World {
    stacks: BTreeMap<String, i64>,
    hosts: BTreeMap<String, HostRegistration>,
    assignments: BTreeMap<(String, String), (Assignment, i64)>,
    reports: Vec<SlotReport>,
    statuses: BTreeMap<String, (StackStatus, i64)>,
    status_revisions: BTreeMap<String, i64>,
}

impl Controller {
    #[tracing::instrument(skip_all)]
    async fn reconcile(
        &mut self,
        snap: &Cache,
    ) -> Result<Option<Duration>, crate::store::StoreError> {
        let started = Instant::now();
        let r = self.reconcile_inner(snap).await;
        metrics::RECONCILE_DURATION
            .with_label_values(&["scheduler"])
            .observe(started.elapsed().as_secs_f64());
        let label = if r.is_ok() { "success" } else { "error" };
        metrics::RECONCILE
            .with_label_values(&["scheduler", label])
            .inc();
        if r.is_err() {
            metrics::RECONCILE_ERRORS
                .with_label_values(&["scheduler", "etcd"])
                .inc();
        }
        r
    }

    async fn reconcile_inner(
        &mut self,
        snap: &Cache,
    ) -> Result<Option<Duration>, crate::store::StoreError> {
        let world = self.decode(snap);
        let now = Instant::now();

        // Parse and validate each stack once per revision.
        self.parsed.retain(|id, _| world.stacks.contains_key(id));
        for (id, rev) in &world.stacks {
            if self.parsed.get(id).is_some_and(|(r, _)| r == rev) {
                continue;
            }
            let raw = snap
                .entries
                .get(&keys::stack(id))
                .map(|kv| kv.value.as_slice())
                .unwrap_or_default();
            let mut parsed = spec::parse_stack(raw);
            if !spec::is_dns_label(id) {
                let p = Problem {
                    path: String::new(),
                    message: format!("stack id {id:?} in the key is not a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters)"),
                };
                parsed = match parsed {
                    Ok(_) => Err(vec![p]),
                    Err(mut v) => {
                        v.insert(0, p);
                        Err(v)
                    }
                };
            }
            if let Err(problems) = &parsed {
                tracing::warn!(stack = %id, problems = problems.len(), "stack spec is invalid");
            }
            self.parsed.insert(id.clone(), (*rev, parsed));
        }

        // Host readiness: registered = ready; assigned but unregistered = gone, kept
        // in place until the grace period runs out.
        for (id, reg) in &world.hosts {
            self.last_seen.insert(id.clone(), reg.clone());
        }
        let assigned_hosts: BTreeSet<&str> =
            world.assignments.keys().map(|(h, _)| h.as_str()).collect();
        self.gone_since
            .retain(|h, _| !world.hosts.contains_key(h) && assigned_hosts.contains(h.as_str()));
        for h in &assigned_hosts {
            if !world.hosts.contains_key(*h) {
                self.gone_since.entry((*h).to_owned()).or_insert(now);
            }
        }
        let mut next_wake: Option<Duration> = None;
        let mut in_grace: Vec<HostRegistration> = Vec::new();
        for (h, since) in &self.gone_since {
            let gone_for = now.duration_since(*since);
            if gone_for < self.cfg.host_down_grace {
                let left = self.cfg.host_down_grace - gone_for;
                next_wake = Some(next_wake.map_or(left, |w| w.min(left)));
                in_grace.push(
                    self.last_seen
                        .get(h)
                        .cloned()
                        .unwrap_or_else(|| HostRegistration {
                            id: h.clone(),
                            ..Default::default()
                        }),
                );
            }
        }
        let mut views: Vec<HostView> = world
            .hosts
            .values()
            .map(|reg| HostView { reg, ready: true })
            .collect();
        views.extend(in_grace.iter().map(|reg| HostView { reg, ready: false }));
        views.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
        metrics::HOSTS
            .with_label_values(&["ready"])
            .set(world.hosts.len() as i64);
        metrics::HOSTS
            .with_label_values(&["notready"])
            .set(self.gone_since.len() as i64);

        // Schedule the valid stacks.
        let mut current: BTreeMap<SlotId, String> = BTreeMap::new();
        for ((host, stack), (a, _)) in &world.assignments {
            for slot in &a.slots {
                current.insert(
                    SlotId {
                        stack: stack.clone(),
                        service: slot.service.clone(),
                        replica: slot.replica,
                    },
                    host.clone(),
                );
            }
        }
        let valid: Vec<(&str, &Stack)> = self
            .parsed
            .iter()
            .filter_map(|(id, (_, p))| p.as_ref().ok().map(|s| (id.as_str(), s)))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let placement = scheduler::plan::plan(&valid, &views, &current);
        let mut addresses: BTreeMap<String, HostRegistration> = world.hosts.clone();
        for reg in &in_grace {
            addresses
                .entry(reg.id.clone())
                .or_insert_with(|| reg.clone());
        }

        // Desired assignments: valid stacks from the plan; invalid ones keep whatever
        // they had (the last valid version keeps running); deleted ones get none.
        let mut desired: BTreeMap<(String, String), Assignment> = BTreeMap::new();
        for (id, stack) in &valid {
            let rev = world.stacks.get(*id).copied().unwrap_or(0);
            for (host, a) in
                scheduler::assign::assignments_for(id, stack, rev, &placement.hosts, &addresses)
            {
                desired.insert((host, (*id).to_owned()), a);
            }
        }
        for ((host, stack), (a, _)) in &world.assignments {
            if matches!(self.parsed.get(stack), Some((_, Err(_)))) {
                desired.insert((host.clone(), stack.clone()), a.clone());
            }
        }
        let mut writes = Vec::new();
        for ((host, stack), a) in &desired {
            let existing = world.assignments.get(&(host.clone(), stack.clone()));
            if existing.is_some_and(|(e, _)| e == a) {
                continue;
            }
            writes.push(Write::Put {
                key: keys::assignment(host, stack),
                value: serde_json::to_vec(a).unwrap_or_default(),
                expect: existing.map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev)),
            });
        }
        for ((host, stack), (_, rev)) in &world.assignments {
            if !desired.contains_key(&(host.clone(), stack.clone())) {
                writes.push(Write::Delete {
                    key: keys::assignment(host, stack),
                    expect: Expect::Revision(*rev),
                });
            }
        }
        // Undecodable assignment keys are not in `world`; leave them for an operator.
        self.apply(writes).await?;

        // Statuses.
        let now_text = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let listed: BTreeSet<&str> = views.iter().map(|v| v.reg.id.as_str()).collect();
        let mut ids: BTreeSet<String> = world.stacks.keys().cloned().collect();
        ids.extend(desired.keys().map(|(_, s)| s.clone()));
        ids.extend(
            world
                .reports
                .iter()
                .filter(|r| listed.contains(r.host.as_str()))
                .map(|r| r.stack.clone()),
        );
        ids.extend(world.statuses.keys().cloned());
        ids.extend(world.status_revisions.keys().cloned());
        let mut phases: BTreeMap<Phase, i64> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        let mut status_writes = Vec::new();
        let (mut placed, mut pending) = (0i64, 0i64);
        for id in &ids {
            let spec = self
                .parsed
                .get(id)
                .map(|(_, p)| p.as_ref().map_err(|v| v.as_slice()));
            let assignments: BTreeMap<&str, &Assignment> = desired
                .iter()
                .filter(|((_, s), _)| s == id)
                .map(|((h, _), a)| (h.as_str(), a))
                .collect();
            let reports: Vec<&SlotReport> = world
                .reports
                .iter()
                .filter(|r| &r.stack == id && listed.contains(r.host.as_str()))
                .collect();
            let key = keys::status(id);
            let existing_rev = world.status_revisions.get(id).copied();
            if spec.is_none() && assignments.is_empty() && reports.is_empty() {
                if let Some(rev) = existing_rev {
                    status_writes.push(Write::Delete {
                        key,
                        expect: Expect::Revision(rev),
                    });
                }
                continue;
            }
            let unschedulable: BTreeMap<&str, &str> = placement
                .unschedulable
                .iter()
                .filter(|((s, _), _)| s == id)
                .map(|((_, svc), why)| (svc.as_str(), why.as_str()))
                .collect();
            placed += assignments
                .values()
                .map(|a| a.slots.len() as i64)
                .sum::<i64>();
            pending += unschedulable.len() as i64;
            let previous = world.statuses.get(id).map(|(s, _)| s);
            let st = status::aggregate(&status::Inputs {
                id,
                revision: world.stacks.get(id).copied().unwrap_or(0),
                spec,
                assignments,
                reports: &reports,
                unschedulable,
                hosts: &addresses,
                previous,
                now: &now_text,
            });
            *phases.entry(st.phase).or_default() += 1;
            if previous == Some(&st) {
                continue;
            }
            status_writes.push(Write::Put {
                key,
                value: serde_json::to_vec(&st).unwrap_or_default(),
                expect: existing_rev.map_or(Expect::Absent, Expect::Revision),
            });
        }
        for (p, n) in phases {
            metrics::STACKS.with_label_values(&[p.as_str()]).set(n);
        }
        metrics::SLOTS.with_label_values(&["placed"]).set(placed);
        metrics::SLOTS.with_label_values(&["pending"]).set(pending);
        self.apply(status_writes).await?;
        Ok(next_wake)
    }

    /// Each write on its own compare-and-swap: a lost race is just a stale read, and the
    /// watch event that caused it brings the next pass.
    async fn apply(&self, writes: Vec<Write>) -> Result<(), crate::store::StoreError> {
        for w in writes {
            if !self.store.write(std::slice::from_ref(&w)).await? {
                tracing::debug!(write = ?w_key(&w), "compare-and-swap lost; will retry on next pass");
            }
        }
        Ok(())
    }

    fn decode(&self, snap: &Cache) -> World {
        let mut w = World::default();
        for kv in snap.entries.values() {
            if let Some(p) = keys::parts(&kv.key, keys::STACKS) {
                if let [id] = p.as_slice() {
                    w.stacks.insert((*id).to_owned(), kv.mod_revision);
                }
            } else if let Some(p) = keys::parts(&kv.key, keys::HOSTS) {
                if let [id] = p.as_slice() {
                    match serde_json::from_slice::<HostRegistration>(&kv.value) {
                        Ok(mut reg) => {
                            reg.id = (*id).to_owned();
                            w.hosts.insert(reg.id.clone(), reg);
                        }
                        Err(e) => {
                            tracing::warn!(host = %id, error = %e, "unreadable host registration ignored")
                        }
                    }
                }
            } else if let Some(p) = keys::parts(&kv.key, keys::ASSIGNMENTS) {
                if let [host, stack] = p.as_slice() {
                    if let Ok(a) = serde_json::from_slice::<Assignment>(&kv.value) {
                        w.assignments.insert(
                            ((*host).to_owned(), (*stack).to_owned()),
                            (a, kv.mod_revision),
                        );
                    }
                }
            } else if keys::parts(&kv.key, keys::REPORTS).is_some() {
                if let Ok(r) = serde_json::from_slice::<SlotReport>(&kv.value) {
                    w.reports.push(r);
                }
            } else if let Some(p) = keys::parts(&kv.key, keys::STATUS) {
                if let [id] = p.as_slice() {
                    w.status_revisions.insert((*id).to_owned(), kv.mod_revision);
                    if let Ok(s) = serde_json::from_slice::<StackStatus>(&kv.value) {
                        w.statuses.insert((*id).to_owned(), (s, kv.mod_revision));
                    }
                }
            }
        }
        w
    }
}

fn w_key(w: &Write) -> &str {
    match w {
        Write::Put { key, .. } | Write::Delete { key, .. } => key,
    }
}
