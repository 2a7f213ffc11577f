//! From the host's assignments to the containers that should exist here: names, full
//! label sets and spec hashes. Pure.

use std::collections::BTreeMap;

use super::labels;
use crate::assignment::{Assignment, ContainerSpec, Slot};
use crate::slot::SlotId;
use crate::spec::DesiredState;

/// One container the host should have: its slot as assigned, plus what the agent derives
/// from it. Service, replica, order and container spec are read from `slot`, never copied.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredContainer {
    pub id: SlotId,
    /// Docker name: `<stack>.<service>.<replica>` (see [`SlotId::container_name`]).
    pub name: String,
    pub spec_hash: String,
    pub spec_revision: i64,
    /// Should it be running (`desiredState: running`) or merely exist, stopped?
    pub run: bool,
    pub network: String,
    pub slot: Slot,
}

impl DesiredContainer {
    pub fn spec(&self) -> &ContainerSpec {
        &self.slot.container
    }

    /// Its position in the stack's start order.
    pub fn order(&self) -> u32 {
        self.slot.order
    }

    /// Berth's identity labels plus the user's own.
    pub fn labels(&self, host: &str) -> BTreeMap<String, String> {
        let mut l = self.spec().labels.clone();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::STACK.into(), self.id.stack.clone());
        l.insert(labels::SERVICE.into(), self.id.service.clone());
        l.insert(labels::REPLICA.into(), self.id.replica.to_string());
        l.insert(labels::HOST.into(), host.into());
        l.insert(labels::SPEC_HASH.into(), self.spec_hash.clone());
        l.insert(labels::ORDER.into(), self.order().to_string());
        l
    }
}

/// The container's `berth.spec-hash` (see [`ContainerSpec::hash`]).
pub fn spec_hash(spec: &ContainerSpec, network: &str) -> String {
    spec.hash(network)
}

pub fn desired_containers<'a>(
    assignments: impl IntoIterator<Item = &'a Assignment>,
) -> Vec<DesiredContainer> {
    let mut out = Vec::new();
    for a in assignments {
        for slot in &a.slots {
            let id = SlotId::new(&a.stack, &slot.service, slot.replica);
            out.push(DesiredContainer {
                name: id.container_name(),
                id,
                spec_hash: spec_hash(&slot.container, &a.network.name),
                spec_revision: a.spec_revision,
                run: a.desired_state == DesiredState::Running,
                network: a.network.name.clone(),
                slot: slot.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hash_changes_with_the_spec_and_only_with_it() {
        let a = ContainerSpec {
            image: "img:1".into(),
            env: BTreeMap::from([("A".into(), "1".into())]),
            ..Default::default()
        };
        let mut b = a.clone();
        assert_eq!(spec_hash(&a, "n"), spec_hash(&b, "n"));
        b.env.insert("B".into(), "2".into());
        assert_ne!(spec_hash(&a, "n"), spec_hash(&b, "n"));
        assert_ne!(spec_hash(&a, "n"), spec_hash(&a, "other"));
        assert_eq!(spec_hash(&a, "n").len(), 16);
    }
}
