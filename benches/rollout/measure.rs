//! What one rollout measured, whichever system ran it.

use crate::fleet::Followed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum System {
    Berth,
    Swarm,
}

impl System {
    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Berth => "Berth",
            System::Swarm => "Swarm",
        }
    }
}

/// A good update rolls forward; a bad one must end back on the version before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Good,
    Bad,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Measured {
    /// From the write to every slot on the version it should end on, and the system
    /// saying its rollout is over; with the most slots unavailable at once.
    pub(crate) followed: Followed,
    /// How long the write itself took (an etcd put; a `docker service update` process).
    pub(crate) write_secs: f64,
    /// The rollout's length by the system's own record (Berth's `rollouts/<id>`,
    /// Swarm's `UpdateStatus`): from when it started it to when it ended it.
    pub(crate) own_secs: f64,
    /// Bad updates: from the write to the first sample in which the system said it was
    /// rolling back (Berth's status `RollingBack`, Swarm's `rollback_started`).
    pub(crate) rollback_secs: f64,
    /// Per replaced slot (good updates): from being handed its new container (Berth) or
    /// its new task being created (Swarm) to running and healthy.
    pub(crate) slot_ready: Vec<f64>,
    /// Per batch but the last (Berth, good updates): from the batch's last slot ready to
    /// the next batch handed its containers.
    pub(crate) batch_gap: Vec<f64>,
}
