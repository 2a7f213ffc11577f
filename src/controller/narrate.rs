//! What a pass did to placements, told as events (`Placed`, `Rescheduled`): one event per
//! stack and pass, naming each slot and its host, so a stack of a hundred slots records
//! one line and one etcd write, not a hundred (the scale bench counts writes per slot).
//! The event names the service when only one is involved. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::scheduler::plan::{Placement, SlotId};

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub stack: String,
    /// The service, when all the slots told are one service's.
    pub service: Option<String>,
    pub reason: &'static str,
    pub message: String,
}

/// `Placed` for each stack with slots that had no host before (`was_placed` says which
/// had one), and `Rescheduled` for each stack with slots that moved.
pub fn placements(placement: &Placement, was_placed: impl Fn(&SlotId) -> bool) -> Vec<Note> {
    let moving: BTreeSet<&SlotId> = placement.moves.iter().map(|m| &m.slot).collect();
    let mut placed: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
    // A slot placed for the first time is in a stack the placement did not leave as it was.
    let unsettled = placement
        .unsettled
        .iter()
        .flat_map(|s| placement.hosts_of(s));
    for (sid, host) in unsettled {
        if !moving.contains(sid) && !was_placed(sid) {
            placed.entry(&sid.stack).or_default().push((
                &sid.service,
                format!("{}.{} on {host}", sid.service, sid.replica),
            ));
        }
    }
    let mut moved: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
    for m in &placement.moves {
        moved.entry(&m.slot.stack).or_default().push((
            &m.slot.service,
            format!(
                "{}.{} from {} to {} ({})",
                m.slot.service,
                m.slot.replica,
                m.from,
                m.to,
                m.reason.as_str().replace('_', " ")
            ),
        ));
    }
    let note = |reason: &'static str| {
        move |(stack, slots): (&str, Vec<(&str, String)>)| {
            let services: BTreeSet<&str> = slots.iter().map(|(s, _)| *s).collect();
            Note {
                stack: stack.to_owned(),
                service: (services.len() == 1)
                    .then(|| services.first().map(|s| (*s).to_owned()))
                    .flatten(),
                reason,
                message: slots
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect::<Vec<_>>()
                    .join(", "),
            }
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
    fn new_slots_are_placed_and_moved_ones_rescheduled_one_event_per_stack() {
        let mut p = Placement::default();
        for (s, r, h) in [
            ("web", 1, "h1"),
            ("web", 2, "h2"),
            ("db", 1, "h3"),
            ("api", 1, "h1"),
            ("cache", 1, "h2"),
        ] {
            p.hosts.insert(sid(s, r), h.into());
        }
        p.unsettled.insert("shop".into());
        p.moves.push(Move {
            slot: sid("db", 1),
            from: "h1".into(),
            to: "h3".into(),
            reason: MoveReason::HostDown,
        });
        // api.1 was already on h1: nothing to tell.
        let notes = placements(&p, |s| s.service == "api" || s.service == "db");
        let got: Vec<(&str, Option<&str>, &str)> = notes
            .iter()
            .map(|n| (n.reason, n.service.as_deref(), n.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Placed", None, "cache.1 on h2, web.1 on h1, web.2 on h2"),
                ("Rescheduled", Some("db"), "db.1 from h1 to h3 (host down)"),
            ]
        );
        assert!(placements(&p, |_| true)
            .iter()
            .all(|n| n.reason == "Rescheduled"));
        // One service's slots: the event names it.
        let mut one = Placement::default();
        one.hosts.insert(sid("web", 1), "h1".into());
        one.hosts.insert(sid("web", 2), "h2".into());
        // The placement left every slot where it was: nothing to tell.
        assert!(placements(&one, |_| false).is_empty());
        one.unsettled.insert("shop".into());
        let notes = placements(&one, |_| false);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].service.as_deref(), Some("web"));
    }
}
