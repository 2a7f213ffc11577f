//! What an agent observed about one slot, at `reports/<host>/<stack>/<slot>`. The
//! controller folds these into the stack status.

use serde::{Deserialize, Serialize};

use crate::spec::ActionStatus;

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
    /// Docker's state (`running`, `exited`, `created`, ...), `missing` before creation, or
    /// `failed` when the agent cannot create it at all (the message says why).
    pub state: String,
    /// `healthy`, `unhealthy`, `starting` or `none`.
    pub health: String,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SlotReport {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Running and not known to be unhealthy or still starting.
    pub fn is_available(&self) -> bool {
        self.is_running() && (self.health == "healthy" || self.health == "none")
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
