//! The agent's memory of its last inspect of each managed container, so a pass inspects
//! only the containers whose `list` entry says something changed. Docker's `list` is one
//! call for every container but lacks what the planner needs of a stopped one (exit code,
//! port bindings) and `StartedAt`; inspecting every container on every pass was 200 of
//! the agent's 201 calls per idle pass at 200 containers, and most of the time it took to
//! notice a deleted stack.
//!
//! An entry holds while the container's `list` entry agrees with it: same name, same
//! state, same status words (exit code, health, paused: everything but the running
//! time), an uptime that does not say it started again since, and the entry is younger
//! than [`MAX_AGE`]. The runtime also drops an entry when it acts on the container
//! and when a Docker event names it. Pure: the caller passes the clock.
//!
//! It also remembers which containers Docker sent an `oom` event for in their current
//! run. Docker's own `State.OOMKilled` misses a kill whose notice reached the engine after
//! the exit (containerd delivers the two on separate paths, and under load the exit can
//! win), and stays `false` for good; the event still comes, a moment later.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use super::actual::ActualContainer;

/// Even an entry nothing contradicts is looked at again this often, so a change that
/// neither an event nor `list` shows cannot hide for long.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// What `list` says of a container; enough to tell whether an inspect still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub name: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// Docker's human text: `Up 5 minutes (healthy)`, `Exited (137) 2 seconds ago`.
    pub status: String,
}

struct Entry {
    name: String,
    state: String,
    words: String,
    at: Instant,
    container: ActualContainer,
}

#[derive(Default)]
pub struct Inspected {
    entries: HashMap<String, Entry>,
    /// Containers whose current run the kernel killed for memory, by Docker's events.
    oom_killed: HashSet<String>,
}

impl Inspected {
    /// The remembered container, if `listed` still agrees with it.
    pub fn get(&self, listed: &Listed, now: Instant, wall: SystemTime) -> Option<ActualContainer> {
        let e = self.entries.get(&listed.id)?;
        let fresh = now.saturating_duration_since(e.at) < MAX_AGE
            && e.name == listed.name
            && e.state == listed.state
            && e.words == status_words(&listed.status)
            && !started_since(e.container.started_at.as_deref(), &listed.status, wall);
        fresh.then(|| e.container.clone())
    }

    /// Remember an inspect, with the `list` entry it was made for.
    pub fn put(&mut self, listed: &Listed, container: ActualContainer, now: Instant) {
        self.entries.insert(
            listed.id.clone(),
            Entry {
                name: listed.name.clone(),
                state: listed.state.clone(),
                words: status_words(&listed.status),
                at: now,
                container,
            },
        );
    }

    pub fn forget(&mut self, id: &str) {
        self.entries.remove(id);
    }

    /// Keep only the containers `list` still shows.
    pub fn retain_listed(&mut self, listed: &[Listed]) {
        let ids: HashSet<&str> = listed.iter().map(|l| l.id.as_str()).collect();
        self.entries.retain(|id, _| ids.contains(id.as_str()));
        self.oom_killed.retain(|id| ids.contains(id.as_str()));
    }

    /// Forget every inspect (events may have been missed). What the events said of
    /// memory kills still holds: a missed event cannot take one back.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Docker event `action` about container `id`: its inspect no longer holds, and an
    /// `oom` marks its current run killed for memory until it `start`s again.
    pub fn event(&mut self, id: &str, action: &str) {
        self.forget(id);
        match action {
            "oom" => {
                self.oom_killed.insert(id.to_owned());
            }
            "start" => {
                self.oom_killed.remove(id);
            }
            _ => {}
        }
    }

    /// Whether an event said the kernel killed `id`'s current run for memory.
    pub fn oom_killed(&self, id: &str) -> bool {
        self.oom_killed.contains(id)
    }
}

