//! The controller: reads every stack, host, assignment and report through one
//! list-then-watch cache, and, while it is the elected leader, schedules, writes the
//! per-host assignments and folds the agents' reports into stack statuses. Each pass
//! recomputes everything from the cache (level-triggered) and writes only what differs,
//! each write a compare-and-swap fenced by the leadership.

pub mod decide;
pub mod rollout;
pub mod status;
pub mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::decide::{decide, Parsed, ParsedSpec};
use self::world::{AgentlessHost, World};
use crate::agent::AgentConfig;
use crate::metrics::{self, PassResult};
use crate::report::SlotReport;
use crate::requeue::Requeue;
use crate::retry;
use crate::scheduler::plan::{Liveness, Options};
use crate::serve::ReadyCheck;
use crate::spec::{HostRegistration, Phase};
use crate::store::{keys, Cache, Expect, Fence, Leadership, Reflector, Store, StoreError, Write};

/// The storm guard's default: with more than half the hosts not ready at once, a network
/// or etcd problem is likelier than that many dead hosts, so nothing is rescheduled.
pub const DEFAULT_MAX_UNAVAILABLE_FRACTION: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Name in the leader election and in logs.
    pub id: String,
    /// How long a host may be gone before its slots move elsewhere.
    pub host_down_grace: Duration,
    /// More than this fraction of hosts not ready at once holds rescheduling back.
    pub max_unavailable_fraction: f64,
    /// Leadership lease: how long a dead leader blocks the others.
    pub leader_ttl: Duration,
    pub resync_interval: Duration,
    /// Size limits on stack specs.
    pub limits: crate::spec::Limits,
}

pub struct ControllerHandle {
    pub ready: ReadyCheck,
    pub done: tokio::task::JoinHandle<()>,
}

pub fn spawn(store: Store, cfg: ControllerConfig, cancel: CancellationToken) -> ControllerHandle {
    let cache = Reflector::spawn_waking(store.clone(), String::new(), cancel.clone(), wakes_on);
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

/// The least time between the starts of two passes woken by changes.
const PASS_SPACING: Duration = Duration::from_millis(20);

/// The keys (relative to the store's prefix) whose change calls for a pass. Not event
/// records: the controller only prunes them, which any later pass (at the latest the
/// resync) does as well, and every container an agent touches writes one, so waking a
/// pass for each would compete with the agents and Docker for CPU during a rollout.
pub fn wakes_on(key: &str) -> bool {
    !key.starts_with(keys::EVENTS)
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
    cache.wait_synced().await;
    let mut policy = retry::Policy::new();
    metrics::LEADER.set(0);
    while !cancel.is_cancelled() {
        let leadership = match Leadership::campaign(&store, &cfg.id, cfg.leader_ttl, &cancel).await
        {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                let d = policy.next_delay();
                tracing::warn!(error = %crate::error_chain(&e), retry_in = ?d, "leader campaign failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(d) => continue,
                }
            }
        };
        policy.reset();
        metrics::LEADER.set(1);
        tracing::info!(id = %cfg.id, "became leader; scheduling");
        let lost = leadership.lost();
        // Agentless hosts are driven by the leader only, for this term only.
        let term = cancel.child_token();
        let mut c = Controller::new(
            store.clone(),
            cfg.clone(),
            leadership.fence().clone(),
            term.clone(),
        );
        let mut pass_policy = retry::Policy::new();
        let resign = loop {
            let pass_started = Instant::now();
            let next = match cache.snapshot().await {
                Some(snap) => match c.reconcile(&snap).await {
                    Ok(requeue) => {
                        pass_policy.reset();
                        requeue.delay(cfg.resync_interval)
                    }
                    Err(StoreError::Deposed) => break false,
                    Err(e) => {
                        let d = pass_policy.next_delay();
                        tracing::warn!(error = %crate::error_chain(&e), retry_in = ?d, "controller pass failed");
                        d
                    }
                },
                None => Duration::from_millis(200),
            };
            tokio::select! {
                _ = cancel.cancelled() => break true,
                _ = lost.cancelled() => break false,
                _ = wake.notified() => {
                    // A change after a quiet spell starts a pass at once (a user's put
                    // or delete is one change); within a burst, passes start at least
                    // PASS_SPACING apart, so the burst lands in a few passes.
                    let since = pass_started.elapsed();
                    if since < PASS_SPACING {
                        tokio::time::sleep(PASS_SPACING - since).await;
                    }
                }
                _ = tokio::time::sleep(next) => {}
            }
        };
        term.cancel();
        metrics::LEADER.set(0);
        if resign {
            leadership.resign().await;
            break;
        }
        tracing::warn!(id = %cfg.id, "lost leadership; campaigning again");
    }
    tracing::info!("controller stopped");
}

