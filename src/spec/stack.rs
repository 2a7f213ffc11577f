//! The stack document users write: EVE's schema.org `ItemList` of `SoftwareApplication`s.
//!
//! Enum-like fields (`placementStrategy`, `healthCheck.type`, ...) are kept as strings here
//! so that one unknown value becomes one validation message instead of a parse failure that
//! hides every other problem; `validate` reports the unknown ones, and the accessors below
//! read them as the typed enums of `vocabulary.rs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds::{DAY, MAX_CPUS, MAX_MEMORY_MB, WEEK};
use super::names::{DNS_LABEL_PATTERN, HOST_ID_PATTERN};
use super::vocabulary::{
    DependencyCondition, DeploymentMode, DesiredState, FailureAction, HealthCheckKind,
    PlacementStrategy, PullPolicy, RestartPolicy, UpdateOrder, ENDPOINT_TYPES, MOUNT_TYPES,
    PROTOCOLS,
};

/// More replicas than this is almost surely a typo, and one stack should not be able to
/// flood every host by accident.
pub const MAX_REPLICAS: u32 = 100;

/// A Linux capability as Docker takes it, `NET_RAW` or `CAP_NET_RAW`, or `ALL`.
pub const CAPABILITY_PATTERN: &str = "^(ALL|(CAP_)?[A-Z][A-Z0-9_]*)$";

// The `schemars` attributes below only shape the published JSON Schema (`berth schema
// crds`); they restate what `validate` checks, so editors catch mistakes before etcd does.
// Fields that `validate` requires but serde defaults (so that a missing one is reported
// with the rest) are listed in a struct-level `extend("required" = ...)`: schemars leaves
// every `#[serde(default)]` field optional, and that list replaces its own.

/// A whole stack: the value of `/berth/stacks/<id>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// The one rule spanning stack and services that JSON Schema can express: `manual`
// placement needs a host on every service.
#[schemars(extend(
    "required" = ["itemListElement"],
    "if" = {
        "required": ["deployment"],
        "properties": {"deployment": {
            "type": "object",
            "required": ["placementStrategy"],
            "properties": {"placementStrategy": {"const": "manual"}}
        }}
    },
    "then" = {"properties": {"itemListElement": {"items": {
        "required": ["targetHost"],
        "properties": {"targetHost": {"type": "string"}}
    }}}}
))]
pub struct Stack {
    /// JSON-LD context, usually `https://schema.org`; any JSON value.
    #[serde(rename = "@context", default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    /// JSON-LD type, usually `ItemList`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Display name; any string. The stack's identity is its etcd key, not this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The services (`SoftwareApplication`s); at least one.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub item_list_element: Vec<Service>,
    /// The network every service joins (default: a bridge network `berth-<id>` per host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Named volumes; created if missing and never removed by Berth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// How the services are spread over hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// `running` (default) or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = DesiredState::ALL))]
    pub desired_state: Option<String>,
    /// Remove the named volumes Berth created for this stack when the stack is deleted
    /// (default false: data is never deleted by surprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_volumes_on_delete: Option<bool>,
}

impl Stack {
    /// Whether the stack's images are pinned to the digest the first pull found
    /// (`deployment.pinDigests`).
    pub fn pin_digests(&self) -> bool {
        self.deployment
            .as_ref()
            .and_then(|d| d.pin_digests)
            .unwrap_or(false)
    }

    /// The deployment mode; an unknown string falls back to the default, which only
    /// matters for stacks that have not passed `validate`.
    pub fn mode(&self) -> DeploymentMode {
        self.deployment
            .as_ref()
            .and_then(|d| d.mode.as_deref())
            .and_then(DeploymentMode::parse)
            .unwrap_or_default()
    }

    /// The placement strategy, with the same fallback as [`Stack::mode`].
    pub fn strategy(&self) -> PlacementStrategy {
        self.deployment
            .as_ref()
            .and_then(|d| d.placement_strategy.as_deref())
            .and_then(PlacementStrategy::parse)
            .unwrap_or_default()
    }

    /// The desired state, with the same fallback as [`Stack::mode`].
    pub fn desired_state(&self) -> DesiredState {
        self.desired_state
            .as_deref()
            .and_then(DesiredState::parse)
            .unwrap_or_default()
    }
}

/// The Docker network of a stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Network name (default `berth-<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Docker network driver (default `bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Create the network when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_if_not_exists: Option<bool>,
}

