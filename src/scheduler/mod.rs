//! The scheduler: decides which host runs each slot ([`plan`]) and what each host is told
//! to run ([`assign`]). Both pure; the controller applies their results to etcd.

pub mod assign;
pub mod plan;

pub use plan::{HostView, Placement, SlotId};
