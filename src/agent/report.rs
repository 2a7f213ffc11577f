//! What the agent tells etcd about each of its slots: the pure fold of desired containers,
//! Docker's view, probe results and per-slot errors into [`SlotReport`]s.

use std::collections::BTreeMap;

use super::actual::{ActualContainer, RunState};
use super::desired::DesiredContainer;
use super::plan::{finished, Finished};
use super::termination::Terminations;
use crate::health::Health;
use crate::registry::digest_for;
use crate::report::{SlotHealth, SlotReport, SlotState};
use crate::spec::PullProgress;

/// A slot the agent could not converge, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotError {
    pub message: String,
    /// Retrying will not help until the spec changes (e.g. the image cannot be had).
    pub permanent: bool,
}

/// Everything known about the slots this pass (containers carry their health already);
/// `errors` and `restarts` are keyed by container name.
pub struct Observed<'a> {
    pub host: &'a str,
    pub desired: &'a [DesiredContainer],
    pub actual: &'a [ActualContainer],
    pub errors: &'a BTreeMap<String, SlotError>,
    pub restarts: &'a BTreeMap<String, u32>,
    /// Why the agent's own probe of a container could not run, by container name.
    pub probe_notes: &'a BTreeMap<String, String>,
    /// Containers waiting for their image's pull, with how far it has got.
    pub pulling: &'a BTreeMap<String, PullProgress>,
    /// Registry digests by image ID.
    pub digests: &'a BTreeMap<String, Vec<String>>,
    /// How each slot's container last ended on its own.
    pub terminations: &'a Terminations,
}

pub fn build(o: &Observed<'_>) -> Vec<SlotReport> {
    o.desired
        .iter()
        .map(|d| {
            // Only a container with the current spec speaks for the slot.
            let current = o
                .actual
                .iter()
                .find(|a| a.slot == d.id && a.spec_hash == d.spec_hash);
            let err = o.errors.get(&d.name);
            let waiting = !d.slot.waiting_for.is_empty();
            let pulling = o.pulling.get(&d.name).copied();
            let finished = current.and_then(|a| finished(d, a));
            let state = match (current, err) {
                (_, Some(e)) if e.permanent => SlotState::Failed,
                (Some(_), _) if finished == Some(Finished::Completed) => SlotState::Completed,
                (Some(_), _) if finished.is_some() => SlotState::Failed,
                (Some(a), _) => a.state.into(),
                (None, _) if pulling.is_some() => SlotState::Pulling,
                (None, _) if waiting => SlotState::Waiting,
                (None, _) => SlotState::Missing,
            };
            let health = match current {
                Some(a) if a.state == RunState::Running => health_of(d, a),
                _ => SlotHealth::NotChecked,
            };
            let message = err
                .map(|e| e.message.clone())
                .or_else(|| match finished {
                    Some(Finished::Failed { exit_code }) => Some(format!(
                        "exited with {}; restartPolicy never: not started again until its spec changes",
                        exit_code.map_or_else(|| "an unknown code".to_owned(), |c| format!("code {c}"))
                    )),
                    _ => None,
                })
                .or_else(|| {
                    (waiting && current.is_none_or(|a| a.state != RunState::Running))
                        .then(|| format!("Waiting for {}", d.slot.waiting_for.join(", ")))
                })
                .or_else(|| current.and_then(|a| o.probe_notes.get(&a.name)).cloned())
                .or_else(|| {
                    (state == SlotState::Pulling).then(|| format!("pulling {}", d.spec().image))
                });
            let image_id = current.and_then(|a| a.image_id.clone());
            SlotReport {
                stack: d.id.stack.clone(),
                service: d.id.service.clone(),
                replica: d.id.replica,
                host: o.host.to_owned(),
                spec_revision: d.spec_revision,
                spec_hash: d.spec_hash.clone(),
                container_id: current.map(|a| a.id.clone()),
                state,
                health,
                restarts: o.restarts.get(&d.name).copied().unwrap_or(0),
                exit_code: current
                    .filter(|a| a.state != RunState::Running)
                    .and_then(|a| a.exit_code),
                message,
                image_digest: image_id
                    .as_ref()
                    .and_then(|id| digest_for(&d.spec().image, o.digests.get(id)?)),
                image_id,
                pull: pulling.filter(|_| state == SlotState::Pulling),
                last_termination: o.terminations.last(&d.name).cloned(),
            }
        })
        .collect()
}

fn health_of(d: &DesiredContainer, a: &ActualContainer) -> SlotHealth {
    if d.slot.health_check.is_none() {
        return SlotHealth::NotChecked;
    }
    match a.health {
        Some(Health::Healthy) => SlotHealth::Healthy,
        Some(Health::Unhealthy) => SlotHealth::Unhealthy,
        Some(Health::Starting) | None => SlotHealth::Starting,
    }
}

