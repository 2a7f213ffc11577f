//! What the scheduler hands a host: for one stack, the slots placed there, each with its
//! container fully resolved (image, env with injected dependency addresses, ports, ...).
//! Stored at `assignments/<host>/<stack>`; the agent needs nothing else to converge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::slot::{slot_key, SlotId};
use crate::spec::{
    DesiredState, HealthCheck, PotentialAction, PullPolicy, RestartPolicy, UpdateOrder,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub stack: String,
    /// `mod_revision` of the stack spec this assignment was derived from.
    pub spec_revision: i64,
    pub desired_state: DesiredState,
    pub network: NetworkSpec,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    pub slots: Vec<Slot>,
    /// Set once the stack's spec is deleted: a tombstone with no slots. It tells the
    /// agent the stack was deleted rather than moved away (only then do the volumes it
    /// asked to lose go), without the agent reading any stack's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deletion>,
}

/// When the leader saw a stack's spec gone; it keeps the tombstone for
/// [`Deletion::RETENTION_MS`] so an agent that was away then still learns of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    pub at_ms: u64,
}

impl Deletion {
    /// A day: an agent away longer keeps the stack's volumes (data is never lost by
    /// surprise), and `docker volume rm` is left to the operator.
    pub const RETENTION_MS: u64 = 24 * 60 * 60 * 1000;
}

impl Assignment {
    /// Gives back the room its slot list grew into. The controller holds an assignment
    /// per host and stack, most with one slot of about 640 bytes, and a list grown by
    /// pushes, or by serde (which does not know the length), has room for four: at
    /// 1,000 hosts that was 19 MB of the decoded world and as much again in each pass's
    /// decision (heaptrack, `docs/scale.md`).
    pub fn compact(&mut self) {
        self.slots.shrink_to_fit();
    }

    /// A deleted stack's tombstone: nothing runs from it.
    pub fn is_tombstone(&self) -> bool {
        self.deleted.is_some()
    }

    /// The newest etcd revision it reflects: its spec's, or a newer one of a secret one of
    /// its containers pins. A rotated secret makes it newer, as a new spec does.
    pub fn revision(&self) -> i64 {
        self.slots
            .iter()
            .flat_map(|s| s.container.secret_revisions.values())
            .copied()
            .fold(self.spec_revision, i64::max)
    }

    /// The slot `id` names, if this assignment holds it.
    pub fn slot(&self, id: &SlotId) -> Option<&Slot> {
        if self.stack != id.stack {
            return None;
        }
        self.slots.iter().find(|s| s.is(id))
    }

    /// Replica `replica` of `service`, if this assignment holds it.
    pub fn slot_of(&self, service: &str, replica: u32) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| s.service == service && s.replica == replica)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    pub name: String,
    pub driver: String,
    /// Create it when it is missing (`createIfNotExists`); otherwise a missing network is
    /// reported and waited for.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub create: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    pub name: String,
    pub driver: String,
    /// Created with the `berth.remove-on-delete` label: removed when its stack is deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_on_delete: bool,
    /// Create it when it is missing (`createIfNotExists`); otherwise a missing volume is
    /// reported and waited for (Docker would create it silently on first mount).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub create: bool,
}

