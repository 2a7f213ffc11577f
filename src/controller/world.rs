//! Everything under the prefix, decoded from one consistent cache snapshot: the
//! controller's (and `berth rebalance`'s) view of the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::history::HistoryEntry;
use super::hostsecrets::{self, Held};
use super::rollout::Rollout;
use crate::assignment::Assignment;
use crate::report::{ActionRecord, SlotReport};
use crate::spec::{HostRegistration, StackStatus};
use crate::store::{keys, Cache, Kv};

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
    /// (host, stack) -> (assignment, mod_revision). Shared: a pass's decision holds the
    /// ones it leaves as they are rather than copies of them.
    pub assignments: BTreeMap<(String, String), (Arc<Assignment>, i64)>,
    /// Report key -> the report.
    pub reports: BTreeMap<String, SlotReport>,
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

/// Which of the [`World`]'s maps a key belongs in: the one home of the key layout's
/// meaning for the decoder, so putting a key and taking it out again agree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place<'k> {
    Stack(&'k str),
    Host(&'k str),
    Maintenance(&'k str),
    Agentless(&'k str),
    Rebalance(&'k str),
    Assignment {
        host: &'k str,
        stack: &'k str,
    },
    Report,
    Action {
        host: &'k str,
        stack: &'k str,
        service: &'k str,
    },
    Rollout(&'k str),
    Pause(&'k str),
    History {
        stack: &'k str,
        revision: Option<i64>,
    },
    HostCopy,
    Secret(&'k str),
    Status(&'k str),
}

impl<'k> Place<'k> {
    /// Where `key` goes; `None` for keys the world does not hold (events, registry logins,
    /// the election).
    fn of(key: &'k str) -> Option<Place<'k>> {
        let one = |prefix: &str| -> Option<&'k str> {
            match keys::parts(key, prefix)?.as_slice() {
                [id] => Some(*id),
                _ => None,
            }
        };
        Some(if let Some(id) = one(keys::STACKS) {
            Place::Stack(id)
        } else if let Some(id) = one(keys::HOSTS) {
            Place::Host(id)
        } else if let Some(id) = one(keys::MAINTENANCE) {
            Place::Maintenance(id)
        } else if let Some(id) = one(keys::AGENTLESS) {
            Place::Agentless(id)
        } else if let Some(id) = one(keys::REBALANCE) {
            Place::Rebalance(id)
        } else if let Some(p) = keys::parts(key, keys::ASSIGNMENTS) {
            match p.as_slice() {
                [host, stack] => Place::Assignment { host, stack },
                _ => return None,
            }
        } else if keys::parts(key, keys::REPORTS).is_some() {
            Place::Report
        } else if let Some(p) = keys::parts(key, keys::ACTIONS) {
            match p.as_slice() {
                [host, stack, service] => Place::Action {
                    host,
                    stack,
                    service,
                },
                _ => return None,
            }
        } else if let Some(id) = one(keys::ROLLOUTS) {
            Place::Rollout(id)
        } else if let Some(id) = one(keys::PAUSE) {
            Place::Pause(id)
        } else if let Some(p) = keys::parts(key, keys::HISTORY) {
            match p.as_slice() {
                [stack, rev] => Place::History {
                    stack,
                    revision: rev.parse().ok(),
                },
                _ => Place::History {
                    stack: "",
                    revision: None,
                },
            }
        } else if key.starts_with(keys::HOST_SECRETS) {
            Place::HostCopy
        } else if let Some(name) = one(keys::SECRETS) {
            Place::Secret(name)
        } else if let Some(id) = one(keys::STATUS) {
            Place::Status(id)
        } else {
            return None;
        })
    }
}

/// What a change of one key can alter in the controller's decision: the one stack it
/// belongs to, the copies one host holds, or (hosts, their holds, secrets, registry
/// logins) any stack at all.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach<'k> {
    Stack(&'k str),
    HostCopies(&'k str),
    Everything,
    /// Events and the election: nothing a pass decides.
    Nothing,
}

impl<'k> Reach<'k> {
    fn of(key: &'k str) -> Reach<'k> {
        match Place::of(key) {
            Some(
                Place::Stack(id)
                | Place::Rebalance(id)
                | Place::Assignment { stack: id, .. }
                | Place::Action { stack: id, .. }
                | Place::Rollout(id)
                | Place::Pause(id)
                | Place::History { stack: id, .. }
                | Place::Status(id),
            ) => Reach::Stack(id),
            Some(Place::Report) => match keys::parts(key, keys::REPORTS).as_deref() {
                Some([_, stack, ..]) => Reach::Stack(stack),
                _ => Reach::Nothing,
            },
            Some(Place::HostCopy) => match keys::parts(key, keys::HOST_SECRETS).as_deref() {
                Some([host, ..]) => Reach::HostCopies(host),
                _ => Reach::Nothing,
            },
            Some(
                Place::Host(_) | Place::Maintenance(_) | Place::Agentless(_) | Place::Secret(_),
            ) => Reach::Everything,
            None if key.starts_with(keys::REGISTRIES) => Reach::Everything,
            None => Reach::Nothing,
        }
    }
}

/// What changed since the leader last took it ([`Decoded::take_dirty`]): the stacks whose
/// inputs changed, the hosts whose held copies changed, or everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty {
    /// A key every stack may depend on changed (a host, a hold, a secret, a registry
    /// login), or the world was taken in afresh.
    pub everything: bool,
    pub stacks: BTreeSet<String>,
    /// Hosts whose copies of secrets and registry logins changed.
    pub copies: BTreeSet<String>,
}

impl Dirty {
    fn mark(&mut self, key: &str) {
        if self.everything {
            return;
        }
        match Reach::of(key) {
            Reach::Stack(id) => {
                if !self.stacks.contains(id) {
                    self.stacks.insert(id.to_owned());
                }
            }
            Reach::HostCopies(h) => {
                if !self.copies.contains(h) {
                    self.copies.insert(h.to_owned());
                }
            }
            Reach::Everything => self.everything = true,
            Reach::Nothing => {}
        }
    }

    /// Everything, as a new leader's first pass (or one after a failed pass) needs.
    pub fn everything() -> Dirty {
        Dirty {
            everything: true,
            ..Dirty::default()
        }
    }

    /// Both changes at once.
    pub fn merge(&mut self, other: Dirty) {
        self.everything |= other.everything;
        if self.everything {
            self.stacks.clear();
            self.copies.clear();
        } else {
            self.stacks.extend(other.stacks);
            self.copies.extend(other.copies);
        }
    }
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
            w.put(kv);
        }
        w
    }

    /// Take in `kv`, replacing what its key held; an unreadable value is logged and left
    /// out (so a key that turned unreadable no longer counts).
    fn put(&mut self, kv: &Kv) {
        self.remove(&kv.key);
        let Some(place) = Place::of(&kv.key) else {
            return;
        };
        match place {
            Place::Stack(id) => {
                self.stacks
                    .insert(id.to_owned(), (kv.mod_revision, kv.value.clone()));
            }
            Place::Host(id) => match serde_json::from_slice::<HostRegistration>(&kv.value) {
                Ok(mut reg) => {
                    // The key names the host, whatever the value says.
                    reg.id = id.to_owned();
                    self.hosts.insert(id.to_owned(), reg);
                }
                Err(e) => {
                    tracing::warn!(host = %id, error = %e, "unreadable host registration ignored")
                }
            },
            Place::Maintenance(id) => {
                let m = serde_json::from_slice::<Maintenance>(&kv.value).unwrap_or(Maintenance {
                    cordoned: true,
                    draining: false,
                });
                self.maintenance.insert(id.to_owned(), m);
            }
            Place::Agentless(id) => match serde_json::from_slice::<AgentlessHost>(&kv.value) {
                Ok(h) => {
                    self.agentless.insert(id.to_owned(), (h, kv.mod_revision));
                }
                Err(e) => {
                    tracing::warn!(host = %id, error = %e, "unreadable agentless host ignored")
                }
            },
            Place::Rebalance(id) => {
                self.rebalance.insert(id.to_owned(), kv.mod_revision);
            }
            Place::Assignment { host, stack } => {
                match serde_json::from_slice::<Assignment>(&kv.value) {
                    Ok(mut a) => {
                        a.compact();
                        self.assignments.insert(
                            (host.to_owned(), stack.to_owned()),
                            (Arc::new(a), kv.mod_revision),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(key = %kv.key, error = %e, "unreadable assignment ignored")
                    }
                }
            }
            Place::Report => {
                if let Ok(r) = serde_json::from_slice::<SlotReport>(&kv.value) {
                    self.reports.insert(kv.key.clone(), r);
                }
            }
            Place::Action {
                host,
                stack,
                service,
            } => {
                if let Ok(mut r) = serde_json::from_slice::<ActionRecord>(&kv.value) {
                    // The key names the host that ran them, whatever the value says.
                    r.host = host.to_owned();
                    self.actions
                        .insert((stack.to_owned(), service.to_owned()), r);
                }
            }
            Place::Rollout(id) => match serde_json::from_slice::<Rollout>(&kv.value) {
                Ok(r) => {
                    self.rollouts.insert(id.to_owned(), (r, kv.mod_revision));
                }
                Err(e) => {
                    // Rewritten by the next pass, as if no rollout had been under way.
                    tracing::warn!(stack = %id, error = %e, "unreadable rollout record ignored")
                }
            },
            Place::Pause(id) => {
                self.paused.insert(id.to_owned());
            }
            Place::History { stack, revision } => {
                match (revision, serde_json::from_slice::<HistoryEntry>(&kv.value)) {
                    (Some(rev), Ok(e)) => {
                        self.history
                            .entry(stack.to_owned())
                            .or_default()
                            .insert(rev, (e, kv.mod_revision));
                    }
                    _ => {
                        tracing::warn!(key = %kv.key, "unreadable history entry ignored")
                    }
                }
            }
            Place::HostCopy => {
                let held = Held {
                    hash: hostsecrets::hash(&kv.value),
                    mod_revision: kv.mod_revision,
                };
                self.host_copies.insert(kv.key.clone(), held);
            }
            Place::Secret(name) => {
                self.secrets.insert(name.to_owned(), kv.mod_revision);
            }
            Place::Status(id) => {
                let s = serde_json::from_slice::<StackStatus>(&kv.value).ok();
                self.statuses.insert(id.to_owned(), (s, kv.mod_revision));
            }
        }
    }

    /// Forget what `key` held.
    fn remove(&mut self, key: &str) {
        let Some(place) = Place::of(key) else {
            return;
        };
        match place {
            Place::Stack(id) => {
                self.stacks.remove(id);
            }
            Place::Host(id) => {
                self.hosts.remove(id);
            }
            Place::Maintenance(id) => {
                self.maintenance.remove(id);
            }
            Place::Agentless(id) => {
                self.agentless.remove(id);
            }
            Place::Rebalance(id) => {
                self.rebalance.remove(id);
            }
            Place::Assignment { host, stack } => {
                self.assignments
                    .remove(&(host.to_owned(), stack.to_owned()));
            }
            Place::Report | Place::HostCopy => {
                self.reports.remove(key);
                self.host_copies.remove(key);
            }
            Place::Action {
                host,
                stack,
                service,
            } => {
                let k = (stack.to_owned(), service.to_owned());
                // Another host's record of the same service stays.
                if self.actions.get(&k).is_some_and(|r| r.host == host) {
                    self.actions.remove(&k);
                }
            }
            Place::Rollout(id) => {
                self.rollouts.remove(id);
            }
            Place::Pause(id) => {
                self.paused.remove(id);
            }
            Place::History { stack, revision } => {
                if let (Some(revs), Some(rev)) = (self.history.get_mut(stack), revision) {
                    revs.remove(&rev);
                    if revs.is_empty() {
                        self.history.remove(stack);
                    }
                }
            }
            Place::Secret(name) => {
                self.secrets.remove(name);
            }
            Place::Status(id) => {
                self.statuses.remove(id);
            }
        }
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

/// The leader's [`World`], kept from pass to pass and brought up to date from the cache
/// in place: a pass parses only the keys whose `mod_revision` changed since the last one,
/// and copies nothing of the cache. Decoding every key and copying the whole cache on
/// every pass made each pass cost O(the cluster) before it had decided anything, and
/// held a second copy of every value while it ran.
#[derive(Debug, Default)]
pub struct Decoded {
    world: World,
    /// Every key under the prefix -> the `mod_revision` taken in.
    revisions: BTreeMap<String, i64>,
    /// The values the leader copies to hosts, raw: secrets and registry logins.
    raw: BTreeMap<String, Kv>,
    revision: i64,
    /// What the updates since the last [`Decoded::take_dirty`] changed.
    dirty: Dirty,
}

impl Decoded {
    /// Take in what changed in `cache` since the last update; returns how many keys were
    /// put or removed.
    pub fn update(&mut self, cache: &Cache) -> usize {
        if cache.revision < self.revision {
            // Another etcd's history (a restore): nothing taken in can be trusted.
            *self = Decoded::default();
        }
        if self.revisions.is_empty() {
            // Taken in afresh.
            self.dirty = Dirty::everything();
        }
        let mut changed = 0;
        for (key, kv) in &cache.entries {
            // Every put since the last update has a newer revision than that update's
            // cache: an integer comparison tells, with no lookup of the key.
            if kv.mod_revision <= self.revision {
                continue;
            }
            changed += 1;
            self.dirty.mark(key);
            self.world.put(kv);
            if key.starts_with(keys::SECRETS) || key.starts_with(keys::REGISTRIES) {
                self.raw.insert(key.clone(), kv.clone());
            }
            self.revisions.insert(key.clone(), kv.mod_revision);
        }
        // Every key of the cache is now in `revisions`: as many entries means no others.
        if self.revisions.len() != cache.entries.len() {
            let (world, raw, dirty) = (&mut self.world, &mut self.raw, &mut self.dirty);
            self.revisions.retain(|key, _| {
                let keep = cache.entries.contains_key(key);
                if !keep {
                    dirty.mark(key);
                    world.remove(key);
                    raw.remove(key);
                    changed += 1;
                }
                keep
            });
        }
        self.revision = cache.revision;
        changed
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// What changed since the last call, which starts the next count.
    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    /// A secret's or registry login's key, raw.
    pub fn raw(&self, key: &str) -> Option<&Kv> {
        self.raw.get(key)
    }

    /// The keys under `prefix`, in order.
    pub fn keys_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.revisions
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Keys of every kind the world holds (and one it does not), each with a value it
    /// reads and one it cannot.
    fn universe() -> Vec<(String, Vec<Vec<u8>>)> {
        let v = |j: serde_json::Value| j.to_string().into_bytes();
        let garbage = b"{not json".to_vec();
        let assignment = |rev: i64| {
            v(
                json!({"stack": "shop", "specRevision": rev, "desiredState": "running",
                     "network": {"name": "n", "driver": "bridge"},
                     "slots": [{"service": "web", "replica": 1, "order": 0,
                                "container": {"image": "x"}}]}),
            )
        };
        let report = |host: &str, state: &str| {
            v(
                json!({"stack": "shop", "service": "web", "replica": 1, "host": host,
                     "specRevision": 1, "specHash": "x", "state": state, "health": "none",
                     "restarts": 0}),
            )
        };
        let status = |phase: &str| {
            v(
                json!({"stack": "shop", "observedRevision": 7, "phase": phase,
                     "message": "", "services": {}}),
            )
        };
        let history = v(json!({"revision": 3, "recordedAtMs": 1, "images": {},
                               "outcome": "Progressing", "spec": "{}"}));
        let action = |host: &str| v(json!({"key": "k", "host": host, "results": []}));
        vec![
            (keys::stack("shop"), vec![b"{}".to_vec(), b"[1]".to_vec()]),
            (keys::stack("blog"), vec![b"{}".to_vec()]),
            (
                keys::host("h1"),
                vec![
                    v(json!({"id": "other", "address": "10.0.0.1"})),
                    garbage.clone(),
                ],
            ),
            (keys::host("h2"), vec![v(json!({"address": "10.0.0.2"}))]),
            (
                keys::maintenance("h1"),
                vec![v(json!({"draining": true})), garbage.clone()],
            ),
            (
                keys::agentless("h3"),
                vec![
                    v(json!({"dockerHost": "tcp://10.0.0.3:2376", "address": "10.0.0.3"})),
                    garbage.clone(),
                ],
            ),
            (keys::rebalance("shop"), vec![b"".to_vec()]),
            (
                keys::assignment("h1", "shop"),
                vec![assignment(1), assignment(2), garbage.clone()],
            ),
            (keys::assignment("h2", "shop"), vec![assignment(1)]),
            (
                keys::report("h1", "shop", "web.1"),
                vec![
                    report("h1", "running"),
                    report("h1", "exited"),
                    garbage.clone(),
                ],
            ),
            (
                keys::report("h2", "shop", "web.1"),
                vec![report("h2", "running")],
            ),
            (
                keys::actions("h1", "shop", "web"),
                vec![action("h1"), garbage.clone()],
            ),
            (
                keys::rollout("shop"),
                vec![
                    v(serde_json::to_value(Rollout::default()).unwrap()),
                    garbage.clone(),
                ],
            ),
            (keys::pause("shop"), vec![b"".to_vec()]),
            (
                keys::history("shop", 3),
                vec![history.clone(), garbage.clone()],
            ),
            (keys::history("shop", 4), vec![history]),
            (keys::history_of("blog") + "x", vec![b"{}".to_vec()]),
            (
                keys::host_secret("h1", "db"),
                vec![b"one".to_vec(), b"two".to_vec()],
            ),
            (
                keys::host_registry("h1", "reg.example"),
                vec![b"{}".to_vec()],
            ),
            (keys::secret("db"), vec![b"one".to_vec(), b"two".to_vec()]),
            (keys::registry("reg.example"), vec![b"{}".to_vec()]),
            (
                keys::status("shop"),
                vec![status("Running"), status("Failed"), garbage],
            ),
            (
                "events/controller/shop/1-0".to_owned(),
                vec![b"{}".to_vec()],
            ),
        ]
    }

    /// Each step puts value `Some(v)` of key `k` of the universe, or deletes it (`None`);
    /// a batch of steps is one watch batch.
    fn batches() -> impl Strategy<Value = Vec<Vec<(usize, Option<usize>)>>> {
        let step = (0..32usize, proptest::option::of(0..3usize));
        proptest::collection::vec(proptest::collection::vec(step, 0..6), 1..12)
    }

    proptest! {
        /// Brought up to date batch by batch, the kept world is the world decoded afresh
        /// from the same cache: no key is left behind, put twice, or missed.
        #[test]
        fn the_kept_world_is_the_world_decoded_afresh(batches in batches()) {
            let universe = universe();
            let mut cache = Cache::default();
            let mut decoded = Decoded::default();
            for batch in batches {
                for (k, value) in batch {
                    let (key, values) = &universe[k % universe.len()];
                    cache.revision += 1;
                    match value {
                        Some(i) => {
                            cache.entries.insert(key.clone(), Kv {
                                key: key.clone(),
                                value: values[i % values.len()].clone(),
                                mod_revision: cache.revision,
                                lease: 0,
                            });
                        }
                        None => {
                            cache.entries.remove(key);
                        }
                    }
                }
                decoded.update(&cache);
                let afresh = World::decode(&cache);
                prop_assert_eq!(format!("{:?}", decoded.world()), format!("{afresh:?}"));
                prop_assert_eq!(decoded.update(&cache), 0, "nothing changed since");
                for key in [keys::secret("db"), keys::registry("reg.example")] {
                    prop_assert_eq!(decoded.raw(&key), cache.entries.get(&key));
                }
                let events: Vec<&str> = decoded.keys_under(keys::EVENTS).collect();
                let want: Vec<&str> = cache
                    .entries
                    .keys()
                    .map(String::as_str)
                    .filter(|k| k.starts_with(keys::EVENTS))
                    .collect();
                prop_assert_eq!(events, want);
            }
        }
    }

    /// Each kind of key dirties what it can alter: its stack, its host's copies, or
    /// everything; events and the election nothing. Puts and deletions alike.
    #[test]
    fn a_changed_key_dirties_what_it_can_alter() {
        let stack = |ids: &[&str]| Dirty {
            stacks: ids.iter().map(|s| s.to_string()).collect(),
            ..Dirty::default()
        };
        let cases: Vec<(String, Dirty)> = vec![
            (keys::stack("shop"), stack(&["shop"])),
            (keys::assignment("h1", "shop"), stack(&["shop"])),
            (keys::report("h1", "shop", "web-1"), stack(&["shop"])),
            (keys::actions("h1", "shop", "web"), stack(&["shop"])),
            (keys::rollout("shop"), stack(&["shop"])),
            (keys::pause("shop"), stack(&["shop"])),
            (keys::history("shop", 3), stack(&["shop"])),
            (keys::status("shop"), stack(&["shop"])),
            (keys::rebalance("shop"), stack(&["shop"])),
            (
                keys::host_secret("h1", "pw"),
                Dirty {
                    copies: ["h1".to_owned()].into(),
                    ..Dirty::default()
                },
            ),
            (keys::host("h1"), Dirty::everything()),
            (keys::maintenance("h1"), Dirty::everything()),
            (keys::agentless("h1"), Dirty::everything()),
            (keys::secret("pw"), Dirty::everything()),
            (keys::registry("reg.example"), Dirty::everything()),
            (format!("{}shop/1", keys::EVENTS), Dirty::default()),
        ];
        for (key, want) in cases {
            let mut cache = Cache::default();
            let mut decoded = Decoded::default();
            // Something to start from, taken in (and its dirt taken away) first.
            cache.revision = 1;
            let other = keys::stack("other");
            cache.entries.insert(
                other.clone(),
                Kv {
                    key: other,
                    value: b"{}".to_vec(),
                    mod_revision: 1,
                    lease: 0,
                },
            );
            decoded.update(&cache);
            assert!(
                decoded.take_dirty().everything,
                "taken in afresh: everything"
            );
            assert_eq!(
                decoded.take_dirty(),
                Dirty::default(),
                "taken: nothing left"
            );
            cache.revision = 2;
            cache.entries.insert(
                key.clone(),
                Kv {
                    key: key.clone(),
                    value: b"{}".to_vec(),
                    mod_revision: 2,
                    lease: 0,
                },
            );
            decoded.update(&cache);
            assert_eq!(decoded.take_dirty(), want, "put {key}");
            cache.revision = 3;
            cache.entries.remove(&key);
            decoded.update(&cache);
            assert_eq!(decoded.take_dirty(), want, "deleted {key}");
        }
    }
}
