//! `berth apply --dry-run` and the web view's preview: where the scheduler would place
//! each slot of a stack, which slots would move or find no host, and the batches a
//! rollout of the change would run. Pure: rendered from an [`ApplyPreview`].

use serde::Serialize;

use super::table::Table;
use crate::controller::decide::ApplyPreview;
use crate::controller::rollout::ServicePlan;
use crate::scheduler::plan::Placement;

/// A preview as the web view's `/api/v1/preview` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewView {
    pub stack: String,
    /// Every slot with the host it would run on.
    pub slots: Vec<PlacedSlot>,
    /// Services (some of) whose slots would find no host, with why.
    pub unschedulable: Vec<UnplacedService>,
    /// Each service whose running slots would change, batch by batch.
    pub rollouts: Vec<RolloutPreview>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacedSlot {
    pub service: String,
    pub replica: u32,
    pub host: String,
    /// `moves from h2 (drain)` when the slot would leave the host it runs on.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnplacedService {
    pub service: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPreview {
    pub service: String,
    /// `stop-first` or `start-first`.
    pub order: String,
    /// Why start-first falls back to stop-first.
    pub fallback: Option<String>,
    /// Each batch as `service.replica@host`.
    pub batches: Vec<Vec<String>>,
}

/// The preview of stack `stack` as data.
pub fn preview_view(stack: &str, preview: &ApplyPreview) -> PreviewView {
    let p = &preview.placement;
    PreviewView {
        stack: stack.to_owned(),
        slots: placed(p),
        unschedulable: p
            .unschedulable
            .iter()
            .map(|((_, service), why)| UnplacedService {
                service: service.clone(),
                reason: why.clone(),
            })
            .collect(),
        rollouts: preview
            .rollouts
            .iter()
            .map(|r| RolloutPreview {
                service: r.service.clone(),
                order: r.order.to_string(),
                fallback: r.fallback.clone(),
                batches: batches(r),
            })
            .collect(),
    }
}

/// Each slot, its host, and where it would move from.
fn placed(p: &Placement) -> Vec<PlacedSlot> {
    p.hosts
        .iter()
        .map(|(sid, host)| PlacedSlot {
            service: sid.service.clone(),
            replica: sid.replica,
            host: host.clone(),
            note: p
                .moves
                .iter()
                .find(|m| &m.slot == sid)
                .map(|m| format!("moves from {} ({})", m.from, m.reason.as_str())),
        })
        .collect()
}

/// Each batch of a rollout as `service.replica@host`.
fn batches(p: &ServicePlan) -> Vec<Vec<String>> {
    p.batches
        .iter()
        .map(|batch| {
            batch
                .iter()
                .map(|(r, h)| format!("{}.{r}@{h}", p.service))
                .collect()
        })
        .collect()
}

pub fn render(preview: &ApplyPreview, width: usize) -> String {
    let mut out = render_placement(&preview.placement, width);
    if preview.rollouts.is_empty() {
        out.push_str("rollout: none (no slot changes its container on the host it runs on)\n");
    }
    for p in &preview.rollouts {
        out.push_str(&render_rollout(p));
    }
    out
}

/// One changed service: its rules, its order (and why start-first falls back), then each
/// batch as `service.replica@host`.
fn render_rollout(p: &ServicePlan) -> String {
    let pol = &p.policy;
    let slots: usize = p.batches.iter().map(Vec::len).sum();
    let mut out = format!(
        "rollout of {}: {slots} slot(s) in {} batch(es), {}; monitor {}s, deadline {}s, delay {}s, on failure {}\n",
        p.service,
        p.batches.len(),
        p.order,
        pol.monitor.as_secs(),
        pol.deadline.as_secs(),
        pol.delay.as_secs(),
        pol.failure_action,
    );
    if let Some(why) = &p.fallback {
        out.push_str(&format!("  start-first falls back to stop-first: {why}\n"));
    }
    for (n, slots) in batches(p).iter().enumerate() {
        out.push_str(&format!("  batch {}: {}\n", n + 1, slots.join(", ")));
    }
    out
}

fn render_placement(preview: &Placement, width: usize) -> String {
    let mut t = Table::new(&["SERVICE", "REPLICA", "HOST", "NOTE"]);
    for slot in placed(preview) {
        t.row(vec![
            slot.service,
            slot.replica.to_string(),
            slot.host,
            slot.note.unwrap_or_default(),
        ]);
    }
    for ((_, svc), why) in &preview.unschedulable {
        t.row(vec![svc.clone(), "-".into(), "(none)".into(), why.clone()]);
    }
    t.render(width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plan::{Move, MoveReason, SlotId};

    fn slot(service: &str, replica: u32) -> SlotId {
        SlotId {
            stack: "shop".into(),
            service: service.into(),
            replica,
        }
    }

    #[test]
    fn preview_lists_each_slot_its_move_and_each_unschedulable_service() {
        let mut p = Placement::default();
        p.hosts.insert(slot("api", 0), "h1".into());
        p.hosts.insert(slot("api", 1), "h2".into());
        p.moves.push(Move {
            slot: slot("api", 0),
            from: "h2".into(),
            to: "h1".into(),
            reason: MoveReason::Drain,
        });
        p.unschedulable.insert(
            ("shop".into(), "db".into()),
            "no host has 4 CPUs free".into(),
        );
        assert_eq!(
            render_placement(&p, 80),
            "SERVICE  REPLICA  HOST    NOTE\n\
             api      0        h1      moves from h2 (drain)\n\
             api      1        h2\n\
             db       -        (none)  no host has 4 CPUs free\n"
        );
    }

    #[test]
    fn preview_lists_the_batches_of_each_changed_service_and_why_start_first_falls_back() {
        use crate::spec::{UpdateOrder, UpdatePolicy};
        let plan = |service: &str, order, fallback: Option<&str>| ServicePlan {
            service: service.into(),
            batches: vec![
                vec![(1, "h1".into()), (2, "h2".into())],
                vec![(3, "h3".into())],
            ],
            order,
            fallback: fallback.map(Into::into),
            policy: UpdatePolicy {
                parallelism: 2,
                ..UpdatePolicy::default()
            },
        };
        let preview = ApplyPreview {
            placement: Placement::default(),
            rollouts: vec![
                plan("web", UpdateOrder::StartFirst, None),
                plan(
                    "db",
                    UpdateOrder::StopFirst,
                    Some("replica 1 on h1: old and new would share host port 5432/tcp"),
                ),
            ],
        };
        let out = render(&preview, 80);
        assert!(out.contains(
            "rollout of web: 3 slot(s) in 2 batch(es), start-first; monitor 5s, deadline 120s, delay 0s, on failure rollback\n  batch 1: web.1@h1, web.2@h2\n  batch 2: web.3@h3\n"
        ), "{out}");
        assert!(
            out.contains("rollout of db: 3 slot(s) in 2 batch(es), stop-first;"),
            "{out}"
        );
        assert!(out.contains("  start-first falls back to stop-first: replica 1 on h1: old and new would share host port 5432/tcp\n"), "{out}");
        let none = render(
            &ApplyPreview {
                placement: Placement::default(),
                rollouts: vec![],
            },
            80,
        );
        assert!(none.contains("rollout: none"), "{none}");
    }
}
