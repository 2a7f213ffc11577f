//! The per-host agent: registers its host under a lease, watches the host's assignments,
//! and converges the Docker engine to them, level-triggered: every pass re-reads the
//! assignments and the containers, plans, acts, and reports each slot back to etcd.
//! Docker events and probe results only make the next pass come sooner; a periodic resync
//! makes it come anyway.

mod desired;
mod execute;
mod inspected;
pub mod plan;
mod report;
pub mod runtime;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use desired::{container_name, desired_containers, spec_hash, DesiredContainer};
pub use report::SlotError;
pub use runtime::{Runtime, RuntimeError};

use self::plan::{Action, RunState};
use crate::assignment::{slot_key, Assignment};
use crate::health::{Probes, Target};
use crate::report::SlotReport;
use crate::serve::ReadyCheck;
use crate::spec::{HealthCheckKind, HostRegistration};
use crate::store::{keys, Expect, Kv, LeasedKey, Reflector, Store, Write};
use crate::{metrics, retry};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host_id: String,
    pub address: String,
    pub docker_host: String,
    pub datacenter: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub resync_interval: Duration,
    pub lease_ttl: Duration,
    /// Host paths under which bind mounts are allowed (none by default).
    pub allow_bind_prefixes: Vec<String>,
    /// TLS (or an explicit `insecure`) for a TCP `docker_host`.
    pub docker_tls: runtime::DockerTls,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("host id {0:?} is not valid: use letters, digits, '.', '_' or '-' (1-253 characters)")]
    InvalidHostId(String),
}

/// A running agent: its readiness, and a handle to wait for it to stop.
pub struct AgentHandle {
    pub ready: ReadyCheck,
    pub done: tokio::task::JoinHandle<()>,
}

/// Start the agent; it runs until `cancel`. Containers are left running when it stops:
/// they belong to the desired state, not to the process.
pub fn spawn(
    store: Store,
    cfg: AgentConfig,
    cancel: CancellationToken,
) -> Result<AgentHandle, AgentError> {
    if !crate::spec::is_host_id(&cfg.host_id) {
        return Err(AgentError::InvalidHostId(cfg.host_id));
    }
    let docker_ok = Arc::new(AtomicBool::new(false));
    let assignments = Reflector::spawn(
        store.clone(),
        keys::assignments_of(&cfg.host_id),
        cancel.clone(),
    );
    let ready: ReadyCheck = {
        let docker_ok = docker_ok.clone();
        let assignments = assignments.clone();
        Arc::new(move || {
            if !assignments.synced() {
                return Err("assignments not yet read from etcd".into());
            }
            if !docker_ok.load(Ordering::Relaxed) {
                return Err("docker not reachable".into());
            }
            Ok(())
        })
    };
    let done = tokio::spawn(run(store, cfg, assignments, docker_ok, cancel));
    Ok(AgentHandle { ready, done })
}