/// The status text without its running time: the first word and every parenthesised
/// part (`Exited (137) 2 seconds ago` -> `Exited (137)`, `Up 3 hours (healthy)` ->
/// `Up (healthy)`).
fn status_words(status: &str) -> String {
    let mut out = status.split_whitespace().next().unwrap_or("").to_owned();
    let mut rest = status;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        out.push(' ');
        out.push_str(&rest[open..open + close + 1]);
        rest = &rest[open + close + 1..];
    }
    out
}

/// Whether a running container's uptime (`Up 4 seconds`) is shorter than the time since
/// the remembered `StartedAt`: it was started again since the inspect. An uptime that
/// cannot be read counts as started again, so the container is inspected.
fn started_since(started_at: Option<&str>, status: &str, wall: SystemTime) -> bool {
    let Some(uptime) = status.strip_prefix("Up ") else {
        return false;
    };
    let Some(started) = started_at.and_then(|s| humantime::parse_rfc3339(s).ok()) else {
        return true;
    };
    let Some(at_most) = uptime_at_most(uptime) else {
        return true;
    };
    let since = wall.duration_since(started).unwrap_or_default();
    // A second of slack: Docker rounds, and its clock read is not ours.
    since > at_most + Duration::from_secs(1)
}

/// The longest uptime Docker's human duration (go-units `HumanDuration`) can stand for.
fn uptime_at_most(text: &str) -> Option<Duration> {
    // Health and pause notes follow the duration in parentheses.
    let text = text.split(" (").next()?.trim();
    let secs = match text {
        "Less than a second" => 1,
        "About a minute" => 120,
        "About an hour" => 2 * 3600,
        _ => {
            let (n, unit) = text.split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            let unit_secs = match unit.trim_end_matches('s') {
                "second" => 1,
                "minute" => 60,
                "hour" => 3600,
                "day" => 86_400,
                "week" => 7 * 86_400,
                "month" => 31 * 86_400,
                "year" => 366 * 86_400,
                _ => return None,
            };
            (n + 1) * unit_secs
        }
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::actual::RunState;
    use crate::slot::SlotId;

    fn container(started_at: Option<&str>) -> ActualContainer {
        ActualContainer {
            id: "c1".into(),
            name: "web-1".into(),
            slot: SlotId::new("s", "web", 0),
            spec_hash: "h".into(),
            image_id: None,
            state: RunState::Running,
            exit_code: None,
            docker_health: None,
            health: None,
            ip: None,
            started_at: started_at.map(str::to_owned),
            finished_at: None,
            oom_killed: false,
            host_ports: vec![],
            order: 0,
        }
    }

    fn listed(name: &str, state: &str, status: &str) -> Listed {
        Listed {
            id: "c1".into(),
            name: name.into(),
            state: state.into(),
            status: status.into(),
        }
    }

    #[test]
    fn status_words_drop_only_the_running_time() {
        for (status, words) in [
            ("Up 5 minutes", "Up"),
            ("Up Less than a second", "Up"),
            ("Up 3 hours (healthy)", "Up (healthy)"),
            ("Up 2 seconds (health: starting)", "Up (health: starting)"),
            ("Up 2 days (Paused)", "Up (Paused)"),
            ("Exited (137) 2 seconds ago", "Exited (137)"),
            ("Exited (0) About a minute ago", "Exited (0)"),
            ("Restarting (1) 3 seconds ago", "Restarting (1)"),
            ("Created", "Created"),
            ("Removal In Progress", "Removal"),
            ("", ""),
        ] {
            assert_eq!(status_words(status), words, "{status}");
        }
    }

    #[test]
    fn docker_human_durations_bound_the_uptime() {
        for (text, secs) in [
            ("Less than a second", Some(1)),
            ("1 second", Some(2)),
            ("45 seconds", Some(46)),
            ("About a minute", Some(120)),
            ("5 minutes", Some(360)),
            ("About an hour", Some(7200)),
            ("30 hours (healthy)", Some(31 * 3600)),
            ("3 days", Some(4 * 86_400)),
            ("2 weeks", Some(3 * 7 * 86_400)),
            ("soon", None),
            ("5 fortnights", None),
        ] {
            assert_eq!(
                uptime_at_most(text),
                secs.map(Duration::from_secs),
                "{text}"
            );
        }
    }

    #[test]
    fn a_remembered_inspect_holds_only_while_list_agrees() {
        let wall = humantime::parse_rfc3339("2026-12-02T10:00:00Z").unwrap();
        let now = Instant::now();
        // Started 100 s before `wall`.
        let started = "2026-12-02T09:58:20.123456789Z";
        let base = listed("web-1", "running", "Up About a minute");
        type Case<'a> = (&'a str, Listed, Option<&'a str>, Duration, bool);
        let cases: Vec<Case> = vec![
            (
                "nothing changed: reuse",
                base.clone(),
                Some(started),
                Duration::ZERO,
                true,
            ),
            (
                "uptime text moved on: reuse",
                listed("web-1", "running", "Up 2 minutes"),
                Some(started),
                Duration::ZERO,
                true,
            ),
            (
                "renamed: inspect",
                listed("web-1-old", "running", "Up About a minute"),
                Some(started),
                Duration::ZERO,
                false,
            ),
            (
                "exited: inspect",
                listed("web-1", "exited", "Exited (137) 1 second ago"),
                Some(started),
                Duration::ZERO,
                false,
            ),
            (
                "health changed: inspect",
                listed("web-1", "running", "Up About a minute (unhealthy)"),
                Some(started),
                Duration::ZERO,
                false,
            ),
            (
                "started again since (uptime shorter than the time since StartedAt): inspect",
                listed("web-1", "running", "Up 3 seconds"),
                Some(started),
                Duration::ZERO,
                false,
            ),
            (
                "unreadable uptime: inspect",
                listed("web-1", "running", "Up for a while"),
                Some(started),
                Duration::ZERO,
                false,
            ),
            (
                "no StartedAt remembered: inspect",
                base.clone(),
                None,
                Duration::ZERO,
                false,
            ),
            (
                "too old: inspect",
                base.clone(),
                Some(started),
                MAX_AGE,
                false,
            ),
        ];
        for (name, now_listed, started_at, age, reuse) in cases {
            let mut cache = Inspected::default();
            cache.put(&base, container(started_at), now);
            let got = cache.get(&now_listed, now + age, wall);
            assert_eq!(got.is_some(), reuse, "{name}");
        }
    }

    #[test]
    fn forgotten_and_unlisted_containers_are_inspected_again() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let l = listed("web-1", "exited", "Exited (0) 3 seconds ago");
        let mut cache = Inspected::default();
        cache.put(&l, container(None), now);
        assert!(cache.get(&l, now, wall).is_some());
        cache.forget("c1");
        assert!(cache.get(&l, now, wall).is_none());
        cache.put(&l, container(None), now);
        cache.retain_listed(&[]);
        assert!(cache.get(&l, now, wall).is_none());
    }

    #[test]
    fn an_oom_event_marks_the_run_until_it_starts_again_or_leaves_the_list() {
        let mut cache = Inspected::default();
        let l = listed("web-1", "exited", "Exited (137) 1 second ago");
        cache.put(&l, container(None), Instant::now());
        cache.event("c1", "die");
        assert!(!cache.oom_killed("c1"));
        cache.event("c1", "oom");
        assert!(cache.oom_killed("c1"));
        assert!(
            cache.get(&l, Instant::now(), SystemTime::now()).is_none(),
            "an event drops the inspect"
        );
        // Resubscribing forgets inspects, never a kill.
        cache.clear();
        assert!(cache.oom_killed("c1"));
        cache.event("c1", "start");
        assert!(!cache.oom_killed("c1"), "a new run");
        cache.event("c1", "oom");
        cache.retain_listed(&[]);
        assert!(!cache.oom_killed("c1"), "removed");
    }
}
