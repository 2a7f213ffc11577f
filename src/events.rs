//! Recent events per stack, so "why did this restart?" has an answer: placements,
//! reschedules, restarts, replacements, orphan removals, failed actions. Kept in etcd at
//! `events/<writer>/<stack>/<time>-<n>` (the writer is `controller` or a host id, so
//! etcd permissions can keep each agent to its own keys), at most [`MAX_PER_STACK`] per
//! stack and writer (the oldest go, within about [`PRUNE_DELAY`]). Recording never blocks
//! a reconcile and never fails one.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::store::{keys, Expect, Fence, Kv, Store, StoreError, Write};

pub const MAX_PER_STACK: usize = 100;

/// How long a prune waits for more events of its stack: a burst (a teardown records one
/// event per container) then costs one or two prunes instead of one per event.
pub const PRUNE_DELAY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// RFC 3339, milliseconds.
    pub time: String,
    pub stack: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `controller` or `agent`.
    pub component: String,
    /// One CamelCase word from a fixed set (`Placed`, `Rescheduled`, `Restarted`, ...).
    pub reason: String,
    /// For people; never an environment value.
    pub message: String,
}

/// Writes events for one component (and host).
#[derive(Clone)]
pub struct Recorder {
    store: Store,
    component: &'static str,
    host: Option<String>,
    /// The leader's writes are fenced like every other leader write: a deposed leader
    /// that wakes up records nothing about a cluster it no longer runs.
    fence: Option<Fence>,
    seq: Arc<AtomicU64>,
    /// Prefixes with a prune running, each with whether an event landed since that prune
    /// last read (so it goes round once more rather than a second prune starting).
    pruning: Arc<Mutex<HashMap<String, bool>>>,
}

impl Recorder {
    pub fn new(store: Store, component: &'static str, host: Option<String>) -> Recorder {
        Recorder {
            store,
            component,
            host,
            fence: None,
            seq: Arc::new(AtomicU64::new(0)),
            pruning: Arc::default(),
        }
    }

    /// Record only while `fence` (a leadership) holds.
    pub fn fenced(mut self, fence: Fence) -> Recorder {
        self.fence = Some(fence);
        self
    }

    /// Record in the background: an event lost to an etcd outage is better than a
    /// reconcile held up by one.
    pub fn record(
        &self,
        stack: &str,
        service: Option<&str>,
        reason: &'static str,
        message: String,
    ) {
        let now = SystemTime::now();
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let writer = self.host.as_deref().unwrap_or(self.component);
        let prefix = keys::events_of(writer, stack);
        let key = format!("{prefix}{nanos:024}-{n}");
        let event = Event {
            time: humantime::format_rfc3339_millis(now).to_string(),
            stack: stack.to_owned(),
            service: service.map(str::to_owned),
            host: self.host.clone(),
            component: self.component.to_owned(),
            reason: reason.to_owned(),
            message,
        };
        let recorder = self.clone();
        tokio::spawn(async move {
            let value = serde_json::to_vec(&event).unwrap_or_default();
            let written = match &recorder.fence {
                // An agent's events: a plain put, the cheapest write etcd has.
                None => recorder.store.put(&key, value).await.map(drop),
                Some(fence) => {
                    let put = Write::Put {
                        key,
                        value,
                        expect: Expect::Any,
                    };
                    recorder
                        .store
                        .write_fenced(&[put], Some(fence))
                        .await
                        .map(drop)
                }
            };
            if let Err(e) = written {
                tracing::debug!(error = %crate::error_chain(&e), "event not recorded");
                return;
            }
            recorder.prune(prefix).await;
        });
    }

    /// Prune `prefix` soon, unless a prune of it is already running: then that one goes
    /// round once more. One prune per prefix at a time, so concurrent events never
    /// delete the same keys over and over.
    async fn prune(&self, prefix: String) {
        {
            let mut pruning = self.pruning.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = pruning.get_mut(&prefix) {
                *again = true;
                return;
            }
            pruning.insert(prefix.clone(), false);
        }
        loop {
            tokio::time::sleep(PRUNE_DELAY).await;
            // Cleared before the read: an event put after this is flagged again, and one
            // put before it is seen by the read.
            if let Some(again) = self
                .pruning
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(&prefix)
            {
                *again = false;
            }
            if let Err(e) = prune(&self.store, &prefix).await {
                tracing::debug!(error = %crate::error_chain(&e), "events not pruned");
            }
            // Check and leave under one lock, so no event is flagged to a prune that left.
            let mut pruning = self.pruning.lock().unwrap_or_else(PoisonError::into_inner);
            if pruning.get(&prefix) != Some(&true) {
                pruning.remove(&prefix);
                return;
            }
        }
    }
}

