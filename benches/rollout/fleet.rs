//! The service's containers as Docker reports them, the same way for both systems: which
//! slots have a running and healthy container, and of which version. A rollout is
//! followed by sampling this every [`PERIOD`] from the write on, which gives both its end
//! and the most slots that were unavailable at once.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

use crate::support::{err, Res};
use crate::workload::{REPLICAS, VERSION_LABEL};

pub(crate) const PERIOD: Duration = Duration::from_millis(100);

/// How to find one system's containers of the service and tell their slots apart.
pub(crate) struct Fleet {
    /// A `label` filter every container of the service matches.
    pub(crate) selector: String,
    /// The slot (1-based) a running container serves, from its labels.
    pub(crate) slot_of: fn(&HashMap<String, String>) -> Option<usize>,
}

/// One look at the running containers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// Slots with a running and healthy container, of any version.
    pub(crate) available: usize,
    /// Slots with a running and healthy container of the wanted version.
    pub(crate) on_version: usize,
    /// Running containers of any other version.
    pub(crate) others: usize,
}

impl Sample {
    pub(crate) fn unavailable(&self) -> usize {
        REPLICAS.saturating_sub(self.available)
    }

    /// Every slot runs the wanted version, healthy, and nothing else runs.
    pub(crate) fn settled(&self) -> bool {
        self.on_version == REPLICAS && self.others == 0
    }
}

impl Fleet {
    pub(crate) async fn sample(&self, d: &Docker, version: &str) -> Res<Sample> {
        let filters = HashMap::from([("label".to_owned(), vec![self.selector.clone()])]);
        let opts = ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = d.list_containers(Some(opts)).await.map_err(err)?;
        let mut available = BTreeSet::new();
        let mut on_version = BTreeSet::new();
        let mut others = 0;
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let Some(slot) = (self.slot_of)(&labels) else {
                continue;
            };
            // "Up 3 seconds (healthy)"; the list holds running containers only.
            let healthy = c.status.unwrap_or_default().contains("(healthy)");
            let theirs = labels.get(VERSION_LABEL).map(String::as_str);
            if theirs != Some(version) {
                others += 1;
            }
            if healthy {
                available.insert(slot);
                if theirs == Some(version) {
                    on_version.insert(slot);
                }
            }
        }
        Ok(Sample {
            available: available.len(),
            on_version: on_version.len(),
            others,
        })
    }

    /// Sample from `t0` (just before the write) until every slot runs `version` and
    /// `done` says the system considers its rollout over.
    pub(crate) async fn follow<F, Fut>(
        &self,
        d: &Docker,
        version: &str,
        t0: Instant,
        timeout: Duration,
        mut done: F,
    ) -> Res<Followed>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Res<bool>>,
    {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = Followed {
            docker_secs: f64::NAN,
            said_secs: f64::NAN,
            ..Followed::default()
        };
        loop {
            tick.tick().await;
            let s = self.sample(d, version).await?;
            let at = t0.elapsed();
            out.samples += 1;
            out.max_unavailable = out.max_unavailable.max(s.unavailable());
            if s.settled() && out.docker_secs.is_nan() {
                out.docker_secs = at.as_secs_f64();
            }
            // Asked every sample, so that when each side got there can be told apart.
            let said = done().await?;
            if said && out.said_secs.is_nan() {
                out.said_secs = at.as_secs_f64();
            }
            if s.settled() && said {
                out.secs = at.as_secs_f64();
                return Ok(out);
            }
            if at > timeout {
                return Err(format!(
                    "{version} not rolled out after {timeout:?}; last sample {s:?}"
                ));
            }
        }
    }
}

/// What following one rollout gave.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Followed {
    /// From the write to the first sample with every slot on the version and the rollout
    /// over.
    pub(crate) secs: f64,
    /// From the write to the first sample with every slot on the version, whatever the
    /// system said then.
    pub(crate) docker_secs: f64,
    /// From the write to the first sample in which the system said its rollout was
    /// over, whatever `docker ps` showed then.
    pub(crate) said_secs: f64,
    /// The most slots without a running and healthy container in any one sample.
    pub(crate) max_unavailable: usize,
    pub(crate) samples: usize,
}
