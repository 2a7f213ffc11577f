//! Recent events per stack, so "why did this restart?" has an answer: placements,
//! reschedules, restarts, replacements, orphan removals, failed actions. Kept in etcd at
//! `events/<writer>/<stack>/<time>-<n>` (the writer is `controller` or a host id, so
//! etcd permissions can keep each agent to its own keys), at most [`MAX_PER_STACK`] per
//! stack and writer (the oldest go). Recording never blocks a reconcile and never fails
//! one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::store::{keys, Store};

pub const MAX_PER_STACK: usize = 100;

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
    seq: Arc<AtomicU64>,
}

impl Recorder {
    pub fn new(store: Store, component: &'static str, host: Option<String>) -> Recorder {
        Recorder {
            store,
            component,
            host,
            seq: Arc::new(AtomicU64::new(0)),
        }
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
        let store = self.store.clone();
        tokio::spawn(async move {
            let value = serde_json::to_vec(&event).unwrap_or_default();
            if let Err(e) = store.put(&key, value).await {
                tracing::debug!(error = %crate::error_chain(&e), "event not recorded");
                return;
            }
            prune(&store, &prefix).await;
        });
    }
}

/// Drop the oldest events of a stack beyond the bound.
async fn prune(store: &Store, prefix: &str) {
    let Ok((kvs, _)) = store.list(prefix).await else {
        return;
    };
    if kvs.len() <= MAX_PER_STACK {
        return;
    }
    let mut keys: Vec<String> = kvs.into_iter().map(|kv| kv.key).collect();
    keys.sort();
    for key in keys.iter().take(keys.len() - MAX_PER_STACK) {
        let _ = store.delete(key).await;
    }
}

/// Every event (or one stack's), from every writer, oldest first.
pub async fn list(
    store: &Store,
    stack: Option<&str>,
) -> Result<Vec<Event>, crate::store::StoreError> {
    let (kvs, _) = store.list(keys::EVENTS).await?;
    let mut events: Vec<(String, Event)> = kvs
        .into_iter()
        .filter(|kv| stack.is_none() || stack_of(&kv.key) == stack)
        .filter_map(|kv| {
            // The key's last part starts with the time, fixed width: it sorts as time.
            let order = kv.key.rsplit('/').next()?.to_owned();
            Some((order, serde_json::from_slice(&kv.value).ok()?))
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(events.into_iter().map(|(_, e)| e).collect())
}

/// Forget every writer's events of a deleted stack.
pub async fn forget(store: &Store, stack: &str) -> Result<(), crate::store::StoreError> {
    let (kvs, _) = store.list(keys::EVENTS).await?;
    for kv in kvs.iter().filter(|kv| stack_of(&kv.key) == Some(stack)) {
        store.delete(&kv.key).await?;
    }
    Ok(())
}

/// The stack of an `events/<writer>/<stack>/...` key.
fn stack_of(key: &str) -> Option<&str> {
    keys::parts(key, keys::EVENTS)?.get(1).copied()
}
