//! Stack documents for the spec tests: the examples, and builders for one-off cases.
//! Test-only.

use super::{parse_stack, Problem};

pub(super) const EVE: &str = include_str!("../../examples/eve-infisical.json");
pub(super) const EXAMPLES: &[&str] = &[
    EVE,
    include_str!("../../examples/hello.json"),
    include_str!("../../examples/three-tier.json"),
    include_str!("../../examples/spread.json"),
    include_str!("../../examples/constraints.json"),
    include_str!("../../examples/migrate-then-app.json"),
    include_str!("../../examples/invalid/many-errors.json"),
    include_str!("../../examples/invalid/cycle.json"),
];

/// A stack with extra top-level fields `top` (may be empty) and the services given.
pub(super) fn doc(top: &str, services: &str) -> String {
    let comma = if top.is_empty() { "" } else { "," };
    format!(r#"{{{top}{comma}"itemListElement":[{services}]}}"#)
}

pub(super) fn service(extra: &str) -> String {
    let comma = if extra.is_empty() { "" } else { "," };
    format!(r#"{{"name":"web","image":"busybox"{comma}{extra}}}"#)
}

pub(super) fn problems(json: &str) -> Vec<String> {
    match parse_stack(json.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.iter().map(Problem::to_string).collect(),
    }
}
