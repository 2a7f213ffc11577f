//! The per-host agent: registers its host under a lease, watches the host's assignments,
//! and converges the Docker engine to them, level-triggered: every pass re-reads the
//! assignments and the containers, plans, acts, and reports each slot back to etcd.
//! Docker events and probe results only make the next pass come sooner; a periodic resync
//! makes it come anyway.

pub mod actual;
mod crash_backoff;
mod desired;
mod execute;
mod gate;
pub mod images;
mod inspected;
pub mod labels;
mod last_exit;
mod logs;
pub mod plan;
mod post_start;
mod pull;
mod reconciler;
mod report;
pub mod runtime;
mod secrets;
pub mod simulated;
mod termination;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

pub use desired::{desired_containers, spec_hash, DesiredContainer};
pub use report::SlotError;
pub use runtime::{Runtime, RuntimeError};

use self::crash_backoff::CrashBackoff;
use self::post_start::PostStart;
use self::reconciler::Reconciler;
pub use self::secrets::SecretSource;
use crate::health::Probes;
use crate::serve::ReadyCheck;
use crate::spec::HostRegistration;
use crate::store::{keys, LeasedKey, Reflector, Store};
use crate::{events, retry};

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
    /// Where this reconciler runs relative to the engine, which decides how it probes.
    pub vantage: Vantage,
    /// The agent API (container logs for `berth logs`), if served.
    pub api: Option<crate::api::server::ApiConfig>,
    /// A Docker config file whose `auths` image pulls use; a login in etcd at
    /// `registries/<registry>` wins over it.
    pub docker_config: Option<std::path::PathBuf>,
    /// Where secrets and registry logins are read: an agent reads its host's copies.
    pub secret_source: SecretSource,
}

/// Where a reconciler runs relative to the Docker engine it drives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Vantage {
    /// On the host (an agent): the containers' addresses on their networks are in reach.
    #[default]
    Local,
    /// Away from it (the controller driving an agentless host): only the host's address
    /// is, so `http`/`tcp` checks go through the published port or inside the container.
    Remote,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("host id {0:?} is not valid: use letters, digits, '.', '_' or '-' (1-253 characters)")]
    InvalidHostId(String),
    #[error("{0}")]
    Api(String),
}

/// A running agent: its readiness, and a handle to wait for it to stop.
pub struct AgentHandle {
    pub ready: ReadyCheck,
    /// Passes this agent has finished, counted from 0: a pass that began after a change
    /// has seen it once the count has gone up twice, so whoever needs to know "had it
    /// the chance to act?" waits on this rather than on a clock.
    pub passes: watch::Receiver<u64>,
    pub done: tokio::task::JoinHandle<()>,
    /// True once a pass found nothing assigned to the host and no Berth container of its
    /// on the engine; false from the moment a pass sees an assignment. A host being
    /// removed is forgotten only then.
    pub holds_nothing: watch::Receiver<bool>,
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
    if let Some(why) = cfg.api.as_ref().and_then(|a| a.refusal()) {
        return Err(AgentError::Api(why));
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
    let (passes_tx, passes) = watch::channel(0);
    let (holds_tx, holds_nothing) = watch::channel(false);
    let done = tokio::spawn(run(
        store,
        cfg,
        assignments,
        docker_ok,
        passes_tx,
        holds_tx,
        cancel,
    ));
    Ok(AgentHandle {
        ready,
        passes,
        done,
        holds_nothing,
    })
}

async fn run(
    store: Store,
    cfg: AgentConfig,
    assignments: Reflector,
    docker_ok: Arc<AtomicBool>,
    passes: watch::Sender<u64>,
    holds_nothing: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let host = cfg.host_id.clone();
    let rt = tokio::select! {
        _ = cancel.cancelled() => return,
        rt = connect_docker(&cfg.docker_host, &cfg.docker_tls) => rt,
    };
    docker_ok.store(true, Ordering::Relaxed);
    let facts = rt.facts().await.ok();
    let api_address = match &cfg.api {
        Some(api) => {
            let source = logs::source(rt.clone(), host.clone());
            match crate::api::server::spawn(api, source, cancel.clone()).await {
                Ok(bound) if bound.ip().is_unspecified() => {
                    Some(format!("{}:{}", cfg.address, bound.port()))
                }
                Ok(bound) => Some(bound.to_string()),
                Err(e) => {
                    tracing::error!(error = %e, "the agent API could not start; berth logs cannot read this host");
                    None
                }
            }
        }
        None => None,
    };
    let registration = HostRegistration {
        id: host.clone(),
        address: cfg.address.clone(),
        datacenter: cfg.datacenter.clone(),
        labels: cfg.labels.clone(),
        cpus: facts.as_ref().map(|f| f.cpus).unwrap_or(0.0),
        memory_mb: facts.as_ref().map(|f| f.memory_mb).unwrap_or(0),
        agent_version: Some(crate::VERSION.to_owned()),
        docker_version: facts.as_ref().map(|f| f.version.clone()),
        used_ports: rt
            .list_host(&host)
            .await
            .map(|(_, ports)| ports)
            .unwrap_or_default(),
        degraded: None,
        allow_bind_prefixes: cfg.allow_bind_prefixes.clone(),
        api_tls: api_address.is_some() && cfg.api.as_ref().is_some_and(|a| a.tls.is_some()),
        api_address,
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
    let events = events::Recorder::new(store.clone(), "agent", Some(cfg.host_id.clone()));
    let mut reconciler = Reconciler {
        store: store.clone(),
        post_start: PostStart::new(
            rt.clone(),
            store.clone(),
            host.clone(),
            wake.clone(),
            events.clone(),
        ),
        rt,
        host,
        vantage: cfg.vantage,
        probes: Probes::default(),
        crash: CrashBackoff::default(),
        wake: wake.clone(),
        errors: BTreeMap::new(),
        action_retry: retry::Policy::with(Duration::from_millis(500), Duration::from_secs(30)),
        registration,
        lease,
        adopted: false,
        network_errors: BTreeMap::new(),
        network_retry: retry::Policy::with(Duration::from_secs(1), Duration::from_secs(60)),
        events,
        holds_nothing,
        pulls: Default::default(),
        pull_failures: BTreeMap::new(),
        docker_config: cfg.docker_config.clone(),
        secret_source: cfg.secret_source,
        terminations: Default::default(),
        volumes_swept: Default::default(),
    };
    // Paces passes that fail (Docker unreachable) apart.
    let mut policy = retry::Policy::new();
    assignments.wait_synced().await;
    reports.wait_synced().await;
    loop {
        let result = reconciler.reconcile(&assignments, &reports).await;
        passes.send_modify(|n| *n += 1);
        let next = match result {
            Ok(requeue) => {
                docker_ok.store(true, Ordering::Relaxed);
                reconciler.set_degraded(None);
                policy.reset();
                requeue.delay(cfg.resync_interval)
            }
            Err(e) => {
                docker_ok.store(false, Ordering::Relaxed);
                reconciler.set_degraded(Some(format!("docker: {}", crate::error_chain(&e))));
                let delay = policy.next_delay();
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