async fn run(
    store: Store,
    cfg: AgentConfig,
    assignments: Reflector,
    docker_ok: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let host = cfg.host_id.clone();
    let rt = tokio::select! {
        _ = cancel.cancelled() => return,
        rt = connect_docker(&cfg.docker_host, &cfg.docker_tls) => rt,
    };
    docker_ok.store(true, Ordering::Relaxed);
    let facts = rt.facts().await.ok();
    let registration = HostRegistration {
        id: host.clone(),
        address: cfg.address.clone(),
        datacenter: cfg.datacenter.clone(),
        labels: cfg.labels.clone(),
        cpus: facts.as_ref().map(|f| f.cpus).unwrap_or(0.0),
        memory_mb: facts.as_ref().map(|f| f.memory_mb).unwrap_or(0),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        docker_version: facts.as_ref().map(|f| f.version.clone()),
        used_ports: rt
            .list_host(&host)
            .await
            .map(|(_, ports)| ports)
            .unwrap_or_default(),
        degraded: None,
        allow_bind_prefixes: cfg.allow_bind_prefixes.clone(),
    };
    let lease = LeasedKey::spawn(
        store.clone(),
        keys::host(&host),
        serde_json::to_vec(&registration).unwrap_or_default(),
        cfg.lease_ttl,
        cancel.clone(),
    );
    let reports = Reflector::spawn(store.clone(), keys::reports_of(&host), cancel.clone());

    let wake = Arc::new(Notify::new());
    spawn_event_pump(rt.clone(), host.clone(), wake.clone(), cancel.clone());
    {
        let mut changes = assignments.subscribe();
        let wake = wake.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                wake.notify_one();
            }
        });
    }

    tracing::info!(host = %host, docker = %rt.endpoint(), "agent started");
    let mut agent = Pass {
        store: store.clone(),
        rt,
        host,
        probes: Probes::default(),
        crash: HashMap::new(),
        wake: wake.clone(),
        policy: retry::Policy::new(),
        errors: BTreeMap::new(),
        action_retry: retry::Policy::with(Duration::from_millis(500), Duration::from_secs(30)),
        registration,
        lease,
        actions_started: Default::default(),
        adopted: false,
        network_errors: BTreeMap::new(),
        network_retry: retry::Policy::with(Duration::from_secs(1), Duration::from_secs(60)),
        events: crate::events::Recorder::new(store.clone(), "agent", Some(cfg.host_id.clone())),
    };
    assignments.wait_synced().await;
    reports.wait_synced().await;
    loop {
        let next = match agent.reconcile(&assignments, &reports).await {
            Ok(wait) => {
                docker_ok.store(true, Ordering::Relaxed);
                agent.set_degraded(None);
                agent.policy.reset();
                wait.unwrap_or(cfg.resync_interval).min(cfg.resync_interval)
            }
            Err(e) => {
                docker_ok.store(false, Ordering::Relaxed);
                agent.set_degraded(Some(format!("docker: {}", crate::error_chain(&e))));
                let delay = agent.policy.next_delay();
                tracing::warn!(error = %crate::error_chain(&e), retry_in = ?delay, "agent reconcile failed; nothing removed");
                delay
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(next) => {}
        }
    }
    tracing::info!("agent stopped; containers left running");
}

async fn connect_docker(endpoint: &str, tls: &runtime::DockerTls) -> Runtime {
    let mut policy = retry::Policy::new();
    loop {
        match Runtime::connect_with(endpoint, tls).await {
            Ok(rt) => return rt,
            Err(e) => {
                let delay = policy.next_delay();
                tracing::warn!(error = %crate::error_chain(&e), retry_in = ?delay, "docker not reachable");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Forward Docker events of this host's containers as wake-ups; resubscribe on failure.
fn spawn_event_pump(rt: Runtime, host: String, wake: Arc<Notify>, cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut policy = retry::Policy::new();
        loop {
            let mut events = Box::pin(rt.events(&host));
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = events.next() => e,
                };
                match next {
                    Some(Ok(ev)) => {
                        policy.reset();
                        tracing::debug!(container = %ev.id, action = %ev.action, "docker event");
                        wake.notify_one();
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %crate::error_chain(&e), "docker event stream failed");
                        break;
                    }
                    None => break,
                }
            }
            // Events may have been missed while the stream was down: look again.
            wake.notify_one();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(policy.next_delay()) => {}
            }
        }
    });
}

/// Crash-loop backoff for one slot: the first restart is immediate, later ones wait
/// longer and longer, and a container that stays up long enough is forgiven.
struct CrashLoop {
    policy: retry::Policy,
    not_before: Instant,
    last_restart: Instant,
}

const CRASH_FORGIVE_AFTER: Duration = Duration::from_secs(30);