/// Drop the oldest events of a stack beyond the bound, in one range delete: keys start
/// with a fixed-width time, so the ones older than the oldest kept are all below it.
async fn prune(store: &Store, prefix: &str) -> Result<(), StoreError> {
    let (newest, total) = store.last_keys(prefix, MAX_PER_STACK).await?;
    if total <= MAX_PER_STACK as i64 {
        return Ok(());
    }
    if let Some(oldest_kept) = newest.last() {
        store.delete_range(prefix, oldest_kept).await?;
    }
    Ok(())
}

/// Every event (or one stack's), from every writer, oldest first.
pub async fn list(store: &Store, stack: Option<&str>) -> Result<Vec<Event>, StoreError> {
    let (kvs, _) = store.list(keys::EVENTS).await?;
    Ok(decode(&kvs, stack))
}

/// The events among `kvs` (keys relative to the prefix; keys outside `events/` are
/// ignored), every one or one stack's, oldest first. Pure: `berth events` decodes a list
/// with it, the web view the controller's cache.
pub fn decode<'k>(kvs: impl IntoIterator<Item = &'k Kv>, stack: Option<&str>) -> Vec<Event> {
    let mut events: Vec<(&str, Event)> = kvs
        .into_iter()
        .filter(|kv| kv.key.starts_with(keys::EVENTS))
        .filter(|kv| stack.is_none() || stack_of(&kv.key) == stack)
        .filter_map(|kv| {
            // The key's last part starts with the time, fixed width: it sorts as time.
            let order = kv.key.rsplit('/').next()?;
            Some((order, serde_json::from_slice(&kv.value).ok()?))
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(b.0));
    events.into_iter().map(|(_, e)| e).collect()
}

/// The (writer, stack) pairs that hold events, from keys under `events/` (others are
/// ignored).
pub fn holders<'k>(event_keys: impl IntoIterator<Item = &'k str>) -> BTreeSet<(&'k str, &'k str)> {
    event_keys
        .into_iter()
        .filter_map(|key| match keys::parts(key, keys::EVENTS)?.as_slice() {
            [writer, stack, _, ..] => Some((*writer, *stack)),
            _ => None,
        })
        .collect()
}

/// Forget the events of deleted stacks: one prefix delete per (writer, stack) pair, a few
/// at a time. The prefix ends with `/`, so stack `web` leaves `web2` alone.
pub async fn forget<'a>(
    store: &Store,
    holders: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), StoreError> {
    let prefixes: Vec<String> = holders
        .into_iter()
        .map(|(writer, stack)| keys::events_of(writer, stack))
        .collect();
    let mut deletes = futures::stream::iter(prefixes)
        .map(|prefix| {
            let store = store.clone();
            async move { store.delete_prefix(&prefix).await }
        })
        .buffer_unordered(8);
    while let Some(deleted) = deletes.next().await {
        deleted?;
    }
    Ok(())
}

/// The stack of an `events/<writer>/<stack>/...` key.
fn stack_of(key: &str) -> Option<&str> {
    keys::parts(key, keys::EVENTS)?.get(1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_the_writer_and_stack_of_each_event_key() {
        let keys = [
            "events/controller/web/0001-0",
            "events/controller/web/0002-1",
            "events/h1/web2/0003-0",
            "events/h1/web/0004-0",
            // Not an event: too short, or not below `events/`.
            "events/h1/web",
            "events/",
            "stacks/web",
        ];
        let want: BTreeSet<(&str, &str)> = [("controller", "web"), ("h1", "web"), ("h1", "web2")]
            .into_iter()
            .collect();
        assert_eq!(holders(keys), want);
    }
}
