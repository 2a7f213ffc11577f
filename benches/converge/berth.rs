//! Berth converging and tearing down one stack: from the user's etcd write to Docker's
//! last event and to the status the controller writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use tokio::task::JoinHandle;

use crate::events::{count, first_event, network_event};
use crate::load::{before, load_between, Load};
use crate::support::{nanos, Cluster, Events, Res};
use crate::workload::{stack_json, PORTS_BERTH};

/// Seconds from `t0` to the controller's first change under `assignments/`; NaN when
/// the watch ended without one.
async fn assigned_after(assignment: JoinHandle<Option<Instant>>, t0: Instant) -> f64 {
    assignment
        .await
        .ok()
        .flatten()
        .map_or(f64::NAN, |t| (t - t0).as_secs_f64())
}

pub(crate) struct BerthUp {
    /// put -> status Running at that revision.
    pub(crate) status: f64,
    /// put -> the controller's assignment for the host arrives on a watch.
    pub(crate) assigned: f64,
    /// put -> Docker's last `start` event.
    pub(crate) docker: f64,
    /// put -> Docker's first event for the stack (the network, or a container).
    pub(crate) first: f64,
    pub(crate) load: Load,
}

pub(crate) async fn berth_up(c: &Cluster, d: &Docker, id: &str, n: usize) -> Res<BerthUp> {
    let json = stack_json(n, Some(PORTS_BERTH), &BTreeMap::new());
    let before = before(c).await;
    let assignment = c.etcd.first_change("assignments/").await?;
    let wall = SystemTime::now();
    let mut events = Events::since(d, wall);
    let t0 = Instant::now();
    let rev = c.etcd.put(&format!("stacks/{id}"), json).await?;
    let running = c
        .etcd
        .wait_running(id, rev, Duration::from_secs(300))
        .await?;
    events
        .until(Duration::from_secs(60), "every container started", |s| {
            count(s, id, "start").0 >= n
        })
        .await?;
    let docker = (count(&events.seen, id, "start").1 - nanos(wall)) as f64 / 1e9;
    let first = (first_event(&events.seen, id) - nanos(wall)) as f64 / 1e9;
    // Let the last reports and events land before counting the writes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upto = c.etcd.revision().await?;
    let assigned = assigned_after(assignment, t0).await;
    Ok(BerthUp {
        status: (running - t0).as_secs_f64(),
        assigned,
        docker,
        first,
        load: load_between(c, &before, rev, upto).await?,
    })
}

pub(crate) struct BerthDown {
    /// delete -> Docker's last `destroy` (containers and the stack network).
    pub(crate) docker: f64,
    /// The stack network was still there 20s after the last container went: what
    /// `docker network rm` said when the bench removed it.
    pub(crate) network_left: Option<String>,
    /// delete -> the controller's deletion of the assignment arrives on a watch.
    pub(crate) assigned: f64,
    /// delete -> Docker's first event for the stack (a container killed).
    pub(crate) first: f64,
    /// delete -> the status key removed (everything reported gone).
    pub(crate) status: f64,
    pub(crate) load: Load,
}

pub(crate) async fn berth_down(c: &Cluster, d: &Docker, id: &str, n: usize) -> Res<BerthDown> {
    let before = before(c).await;
    let net = format!("berth-{id}");
    let assignment = c.etcd.first_change("assignments/").await?;
    let wall = SystemTime::now();
    let mut events = Events::since(d, wall);
    let t0 = Instant::now();
    let rev = c.etcd.delete(&format!("stacks/{id}")).await?;
    events
        .until(Duration::from_secs(120), "every container removed", |s| {
            count(s, id, "destroy").0 >= n
        })
        .await?;
    // The network goes after the last container; Berth does not always manage it (see
    // docs/benchmarks.md), so its absence is recorded instead of failing the run.
    let network_left = match events
        .until(Duration::from_secs(20), "the stack network removed", |s| {
            network_event(s, &net, "destroy").is_some()
        })
        .await
    {
        Ok(()) => None,
        Err(_) => {
            let why = std::process::Command::new("docker")
                .args(["network", "rm", &net])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
                .unwrap_or_default();
            eprintln!("  Berth left network {net} behind; `docker network rm` then said: {why:?}");
            Some(why)
        }
    };
    let last = count(&events.seen, id, "destroy")
        .1
        .max(network_event(&events.seen, &net, "destroy").unwrap_or(0));
    let gone = c.etcd.wait_gone(id, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upto = c.etcd.revision().await?;
    let assigned = assigned_after(assignment, t0).await;
    Ok(BerthDown {
        docker: (last - nanos(wall)) as f64 / 1e9,
        network_left,
        assigned,
        first: (first_event(&events.seen, id) - nanos(wall)) as f64 / 1e9,
        status: (gone - t0).as_secs_f64(),
        load: load_between(c, &before, rev, upto).await?,
    })
}
