//! A list-then-watch cache of every key under one prefix (kube-rs' reflector, for etcd).
//!
//! The cache is only ever replaced whole by a list, then patched by watch events from the
//! list's revision on, so readers always see a complete view at some revision: stale
//! while etcd is away, never partial. A cancelled (compacted) or broken watch relists.

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::{watch, RwLock};
use tokio_util::sync::CancellationToken;

use super::{Kv, Store, StoreError};
use crate::{metrics, retry};

/// A complete view of a prefix at `revision`.
#[derive(Debug, Default, Clone)]
pub struct Cache {
    pub entries: BTreeMap<String, Kv>,
    pub revision: i64,
}

/// Keeps a [`Cache`] of one prefix current; readers wait on [`Reflector::subscribe`].
#[derive(Clone)]
pub struct Reflector {
    cache: Arc<RwLock<Cache>>,
    /// Set once the first list completed: the view is readable from then on.
    synced: watch::Receiver<bool>,
    /// Bumped on every relist and on every watch batch touching a key that `wakes`.
    wake: watch::Receiver<Option<u64>>,
    /// Bumped on every relist and on every watch batch, whatever the wake filter says.
    changed: watch::Receiver<u64>,
    connected: watch::Receiver<bool>,
}

/// Which changed keys (relative to the store's prefix) wake [`Reflector::subscribe`]rs.
pub type WakeFilter = fn(&str) -> bool;

/// Senders of one reflector's channels.
struct Signals {
    synced: watch::Sender<bool>,
    wake: watch::Sender<Option<u64>>,
    changed: watch::Sender<u64>,
    connected: watch::Sender<bool>,
    wakes: WakeFilter,
}

impl Reflector {
    /// Start reflecting `prefix` until `cancel` fires; every change wakes subscribers.
    pub fn spawn(store: Store, prefix: String, cancel: CancellationToken) -> Reflector {
        Reflector::spawn_waking(store, prefix, cancel, |_| true)
    }

    /// Like [`Reflector::spawn`], but a watch batch wakes subscribers only when one of
    /// its keys passes `wakes`: the cache still holds every key, while a reader that
    /// does not act on some keys (the controller on event records) is not woken by
    /// them. A relist always wakes.
    pub fn spawn_waking(
        store: Store,
        prefix: String,
        cancel: CancellationToken,
        wakes: WakeFilter,
    ) -> Reflector {
        let cache = Arc::new(RwLock::new(Cache::default()));
        let (synced_tx, synced) = watch::channel(false);
        let (wake_tx, wake) = watch::channel(None);
        let (changed_tx, changed) = watch::channel(0);
        let (connected_tx, connected) = watch::channel(false);
        let signals = Signals {
            synced: synced_tx,
            wake: wake_tx,
            changed: changed_tx,
            connected: connected_tx,
            wakes,
        };
        let task_cache = cache.clone();
        tokio::spawn(async move {
            let mut bumps = 0u64;
            let mut policy = retry::Policy::new();
            loop {
                let run = reflect_once(
                    &store,
                    &prefix,
                    &task_cache,
                    &signals,
                    &mut bumps,
                    &mut policy,
                );
                let outcome = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = run => r,
                };
                signals.connected.send_replace(false);
                let err = match outcome {
                    Ok(()) => return,
                    Err(e) => e,
                };
                metrics::ETCD_WATCH_RESTARTS.inc();
                let delay = policy.next_delay();
                tracing::warn!(prefix = %prefix, error = %crate::error_chain(&err), retry_in = ?delay, "etcd watch failed; will relist");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        });
        Reflector {
            cache,
            synced,
            wake,
            changed,
            connected,
        }
    }

    /// A copy of the current view; `None` until the first list completed.
    pub async fn snapshot(&self) -> Option<Cache> {
        self.synced().then_some(())?;
        Some(self.cache.read().await.clone())
    }

    /// Read the view in place without copying it.
    pub async fn read<R>(&self, f: impl FnOnce(&Cache) -> R) -> Option<R> {
        self.synced().then_some(())?;
        Some(f(&*self.cache.read().await))
    }

    /// Has the first list completed?
    pub fn synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Is the watch currently established?
    pub fn connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// A receiver that fires on every change of the view that the reflector's wake
    /// filter lets through (every change, for [`Reflector::spawn`]).
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.wake.clone()
    }

    /// A receiver that fires on every change of the view, whatever the wake filter lets
    /// through: for readers that show every key (the web view shows event records, which
    /// do not wake the controller).
    pub fn subscribe_all(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// Wait until the first list completed.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

async fn reflect_once(
    store: &Store,
    prefix: &str,
    cache: &RwLock<Cache>,
    signals: &Signals,
    bumps: &mut u64,
    policy: &mut retry::Policy,
) -> Result<(), StoreError> {
    let (kvs, revision) = store.list(prefix).await?;
    {
        let mut c = cache.write().await;
        c.entries = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        c.revision = revision;
    }
    *bumps += 1;
    // Readable first, then the wake-up: a subscriber woken by this list must find the
    // view readable (`read` and `snapshot` go by `synced`).
    signals.synced.send_replace(true);
    signals.wake.send_replace(Some(*bumps));
    signals.changed.send_modify(|n| *n += 1);

    let full = format!("{}{}", store.prefix(), prefix);
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1)
        .with_progress_notify();
    let mut stream = store
        .watch_client()
        .watch(full.clone(), Some(opts))
        .await
        .map_err(StoreError::request("watch", full.clone()))?;
    loop {
        let msg = stream
            .message()
            .await
            .map_err(StoreError::request("watch", full.clone()))?;
        let Some(resp) = msg else {
            return Err(StoreError::WatchEnded { key: full });
        };
        if resp.canceled() {
            return Err(StoreError::WatchCancelled {
                key: full,
                reason: format!(
                    "{} (compact revision {})",
                    resp.cancel_reason(),
                    resp.compact_revision()
                ),
            });
        }
        if resp.created() {
            signals.connected.send_replace(true);
            policy.reset();
        }
        if resp.events().is_empty() {
            continue;
        }
        let mut c = cache.write().await;
        let mut wake = false;
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let Some(rel) = store.relative(kv) else {
                continue;
            };
            c.revision = c.revision.max(rel.mod_revision);
            wake = wake || (signals.wakes)(&rel.key);
            match event.event_type() {
                EventType::Put => {
                    c.entries.insert(rel.key.clone(), rel);
                }
                EventType::Delete => {
                    c.entries.remove(&rel.key);
                }
            }
        }
        drop(c);
        signals.changed.send_modify(|n| *n += 1);
        if wake {
            *bumps += 1;
            signals.wake.send_replace(Some(*bumps));
        }
    }
}