/// One container's worth of a service: `(stack, service, replica)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub service: String,
    /// 1-based.
    pub replica: u32,
    /// Position in the stack's start order (dependencies first).
    pub order: u32,
    pub container: ContainerSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// This copy stays only until its replacement on another host is available (a drain
    /// or rebalance moves a slot without leaving it empty); the agent runs it as usual.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handoff: bool,
    /// Dependencies it waits for that are not there yet, each saying what is awaited:
    /// `db (host-1) to be healthy` (`condition: healthy`, or `waitForHealthy`),
    /// `migrate (host-1) to complete` (`condition: completed`). While any is listed the
    /// agent creates, starts or replaces nothing for this slot (a running container is
    /// left as it is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// `potentialAction`s to run once the container is healthy, once per version of the
    /// service (see [`Slot::actions_key`]); only the first replica runs them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<PotentialAction>,
    /// The actions have already run for this version (the controller saw their record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub actions_done: bool,
    /// The service's `update.order`; `None` means start-first where the old and new
    /// containers can run side by side, else stop-first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_order: Option<UpdateOrder>,
    /// The service's `restartPolicy`: whether an exited container is started again, or is
    /// finished and kept as it is. Not part of the container's spec hash: a new policy
    /// applies to the container there is, without replacing it.
    #[serde(default, skip_serializing_if = "RestartPolicy::is_always")]
    pub restart_policy: RestartPolicy,
    /// The service's `pullPolicy`: when the agent pulls the image. Not part of the
    /// container's spec hash: a new policy applies at the next create or replace.
    #[serde(default, skip_serializing_if = "PullPolicy::is_missing")]
    pub pull_policy: PullPolicy,
    /// The environment variables Berth injected for dependencies (`<DEP>_HOST`, `_PORT`,
    /// `_URL`): a dependency that moves changes them, which replaces the container but is
    /// not a new version of this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected_env: Vec<String>,
}

impl Slot {
    /// `<service>.<replica>`: unique within a stack (service names cannot contain dots).
    pub fn key(&self) -> String {
        slot_key(&self.service, self.replica)
    }

    /// A slot of start-order level 0 with nothing but its identity and container: the
    /// base the tests build theirs on.
    #[cfg(test)]
    pub fn bare(service: &str, replica: u32, container: ContainerSpec) -> Slot {
        Slot {
            service: service.into(),
            replica,
            order: 0,
            container,
            health_check: None,
            handoff: false,
            waiting_for: Vec::new(),
            post_start: Vec::new(),
            actions_done: false,
            update_order: None,
            restart_policy: RestartPolicy::Always,
            pull_policy: PullPolicy::Missing,
            injected_env: Vec::new(),
        }
    }

    /// Its identity within `stack`.
    pub fn id(&self, stack: &str) -> SlotId {
        SlotId::new(stack, &self.service, self.replica)
    }

    /// Whether it is `id`'s slot (the caller knows the stack matches).
    pub fn is(&self, id: &SlotId) -> bool {
        self.replica == id.replica && self.service == id.service
    }

    /// Identifies the version of the service its post-start actions belong to: its
    /// container spec without the injected dependency addresses, and the actions
    /// themselves. Not the host, nor where its dependencies run: a move of the service or
    /// of a dependency does not run them again.
    pub fn actions_key(&self, network: &str) -> String {
        let mut own = self.container.clone();
        for k in &self.injected_env {
            own.env.remove(k);
        }
        self.key_of(&own, network)
    }

    /// The key as Berth computed it before it told injected variables apart (with
    /// them): a record under it still counts, so an upgrade runs no action again.
    pub fn legacy_actions_key(&self, network: &str) -> String {
        self.key_of(&self.container, network)
    }

    /// Whether a record with `key` says the actions of this version have run.
    pub fn actions_ran(&self, key: &str, network: &str) -> bool {
        key == self.actions_key(network) || key == self.legacy_actions_key(network)
    }

    fn key_of(&self, container: &ContainerSpec, network: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(container.hash(network).as_bytes());
        h.update(serde_json::to_vec(&self.post_start).unwrap_or_default());
        hex::encode(&h.finalize()[..8])
    }
}

