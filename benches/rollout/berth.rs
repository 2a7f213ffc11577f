//! Berth's side: the stack put to etcd, followed through Docker and the status the
//! controller writes, timed from the put.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use berth::agent::labels::{REPLICA, STACK};
use berth::controller::rollout::{Rollout, RolloutState};
use berth::spec::{Phase, StackStatus};
use berth::store::keys;
use bollard::Docker;

use crate::fleet::Fleet;
use crate::measure::{Kind, Measured};
use crate::support::{err, Cluster, Etcd, Res};
use crate::workload::{stack_json, Rules, Version};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(300);

fn replica(labels: &HashMap<String, String>) -> Option<usize> {
    labels.get(REPLICA)?.parse().ok()
}

pub(crate) struct BerthStack<'a> {
    c: &'a Cluster,
    pub(crate) id: String,
    rules: Rules,
    fleet: Fleet,
}

impl<'a> BerthStack<'a> {
    pub(crate) fn new(c: &'a Cluster, id: &str, rules: Rules) -> BerthStack<'a> {
        BerthStack {
            c,
            id: id.to_owned(),
            rules,
            fleet: Fleet {
                selector: format!("{STACK}={id}"),
                slot_of: replica,
            },
        }
    }

    async fn status(etcd: &Etcd, id: &str) -> Res<Option<StackStatus>> {
        match etcd.get_json(&keys::status(id)).await? {
            Some(v) => serde_json::from_value(v).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    /// The first deployment (not throttled), until every slot is running and healthy.
    pub(crate) async fn deploy(&self, d: &Docker, v: &Version) -> Res<()> {
        let t0 = Instant::now();
        let rev = self
            .c
            .etcd
            .put(&keys::stack(&self.id), stack_json(v, self.rules))
            .await?;
        let (etcd, id) = (self.c.etcd.clone(), self.id.clone());
        self.fleet
            .follow(d, &v.name, t0, TIMEOUT, move || {
                let (etcd, id) = (etcd.clone(), id.clone());
                async move {
                    Ok(Self::status(&etcd, &id)
                        .await?
                        .is_some_and(|s| s.observed_revision >= rev && s.phase == Phase::Running))
                }
            })
            .await?;
        Ok(())
    }

    /// Put `to` and follow it until every slot runs what it should end on: `to` when it
    /// is good, `back_to` when it is bad (rolled back).
    pub(crate) async fn roll(
        &self,
        d: &Docker,
        kind: Kind,
        to: &Version,
        back_to: &Version,
    ) -> Res<Measured> {
        let t0 = Instant::now();
        let rev = self
            .c
            .etcd
            .put(&keys::stack(&self.id), stack_json(to, self.rules))
            .await?;
        let write_secs = t0.elapsed().as_secs_f64();
        let (end_version, end_state) = match kind {
            Kind::Good => (to, RolloutState::Complete),
            Kind::Bad => (back_to, RolloutState::RolledBack),
        };
        let (etcd, id) = (self.c.etcd.clone(), self.id.clone());
        let rolling_back = Cell::new(f64::NAN);
        let seen = &rolling_back;
        let followed = self
            .fleet
            .follow(d, &end_version.name, t0, TIMEOUT, move || {
                let (etcd, id) = (etcd.clone(), id.clone());
                async move {
                    let Some(r) = Self::status(&etcd, &id)
                        .await?
                        .and_then(|s| s.rollout)
                        .filter(|r| r.to_revision == rev)
                    else {
                        return Ok(false);
                    };
                    let back = [RolloutState::RollingBack, RolloutState::RolledBack];
                    if seen.get().is_nan() && back.iter().any(|s| r.state == s.as_str()) {
                        seen.set(t0.elapsed().as_secs_f64());
                    }
                    Ok(r.state == end_state.as_str())
                }
            })
            .await?;
        let record: Rollout = match self.c.etcd.get_json(&keys::rollout(&self.id)).await? {
            Some(v) => serde_json::from_value(v).map_err(err)?,
            None => return Err(format!("no rollout record for {}", self.id)),
        };
        if record.to_revision != rev {
            return Err(format!(
                "the rollout record is of revision {}, not {rev}",
                record.to_revision
            ));
        }
        let own_secs = record
            .ended_at_ms
            .map_or(f64::NAN, |e| (e - record.started_at_ms) as f64 / 1000.0);
        let (slot_ready, batch_gap) = match kind {
            Kind::Good => batches(&record),
            Kind::Bad => (Vec::new(), Vec::new()),
        };
        Ok(Measured {
            followed,
            write_secs,
            own_secs,
            rollback_secs: rolling_back.get(),
            slot_ready,
            batch_gap,
        })
    }

    pub(crate) async fn remove(&self) -> Res<()> {
        self.c.etcd.delete(&keys::stack(&self.id)).await?;
        self.c.etcd.wait_gone(&self.id, TIMEOUT).await?;
        Ok(())
    }
}

/// From the controller's record: each slot's handed -> ready, and each batch's last
/// ready -> next batch handed (the `monitor` wait plus the controller's pass).
fn batches(r: &Rollout) -> (Vec<f64>, Vec<f64>) {
    let mut by_batch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut ready = Vec::new();
    for sr in r.services.values() {
        for p in sr.slots.values() {
            if let (Some(at), Some(since)) = (p.assigned_at_ms, p.available_since_ms) {
                ready.push(since.saturating_sub(at) as f64 / 1000.0);
                by_batch.entry(at).or_default().push(since);
            }
        }
    }
    let handed: Vec<(u64, u64)> = by_batch
        .into_iter()
        .map(|(at, since)| (at, since.into_iter().max().unwrap_or(at)))
        .collect();
    let gaps = handed
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].1) as f64 / 1000.0)
        .collect();
    (ready, gaps)
}
