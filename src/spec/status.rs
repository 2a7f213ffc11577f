//! The stack status the controller writes to `/berth/status/stacks/<id>` for users to
//! `etcdctl get` or `watch`. Its JSON shape is part of Berth's documented contract.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a stack stands, in one word.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Phase {
    Pending,
    Progressing,
    Running,
    // Every service is a one-shot service (`restartPolicy: on-failure` or `never`) that
    // exited 0. (No doc comment: it would turn the schema's enum into a `oneOf`.)
    Succeeded,
    Degraded,
    Failed,
    Invalid,
    Stopped,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Progressing,
        Phase::Running,
        Phase::Succeeded,
        Phase::Degraded,
        Phase::Failed,
        Phase::Invalid,
        Phase::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Progressing => "Progressing",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Invalid => "Invalid",
            Phase::Stopped => "Stopped",
        }
    }
}

/// What the controller last saw of a stack: the value of `/berth/status/stacks/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackStatus {
    /// The stack id (its key under `stacks/`).
    pub stack: String,
    /// `mod_revision` of the spec key this status reflects.
    pub observed_revision: i64,
    /// Where the stack stands, in one word.
    pub phase: Phase,
    /// One line for people, e.g. `1/1 containers running`.
    pub message: String,
    /// Every validation problem when `phase` is `Invalid`, as `path: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// `Valid`, `Scheduled` and `Available`, Kubernetes style.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Per service name, where and how its containers run.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceStatus>,
    /// The last rolling update of a changed spec, while there is one to tell of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// A rolling update, as users see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// `Progressing`, `Paused`, `RollingBack`, `RolledBack` or `Complete`.
    #[schemars(extend("enum" = ["Progressing", "Paused", "RollingBack", "RolledBack", "Complete"]))]
    pub state: String,
    /// The revision the changed slots ran before.
    pub from_revision: i64,
    /// The revision being rolled out: the stack key's `mod_revision`, or a newer one of a
    /// secret its containers use (a rotated secret rolls out too).
    pub to_revision: i64,
    /// Changed slots that run their new container, ready past `monitor`.
    pub updated: u32,
    /// Slots the change replaces.
    pub total: u32,
    /// Replaced slots that failed (exited, unhealthy, past `deadline`).
    pub failures: u32,
    /// Why it paused or rolled back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Paused by an operator (`berth rollout pause`), not by a failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused_by_operator: bool,
}

/// One aspect of a stack's state, Kubernetes style.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Valid`, `Scheduled` or `Available`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// Why, in one CamelCase word.
    pub reason: String,
    /// Why, for people.
    pub message: String,
    /// RFC 3339; changes only when `status` flips.
    pub last_transition_time: String,
}

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
}

/// Where and how one service's containers run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The host the container is placed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Docker's container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Docker's container state (`running`, `exited`, ...); `completed` or `failed` for a
    /// one-shot service that finished (exited 0, or non-zero under `restartPolicy:
    /// never`); `pending`, `missing`, `waiting`, `pulling` (its image is on its way), or
    /// `failed` when it cannot be created.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting` or `none`.
    #[schemars(extend("enum" = ["healthy", "unhealthy", "starting", "none"]))]
    pub health: String,
    /// Times the agent restarted an exited container since the service's spec last changed.
    pub restarts: u32,
    /// Where dependents reach the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Why the service is not running, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The container's exit code, when it is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Results of its post-start actions (`potentialAction`) for the current version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionStatus>,
    /// Docker's ID of the image its container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// That image's registry digest (`repo@sha256:...`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// While its image is being pulled (state `pulling`): bytes done and total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullProgress>,
    /// Its replicas with the same spec run more than one image ID (a tag that moved
    /// between pulls on different hosts); the replicas' `imageId`s tell them apart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_drift: bool,
    /// How its container last ended on its own (exited, OOM-killed, or killed for
    /// staying unhealthy), kept after it runs again; with several replicas, the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<LastTermination>,
    /// Per-replica detail when `replicas` > 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ServiceStatus>,
}

/// How a slot's container last ended without Berth meaning it to: what a crash loop, an
/// OOM kill or a failed liveness check looked like from the inside. A replacement or stop
/// that Berth made on purpose is not one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastTermination {
    /// Its exit code, as Docker recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it ended.
    pub reason: TerminationReason,
    /// For people: `exited with code 7`, `out of memory (limit 256 MB)`, ...
    pub message: String,
    /// When it ended, as Docker recorded it (`State.FinishedAt`, RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The end of its output (stdout and stderr): at most 20 lines and 2 KiB, with the
    /// values of its secrets and registry passwords replaced by `***`.
    #[serde(default)]
    pub log_tail: String,
}

impl LastTermination {
    /// One line: `code 7, exited`, or with the message where it says more than the
    /// reason (`code 137, oom-killed: out of memory (limit 256 MB)`).
    pub fn summary(&self) -> String {
        let code = self
            .exit_code
            .map_or_else(|| "no exit code".to_owned(), |c| format!("code {c}"));
        match self.reason {
            TerminationReason::Exited => format!("{code}, exited"),
            r => format!("{code}, {}: {}", r.as_str(), self.message),
        }
    }
}

/// Why a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TerminationReason {
    // It exited by itself. (No doc comments on the variants: they would turn the schema's
    // enum into a `oneOf`.)
    Exited,
    // The kernel killed it for going over its memory limit (Docker's `State.OOMKilled`).
    OomKilled,
    // The agent stopped it for failing its liveness check, and started it again.
    Unhealthy,
    // A signal ended it (exit code 128 + the signal): `docker kill`, a crash (SIGSEGV).
    Killed,
}

impl TerminationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Exited => "exited",
            TerminationReason::OomKilled => "oom-killed",
            TerminationReason::Unhealthy => "unhealthy",
            TerminationReason::Killed => "killed",
        }
    }
}

/// How far an image pull has got, summed over its layers (a layer not yet started counts
/// once Docker names its size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullProgress {
    /// Bytes downloaded so far.
    pub bytes_done: u64,
    /// Bytes in all, as far as Docker has said.
    pub bytes_total: u64,
}

/// How one post-start action went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionStatus {
    /// The action's `name`.
    pub name: String,
    /// It exited 0 within its timeout.
    pub ok: bool,
    /// Its exit code; absent when it timed out or could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why it failed, with the tail of its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A published port, as other hosts reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Endpoint {
    /// The host's address.
    pub host: String,
    /// The published host port.
    pub port: u16,
}
