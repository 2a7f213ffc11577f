//! What the agent tells etcd about each of its slots: the pure fold of desired containers,
//! Docker's view, probe results and per-slot errors into [`SlotReport`]s.

use std::collections::BTreeMap;

use super::desired::DesiredContainer;
use super::plan::{ActualContainer, RunState};
use crate::report::SlotReport;
use crate::spec::HealthCheckKind;

/// A slot the agent could not converge, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotError {
    pub message: String,
    /// Retrying will not help until the spec changes (e.g. the image cannot be had).
    pub permanent: bool,
}

/// Everything known about the slots this pass; `health` is keyed by container id and
/// `restarts` by container name.
pub struct Observed<'a> {
    pub host: &'a str,
    pub desired: &'a [DesiredContainer],
    pub actual: &'a [ActualContainer],
    pub errors: &'a BTreeMap<String, SlotError>,
    pub probe_health: &'a dyn Fn(&str) -> Option<&'static str>,
    pub restarts: &'a BTreeMap<String, u32>,
}

pub fn build(o: &Observed<'_>) -> Vec<SlotReport> {
    o.desired
        .iter()
        .map(|d| {
            // Only a container with the current spec speaks for the slot.
            let current = o.actual.iter().find(|a| {
                a.stack == d.stack
                    && a.service == d.service
                    && a.replica == d.replica
                    && a.spec_hash == d.spec_hash
            });
            let err = o.errors.get(&d.name);
            let state = match (current, err) {
                (_, Some(e)) if e.permanent => "failed".to_owned(),
                (Some(a), _) => a.state.as_str().to_owned(),
                (None, _) => "missing".to_owned(),
            };
            let health = match current {
                Some(a) if a.state == RunState::Running => health_of(d, a, o.probe_health),
                _ => "none".to_owned(),
            };
            SlotReport {
                stack: d.stack.clone(),
                service: d.service.clone(),
                replica: d.replica,
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
                message: err.map(|e| e.message.clone()),
            }
        })
        .collect()
}

fn health_of(
    d: &DesiredContainer,
    a: &ActualContainer,
    probe: &dyn Fn(&str) -> Option<&'static str>,
) -> String {
    let Some(check) = &d.slot.health_check else {
        return "none".to_owned();
    };
    let h = match check.kind() {
        Some(HealthCheckKind::Command) => a.docker_health.as_deref(),
        Some(_) => probe(&a.id),
        None => None,
    };
    h.unwrap_or("starting").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::desired::{container_name, spec_hash};
    use crate::assignment::{ContainerSpec, Slot};
    use crate::spec::HealthCheck;

    fn desired(check: Option<&str>) -> DesiredContainer {
        let spec = ContainerSpec {
            image: "i".into(),
            ..Default::default()
        };
        DesiredContainer {
            stack: "s".into(),
            service: "web".into(),
            replica: 1,
            name: container_name("s", "web", 1),
            spec_hash: spec_hash(&spec, "n"),
            slot: Slot {
                service: "web".into(),
                replica: 1,
                order: 0,
                container: spec.clone(),
                health_check: check.map(|t| HealthCheck {
                    type_: t.into(),
                    ..Default::default()
                }),
                handoff: false,
            },
            spec,
            spec_revision: 3,
            run: true,
            network: "n".into(),
            order: 0,
        }
    }

    fn actual(d: &DesiredContainer, state: RunState, hash: &str) -> ActualContainer {
        ActualContainer {
            id: "c1".into(),
            name: d.name.clone(),
            stack: "s".into(),
            service: "web".into(),
            replica: 1,
            spec_hash: hash.into(),
            state,
            exit_code: Some(3),
            docker_health: Some("healthy".into()),
            ip: None,
            started_at: None,
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
        // (name, desired, actual, errors, probe result, want state, want health, want container)
        let cases: Vec<(
            &str,
            &DesiredContainer,
            Vec<ActualContainer>,
            &BTreeMap<String, SlotError>,
            Option<&'static str>,
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
                Some("healthy"),
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
                None,
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
            let probe_fn = move |_: &str| probe;
            let restarts = BTreeMap::new();
            let r = build(&Observed {
                host: "h1",
                desired: std::slice::from_ref(d),
                actual: &act,
                errors,
                probe_health: &probe_fn,
                restarts: &restarts,
            });
            assert_eq!(r.len(), 1, "{name}");
            assert_eq!(r[0].state, state, "{name}");
            assert_eq!(r[0].health, health, "{name}");
            assert_eq!(r[0].container_id.is_some(), has_container, "{name}");
            assert_eq!(r[0].spec_revision, 3, "{name}");
        }
    }
}
