//! Leader election among controllers (etcd's election API over a lease), and the fence
//! every leader write carries so a paused or partitioned ex-leader cannot overwrite its
//! successor.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{grant_lease, keys, Store, StoreError};

/// Proof of leadership to attach to writes: the leader key and its create revision.
/// What it guards against is tested against a real etcd in `tests/scheduling.rs`
/// (`a_deposed_leaders_writes_are_fenced_off`).
#[derive(Debug, Clone)]
pub struct Fence {
    pub(crate) key: Vec<u8>,
    pub(crate) revision: i64,
}

/// Held leadership. `lost` fires when the lease cannot be kept; the holder must stop
/// writing at once (its fence would make the writes fail anyway).
pub struct Leadership {
    fence: Fence,
    lease: i64,
    lost: CancellationToken,
    store: Store,
}

impl Leadership {
    /// Campaign as `id` until elected or `cancel`; `ttl` bounds how long a dead leader
    /// blocks the others.
    pub async fn campaign(
        store: &Store,
        id: &str,
        ttl: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<Leadership>, StoreError> {
        let name = format!("{}{}", store.prefix(), keys::LEADER);
        let req = |op| StoreError::request(op, name.clone());
        // No request timeout: a campaign blocks until this controller is elected.
        let mut client = store.long_client();
        let (lease, period) = grant_lease(&mut client, ttl, &name).await?;
        let (mut keeper, mut responses) = client
            .lease_keep_alive(lease)
            .await
            .map_err(req("lease keep-alive"))?;
        let lost = CancellationToken::new();
        // Keep the lease alive while campaigning and while leading.
        {
            let lost = lost.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tokio::select! {
                        _ = lost.cancelled() => return,
                        _ = tick.tick() => {
                            if keeper.keep_alive().await.is_err() {
                                break;
                            }
                        }
                        msg = responses.message() => match msg {
                            Ok(Some(r)) if r.ttl() > 0 => {}
                            _ => break,
                        },
                    }
                }
                lost.cancel();
            });
        }
        let mut campaigner = client.clone();
        let campaign = campaigner.campaign(name.clone(), id.to_owned(), lease);
        let outcome = tokio::select! {
            _ = cancel.cancelled() => None,
            _ = lost.cancelled() => Some(Err(StoreError::LeaseLost { key: name.clone() })),
            r = campaign => Some(r.map_err(req("campaign"))),
        };
        let resp = match outcome {
            Some(Ok(resp)) => resp,
            // Not elected: end the keep-alive and hand the lease back, or it would live
            // on with no key (a leak per failed campaign).
            other => {
                lost.cancel();
                let _ = client.lease_revoke(lease).await;
                return match other {
                    None => Ok(None),
                    Some(Err(e)) => Err(e),
                    Some(Ok(_)) => unreachable!("matched above"),
                };
            }
        };
        let Some(leader) = resp.leader() else {
            lost.cancel();
            let _ = client.lease_revoke(lease).await;
            return Err(StoreError::LeaseLost { key: name });
        };
        Ok(Some(Leadership {
            fence: Fence {
                key: leader.key().to_vec(),
                revision: leader.rev(),
            },
            lease,
            lost,
            store: store.clone(),
        }))
    }

    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Fires when leadership is lost.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Step down now (on shutdown), so another controller takes over without waiting
    /// for the lease to expire.
    pub async fn resign(self) {
        self.lost.cancel();
        let _ = self.store.long_client().lease_revoke(self.lease).await;
    }
}