/// A named Docker volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Docker volume name.
    pub name: String,
    /// Docker volume driver (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Create the volume when it is missing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_if_not_exists: Option<bool>,
}

/// How a stack is placed on hosts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// `single-host` (default) or `multi-host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = DeploymentMode::ALL))]
    pub mode: Option<String>,
    /// `manual`, `auto` (default), `spread` or `datacenter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = PlacementStrategy::ALL))]
    pub placement_strategy: Option<String>,
    /// Constraints every service must meet, on top of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_constraints: Vec<HostConstraints>,
    /// How a changed service is replaced, for every service that does not say otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateConfig>,
    /// Run identical bits on every host: once the first host that pulled a revision's
    /// image reports its registry digest, every other slot of that revision is given
    /// `image@digest`, so a tag that moves meanwhile changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_digests: Option<bool>,
}

/// One `SoftwareApplication` of the stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["name", "image"]))]
pub struct Service {
    /// JSON-LD type, usually `SoftwareApplication`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Start order among services with no dependency between them (lowest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// Service name: a DNS label, unique in the stack. Other services reach it by this name.
    #[serde(default)]
    #[schemars(length(min = 1, max = 63), pattern(DNS_LABEL_PATTERN))]
    pub name: String,
    /// Free text, e.g. `Database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_category: Option<String>,
    /// Free text, e.g. the image's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Docker image; used from the local engine, otherwise pulled.
    #[serde(default)]
    #[schemars(pattern(r"\S"))]
    pub image: String,
    /// Argv, or one string run as given (Docker's CMD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// Replaces the image's ENTRYPOINT: an argv, or one string split on whitespace. With
    /// an entrypoint and no `command`, the image's CMD is not used either, as with
    /// `docker run --entrypoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Command>,
    /// Who the process runs as: `user`, `uid`, `user:group` or `uid:gid` (Docker's USER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[^\s:]+(:[^\s:]+)?$"))]
    pub user: Option<String>,
    /// The process's working directory, an absolute path (Docker's WORKDIR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern("^/"))]
    pub working_dir: Option<String>,
    /// Linux capabilities to take away, e.g. `NET_RAW`, or `ALL`. There is no way to add
    /// one (see SECURITY.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(CAPABILITY_PATTERN)))]
    pub cap_drop: Vec<String>,
    /// Environment variables, `NAME: value`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": r"^[^=\x00]+$"}))]
    pub environment: BTreeMap<String, String>,
    /// Ports the container listens on, and the host ports that publish them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Volumes, bind mounts and tmpfs mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Names of services this one depends on (no health wait).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<String>,
    /// Services this one depends on, with options; started first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub software_requirements: Vec<SoftwareRequirement>,
    /// How to tell that the service works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Named commands that can be run in the stack's containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub potential_action: Vec<PotentialAction>,
    /// Host id to run on; required by `manual` placement, honoured by every strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(HOST_ID_PATTERN))]
    pub target_host: Option<String>,
    /// What a host needs to run this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_constraints: Option<HostConstraints>,
    /// How dependents reach this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_endpoint: Option<ServiceEndpoint>,
    /// Number of containers for this service (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_REPLICAS))]
    pub replicas: Option<u32>,
    /// Extra container labels; keys starting with `berth.` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"not": {"pattern": r"^berth\."}}))]
    pub labels: BTreeMap<String, String>,
    /// Resources reserved on the host and applied as Docker limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// How this service is replaced when it changes; overrides `deployment.update` field
    /// by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateConfig>,
    /// When an exited container is started again: `always` (default), `on-failure` (only
    /// after a non-zero exit; exit 0 means done) or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = RestartPolicy::ALL))]
    pub restart_policy: Option<String>,
    /// When the image is pulled: `missing` (default; only when the host lacks it),
    /// `always` (before every create or replace) or `never` (a host that lacks it fails
    /// the slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = PullPolicy::ALL))]
    pub pull_policy: Option<String>,
}

impl Service {
    pub fn replica_count(&self) -> u32 {
        self.replicas.unwrap_or(1)
    }

    /// The restart policy; an unknown string falls back to the default, which only matters
    /// for stacks that have not passed `validate`.
    pub fn restart_policy(&self) -> RestartPolicy {
        self.restart_policy
            .as_deref()
            .and_then(RestartPolicy::parse)
            .unwrap_or_default()
    }

