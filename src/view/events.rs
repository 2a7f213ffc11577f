//! `berth events`: recent events as a table, newest last.

use super::table::Table;
use crate::events::Event;

pub fn render(events: &[Event], width: usize) -> String {
    if events.is_empty() {
        return "no events\n".to_owned();
    }
    let mut t = Table::new(&["TIME", "STACK", "SERVICE", "HOST", "REASON", "MESSAGE"]);
    for e in events {
        // The date is the same on most rows; the time of day is what people scan.
        let time = e
            .time
            .split('T')
            .nth(1)
            .unwrap_or(&e.time)
            .trim_end_matches('Z');
        t.row(vec![
            time.to_owned(),
            e.stack.clone(),
            e.service.clone().unwrap_or_else(|| "-".into()),
            e.host.clone().unwrap_or_else(|| "-".into()),
            e.reason.clone(),
            e.message.clone(),
        ]);
    }
    t.render(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_as_a_table_that_fits_the_width() {
        let e = Event {
            time: "2026-11-22T09:12:21.123Z".into(),
            stack: "hello".into(),
            service: Some("web".into()),
            host: Some("host-1".into()),
            component: "agent".into(),
            reason: "Restarted".into(),
            message: "container had exited; started again and again and again and again".into(),
        };
        let out = render(&[e], 80);
        assert!(
            out.contains("09:12:21.123") && out.contains("Restarted"),
            "{out}"
        );
        assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
        assert_eq!(render(&[], 80), "no events\n");
    }
}
