//! `deployment.pinDigests`: every slot of a revision runs the same bits. The first host
//! that pulls the revision's image reports its registry digest; every other slot of that
//! revision is then assigned `repo@sha256:...`, so a tag pushed again mid-rollout reaches
//! no host. Level-triggered and kept nowhere else: the pin is read back from the
//! assignments that carry it, or, before any does, from the report of the slot that
//! pulled first. Pure.

use std::collections::BTreeMap;

use crate::assignment::Assignment;
use crate::registry::repository;
use crate::report::SlotReport;
use crate::spec::Stack;

/// The digest each of the stack's image references is pinned to at `revision`, as far as
/// it is known: from a slot already assigned `repo@digest`, else from a report of a slot
/// that runs the reference unpinned.
pub fn pins(
    stack: &Stack,
    revision: i64,
    current: &BTreeMap<&str, &Assignment>,
    reports: &[&SlotReport],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for svc in &stack.item_list_element {
        let image = &svc.image;
        if image.contains('@') || out.contains_key(image) {
            continue;
        }
        let repo = repository(image);
        let at_revision = current
            .values()
            .filter(|a| a.spec_revision == revision)
            .flat_map(|a| a.slots.iter().filter(|s| s.service == svc.name));
        let assigned = at_revision
            .clone()
            .map(|s| &s.container.image)
            .find(|i| i.split('@').next() == Some(repo) && i.contains("@sha256:"));
        let reported = || {
            reports
                .iter()
                .filter(|r| r.spec_revision == revision && r.service == svc.name)
                .filter(|r| {
                    current.get(r.host.as_str()).is_some_and(|a| {
                        a.slot_of(&r.service, r.replica)
                            .is_some_and(|s| &s.container.image == image)
                    })
                })
                .find_map(|r| r.image_digest.clone())
        };
        if let Some(pin) = assigned.cloned().or_else(reported) {
            out.insert(image.clone(), pin);
        }
    }
    out
}

/// Gives the slots of `target` (the stack's assignments by host, at `revision`) their
/// pinned image, but for a slot that already runs the pinned bits under the unpinned
/// reference (the one that pulled first): replacing it would change nothing but its name.
pub fn apply(
    pins: &BTreeMap<String, String>,
    revision: i64,
    current: &BTreeMap<&str, &Assignment>,
    reports: &[&SlotReport],
    target: &mut BTreeMap<String, Assignment>,
) {
    for (host, a) in target.iter_mut() {
        for slot in &mut a.slots {
            let Some(pin) = pins.get(&slot.container.image) else {
                continue;
            };
            let runs_it = current.get(host.as_str()).is_some_and(|c| {
                c.spec_revision == revision
                    && c.slot_of(&slot.service, slot.replica)
                        .is_some_and(|s| s.container.image == slot.container.image)
            }) && reports.iter().any(|r| {
                r.host == *host
                    && r.service == slot.service
                    && r.replica == slot.replica
                    && r.spec_revision == revision
                    && r.image_digest.as_ref() == Some(pin)
            });
            if !runs_it {
                slot.container.image = pin.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::{ContainerSpec, NetworkSpec, Slot};
    use crate::report::{SlotHealth, SlotState};
    use crate::spec::DesiredState;

    const TAG: &str = "r:5000/team/app:1";
    const D1: &str = "r:5000/team/app@sha256:1111";
    const D2: &str = "r:5000/team/app@sha256:2222";

    fn stack() -> Stack {
        serde_json::from_value(serde_json::json!({
            "deployment": {"pinDigests": true},
            "itemListElement": [{"name": "web", "image": TAG, "replicas": 2}]
        }))
        .unwrap()
    }

    fn on(rev: i64, replica: u32, image: &str) -> Assignment {
        Assignment {
            stack: "s".into(),
            spec_revision: rev,
            desired_state: DesiredState::Running,
            network: NetworkSpec {
                name: "n".into(),
                driver: "bridge".into(),
                create: true,
            },
            volumes: vec![],
            slots: vec![Slot::bare(
                "web",
                replica,
                ContainerSpec {
                    image: image.into(),
                    ..Default::default()
                },
            )],
        }
    }

    fn report(host: &str, replica: u32, rev: i64, digest: Option<&str>) -> SlotReport {
        SlotReport {
            stack: "s".into(),
            service: "web".into(),
            replica,
            host: host.into(),
            spec_revision: rev,
            spec_hash: "x".into(),
            container_id: Some("c".into()),
            state: SlotState::Running,
            health: SlotHealth::NotChecked,
            restarts: 0,
            exit_code: None,
            message: None,
            image_id: Some("sha256:i".into()),
            image_digest: digest.map(str::to_owned),
            pull: None,
            last_termination: None,
        }
    }

    /// The images the target assigns h1's and h2's slots, after pinning.
    fn run(
        current: &[(&str, Assignment)],
        reports: &[SlotReport],
    ) -> (Vec<String>, BTreeMap<String, String>) {
        let current: BTreeMap<&str, &Assignment> = current.iter().map(|(h, a)| (*h, a)).collect();
        let reports: Vec<&SlotReport> = reports.iter().collect();
        let pinned = pins(&stack(), 5, &current, &reports);
        let mut target: BTreeMap<String, Assignment> =
            BTreeMap::from([("h1".into(), on(5, 1, TAG)), ("h2".into(), on(5, 2, TAG))]);
        apply(&pinned, 5, &current, &reports, &mut target);
        let images = target
            .values()
            .map(|a| a.slots[0].container.image.clone())
            .collect();
        (images, pinned)
    }

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn the_first_pulls_digest_pins_the_other_slots_and_leaves_the_first_as_it_is() {
        let both_tag = [("h1", on(5, 1, TAG)), ("h2", on(5, 2, TAG))];
        // (name, current, reports, images of h1 and h2)
        let cases: Vec<(&str, Vec<(&str, Assignment)>, Vec<SlotReport>, [&str; 2])> = vec![
            (
                "nothing pulled yet: nothing pinned",
                both_tag.to_vec(),
                vec![],
                [TAG, TAG],
            ),
            (
                "h1 pulled D1 first: h2 is pinned to it",
                both_tag.to_vec(),
                vec![report("h1", 1, 5, Some(D1)), report("h2", 2, 5, None)],
                [TAG, D1],
            ),
            (
                "h2 pulled the same bits: it keeps its container",
                both_tag.to_vec(),
                vec![report("h1", 1, 5, Some(D1)), report("h2", 2, 5, Some(D1))],
                [TAG, TAG],
            ),
            (
                "a report of the last revision pins nothing",
                vec![("h1", on(4, 1, TAG)), ("h2", on(4, 2, TAG))],
                vec![report("h1", 1, 4, Some(D1))],
                [TAG, TAG],
            ),
            (
                "the pin already assigned holds, whatever a later pull of the tag found",
                vec![("h1", on(5, 1, TAG)), ("h2", on(5, 2, D1))],
                vec![report("h1", 1, 5, Some(D2)), report("h2", 2, 5, Some(D1))],
                [D1, D1],
            ),
        ];
        for (name, current, reports, want) in cases {
            let (images, _) = run(&current, &reports);
            assert_eq!(images, want.map(str::to_owned).to_vec(), "{name}");
        }
    }
}
