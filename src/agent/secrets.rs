//! `{{secret:NAME}}` references filled in from etcd at the last moment (an agent from its
//! host's copies, `hostsecrets/<host>/`; the controller driving an agentless host from
//! `secrets/`), into a copy handed to Docker: never into an assignment, a report, a log
//! line or the spec hash. A container
//! gets each secret as of the revision its spec pins (`secretRevisions`), so a rollback of
//! a rotation, or an old slot created again while a rotation rolls, gets the value that
//! goes with its spec.

use std::collections::BTreeMap;

use super::desired::DesiredContainer;
use crate::hostsecret::{HostSecret, Pick};
use crate::store::{keys, AtRevision, Store};

/// A container with its secrets filled in.
#[derive(Debug)]
pub struct Resolved {
    pub container: DesiredContainer,
    /// Secrets whose pinned version etcd had compacted away, filled in with their current
    /// one instead.
    pub compacted: Vec<Compacted>,
    /// The values filled in, to hide wherever the container's own output is shown (its
    /// `lastTermination.logTail`); never logged nor stored.
    pub values: Vec<String>,
}

/// A pinned secret version that was gone: names and revisions only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub name: String,
    pub pinned: i64,
    pub current: i64,
}

impl Compacted {
    /// For the event and the log.
    pub fn message(&self) -> String {
        format!(
            "secret {}: revision {} is compacted away in etcd; filled in with its current version (revision {})",
            self.name, self.pinned, self.current
        )
    }
}

/// Which version of a secret to fill in, from the revision the spec pins and the one its
/// key has now (`None`: absent). Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The value the key holds now.
    Current,
    /// The value as of this revision: the key has changed since the spec was built.
    Pinned(i64),
    /// There is none: the key does not exist (deleted secrets are never filled in, even
    /// from history).
    Missing,
}

pub fn version(pinned: Option<i64>, current: Option<i64>) -> Version {
    match (pinned, current) {
        (_, None) => Version::Missing,
        (Some(p), Some(c)) if p != c => Version::Pinned(p),
        (_, Some(_)) => Version::Current,
    }
}

/// Where a reconciler reads secrets and registry logins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecretSource {
    /// Its host's copies at `hostsecrets/<host>/`, which the leader hands out: an agent,
    /// whose role reads no other host's secrets.
    #[default]
    HostCopies,
    /// The originals at `secrets/` and `registries/`: the controller driving an agentless
    /// host, which holds the whole prefix anyway.
    Originals,
}

/// A copy of `d` with its secret references filled in, `None` when it has none, or why
/// it cannot be created yet (a secret missing, unreadable or not yet delivered to `host`:
/// retried, not permanent).
pub async fn resolve(
    store: &Store,
    source: SecretSource,
    host: &str,
    d: &DesiredContainer,
) -> Result<Option<Resolved>, String> {
    let names: Vec<&str> = d
        .spec()
        .env
        .values()
        .flat_map(|v| crate::spec::secret_refs(v))
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    let mut compacted = Vec::new();
    for n in names {
        let pinned = d.spec().secret_revisions.get(n).copied();
        let (value, gone) = match source {
            SecretSource::HostCopies => from_copy(store, host, n, pinned).await?,
            SecretSource::Originals => from_original(store, n, pinned).await?,
        };
        compacted.extend(gone);
        values.insert(n, value);
    }
    let mut copy = d.clone();
    for v in copy.slot.container.env.values_mut() {
        *v = crate::spec::substitute(v, |n| values.get(n).cloned())
            .map_err(|n| format!("secret {n} not found"))?;
    }
    Ok(Some(Resolved {
        container: copy,
        compacted,
        values: values.into_values().collect(),
    }))
}

/// Secret `n` as of `pinned` from `host`'s copy (`hostsecrets/<host>/<n>`).
async fn from_copy(
    store: &Store,
    host: &str,
    n: &str,
    pinned: Option<i64>,
) -> Result<(String, Option<Compacted>), String> {
    let not_delivered = || format!("secret {n} not yet delivered to host {host}");
    let kv = store
        .get(&keys::host_secret(host, n))
        .await
        .map_err(|e| format!("reading secret {n}: {}", crate::error_chain(&e)))?
        .ok_or_else(not_delivered)?;
    // Never quote the value, nor serde's error, which may.
    let copy: HostSecret = serde_json::from_slice(&kv.value)
        .map_err(|_| format!("host {host}'s copy of secret {n} is unreadable"))?;
    match copy.pick(pinned) {
        Pick::Value(v) => Ok((v.to_owned(), None)),
        Pick::Compacted { current, value } => Ok((
            value.to_owned(),
            pinned.map(|p| Compacted {
                name: n.to_owned(),
                pinned: p,
                current,
            }),
        )),
        Pick::Missing => Err(not_delivered()),
    }
}

/// Secret `n` as of `pinned` from `secrets/<n>` and etcd's history.
async fn from_original(
    store: &Store,
    n: &str,
    pinned: Option<i64>,
) -> Result<(String, Option<Compacted>), String> {
    let key = keys::secret(n);
    let not_found = || format!("secret {n} not found at {}{key}", store.prefix());
    let current = store
        .get(&key)
        .await
        .map_err(|e| format!("reading secret {n}: {}", crate::error_chain(&e)))?;
    let mut compacted = None;
    let kv = match version(pinned, current.as_ref().map(|kv| kv.mod_revision)) {
        Version::Missing => return Err(not_found()),
        Version::Current => current.ok_or_else(not_found)?,
        Version::Pinned(rev) => match store.get_at(&key, rev).await {
            Ok(AtRevision::Found(kv)) => kv,
            Ok(AtRevision::Absent) => return Err(not_found()),
            Ok(AtRevision::Compacted) => {
                let now = current.ok_or_else(not_found)?;
                compacted = Some(Compacted {
                    name: n.to_owned(),
                    pinned: rev,
                    current: now.mod_revision,
                });
                now
            }
            Err(e) => {
                return Err(format!(
                    "reading secret {n} at revision {rev}: {}",
                    crate::error_chain(&e)
                ))
            }
        },
    };
    Ok((String::from_utf8_lossy(&kv.value).into_owned(), compacted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_gets_the_secret_version_its_spec_pins() {
        // (case, pinned, current, version)
        let cases = [
            (
                "not pinned: the current value",
                None,
                Some(7),
                Version::Current,
            ),
            ("pinned and unchanged", Some(7), Some(7), Version::Current),
            (
                "rotated since the spec was built: the pinned value",
                Some(7),
                Some(9),
                Version::Pinned(7),
            ),
            ("never there", None, None, Version::Missing),
            (
                "deleted since: missing, not filled in from history",
                Some(7),
                None,
                Version::Missing,
            ),
        ];
        for (name, pinned, current, want) in cases {
            assert_eq!(version(pinned, current), want, "{name}");
        }
    }

    #[test]
    fn the_compaction_message_names_revisions_only() {
        let c = Compacted {
            name: "db-pass".into(),
            pinned: 7,
            current: 9,
        };
        assert_eq!(
            c.message(),
            "secret db-pass: revision 7 is compacted away in etcd; filled in with its current version (revision 9)"
        );
    }
}