/// The prefix of the variables injected for dependency `service`: `<NAME>_HOST`,
/// `<NAME>_PORT`, `<NAME>_URL`, with `NAME` upper-cased and `-` turned into `_`.
pub fn env_prefix(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// Everything Docker needs to create the container. Its hash is the container's
/// `berth.spec-hash` label, so any change here means the container is replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    // The fields below that default to nothing are left out when unset, so a spec that
    // uses none of them hashes as it did before they existed: no container is replaced
    // by an upgrade.
    /// Replaces the image's ENTRYPOINT (and then its CMD too, as Docker does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// The user's own labels; Berth adds its `berth.*` labels on top.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Names other containers on the stack network reach this one by.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A `command` health check, run by Docker itself so `docker ps` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<DockerHealthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// For each secret `env` refers to (`{{secret:NAME}}`), the `mod_revision` of its key
    /// when the controller built this spec: a rotated secret changes the spec, and so the
    /// hash, without its value ever entering either. The agent fills in the value as of
    /// that revision. A secret that did not exist is left out. Empty is not serialized, so
    /// specs without secrets hash as they always did.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_revisions: BTreeMap<String, i64>,
}

impl ContainerSpec {
    /// A short, stable digest of everything that shapes the container, joined to
    /// `network`. `ContainerSpec` holds only ordered collections, so its JSON is
    /// canonical. The controller computes it too, to know whether a report speaks of the
    /// current spec.
    pub fn hash(&self, network: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).unwrap_or_default());
        h.update(b"\0network=");
        h.update(network.as_bytes());
        hex::encode(&h.finalize()[..8])
    }
}

/// Why a replacement cannot start beside the container it replaces, so that the old one
/// must stop first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clash {
    /// Both would bind this host port.
    HostPort { port: u16, protocol: String },
    /// The new one mounts a volume or host path the old one may be writing (two
    /// databases on one data directory).
    DataMount { target: String },
}

impl std::fmt::Display for Clash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clash::HostPort { port, protocol } => write!(f, "host port {port}/{protocol}"),
            Clash::DataMount { target } => write!(f, "data mount {target}"),
        }
    }
}

impl ContainerSpec {
    /// What keeps this container from running beside a predecessor that binds
    /// `old_host_ports` (host port, protocol); `None` when they can run side by side.
    pub fn clash_with(&self, old_host_ports: &[(u16, String)]) -> Option<Clash> {
        let port = self.ports.iter().find_map(|p| {
            let hp = p.host_port?;
            old_host_ports
                .iter()
                .any(|(op, proto)| *op == hp && *proto == p.protocol)
                .then(|| Clash::HostPort {
                    port: hp,
                    protocol: p.protocol.clone(),
                })
        });
        port.or_else(|| {
            self.mounts
                .iter()
                .find(|m| m.kind != "tmpfs")
                .map(|m| Clash::DataMount {
                    target: m.target.clone(),
                })
        })
    }

