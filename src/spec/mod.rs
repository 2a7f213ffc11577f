//! What users write and read: the stack document, host registrations and stack status.
//! Pure serde types plus validation; no IO.

mod host;
mod secret;
mod stack;
mod status;
mod validate;

pub use host::{bind_allowed, HostRegistration, UsedPort};
pub use secret::{is_secret_name, secret_refs, substitute};
pub use stack::*;
pub use status::{
    ActionStatus, Condition, ConditionStatus, Endpoint, Phase, ServiceStatus, StackStatus,
};
pub use validate::*;
