//! What operators read in a terminal (`berth status`, `berth hosts`, `berth events`,
//! `berth history`, `berth apply --dry-run`, `berth host remove`): pure rendering of the
//! decoded cluster ([`World`]) into tables that fit 80 columns and into stable JSON. The
//! web view (`crate::web`) shows the same data, taken from here.

mod deployment;
mod events;
mod history;
mod hosts;
pub mod logs;
mod preview;
mod removal;
mod table;

pub use deployment::{
    dash_if_empty, deployment_map, redact, render as render_deployment, services_cell,
    DeploymentMap, HostLine, SlotLine, StackLine, Unscheduled,
};
pub use events::render as render_events;
pub use history::{render as render_history, spec_diff};
pub use hosts::{cpus_cell, hosts, memory_cell, render as render_hosts, HostView};
pub use preview::{
    preview_view, render as render_apply_preview, PlacedSlot, PreviewView, RolloutPreview,
    UnplacedService,
};
pub use removal::{held, removal, render as render_removal, Held, Removal};
pub use table::{truncate, Table};

use crate::controller::world::World;
use crate::spec::StackStatus;
use crate::store::{Cache, Kv};

/// The terminal width views fit by default.
pub const DEFAULT_WIDTH: usize = 80;

/// Decode listed pairs (keys relative to the prefix) as one consistent view.
pub fn world_of(kvs: Vec<Kv>, revision: i64) -> World {
    World::decode_for_view(&Cache {
        entries: kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
        revision,
    })
}

/// The status objects `berth status -o json` prints: every stack's that has one, sorted
/// by stack id.
pub fn statuses(w: &World) -> Vec<&StackStatus> {
    w.statuses
        .values()
        .filter_map(|(st, _)| st.as_ref())
        .collect()
}

/// Does stack `id` exist, as a spec or as a status still being cleaned up?
pub fn has_stack(w: &World, id: &str) -> bool {
    w.stacks.contains_key(id) || w.statuses.contains_key(id)
}

#[cfg(test)]
mod fixtures {
    //! Worlds for tests, built from values the way etcd holds them.

    use super::*;

    pub fn kv(key: String, value: serde_json::Value) -> Kv {
        Kv {
            key,
            value: value.to_string().into_bytes(),
            mod_revision: 1,
            lease: 0,
        }
    }

    pub fn world(kvs: &[Kv]) -> World {
        world_of(kvs.to_vec(), 1)
    }
}
