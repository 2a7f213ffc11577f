//! The host's reconciler: the agent's long-lived state (backoffs, errors, probes, its
//! registration) and the level-triggered pass that uses it. Each pass re-reads the
//! assignments and the containers, plans, gates, acts, and reports every slot; nothing in
//! it branches on what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Notify;

use super::actual::{ActualContainer, RunState};
use super::crash_backoff::CrashBackoff;
use super::desired::{desired_containers, DesiredContainer};
use super::gate::{gate, Holds};
use super::plan::{self, Action};
use super::post_start::PostStart;
use super::report::{self, SlotError};
use super::runtime::{Runtime, RuntimeError};
use super::termination::Terminations;
use super::{execute, secrets};
use crate::assignment::Assignment;
use crate::health::{self, Probes, Target, Via};
use crate::metrics::{self, PassResult};
use crate::report::SlotReport;
use crate::requeue::Requeue;
use crate::spec::{HealthCheckKind, HostRegistration};
use crate::store::{keys, Expect, Kv, LeasedKey, Reflector, Store, Write};
use crate::{events, retry};

pub struct Reconciler {
    pub(super) store: Store,
    pub(super) rt: Runtime,
    pub(super) host: String,
    /// How its probes reach the containers.
    pub(super) vantage: super::Vantage,
    pub(super) probes: Probes,
    pub(super) crash: CrashBackoff,
    pub(super) wake: Arc<Notify>,
    /// Per-container failures, kept until that container's next success.
    pub(super) errors: BTreeMap<String, SlotError>,
    /// Paces retries of actions that failed for a passing reason (a port still held, a
    /// Docker hiccup) so they come back sooner than the resync but not in a hot loop.
    pub(super) action_retry: retry::Policy,
    /// What this host publishes about itself; re-written when it changes.
    pub(super) registration: HostRegistration,
    pub(super) lease: LeasedKey,
    pub(super) events: events::Recorder,
    /// Containers found running at start-up are adopted, not restarted: counted once.
    pub(super) adopted: bool,
    /// Stack networks Docker refused to remove, with its last answer, and the pace of
    /// trying again.
    pub(super) network_errors: BTreeMap<String, String>,
    pub(super) network_retry: retry::Policy,
    pub(super) post_start: PostStart,
    /// Whether the last pass found nothing here (see `AgentHandle::holds_nothing`).
    pub(super) holds_nothing: tokio::sync::watch::Sender<bool>,
    /// Image pulls: under way, their outcomes, their backoff.
    pub(super) pulls: super::images::Pulls,
    /// The last pull failure of each image, so each distinct one is an event once.
    pub(super) pull_failures: BTreeMap<String, String>,
    /// A Docker config file whose `auths` are credentials for pulls.
    pub(super) docker_config: Option<std::path::PathBuf>,
    /// Where secrets and registry logins are read.
    pub(super) secret_source: super::secrets::SecretSource,
    /// How each slot's container last ended on its own.
    pub(super) terminations: Terminations,
    /// Deleted stacks whose volumes are gone, by the time of their tombstone.
    pub(super) volumes_swept: BTreeMap<String, u64>,
}

impl Reconciler {
    /// One level-triggered pass, with its metrics.
    #[tracing::instrument(skip_all, fields(host = %self.host))]
    pub async fn reconcile(
        &mut self,
        assignments: &Reflector,
        reports: &Reflector,
    ) -> Result<Requeue, RuntimeError> {
        let started = Instant::now();
        let result = self.pass(assignments, reports).await;
        let outcome = match &result {
            Ok(Requeue::After(_)) => PassResult::Requeue,
            Ok(Requeue::AtResync) => PassResult::Success,
            Err(e) => PassResult::Error {
                reason: e.metric_label(),
            },
        };
        metrics::observe_reconcile(metrics::Component::Agent, started, outcome);
        result
    }

