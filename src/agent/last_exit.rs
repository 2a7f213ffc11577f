//! The pass's step that records how containers ended, around
//! [`termination`](super::termination)'s pure decisions: it reads a crashed container's
//! log tail through the runtime, once, and the values to hide from it (the service's
//! secrets and its registry password, read again through the same paths that filled them
//! in: they are kept in no memory and no key).

use std::collections::BTreeMap;

use super::actual::{ActualContainer, Ended};
use super::desired::DesiredContainer;
use super::execute::LivenessKill;
use super::reconciler::Reconciler;
use super::termination::{self, Cause, Redactions, TAIL_LINES};
use super::{pull, secrets};
use crate::report::SlotReport;

impl Reconciler {
    /// Record every crash first seen among `actual`. Runs before the pass acts: a
    /// restart appends the next run's output to the log, and Docker's state becomes the
    /// new run's. `previous` are this host's last reports, by container name.
    pub(super) async fn record_exits(
        &mut self,
        desired: &[DesiredContainer],
        actual: &[ActualContainer],
        previous: &BTreeMap<String, SlotReport>,
    ) {
        self.terminations.sync(desired, previous);
        for end in self.terminations.observe(desired, actual) {
            let (Some(d), Some(a)) = (
                desired.iter().find(|d| d.name == end.name),
                actual.iter().find(|a| a.id == end.container),
            ) else {
                continue;
            };
            let output = match self.rt.log_tail(&a.id, TAIL_LINES).await {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!(container = %a.name, error = %crate::error_chain(&e), "reading the log tail of a container that ended failed");
                    String::new()
                }
            };
            let ended = Ended {
                exit_code: a.exit_code,
                oom_killed: a.oom_killed,
                finished_at: a.finished_at.clone(),
                output,
            };
            self.record_end(d, &a.id, Cause::Exited, &ended).await;
        }
    }

    /// Record the runs this pass stopped for failing their liveness check.
    pub(super) async fn record_liveness_kills(
        &mut self,
        kills: Vec<LivenessKill>,
        by_name: &BTreeMap<String, &DesiredContainer>,
    ) {
        for k in kills {
            if let Some(d) = by_name.get(&k.name) {
                self.record_end(d, &k.container, Cause::Unhealthy, &k.ended)
                    .await;
            }
        }
    }

    async fn record_end(
        &mut self,
        d: &DesiredContainer,
        container: &str,
        cause: Cause,
        ended: &Ended,
    ) {
        let hide = self.redactions(d).await;
        let t = termination::termination(
            cause,
            ended,
            d.spec().memory_mb,
            hide.as_ref().map_err(String::as_str),
        );
        tracing::info!(container = %d.name, exit_code = ?t.exit_code, reason = t.reason.as_str(), message = %t.message, "container ended");
        self.terminations.record(d, container, t);
    }

    /// What `d`'s output must not show: its secrets' values and its image registry's
    /// password.
    async fn redactions(&self, d: &DesiredContainer) -> Result<Redactions, String> {
        let mut values = Vec::new();
        if let Some(r) = secrets::resolve(&self.store, self.secret_source, &self.host, d).await? {
            values.extend(r.values);
        }
        let (auth, _) = pull::login_for(
            &self.store,
            self.secret_source,
            &self.host,
            self.docker_config.as_deref(),
            &d.spec().image,
        )
        .await?;
        values.extend(auth.map(|a| a.password));
        Ok(Redactions::new(values))
    }
}
