//! Everything under the prefix, decoded from one consistent cache snapshot: the
//! controller's (and `berth rebalance`'s) view of the cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::history::HistoryEntry;
use super::hostsecrets::{self, Held};
use super::rollout::Rollout;
use crate::assignment::Assignment;
use crate::report::{ActionRecord, SlotReport};
use crate::spec::{HostRegistration, StackStatus};
use crate::store::{keys, Cache};

/// An operator's hold on a host, at `maintenance/<host>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// No new slots go here.
    #[serde(default)]
    pub cordoned: bool,
    /// Slots move elsewhere (implies cordoned).
    #[serde(default)]
    pub draining: bool,
}

/// A Docker host without an agent, at `agentless/<host>` (`berth host add`): the leading
/// controller runs the same reconciler for it over the remote Docker API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentlessHost {
    /// `tcp://IP:2376` (or a unix socket path).
    pub docker_host: String,
    /// The address other hosts use to reach ports it publishes.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Host paths under which bind mounts are allowed there (none by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_bind_prefixes: Vec<String>,
    /// TLS client files for `tcp://` Docker, as paths on the controllers' machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// Plain TCP was accepted explicitly (`--insecure-docker`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Being removed (`berth host remove`): every slot leaves it, pinned ones included,
    /// its Berth containers go as they do, and the controller then deletes this key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removing: bool,
}

impl AgentlessHost {
    /// What decides how the host is driven: everything but whether it is being removed,
    /// so a removal keeps the reconciler that carries it out.
    pub fn engine(&self) -> AgentlessHost {
        AgentlessHost {
            removing: false,
            ..self.clone()
        }
    }
}

#[derive(Debug, Default)]
pub struct World {
    /// Stack id -> (spec key's mod_revision, raw spec).
    pub stacks: BTreeMap<String, (i64, Vec<u8>)>,
    pub hosts: BTreeMap<String, HostRegistration>,
    pub maintenance: BTreeMap<String, Maintenance>,
    /// Stack id -> mod_revision of its rebalance request.
    pub rebalance: BTreeMap<String, i64>,
    /// (host, stack) -> (assignment, mod_revision).
    pub assignments: BTreeMap<(String, String), (Assignment, i64)>,
    pub reports: Vec<SlotReport>,
    /// Stack id -> (decoded status if readable, mod_revision).
    pub statuses: BTreeMap<String, (Option<StackStatus>, i64)>,
    /// (stack, service) -> the record of its post-start actions.
    pub actions: BTreeMap<(String, String), ActionRecord>,
    /// Hosts the controller drives itself, with their keys' mod_revisions.
    pub agentless: BTreeMap<String, (AgentlessHost, i64)>,
    /// Stack id -> (its rollout record, mod_revision).
    pub rollouts: BTreeMap<String, (Rollout, i64)>,
    /// Stacks whose rollouts an operator paused.
    pub paused: BTreeSet<String>,
    /// Stack id -> spec revision -> (its history entry, mod_revision).
    pub history: BTreeMap<String, BTreeMap<i64, (HistoryEntry, i64)>>,
    /// Secret name -> its key's mod_revision. Never its value: what the controller
    /// derives from a secret is only which version of it a container should get.
    pub secrets: BTreeMap<String, i64>,
    /// Key -> the copy of a secret or registry login held for a host
    /// (`hostsecrets/<host>/...`), by hash: never its value.
    pub host_copies: BTreeMap<String, Held>,
}

impl World {
    /// The world as people see it: a deleted stack's tombstones (which only tell its
    /// hosts' agents it was deleted) are not shown as assignments.
    pub fn decode_for_view(snap: &Cache) -> World {
        let mut w = World::decode(snap);
        w.assignments.retain(|_, (a, _)| !a.is_tombstone());
        w
    }

