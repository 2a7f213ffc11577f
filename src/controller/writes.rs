//! The leader's writes: rollout records, assignments, the hosts' copies of secrets, revision history and statuses. Each is what the pass
//! computed, compared with what the cache holds, and written only where it differs, as a
//! compare-and-swap fenced by the leadership, so a stale or deposed leader writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::world::{Decoded, World};
use super::{decide, history, hostsecrets, status, Controller, Convergence};
use crate::metrics;
use crate::report::SlotReport;
use crate::scheduler::plan::Liveness;
use crate::spec::{HostRegistration, Phase};
use crate::store::{keys, AtRevision, Expect, StoreError, Write};

/// What one stack's last status added to the cluster's gauges, kept so that a pass over
/// a few stacks can still set the gauges for all of them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tally {
    phase: Phase,
    /// Slots assigned to a host.
    placed: i64,
    /// Services with a slot that has no suitable host.
    pending: i64,
}

impl Controller {
    /// Write the rollout records that changed; drop those of stacks whose key is gone.
    pub(super) async fn write_rollouts(
        &self,
        world: &World,
        decision: &decide::Decision,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for (id, record) in &decision.rollouts {
            let existing = world.rollouts.get(id);
            match record {
                Some(r) if existing.map(|(e, _)| e) != Some(r) => writes.push(Write::Put {
                    key: keys::rollout(id),
                    value: serde_json::to_vec(r).unwrap_or_default(),
                    expect: existing.map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev)),
                }),
                None => {
                    if let Some((_, rev)) = existing {
                        writes.push(Write::Delete {
                            key: keys::rollout(id),
                            expect: Expect::Revision(*rev),
                        });
                    }
                }
                _ => {}
            }
        }
        for (id, (_, rev)) in &world.rollouts {
            if decision.scope.has(id) && !world.stacks.contains_key(id) {
                writes.push(Write::Delete {
                    key: keys::rollout(id),
                    expect: Expect::Revision(*rev),
                });
            }
        }
        self.apply(writes).await
    }

    /// Bring each stack's revision history up to date; drop that of stacks whose key is
    /// gone. An invalid spec adds nothing: it never ran, and a rollback cannot use it.
    pub(super) async fn write_history(
        &self,
        world: &World,
        decision: &decide::Decision,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let none = BTreeMap::new();
        let mut writes = Vec::new();
        for (id, (revision, raw)) in &world.stacks {
            if !decision.scope.has(id) {
                continue;
            }
            let Some(Ok(spec)) = self.parsed.get(id).map(|p| p.spec.as_ref()) else {
                continue;
            };
            let kept = world.history.get(id).unwrap_or(&none);
            let rollout = decision
                .rollouts
                .get(id)
                .map_or_else(|| world.rollouts.get(id).map(|(r, _)| r), Option::as_ref);
            // Every pass comes here: copy the kept specs only when something changed.
            if history::settled(
                *revision,
                rollout,
                self.cfg.history_limit,
                kept.values().map(|(e, _)| e),
            ) {
                continue;
            }
            let existing: BTreeMap<i64, history::HistoryEntry> =
                kept.iter().map(|(r, (e, _))| (*r, e.clone())).collect();
            let want = history::plan(&history::Inputs {
                revision: *revision,
                raw,
                spec,
                rollout,
                existing: &existing,
                keep: self.cfg.history_limit,
                now_ms,
            });
            for (rev, e) in &want {
                let had = kept.get(rev);
                if had.is_some_and(|(h, _)| h == e) {
                    continue;
                }
                writes.push(Write::Put {
                    key: keys::history(id, *rev),
                    value: serde_json::to_vec(e).unwrap_or_default(),
                    expect: had.map_or(Expect::Absent, |(_, mr)| Expect::Revision(*mr)),
                });
            }
            for (rev, (_, mr)) in kept {
                if !want.contains_key(rev) {
                    writes.push(Write::Delete {
                        key: keys::history(id, *rev),
                        expect: Expect::Revision(*mr),
                    });
                }
            }
        }
        for (id, kept) in &world.history {
            if !decision.scope.has(id) || world.stacks.contains_key(id) {
                continue;
            }
            for (rev, (_, mr)) in kept {
                writes.push(Write::Delete {
                    key: keys::history(id, *rev),
                    expect: Expect::Revision(*mr),
                });
            }
        }
        self.apply(writes).await
    }

    /// The copies of secrets and registry logins each agent's host should hold
    /// ([`hostsecrets`]), from the assignments about to be held, and the writes that get
    /// them there. Current values come from the cache; a pinned older one from etcd's
    /// history, read once and kept only while some slot pins it. Only the hosts the
    /// decision's stacks are on (before or after) and those whose copies changed are
    /// looked at: no other host's needs can have changed.
    pub(super) async fn plan_host_copies(
        &mut self,
        world: &World,
        decoded: &Decoded,
        decision: &decide::Decision,
    ) -> Result<hostsecrets::CopyWrites, StoreError> {
        let (needs, held) = copies_in_scope(world, decision, &self.dirty.copies);
        let mut sources = hostsecrets::Sources::default();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for n in needs.values() {
            names.extend(n.secrets.keys().cloned());
            for registry in &n.registries {
                let Some(kv) = decoded.raw(&keys::registry(registry)) else {
                    continue;
                };
                match serde_json::from_slice::<crate::registry::RegistryLogin>(&kv.value) {
                    Ok(login) => {
                        names.extend(
                            crate::spec::secret_refs(&login.password)
                                .into_iter()
                                .map(str::to_owned),
                        );
                        sources.logins.insert(registry.clone(), login);
                    }
                    Err(e) => {
                        tracing::warn!(registry = %registry, error = %e, "unreadable registry login not handed out")
                    }
                }
            }
        }
        for name in names {
            if let Some(kv) = decoded.raw(&keys::secret(&name)) {
                let value = String::from_utf8_lossy(&kv.value).into_owned();
                sources.current.insert(name, (kv.mod_revision, value));
            }
        }
        let past = hostsecrets::past_needed(&needs, &sources);
        // A narrow pass sees only some hosts' needs: what others pin is kept until a pass
        // over every stack says no slot pins it.
        if decision.scope.is_everything() {
            self.past_secrets.retain(|k, _| past.contains(k));
        }
        for (name, rev) in past {
            let key = (name, rev);
            if !self.past_secrets.contains_key(&key) {
                let value = match self.store.get_at(&keys::secret(&key.0), rev).await? {
                    AtRevision::Found(kv) => Some(String::from_utf8_lossy(&kv.value).into_owned()),
                    // Gone from etcd's history: the copy carries the current value.
                    AtRevision::Absent | AtRevision::Compacted => None,
                };
                self.past_secrets.insert(key.clone(), value);
            }
            if let Some(Some(v)) = self.past_secrets.get(&key) {
                sources.past.insert(key, v.clone());
            }
        }
        let wanted = hostsecrets::wanted(&needs, &sources);
        Ok(hostsecrets::plan(wanted, &held))
    }

    /// Write the decided stacks' assignments that differ from those held, and delete
    /// those no longer decided.
    pub(super) async fn write_assignments(
        &self,
        world: &World,
        decision: &decide::Decision,
    ) -> Result<(), StoreError> {
        self.apply(assignment_writes(world, decision)).await
    }

    /// Write the status of each stack the decision covers, and keep what each adds to the
    /// cluster's gauges ([`Tally`]): a stack that still exists (a spec, an assignment or a
    /// report of a listed host) has one, and keeps its events.
    pub(super) async fn write_statuses(
        &mut self,
        world: &World,
        decision: &decide::Decision,
        absent: &BTreeMap<String, (Liveness, HostRegistration)>,
    ) -> Result<(), StoreError> {
        let scope = &decision.scope;
        let now_text = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        // Reports of hosts gone past their grace no longer speak for anything.
        let listed = |h: &str| {
            world.hosts.contains_key(h)
                || absent.get(h).is_some_and(|(l, _)| *l == Liveness::NotReady)
        };
        let mut ids: BTreeSet<&str> = world
            .stacks
            .keys()
            .filter(|id| scope.has(id))
            .map(String::as_str)
            .collect();
        // A deleted stack's tombstones keep no status alive.
        ids.extend(
            decision
                .assignments
                .iter()
                .filter(|(_, a)| !a.is_tombstone())
                .map(|((_, s), _)| s.as_str()),
        );
        ids.extend(
            world
                .reports
                .values()
                .filter(|r| scope.has(&r.stack) && listed(&r.host))
                .map(|r| r.stack.as_str()),
        );
        ids.extend(
            world
                .statuses
                .keys()
                .filter(|id| scope.has(id))
                .map(String::as_str),
        );
        // Grouped by stack once, so a pass stays linear in assignments and reports rather
        // than stacks x slots (the scale bench's 1,000 hosts made that the pass's cost).
        let mut assignments_of: BTreeMap<&str, BTreeMap<&str, &crate::assignment::Assignment>> =
            BTreeMap::new();
        for ((h, s), a) in decision
            .assignments
            .iter()
            .filter(|(_, a)| !a.is_tombstone())
        {
            assignments_of
                .entry(s.as_str())
                .or_default()
                .insert(h.as_str(), a);
        }
        let mut reports_of: BTreeMap<&str, Vec<&SlotReport>> = BTreeMap::new();
        for r in world
            .reports
            .values()
            .filter(|r| scope.has(&r.stack) && listed(&r.host))
        {
            reports_of.entry(r.stack.as_str()).or_default().push(r);
        }
        let mut unschedulable_of: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
        for ((s, svc), why) in decision
            .placement
            .unschedulable
            .iter()
            .filter(|((s, _), _)| scope.has(s))
        {
            unschedulable_of
                .entry(s.as_str())
                .or_default()
                .insert(svc.as_str(), why.clone());
        }
        match scope {
            decide::Scope::Everything => self.tallies.clear(),
            decide::Scope::Stacks(decided) => self.tallies.retain(|id, _| !decided.contains(id)),
        }
        let mut writes = Vec::new();
        for id in ids {
            let spec = self
                .parsed
                .get(id)
                .map(|p| p.spec.as_ref().map_err(|v| v.as_slice()));
            let assignments = assignments_of.remove(id).unwrap_or_default();
            let reports = reports_of.remove(id).unwrap_or_default();
            let key = keys::status(id);
            let existing = world.statuses.get(id);
            if spec.is_none() && assignments.is_empty() && reports.is_empty() {
                if let Some((_, rev)) = existing {
                    writes.push(Write::Delete {
                        key,
                        expect: Expect::Revision(*rev),
                    });
                }
                self.seen.remove(id);
                continue;
            }
            let mut unschedulable = unschedulable_of.remove(id).unwrap_or_default();
            if let Some(storm) = &decision.placement.storm {
                for (h, a) in &assignments {
                    if absent.contains_key(*h) {
                        for s in &a.slots {
                            unschedulable
                                .entry(s.service.as_str())
                                .or_insert_with(|| format!("host {h} is not ready; {storm}"));
                        }
                    }
                }
            }
            let placed = assignments
                .values()
                .map(|a| a.slots.len() as i64)
                .sum::<i64>();
            let pending = unschedulable.len() as i64;
            let unschedulable_refs: BTreeMap<&str, &str> = unschedulable
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            let previous = existing.and_then(|(s, _)| s.as_ref());
            let revision = world.stacks.get(id).map(|(r, _)| *r).unwrap_or(0);
            // Records only speak for the version they ran for (`actions_done`).
            let actions: BTreeMap<&str, &crate::report::ActionRecord> = assignments
                .values()
                .flat_map(|a| a.slots.iter())
                .filter(|s| s.actions_done)
                .filter_map(|s| {
                    let r = world.actions.get(&(id.to_owned(), s.service.clone()))?;
                    Some((s.service.as_str(), r))
                })
                .collect();
            let st = status::aggregate(&status::Inputs {
                id,
                revision,
                spec,
                assignments,
                reports: &reports,
                unschedulable: unschedulable_refs,
                hosts: &decision.addresses,
                actions,
                previous,
                now: &now_text,
                rollout: decision
                    .rollouts
                    .get(id)
                    .map_or_else(|| world.rollouts.get(id).map(|(r, _)| r), Option::as_ref),
            });
            self.tallies.insert(
                id.to_owned(),
                Tally {
                    phase: st.phase,
                    placed,
                    pending,
                },
            );
            self.observe_convergence(id, revision, st.phase);
            if st.phase == Phase::Pending && previous.is_none_or(|p| p.phase != Phase::Pending) {
                self.events
                    .record(id, None, "Unschedulable", st.message.clone());
            }
            if previous == Some(&st) {
                continue;
            }
            writes.push(Write::Put {
                key,
                value: serde_json::to_vec(&st).unwrap_or_default(),
                expect: existing.map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev)),
            });
        }
        let mut phases: BTreeMap<Phase, i64> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        let (mut placed, mut pending) = (0i64, 0i64);
        for t in self.tallies.values() {
            *phases.entry(t.phase).or_default() += 1;
            placed += t.placed;
            pending += t.pending;
        }
        for (p, n) in phases {
            metrics::STACKS.with_label_values(&[p.as_str()]).set(n);
        }
        metrics::SLOTS.with_label_values(&["placed"]).set(placed);
        metrics::SLOTS.with_label_values(&["pending"]).set(pending);
        self.apply(writes).await
    }

    /// Seconds from this controller first seeing a spec revision to that revision running
    /// (or, for a stack of one-shot services, done).
    fn observe_convergence(&mut self, id: &str, revision: i64, phase: Phase) {
        let now = Instant::now();
        let fresh = Convergence {
            revision,
            since: now,
            observed: false,
        };
        let entry = self.seen.entry(id.to_owned()).or_insert(fresh);
        if entry.revision != revision {
            *entry = fresh;
        }
        if matches!(phase, Phase::Running | Phase::Succeeded) && !entry.observed {
            entry.observed = true;
            metrics::CONVERGENCE.observe(now.duration_since(entry.since).as_secs_f64());
        }
    }

    /// Each write on its own fenced compare-and-swap: a lost race is only a stale read,
    /// and the watch event behind it brings the next pass.
    pub(super) async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        for w in writes {
            if !self
                .store
                .write_fenced(std::slice::from_ref(&w), Some(&self.fence))
                .await?
            {
                let key = match &w {
                    Write::Put { key, .. } | Write::Delete { key, .. } => key,
                };
                tracing::debug!(key = %key, "compare-and-swap lost; retrying on the next pass");
            }
        }
        Ok(())
    }
}

