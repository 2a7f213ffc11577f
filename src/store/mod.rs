//! The only module that talks to etcd: typed reads, compare-and-swap writes, leases and
//! list-then-watch caches. Keys are relative to a prefix (default `/berth`), see [`keys`].

mod election;
pub mod keys;
mod lease;
pub mod rbac;
mod reflector;

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp,
};

pub use election::{Fence, Leadership};
pub use lease::LeasedKey;
pub use reflector::{Cache, Reflector};

use crate::metrics;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("connecting to etcd at {endpoints}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {op} of {key}")]
    Request {
        op: &'static str,
        key: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd watch of {key} was cancelled: {reason}")]
    WatchCancelled { key: String, reason: String },
    #[error("etcd watch of {key} ended")]
    WatchEnded { key: String },
    #[error("etcd lease keep-alive for {key} lost")]
    LeaseLost { key: String },
    #[error("no longer the leader: a write was fenced off")]
    Deposed,
}

impl StoreError {
    /// Every etcd failure is worth retrying: the cluster may come back.
    pub fn is_transient(&self) -> bool {
        true
    }

    /// A bounded label for `berth_reconcile_errors_total{reason}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Deposed => "deposed",
            _ => "etcd",
        }
    }

    /// For `map_err`: an etcd client error as a [`StoreError::Request`] naming the step
    /// and the key.
    pub(crate) fn request(
        op: &'static str,
        key: impl Into<String>,
    ) -> impl FnOnce(etcd_client::Error) -> StoreError {
        let key = key.into();
        move |source| StoreError::Request { op, key, source }
    }
}

/// Grant a lease of `ttl` for `key` (whole seconds, at least 2); returns its id and how
/// often to keep it alive: a third of the TTL, so two keep-alives may fail before it ends.
pub(crate) async fn grant_lease(
    client: &mut Client,
    ttl: Duration,
    key: &str,
) -> Result<(i64, Duration), StoreError> {
    let ttl_secs = ttl.as_secs().max(2);
    let lease = client
        .lease_grant(ttl_secs as i64, None)
        .await
        .map_err(StoreError::request("lease grant", key))?
        .id();
    Ok((lease, Duration::from_secs((ttl_secs / 3).max(1))))
}

/// One key-value pair, with its key relative to the store's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A key as it was at a past revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtRevision {
    Found(Kv),
    /// The key did not exist then.
    Absent,
    /// etcd has compacted that revision away: the past is gone.
    Compacted,
}

/// What a compare-and-swap write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist with this `mod_revision`.
    Revision(i64),
    /// Whatever is there (a user command that overwrites on purpose).
    Any,
}

/// A write of a batch; each op carries its own expectation and they all apply or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        key: String,
        value: Vec<u8>,
        expect: Expect,
    },
    Delete {
        key: String,
        expect: Expect,
    },
}

/// How to authenticate to etcd: TLS (a CA to trust, and optionally a client certificate)
/// and/or a user and password. PEM contents, not paths.
#[derive(Clone, Default)]
pub struct EtcdAuth {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
    pub user: Option<(String, String)>,
}

impl std::fmt::Debug for EtcdAuth {
    // Never print the password or the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("tls", &self.ca.is_some())
            .field("client_cert", &self.cert.is_some())
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// A handle on etcd under one prefix. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Unary requests, each bounded by a timeout.
    client: Client,
    /// No request timeout: for calls that block by design (an election campaign) and for
    /// long-lived streams (lease keep-alives).
    long: Client,
    /// KV and watch with a decoding limit far above etcd's own request limit, so one
    /// oversized value cannot wedge every list and watch of the prefix.
    kv: etcd_client::KvClient,
    watch: etcd_client::WatchClient,
    prefix: String,
}

/// Largest etcd response Berth decodes (a list of a whole prefix included).
const MAX_DECODE: usize = 256 * 1024 * 1024;

