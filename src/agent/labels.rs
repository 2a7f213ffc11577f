//! The labels every managed container (and each network and volume Berth creates)
//! carries: ownership and drift live in them (see STYLE.md). Containers without
//! `berth.managed` are never touched. A leaf: it imports nothing.

pub const MANAGED: &str = "berth.managed";
pub const STACK: &str = "berth.stack";
pub const SERVICE: &str = "berth.service";
pub const REPLICA: &str = "berth.replica";
pub const HOST: &str = "berth.host";
pub const SPEC_HASH: &str = "berth.spec-hash";
/// Start-order level, so removal can go in reverse.
pub const ORDER: &str = "berth.order";
/// On a volume: remove it when its stack is deleted (`removeVolumesOnDelete`).
pub const REMOVE_ON_DELETE: &str = "berth.remove-on-delete";
