//! What `berth host remove` tells while a host goes and once it is gone: what the host
//! still holds, and where the slots it held went. Pure.

use std::collections::BTreeSet;

use crate::controller::world::World;
use crate::slot::SlotId;

/// What a host holds now: the slots assigned to it (hand-off copies included) and the
/// containers its reports name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub slots: BTreeSet<SlotId>,
    pub containers: BTreeSet<String>,
}

pub fn held(w: &World, host: &str) -> Held {
    let slots = w
        .assignments
        .iter()
        .filter(|((h, _), _)| h == host)
        .flat_map(|((_, stack), (a, _))| a.slots.iter().map(|s| s.id(stack)))
        .collect();
    let containers = w
        .reports
        .values()
        .filter(|r| r.host == host)
        .filter_map(|r| r.container_id.clone())
        .collect();
    Held { slots, containers }
}

/// Where the slots a removed host held went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Slots running elsewhere now, and where.
    pub moved: Vec<(SlotId, String)>,
    /// Slots pinned to the host by `targetHost`: they have no host now.
    pub pinned: Vec<SlotId>,
    /// Other slots no other host fits, with the reason the status gives.
    pub homeless: Vec<(SlotId, String)>,
    /// Containers Berth ran there, all removed.
    pub containers: usize,
}

/// The fate of `before` (what `host` held when its removal began) in `w`, read once the
/// host is gone; `containers` is how many it ran meanwhile. Slots of deleted stacks are
/// left out.
pub fn removal(before: &Held, containers: usize, w: &World, host: &str) -> Removal {
    let mut out = Removal {
        containers,
        ..Removal::default()
    };
    for sid in &before.slots {
        let Some((_, raw)) = w.stacks.get(&sid.stack) else {
            continue;
        };
        let placed = w.assignments.iter().find_map(|((h, stack), (a, _))| {
            (stack == &sid.stack && h != host)
                .then(|| a.slot(sid).filter(|s| !s.handoff).map(|_| h.clone()))
                .flatten()
        });
        if let Some(to) = placed {
            out.moved.push((sid.clone(), to));
            continue;
        }
        let pinned = crate::spec::parse_stack(raw).is_ok_and(|s| {
            s.item_list_element
                .iter()
                .any(|svc| svc.name == sid.service && svc.target_host.as_deref() == Some(host))
        });
        if pinned {
            out.pinned.push(sid.clone());
        } else {
            let why = w
                .statuses
                .get(&sid.stack)
                .and_then(|(s, _)| s.as_ref())
                .and_then(|s| s.services.get(&sid.service))
                .and_then(|s| s.message.clone())
                .unwrap_or_else(|| "no other host fits".to_owned());
            out.homeless.push((sid.clone(), why));
        }
    }
    out
}

/// `host h4 removed: moved 2 slot(s), removed 3 container(s), 1 pinned slot(s) now have
/// no host`, then one line per slot.
pub fn render(host: &str, r: &Removal) -> String {
    let mut out = format!(
        "host {host} removed: moved {} slot(s), removed {} container(s), {} pinned slot(s) now have no host",
        r.moved.len(),
        r.containers,
        r.pinned.len()
    );
    if !r.homeless.is_empty() {
        out.push_str(&format!(", {} slot(s) fit no other host", r.homeless.len()));
    }
    out.push('\n');
    for (sid, to) in &r.moved {
        out.push_str(&format!("  {sid}: moved to {to}\n"));
    }
    for sid in &r.pinned {
        out.push_str(&format!(
            "  {sid}: no host (its targetHost is {host}; give it another to run it again)\n"
        ));
    }
    for (sid, why) in &r.homeless {
        out.push_str(&format!("  {sid}: no host: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{kv, world};
    use super::*;
    use crate::store::keys;
    use serde_json::json;

    fn assignment(slots: serde_json::Value) -> serde_json::Value {
        json!({"stack": "shop", "specRevision": 1, "desiredState": "running",
               "network": {"name": "n", "driver": "bridge"}, "slots": slots})
    }

    fn slot(service: &str, handoff: bool) -> serde_json::Value {
        json!({"service": service, "replica": 1, "order": 0, "handoff": handoff,
               "container": {"image": "x"}})
    }

    #[test]
    fn a_removal_tells_what_moved_what_lost_its_host_and_why() {
        let spec = json!({"deployment": {"mode": "multi-host"}, "itemListElement": [
            {"name": "web", "image": "x"},
            {"name": "db", "image": "x", "targetHost": "h4"},
            {"name": "big", "image": "x"}
        ]});
        let during = world(&[
            kv(keys::stack("shop"), spec.clone()),
            kv(
                keys::assignment("h4", "shop"),
                assignment(json!([
                    slot("web", true),
                    slot("db", false),
                    slot("big", false)
                ])),
            ),
            kv(
                keys::assignment("h1", "shop"),
                assignment(json!([slot("web", false)])),
            ),
            kv(
                keys::report("h4", "shop", "db.1"),
                json!({"stack": "shop", "service": "db", "replica": 1, "host": "h4",
                       "specRevision": 1, "specHash": "x", "containerId": "c-db",
                       "state": "running", "health": "none", "restarts": 0}),
            ),
        ]);
        let before = held(&during, "h4");
        assert_eq!(before.slots.len(), 3);
        assert_eq!(before.containers, BTreeSet::from(["c-db".to_owned()]));

        let after = world(&[
            kv(keys::stack("shop"), spec),
            kv(
                keys::assignment("h1", "shop"),
                assignment(json!([slot("web", false)])),
            ),
            kv(
                keys::status("shop"),
                json!({"stack": "shop", "observedRevision": 1, "phase": "Pending", "message": "",
                       "services": {"big": {"state": "pending", "health": "none", "restarts": 0,
                                            "message": "0/1 hosts fit: 1 lacks CPU"}}}),
            ),
        ]);
        assert_eq!(held(&after, "h4"), Held::default());
        let r = removal(&before, 3, &after, "h4");
        assert_eq!(
            r.moved,
            vec![(SlotId::new("shop", "web", 1), "h1".to_owned())]
        );
        assert_eq!(r.pinned, vec![SlotId::new("shop", "db", 1)]);
        assert_eq!(
            r.homeless,
            vec![(
                SlotId::new("shop", "big", 1),
                "0/1 hosts fit: 1 lacks CPU".to_owned()
            )]
        );
        let text = render("h4", &r);
        assert!(
            text.starts_with(
                "host h4 removed: moved 1 slot(s), removed 3 container(s), 1 pinned slot(s) now have no host, 1 slot(s) fit no other host\n"
            ),
            "{text}"
        );
    }
}
