//! The identity of one slot, `(stack, service, replica)`: the key the scheduler places,
//! the agent converges and the controller folds reports by. One type, so a slot is never
//! matched by hand-written field comparisons or a tuple read back by position.

use std::fmt;

/// One container's worth of a service, cluster-wide. Ordered by stack, service, replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId {
    pub stack: String,
    pub service: String,
    /// 1-based.
    pub replica: u32,
}

impl SlotId {
    pub fn new(stack: impl Into<String>, service: impl Into<String>, replica: u32) -> SlotId {
        SlotId {
            stack: stack.into(),
            service: service.into(),
            replica,
        }
    }

    /// `<service>.<replica>`: unique within a stack (service names cannot contain dots);
    /// the last segment of its report key.
    pub fn key(&self) -> String {
        slot_key(&self.service, self.replica)
    }

    /// The Docker container name: `<stack>.<service>.<replica>` (stack ids and service
    /// names have no dots).
    pub fn container_name(&self) -> String {
        container_name(&self.stack, &self.service, self.replica)
    }

    /// Whether this is the slot `(stack, service, replica)`, without building a `SlotId`.
    pub fn is(&self, stack: &str, service: &str, replica: u32) -> bool {
        self.replica == replica && self.service == service && self.stack == stack
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.stack, self.service, self.replica)
    }
}

/// `<service>.<replica>`, see [`SlotId::key`].
pub fn slot_key(service: &str, replica: u32) -> String {
    format!("{service}.{replica}")
}

/// `<stack>.<service>.<replica>`, see [`SlotId::container_name`].
pub fn container_name(stack: &str, service: &str, replica: u32) -> String {
    format!("{stack}.{service}.{replica}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_names_its_container_and_its_report_key() {
        let id = SlotId::new("shop", "web", 2);
        assert_eq!(id.container_name(), "shop.web.2");
        assert_eq!(id.key(), "web.2");
        assert_eq!(id.to_string(), "shop.web.2");
        assert!(id.is("shop", "web", 2));
        assert!(!id.is("shop", "web", 1));
        assert!(!id.is("shop", "db", 2));
        assert!(!id.is("other", "web", 2));
    }
}