struct Pass {
    store: Store,
    rt: Runtime,
    host: String,
    probes: Probes,
    crash: HashMap<String, CrashLoop>,
    wake: Arc<Notify>,
    policy: retry::Policy,
    /// Per-container failures, kept until that container's next success.
    errors: BTreeMap<String, SlotError>,
    /// Paces retries of actions that failed for a passing reason (a port still held, a
    /// Docker hiccup) so they come back sooner than the resync but not in a hot loop.
    action_retry: retry::Policy,
    /// What this host publishes about itself; re-written when it changes.
    registration: HostRegistration,
    lease: LeasedKey,
    events: crate::events::Recorder,
    /// Containers found running at start-up are adopted, not restarted: counted once.
    adopted: bool,
    /// Stack networks Docker refused to remove, with its last answer, and the pace of
    /// trying again.
    network_errors: BTreeMap<String, String>,
    network_retry: retry::Policy,
    /// Post-start action runs started by this agent, by actions key: never run twice,
    /// even before the controller has seen their record.
    actions_started: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Pass {
    /// One level-triggered pass. Returns how soon the next pass is needed, if sooner
    /// than the resync (a restart waiting out its backoff).
    #[tracing::instrument(skip_all, fields(host = %self.host))]
    async fn reconcile(
        &mut self,
        assignments: &Reflector,
        reports: &Reflector,
    ) -> Result<Option<Duration>, RuntimeError> {
        let started = Instant::now();
        let result = self.reconcile_inner(assignments, reports).await;
        metrics::RECONCILE_DURATION
            .with_label_values(&["agent"])
            .observe(started.elapsed().as_secs_f64());
        let label = match &result {
            Ok(Some(_)) => "requeue",
            Ok(None) => "success",
            Err(e) => {
                metrics::RECONCILE_ERRORS
                    .with_label_values(&["agent", e.metric_label()])
                    .inc();
                "error"
            }
        };
        metrics::RECONCILE
            .with_label_values(&["agent", label])
            .inc();
        result
    }

    async fn reconcile_inner(
        &mut self,
        assignments: &Reflector,
        reports: &Reflector,
    ) -> Result<Option<Duration>, RuntimeError> {
        // Never act on a partial view: without a complete list of assignments, do nothing.
        let Some((assigned, unreadable)) = assignments.read(decode_assignments).await else {
            return Ok(Some(Duration::from_millis(200)));
        };
        let desired = desired_containers(assigned.iter());
        let by_name: BTreeMap<String, &DesiredContainer> =
            desired.iter().map(|d| (d.name.clone(), d)).collect();

        // A failed list returns an error, never an empty list: nothing gets removed.
        let (mut actual, mut used_ports) = self.rt.list_host(&self.host).await?;
        let now = Instant::now();
        self.forgive_stable(&actual, now);
        self.merge_probe_health(&mut actual);
        if !self.adopted {
            self.adopted = true;
            let adopted = actual
                .iter()
                .filter(|a| {
                    by_name
                        .get(&a.name)
                        .is_some_and(|d| d.spec_hash == a.spec_hash)
                })
                .count();
            metrics::CONTAINER_ACTIONS
                .with_label_values(&["adopt"])
                .inc_by(adopted as u64);
            if adopted > 0 {
                tracing::info!(containers = adopted, "adopted running containers");
            }
        }
        let mut actions = plan::plan(&desired, &actual);
        // A stack whose assignment we cannot read is not a deleted stack: keep its containers.
        let protected: Vec<&str> = actual
            .iter()
            .filter(|a| unreadable.contains(&a.stack))
            .map(|a| a.id.as_str())
            .collect();
        actions.retain(
            |a| !matches!(a, Action::Remove { id, .. } if protected.contains(&id.as_str())),
        );
        let mut wait: Option<Duration> = None;
        actions.retain(|a| {
            let (true, Action::Start { name, .. } | Action::Restart { name, .. }) =
                (a.is_restart(), a)
            else {
                return true;
            };
            match self.crash.get(name) {
                Some(c) if c.not_before > now => {
                    let left = c.not_before - now;
                    wait = Some(wait.map_or(left, |w: Duration| w.min(left)));
                    false
                }
                _ => true,
            }
        });
        // This host's policy: a spec asking for more is refused here, with the reason.
        for d in &desired {
            if let Some(m) = d.spec.mounts.iter().find(|m| {
                m.kind == "bind"
                    && !crate::spec::bind_allowed(&m.source, &self.registration.allow_bind_prefixes)
            }) {
                self.errors.insert(
                    d.name.clone(),
                    SlotError {
                        message: format!(
                            "bind mount of {} refused: this host allows bind mounts only under {} (agent flag --allow-bind-prefix)",
                            m.source,
                            if self.registration.allow_bind_prefixes.is_empty() {
                                "no path".to_owned()
                            } else {
                                self.registration.allow_bind_prefixes.join(", ")
                            }
                        ),
                        permanent: true,
                    },
                );
            }
        }
        // Slots with a permanent error wait for a new spec instead of failing again.
        actions.retain(|a| match a {
            Action::Create { name } | Action::Replace { name, .. } => {
                !self.errors.get(name).is_some_and(|e| e.permanent)
            }
            _ => true,
        });

        let previous: BTreeMap<String, SlotReport> = reports
            .read(|c| {
                c.entries
                    .values()
                    .filter_map(|kv| serde_json::from_slice::<SlotReport>(&kv.value).ok())
                    .map(|r| (container_name(&r.stack, &r.service, r.replica), r))
                    .collect()
            })
            .await
            .unwrap_or_default();
        let mut restarts: BTreeMap<String, u32> = desired
            .iter()
            .map(|d| {
                let prev = previous
                    .get(&d.name)
                    .filter(|r| r.spec_hash == d.spec_hash)
                    .map(|r| r.restarts)
                    .unwrap_or(0);
                (d.name.clone(), prev)
            })
            .collect();

        // Secrets go in only now, into copies handed to Docker: never into an assignment,
        // a report, a log line or the spec hash.
        let mut resolved: BTreeMap<String, DesiredContainer> = BTreeMap::new();
        let mut unresolved: Vec<String> = Vec::new();
        for a in &actions {
            let (Action::Create { name } | Action::Replace { name, .. }) = a else {
                continue;
            };
            let Some(d) = by_name.get(name) else { continue };
            match self.resolve_secrets(d).await {
                Ok(Some(copy)) => {
                    resolved.insert(name.clone(), copy);
                }
                Ok(None) => {}
                Err(message) => {
                    self.errors.insert(
                        name.clone(),
                        SlotError {
                            message,
                            permanent: false,
                        },
                    );
                    unresolved.push(name.clone());
                }
            }
        }
        if !unresolved.is_empty() {
            actions.retain(|a| !matches!(a, Action::Create { name } | Action::Replace { name, .. } if unresolved.contains(name)));
            let d = self.action_retry.next_delay();
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        let mut exec_view = by_name.clone();
        for (name, d) in &resolved {
            exec_view.insert(name.clone(), d);
        }

        if !actions.is_empty() {
            let touched: Vec<String> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Create { name }
                    | Action::Replace { name, .. }
                    | Action::Restart { name, .. }
                    | Action::Start { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect();
            let outcome =
                execute::execute(&self.rt, &self.host, actions, &exec_view, &assigned).await;
            for name in touched {
                if !outcome.errors.contains_key(&name) {
                    self.errors.remove(&name);
                }
            }
            for name in &outcome.restarted {
                *restarts.entry(name.clone()).or_default() += 1;
                metrics::CONTAINER_RESTARTS.inc();
                let c = self.crash.entry(name.clone()).or_insert_with(|| CrashLoop {
                    policy: retry::Policy::with(Duration::from_secs(1), Duration::from_secs(60)),
                    not_before: now,
                    last_restart: now,
                });
                c.last_restart = now;
                c.not_before = now + c.policy.next_delay();
            }
            for a in &outcome.done {
                self.record_event(a, &by_name);
            }
            for stack in &outcome.gone_stacks {
                self.remove_deleted_stack_volumes(stack).await;
            }
            for (name, e) in &outcome.errors {
                // Once per distinct failure, not on every retry.
                if self.errors.get(name).map(|old| &old.message) != Some(&e.message) {
                    let (stack, service) = stack_and_service(name, &by_name);
                    self.events
                        .record(&stack, service.as_deref(), "Failed", e.message.clone());
                }
            }
            if outcome.errors.values().any(|e| !e.permanent) {
                let d = self.action_retry.next_delay();
                wait = Some(wait.map_or(d, |w| w.min(d)));
            } else {
                self.action_retry.reset();
            }
            self.errors.extend(outcome.errors);
            (actual, used_ports) = self.rt.list_host(&self.host).await?;
            self.merge_probe_health(&mut actual);
        }
        if let Some(d) = self.sweep_networks(&desired, &actual).await {
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        // Forget errors of containers no longer wanted here.
        self.errors.retain(|name, _| by_name.contains_key(name));
        self.crash.retain(|name, _| by_name.contains_key(name));

        // Ports taken by containers Berth does not manage change behind our back.
        if used_ports != self.registration.used_ports {
            self.registration.used_ports = used_ports;
            self.lease
                .update(serde_json::to_vec(&self.registration).unwrap_or_default());
        }
        self.sync_probes(&desired, &actual);
        update_container_gauge(&actual);
        let built = report::build(&report::Observed {
            host: &self.host,
            desired: &desired,
            actual: &actual,
            errors: &self.errors,
            restarts: &restarts,
        });
        self.write_reports(built, reports).await;
        self.start_post_start_actions(&desired, &actual);
        Ok(wait)
    }

    fn record_event(&self, a: &Action, by_name: &BTreeMap<String, &DesiredContainer>) {
        let (reason, message, name) = match a {
            Action::Create { name } => {
                ("Created", "container created and started".to_owned(), name)
            }
            Action::Start {
                name,
                restart: false,
                ..
            } => ("Started", "container started".to_owned(), name),
            Action::Start {
                name,
                restart: true,
                ..
            } => (
                "Restarted",
                "container had exited; started again".to_owned(),
                name,
            ),
            Action::Restart { name, .. } => (
                "Unhealthy",
                "container stayed unhealthy; restarted".to_owned(),
                name,
            ),
            Action::Replace {
                name, start_first, ..
            } => (
                "Replaced",
                format!(
                    "spec changed; replaced ({})",
                    if *start_first {
                        "new container started first"
                    } else {
                        "old container stopped first"
                    }
                ),
                name,
            ),
            Action::Stop { name, .. } => {
                ("Stopped", "stopped as desiredState asks".to_owned(), name)
            }
            Action::Rename { to, .. } => (
                "Renamed",
                "container was renamed by hand; name put back".to_owned(),
                to,
            ),
            Action::Remove {
                name,
                reason: plan::RemoveReason::Orphan,
                ..
            } => (
                "OrphanRemoved",
                "no slot here wants it any more; removed".to_owned(),
                name,
            ),
            Action::Remove { name, .. } => (
                "DuplicateRemoved",
                "a second container for one slot; removed".to_owned(),
                name,
            ),
        };
        let (stack, service) = stack_and_service(name, by_name);
        self.events
            .record(&stack, service.as_deref(), reason, message);
    }

    /// A copy of `d` with its `{{secret:NAME}}` references filled in from etcd, `None`
    /// when it has none, or why it cannot be created yet.
    async fn resolve_secrets(
        &self,
        d: &DesiredContainer,
    ) -> Result<Option<DesiredContainer>, String> {
        let names: Vec<&str> = d
            .spec
            .env
            .values()
            .flat_map(|v| crate::spec::secret_refs(v))
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let mut values: BTreeMap<&str, String> = BTreeMap::new();
        for n in names {
            let key = keys::secret(n);
            match self.store.get(&key).await {
                Ok(Some(kv)) => {
                    values.insert(n, String::from_utf8_lossy(&kv.value).into_owned());
                }
                Ok(None) => {
                    return Err(format!(
                        "secret {n} not found at {}{key}",
                        self.store.prefix()
                    ));
                }
                Err(e) => return Err(format!("reading secret {n}: {}", crate::error_chain(&e))),
            }
        }
        let mut copy = d.clone();
        for v in copy.spec.env.values_mut() {
            *v = crate::spec::substitute(v, |n| values.get(n).cloned())
                .map_err(|n| format!("secret {n} not found"))?;
        }
        Ok(Some(copy))
    }

    /// Level-triggered network cleanup: every pass removes the networks this host made for
    /// stacks with no container here, so a removal Docker refused once (it can keep a
    /// stale endpoint after a crash) is tried again with backoff instead of forgotten.
    /// Returns how soon to try again.
    async fn sweep_networks(
        &mut self,
        desired: &[DesiredContainer],
        actual: &[plan::ActualContainer],
    ) -> Option<Duration> {
        let nets = match self.rt.host_networks(&self.host).await {
            Ok(nets) => nets,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "listing stack networks failed");
                return None;
            }
        };
        let mut failed = false;
        for name in plan::stale_networks(&nets, desired, actual) {
            match self.rt.remove_network(&name).await {
                Ok(()) => {
                    self.network_errors.remove(&name);
                }
                Err(e) => {
                    let message = crate::error_chain(&e);
                    // Once per distinct refusal, not on every retry.
                    if self.network_errors.get(&name) != Some(&message) {
                        tracing::warn!(network = %name, error = %message, "Docker refused to remove a stack network no Berth container here uses; trying again");
                    }
                    self.network_errors.insert(name, message);
                    failed = true;
                }
            }
        }
        self.network_errors
            .retain(|n, _| nets.iter().any(|(name, _)| name == n));
        if failed {
            Some(self.network_retry.next_delay())
        } else {
            self.network_retry.reset();
            None
        }
    }

    /// A stack that left this host may have moved or been deleted; only a deleted one
    /// (its spec key gone, read just now) takes the volumes it asked to remove.
    async fn remove_deleted_stack_volumes(&self, stack: &str) {
        // Still there (moved elsewhere), or unknown: keep the data.
        if !matches!(self.store.get(&keys::stack(stack)).await, Ok(None)) {
            return;
        }
        match self.rt.remove_stack_volumes(stack).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(stack, volumes = ?removed, "removed volumes of deleted stack (removeVolumesOnDelete)");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(stack, error = %crate::error_chain(&e), "removing volumes failed")
            }
        }
    }

