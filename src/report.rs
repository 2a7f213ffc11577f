//! What an agent observed about one slot, at `reports/<host>/<stack>/<slot>`. The
//! controller folds these into the stack status.

use serde::{Deserialize, Serialize};

use crate::assignment::Slot;
use crate::slot::SlotId;
use crate::spec::{ActionStatus, LastTermination, PullProgress};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotReport {
    pub stack: String,
    pub service: String,
    pub replica: u32,
    pub host: String,
    /// The assignment's `specRevision` this report reflects.
    pub spec_revision: i64,
    pub spec_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub state: SlotState,
    pub health: SlotHealth,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Docker's ID of the image its container runs (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// That image's registry digest (`repo@sha256:...`), where the host knows it: an image
    /// that was pulled, not one built or loaded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// While its image is being pulled: how far the pull has got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullProgress>,
    /// How its container last ended on its own, kept while the slot keeps its spec (see
    /// `agent::termination`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<LastTermination>,
}

impl SlotReport {
    pub fn is_running(&self) -> bool {
        self.state == SlotState::Running
    }

    /// Running and not known to be unhealthy or still starting.
    pub fn is_available(&self) -> bool {
        self.is_running() && matches!(self.health, SlotHealth::Healthy | SlotHealth::NotChecked)
    }

    /// Exited 0 under `restartPolicy: on-failure` or `never`: done, and not started again.
    pub fn is_completed(&self) -> bool {
        self.state == SlotState::Completed
    }

    /// Nothing left to wait for: available, or completed (a one-shot service has no
    /// container to keep running).
    pub fn is_available_or_completed(&self) -> bool {
        self.is_available() || self.is_completed()
    }

    /// Whether it speaks of `slot`.
    pub fn is_for(&self, slot: &SlotId) -> bool {
        slot.is(&self.stack, &self.service, self.replica)
    }

    /// Whether it speaks of `slot`, assigned within `stack` (an assigned slot carries no
    /// stack of its own).
    pub fn is_for_assigned(&self, stack: &str, slot: &Slot) -> bool {
        self.replica == slot.replica && self.service == slot.service && self.stack == stack
    }
}

/// A slot's state as its agent reports it: Docker's state of the container, or why there
/// is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// Exited 0 under `restartPolicy: on-failure` or `never`: finished, and kept (not
    /// started again) until its spec changes.
    Completed,
    /// Not created yet.
    Missing,
    /// Its image is being pulled; nothing has been stopped for it yet.
    Pulling,
    /// Held back until a dependency is healthy or has completed.
    Waiting,
    /// Nothing will run until the spec changes, and the message says why: the agent
    /// cannot create the container at all, or it exited non-zero under
    /// `restartPolicy: never` (its container is kept).
    Failed,
}

impl SlotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotState::Created => "created",
            SlotState::Running => "running",
            SlotState::Paused => "paused",
            SlotState::Restarting => "restarting",
            SlotState::Removing => "removing",
            SlotState::Exited => "exited",
            SlotState::Dead => "dead",
            SlotState::Completed => "completed",
            SlotState::Missing => "missing",
            SlotState::Pulling => "pulling",
            SlotState::Waiting => "waiting",
            SlotState::Failed => "failed",
        }
    }
}

/// Reads the wire name (`running`, `missing`, ...), as serde does.
impl std::str::FromStr for SlotState {
    type Err = serde_json::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
    }
}

/// A slot's health as its agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotHealth {
    Healthy,
    Unhealthy,
    /// Checked, but no verdict yet (inside the start period).
    Starting,
    /// No health check, or the container is not running: `none` on the wire.
    #[serde(rename = "none")]
    NotChecked,
}

impl SlotHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotHealth::Healthy => "healthy",
            SlotHealth::Unhealthy => "unhealthy",
            SlotHealth::Starting => "starting",
            SlotHealth::NotChecked => "none",
        }
    }
}

/// The outcome of a service's post-start actions, at `actions/<stack>/<service>`, written
/// by the agent that ran them. `key` is the [`Slot::actions_key`](crate::assignment::Slot::actions_key)
/// they ran for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    pub key: String,
    pub host: String,
    /// The same shape the service's status shows.
    pub results: Vec<ActionStatus>,
}

impl ActionRecord {
    /// The first action that failed; the ones after it did not run.
    pub fn failure(&self) -> Option<&ActionStatus> {
        self.results.iter().find(|r| !r.ok)
    }
}

/// Reads the wire name (`healthy`, `none`, ...), as serde does.
impl std::str::FromStr for SlotHealth {
    type Err = serde_json::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
    }
}
