//! Size limits: oversized, deep and wide documents are refused cheaply and clearly.

use super::*;

#[test]
fn oversized_deep_and_wide_specs_are_refused_cheaply_and_clearly() {
    let limits = Limits::default();
    // (case, document, expected fragment)
    let big = format!(
        r#"{{"itemListElement":[{{"name":"a","image":"i","description":"{}"}}]}}"#,
        "x".repeat(limits.max_bytes)
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let wide = serde_json::json!({"itemListElement": (0..=limits.max_services)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "image": "i"}))
        .collect::<Vec<_>>()})
    .to_string();
    let env: serde_json::Map<String, serde_json::Value> = (0..=limits.max_env_per_service)
        .map(|i| (format!("V{i}"), serde_json::Value::from("x")))
        .collect();
    let many_env =
        serde_json::json!({"itemListElement": [{"name": "a", "image": "i", "environment": env}]})
            .to_string();
    let cases = [
        ("over the byte limit", big, "the limit is 1048576 bytes"),
        (
            "nested beyond serde's recursion limit",
            deep,
            "not valid JSON: recursion limit exceeded",
        ),
        (
            "too many services",
            wide,
            "201 services is more than the maximum of 200",
        ),
        (
            "too many variables",
            many_env,
            "501 variables is more than the maximum of 500",
        ),
    ];
    for (name, doc, want) in cases {
        let started = std::time::Instant::now();
        let problems = parse_stack(doc.as_bytes()).expect_err(name);
        assert!(
            problems.iter().any(|p| p.to_string().contains(want)),
            "{name}: {problems:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
    let smaller = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert!(parse_stack_with(br#"{"itemListElement":[]}"#, &smaller).is_err());
}