/// The needs of the hosts a pass looks at, and the copies they hold now.
fn copies_in_scope<'w>(
    world: &'w World,
    decision: &'w decide::Decision,
    dirty_copies: &'w BTreeSet<String>,
) -> (
    BTreeMap<String, hostsecrets::HostNeeds>,
    BTreeMap<&'w str, &'w hostsecrets::Held>,
) {
    let desired = &decision.assignments;
    let scope = &decision.scope;
    let agentless = |h: &str| world.agentless.contains_key(h);
    if scope.is_everything() {
        let needs = hostsecrets::needs(
            desired.iter().map(|((h, _), a)| (h.as_str(), a.as_ref())),
            agentless,
        );
        (
            needs,
            world
                .host_copies
                .iter()
                .map(|(k, h)| (k.as_str(), h))
                .collect::<BTreeMap<_, _>>(),
        )
    } else {
        let mut hosts: BTreeSet<&str> = dirty_copies.iter().map(String::as_str).collect();
        hosts.extend(desired.keys().map(|(h, _)| h.as_str()));
        hosts.extend(
            world
                .assignments
                .keys()
                .filter(|(_, s)| scope.has(s))
                .map(|(h, _)| h.as_str()),
        );
        // Each host's assignments as they will be: the decided stacks' from the
        // decision, every other stack's as held.
        let on_host = hosts.iter().flat_map(|h| {
            let held = world
                .assignments
                .range((h.to_string(), String::new())..)
                .take_while(move |((host, _), _)| host == h)
                .filter(|((_, s), _)| !scope.has(s))
                .map(|((host, _), (a, _))| (host.as_str(), a.as_ref()));
            let decided = desired
                .range((h.to_string(), String::new())..)
                .take_while(move |((host, _), _)| host == h)
                .map(|((host, _), a)| (host.as_str(), a.as_ref()));
            held.chain(decided)
        });
        let needs = hostsecrets::needs(on_host, agentless);
        let held = hosts
            .iter()
            .flat_map(|h| {
                let prefix = keys::host_secrets_of(h);
                world
                    .host_copies
                    .range(prefix.clone()..)
                    .take_while(move |(k, _)| k.starts_with(&prefix))
                    .map(|(k, h)| (k.as_str(), h))
            })
            .collect::<BTreeMap<_, _>>();
        (needs, held)
    }
}

