//! Walks a plan's actions against Docker. Thin on purpose: every decision was made by
//! [`plan`](super::plan); this only orders the calls and records what failed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use tracing::Instrument;

use super::actual::Ended;
use super::desired::DesiredContainer;
use super::plan::{Action, RemoveReason};
use super::report::SlotError;
use super::runtime::{CreateRequest, Runtime, RuntimeError};
use super::termination::TAIL_LINES;
use crate::assignment::Assignment;
use crate::metrics;

/// How long a container gets to exit on SIGTERM before Docker kills it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Outcome {
    /// Failures by container name.
    pub errors: BTreeMap<String, SlotError>,
    /// Names of containers restarted after exiting.
    pub restarted: Vec<String>,
    /// Actions that succeeded, for the event log.
    pub done: Vec<Action>,
    /// Runs the agent ended for failing their liveness check, as they ended.
    pub liveness_kills: Vec<LivenessKill>,
}

/// A run the agent stopped (and started again) for failing its liveness check.
#[derive(Debug)]
pub struct LivenessKill {
    pub name: String,
    pub container: String,
    pub ended: Ended,
}

pub async fn execute(
    rt: &Runtime,
    host: &str,
    actions: Vec<Action>,
    desired: &BTreeMap<String, &DesiredContainer>,
    assignments: &[Assignment],
) -> Outcome {
    let mut out = Outcome::default();
    if actions.is_empty() {
        return out;
    }

    // Networks and volumes first: every create below needs them.
    let creating: BTreeSet<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Create { name } | Action::Replace { name, .. } => {
                desired.get(name).map(|d| d.id.stack.as_str())
            }
            _ => None,
        })
        .collect();
    let mut infra_failed: BTreeMap<&str, SlotError> = BTreeMap::new();
    for a in assignments
        .iter()
        .filter(|a| creating.contains(a.stack.as_str()))
    {
        if let Err(e) = prepare_stack(rt, host, a).await {
            infra_failed.insert(a.stack.as_str(), slot_error(&e));
        }
    }

    // Removals run together; they free names and host ports the creates need.
    let (removals, rest): (Vec<Action>, Vec<Action>) = actions
        .into_iter()
        .partition(|a| matches!(a, Action::Remove { .. }));
    // Dependents go before what they depend on: one wave per level, deepest first.
    let mut removal_waves: BTreeMap<std::cmp::Reverse<u32>, Vec<&Action>> = BTreeMap::new();
    for a in &removals {
        let order = match a {
            Action::Remove { order, .. } => *order,
            _ => 0,
        };
        removal_waves
            .entry(std::cmp::Reverse(order))
            .or_default()
            .push(a);
    }
    for wave in removal_waves.into_values() {
        let results = join_all(wave.iter().map(|a| run(rt, host, a, desired))).await;
        for (a, r) in wave.into_iter().zip(results) {
            record(&mut out, a, r);
        }
    }
    // A stack gone from this host takes its network with it (its volumes stay unless it
    // was deleted and asked for it: the reconciler's volume sweep). At once, so a teardown ends when its network is gone; what
    // Docker refuses here, the pass's network sweep tries again.
    let gone: BTreeSet<&str> = removals
        .iter()
        .filter_map(|a| match a {
            Action::Remove { stack, .. } => Some(stack.as_str()),
            _ => None,
        })
        .filter(|s| !desired.values().any(|d| d.id.stack == *s))
        .collect();
    for stack in gone {
        if let Err(e) = rt.remove_stack_networks(stack).await {
            tracing::warn!(stack, error = %crate::error_chain(&e), "removing stack network failed");
        }
    }

    // Then one wave per start-order level, concurrent within the wave, so dependencies
    // are created before their dependents.
    let mut waves: BTreeMap<u32, Vec<Action>> = BTreeMap::new();
    for a in rest {
        let order = target_name(&a)
            .and_then(|n| desired.get(n))
            .map(|d| d.order())
            .unwrap_or(0);
        waves.entry(order).or_default().push(a);
    }
    for (_, wave) in waves {
        let runnable: Vec<&Action> = wave
            .iter()
            .filter(|a| {
                let stack = target_name(a)
                    .and_then(|n| desired.get(n))
                    .map(|d| d.id.stack.as_str());
                !matches!(stack, Some(s) if infra_failed.contains_key(s))
            })
            .collect();
        for a in wave.iter().filter(|a| !runnable.contains(a)) {
            if let Some(name) = target_name(a) {
                let stack = desired.get(name).map(|d| d.id.stack.as_str()).unwrap_or("");
                if let Some(e) = infra_failed.get(stack) {
                    out.errors.insert(name.to_owned(), e.clone());
                }
            }
        }
        let results = join_all(runnable.iter().map(|a| run(rt, host, a, desired))).await;
        for (a, r) in runnable.into_iter().zip(results) {
            record(&mut out, a, r);
        }
    }
    out
}

