//! `berth apply --dry-run`: where the scheduler would place each slot of a stack, and
//! which slots would move or find no host. Pure: rendered from a preview [`Placement`].

use super::table::Table;
use crate::scheduler::plan::Placement;

pub fn render(preview: &Placement, width: usize) -> String {
    let mut t = Table::new(&["SERVICE", "REPLICA", "HOST", "NOTE"]);
    for (sid, host) in &preview.hosts {
        let note = preview
            .moves
            .iter()
            .find(|m| &m.slot == sid)
            .map(|m| format!("moves from {} ({})", m.from, m.reason.as_str()))
            .unwrap_or_default();
        t.row(vec![
            sid.service.clone(),
            sid.replica.to_string(),
            host.clone(),
            note,
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
            render(&p, 80),
            "SERVICE  REPLICA  HOST    NOTE\n\
             api      0        h1      moves from h2 (drain)\n\
             api      1        h2\n\
             db       -        (none)  no host has 4 CPUs free\n"
        );
    }
}