    /// The host ports it binds, as [`clash_with`](ContainerSpec::clash_with) takes them.
    pub fn host_ports(&self) -> Vec<(u16, String)> {
        self.ports
            .iter()
            .filter_map(|p| Some((p.host_port?, p.protocol.clone())))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortBinding {
    pub container_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub protocol: String,
    /// The host address the port is published on; every address when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountSpec {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    #[serde(default)]
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerHealthcheck {
    pub command: Vec<String>,
    pub interval_secs: f64,
    pub timeout_secs: f64,
    pub retries: u32,
    pub start_period_secs: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secrets: &[(&str, i64)]) -> ContainerSpec {
        ContainerSpec {
            image: "img:1".into(),
            env: BTreeMap::from([("A".into(), "1".into())]),
            secret_revisions: secrets.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn secret_revisions_shape_the_hash_and_leave_older_hashes_as_they_were() {
        // Computed before `secretRevisions` existed: a spec without secrets keeps it, so
        // no running container is replaced by the upgrade.
        assert_eq!(spec(&[]).hash("n"), "82f06920f5c8a156");
        assert!(!serde_json::to_string(&spec(&[]))
            .unwrap()
            .contains("secretRevisions"));
        // (case, spec, hashes like the one pinning pw at 3)
        let base = spec(&[("pw", 3)]).hash("n");
        let cases = [
            ("the same pin", spec(&[("pw", 3)]), true),
            ("a rotated secret", spec(&[("pw", 9)]), false),
            ("another secret", spec(&[("pw", 3), ("tls", 4)]), false),
            ("no pin", spec(&[]), false),
        ];
        for (name, s, same) in cases {
            assert_eq!(s.hash("n") == base, same, "{name}");
        }
    }

    #[test]
    fn fields_added_later_leave_the_hash_of_a_spec_without_them_alone() {
        let old = spec(&[]);
        let hash = old.hash("n");
        let mut with_ip = old.clone();
        with_ip.ports.push(PortBinding {
            container_port: 80,
            host_port: Some(8080),
            protocol: "tcp".into(),
            host_ip: None,
        });
        let json = serde_json::to_string(&with_ip).unwrap();
        for field in ["entrypoint", "user", "workingDir", "capDrop", "hostIp"] {
            assert!(!json.contains(field), "{field} is serialized when unset");
        }
        // Each one, set, is a different container.
        type Set = fn(&mut ContainerSpec);
        let variants: [(&str, Set); 4] = [
            ("entrypoint", |c| c.entrypoint = Some(vec!["sh".into()])),
            ("user", |c| c.user = Some("1".into())),
            ("workingDir", |c| c.working_dir = Some("/w".into())),
            ("capDrop", |c| c.cap_drop = vec!["ALL".into()]),
        ];
        for (name, set) in variants {
            let mut c = old.clone();
            set(&mut c);
            assert_ne!(c.hash("n"), hash, "{name}");
        }
        assert_eq!(spec(&[]).hash("n"), hash);
    }

    #[test]
    fn an_assignment_reflects_its_newest_spec_or_secret_revision() {
        let a = |pins: &[&[(&str, i64)]]| Assignment {
            deleted: None,
            stack: "s".into(),
            spec_revision: 5,
            desired_state: DesiredState::Running,
            network: NetworkSpec {
                name: "n".into(),
                driver: "bridge".into(),
                create: true,
            },
            volumes: vec![],
            slots: pins
                .iter()
                .enumerate()
                .map(|(i, p)| Slot::bare("web", i as u32 + 1, spec(p)))
                .collect(),
        };
        // (case, assignment, revision)
        let cases = [
            ("no secrets", a(&[&[]]), 5),
            ("secrets older than the spec", a(&[&[("pw", 3)]]), 5),
            (
                "a secret rotated later",
                a(&[&[("pw", 9)], &[("pw", 3)]]),
                9,
            ),
            ("the newest of several", a(&[&[("pw", 7), ("tls", 8)]]), 8),
        ];
        for (name, assignment, want) in cases {
            assert_eq!(assignment.revision(), want, "{name}");
        }
    }

    #[test]
    fn a_dependencys_new_address_is_not_a_new_version_for_post_start_actions() {
        let with = |db_host: &str, user: &str| {
            let mut c = ContainerSpec {
                image: "app".into(),
                ..Default::default()
            };
            c.env.insert("DB_HOST".into(), db_host.into());
            c.env.insert("MODE".into(), user.into());
            let mut s = Slot::bare("app", 1, c);
            s.injected_env = vec!["DB_HOST".into()];
            s
        };
        let before = with("10.0.0.1", "a");
        let moved = with("10.0.0.2", "a");
        let changed = with("10.0.0.1", "b");
        assert_ne!(
            before.container.hash("n"),
            moved.container.hash("n"),
            "replaced"
        );
        assert_eq!(
            before.actions_key("n"),
            moved.actions_key("n"),
            "same version"
        );
        assert_ne!(
            before.actions_key("n"),
            changed.actions_key("n"),
            "the user's change"
        );
        // A record written before injected variables were told apart still counts.
        assert!(before.actions_ran(&before.legacy_actions_key("n"), "n"));
        assert!(!moved.actions_ran(&changed.actions_key("n"), "n"));
    }
}
