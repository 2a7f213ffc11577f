//! What Docker says runs on this host: each managed container as the planner sees it,
//! identified by its `berth.*` labels. Pure data, beside [`desired`](super::desired):
//! the planner compares the two, and the runtime adapter fills this one in.

use super::desired::DesiredContainer;
use crate::health::Health;
use crate::slot::SlotId;

/// Docker's view of a container's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Removing => "removing",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
        }
    }
}

/// A managed container as Docker reports it (identity from its `berth.*` labels).
#[derive(Debug, Clone, PartialEq)]
pub struct ActualContainer {
    pub id: String,
    pub name: String,
    /// From its `berth.stack`, `berth.service` and `berth.replica` labels.
    pub slot: SlotId,
    pub spec_hash: String,
    /// Docker's ID of the image it was created from (`sha256:...`).
    pub image_id: Option<String>,
    pub state: RunState,
    pub exit_code: Option<i64>,
    /// Docker's own health status when the container has a HEALTHCHECK.
    pub docker_health: Option<Health>,
    /// What the agent believes: Docker's status, or its own probe's for http/tcp checks.
    pub health: Option<Health>,
    pub ip: Option<String>,
    pub started_at: Option<String>,
    /// When its last run ended (Docker's `State.FinishedAt`), once it has ended.
    pub finished_at: Option<String>,
    /// Its last run was killed by the kernel for going over its memory limit: Docker's
    /// `State.OOMKilled`, or its `oom` event for the run (see [`super::inspected`]).
    pub oom_killed: bool,
    /// Host ports it publishes, as (port, protocol).
    pub host_ports: Vec<(u16, String)>,
    /// Its start-order level (label `berth.order`).
    pub order: u32,
}

impl ActualContainer {
    /// Container `id` as just made for `d`, in `state`: its identity, spec hash, order and
    /// host ports from the desired container, nothing Docker has said yet (no image,
    /// address, times or exit).
    pub fn made_for(id: &str, d: &DesiredContainer, state: RunState) -> ActualContainer {
        ActualContainer {
            id: id.to_owned(),
            name: d.name.clone(),
            slot: d.id.clone(),
            spec_hash: d.spec_hash.clone(),
            image_id: None,
            state,
            exit_code: None,
            docker_health: None,
            health: None,
            ip: None,
            started_at: None,
            finished_at: None,
            oom_killed: false,
            host_ports: d
                .spec()
                .ports
                .iter()
                .filter_map(|p| Some((p.host_port?, p.protocol.clone())))
                .collect(),
            order: d.order(),
        }
    }
}

/// How a container's last run ended, as Docker tells it, with the end of its output as
/// Docker gave it: raw, secrets and all, so kept in memory only until
/// [`termination`](super::termination) has redacted and cut it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Ended {
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub finished_at: Option<String>,
    /// Its last lines of stdout and stderr, in the order Docker has them.
    pub output: String,
}

/// Never its output: that is not redacted yet.
impl std::fmt::Debug for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ended")
            .field("exit_code", &self.exit_code)
            .field("oom_killed", &self.oom_killed)
            .field("finished_at", &self.finished_at)
            .field("output", &format_args!("<{} bytes>", self.output.len()))
            .finish()
    }
}
