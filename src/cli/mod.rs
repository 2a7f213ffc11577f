//! The subcommands of the `berth` binary, one file each: each turns its parsed arguments
//! into calls on the library and prints what it did. Helpers two commands share are in
//! [`common`].

pub mod agent;
pub mod apply;
pub mod common;
pub mod controller;
pub mod convert;
pub mod delete;
pub mod etcd_rbac;
pub mod events;
pub mod history;
pub mod host;
pub mod hosts;
pub mod logs;
pub mod rebalance;
pub mod registry;
pub mod rollback;
pub mod rollout;
pub mod schema;
pub mod status;
pub mod up;
pub mod validate;