/// One stack revision on its way to running, as this controller saw it.
#[derive(Debug, Clone, Copy)]
struct Convergence {
    revision: i64,
    /// When this controller first saw the revision.
    since: Instant,
    /// Its convergence time has been recorded.
    observed: bool,
}

/// Milliseconds since the Unix epoch: rollout timers are kept in etcd, so they need a
/// clock every leader shares.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A pass's result as the reconcile metrics count it.
fn pass_result<T>(r: &Result<T, StoreError>) -> PassResult {
    match r {
        Ok(_) => PassResult::Success,
        Err(e) => PassResult::Error {
            reason: e.metric_label(),
        },
    }
}

struct Controller {
    store: Store,
    cfg: ControllerConfig,
    fence: Fence,
    /// Parsed specs by stack id, reused while the key's revision is unchanged.
    parsed: Parsed,
    /// Hosts with assignments but no registration, and since when (this leader's clock:
    /// a new leader starts the grace afresh, which errs on the side of waiting).
    gone_since: HashMap<String, Instant>,
    /// The last registration seen of each host, for hosts in their grace period.
    last_seen: HashMap<String, HostRegistration>,
    /// When this controller first saw each stack's current revision, for convergence time.
    seen: HashMap<String, Convergence>,
    /// Ends with this leadership term.
    term: CancellationToken,
    /// Reconcilers this leader runs for agentless hosts.
    agentless: HashMap<String, (AgentlessHost, CancellationToken)>,
    events: crate::events::Recorder,
}

impl Controller {
    fn new(
        store: Store,
        cfg: ControllerConfig,
        fence: Fence,
        term: CancellationToken,
    ) -> Controller {
        Controller {
            store: store.clone(),
            cfg,
            fence,
            parsed: BTreeMap::new(),
            gone_since: HashMap::new(),
            last_seen: HashMap::new(),
            seen: HashMap::new(),
            events: crate::events::Recorder::new(store.clone(), "controller", None),
            term,
            agentless: HashMap::new(),
        }
    }

    /// Run exactly one reconciler per agentless host: the same one an agent runs, over
    /// the remote Docker API, registering the host under its own lease.
    fn sync_agentless(&mut self, world: &World) {
        self.agentless.retain(|id, (spec, token)| {
            let keep = world.agentless.get(id) == Some(spec);
            if !keep {
                tracing::info!(host = %id, "stopping reconciler for agentless host");
                token.cancel();
            }
            keep
        });
        for (id, spec) in &world.agentless {
            if self.agentless.contains_key(id) {
                continue;
            }
            let token = self.term.child_token();
            let cfg = AgentConfig {
                host_id: id.clone(),
                address: spec.address.clone(),
                docker_host: spec.docker_host.clone(),
                datacenter: spec.datacenter.clone(),
                labels: spec.labels.clone(),
                resync_interval: Duration::from_secs(30),
                lease_ttl: self.cfg.leader_ttl,
                allow_bind_prefixes: spec.allow_bind_prefixes.clone(),
                docker_tls: crate::agent::runtime::DockerTls {
                    ca: spec.tls_ca.as_ref().map(Into::into),
                    cert: spec.tls_cert.as_ref().map(Into::into),
                    key: spec.tls_key.as_ref().map(Into::into),
                    insecure: spec.insecure,
                },
            };
            match crate::agent::spawn(self.store.clone(), cfg, token.clone()) {
                Ok(_) => {
                    tracing::info!(host = %id, docker = %spec.docker_host, "driving agentless host");
                    self.agentless.insert(id.clone(), (spec.clone(), token));
                }
                Err(e) => tracing::warn!(host = %id, error = %e, "agentless host not driven"),
            }
        }
    }