fn record(out: &mut Outcome, a: &Action, r: Result<Option<Ended>, RuntimeError>) {
    let name = target_name(a).unwrap_or("").to_owned();
    match r {
        Ok(ended) => {
            if let (Action::Restart { id, .. }, Some(ended)) = (a, ended) {
                out.liveness_kills.push(LivenessKill {
                    name: name.clone(),
                    container: id.clone(),
                    ended,
                });
            }
            metrics::CONTAINER_ACTIONS
                .with_label_values(&[a.metric_label()])
                .inc();
            if let Action::Remove {
                reason: RemoveReason::Orphan,
                name,
                ..
            } = a
            {
                metrics::ORPHANS_REMOVED.inc();
                tracing::info!(container = %name, "removed orphan container");
            }
            if a.is_restart() {
                out.restarted.push(name);
            }
            out.done.push(a.clone());
        }
        Err(e) => {
            tracing::warn!(container = %name, action = a.metric_label(), error = %crate::error_chain(&e), "container action failed");
            metrics::RECONCILE_ERRORS
                .with_label_values(&["agent", e.metric_label()])
                .inc();
            out.errors.insert(name, slot_error(&e));
        }
    }
}

/// The desired container an action is about (removals have none).
fn target_name(a: &Action) -> Option<&str> {
    match a {
        Action::Create { name }
        | Action::Start { name, .. }
        | Action::Restart { name, .. }
        | Action::Stop { name, .. }
        | Action::Replace { name, .. } => Some(name),
        Action::Rename { to, .. } => Some(to),
        Action::Remove { name, .. } => Some(name),
    }
}

async fn run(
    rt: &Runtime,
    host: &str,
    action: &Action,
    desired: &BTreeMap<String, &DesiredContainer>,
) -> Result<Option<Ended>, RuntimeError> {
    let name = target_name(action).unwrap_or_default();
    let (stack, service) = desired
        .get(name)
        .map(|d| (d.id.stack.as_str(), d.id.service.as_str()))
        .unwrap_or_else(|| {
            let mut p = name.split('.');
            (p.next().unwrap_or_default(), p.next().unwrap_or_default())
        });
    let span = tracing::info_span!(
        "action",
        stack,
        service,
        host,
        action = action.metric_label()
    );
    run_in_span(rt, host, action, desired, name)
        .instrument(span)
        .await
}

/// The action's calls; a liveness restart also says how the run it stopped ended.
async fn run_in_span(
    rt: &Runtime,
    host: &str,
    action: &Action,
    desired: &BTreeMap<String, &DesiredContainer>,
    name: &str,
) -> Result<Option<Ended>, RuntimeError> {
    tracing::info!(container = %name, "container action");
    let done = match action {
        Action::Create { name } => match desired.get(name) {
            Some(d) => create_and_start(rt, host, d).await,
            None => Ok(()),
        },
        Action::Start { id, .. } => rt.start(id).await,
        Action::Stop { id, .. } => rt.stop(id, STOP_GRACE).await,
        Action::Restart { id, .. } => return rt.restart(id, STOP_GRACE, TAIL_LINES).await,
        Action::Replace {
            old_id,
            name,
            start_first,
        } => {
            let Some(d) = desired.get(name) else {
                return Ok(None);
            };
            if *start_first {
                // Only the new container, under a temporary name beside the old one. The
                // old one keeps serving until a later pass finds the new one ready
                // (running, and healthy when it has a check): the plan then removes the
                // old one and gives the new one its name back.
                let temp = format!("{name}.{}", &d.spec_hash[..8.min(d.spec_hash.len())]);
                create_and_start_as(rt, host, d, &temp).await
            } else {
                // They would clash on a host port or a data directory: stop first, but
                // only once the new image is known to be there, so a spec naming an
                // image that cannot be had leaves the old container running.
                let image = &d.spec().image;
                if rt.image(image).await?.is_none() {
                    return Err(RuntimeError::ImageAbsent {
                        image: image.clone(),
                    });
                }
                rt.stop(old_id, STOP_GRACE).await?;
                rt.remove(old_id).await?;
                create_and_start(rt, host, d).await
            }
        }
        Action::Rename { id, to } => rt.rename(id, to).await,
        Action::Remove { id, .. } => {
            rt.stop(id, STOP_GRACE).await?;
            rt.remove(id).await
        }
    };
    done.map(|()| None)
}

async fn create_and_start(
    rt: &Runtime,
    host: &str,
    d: &DesiredContainer,
) -> Result<(), RuntimeError> {
    create_and_start_as(rt, host, d, &d.name).await
}

async fn create_and_start_as(
    rt: &Runtime,
    host: &str,
    d: &DesiredContainer,
    name: &str,
) -> Result<(), RuntimeError> {
    let id = rt
        .create(CreateRequest {
            name,
            spec: d.spec(),
            labels: d.labels(host),
            network: &d.network,
        })
        .await?;
    if d.run {
        rt.start(&id).await?;
    }
    Ok(())
}

async fn prepare_stack(rt: &Runtime, host: &str, a: &Assignment) -> Result<(), RuntimeError> {
    rt.ensure_network(
        &a.network.name,
        &a.network.driver,
        &a.stack,
        host,
        a.network.create,
    )
    .await?;
    for v in &a.volumes {
        rt.ensure_volume(v, &a.stack).await?;
    }
    Ok(())
}

fn slot_error(e: &RuntimeError) -> SlotError {
    let message = if e.is_name_conflict() {
        // Managed containers are found by label, so a name clash means someone else's
        // container: never removed, only reported.
        format!(
            "the container name is taken by a container Berth does not manage on this host; rename or remove it ({})",
            crate::error_chain(e)
        )
    } else {
        crate::error_chain(e)
    };
    SlotError {
        message,
        permanent: !e.is_transient(),
    }
}
