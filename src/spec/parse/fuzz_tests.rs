//! Properties over arbitrary input: the parse never panics and always answers quickly.

use proptest::prelude::*;

use super::*;
use crate::spec::{start_order, validate};

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z{}:/@ -]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("image".to_owned()),
                    Just("itemListElement".to_owned()),
                    Just("ports".to_owned()),
                    Just("deployment".to_owned()),
                    Just("healthCheck".to_owned()),
                    Just("softwareRequirements".to_owned()),
                    Just("replicas".to_owned()),
                    "[a-zA-Z]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_answer_quickly(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let started = std::time::Instant::now();
        let _ = parse_stack(&bytes);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn arbitrary_json_shaped_like_a_stack_never_panics(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let started = std::time::Instant::now();
        if let Ok(stack) = parse_stack(&bytes) {
            // Whatever validates can be ordered and re-validated without trouble.
            let order = start_order(&stack);
            prop_assert_eq!(order.len(), stack.item_list_element.len());
            prop_assert!(validate(&stack).is_empty());
        }
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
