//! The agent API's log source: the lines of this host's managed containers of one stack,
//! slot by slot, and with `follow`, on through restarts (the same container again) and
//! replacements (the slot's next container, under the same prefix). Each slot's lines keep
//! their order; slots run side by side. Every send waits for room in the response's
//! bounded channel, so a slow reader slows these readers and nothing piles up.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::runtime::{LogChunk, Runtime, SlotContainer};
use crate::api::server::LogSource;
use crate::api::{LogLine, LogQuery, Stream};
use crate::slot::SlotId;

/// How often a follower looks for a slot's next container.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

pub fn source(rt: Runtime, host: String) -> LogSource {
    std::sync::Arc::new(move |q: LogQuery, tx: mpsc::Sender<LogLine>| {
        let (rt, host) = (rt.clone(), host.clone());
        tokio::spawn(async move {
            let containers = match rt
                .slot_containers(&host, &q.stack, q.service.as_deref(), q.replica)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(stack = %q.stack, error = %crate::error_chain(&e), "listing containers for logs failed");
                    return;
                }
            };
            let mut slots: BTreeMap<SlotId, Vec<SlotContainer>> = BTreeMap::new();
            for c in containers {
                slots.entry(c.slot.clone()).or_default().push(c);
            }
            let readers = slots.into_iter().map(|(slot, containers)| {
                read_slot(
                    rt.clone(),
                    host.clone(),
                    q.clone(),
                    slot,
                    containers,
                    tx.clone(),
                )
            });
            futures::future::join_all(readers).await;
        });
    })
}

/// One slot's lines: its containers oldest first, then, when following, whatever
/// container the slot has next.
async fn read_slot(
    rt: Runtime,
    host: String,
    q: LogQuery,
    slot: SlotId,
    containers: Vec<SlotContainer>,
    tx: mpsc::Sender<LogLine>,
) {
    let name = format!("{}.{}", slot.service, slot.replica);
    let mut last: Option<(String, String)> = None; // (container, time of its last line)
    for (i, c) in containers.iter().enumerate() {
        let newest = i + 1 == containers.len();
        let follow = q.follow && newest;
        if !send_lines(&rt, c, &name, q.tail, q.since, follow, None, &tx, &mut last).await {
            return;
        }
    }
    if !q.follow {
        return;
    }
    // Following: the slot's newest container again once it runs again (a restart), or
    // its next one (a replacement), from where the last left off.
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(LOOK_AGAIN) => {}
        }
        let Ok(now) = rt
            .slot_containers(&host, &slot.stack, Some(&slot.service), Some(slot.replica))
            .await
        else {
            continue;
        };
        let Some(newest) = now.last() else { continue };
        let (from, after) = match &last {
            Some((id, time)) if *id == newest.id => {
                if !newest.running {
                    continue;
                }
                (since_of(time), Some(time.clone()))
            }
            _ => (None, None),
        };
        if !send_lines(&rt, newest, &name, None, from, true, after, &tx, &mut last).await {
            return;
        }
    }
}

/// Sends container `c`'s lines (only those after `after`, a line time); false once the
/// reader is gone.
#[allow(clippy::too_many_arguments)] // one call's knobs, named at both call sites
async fn send_lines(
    rt: &Runtime,
    c: &SlotContainer,
    slot: &str,
    tail: Option<u64>,
    since: Option<i64>,
    follow: bool,
    after: Option<String>,
    tx: &mpsc::Sender<LogLine>,
    last: &mut Option<(String, String)>,
) -> bool {
    let mut stream = Box::pin(rt.logs(&c.id, tail, since, follow));
    let mut pending = [String::new(), String::new()];
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return false,
            chunk = stream.next() => chunk,
        };
        let Some(Ok(LogChunk { stderr, text })) = chunk else {
            break;
        };
        let buf = &mut pending[usize::from(stderr)];
        buf.push_str(&text);
        while let Some(i) = buf.find('\n') {
            let raw: String = buf.drain(..=i).collect();
            let (time, line) = split_time(raw.trim_end_matches(['\n', '\r']));
            if after.as_deref().is_some_and(|a| time.as_str() <= a) {
                continue;
            }
            *last = Some((c.id.clone(), time.clone()));
            let out = LogLine {
                slot: slot.to_owned(),
                container: c.id.clone(),
                stream: if stderr {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                },
                time,
                line,
            };
            if tx.send(out).await.is_err() {
                return false;
            }
        }
    }
    true
}

/// Docker's `2026-12-03T11:14:57.123456789Z text` as its time and its text.
pub fn split_time(raw: &str) -> (String, String) {
    match raw.split_once(' ') {
        Some((t, rest)) if t.len() >= 20 && t.as_bytes()[4] == b'-' => {
            (t.to_owned(), rest.to_owned())
        }
        _ => (String::new(), raw.to_owned()),
    }
}

/// The Unix second a line time falls in (Docker's `since` is in whole seconds).
fn since_of(time: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(time).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_line_splits_into_its_time_and_text() {
        let cases = [
            (
                "2026-12-03T11:14:57.123456789Z hello world",
                ("2026-12-03T11:14:57.123456789Z", "hello world"),
            ),
            ("2026-12-03T11:14:57.1Z ", ("2026-12-03T11:14:57.1Z", "")),
            ("no time here", ("", "no time here")),
        ];
        for (raw, (time, text)) in cases {
            assert_eq!(split_time(raw), (time.to_owned(), text.to_owned()), "{raw}");
        }
        assert_eq!(
            since_of("2026-12-03T11:14:57.123456789Z"),
            Some(1_796_296_497)
        );
        assert_eq!(since_of(""), None);
    }
}
