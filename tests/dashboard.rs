//! The shipped Grafana dashboard only queries metrics Berth exports, so a renamed metric
//! fails here rather than as an empty panel in production.

use std::collections::BTreeSet;

use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards/berth.json");
    let text = std::fs::read_to_string(path).expect("read dashboards/berth.json");
    serde_json::from_str(&text).expect("dashboards/berth.json is well-formed JSON")
}

/// Every panel, including those nested in collapsed rows.
fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

/// The metric names a PromQL expression selects: identifiers starting `berth_`, outside
/// string literals (label values), so `{state="berth_x"}` would not count.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    let mut word = String::new();
    let mut flush = |word: &mut String| {
        if word.starts_with("berth_") {
            names.insert(word.clone());
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                flush(&mut word);
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' => word.push(c),
            _ => flush(&mut word),
        }
    }
    flush(&mut word);
    names
}

#[test]
fn metric_names_are_read_from_promql_outside_label_values() {
    let cases = [
        (
            "sum by (le) (rate(berth_a_bucket[$__rate_interval]))",
            vec!["berth_a_bucket"],
        ),
        (
            r#"sum(berth_hosts{state="berth_not_a_metric"}) - sum(berth_b)"#,
            vec!["berth_b", "berth_hosts"],
        ),
        ("up", vec![]),
    ];
    for (expr, want) in cases {
        let got: Vec<String> = metric_names(expr).into_iter().collect();
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn every_dashboard_query_names_only_metrics_berth_exports() {
    berth::metrics::init();
    let exported = berth::metrics::exported_names();
    // What /metrics shows right after start-up must be a subset: the list is not made up.
    for line in berth::metrics::render().lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|l| l.split(' ').next())
        {
            assert!(
                exported.iter().any(|e| e.starts_with(name)),
                "{name} is rendered but not in exported_names()"
            );
        }
    }

    let d = dashboard();
    let mut queried = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or("?");
        let id = p["id"].as_i64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "panel id {id} ({title}) is used twice");
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array();
        assert!(
            targets.is_some_and(|t| !t.is_empty()),
            "panel {title:?} has no query"
        );
        for t in targets.into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has a PromQL expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title:?}: {expr} names no Berth metric");
            for n in names {
                assert!(
                    exported.contains(&n),
                    "{title:?}: {n} is not a metric Berth exports (in {expr})"
                );
                queried.insert(n);
            }
        }
    }

    // What the dashboard promises to show.
    for must in [
        "berth_convergence_seconds_bucket",
        "berth_reconcile_total",
        "berth_reconcile_errors_total",
        "berth_hosts",
        "berth_containers",
        "berth_container_restarts_total",
    ] {
        assert!(queried.contains(must), "no panel queries {must}");
    }
}
