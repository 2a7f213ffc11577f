//! The copies of secrets and registry logins the leader hands each agent, at
//! `hostsecrets/<host>/...`: exactly those the slots placed on the host need, so an agent
//! reads no other host's secrets. Pure: [`needs`] reads the assignments, [`wanted`] makes
//! the copies from the values the executor gathered, and [`plan`] compares them with what
//! etcd holds (by hash) into the writes. Agentless hosts get none: the controller drives
//! them and reads `secrets/` itself.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignment::Assignment;
use crate::hostsecret::HostSecret;
use crate::registry::{registry_of, RegistryLogin};
use crate::store::{keys, Expect, Write};

/// What the slots placed on one host need handed to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNeeds {
    /// Secret name -> the revisions its containers pin; `None`: one pins nothing (the
    /// secret did not exist when its spec was built), so it gets the current value.
    pub secrets: BTreeMap<String, BTreeSet<Option<i64>>>,
    /// The registries its images name.
    pub registries: BTreeSet<String>,
}

/// Per host with an agent, what its slots need. `agentless` says which hosts the
/// controller drives itself.
pub fn needs<'a>(
    assignments: impl IntoIterator<Item = (&'a str, &'a Assignment)>,
    agentless: impl Fn(&str) -> bool,
) -> BTreeMap<String, HostNeeds> {
    let mut out: BTreeMap<String, HostNeeds> = BTreeMap::new();
    for (host, a) in assignments {
        if agentless(host) {
            continue;
        }
        let n = out.entry(host.to_owned()).or_default();
        for s in &a.slots {
            let c = &s.container;
            for name in c.env.values().flat_map(|v| crate::spec::secret_refs(v)) {
                n.secrets
                    .entry(name.to_owned())
                    .or_default()
                    .insert(c.secret_revisions.get(name).copied());
            }
            n.registries.insert(registry_of(&c.image));
        }
    }
    out
}

/// The values the copies are made from, read by the executor; kept for one pass only.
/// No `Debug`: it holds values.
#[derive(Default)]
pub struct Sources {
    /// Secret name -> its key's `mod_revision` and value now.
    pub current: BTreeMap<String, (i64, String)>,
    /// (name, revision) -> the value as of that revision, for pins older than the current
    /// one; absent when etcd compacted it away (the copy then carries the current one).
    pub past: BTreeMap<(String, i64), String>,
    /// Registry -> its login at `registries/<registry>`, password as stored.
    pub logins: BTreeMap<String, RegistryLogin>,
}

/// The past revisions [`wanted`] needs read: pins older than the secret's current one.
pub fn past_needed(
    needs: &BTreeMap<String, HostNeeds>,
    sources: &Sources,
) -> BTreeSet<(String, i64)> {
    needs
        .values()
        .flat_map(|n| &n.secrets)
        .filter_map(|(name, pins)| Some((name, pins, sources.current.get(name)?.0)))
        .flat_map(|(name, pins, now)| {
            pins.iter()
                .flatten()
                .filter(move |p| **p != now)
                .map(move |p| (name.clone(), *p))
        })
        .collect()
}

/// Every copy the hosts should hold: key -> value. A secret that does not exist now gets
/// none (a deleted secret is never handed out from history), nor does a registry without
/// a login in etcd or whose password names a secret that does not exist.
pub fn wanted(needs: &BTreeMap<String, HostNeeds>, sources: &Sources) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (host, n) in needs {
        for (name, pins) in &n.secrets {
            let Some((current, value)) = sources.current.get(name) else {
                continue;
            };
            let mut copy = HostSecret {
                current: *current,
                versions: BTreeMap::new(),
            };
            for pin in pins {
                match pin.and_then(|p| Some((p, sources.past.get(&(name.clone(), p))?))) {
                    Some((p, old)) if p != *current => {
                        copy.versions.insert(p, old.clone());
                    }
                    _ => {
                        copy.versions.insert(*current, value.clone());
                    }
                }
            }
            out.insert(
                keys::host_secret(host, name),
                serde_json::to_vec(&copy).unwrap_or_default(),
            );
        }
        for registry in &n.registries {
            let Some(login) = sources.logins.get(registry) else {
                continue;
            };
            let filled = crate::spec::substitute(&login.password, |s| {
                sources.current.get(s).map(|(_, v)| v.clone())
            });
            let Ok(password) = filled else {
                continue;
            };
            let copy = RegistryLogin {
                username: login.username.clone(),
                password,
            };
            out.insert(
                keys::host_registry(host, registry),
                serde_json::to_vec(&copy).unwrap_or_default(),
            );
        }
    }
    out
}

/// A copy etcd holds, as the controller's world records it: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub hash: String,
    pub mod_revision: i64,
}

/// The hash copies are compared by.
pub fn hash(value: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(value))
}

/// The writes that bring the copies in etcd to `wanted`: puts go before the assignments
/// that need them (an agent never sees a pin its copy lacks), deletes after the
/// assignments that no longer do. No `Debug`: the puts hold values.
#[derive(Default)]
pub struct CopyWrites {
    pub puts: Vec<Write>,
    pub deletes: Vec<Write>,
}

pub fn plan(wanted: BTreeMap<String, Vec<u8>>, held: &BTreeMap<&str, &Held>) -> CopyWrites {
    let mut out = CopyWrites::default();
    for (key, h) in held {
        if !wanted.contains_key(*key) {
            out.deletes.push(Write::Delete {
                key: (*key).to_owned(),
                expect: Expect::Revision(h.mod_revision),
            });
        }
    }
    for (key, value) in wanted {
        let had = held.get(key.as_str());
        if had.is_some_and(|h| h.hash == hash(&value)) {
            continue;
        }
        out.puts.push(Write::Put {
            key,
            value,
            expect: had.map_or(Expect::Absent, |h| Expect::Revision(h.mod_revision)),
        });
    }
    out
}

#[cfg(test)]
mod tests;
