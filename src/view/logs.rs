//! How `berth logs` prints lines: compose's `service.replica@host |` prefix, padded to
//! the widest and coloured per replica on a terminal, optional timestamps, and a merge by
//! time. Pure.

use crate::api::LogLine;

/// One line as it arrived, with the host it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLine {
    pub host: String,
    pub line: LogLine,
}

/// How lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub prefix: bool,
    pub timestamps: bool,
    pub color: bool,
    /// The prefix column's width.
    pub width: usize,
}

/// `web.2@h1`.
pub fn prefix(slot: &str, host: &str) -> String {
    format!("{slot}@{host}")
}

/// The colours compose cycles through (ANSI foreground codes).
const COLORS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// The colour of the `index`th prefix.
pub fn color(index: usize) -> u8 {
    COLORS[index % COLORS.len()]
}

/// One printed line; `index` is its prefix's place among all the prefixes (for its colour).
pub fn format(l: &HostLine, index: usize, style: &Style) -> String {
    let mut out = String::new();
    if style.prefix {
        let p = format!(
            "{:<width$} |",
            prefix(&l.line.slot, &l.host),
            width = style.width
        );
        if style.color {
            out.push_str(&format!("\x1b[{}m{p}\x1b[0m ", color(index)));
        } else {
            out.push_str(&p);
            out.push(' ');
        }
    }
    if style.timestamps {
        out.push_str(&l.line.time);
        out.push(' ');
    }
    out.push_str(&l.line.line);
    out
}

/// Lines merged by time; lines of one container keep their order (a stable sort, and a
/// container's times never go back).
pub fn by_time(mut lines: Vec<HostLine>) -> Vec<HostLine> {
    lines.sort_by(|a, b| a.line.time.cmp(&b.line.time));
    lines
}

/// `--since`: a duration back from `now` (`10m`) or an RFC 3339 time, as Unix seconds.
pub fn since(text: &str, now: std::time::SystemTime) -> Result<i64, String> {
    let at = match humantime::parse_duration(text) {
        Ok(d) => now.checked_sub(d).ok_or("too long ago")?,
        Err(_) => humantime::parse_rfc3339_weak(text).map_err(|_| {
            format!("--since {text:?} is neither a duration (10m, 2h) nor a time (2026-12-03T10:00:00Z)")
        })?,
    };
    at.duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "before 1970".to_owned())
        .map(|d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Stream;

    fn line(host: &str, slot: &str, time: &str, text: &str) -> HostLine {
        HostLine {
            host: host.into(),
            line: LogLine {
                slot: slot.into(),
                container: "c".into(),
                stream: Stream::Stdout,
                time: time.into(),
                line: text.into(),
            },
        }
    }

    #[test]
    fn lines_print_with_a_padded_prefix_a_colour_on_a_terminal_and_timestamps() {
        let l = line("h1", "web.1", "2026-12-03T10:00:00.5Z", "hello");
        let plain = Style {
            prefix: true,
            timestamps: false,
            color: false,
            width: 12,
        };
        let cases = [
            (plain, "web.1@h1     | hello"),
            (
                Style {
                    timestamps: true,
                    ..plain
                },
                "web.1@h1     | 2026-12-03T10:00:00.5Z hello",
            ),
            (
                Style {
                    prefix: false,
                    ..plain
                },
                "hello",
            ),
            (
                Style {
                    color: true,
                    ..plain
                },
                "\x1b[33mweb.1@h1     |\x1b[0m hello",
            ),
        ];
        for (style, want) in cases {
            assert_eq!(format(&l, 1, &style), want);
        }
    }

    #[test]
    fn the_merge_by_time_keeps_each_containers_order() {
        let merged = by_time(vec![
            line("h2", "web.2", "2026-12-03T10:00:02Z", "b1"),
            line("h1", "web.1", "2026-12-03T10:00:01Z", "a1"),
            line("h1", "web.1", "2026-12-03T10:00:03Z", "a2"),
            line("h2", "web.2", "2026-12-03T10:00:03Z", "b2"),
        ]);
        let texts: Vec<&str> = merged.iter().map(|l| l.line.line.as_str()).collect();
        assert_eq!(texts, ["a1", "b1", "a2", "b2"]);
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        assert_eq!(since("10m", now), Ok(1_000_000 - 600));
        assert_eq!(since("1970-01-02T00:00:00Z", now), Ok(86_400));
        assert!(since("yesterday", now).is_err());
    }
}