    /// One pass, with its metrics. A pass that asks to run again early (a host's grace
    /// running out) still counts as a success: the scheduler's passes are not requeues.
    #[tracing::instrument(skip_all)]
    async fn reconcile(&mut self, snap: &Cache) -> Result<Requeue, StoreError> {
        let started = Instant::now();
        let r = self.pass(snap).await;
        metrics::observe_reconcile("scheduler", started, pass_result(&r));
        r
    }

    fn parse(&mut self, world: &World) {
        self.parsed.retain(|id, _| world.stacks.contains_key(id));
        for (id, (rev, raw)) in &world.stacks {
            if self.parsed.get(id).is_some_and(|p| p.revision == *rev) {
                continue;
            }
            let spec = decide::parse_one(id, raw, &self.cfg.limits);
            if let Err(problems) = &spec {
                tracing::warn!(stack = %id, problems = problems.len(), "stack spec is invalid");
                let first: Vec<String> = problems.iter().take(3).map(|p| p.to_string()).collect();
                self.events.record(
                    id,
                    None,
                    "Invalid",
                    format!(
                        "revision {rev}: {} problem(s): {}",
                        problems.len(),
                        first.join("; ")
                    ),
                );
            }
            self.parsed.insert(
                id.clone(),
                ParsedSpec {
                    revision: *rev,
                    spec,
                },
            );
        }
    }

    /// Absent hosts and how the grace judges them; also when the next one expires.
    fn liveness(
        &mut self,
        world: &World,
        now: Instant,
    ) -> (BTreeMap<String, (Liveness, HostRegistration)>, Requeue) {
        for (id, reg) in &world.hosts {
            self.last_seen.insert(id.clone(), reg.clone());
        }
        let unregistered = world.unregistered_hosts();
        self.gone_since
            .retain(|h, _| unregistered.contains(h.as_str()));
        let mut absent = BTreeMap::new();
        let mut next = Requeue::AtResync;
        for h in unregistered {
            let since = *self.gone_since.entry(h.to_owned()).or_insert(now);
            let gone_for = now.duration_since(since);
            let liveness = if gone_for < self.cfg.host_down_grace {
                let left = self.cfg.host_down_grace - gone_for;
                next = next.min(Requeue::After(left));
                Liveness::NotReady
            } else {
                Liveness::Down
            };
            let reg = self
                .last_seen
                .get(h)
                .cloned()
                .unwrap_or_else(|| HostRegistration {
                    id: h.to_owned(),
                    ..Default::default()
                });
            absent.insert(h.to_owned(), (liveness, reg));
        }
        (absent, next)
    }

