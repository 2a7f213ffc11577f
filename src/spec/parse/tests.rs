//! Parse cases: type errors stay where they are, and no input makes the parse panic.

use super::*;
use crate::spec::fixtures::{doc, problems, EXAMPLES};

#[test]
fn type_errors_do_not_echo_as_missing_fields() {
    let found = problems(&doc("", r#"{"name":"web","image":5}"#));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("itemListElement[0].image: invalid type"));
}

#[test]
fn garbage_and_truncated_input_never_panics() {
    // xorshift: deterministic and dependency-free.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const JSONISH: &[u8] = b"{}[]\":,-0123456789.eE truefalsnul\\ab";
    for _ in 0..500 {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r % 4 == 0 {
                    r as u8
                } else {
                    JSONISH[(r >> 8) as usize % JSONISH.len()]
                }
            })
            .collect();
        let _ = parse_stack(&bytes);
    }
    for example in EXAMPLES {
        let bytes = example.as_bytes();
        for end in 0..bytes.len() {
            let _ = parse_stack(&bytes[..end]);
        }
        // Mutations keep the JSON mostly intact, so they reach deep into validation.
        for _ in 0..300 {
            let mut mutated = bytes.to_vec();
            let at = (next() % bytes.len() as u64) as usize;
            mutated[at] = JSONISH[(next() % JSONISH.len() as u64) as usize];
            let _ = parse_stack(&mutated);
        }
    }
}
