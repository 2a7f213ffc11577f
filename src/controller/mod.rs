//! The controller: reads every stack, host, assignment and report through one
//! list-then-watch cache, and, while it is the elected leader, schedules, writes the
//! per-host assignments and folds the agents' reports into stack statuses. Each pass
//! decides from the cache's state, never from the event that woke it (level-triggered),
//! and writes only what differs, each write a compare-and-swap fenced by the leadership.
//! A pass covers the stacks whose keys changed since the last one ([`Scope`]); a change
//! every stack depends on (a host, its liveness, a hold, a secret, a registry login), a
//! new term, a failed pass and the resync interval each bring a pass over all of them.

pub mod decide;
pub mod history;
pub mod hostsecrets;
pub mod narrate;
pub mod pins;
pub mod rollout;
pub mod status;
pub mod world;
mod writes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use self::decide::{decide, Parsed, ParsedSpec, Placed, Scope};
use self::world::{AgentlessHost, Decoded, Dirty, World};
use crate::agent::AgentConfig;
use crate::metrics::{self, PassResult};
use crate::requeue::Requeue;
use crate::retry;
use crate::scheduler::plan::{Liveness, Options, SlotId};
use crate::serve::ReadyCheck;
use crate::spec::HostRegistration;
use crate::store::{keys, Expect, Fence, Leadership, Reflector, Store, StoreError, Write};

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
    /// Spec revisions kept per stack under `history/`.
    pub history_limit: usize,
    /// Where the leader serves each agentless host's logs (one listener per host, on a
    /// port of its own: give port 0), as an agent does its own.
    pub agentless_api: Option<crate::api::server::ApiConfig>,
}