    /// The pull policy; an unknown string falls back to the default, which only matters
    /// for stacks that have not passed `validate`.
    pub fn pull_policy(&self) -> PullPolicy {
        self.pull_policy
            .as_deref()
            .and_then(PullPolicy::parse)
            .unwrap_or_default()
    }

    /// Every service this one depends on, from `requirements` and `softwareRequirements`,
    /// in the order written, without repeats.
    pub fn dependencies(&self) -> Vec<&str> {
        let mut deps: Vec<&str> = Vec::new();
        let names = self
            .requirements
            .iter()
            .map(String::as_str)
            .chain(self.software_requirements.iter().map(|r| r.name.as_str()));
        for name in names {
            if !deps.contains(&name) {
                deps.push(name);
            }
        }
        deps
    }
}

/// `command` as EVE writes it: an argv array, or a single shell-free string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    /// Program and arguments.
    Argv(Vec<String>),
    /// Split on whitespace into program and arguments.
    Line(String),
}

impl Command {
    /// The argv Docker receives. A single string is split on whitespace, like Docker's
    /// CMD in exec form would need; use an array for anything with quoting.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Argv(v) => v.clone(),
            Command::Line(s) => s.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// A port the container listens on, optionally published on the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port inside the container.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i64,
    /// Port published on the host's address; unique per host and protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub host_port: Option<i64>,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = PROTOCOLS))]
    pub protocol: Option<String>,
    /// The host address `hostPort` is published on, e.g. `127.0.0.1` (default: every
    /// address of the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

impl Port {
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("tcp")
    }
}

/// A mount into the container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// Only a tmpfs mount may go without a source.
#[schemars(extend(
    "if" = {"required": ["type"], "properties": {"type": {"const": "tmpfs"}}},
    "else" = {"required": ["source"], "properties": {"source": {"type": "string", "pattern": r"\S"}}}
))]
pub struct VolumeMount {
    /// Volume name, or host path for a `bind` mount; unused for `tmpfs`.
    #[serde(default)]
    pub source: String,
    /// Absolute path in the container.
    #[schemars(pattern("^/"))]
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// `volume` (default), `bind` or `tmpfs`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = MOUNT_TYPES))]
    pub type_: Option<String>,
}

/// A dependency on another service of the stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareRequirement {
    /// JSON-LD type, usually `SoftwareApplication`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Name of the service depended on.
    pub name: String,
    /// Start this service only once the dependency is healthy; the same as
    /// `condition: healthy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_healthy: Option<bool>,
    /// What to wait for before starting this service: `started` (default: only the start
    /// order), `healthy` (every replica running and healthy) or `completed` (every
    /// replica exited 0; the dependency's `restartPolicy` must be `on-failure` or `never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = DependencyCondition::ALL))]
    pub condition: Option<String>,
    /// Template for `<NAME>_URL`, with `{{HOST}}` and `{{PORT}}` filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
}

impl SoftwareRequirement {
    /// What the dependent waits for: `condition`, else `healthy` when `waitForHealthy` is
    /// true, else `started`. An unknown `condition` (rejected by `validate`) counts as
    /// unset.
    pub fn condition(&self) -> DependencyCondition {
        self.condition
            .as_deref()
            .and_then(DependencyCondition::parse)
            .unwrap_or(if self.wait_for_healthy == Some(true) {
                DependencyCondition::Healthy
            } else {
                DependencyCondition::Started
            })
    }
}

/// How a service's health is checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
// An http check needs a path, a command check a command.
#[schemars(extend("required" = ["type"], "allOf" = [
    {
        "if": {"required": ["type"], "properties": {"type": {"const": "http"}}},
        "then": {"required": ["path"], "properties": {"path": {"type": "string", "pattern": "^/"}}}
    },
    {
        "if": {"required": ["type"], "properties": {"type": {"const": "command"}}},
        "then": {"required": ["command"]}
    }
]))]
pub struct HealthCheck {
    /// `http`, `tcp` or `command`.
    #[serde(rename = "type", default)]
    #[schemars(extend("enum" = HealthCheckKind::ALL))]
    pub type_: String,
    /// For `command` checks: run in the container; exit 0 means healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// For `http` checks: the path to GET; 2xx and 3xx mean healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `http` and `tcp` checks: the container port (default: the first one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Seconds between checks (default 10, at most 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = DAY), extend("exclusiveMinimum" = 0))]
    pub interval: Option<f64>,
    /// Seconds one check may take (default 5, at most 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = DAY), extend("exclusiveMinimum" = 0))]
    pub timeout: Option<f64>,
    /// Consecutive failures before unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds after start during which failures do not count (default 0, at most 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = DAY))]
    pub start_period: Option<f64>,
}