impl From<RunState> for SlotState {
    fn from(s: RunState) -> SlotState {
        match s {
            RunState::Created => SlotState::Created,
            RunState::Running => SlotState::Running,
            RunState::Paused => SlotState::Paused,
            RunState::Restarting => SlotState::Restarting,
            RunState::Removing => SlotState::Removing,
            RunState::Exited => SlotState::Exited,
            RunState::Dead => SlotState::Dead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::desired::spec_hash;
    use crate::assignment::{ContainerSpec, Slot};
    use crate::slot::SlotId;
    use crate::spec::HealthCheck;

    fn desired(check: Option<&str>) -> DesiredContainer {
        let spec = ContainerSpec {
            image: "i".into(),
            ..Default::default()
        };
        DesiredContainer {
            id: SlotId::new("s", "web", 1),
            name: "s.web.1".into(),
            spec_hash: spec_hash(&spec, "n"),
            slot: Slot {
                health_check: check.map(|t| HealthCheck {
                    type_: t.into(),
                    ..Default::default()
                }),
                ..Slot::bare("web", 1, spec.clone())
            },
            spec_revision: 3,
            run: true,
            network: "n".into(),
        }
    }

    fn actual(d: &DesiredContainer, state: RunState, hash: &str) -> ActualContainer {
        ActualContainer {
            id: "c1".into(),
            name: d.name.clone(),
            slot: d.id.clone(),
            spec_hash: hash.into(),
            image_id: None,
            state,
            exit_code: Some(3),
            docker_health: Some(Health::Healthy),
            health: Some(Health::Healthy),
            ip: None,
            started_at: None,
            finished_at: None,
            oom_killed: false,
            host_ports: vec![],
            order: 0,
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn report_table() {
        let plain = desired(None);
        let http = desired(Some("http"));
        let cmd = desired(Some("command"));
        let h = plain.spec_hash.clone();
        let no_errors = BTreeMap::new();
        let pull_failed = BTreeMap::from([(
            plain.name.clone(),
            SlotError {
                message: "image i not found".into(),
                permanent: true,
            },
        )]);
        let mut waiting = desired(None);
        waiting.slot.waiting_for = vec!["db (h2) to be healthy".into()];
        // (name, desired, actual, errors, its health, want state, want health, want container)
        let cases: Vec<(
            &str,
            &DesiredContainer,
            Vec<ActualContainer>,
            &BTreeMap<String, SlotError>,
            Option<Health>,
            &str,
            &str,
            bool,
        )> = vec![
            (
                "running, no check",
                &plain,
                vec![actual(&plain, RunState::Running, &h)],
                &no_errors,
                None,
                "running",
                "none",
                true,
            ),
            (
                "running, http probe healthy",
                &http,
                vec![actual(&http, RunState::Running, &h)],
                &no_errors,
                Some(Health::Healthy),
                "running",
                "healthy",
                true,
            ),
            (
                "running, http probe not yet run",
                &http,
                vec![actual(&http, RunState::Running, &h)],
                &no_errors,
                None,
                "running",
                "starting",
                true,
            ),
            (
                "running, docker healthcheck",
                &cmd,
                vec![actual(&cmd, RunState::Running, &h)],
                &no_errors,
                Some(Health::Healthy),
                "running",
                "healthy",
                true,
            ),
            (
                "exited",
                &plain,
                vec![actual(&plain, RunState::Exited, &h)],
                &no_errors,
                None,
                "exited",
                "none",
                true,
            ),
            (
                "old spec does not count",
                &plain,
                vec![actual(&plain, RunState::Running, "old")],
                &no_errors,
                None,
                "missing",
                "none",
                false,
            ),
            (
                "waiting for a dependency",
                &waiting,
                vec![],
                &no_errors,
                None,
                "waiting",
                "none",
                false,
            ),
            (
                "permanent error",
                &plain,
                vec![],
                &pull_failed,
                None,
                "failed",
                "none",
                false,
            ),
        ];
        for (name, d, act, errors, probe, state, health, has_container) in cases {
            let act: Vec<ActualContainer> = act
                .into_iter()
                .map(|mut a| {
                    a.health = probe;
                    a
                })
                .collect();
            let restarts = BTreeMap::new();
            let r = build(&Observed {
                host: "h1",
                desired: std::slice::from_ref(d),
                actual: &act,
                errors,
                restarts: &restarts,
                probe_notes: &BTreeMap::new(),
                pulling: &BTreeMap::new(),
                digests: &BTreeMap::new(),
                terminations: &Terminations::default(),
            });
            if name == "waiting for a dependency" {
                assert_eq!(
                    r[0].message.as_deref(),
                    Some("Waiting for db (h2) to be healthy")
                );
            }
            assert_eq!(r.len(), 1, "{name}");
            assert_eq!(r[0].state.as_str(), state, "{name}");
            assert_eq!(r[0].health.as_str(), health, "{name}");
            assert_eq!(r[0].container_id.is_some(), has_container, "{name}");
            assert_eq!(r[0].spec_revision, 3, "{name}");
        }
    }

    #[test]
    fn an_exited_container_its_restart_policy_does_not_restart_is_completed_or_failed() {
        use crate::spec::RestartPolicy::{self, Always, Never, OnFailure};
        let with = |policy: RestartPolicy, run: bool| {
            let mut d = desired(None);
            d.slot.restart_policy = policy;
            d.run = run;
            d
        };
        // (name, policy, should run, exit code, state, exit code reported, message)
        let cases = [
            ("always, exit 0: exited", Always, true, 0, "exited", None),
            ("on-failure, exit 0: completed", OnFailure, true, 0, "completed", None),
            ("on-failure, exit 3: exited (it restarts)", OnFailure, true, 3, "exited", None),
            ("never, exit 0: completed", Never, true, 0, "completed", None),
            (
                "never, exit 3: failed, and says why",
                Never,
                true,
                3,
                "failed",
                Some("exited with code 3; restartPolicy never: not started again until its spec changes"),
            ),
            ("never, stopped by desiredState: exited", Never, false, 143, "exited", None),
        ];
        for (name, policy, run, code, state, message) in cases {
            let d = with(policy, run);
            let mut a = actual(&d, RunState::Exited, &d.spec_hash.clone());
            a.exit_code = Some(code);
            let r = build(&Observed {
                host: "h1",
                desired: std::slice::from_ref(&d),
                actual: &[a],
                errors: &BTreeMap::new(),
                restarts: &BTreeMap::new(),
                probe_notes: &BTreeMap::new(),
                pulling: &BTreeMap::new(),
                digests: &BTreeMap::new(),
                terminations: &Terminations::default(),
            });
            assert_eq!(r[0].state.as_str(), state, "{name}");
            assert_eq!(r[0].exit_code, Some(code), "{name}: the exit code is kept");
            assert_eq!(
                r[0].container_id.as_deref(),
                Some("c1"),
                "{name}: so is the container"
            );
            assert_eq!(r[0].health, SlotHealth::NotChecked, "{name}");
            assert_eq!(r[0].message.as_deref(), message, "{name}");
        }
    }

    #[test]
    fn a_probe_that_cannot_run_says_why_in_the_slot() {
        let d = desired(Some("http"));
        let mut a = actual(&d, RunState::Running, &d.spec_hash);
        a.health = Some(Health::Starting);
        let notes = BTreeMap::from([(
            d.name.clone(),
            "http check cannot be probed: port 8080 is not published".to_owned(),
        )]);
        let r = build(&Observed {
            host: "h1",
            desired: std::slice::from_ref(&d),
            actual: &[a],
            errors: &BTreeMap::new(),
            restarts: &BTreeMap::new(),
            probe_notes: &notes,
            pulling: &BTreeMap::new(),
            digests: &BTreeMap::new(),
            terminations: &Terminations::default(),
        });
        assert_eq!(r[0].health.as_str(), "starting");
        assert_eq!(r[0].message.as_deref(), Some(notes[&d.name].as_str()));
    }

    #[test]
    fn a_slot_waiting_for_its_image_is_pulling_and_a_running_one_names_its_image() {
        let d = desired(None);
        let progress = PullProgress {
            bytes_done: 3,
            bytes_total: 10,
        };
        let pulling = BTreeMap::from([(d.name.clone(), progress)]);
        let observe = |actual: &[ActualContainer], errors: &BTreeMap<String, SlotError>| {
            build(&Observed {
                host: "h1",
                desired: std::slice::from_ref(&d),
                actual,
                errors,
                restarts: &BTreeMap::new(),
                probe_notes: &BTreeMap::new(),
                pulling: &pulling,
                digests: &BTreeMap::from([(
                    "sha256:abc".to_owned(),
                    vec![format!("{}@sha256:def", d.spec().image)],
                )]),
                terminations: &Terminations::default(),
            })
            .remove(0)
        };
        let r = observe(&[], &BTreeMap::new());
        assert_eq!(r.state, SlotState::Pulling);
        assert_eq!(r.pull, Some(progress));
        assert_eq!(r.message, Some(format!("pulling {}", d.spec().image)));

        // A pull that failed for good is what the slot says.
        let failed = BTreeMap::from([(
            d.name.clone(),
            SlotError {
                message: "pulling i: unauthorized".into(),
                permanent: true,
            },
        )]);
        let r = observe(&[], &failed);
        assert_eq!((r.state, r.pull), (SlotState::Failed, None));

        // Once its container runs, its image ID and digest are reported.
        let mut a = actual(&d, RunState::Running, &d.spec_hash);
        a.image_id = Some("sha256:abc".into());
        let r = observe(&[a], &BTreeMap::new());
        assert_eq!(r.state, SlotState::Running);
        assert_eq!(r.pull, None);
        assert_eq!(r.image_id.as_deref(), Some("sha256:abc"));
        assert_eq!(
            r.image_digest,
            Some(format!("{}@sha256:def", d.spec().image))
        );
    }
}
