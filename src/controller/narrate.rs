//! What a pass did to placements, told as events (`Placed`, `Rescheduled`): one event per
//! service and pass, naming each slot and its host, so a stack of a hundred replicas
//! records one line, not a hundred. Pure.

use std::collections::BTreeMap;

use crate::scheduler::plan::{Placement, SlotId};

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub stack: String,
    pub service: String,
    pub reason: &'static str,
    pub message: String,
}

/// `Placed` for each service with slots that had no host before (`was_placed` says which
/// had one), and `Rescheduled` for each service with slots that moved.
pub fn placements(placement: &Placement, was_placed: impl Fn(&SlotId) -> bool) -> Vec<Note> {
    let mut placed: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for (sid, host) in &placement.hosts {
        let moved = placement.moves.iter().any(|m| &m.slot == sid);
        if !moved && !was_placed(sid) {
            placed
                .entry((&sid.stack, &sid.service))
                .or_default()
                .push(format!("{}.{} on {host}", sid.service, sid.replica));
        }
    }
    let mut moved: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for m in &placement.moves {
        moved
            .entry((&m.slot.stack, &m.slot.service))
            .or_default()
            .push(format!(
                "{}.{} from {} to {} ({})",
                m.slot.service,
                m.slot.replica,
                m.from,
                m.to,
                m.reason.as_str().replace('_', " ")
            ));
    }
    let note = |reason: &'static str| {
        move |((stack, service), slots): ((&str, &str), Vec<String>)| Note {
            stack: stack.to_owned(),
            service: service.to_owned(),
            reason,
            message: slots.join(", "),
        }
    };
    placed
        .into_iter()
        .map(note("Placed"))
        .chain(moved.into_iter().map(note("Rescheduled")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plan::{Move, MoveReason};

    fn sid(service: &str, replica: u32) -> SlotId {
        SlotId {
            stack: "shop".into(),
            service: service.into(),
            replica,
        }
    }

    #[test]
    fn new_slots_are_placed_and_moved_ones_rescheduled_one_event_per_service() {
        let mut p = Placement::default();
        for (s, r, h) in [
            ("web", 1, "h1"),
            ("web", 2, "h2"),
            ("db", 1, "h3"),
            ("api", 1, "h1"),
        ] {
            p.hosts.insert(sid(s, r), h.into());
        }
        p.moves.push(Move {
            slot: sid("db", 1),
            from: "h1".into(),
            to: "h3".into(),
            reason: MoveReason::HostDown,
        });
        // api.1 was already on h1: nothing to tell.
        let notes = placements(&p, |s| s.service == "api" || s.service == "db");
        let got: Vec<(&str, &str, &str)> = notes
            .iter()
            .map(|n| (n.reason, n.service.as_str(), n.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Placed", "web", "web.1 on h1, web.2 on h2"),
                ("Rescheduled", "db", "db.1 from h1 to h3 (host down)"),
            ]
        );
        assert!(placements(&p, |_| true)
            .iter()
            .all(|n| n.reason == "Rescheduled"));
    }
}
