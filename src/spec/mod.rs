//! What users write and read: the stack document, host registrations and stack status.
//! Pure serde types plus validation; no IO.
//!
//! # Layout
//! - `stack`, `host`, `status`: the documents, as serde types.
//! - `vocabulary`: the typed enums and accepted spellings of the stack's string fields.
//! - `names`: the rules for service names and host ids.
//! - `parse`: untrusted bytes to a `Stack`, every problem at once; `validate`: the checks.
//! - `problem`: one problem and the JSON path that locates it.
//! - `order`: the dependency graph, its cycles and the start order.
//! - `secret`: `{{secret:NAME}}` references in environment values.
//! - `update`: the `update` block (how a changed service is rolled out) and its defaults.
//! - `bounds`: the range of every time and size, and the one conversion of seconds to a
//!   `Duration`.

mod bounds;
#[cfg(test)]
mod fixtures;
mod host;
mod names;
mod order;
mod parse;
mod problem;
mod secret;
mod stack;
mod status;
mod update;
mod validate;
mod vocabulary;

pub use bounds::{Seconds, MAX_CPUS, MAX_MEMORY_MB};
pub use host::{bind_allowed, HostRegistration, UsedPort};
pub use names::{is_dns_label, is_host_id, DNS_LABEL_PATTERN, HOST_ID_PATTERN};
pub use order::start_order;
pub use parse::{parse_stack, parse_stack_with, Limits};
pub use problem::Problem;
pub use secret::{is_secret_name, secret_refs, substitute};
pub use stack::*;
pub use status::{
    ActionStatus, Condition, ConditionStatus, Endpoint, LastTermination, Phase, PullProgress,
    RolloutStatus, ServiceStatus, StackStatus, TerminationReason,
};
pub use update::UpdatePolicy;
pub use validate::validate;
pub use vocabulary::{
    DependencyCondition, DeploymentMode, DesiredState, FailureAction, HealthCheckKind,
    PlacementStrategy, PullPolicy, RestartPolicy, UpdateOrder, ENDPOINT_TYPES, MOUNT_TYPES,
    PROTOCOLS,
};
