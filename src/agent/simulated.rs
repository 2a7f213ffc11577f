//! A simulated agent, for the scale bench only (`benches/scale.rs`): thousands of hosts
//! on one machine, where no Docker could run thousands of engines. Everything but the
//! engine is the agent's own code: the host registration under its own lease, the watch
//! on `assignments/<host>/` and on its own reports, the planner ([`plan::plan`]), the
//! report fold ([`report::build`]) and the compare-and-swap report writes. The engine is
//! [`SimulatedEngine`], a **test double** for Docker: a container "starts" at once, in
//! memory. `berth agent` never uses this module.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::actual::{ActualContainer, RunState};
use super::desired::{desired_containers, DesiredContainer};
use super::plan::{self, Action};
use super::reconciler::{decode_assignments, write_reports};
use super::report;
use crate::spec::HostRegistration;
use crate::store::{keys, LeasedKey, Reflector, Store};

/// A test double for the Docker engine: the containers of one simulated host, in memory.
/// Every action succeeds at once; nothing runs.
#[derive(Debug, Default)]
pub struct SimulatedEngine {
    containers: BTreeMap<String, ActualContainer>,
    created: u64,
}

impl SimulatedEngine {
    /// The containers as `docker ps -a` would list them.
    pub fn list(&self) -> Vec<ActualContainer> {
        self.containers.values().cloned().collect()
    }

    /// Carry out the planner's actions; `desired` by container name.
    pub fn apply(&mut self, actions: &[Action], desired: &BTreeMap<String, &DesiredContainer>) {
        for a in actions {
            match a {
                Action::Create { name } => self.create(name, desired),
                Action::Replace { old_id, name, .. } => {
                    self.containers.retain(|_, c| &c.id != old_id);
                    self.create(name, desired);
                }
                Action::Start { id, .. } | Action::Restart { id, .. } => {
                    self.set_state(id, RunState::Running)
                }
                Action::Stop { id, .. } => self.set_state(id, RunState::Exited),
                Action::Rename { id, to } => {
                    if let Some(mut c) = self.take(id) {
                        c.name = to.clone();
                        self.containers.insert(to.clone(), c);
                    }
                }
                Action::Remove { id, .. } => {
                    self.take(id);
                }
            }
        }
    }

    fn create(&mut self, name: &str, desired: &BTreeMap<String, &DesiredContainer>) {
        let Some(d) = desired.get(name) else { return };
        self.created += 1;
        let state = if d.run {
            RunState::Running
        } else {
            RunState::Created
        };
        let container = ActualContainer {
            image_id: Some("sha256:simulated".to_owned()),
            ..ActualContainer::made_for(&format!("sim{:012}", self.created), d, state)
        };
        self.containers.insert(name.to_owned(), container);
    }

    fn set_state(&mut self, id: &str, state: RunState) {
        if let Some(c) = self.containers.values_mut().find(|c| c.id == id) {
            c.state = state;
        }
    }

    fn take(&mut self, id: &str) -> Option<ActualContainer> {
        let name = self.containers.values().find(|c| c.id == id)?.name.clone();
        self.containers.remove(&name)
    }
}

/// What the bench reads of one simulated agent.
pub struct SimulatedAgent {
    /// Passes finished.
    pub passes: watch::Receiver<u64>,
    /// Stack -> the spec revision its assignment here had in the last pass.
    pub revisions: watch::Receiver<BTreeMap<String, i64>>,
    /// Times a change of this host's assignments woke it: a change elsewhere must not.
    pub wakes: Arc<AtomicU64>,
}

/// Run one simulated agent for `registration.id` until `cancel`: registered under its
/// own lease, watching its own keys, converging a [`SimulatedEngine`]. `store` may be
/// shared by many simulated agents (one connection for a group of them).
pub fn spawn(
    store: Store,
    registration: HostRegistration,
    lease_ttl: Duration,
    resync: Duration,
    cancel: CancellationToken,
) -> SimulatedAgent {
    let host = registration.id.clone();
    let (passes_tx, passes) = watch::channel(0u64);
    let (revisions_tx, revisions) = watch::channel(BTreeMap::new());
    let wakes = Arc::new(AtomicU64::new(0));
    let counted = wakes.clone();
    tokio::spawn(async move {
        let _lease = LeasedKey::spawn(
            store.clone(),
            keys::host(&host),
            serde_json::to_vec(&registration).unwrap_or_default(),
            lease_ttl,
            cancel.clone(),
        );
        let assignments =
            Reflector::spawn(store.clone(), keys::assignments_of(&host), cancel.clone());
        let reports = Reflector::spawn(store.clone(), keys::reports_of(&host), cancel.clone());
        let wake = Arc::new(Notify::new());
        {
            let mut changes = assignments.subscribe();
            let wake = wake.clone();
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    counted.fetch_add(1, Ordering::Relaxed);
                    wake.notify_one();
                }
            });
        }
        assignments.wait_synced().await;
        reports.wait_synced().await;
        let mut engine = SimulatedEngine::default();
        let terminations = Default::default();
        loop {
            if let Some((assigned, _)) = assignments.read(decode_assignments).await {
                let desired = desired_containers(assigned.iter());
                let by_name: BTreeMap<String, &DesiredContainer> =
                    desired.iter().map(|d| (d.name.clone(), d)).collect();
                // Dependencies still awaited hold a create back, as the agent's gate does.
                let actions: Vec<Action> = plan::plan(&desired, &engine.list())
                    .into_iter()
                    .filter(|a| match a {
                        Action::Create { name } => by_name
                            .get(name)
                            .is_some_and(|d| d.slot.waiting_for.is_empty()),
                        _ => true,
                    })
                    .collect();
                engine.apply(&actions, &by_name);
                let none = BTreeMap::new();
                let built = report::build(&report::Observed {
                    host: &host,
                    desired: &desired,
                    actual: &engine.list(),
                    errors: &none,
                    restarts: &BTreeMap::new(),
                    probe_notes: &BTreeMap::new(),
                    pulling: &BTreeMap::new(),
                    digests: &BTreeMap::new(),
                    terminations: &terminations,
                });
                if write_reports(&store, &host, built, &reports).await {
                    wake.notify_one();
                }
                revisions_tx.send_replace(
                    assigned
                        .iter()
                        .map(|a| (a.stack.clone(), a.spec_revision))
                        .collect(),
                );
                passes_tx.send_modify(|n| *n += 1);
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(resync) => {}
            }
        }
    });
    SimulatedAgent {
        passes,
        revisions,
        wakes,
    }
}