impl HealthCheck {
    /// `None` for a type `validate` rejects.
    pub fn kind(&self) -> Option<HealthCheckKind> {
        HealthCheckKind::parse(&self.type_)
    }
}

/// A named command that can be run in the stack's containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("required" = ["command"]))]
pub struct PotentialAction {
    /// JSON-LD type, usually `Action`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Action name.
    #[serde(default)]
    pub name: String,
    /// Free text, e.g. `migration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<String>,
    /// Service to run in (default: the service itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// Seconds (default 60, at most 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = DAY), extend("exclusiveMinimum" = 0))]
    pub timeout: Option<f64>,
    /// Working directory in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

/// What a host needs to run a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostConstraints {
    /// Minimum CPUs the host has (0 to 4096).
    #[serde(rename = "minCPU", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_CPUS))]
    pub min_cpu: Option<f64>,
    /// Minimum memory the host has, in megabytes (at most 67108864, 64 TiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_MEMORY_MB))]
    pub min_memory: Option<u64>,
    /// Labels the host must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_labels: BTreeMap<String, String>,
    /// Datacenter to prefer when several hosts fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_datacenter: Option<String>,
}

/// How dependents reach a service; injected into them as `<NAME>_HOST`, `_PORT`, `_URL`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEndpoint {
    /// `host-port` (default).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ENDPOINT_TYPES))]
    pub type_: Option<String>,
    /// Host port dependents connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub exposed_port: Option<i64>,
    /// E.g. `postgres://{{HOST}}:{{PORT}}/shop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_template: Option<String>,
}

/// What a service reserves on its host; applied as Docker limits too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPUs, e.g. `0.5` (0 to 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_CPUS))]
    pub cpus: Option<f64>,
    /// Memory in megabytes (at most 67108864, 64 TiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_MEMORY_MB))]
    pub memory_mb: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::fixtures::{doc, service};
    use crate::spec::parse_stack;

    #[test]
    fn defaults_apply_when_deployment_and_state_are_absent() {
        let stack = parse_stack(doc("", &service("")).as_bytes()).unwrap();
        assert_eq!(stack.mode(), DeploymentMode::SingleHost);
        assert_eq!(stack.strategy(), PlacementStrategy::Auto);
        assert_eq!(stack.desired_state(), DesiredState::Running);

        let top = r#""deployment":{"mode":"multi-host","placementStrategy":"datacenter"},"desiredState":"stopped""#;
        let stack = parse_stack(doc(top, &service("")).as_bytes()).unwrap();
        assert_eq!(stack.mode(), DeploymentMode::MultiHost);
        assert_eq!(stack.strategy(), PlacementStrategy::Datacenter);
        assert_eq!(stack.desired_state(), DesiredState::Stopped);
    }
}

/// The `update` block as written; every field optional, so a service can override one
/// field of the stack's and inherit the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateConfig {
    /// Slots of one service replaced at once, across all hosts; 0 means all at once
    /// (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_REPLICAS))]
    pub parallelism: Option<i64>,
    /// `start-first` or `stop-first` (default: start-first where the old and new
    /// containers can run side by side, else stop-first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = UpdateOrder::ALL))]
    pub order: Option<String>,
    /// Seconds to wait after a batch succeeds before the next one (default 0, at most
    /// 604800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = WEEK))]
    pub delay: Option<f64>,
    /// Seconds a replaced slot must stay running and healthy to count as a success
    /// (default 5, at most 604800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = WEEK))]
    pub monitor: Option<f64>,
    /// Seconds a replaced slot has to become healthy before it counts as failed
    /// (default 120, at most 604800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = WEEK))]
    pub deadline: Option<f64>,
    /// `rollback` (default), `pause` or `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = FailureAction::ALL))]
    pub failure_action: Option<String>,
    /// Failures tolerated, as a fraction of the slots being updated, before
    /// `failureAction` fires (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub max_failure_ratio: Option<f64>,
}