    async fn pass(&mut self, snap: &Cache) -> Result<Requeue, StoreError> {
        let world = World::decode(snap);
        let now = Instant::now();
        self.sync_agentless(&world);
        self.parse(&world);
        let (absent, next_wake) = self.liveness(&world, now);

        let opts = Options {
            max_unavailable_fraction: self.cfg.max_unavailable_fraction,
            rebalance: world.rebalance.keys().cloned().collect(),
        };
        let started = Instant::now();
        let decision = decide(&world, &self.parsed, &absent, &opts, wall_ms());
        metrics::SCHEDULING_DURATION.observe(started.elapsed().as_secs_f64());
        let placement = &decision.placement;
        if metrics::STORM_GUARD.get() != placement.storm.is_some() as i64 {
            match &placement.storm {
                Some(why) => tracing::warn!("storm guard on: {why}"),
                None => tracing::info!("storm guard off: rescheduling resumes"),
            }
        }
        metrics::STORM_GUARD.set(placement.storm.is_some() as i64);
        for m in &placement.moves {
            tracing::info!(stack = %m.slot.stack, service = %m.slot.service, replica = m.slot.replica, from = %m.from, to = %m.to, reason = m.reason.as_str(), "rescheduling slot");
        }
        // The record before the assignments it explains: a lost assignment write is
        // redone from the record next pass, while assignments without their record would
        // look like slots whose batch has not come, and be handed back.
        self.write_rollouts(&world, &decision).await?;
        self.write_assignments(&world, &decision.assignments)
            .await?;
        self.record_rollout_events(&decision);
        // Count only once the moves are written: a lost race would count them twice.
        let new_slots = placement
            .hosts
            .keys()
            .filter(|sid| {
                !world
                    .assignments
                    .values()
                    .any(|(a, _)| a.slot(sid).is_some())
            })
            .count();
        metrics::PLACEMENTS.inc_by((new_slots + placement.moves.len()) as u64);
        for m in &placement.moves {
            metrics::RESCHEDULES
                .with_label_values(&[m.reason.as_str()])
                .inc();
        }
        // Action records of deleted stacks and services go; an invalid stack keeps its
        // (its last valid version keeps running).
        let stale_records: Vec<Write> = world
            .actions
            .keys()
            .filter(|(stack, service)| match self.parsed.get(stack) {
                None => true,
                Some(ParsedSpec { spec: Ok(spec), .. }) => {
                    !spec.item_list_element.iter().any(|s| &s.name == service)
                }
                Some(ParsedSpec { spec: Err(_), .. }) => false,
            })
            .map(|(stack, service)| {
                let host = &world.actions[&(stack.clone(), service.clone())].host;
                Write::Delete {
                    key: keys::actions(host, stack, service),
                    expect: Expect::Any,
                }
            })
            .collect();
        self.apply(stale_records).await?;
        // A rebalance request is served once its stack has been placed afresh.
        let served: Vec<Write> = world
            .rebalance
            .iter()
            .map(|(id, rev)| Write::Delete {
                key: keys::rebalance(id),
                expect: Expect::Revision(*rev),
            })
            .collect();
        self.apply(served).await?;

        let status_started = Instant::now();
        let statuses = self.write_statuses(&world, &decision, &absent).await;
        metrics::observe_reconcile("status", status_started, pass_result(&statuses));
        let live = statuses?;
        metrics::HOSTS
            .with_label_values(&["ready"])
            .set(world.hosts.len() as i64);
        metrics::HOSTS
            .with_label_values(&["notready"])
            .set(absent.len() as i64);
        metrics::HOSTS.with_label_values(&["cordoned"]).set(
            world
                .maintenance
                .values()
                .filter(|m| m.cordoned || m.draining)
                .count() as i64,
        );
        self.forget_events(snap, &live).await?;
        let rollout_due = decision.rollout_due_ms.map(|due| {
            Requeue::After(Duration::from_millis(due.saturating_sub(wall_ms()).max(10)))
        });
        Ok(rollout_due.map_or(next_wake, |r| next_wake.min(r)))
    }