/// The writes that bring the held assignments of the decision's stacks to the decided
/// ones: puts first, so a slot moving between hosts is on its new host before it leaves
/// its old one.
fn assignment_writes(world: &World, decision: &decide::Decision) -> Vec<Write> {
    let desired = &decision.assignments;
    let (mut writes, mut deletes) = (Vec::new(), Vec::new());
    let delete = |(host, stack): &(String, String), rev: i64| Write::Delete {
        key: keys::assignment(host, stack),
        expect: Expect::Revision(rev),
    };
    // Both maps are ordered by (host, stack): walked side by side, with no lookup.
    let mut held = world
        .assignments
        .iter()
        .filter(|((_, s), _)| decision.scope.has(s))
        .peekable();
    for (at, a) in desired {
        while let Some((gone, (_, rev))) = held.next_if(|(k, _)| *k < at) {
            deletes.push(delete(gone, *rev));
        }
        let existing = held.next_if(|(k, _)| *k == at).map(|(_, e)| e);
        // Most are the held one itself, shared by the decision (`decide`): no compare.
        if existing.is_some_and(|(e, _)| Arc::ptr_eq(e, a) || e == a) {
            continue;
        }
        writes.push(Write::Put {
            key: keys::assignment(&at.0, &at.1),
            value: serde_json::to_vec(a.as_ref()).unwrap_or_default(),
            expect: existing.map_or(Expect::Absent, |(_, rev)| Expect::Revision(*rev)),
        });
    }
    deletes.extend(held.map(|(gone, (_, rev))| delete(gone, *rev)));
    writes.extend(deletes);
    writes
}