/// How long one unary etcd request may take. Calls that block by design (a campaign)
/// and long-lived streams go through a client without it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Connect and prove the connection with a real request: `Client::connect` alone
    /// succeeds even when nothing listens.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Store, StoreError> {
        Store::connect_with(endpoints, prefix, &EtcdAuth::default()).await
    }

    /// [`connect`](Store::connect) with TLS and/or user authentication.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        auth: &EtcdAuth,
    ) -> Result<Store, StoreError> {
        let joined = endpoints.join(",");
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3));
        if auth.ca.is_some() || auth.cert.is_some() {
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &auth.ca {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let (Some(cert), Some(key)) = (&auth.cert, &auth.key) {
                tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
            }
            opts = opts.with_tls(tls);
        }
        if let Some((user, password)) = &auth.user {
            opts = opts.with_user(user.clone(), password.clone());
        }
        let connect_err = |source| StoreError::Connect {
            endpoints: joined.clone(),
            source,
        };
        let long = Client::connect(endpoints, Some(opts.clone()))
            .await
            .map_err(connect_err)?;
        let mut client = Client::connect(endpoints, Some(opts.with_timeout(REQUEST_TIMEOUT)))
            .await
            .map_err(connect_err)?;
        client
            .status()
            .await
            .map_err(|source| StoreError::Connect {
                endpoints: joined,
                source,
            })?;
        let mut prefix = prefix.trim_end_matches('/').to_owned();
        prefix.push('/');
        Ok(Store {
            kv: client.kv_client().max_decoding_message_size(MAX_DECODE),
            watch: long.watch_client().max_decoding_message_size(MAX_DECODE),
            client,
            long,
            prefix,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn relative(&self, kv: &etcd_client::KeyValue) -> Option<Kv> {
        let key = std::str::from_utf8(kv.key()).ok()?;
        Some(Kv {
            key: key.strip_prefix(&self.prefix)?.to_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        })
    }

    /// Is etcd answering right now?
    pub async fn ping(&self) -> bool {
        self.client.clone().status().await.is_ok()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Kv>, StoreError> {
        let full = self.full(key);
        let resp = self.kv.clone().get(full.clone(), None).await;
        let resp = observe("get", full, resp)?;
        Ok(resp.kvs().first().and_then(|kv| self.relative(kv)))
    }

    /// `key` as it was at store revision `revision`: what a container pinned to an older
    /// version of a secret is created with.
    pub async fn get_at(&self, key: &str, revision: i64) -> Result<AtRevision, StoreError> {
        let full = self.full(key);
        let opts = GetOptions::new().with_revision(revision);
        let resp = self.kv.clone().get(full.clone(), Some(opts)).await;
        // etcd keeps no history before its compaction point: an answer, not a failure.
        if let Err(etcd_client::Error::GRpcStatus(s)) = &resp {
            if s.message().contains("required revision has been compacted") {
                metrics::ETCD_REQUESTS
                    .with_label_values(&["get", "error"])
                    .inc();
                return Ok(AtRevision::Compacted);
            }
        }
        let resp = observe("get", full, resp)?;
        Ok(match resp.kvs().first().and_then(|kv| self.relative(kv)) {
            Some(kv) => AtRevision::Found(kv),
            None => AtRevision::Absent,
        })
    }

    /// Every pair under `prefix` and the store revision they were read at.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64), StoreError> {
        let full = self.full(prefix);
        let resp = self
            .kv
            .clone()
            .get(full.clone(), Some(GetOptions::new().with_prefix()))
            .await;
        let resp = observe("list", full, resp)?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let kvs = resp
            .kvs()
            .iter()
            .filter_map(|kv| self.relative(kv))
            .collect();
        Ok((kvs, revision))
    }

    /// The last `limit` (at least 1) keys under `prefix` in key order, last first, without
    /// their values; and how many keys there are under `prefix` in all.
    pub async fn last_keys(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let full = self.full(prefix);
        let opts = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            // etcd reads a limit of 0 as no limit.
            .with_limit(limit.max(1) as i64);
        let resp = self.kv.clone().get(full.clone(), Some(opts)).await;
        let resp = observe("list", full, resp)?;
        let keys = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let key = std::str::from_utf8(kv.key()).ok()?;
                Some(key.strip_prefix(&self.prefix)?.to_owned())
            })
            .collect();
        Ok((keys, resp.count()))
    }

    /// Apply `writes` atomically. `Ok(false)`: some expectation did not hold and nothing
    /// was written; the caller re-reads and decides again.
    pub async fn write(&self, writes: &[Write]) -> Result<bool, StoreError> {
        self.write_fenced(writes, None).await
    }

    /// Like [`write`](Store::write), and only while `fence` (a leadership) still holds:
    /// a deposed leader's late writes fail with [`StoreError::Deposed`] instead of landing.
    pub async fn write_fenced(
        &self,
        writes: &[Write],
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        if writes.is_empty() {
            return Ok(true);
        }
        let mut compares = Vec::new();
        if let Some(f) = fence {
            compares.push(Compare::create_revision(
                f.key.clone(),
                CompareOp::Equal,
                f.revision,
            ));
        }
        let mut ops = Vec::new();
        for w in writes {
            let (key, expect) = match w {
                Write::Put { key, value, expect } => {
                    ops.push(TxnOp::put(self.full(key), value.clone(), None));
                    (key, expect)
                }
                Write::Delete { key, expect } => {
                    ops.push(TxnOp::delete(self.full(key), None));
                    (key, expect)
                }
            };
            match expect {
                Expect::Absent => {
                    compares.push(Compare::version(self.full(key), CompareOp::Equal, 0))
                }
                Expect::Revision(rev) => compares.push(Compare::mod_revision(
                    self.full(key),
                    CompareOp::Equal,
                    *rev,
                )),
                Expect::Any => {}
            }
        }
        let first = match &writes[0] {
            Write::Put { key, .. } | Write::Delete { key, .. } => self.full(key),
        };
        let resp = self
            .kv
            .clone()
            .txn(Txn::new().when(compares).and_then(ops))
            .await;
        let resp = observe("txn", first.clone(), resp)?;
        if resp.succeeded() {
            return Ok(true);
        }
        if let Some(f) = fence {
            if !self.holds(f).await? {
                metrics::FENCED_WRITES.inc();
                return Err(StoreError::Deposed);
            }
        }
        Ok(false)
    }

    /// Does the leader key behind `fence` still exist as created?
    pub async fn holds(&self, fence: &Fence) -> Result<bool, StoreError> {
        let resp = self.kv.clone().get(fence.key.clone(), None).await;
        let resp = observe(
            "get",
            String::from_utf8_lossy(&fence.key).into_owned(),
            resp,
        )?;
        Ok(resp
            .kvs()
            .first()
            .is_some_and(|kv| kv.create_revision() == fence.revision))
    }

    /// Unconditional put, for users' own commands (`berth apply`).
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64, StoreError> {
        let full = self.full(key);
        let resp = self.kv.clone().put(full.clone(), value, None).await;
        let resp = observe("put", full, resp)?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Unconditional delete; returns how many keys went.
    pub async fn delete(&self, key: &str) -> Result<i64, StoreError> {
        let full = self.full(key);
        let resp = self
            .kv
            .clone()
            .delete(full.clone(), None::<DeleteOptions>)
            .await;
        let resp = observe("delete", full, resp)?;
        Ok(resp.deleted())
    }

    /// Delete every key under `prefix`; returns how many went.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<i64, StoreError> {
        let full = self.full(prefix);
        let resp = self
            .kv
            .clone()
            .delete(full.clone(), Some(DeleteOptions::new().with_prefix()))
            .await;
        let resp = observe("delete", full, resp)?;
        Ok(resp.deleted())
    }

    /// Delete every key from `from` (included) to `to` (excluded), in one request;
    /// returns how many went.
    pub async fn delete_range(&self, from: &str, to: &str) -> Result<i64, StoreError> {
        let (full, end) = (self.full(from), self.full(to));
        let resp = self
            .kv
            .clone()
            .delete(
                full.clone(),
                Some(DeleteOptions::new().with_range(end.clone())),
            )
            .await;
        let resp = observe("delete", format!("[{full}, {end})"), resp)?;
        Ok(resp.deleted())
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client without a request timeout (campaigns, keep-alive streams).
    pub(crate) fn long_client(&self) -> Client {
        self.long.clone()
    }

    pub(crate) fn watch_client(&self) -> etcd_client::WatchClient {
        self.watch.clone()
    }

    pub(crate) fn put_options_with_lease(lease: i64) -> PutOptions {
        PutOptions::new().with_lease(lease)
    }
}

/// Count every etcd request by op and result, in one place.
/// Count one etcd request, and name it and its key in the error.
fn observe<T>(
    op: &'static str,
    key: String,
    r: Result<T, etcd_client::Error>,
) -> Result<T, StoreError> {
    let result = if r.is_ok() { "success" } else { "error" };
    metrics::ETCD_REQUESTS
        .with_label_values(&[op, result])
        .inc();
    r.map_err(StoreError::request(op, key))
}
