//! A key kept alive under an etcd lease, re-created whenever the lease is lost, so its
//! presence means "the writer is alive" (host registrations).

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{grant_lease, Store, StoreError};
use crate::retry;

/// Handle on a leased key; the key lives while the background task can keep its lease.
pub struct LeasedKey {
    value: watch::Sender<Vec<u8>>,
    held: watch::Receiver<bool>,
}

impl LeasedKey {
    /// Keep `key` = `value` under a lease of `ttl` until `cancel`, then revoke the lease so
    /// the key disappears at once instead of after the TTL.
    pub fn spawn(
        store: Store,
        key: String,
        value: Vec<u8>,
        ttl: Duration,
        cancel: CancellationToken,
    ) -> LeasedKey {
        let (value_tx, value_rx) = watch::channel(value);
        let (held_tx, held) = watch::channel(false);
        tokio::spawn(async move {
            // Try again at least as often as a keep-alive goes out, so a host back from a
            // partition registers again within a keep-alive interval instead of after a
            // backoff that grew while etcd was out of reach.
            let mut policy = retry::Policy::with(
                Duration::from_millis(200),
                (ttl / 3).max(Duration::from_millis(200)),
            );
            loop {
                let mut value_rx = value_rx.clone();
                let result = hold(&store, &key, &mut value_rx, ttl, &cancel, &held_tx).await;
                // A lease that was held is a success: the next loss starts afresh.
                if held_tx.send_replace(false) {
                    policy.reset();
                }
                match result {
                    Ok(()) => return,
                    Err(e) => {
                        let delay = policy.next_delay();
                        tracing::warn!(key = %key, error = %crate::error_chain(&e), retry_in = ?delay, "lost lease; re-registering");
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
        });
        LeasedKey {
            value: value_tx,
            held,
        }
    }

    /// Replace the value (written under the same lease).
    pub fn update(&self, value: Vec<u8>) {
        self.value.send_if_modified(|v| {
            if *v == value {
                return false;
            }
            *v = value;
            true
        });
    }

    /// Is the key currently written under a live lease?
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }
}

async fn hold(
    store: &Store,
    key: &str,
    value: &mut watch::Receiver<Vec<u8>>,
    ttl: Duration,
    cancel: &CancellationToken,
    held: &watch::Sender<bool>,
) -> Result<(), StoreError> {
    let full = format!("{}{}", store.prefix(), key);
    let req = |op| StoreError::request(op, full.clone());
    let mut client = store.long_client();
    let (lease, period) = grant_lease(&mut client, ttl, &full).await?;
    let current = value.borrow_and_update().clone();
    client
        .put(
            full.clone(),
            current,
            Some(Store::put_options_with_lease(lease)),
        )
        .await
        .map_err(req("put"))?;
    let (mut keeper, mut responses) = client
        .lease_keep_alive(lease)
        .await
        .map_err(req("lease keep-alive"))?;
    held.send_replace(true);
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                // Best effort: a failed revoke only means the key lives out its TTL.
                let _ = client.lease_revoke(lease).await;
                return Ok(());
            }
            _ = tick.tick() => {
                keeper.keep_alive().await.map_err(req("lease keep-alive"))?;
            }
            msg = responses.message() => {
                match msg.map_err(req("lease keep-alive"))? {
                    Some(r) if r.ttl() > 0 => {}
                    _ => return Err(StoreError::LeaseLost { key: full }),
                }
            }
            changed = value.changed() => {
                if changed.is_err() {
                    // The handle was dropped: stop holding the key.
                    let _ = client.lease_revoke(lease).await;
                    return Ok(());
                }
                let current = value.borrow_and_update().clone();
                client
                    .put(full.clone(), current, Some(Store::put_options_with_lease(lease)))
                    .await
                    .map_err(req("put"))?;
            }
        }
    }
}
