//! A service's post-start actions (`potentialAction`s): run once its first replica runs
//! healthy on this host, once per version of the service, in the background (they may
//! take minutes), and their outcome recorded in etcd for the controller.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::actual::{ActualContainer, RunState};
use super::desired::DesiredContainer;
use super::runtime::Runtime;
use crate::health::Health;
use crate::report::ActionRecord;
use crate::slot::container_name;
use crate::spec::{ActionStatus, PotentialAction, Seconds};
use crate::store::{keys, Store};
use crate::{events, retry};

/// Starts the actions that are due; remembers what it started.
pub struct PostStart {
    pub rt: Runtime,
    pub store: Store,
    pub host: String,
    /// Woken when a record is written, so the next pass reports it.
    pub wake: Arc<Notify>,
    pub events: events::Recorder,
    /// Runs started by this agent, by actions key: never run twice, even before the
    /// controller has seen their record.
    started: Arc<Mutex<HashSet<String>>>,
}

impl PostStart {
    pub fn new(
        rt: Runtime,
        store: Store,
        host: String,
        wake: Arc<Notify>,
        events: events::Recorder,
    ) -> PostStart {
        PostStart {
            rt,
            store,
            host,
            wake,
            events,
            started: Default::default(),
        }
    }

    /// Start the actions of every service whose first replica now runs healthy here with
    /// the current spec, and whose actions have not run for this version.
    pub fn start_due(&self, desired: &[DesiredContainer], actual: &[ActualContainer]) {
        for d in desired {
            if d.id.replica != 1 || d.slot.post_start.is_empty() || d.slot.actions_done {
                continue;
            }
            let Some(c) = actual.iter().find(|a| {
                a.name == d.name
                    && a.spec_hash == d.spec_hash
                    && a.state == RunState::Running
                    && matches!(a.health, None | Some(Health::Healthy))
                    && (d.slot.health_check.is_none() || a.health.is_some())
            }) else {
                continue;
            };
            let key = d.slot.actions_key(&d.network);
            if !self
                .started
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
            let run = Run {
                rt: self.rt.clone(),
                host: self.host.clone(),
                stack: d.id.stack.clone(),
                service: d.id.service.clone(),
                own: c.id.clone(),
                running,
            };
            let actions = d.slot.post_start.clone();
            let (store, wake, events) =
                (self.store.clone(), self.wake.clone(), self.events.clone());
            tokio::spawn(async move {
                let results = run.all(&actions).await;
                match results.iter().find(|r| !r.ok) {
                    Some(f) => events.record(
                        &run.stack,
                        Some(&run.service),
                        "ActionFailed",
                        format!(
                            "action {:?} failed: {}",
                            f.name,
                            f.message.clone().unwrap_or_default()
                        ),
                    ),
                    None => events.record(
                        &run.stack,
                        Some(&run.service),
                        "ActionsSucceeded",
                        format!("{} post-start action(s) ran", results.len()),
                    ),
                }
                let record = ActionRecord {
                    key,
                    host: run.host.clone(),
                    results,
                };
                write_record(&store, &run.stack, &run.service, record).await;
                wake.notify_one();
            });
        }
    }
}

/// One service's actions on this host.
struct Run {
    rt: Runtime,
    host: String,
    stack: String,
    service: String,
    /// The container of the replica that turned healthy.
    own: String,
    /// Names of the containers running here, for actions that target another service.
    running: Vec<String>,
}

impl Run {
    /// Run the actions in order, up to and including the first that fails.
    async fn all(&self, actions: &[PotentialAction]) -> Vec<ActionStatus> {
        let mut results = Vec::new();
        for a in actions {
            let target = match a.target.as_deref() {
                Some(t) if t != self.service => {
                    let name = container_name(&self.stack, t, 1);
                    if !self.running.contains(&name) {
                        results.push(ActionStatus {
                            name: a.name.clone(),
                            ok: false,
                            exit_code: None,
                            message: Some(format!(
                                "target service {t} does not run on this host ({})",
                                self.host
                            )),
                        });
                        break;
                    }
                    name
                }
                _ => self.own.clone(),
            };
            let result = self.one(a, &target).await;
            let ok = result.ok;
            results.push(result);
            if !ok {
                break;
            }
        }
        results
    }

    async fn one(&self, a: &PotentialAction, target: &str) -> ActionStatus {
        let argv = a.command.as_ref().map(|c| c.argv()).unwrap_or_default();
        let timeout = timeout_of(a);
        tracing::info!(stack = %self.stack, service = %self.service, action = %a.name, "running post-start action");
        let r = self
            .rt
            .exec(target, &argv, a.working_directory.as_deref(), timeout)
            .await;
        let name = a.name.clone();
        match r {
            Ok(o) if o.exit_code == Some(0) => ActionStatus {
                name,
                ok: true,
                exit_code: Some(0),
                message: None,
            },
            Ok(o) => ActionStatus {
                name,
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
            Err(e) => ActionStatus {
                name,
                ok: false,
                exit_code: None,
                message: Some(crate::error_chain(&e)),
            },
        }
    }
}

/// How long `a` may run; at least a tenth of a second, so that it gets to start.
fn timeout_of(a: &PotentialAction) -> Duration {
    Seconds::ACTION_TIMEOUT
        .duration(a.timeout)
        .max(Duration::from_millis(100))
}

/// Record the actions' outcome; retried until it lands, since running them again is
/// what must never happen.
async fn write_record(store: &Store, stack: &str, service: &str, record: ActionRecord) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_timeout_is_bounded_whatever_its_number() {
        let timeout = |t| {
            timeout_of(&PotentialAction {
                timeout: t,
                ..Default::default()
            })
        };
        let minute = Duration::from_secs(60);
        // (written, expected)
        let cases = [
            (None, minute),
            (Some(30.0), Duration::from_secs(30)),
            (Some(86_400.0), Duration::from_secs(86_400)),
            (Some(0.001), Duration::from_millis(100)),
            (Some(1e20), minute),
            (Some(f64::MAX), minute),
            (Some(f64::NAN), minute),
            (Some(f64::INFINITY), minute),
            (Some(-1.0), minute),
        ];
        for (written, want) in cases {
            assert_eq!(timeout(written), want, "{written:?}");
        }
    }
}