    /// Write the rollout records that changed; drop those of stacks whose key is gone.
    async fn write_rollouts(
        &self,
        world: &World,
        decision: &decide::Decision,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for (id, record) in &decision.rollouts {
            let existing = world.rollouts.get(id);
            match record {
                Some(r) if existing.map(|(e, _)| e) != Some(r) => writes.push(Write::Put {
                    key: keys::rollout(id),
                    value: serde_json::to_vec(r).unwrap_or_default(),
                    expect: existing.map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev)),
                }),
                None => {
                    if let Some((_, rev)) = existing {
                        writes.push(Write::Delete {
                            key: keys::rollout(id),
                            expect: Expect::Revision(*rev),
                        });
                    }
                }
                _ => {}
            }
        }
        for (id, (_, rev)) in &world.rollouts {
            if !world.stacks.contains_key(id) {
                writes.push(Write::Delete {
                    key: keys::rollout(id),
                    expect: Expect::Revision(*rev),
                });
            }
        }
        self.apply(writes).await
    }

    /// Events and metrics of what the rollouts did this pass.
    fn record_rollout_events(&self, decision: &decide::Decision) {
        use self::rollout::RolloutEvent as E;
        for (stack, e) in &decision.rollout_events {
            let record = decision.rollouts.get(stack).and_then(|r| r.as_ref());
            let ended = |outcome: &str| {
                metrics::ROLLOUTS.with_label_values(&[outcome]).inc();
                if let Some(r) = record {
                    let secs = wall_ms().saturating_sub(r.started_at_ms) as f64 / 1000.0;
                    metrics::ROLLOUT_DURATION.observe(secs);
                }
            };
            let (service, reason, message) = match e {
                E::Started { to, from } => (
                    None,
                    "RolloutStarted",
                    format!("rolling out revision {to} (from {from})"),
                ),
                E::BatchReplaced { service, replicas } => (
                    Some(service),
                    "BatchReplaced",
                    format!("replicas {replicas:?} replaced"),
                ),
                E::Failed {
                    service,
                    why,
                    action,
                } => {
                    if *action == crate::spec::FailureAction::Pause {
                        ended("paused");
                    }
                    (
                        Some(service),
                        "RolloutFailed",
                        format!("{why}; failureAction {action}"),
                    )
                }
                E::RolledBack { service } => {
                    ended("rolled_back");
                    let from = record.map_or(0, |r| r.from_revision);
                    (
                        Some(service),
                        "RolledBack",
                        format!("back on revision {from}"),
                    )
                }
                E::Complete { to } => {
                    ended("complete");
                    (None, "RolloutComplete", format!("revision {to} rolled out"))
                }
            };
            self.events
                .record(stack, service.map(String::as_str), reason, message);
        }
    }

    /// Events of stacks that are gone go too, read from the cache rather than from etcd:
    /// no request at all while there is nothing to forget. Level-triggered, so a failed
    /// delete is tried again next pass, and events an agent records while removing a
    /// deleted stack's containers go as well.
    async fn forget_events(&self, snap: &Cache, live: &BTreeSet<String>) -> Result<(), StoreError> {
        let event_keys = snap
            .entries
            .range::<str, _>((Bound::Included(keys::EVENTS), Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(|k| k.starts_with(keys::EVENTS));
        let gone: Vec<(&str, &str)> = crate::events::holders(event_keys)
            .into_iter()
            .filter(|(_, stack)| !live.contains(*stack))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        tracing::debug!(holders = gone.len(), "forgetting events of deleted stacks");
        crate::events::forget(&self.store, gone).await
    }

    async fn write_assignments(
        &self,
        world: &World,
        desired: &BTreeMap<(String, String), crate::assignment::Assignment>,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for ((host, stack), a) in desired {
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
        self.apply(writes).await
    }

    /// Write each stack's status; returns the stacks that still exist (a spec, an
    /// assignment or a report of a listed host), whose events are kept.
    async fn write_statuses(
        &mut self,
        world: &World,
        decision: &decide::Decision,
        absent: &BTreeMap<String, (Liveness, HostRegistration)>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let now_text = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        // Reports of hosts gone past their grace no longer speak for anything.
        let listed = |h: &str| {
            world.hosts.contains_key(h)
                || absent.get(h).is_some_and(|(l, _)| *l == Liveness::NotReady)
        };
        let mut ids: BTreeSet<String> = world.stacks.keys().cloned().collect();
        ids.extend(decision.assignments.keys().map(|(_, s)| s.clone()));
        ids.extend(
            world
                .reports
                .iter()
                .filter(|r| listed(&r.host))
                .map(|r| r.stack.clone()),
        );
        ids.extend(world.statuses.keys().cloned());
        let mut phases: BTreeMap<Phase, i64> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        let (mut placed, mut pending) = (0i64, 0i64);
        let mut writes = Vec::new();
        let mut live = BTreeSet::new();
        for id in &ids {
            let spec = self
                .parsed
                .get(id)
                .map(|p| p.spec.as_ref().map_err(|v| v.as_slice()));
            let assignments: BTreeMap<&str, &crate::assignment::Assignment> = decision
                .assignments
                .iter()
                .filter(|((_, s), _)| s == id)
                .map(|((h, _), a)| (h.as_str(), a))
                .collect();
            let reports: Vec<&SlotReport> = world
                .reports
                .iter()
                .filter(|r| &r.stack == id && listed(&r.host))
                .collect();
            let key = keys::status(id);
            let existing = world.statuses.get(id);
            if spec.is_none() && assignments.is_empty() && reports.is_empty() {
                if let Some((_, rev)) = existing {
                    writes.push(Write::Delete {
                        key,
                        expect: Expect::Revision(*rev),
                    });
                }
                self.seen.remove(id);
                continue;
            }
            live.insert(id.clone());
            let mut unschedulable: BTreeMap<&str, String> = decision
                .placement
                .unschedulable
                .iter()
                .filter(|((s, _), _)| s == id)
                .map(|((_, svc), why)| (svc.as_str(), why.clone()))
                .collect();
            if let Some(storm) = &decision.placement.storm {
                for (h, a) in &assignments {
                    if absent.contains_key(*h) {
                        for s in &a.slots {
                            unschedulable
                                .entry(s.service.as_str())
                                .or_insert_with(|| format!("host {h} is not ready; {storm}"));
                        }
                    }
                }
            }
            placed += assignments
                .values()
                .map(|a| a.slots.len() as i64)
                .sum::<i64>();
            pending += unschedulable.len() as i64;
            let unschedulable_refs: BTreeMap<&str, &str> = unschedulable
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            let previous = existing.and_then(|(s, _)| s.as_ref());
            let revision = world.stacks.get(id).map(|(r, _)| *r).unwrap_or(0);
            // Records only speak for the version they ran for (`actions_done`).
            let actions: BTreeMap<&str, &crate::report::ActionRecord> = assignments
                .values()
                .flat_map(|a| a.slots.iter())
                .filter(|s| s.actions_done)
                .filter_map(|s| {
                    let r = world.actions.get(&(id.clone(), s.service.clone()))?;
                    Some((s.service.as_str(), r))
                })
                .collect();
            let st = status::aggregate(&status::Inputs {
                id,
                revision,
                spec,
                assignments,
                reports: &reports,
                unschedulable: unschedulable_refs,
                hosts: &decision.addresses,
                actions,
                previous,
                now: &now_text,
                rollout: decision
                    .rollouts
                    .get(id)
                    .map_or_else(|| world.rollouts.get(id).map(|(r, _)| r), Option::as_ref),
            });
            *phases.entry(st.phase).or_default() += 1;
            self.observe_convergence(id, revision, st.phase);
            if st.phase == Phase::Pending && previous.is_none_or(|p| p.phase != Phase::Pending) {
                self.events
                    .record(id, None, "Unschedulable", st.message.clone());
            }
            if previous == Some(&st) {
                continue;
            }
            writes.push(Write::Put {
                key,
                value: serde_json::to_vec(&st).unwrap_or_default(),
                expect: existing.map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev)),
            });
        }
        for (p, n) in phases {
            metrics::STACKS.with_label_values(&[p.as_str()]).set(n);
        }
        metrics::SLOTS.with_label_values(&["placed"]).set(placed);
        metrics::SLOTS.with_label_values(&["pending"]).set(pending);
        self.apply(writes).await?;
        Ok(live)
    }

    /// Seconds from this controller first seeing a spec revision to that revision running.
    fn observe_convergence(&mut self, id: &str, revision: i64, phase: Phase) {
        let now = Instant::now();
        let fresh = Convergence {
            revision,
            since: now,
            observed: false,
        };
        let entry = self.seen.entry(id.to_owned()).or_insert(fresh);
        if entry.revision != revision {
            *entry = fresh;
        }
        if phase == Phase::Running && !entry.observed {
            entry.observed = true;
            metrics::CONVERGENCE.observe(now.duration_since(entry.since).as_secs_f64());
        }
    }

    /// Each write on its own fenced compare-and-swap: a lost race is only a stale read,
    /// and the watch event behind it brings the next pass.
    async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        for w in writes {
            if !self
                .store
                .write_fenced(std::slice::from_ref(&w), Some(&self.fence))
                .await?
            {
                let key = match &w {
                    Write::Put { key, .. } | Write::Delete { key, .. } => key,
                };
                tracing::debug!(key = %key, "compare-and-swap lost; retrying on the next pass");
            }
        }
        Ok(())
    }
}