    /// Say in the host registration whether this host can run containers now.
    fn set_degraded(&mut self, why: Option<String>) {
        if self.registration.degraded.is_some() == why.is_some() {
            return;
        }
        self.registration.degraded = why;
        self.lease
            .update(serde_json::to_vec(&self.registration).unwrap_or_default());
    }

    /// Run each service's `potentialAction`s once its first replica runs healthy here,
    /// once per version of the service, in the background (they may take minutes).
    fn start_post_start_actions(
        &self,
        desired: &[DesiredContainer],
        actual: &[plan::ActualContainer],
    ) {
        for d in desired {
            if d.replica != 1 || d.slot.post_start.is_empty() || d.slot.actions_done {
                continue;
            }
            let Some(c) = actual.iter().find(|a| {
                a.name == d.name
                    && a.spec_hash == d.spec_hash
                    && a.state == RunState::Running
                    && matches!(a.health.as_deref(), None | Some("healthy"))
                    && (d.slot.health_check.is_none() || a.health.is_some())
            }) else {
                continue;
            };
            let key = d.slot.actions_key(&d.network);
            if !self
                .actions_started
                .lock()
                .expect("not poisoned")
                .insert(key.clone())
            {
                continue;
            }
            let running: Vec<String> = actual
                .iter()
                .filter(|a| a.state == RunState::Running)
                .map(|a| a.name.clone())
                .collect();
            let (rt, store, wake, host) = (
                self.rt.clone(),
                self.store.clone(),
                self.wake.clone(),
                self.host.clone(),
            );
            let (stack, service, own) = (d.stack.clone(), d.service.clone(), c.id.clone());
            let actions = d.slot.post_start.clone();
            let events = self.events.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                for a in &actions {
                    let target = match a.target.as_deref() {
                        Some(t) if t != service => {
                            let name = container_name(&stack, t, 1);
                            if running.contains(&name) {
                                name
                            } else {
                                results.push(crate::spec::ActionStatus {
                                    name: a.name.clone(),
                                    ok: false,
                                    exit_code: None,
                                    message: Some(format!(
                                        "target service {t} does not run on this host ({host})"
                                    )),
                                });
                                break;
                            }
                        }
                        _ => own.clone(),
                    };
                    let argv = a.command.as_ref().map(|c| c.argv()).unwrap_or_default();
                    let timeout = Duration::from_secs_f64(a.timeout.unwrap_or(60.0).max(0.1));
                    tracing::info!(stack = %stack, service = %service, action = %a.name, "running post-start action");
                    let r = rt
                        .exec(&target, &argv, a.working_directory.as_deref(), timeout)
                        .await;
                    let result = match r {
                        Ok(o) if o.exit_code == Some(0) => crate::spec::ActionStatus {
                            name: a.name.clone(),
                            ok: true,
                            exit_code: Some(0),
                            message: None,
                        },
                        Ok(o) => crate::spec::ActionStatus {
                            name: a.name.clone(),
                            ok: false,
                            exit_code: o.exit_code,
                            message: Some(if o.timed_out {
                                format!(
                                    "timed out after {}s; output: {}",
                                    timeout.as_secs_f64(),
                                    o.output_tail
                                )
                            } else {
                                format!("output: {}", o.output_tail)
                            }),
                        },
                        Err(e) => crate::spec::ActionStatus {
                            name: a.name.clone(),
                            ok: false,
                            exit_code: None,
                            message: Some(crate::error_chain(&e)),
                        },
                    };
                    let ok = result.ok;
                    results.push(result);
                    if !ok {
                        break;
                    }
                }
                match results.iter().find(|r| !r.ok) {
                    Some(f) => events.record(
                        &stack,
                        Some(&service),
                        "ActionFailed",
                        format!(
                            "action {:?} failed: {}",
                            f.name,
                            f.message.clone().unwrap_or_default()
                        ),
                    ),
                    None => events.record(
                        &stack,
                        Some(&service),
                        "ActionsSucceeded",
                        format!("{} post-start action(s) ran", results.len()),
                    ),
                }
                let record = crate::report::ActionRecord {
                    key: String::new(),
                    host,
                    results,
                };
                write_action_record(&store, &stack, &service, record, key).await;
                wake.notify_one();
            });
        }
    }

    fn forgive_stable(&mut self, actual: &[plan::ActualContainer], now: Instant) {
        self.crash.retain(|name, c| {
            let running = actual
                .iter()
                .any(|a| &a.name == name && a.state == RunState::Running);
            !(running && now.duration_since(c.last_restart) > CRASH_FORGIVE_AFTER)
        });
    }

    /// The agent's own probe result wins for http/tcp checks; Docker's for command checks.
    fn merge_probe_health(&self, actual: &mut [plan::ActualContainer]) {
        for a in actual {
            if let Some(h) = self.probes.health_of(&probe_key(a)) {
                a.health = Some(h.as_str().to_owned());
            }
        }
    }

    fn sync_probes(&mut self, desired: &[DesiredContainer], actual: &[plan::ActualContainer]) {
        let mut targets = Vec::new();
        for d in desired {
            let Some(check) = &d.slot.health_check else {
                continue;
            };
            if !matches!(
                check.kind(),
                Some(HealthCheckKind::Http | HealthCheckKind::Tcp)
            ) {
                continue;
            }
            let port = check
                .port
                .and_then(|p| u16::try_from(p).ok())
                .or_else(|| d.spec.ports.first().map(|p| p.container_port));
            for a in actual {
                if a.name != d.name || a.spec_hash != d.spec_hash || a.state != RunState::Running {
                    continue;
                }
                if let (Some(ip), Some(port)) = (&a.ip, port) {
                    targets.push(Target {
                        key: probe_key(a),
                        ip: ip.clone(),
                        port,
                        check: check.clone(),
                    });
                }
            }
        }
        self.probes.sync(targets, &self.wake);
    }

    /// Write reports that changed (compare-and-swap on what we last saw) and delete those
    /// of slots no longer here. A lost race is fixed by the next pass.
    async fn write_reports(&self, built: Vec<SlotReport>, reports: &Reflector) {
        let existing: BTreeMap<String, Kv> = reports
            .read(|c| c.entries.clone())
            .await
            .unwrap_or_default();
        let mut writes = Vec::new();
        let mut wanted = std::collections::BTreeSet::new();
        for r in built {
            let key = keys::report(&self.host, &r.stack, &slot_key(&r.service, r.replica));
            wanted.insert(key.clone());
            let prev = existing.get(&key);
            if prev.and_then(|kv| serde_json::from_slice::<SlotReport>(&kv.value).ok())
                == Some(r.clone())
            {
                continue;
            }
            writes.push(Write::Put {
                key,
                value: serde_json::to_vec(&r).unwrap_or_default(),
                expect: prev.map_or(Expect::Absent, |kv| Expect::Revision(kv.mod_revision)),
            });
        }
        for (key, kv) in &existing {
            if !wanted.contains(key) {
                writes.push(Write::Delete {
                    key: key.clone(),
                    expect: Expect::Revision(kv.mod_revision),
                });
            }
        }
        let results = futures::stream::iter(writes)
            .map(|w| async move { self.store.write(std::slice::from_ref(&w)).await })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for r in results {
            match r {
                Ok(true) => {}
                Ok(false) => self.wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "writing slot report failed");
                }
            }
        }
    }
}

