//! Berth keeps container stacks running across many Docker hosts, with etcd as the only
//! source of truth. Users put stack specs under `stacks/`; each host's agent registers
//! under `hosts/`; the controller schedules every slot of every stack onto a host and
//! writes per-host `assignments/`; agents converge their Docker engine to them and write
//! `reports/`; the controller folds those into `status/stacks/`.
//!
//! # Layout
//! - [`spec`]: what users write and read (stack, host registration, status) and validation.
//! - [`compose`]: compose files converted to stacks (`berth convert`), with a warning for
//!   everything a stack does not carry.
//! - [`schema`]: the JSON Schemas and CRDs in `crds/`, generated from the `spec` types.
//! - [`store`]: the only etcd client: keys, compare-and-swap writes, leases, watch caches.
//! - [`scheduler`]: pure placement of slots on hosts and the assignments that result.
//! - [`controller`]: the loop that schedules and aggregates status.
//! - [`agent`]: the per-host reconciler; `agent::runtime` is the only Docker client.
//! - [`health`]: http/tcp probes (beside the engine, or from afar for agentless hosts)
//!   and the health state machine.
//! - [`slot`]: `SlotId`, the one identity of a slot, shared by scheduler, agent and controller.
//! - [`assignment`], [`report`]: the internal contract between controller and agents.
//! - [`registry`]: which registry an image names, and the logins for registries (etcd's
//!   `registries/`, or a Docker config file's `auths`).
//! - [`hostsecret`]: a host's copy of a secret (`hostsecrets/<host>/<name>`), which the
//!   leader writes and that host's agent reads, so an agent reads only its own host's secrets.
//! - [`events`]: recent events per stack, bounded, for `berth events`.
//! - [`embedded`]: the local etcd `berth up` starts when given none.
//! - [`metrics`], [`serve`], [`telemetry`]: observability.
//! - [`retry`]: backoff delays (the one user of the `backoff` crate); [`requeue`]: when a
//!   reconcile wants to run again.
//! - [`view`]: what `berth status`, `berth hosts`, `berth events`, `berth apply --dry-run`
//!   and `berth host remove` print, rendered purely from a snapshot.
//! - [`web`]: the live, read-only web view each controller serves at `/` (pages over
//!   Server-Sent Events, JSON under `/api/v1/`, the preview form), from the same views.

/// `0.1.0 (rev 0123456789ab)`: the crate version and the git revision it was built from,
/// as `berth --version`, the agent's registration and the image's labels say.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("BERTH_GIT_REVISION"),
    ")"
);

pub mod agent;
pub mod api;
pub mod assignment;
pub mod compose;
pub mod controller;
pub mod embedded;
pub mod events;
pub mod health;
pub mod hostsecret;
pub mod metrics;
pub mod registry;
pub mod report;
pub mod requeue;
pub mod retry;
pub mod scheduler;
pub mod schema;
pub mod serve;
pub mod slot;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod view;
pub mod web;

/// An error and its sources on one line: `creating container web: docker create ...: no such image`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let msg = src.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = src.source();
    }
    s
}
