//! `deployment.pinDigests`: every slot of a revision runs the same bits. The first host
//! that pulls the revision's image reports its registry digest; every other slot of that
//! revision is then assigned `repo@sha256:...`, so a tag pushed again mid-rollout reaches
//! no host. Level-triggered and kept nowhere else: the pin is read back from the
//! assignments that carry it, or, before any does, from the report of the slot that
//! pulled first. Only a container made for the revision counts: a slot a rollout holds
//! back keeps the last revision's container, and its agent reports it under the new
//! revision, but its bits are the last revision's. Pure.

use std::collections::BTreeMap;

use crate::assignment::{Assignment, ContainerSpec};
use crate::registry::repository;
use crate::report::SlotReport;
use crate::spec::Stack;

/// The digest each of the stack's image references is pinned to at `revision`, as far as
/// it is known: from a slot already assigned `repo@digest`, else from a report of a slot
/// that runs the reference unpinned; either way, a slot whose container is `target`'s
/// (the stack's assignments by host at `revision`, not yet pinned) but for the pin.
pub fn pins(
    stack: &Stack,
    revision: i64,
    current: &BTreeMap<&str, &Assignment>,
    reports: &[&SlotReport],
    target: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, String> {
    // What each slot is to run at `revision`, and its network (its hash depends on it).
    let wanted = |service: &str, replica: u32| {
        target.values().find_map(|a| {
            a.slot_of(service, replica)
                .map(|s| (&s.container, a.network.name.as_str()))
        })
    };
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
            .filter(|s| {
                wanted(&s.service, s.replica).is_some_and(|(w, _)| same_but_image(&s.container, w))
            })
            .map(|s| &s.container.image)
            .find(|i| i.split('@').next() == Some(repo) && i.contains("@sha256:"));
        let reported = || {
            reports
                .iter()
                .filter(|r| r.spec_revision == revision && r.service == svc.name)
                .filter(|r| {
                    wanted(&r.service, r.replica).is_some_and(|(w, net)| w.hash(net) == r.spec_hash)
                })
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

/// Whether `a` and `b` are one container but for the image reference.
fn same_but_image(a: &ContainerSpec, b: &ContainerSpec) -> bool {
    let bare = |c: &ContainerSpec| ContainerSpec {
        image: String::new(),
        ..c.clone()
    };
    bare(a) == bare(b)
}

/// Gives the slots of `target` (the stack's assignments by host, at `revision`) their
/// pinned image, but for a slot that already runs the pinned bits under the unpinned
/// reference (the one that pulled first, its container made for `revision`): replacing it
/// would change nothing but its name.
pub fn apply(
    pins: &BTreeMap<String, String>,
    revision: i64,
    current: &BTreeMap<&str, &Assignment>,
    reports: &[&SlotReport],
    target: &mut BTreeMap<String, Assignment>,
) {
    for (host, a) in target.iter_mut() {
        let network = a.network.name.clone();
        for slot in &mut a.slots {
            let Some(pin) = pins.get(&slot.container.image) else {
                continue;
            };
            let unpinned = slot.container.hash(&network);
            let runs_it = current.get(host.as_str()).is_some_and(|c| {
                c.spec_revision == revision
                    && c.slot_of(&slot.service, slot.replica)
                        .is_some_and(|s| s.container.image == slot.container.image)
            }) && reports.iter().any(|r| {
                r.host == *host
                    && r.service == slot.service
                    && r.replica == slot.replica
                    && r.spec_revision == revision
                    && r.spec_hash == unpinned
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

    /// The service's container at `version` of the spec (its `V`), running `image`.
    fn ctr(image: &str, version: &str) -> ContainerSpec {
        ContainerSpec {
            image: image.into(),
            env: BTreeMap::from([("V".into(), version.into())]),
            ..Default::default()
        }
    }

    /// Replica `replica` assigned at `rev`, with the current spec's container (`V` 2).
    fn on(rev: i64, replica: u32, image: &str) -> Assignment {
        held(rev, replica, image, "2")
    }

    /// Replica `replica` assigned at `rev` with the container of spec `version`: `V` 1 is
    /// the last revision's, which a rollout holds back until the slot's batch comes.
    fn held(rev: i64, replica: u32, image: &str, version: &str) -> Assignment {
        Assignment {
            deleted: None,
            stack: "s".into(),
            spec_revision: rev,
            desired_state: DesiredState::Running,
            network: NetworkSpec {
                name: "n".into(),
                driver: "bridge".into(),
                create: true,
            },
            volumes: vec![],
            slots: vec![Slot::bare("web", replica, ctr(image, version))],
        }
    }

    /// The agent's report of what `a` assigns it, running bits of `digest`.
    fn report(host: &str, a: &Assignment, digest: Option<&str>) -> SlotReport {
        let slot = &a.slots[0];
        SlotReport {
            stack: "s".into(),
            service: "web".into(),
            replica: slot.replica,
            host: host.into(),
            spec_revision: a.spec_revision,
            spec_hash: slot.container.hash(&a.network.name),
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
        let mut target: BTreeMap<String, Assignment> =
            BTreeMap::from([("h1".into(), on(5, 1, TAG)), ("h2".into(), on(5, 2, TAG))]);
        let pinned = pins(&stack(), 5, &current, &reports, &target);
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
        let (h1, h2) = (on(5, 1, TAG), on(5, 2, TAG));
        let both_tag = [("h1", h1.clone()), ("h2", h2.clone())];
        // The rollout of revision 5 handed h1 its new container; h2's batch has not come,
        // so it still runs revision 4's (V 1), which its agent reports under revision 5.
        let h2_held = held(5, 2, TAG, "1");
        let h2_held_pinned = held(5, 2, D1, "1");
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
                vec![report("h1", &h1, Some(D1)), report("h2", &h2, None)],
                [TAG, D1],
            ),
            (
                "h2 pulled the same bits: it keeps its container",
                both_tag.to_vec(),
                vec![report("h1", &h1, Some(D1)), report("h2", &h2, Some(D1))],
                [TAG, TAG],
            ),
            (
                "a report of the last revision pins nothing",
                vec![("h1", on(4, 1, TAG)), ("h2", on(4, 2, TAG))],
                vec![report("h1", &on(4, 1, TAG), Some(D1))],
                [TAG, TAG],
            ),
            (
                "the pin already assigned holds, whatever a later pull of the tag found",
                vec![("h1", h1.clone()), ("h2", on(5, 2, D1))],
                vec![
                    report("h1", &h1, Some(D2)),
                    report("h2", &on(5, 2, D1), Some(D1)),
                ],
                [D1, D1],
            ),
            (
                "a held-back slot's last-revision bits pin nothing while h1 pulls",
                vec![("h1", h1.clone()), ("h2", h2_held.clone())],
                vec![report("h2", &h2_held, Some(D1))],
                [TAG, TAG],
            ),
            (
                "h1's pull pins the new revision, not the held-back slot's bits",
                vec![("h1", h1.clone()), ("h2", h2_held.clone())],
                vec![
                    report("h2", &h2_held, Some(D1)),
                    report("h1", &h1, Some(D2)),
                ],
                [TAG, D2],
            ),
            (
                "a held-back slot's pin of the last revision is not this one's",
                vec![("h1", h1.clone()), ("h2", h2_held_pinned.clone())],
                vec![report("h2", &h2_held_pinned, Some(D1))],
                [TAG, TAG],
            ),
        ];
        for (name, current, reports, want) in cases {
            let (images, _) = run(&current, &reports);
            assert_eq!(images, want.map(str::to_owned).to_vec(), "{name}");
        }
    }
}