/// The readable assignments, and the stack ids of those that could not be read.
/// The stack and service a container name belongs to: from the desired container, else
/// from Berth's `<stack>.<service>.<replica>` naming.
fn stack_and_service(
    name: &str,
    by_name: &BTreeMap<String, &DesiredContainer>,
) -> (String, Option<String>) {
    if let Some(d) = by_name.get(name) {
        return (d.stack.clone(), Some(d.service.clone()));
    }
    let mut parts = name.split('.');
    let stack = parts.next().unwrap_or_default().to_owned();
    (stack, parts.next().map(str::to_owned))
}

/// Record the actions' outcome; retried until it lands, since running them again is
/// what must never happen.
async fn write_action_record(
    store: &Store,
    stack: &str,
    service: &str,
    mut record: crate::report::ActionRecord,
    key: String,
) {
    record.key = key;
    let value = serde_json::to_vec(&record).unwrap_or_default();
    let mut policy = retry::Policy::new();
    loop {
        match store
            .put(&keys::actions(&record.host, stack, service), value.clone())
            .await
        {
            Ok(_) => return,
            Err(e) => {
                let d = policy.next_delay();
                tracing::warn!(error = %crate::error_chain(&e), retry_in = ?d, "writing action record failed");
                tokio::time::sleep(d).await;
            }
        }
    }
}

