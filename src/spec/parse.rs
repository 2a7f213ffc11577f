//! The door for untrusted bytes: a stack document read leniently, so that every problem in
//! it is found at once, each with the JSON path to fix. Pure.
//!
//! `parse_stack` never panics and never stops at the first problem, so a user fixes a whole
//! stack in one round trip, and the controller can write the complete list to the stack's
//! status instead of retrying a broken spec.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::problem::{is_within, push_segment, Problem};
use super::stack::{Service, Stack};
use super::validate::validate;

/// How big a stack may be. Anyone who can write `stacks/` can make every controller and
/// agent read the spec, so a huge or deep document must cost little and fail clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_services: usize,
    pub max_env_per_service: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_services: 200,
            max_env_per_service: 500,
        }
    }
}

/// Parse bytes as a stack and validate it; `Err` carries every problem found.
pub fn parse_stack(bytes: &[u8]) -> Result<Stack, Vec<Problem>> {
    parse_stack_with(bytes, &Limits::default())
}

/// [`parse_stack`] with explicit size limits.
pub fn parse_stack_with(bytes: &[u8], limits: &Limits) -> Result<Stack, Vec<Problem>> {
    // Checked before parsing: a 10 MB value is refused without being read into a tree.
    if bytes.len() > limits.max_bytes {
        return Err(vec![Problem::new(
            "",
            format!(
                "the spec is {} bytes; the limit is {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        )]);
    }
    // serde_json refuses nesting deeper than 128 levels with an error, not a stack overflow.
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| vec![Problem::new("", format!("not valid JSON: {e}"))])?;
    let mut top = match value {
        Value::Object(map) => map,
        other => {
            return Err(vec![Problem::new(
                "",
                format!("a stack must be a JSON object, not {}", describe(&other)),
            )])
        }
    };

    let mut problems = Vec::new();
    // Fields that could not be read. What `validate` says about them afterwards is an echo
    // of the type error already reported (a dropped `image` is not "missing"), so it is
    // left out.
    let mut dropped = Vec::new();

    // Services are read one by one so a type error in one leaves the others checked.
    let services = top.remove("itemListElement");
    let mut stack: Stack = read_lenient(top, "", &mut problems, &mut dropped);
    match services {
        None => {}
        Some(Value::Array(items)) => {
            // Exactly the room needed: the controller keeps every stack parsed.
            stack.item_list_element.reserve_exact(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("itemListElement[{i}]");
                let service = match item {
                    Value::Object(map) => read_lenient(map, &path, &mut problems, &mut dropped),
                    other => {
                        let message =
                            format!("a service must be a JSON object, not {}", describe(&other));
                        problems.push(Problem::new(path.clone(), message));
                        dropped.push(path);
                        // A placeholder keeps later indices equal to the document's.
                        Service::default()
                    }
                };
                stack.item_list_element.push(service);
            }
        }
        Some(other) => {
            let message = format!("expected an array of services, not {}", describe(&other));
            problems.push(Problem::new("itemListElement", message));
            dropped.push("itemListElement".to_owned());
        }
    }

    if stack.item_list_element.len() > limits.max_services {
        return Err(vec![Problem::new(
            "itemListElement",
            format!(
                "{} services is more than the maximum of {}",
                stack.item_list_element.len(),
                limits.max_services
            ),
        )]);
    }
    for (i, svc) in stack.item_list_element.iter().enumerate() {
        if svc.environment.len() > limits.max_env_per_service {
            problems.push(Problem::new(
                format!("itemListElement[{i}].environment"),
                format!(
                    "{} variables is more than the maximum of {}",
                    svc.environment.len(),
                    limits.max_env_per_service
                ),
            ));
        }
    }
    problems.extend(
        validate(&stack)
            .into_iter()
            .filter(|p| !dropped.iter().any(|d| is_within(&p.path, d))),
    );
    if problems.is_empty() {
        Ok(stack)
    } else {
        Err(problems)
    }
}

/// Deserialize `map`, reporting each type error with its path and retrying without the
/// top-level field that held it, so one wrong type costs only that field.
fn read_lenient<T: DeserializeOwned + Default>(
    mut map: Map<String, Value>,
    prefix: &str,
    problems: &mut Vec<Problem>,
    dropped: &mut Vec<String>,
) -> T {
    // Every round either returns or removes a key, so this ends.
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(Value::Object(map.clone())) {
            Ok(value) => return value,
            Err(err) => err,
        };
        let mut path = prefix.to_owned();
        for segment in err.path() {
            push_segment(&mut path, segment);
        }
        problems.push(Problem::new(path, err.inner().to_string()));

        let field = match err.path().iter().next() {
            Some(Segment::Map { key }) => map.remove_entry(key),
            _ => None,
        };
        let Some((key, _)) = field else {
            dropped.push(prefix.to_owned());
            return T::default();
        };
        let mut field_path = prefix.to_owned();
        push_segment(&mut field_path, &Segment::Map { key });
        dropped.push(field_path);
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
