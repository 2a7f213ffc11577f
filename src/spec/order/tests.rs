//! Start order cases: dependencies first, then position, then index; cycles still end.

use super::*;
use crate::spec::Service;

fn stack_of(services: &[(&str, Option<i64>, &[&str])]) -> Stack {
    Stack {
        item_list_element: services
            .iter()
            .map(|&(name, position, requirements)| Service {
                name: name.into(),
                image: "x".into(),
                position,
                requirements: requirements.iter().map(|r| r.to_string()).collect(),
                ..Service::default()
            })
            .collect(),
        ..Stack::default()
    }
}

#[test]
fn start_order_puts_dependencies_first_then_position_then_index() {
    let chain = stack_of(&[("c", None, &["b"]), ("b", None, &["a"]), ("a", None, &[])]);
    assert_eq!(start_order(&chain), [2, 1, 0]);

    let diamond = stack_of(&[
        ("app", Some(4), &["left", "right"]),
        ("right", Some(3), &["base"]),
        ("left", Some(2), &["base"]),
        ("base", Some(9), &[]),
        ("solo", Some(1), &[]),
        ("unplaced", None, &[]),
        ("tied", Some(1), &[]),
    ]);
    assert_eq!(start_order(&diamond), [4, 6, 3, 2, 1, 0, 5]);
}

#[test]
fn start_order_terminates_on_a_cycle_and_lists_every_service_once() {
    let cyclic = stack_of(&[
        ("a", None, &["b"]),
        ("b", None, &["a"]),
        ("free", None, &[]),
        ("after", None, &["a"]),
    ]);
    assert_eq!(start_order(&cyclic), [2, 0, 1, 3]);
}