    pub fn decode(snap: &Cache) -> World {
        let mut w = World::default();
        for kv in snap.entries.values() {
            let one = |prefix: &str| -> Option<String> {
                match keys::parts(&kv.key, prefix)?.as_slice() {
                    [id] => Some((*id).to_owned()),
                    _ => None,
                }
            };
            if let Some(id) = one(keys::STACKS) {
                w.stacks.insert(id, (kv.mod_revision, kv.value.clone()));
            } else if let Some(id) = one(keys::HOSTS) {
                match serde_json::from_slice::<HostRegistration>(&kv.value) {
                    Ok(mut reg) => {
                        // The key names the host, whatever the value says.
                        reg.id = id.clone();
                        w.hosts.insert(id, reg);
                    }
                    Err(e) => {
                        tracing::warn!(host = %id, error = %e, "unreadable host registration ignored")
                    }
                }
            } else if let Some(id) = one(keys::MAINTENANCE) {
                let m = serde_json::from_slice::<Maintenance>(&kv.value).unwrap_or(Maintenance {
                    cordoned: true,
                    draining: false,
                });
                w.maintenance.insert(id, m);
            } else if let Some(id) = one(keys::AGENTLESS) {
                match serde_json::from_slice::<AgentlessHost>(&kv.value) {
                    Ok(h) => {
                        w.agentless.insert(id, (h, kv.mod_revision));
                    }
                    Err(e) => {
                        tracing::warn!(host = %id, error = %e, "unreadable agentless host ignored")
                    }
                }
            } else if let Some(id) = one(keys::REBALANCE) {
                w.rebalance.insert(id, kv.mod_revision);
            } else if let Some(p) = keys::parts(&kv.key, keys::ASSIGNMENTS) {
                if let [host, stack] = p.as_slice() {
                    match serde_json::from_slice::<Assignment>(&kv.value) {
                        Ok(a) => {
                            w.assignments.insert(
                                ((*host).to_owned(), (*stack).to_owned()),
                                (a, kv.mod_revision),
                            );
                        }
                        Err(e) => {
                            tracing::warn!(key = %kv.key, error = %e, "unreadable assignment ignored")
                        }
                    }
                }
            } else if keys::parts(&kv.key, keys::REPORTS).is_some() {
                if let Ok(r) = serde_json::from_slice::<SlotReport>(&kv.value) {
                    w.reports.push(r);
                }
            } else if let Some(p) = keys::parts(&kv.key, keys::ACTIONS) {
                if let ([host, stack, service], Ok(mut r)) = (
                    p.as_slice(),
                    serde_json::from_slice::<ActionRecord>(&kv.value),
                ) {
                    // The key names the host that ran them, whatever the value says.
                    r.host = (*host).to_owned();
                    w.actions
                        .insert(((*stack).to_owned(), (*service).to_owned()), r);
                }
            } else if let Some(id) = one(keys::ROLLOUTS) {
                match serde_json::from_slice::<Rollout>(&kv.value) {
                    Ok(r) => {
                        w.rollouts.insert(id, (r, kv.mod_revision));
                    }
                    Err(e) => {
                        // Rewritten by the next pass, as if no rollout had been under way.
                        tracing::warn!(stack = %id, error = %e, "unreadable rollout record ignored")
                    }
                }
            } else if let Some(id) = one(keys::PAUSE) {
                w.paused.insert(id);
            } else if let Some(p) = keys::parts(&kv.key, keys::HISTORY) {
                let entry = match p.as_slice() {
                    [stack, rev] => rev.parse::<i64>().ok().map(|r| (*stack, r)),
                    _ => None,
                };
                match (entry, serde_json::from_slice::<HistoryEntry>(&kv.value)) {
                    (Some((stack, rev)), Ok(e)) => {
                        w.history
                            .entry(stack.to_owned())
                            .or_default()
                            .insert(rev, (e, kv.mod_revision));
                    }
                    _ => {
                        tracing::warn!(key = %kv.key, "unreadable history entry ignored")
                    }
                }
            } else if kv.key.starts_with(keys::HOST_SECRETS) {
                let held = Held {
                    hash: hostsecrets::hash(&kv.value),
                    mod_revision: kv.mod_revision,
                };
                w.host_copies.insert(kv.key.clone(), held);
            } else if let Some(name) = one(keys::SECRETS) {
                w.secrets.insert(name, kv.mod_revision);
            } else if let Some(id) = one(keys::STATUS) {
                let s = serde_json::from_slice::<StackStatus>(&kv.value).ok();
                w.statuses.insert(id, (s, kv.mod_revision));
            }
        }
        w
    }

    /// Whether `host` is an agentless host being removed.
    pub fn removing(&self, host: &str) -> bool {
        self.agentless.get(host).is_some_and(|(a, _)| a.removing)
    }

    /// Hosts that have assignments but no registration.
    pub fn unregistered_hosts(&self) -> BTreeSet<&str> {
        self.assignments
            .keys()
            .map(|(h, _)| h.as_str())
            .filter(|h| !self.hosts.contains_key(*h))
            .collect()
    }
}