    async fn pass(
        &mut self,
        assignments: &Reflector,
        reports: &Reflector,
    ) -> Result<Requeue, RuntimeError> {
        // Never act on a partial view: without a complete list of assignments, do nothing.
        let Some((assigned, unreadable)) = assignments.read(decode_assignments).await else {
            return Ok(Requeue::After(Duration::from_millis(200)));
        };
        let desired = desired_containers(assigned.iter());
        // Before anything is created: a host being removed is not forgotten while a
        // pass that saw an assignment is under way.
        if !desired.is_empty() || !unreadable.is_empty() {
            self.holds_nothing.send_replace(false);
        }
        let by_name: BTreeMap<String, &DesiredContainer> =
            desired.iter().map(|d| (d.name.clone(), d)).collect();

        // A failed list returns an error, never an empty list: nothing gets removed.
        let (mut actual, mut used_ports) = self.rt.list_host(&self.host).await?;
        let now = Instant::now();
        self.crash.forgive(
            now,
            |name| {
                actual.iter().any(|a| {
                    a.name == name
                        && (a.state == RunState::Running
                            || by_name
                                .get(name)
                                .is_some_and(|d| plan::finished(d, a).is_some()))
                })
            },
            |name| by_name.contains_key(name),
        );
        self.merge_probe_health(&mut actual);
        self.count_adopted(&actual, &by_name);
        let previous = previous_reports(reports).await;
        self.record_exits(&desired, &actual, &previous).await;

        let gated = gate(
            plan::plan(&desired, &actual),
            &Holds {
                desired: &desired,
                unreadable: &unreadable,
                allow_bind_prefixes: &self.registration.allow_bind_prefixes,
                errors: &self.errors,
                crash: &self.crash,
                now,
            },
        );
        self.errors.extend(gated.refused);
        let mut requeue = gated.requeue;
        // Nothing is created, and nothing stopped for a replacement, before its image is
        // here as its pull policy wants it.
        let admitted = self.admit_images(gated.actions, &by_name, now).await;
        requeue = requeue.min(admitted.requeue);
        let mut actions = admitted.actions;
        let mut restarts = previous_restarts(&previous, &desired);

        // Secrets go in only now, into copies handed to Docker.
        let mut resolved: BTreeMap<String, DesiredContainer> = BTreeMap::new();
        let mut unresolved: Vec<String> = Vec::new();
        for a in &actions {
            let (Action::Create { name } | Action::Replace { name, .. }) = a else {
                continue;
            };
            let Some(d) = by_name.get(name) else { continue };
            match secrets::resolve(&self.store, self.secret_source, &self.host, d).await {
                Ok(Some(r)) => {
                    for c in &r.compacted {
                        let message = c.message();
                        tracing::warn!(container = %name, "{message}");
                        self.events.record(
                            &d.id.stack,
                            Some(&d.id.service),
                            "SecretRevisionCompacted",
                            message,
                        );
                    }
                    resolved.insert(name.clone(), r.container);
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
            requeue = requeue.min(Requeue::After(self.action_retry.next_delay()));
        }
        let mut exec_view = by_name.clone();
        for (name, d) in &resolved {
            exec_view.insert(name.clone(), d);
        }

        if !actions.is_empty() {
            let run = Run {
                actions,
                by_name: &by_name,
                exec_view: &exec_view,
                assigned: &assigned,
                now,
            };
            requeue = requeue.min(self.execute(run, &mut restarts).await);
            (actual, used_ports) = self.rt.list_host(&self.host).await?;
            self.merge_probe_health(&mut actual);
            // A container this pass stopped (`desiredState: stopped`) is marked seen now,
            // before a change back to running could make it look like a crash.
            self.record_exits(&desired, &actual, &previous).await;
        }
        if let Some(d) = self.sweep_networks(&desired, &actual).await {
            requeue = requeue.min(Requeue::After(d));
        }
        self.sweep_deleted_volumes(&assigned, &actual).await;
        // Before the reports go: their removal is what wakes the controller.
        self.holds_nothing.send_if_modified(|held| {
            let now = desired.is_empty() && unreadable.is_empty() && actual.is_empty();
            std::mem::replace(held, now) != now
        });
        // Forget errors of containers no longer wanted here.
        self.errors.retain(|name, _| by_name.contains_key(name));

        // Ports taken by containers Berth does not manage change behind our back.
        if used_ports != self.registration.used_ports {
            self.registration.used_ports = used_ports;
            self.lease
                .update(serde_json::to_vec(&self.registration).unwrap_or_default());
        }
        self.sync_probes(&desired, &actual);
        update_container_gauge(&actual);
        let notes: BTreeMap<String, String> = actual
            .iter()
            .filter_map(|a| Some((a.name.clone(), self.probes.note_of(&probe_key(a))?)))
            .collect();
        let mut errors = self.errors.clone();
        errors.extend(admitted.errors);
        let image_ids: BTreeSet<String> =
            actual.iter().filter_map(|a| a.image_id.clone()).collect();
        let digests = self.rt.repo_digests(&image_ids).await;
        let built = report::build(&report::Observed {
            host: &self.host,
            desired: &desired,
            actual: &actual,
            errors: &errors,
            restarts: &restarts,
            probe_notes: &notes,
            pulling: &admitted.pulling,
            digests: &digests,
            terminations: &self.terminations,
        });
        if write_reports(&self.store, &self.host, built, reports).await {
            self.wake.notify_one();
        }
        self.post_start.start_due(&desired, &actual);
        Ok(requeue)
    }

    /// Containers found running with their current spec when the agent starts are
    /// adopted as they are; counted on the first pass only.
    fn count_adopted(
        &mut self,
        actual: &[ActualContainer],
        by_name: &BTreeMap<String, &DesiredContainer>,
    ) {
        if self.adopted {
            return;
        }
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
            .with_label_values(&[metrics::ADOPT])
            .inc_by(adopted as u64);
        if adopted > 0 {
            tracing::info!(containers = adopted, "adopted running containers");
        }
    }

    /// Walk the gated actions against Docker and fold the outcome into the reconciler's
    /// state: errors, restart counts and backoffs, events, volumes of deleted stacks.
    /// Returns how soon a failed action should be tried again.
    async fn execute(&mut self, run: Run<'_>, restarts: &mut BTreeMap<String, u32>) -> Requeue {
        let touched: Vec<String> = run
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { name }
                | Action::Replace { name, .. }
                | Action::Restart { name, .. }
                | Action::Start { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let outcome = execute::execute(
            &self.rt,
            &self.host,
            run.actions,
            run.exec_view,
            run.assigned,
        )
        .await;
        for name in touched {
            if !outcome.errors.contains_key(&name) {
                self.errors.remove(&name);
            }
        }
        for name in &outcome.restarted {
            *restarts.entry(name.clone()).or_default() += 1;
            metrics::CONTAINER_RESTARTS.inc();
            self.crash.restarted(name, run.now);
        }
        self.record_liveness_kills(outcome.liveness_kills, run.by_name)
            .await;
        for a in &outcome.done {
            let (reason, message, name) = event_of(a, &self.terminations);
            let (stack, service) = stack_and_service(name, run.by_name);
            self.events
                .record(&stack, service.as_deref(), reason, message);
        }
        for (name, e) in &outcome.errors {
            // Once per distinct failure, not on every retry.
            if self.errors.get(name).map(|old| &old.message) != Some(&e.message) {
                let (stack, service) = stack_and_service(name, run.by_name);
                self.events
                    .record(&stack, service.as_deref(), "Failed", e.message.clone());
            }
        }
        let requeue = if outcome.errors.values().any(|e| !e.permanent) {
            Requeue::After(self.action_retry.next_delay())
        } else {
            self.action_retry.reset();
            Requeue::AtResync
        };
        self.errors.extend(outcome.errors);
        requeue
    }

    /// Level-triggered network cleanup: every pass removes the networks this host made for
    /// stacks with no container here, so a removal Docker refused once (it can keep a
    /// stale endpoint after a crash) is tried again with backoff instead of forgotten.
    /// Returns how soon to try again.
    async fn sweep_networks(
        &mut self,
        desired: &[DesiredContainer],
        actual: &[ActualContainer],
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

    /// Level-triggered: a deleted stack (its assignment here a tombstone) with no
    /// container left here loses the volumes it asked to lose (`removeVolumesOnDelete`),
    /// once per tombstone, tried again on the next pass if Docker refused. A stack that
    /// merely moved elsewhere has no tombstone here, and one whose tombstone expired
    /// while the agent was away keeps its data.
    async fn sweep_deleted_volumes(&mut self, assigned: &[Assignment], actual: &[ActualContainer]) {
        let tombstones: BTreeMap<&str, u64> = assigned
            .iter()
            .filter_map(|a| Some((a.stack.as_str(), a.deleted?.at_ms)))
            .collect();
        self.volumes_swept
            .retain(|stack, at| tombstones.get(stack.as_str()) == Some(at));
        for (stack, at_ms) in tombstones {
            if self.volumes_swept.contains_key(stack)
                || actual.iter().any(|c| c.slot.stack == stack)
            {
                continue;
            }
            match self.rt.remove_stack_volumes(stack).await {
                Ok(removed) => {
                    if !removed.is_empty() {
                        tracing::info!(stack, volumes = ?removed, "removed volumes of deleted stack (removeVolumesOnDelete)");
                    }
                    self.volumes_swept.insert(stack.to_owned(), at_ms);
                }
                Err(e) => {
                    tracing::warn!(stack, error = %crate::error_chain(&e), "removing volumes of a deleted stack failed; trying again")
                }
            }
        }
    }

    /// Say in the host registration whether this host can run containers now.
    pub fn set_degraded(&mut self, why: Option<String>) {
        if self.registration.degraded.is_some() == why.is_some() {
            return;
        }
        self.registration.degraded = why;
        self.lease
            .update(serde_json::to_vec(&self.registration).unwrap_or_default());
    }

    /// The agent's own probe result wins for http/tcp checks; Docker's for command checks.
    fn merge_probe_health(&self, actual: &mut [ActualContainer]) {
        for a in actual {
            if let Some(h) = self.probes.health_of(&probe_key(a)) {
                a.health = Some(h);
            }
        }
    }

    fn sync_probes(&mut self, desired: &[DesiredContainer], actual: &[ActualContainer]) {
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
                .or_else(|| d.spec().ports.first().map(|p| p.container_port));
            for a in actual {
                // By slot, not name: a replacement started first runs under a temporary
                // name, and must turn healthy before it may take over.
                if a.slot != d.id || a.spec_hash != d.spec_hash || a.state != RunState::Running {
                    continue;
                }
                let Some(port) = port else { continue };
                let via = match self.vantage {
                    super::Vantage::Local => match &a.ip {
                        Some(ip) => Via::Address {
                            ip: ip.clone(),
                            port,
                        },
                        None => continue,
                    },
                    super::Vantage::Remote => Via::Remote {
                        published: d
                            .spec()
                            .ports
                            .iter()
                            .find(|p| p.container_port == port && p.protocol == "tcp")
                            .and_then(|p| p.host_port)
                            .map(|hp| (self.registration.address.clone(), hp)),
                        port,
                        exec: self.exec_in(&a.id),
                    },
                };
                targets.push(Target {
                    key: probe_key(a),
                    via,
                    check: check.clone(),
                });
            }
        }
        self.probes.sync(targets, &self.wake);
    }

    /// Commands run inside container `id`, for probes that cannot reach it otherwise.
    fn exec_in(&self, id: &str) -> health::Exec {
        let (rt, id) = (self.rt.clone(), id.to_owned());
        Arc::new(move |argv, timeout| {
            let (rt, id) = (rt.clone(), id.clone());
            Box::pin(async move {
                rt.exec(&id, &argv, None, timeout)
                    .await
                    .map(|o| health::ExecResult {
                        exit_code: o.exit_code,
                        output: o.output_tail,
                    })
                    .map_err(|e| crate::error_chain(&e))
            })
        })
    }
}

/// Write the reports that changed (compare-and-swap on what was last seen) and delete
/// those of slots no longer here. Returns whether a write lost a race: the next pass,
/// which the caller brings on, fixes it.
pub(super) async fn write_reports(
    store: &Store,
    host: &str,
    built: Vec<SlotReport>,
    reports: &Reflector,
) -> bool {
    let existing: BTreeMap<String, Kv> = reports
        .read(|c| c.entries.clone())
        .await
        .unwrap_or_default();
    let mut writes = Vec::new();
    let mut wanted = BTreeSet::new();
    for r in built {
        let key = keys::report(
            host,
            &r.stack,
            &crate::slot::slot_key(&r.service, r.replica),
        );
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
        .map(|w| async move { store.write(std::slice::from_ref(&w)).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut lost = false;
    for r in results {
        match r {
            Ok(true) => {}
            Ok(false) => lost = true,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "writing slot report failed");
            }
        }
    }
    lost
}

/// The actions one pass hands to Docker, and what they refer to.
struct Run<'a> {
    actions: Vec<Action>,
    by_name: &'a BTreeMap<String, &'a DesiredContainer>,
    /// `by_name` with secrets filled in: only Docker sees it.
    exec_view: &'a BTreeMap<String, &'a DesiredContainer>,
    assigned: &'a [Assignment],
    now: Instant,
}

/// This host's last reports, by container name.
async fn previous_reports(reports: &Reflector) -> BTreeMap<String, SlotReport> {
    reports
        .read(|c| {
            c.entries
                .values()
                .filter_map(|kv| serde_json::from_slice::<SlotReport>(&kv.value).ok())
                .map(|r| {
                    (
                        crate::slot::container_name(&r.stack, &r.service, r.replica),
                        r,
                    )
                })
                .collect()
        })
        .await
        .unwrap_or_default()
}

/// Restart counts carry over from this host's last reports while the spec is the same.
fn previous_restarts(
    previous: &BTreeMap<String, SlotReport>,
    desired: &[DesiredContainer],
) -> BTreeMap<String, u32> {
    desired
        .iter()
        .map(|d| {
            let prev = previous
                .get(&d.name)
                .filter(|r| r.spec_hash == d.spec_hash)
                .map(|r| r.restarts)
                .unwrap_or(0);
            (d.name.clone(), prev)
        })
        .collect()
}

/// The event an action that succeeded records: reason, message, and the container. A
/// restart says how the run before it ended.
fn event_of<'a>(a: &'a Action, terminations: &Terminations) -> (&'static str, String, &'a str) {
    let ended = |name: &str| {
        terminations
            .last(name)
            .map(|t| format!(" ({})", t.summary()))
            .unwrap_or_default()
    };
    match a {
        Action::Create { name } => ("Created", "container created and started".to_owned(), name),
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
            format!("container had exited{}; started again", ended(name)),
            name,
        ),
        Action::Restart { name, .. } => (
            "Unhealthy",
            format!("container stayed unhealthy; restarted{}", ended(name)),
            name,
        ),
        Action::Replace {
            name,
            start_first: true,
            ..
        } => (
            "ReplacementStarted",
            "spec changed; new container started beside the old one, which serves until the new one is ready".to_owned(),
            name,
        ),
        Action::Replace { name, .. } => (
            "Replaced",
            "spec changed; replaced (old container stopped first)".to_owned(),
            name,
        ),
        Action::Remove {
            name,
            reason: plan::RemoveReason::Replaced,
            ..
        } => (
            "Replaced",
            "spec changed; replaced (new container started first, old one removed once the new one was ready)".to_owned(),
            name,
        ),
        Action::Stop { name, .. } => ("Stopped", "stopped as desiredState asks".to_owned(), name),
        Action::Rename { to, .. } => (
            "Renamed",
            "renamed to its slot's name (a replacement taking over, or a rename by hand put back)".to_owned(),
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
    }
}

/// The stack and service a container name belongs to: from the desired container, else
/// from Berth's `<stack>.<service>.<replica>` naming.
fn stack_and_service(
    name: &str,
    by_name: &BTreeMap<String, &DesiredContainer>,
) -> (String, Option<String>) {
    if let Some(d) = by_name.get(name) {
        return (d.id.stack.clone(), Some(d.id.service.clone()));
    }
    let mut parts = name.split('.');
    let stack = parts.next().unwrap_or_default().to_owned();
    (stack, parts.next().map(str::to_owned))
}

/// Probes belong to one run of a container: a restart starts a fresh probe, so a
/// container restarted for failing its checks gets its start period again.
fn probe_key(a: &ActualContainer) -> String {
    format!("{}@{}", a.id, a.started_at.as_deref().unwrap_or(""))
}

/// The readable assignments, and the stack ids of those that could not be read.
pub(super) fn decode_assignments(c: &crate::store::Cache) -> (Vec<Assignment>, Vec<String>) {
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

fn update_container_gauge(actual: &[ActualContainer]) {
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
