//! `berth history` and `berth rollback`: a stack's kept revisions as a table, and what a
//! rollback would change as a line diff of the two specs.

use std::collections::BTreeMap;

use super::table::Table;
use crate::controller::history::HistoryEntry;

/// One row per kept revision, oldest first; `current` (the stack key's revision) is
/// marked. A current revision that is not kept (an invalid spec) is named below.
pub fn render(entries: &BTreeMap<i64, HistoryEntry>, current: Option<i64>, width: usize) -> String {
    if entries.is_empty() {
        return "no revisions recorded\n".to_owned();
    }
    let mut t = Table::new(&["REVISION", "RECORDED", "OUTCOME", "IMAGES"]);
    for e in entries.values() {
        let mark = if Some(e.revision) == current {
            " *"
        } else {
            ""
        };
        let images: Vec<String> = e.images.iter().map(|(s, i)| format!("{s}={i}")).collect();
        t.row(vec![
            format!("{}{mark}", e.revision),
            time_of(e.recorded_at_ms),
            e.outcome.as_str().to_owned(),
            images.join(", "),
        ]);
    }
    let mut out = t.render(width);
    match current {
        Some(c) if !entries.contains_key(&c) => out.push_str(&format!(
            "(the stack key is at revision {c}, which is not recorded: its spec is invalid)\n"
        )),
        None => out.push_str("(the stack key is gone)\n"),
        _ => {}
    }
    out
}

fn time_of(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A unified diff from `from` to `to`, each spec pretty-printed first so that a
/// reformatted file shows no change; `None` when they are the same document.
pub fn spec_diff(from: &str, to: &str, from_label: &str, to_label: &str) -> Option<String> {
    let pretty = |s: &str| match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| s.to_owned()) + "\n",
        Err(_) => s.to_owned(),
    };
    let (a, b) = (pretty(from), pretty(to));
    if a == b {
        return None;
    }
    let diff = similar::TextDiff::from_lines(&a, &b);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(from_label, to_label)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::history::Outcome;

    fn entry(revision: i64, outcome: Outcome, image: &str) -> HistoryEntry {
        HistoryEntry {
            revision,
            recorded_at_ms: 1_764_750_000_000,
            ended_at_ms: None,
            images: BTreeMap::from([("web".to_owned(), image.to_owned())]),
            outcome,
            spec: String::new(),
        }
    }

    #[test]
    fn the_history_lists_each_revision_and_marks_the_current_one() {
        let h = BTreeMap::from([
            (4, entry(4, Outcome::Complete, "web:1")),
            (9, entry(9, Outcome::RolledBack, "web:2")),
        ]);
        let out = render(&h, Some(9), 80);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[1].starts_with("4 ") && lines[1].contains("complete"),
            "{out}"
        );
        assert!(lines[1].contains("web=web:1"), "{out}");
        assert!(
            lines[2].starts_with("9 *") && lines[2].contains("rolled back"),
            "{out}"
        );
        assert!(out.contains("2025-12-03T08:20:00Z"), "{out}");
        let out = render(&h, Some(11), 80);
        assert!(out.contains("revision 11, which is not recorded"), "{out}");
        assert_eq!(
            render(&BTreeMap::new(), Some(1), 80),
            "no revisions recorded\n"
        );
    }

    #[test]
    fn the_diff_shows_changed_lines_and_ignores_formatting() {
        let a = r#"{"itemListElement":[{"name":"web","image":"web:2"}]}"#;
        let b = "{\n \"itemListElement\": [ {\"name\": \"web\", \"image\": \"web:1\"} ] }";
        let d = spec_diff(a, b, "current", "revision 4").unwrap();
        assert!(
            d.contains("--- current") && d.contains("+++ revision 4"),
            "{d}"
        );
        assert!(d.contains("-      \"image\": \"web:2\""), "{d}");
        assert!(d.contains("+      \"image\": \"web:1\""), "{d}");
        assert!(
            !d.contains("-      \"name\""),
            "unchanged lines are context: {d}"
        );
        let reformatted = "{ \"itemListElement\" : [{\"image\":\"web:2\",\"name\":\"web\"}] }";
        assert_eq!(spec_diff(a, reformatted, "a", "b"), None);
    }
}