/// Probes belong to one run of a container: a restart starts a fresh probe, so a
/// container restarted for failing its checks gets its start period again.
fn probe_key(a: &plan::ActualContainer) -> String {
    format!("{}@{}", a.id, a.started_at.as_deref().unwrap_or(""))
}

fn decode_assignments(c: &crate::store::Cache) -> (Vec<Assignment>, Vec<String>) {
    let mut ok = Vec::new();
    let mut unreadable = Vec::new();
    for kv in c.entries.values() {
        match serde_json::from_slice::<Assignment>(&kv.value) {
            Ok(a) => ok.push(a),
            Err(e) => {
                tracing::error!(key = %kv.key, error = %e, "unreadable assignment; its containers are left alone");
                unreadable.push(kv.key.rsplit('/').next().unwrap_or_default().to_owned());
            }
        }
    }
    (ok, unreadable)
}

fn update_container_gauge(actual: &[plan::ActualContainer]) {
    let states = [
        RunState::Created,
        RunState::Running,
        RunState::Paused,
        RunState::Restarting,
        RunState::Removing,
        RunState::Exited,
        RunState::Dead,
    ];
    for s in states {
        let n = actual.iter().filter(|a| a.state == s).count();
        metrics::CONTAINERS
            .with_label_values(&[s.as_str()])
            .set(n as i64);
    }
}