pub struct ControllerHandle {
    pub ready: ReadyCheck,
    /// Passes this controller has finished as the leader, counted from 0: a pass that
    /// began after a change has seen it once the count has gone up twice, so whoever
    /// needs to know "had it the chance to act?" waits on this rather than on a clock.
    pub passes: watch::Receiver<u64>,
    /// The controller's list-then-watch cache of every key, for readers that show the
    /// cluster as the controller sees it (the web view), leader or not.
    pub cache: Reflector,
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
    let (passes_tx, passes) = watch::channel(0);
    let done = tokio::spawn(run(store, cfg, cache.clone(), passes_tx, cancel));
    ControllerHandle {
        ready,
        passes,
        cache,
        done,
    }
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

async fn run(
    store: Store,
    cfg: ControllerConfig,
    cache: Reflector,
    passes: watch::Sender<u64>,
    cancel: CancellationToken,
) {
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
            wake.clone(),
        );
        let mut pass_policy = retry::Policy::new();
        let mut decoded = Decoded::default();
        let resign = loop {
            let pass_started = Instant::now();
            let next = match cache.read(|snap| decoded.update(snap)).await {
                Some(_) => {
                    let result = c.reconcile(&mut decoded).await;
                    passes.send_modify(|n| *n += 1);
                    match result {
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
                    }
                }
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

/// The stacks a pass decides: every one when something every stack depends on changed
/// (a host, a hold, a secret, a registry login: `dirty.everything`, also set on a new
/// leader's first pass and after a failed one), when a host's liveness changed, and once
/// a resync interval; otherwise those whose keys changed and those whose rollout timer
/// has run out by `now_ms`.
fn scope_of(
    dirty: &Dirty,
    liveness_changed: bool,
    resync_due: bool,
    rollout_due: &BTreeMap<String, u64>,
    now_ms: u64,
) -> Scope {
    if dirty.everything || liveness_changed || resync_due {
        return Scope::Everything;
    }
    let mut stacks = dirty.stacks.clone();
    stacks.extend(
        rollout_due
            .iter()
            .filter(|(_, due)| **due <= now_ms)
            .map(|(id, _)| id.clone()),
    );
    Scope::Stacks(stacks)
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
    agentless: HashMap<String, Driven>,
    events: crate::events::Recorder,
    /// Makes the loop run a pass soon (an agentless host's reconciler found it empty).
    wake: Arc<Notify>,
    /// (secret, revision) -> its value then (`None`: compacted away), read from etcd's
    /// history for hosts' copies while some slot pins that revision, and no longer.
    past_secrets: HashMap<(String, i64), Option<String>>,
    /// What changed since the last pass that succeeded: the next pass's scope.
    dirty: Dirty,
    /// When the last pass over every stack began: one runs at least every resync
    /// interval, the level-triggered backstop for anything a narrower pass could miss.
    last_full: Option<Instant>,
    /// Each absent host's liveness as the last pass judged it: a change of it (a grace
    /// running out, a host coming back) can move any stack's slots.
    last_liveness: BTreeMap<String, Liveness>,
    /// The last pass's placement, which the next may keep.
    last_placed: Option<Placed>,
    /// Stack id -> when its soonest rollout timer runs out (wall-clock ms).
    rollout_due: BTreeMap<String, u64>,
    /// Stack id -> what its last status added to the cluster's gauges; its keys are the
    /// stacks that still exist, whose events are kept.
    tallies: BTreeMap<String, writes::Tally>,
}

/// The reconciler this leader runs for one agentless host.
struct Driven {
    /// How it drives the engine ([`AgentlessHost::engine`]): another one needs a new
    /// reconciler.
    engine: AgentlessHost,
    token: CancellationToken,
    holds_nothing: tokio::sync::watch::Receiver<bool>,
    /// Stopped for good: the host is being removed and holds nothing.
    stopped: bool,
}

impl Controller {
    fn new(
        store: Store,
        cfg: ControllerConfig,
        fence: Fence,
        term: CancellationToken,
        wake: Arc<Notify>,
    ) -> Controller {
        Controller {
            store: store.clone(),
            cfg,
            fence: fence.clone(),
            parsed: BTreeMap::new(),
            gone_since: HashMap::new(),
            last_seen: HashMap::new(),
            seen: HashMap::new(),
            events: crate::events::Recorder::new(store.clone(), "controller", None).fenced(fence),
            term,
            agentless: HashMap::new(),
            wake,
            past_secrets: HashMap::new(),
            dirty: Dirty::everything(),
            last_full: None,
            last_liveness: BTreeMap::new(),
            last_placed: None,
            rollout_due: BTreeMap::new(),
            tallies: BTreeMap::new(),
        }
    }

    /// This pass's scope ([`scope_of`]), and when a pass over every stack last began.
    fn scope(
        &mut self,
        absent: &BTreeMap<String, (Liveness, HostRegistration)>,
        now: Instant,
        now_ms: u64,
    ) -> Scope {
        let liveness: BTreeMap<String, Liveness> =
            absent.iter().map(|(h, (l, _))| (h.clone(), *l)).collect();
        let resync_due = self
            .last_full
            .is_none_or(|t| now.duration_since(t) >= self.cfg.resync_interval);
        let scope = scope_of(
            &self.dirty,
            liveness != self.last_liveness,
            resync_due,
            &self.rollout_due,
            now_ms,
        );
        if scope.is_everything() {
            self.last_liveness = liveness;
            self.last_full = Some(now);
        }
        scope
    }

    /// Run exactly one reconciler per agentless host: the same one an agent runs, over
    /// the remote Docker API, registering the host under its own lease.
    fn sync_agentless(&mut self, world: &World) {
        self.agentless.retain(|id, d| {
            // A host added again while it was being removed is driven afresh.
            let keep = world.agentless.get(id).is_some_and(|(spec, _)| {
                spec.engine() == d.engine && (spec.removing || !d.stopped)
            });
            if !keep {
                tracing::info!(host = %id, "stopping reconciler for agentless host");
                d.token.cancel();
            }
            keep
        });
        for (id, (spec, _)) in &world.agentless {
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
                // The controller is not on the host: the containers' addresses are out
                // of its reach.
                vantage: crate::agent::Vantage::Remote,
                // The controller's own Docker config is its machine's, not the remote
                // engine's: agentless hosts pull with the logins in etcd only.
                docker_config: None,
                // It holds the prefix: the originals, with no copies to hand itself.
                secret_source: crate::agent::SecretSource::Originals,
                // Its logs are served from here, the only place that reaches its engine.
                api: self.cfg.agentless_api.clone(),
            };
            match crate::agent::spawn(self.store.clone(), cfg, token.clone()) {
                Ok(h) => {
                    tracing::info!(host = %id, docker = %spec.docker_host, "driving agentless host");
                    // Its reconciler's passes run on their own; one that finds the host
                    // empty calls for a pass here, which may forget a host being removed.
                    let mut empty = h.holds_nothing.clone();
                    let wake = self.wake.clone();
                    tokio::spawn(async move {
                        while empty.changed().await.is_ok() {
                            wake.notify_one();
                        }
                    });
                    self.agentless.insert(
                        id.clone(),
                        Driven {
                            engine: spec.engine(),
                            token,
                            holds_nothing: h.holds_nothing,
                            stopped: false,
                        },
                    );
                }
                Err(e) => tracing::warn!(host = %id, error = %e, "agentless host not driven"),
            }
        }
    }

    /// One pass, with its metrics. A pass that asks to run again early (a host's grace
    /// running out) still counts as a success: the scheduler's passes are not requeues.
    #[tracing::instrument(skip_all)]
    async fn reconcile(&mut self, decoded: &mut Decoded) -> Result<Requeue, StoreError> {
        let started = Instant::now();
        let r = self.pass(decoded).await;
        metrics::observe_reconcile(metrics::Component::Scheduler, started, pass_result(&r));
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
            self.parsed.insert(id.clone(), ParsedSpec::new(*rev, spec));
        }
    }

    /// Absent hosts and how the grace judges them; also when the next one expires.
    fn liveness(
        &mut self,
        world: &World,
        now: Instant,
    ) -> (BTreeMap<String, (Liveness, HostRegistration)>, Requeue) {
        for (id, reg) in &world.hosts {
            // Compared before copied: most passes see no registration change.
            if self.last_seen.get(id) != Some(reg) {
                self.last_seen.insert(id.clone(), reg.clone());
            }
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

    /// One pass over the stacks whose inputs changed since the last one ([`Scope`]).
    async fn pass(&mut self, decoded: &mut Decoded) -> Result<Requeue, StoreError> {
        self.dirty.merge(decoded.take_dirty());
        let r = self.pass_over(decoded).await;
        // A failed pass may have written some of what it decided, and decided more than
        // the changes asked for (rollout timers, moved slots): the next one covers all.
        self.dirty = match r {
            Ok(_) => Dirty::default(),
            Err(_) => Dirty::everything(),
        };
        r
    }

    async fn pass_over(&mut self, decoded: &Decoded) -> Result<Requeue, StoreError> {
        let world = decoded.world();
        let now = Instant::now();
        self.sync_agentless(world);
        self.parse(world);
        let (absent, next_wake) = self.liveness(world, now);
        let now_ms = wall_ms();
        let scope = self.scope(&absent, now, now_ms);

        let opts = Options {
            max_unavailable_fraction: self.cfg.max_unavailable_fraction,
            rebalance: world.rebalance.keys().cloned().collect(),
        };
        let started = Instant::now();
        let last = self.last_placed.take();
        let decision = decide(world, &self.parsed, &absent, &opts, now_ms, scope, last);
        metrics::SCHEDULING_DURATION.observe(started.elapsed().as_secs_f64());
        let placement = &decision.placement;
        let scope = &decision.scope;
        match scope {
            Scope::Everything => self.rollout_due.clear(),
            Scope::Stacks(ids) => self.rollout_due.retain(|id, _| !ids.contains(id)),
        }
        self.rollout_due.extend(
            decision
                .rollout_due_ms
                .iter()
                .map(|(id, due)| (id.clone(), *due)),
        );
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
        self.write_rollouts(world, &decision).await?;
        // Copies before the assignments that need them, so an agent never sees a pin its
        // copy lacks; those no slot needs any more only after the assignments moved on.
        let copies = self.plan_host_copies(world, decoded, &decision).await?;
        self.apply(copies.puts).await?;
        self.write_assignments(world, &decision).await?;
        self.apply(copies.deletes).await?;
        self.write_history(world, &decision, now_ms).await?;
        self.record_rollout_events(&decision);
        // Count and tell only once the moves are written: a lost race would count them
        // twice.
        let placed_before: BTreeSet<(&str, &str, u32)> = world
            .assignments
            .iter()
            .filter(|((_, stack), _)| placement.unsettled.contains(stack))
            .flat_map(|((_, stack), (a, _))| {
                a.slots
                    .iter()
                    .map(move |s| (stack.as_str(), s.service.as_str(), s.replica))
            })
            .collect();
        let was_placed = |sid: &SlotId| {
            placed_before.contains(&(sid.stack.as_str(), sid.service.as_str(), sid.replica))
        };
        let mut new_slots = 0;
        for stack in &placement.unsettled {
            new_slots += placement
                .hosts_of(stack)
                .filter(|(sid, _)| !was_placed(sid))
                .count();
        }
        metrics::PLACEMENTS.inc_by((new_slots + placement.moves.len()) as u64);
        for n in narrate::placements(placement, was_placed) {
            self.events
                .record(&n.stack, n.service.as_deref(), n.reason, n.message);
        }
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
        self.forget_removed_hosts(world, &decision).await?;

        let status_started = Instant::now();
        let statuses = self.write_statuses(world, &decision, &absent).await;
        metrics::observe_reconcile(
            metrics::Component::Status,
            status_started,
            pass_result(&statuses),
        );
        statuses?;
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
        // Events outlive their stack only until a pass over every stack, or one over a
        // stack that is gone.
        let some_gone = match scope {
            Scope::Everything => true,
            Scope::Stacks(ids) => ids.iter().any(|id| !self.tallies.contains_key(id)),
        };
        if some_gone {
            self.forget_events(decoded).await?;
        }
        self.last_placed = Some(Placed {
            placement: decision.placement,
            keys: decision.placement_keys,
        });
        let rollout_due = self.rollout_due.values().min().map(|due| {
            Requeue::After(Duration::from_millis(due.saturating_sub(wall_ms()).max(10)))
        });
        Ok(rollout_due.map_or(next_wake, |r| next_wake.min(r)))
    }

    /// An agentless host being removed goes once it holds nothing (no assignment names it,
    /// and its reconciler found no Berth container on its engine since): first its
    /// reconciler stops, which takes its registration away, and then, once the
    /// registration is gone, its key is deleted, with any cordon or drain of it. In the
    /// other order, a pass between the two would see a registered host that is no longer
    /// being removed, and place the slots pinned to it there again.
    async fn forget_removed_hosts(
        &mut self,
        world: &World,
        decision: &decide::Decision,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for (id, (spec, rev)) in &world.agentless {
            let names = |(h, _): &(String, String)| h == id;
            if !spec.removing
                || world.assignments.keys().any(names)
                || decision.assignments.keys().any(names)
            {
                continue;
            }
            let Some(d) = self.agentless.get_mut(id) else {
                continue;
            };
            if !d.stopped {
                if *d.holds_nothing.borrow() {
                    tracing::info!(host = %id, "removed host holds nothing any more; stopping its reconciler");
                    d.token.cancel();
                    d.stopped = true;
                }
                continue;
            }
            if world.hosts.contains_key(id) {
                continue;
            }
            tracing::info!(host = %id, "removed host forgotten");
            writes.push(Write::Delete {
                key: keys::agentless(id),
                expect: Expect::Revision(*rev),
            });
            if world.maintenance.contains_key(id) {
                writes.push(Write::Delete {
                    key: keys::maintenance(id),
                    expect: Expect::Any,
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
                E::Started { to, from } if to == from => (
                    None,
                    "RolloutStarted",
                    format!("rolling out revision {to} again: containers changed without a spec change (a dependency's address, a secret)"),
                ),
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
                E::Held { paused: true } => (
                    None,
                    "RolloutPaused",
                    "paused by an operator: no further batch starts".to_owned(),
                ),
                E::Held { paused: false } => {
                    (None, "RolloutResumed", "resumed by an operator".to_owned())
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
    async fn forget_events(&self, decoded: &Decoded) -> Result<(), StoreError> {
        let event_keys = decoded.keys_under(keys::EVENTS);
        let gone: Vec<(&str, &str)> = crate::events::holders(event_keys)
            .into_iter()
            .filter(|(_, stack)| !self.tallies.contains_key(*stack))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        tracing::debug!(holders = gone.len(), "forgetting events of deleted stacks");
        crate::events::forget(&self.store, gone).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_covers_every_stack_when_all_may_have_changed_else_the_changed_and_the_due() {
        let ids = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
        let shop = Dirty {
            stacks: ids(&["shop"]),
            ..Dirty::default()
        };
        let due = BTreeMap::from([("blog".to_owned(), 100), ("wiki".to_owned(), 300)]);
        let cases: Vec<(&str, Dirty, bool, bool, u64, Scope)> = vec![
            (
                "a stack's keys changed",
                shop.clone(),
                false,
                false,
                50,
                Scope::Stacks(ids(&["shop"])),
            ),
            (
                "and a rollout timer ran out",
                shop.clone(),
                false,
                false,
                100,
                Scope::Stacks(ids(&["blog", "shop"])),
            ),
            (
                "nothing changed, nothing due",
                Dirty::default(),
                false,
                false,
                50,
                Scope::Stacks(ids(&[])),
            ),
            (
                "a host, hold, secret or login changed (or a new term, a failed pass)",
                Dirty::everything(),
                false,
                false,
                50,
                Scope::Everything,
            ),
            (
                "a host's liveness changed",
                shop.clone(),
                true,
                false,
                50,
                Scope::Everything,
            ),
            ("the resync", shop, false, true, 50, Scope::Everything),
        ];
        for (name, dirty, liveness_changed, resync_due, now_ms, want) in cases {
            assert_eq!(
                scope_of(&dirty, liveness_changed, resync_due, &due, now_ms),
                want,
                "{name}"
            );
        }
    }
}
