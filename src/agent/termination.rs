//! How a slot's container last ended, for its report's `lastTermination`: which ends are
//! crashes (never a stop or replacement Berth made on purpose), why each one ended, and
//! the end of its output, cut to size with its secrets hidden; and the agent's memory of
//! them across passes, so each end is read once and still shown after the container runs
//! again. Pure: the reads are the pass's (see [`last_exit`](super::last_exit)).

use std::collections::BTreeMap;

use super::actual::{ActualContainer, Ended, RunState};
use super::desired::DesiredContainer;
use super::plan::{finished, Finished};
use crate::report::SlotReport;
use crate::spec::{LastTermination, TerminationReason};

/// Lines of output a termination keeps.
pub const TAIL_LINES: usize = 20;
/// Bytes of output a termination keeps, at most: the end of the text.
pub const TAIL_BYTES: usize = 2048;

/// How the agent came upon an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Found exited while its slot should run.
    Exited,
    /// Stopped by the agent itself, for failing its liveness check.
    Unhealthy,
}

/// Whether exited container `a` of `d`'s slot ended on its own: its slot wants it running
/// (a stopped slot's container was stopped by Berth), and it is not a one-shot service
/// that completed (exit 0 under `on-failure` or `never` is the job done).
pub fn crashed(d: &DesiredContainer, a: &ActualContainer) -> bool {
    d.run && a.state == RunState::Exited && finished(d, a) != Some(Finished::Completed)
}

/// Why a run ended. The kernel's OOM kill wins: whatever else happened, memory is why.
pub fn reason(cause: Cause, ended: &Ended) -> TerminationReason {
    if ended.oom_killed {
        return TerminationReason::OomKilled;
    }
    if cause == Cause::Unhealthy {
        return TerminationReason::Unhealthy;
    }
    match ended.exit_code.and_then(signal_of) {
        Some(_) => TerminationReason::Killed,
        None => TerminationReason::Exited,
    }
}

/// The signal an exit code says ended the process: shells and Docker report death by
/// signal N as 128 + N.
fn signal_of(exit_code: i64) -> Option<i64> {
    (129..=159).contains(&exit_code).then_some(exit_code - 128)
}

fn signal_name(signal: i64) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// The termination's words for people.
pub fn message(
    reason: TerminationReason,
    exit_code: Option<i64>,
    memory_mb: Option<u64>,
) -> String {
    match reason {
        TerminationReason::Exited => match exit_code {
            Some(c) => format!("exited with code {c}"),
            None => "exited (Docker did not say with what code)".to_owned(),
        },
        TerminationReason::OomKilled => match memory_mb {
            Some(mb) => format!("out of memory (limit {mb} MB)"),
            None => "out of memory".to_owned(),
        },
        TerminationReason::Unhealthy => {
            "failed its liveness check; stopped and started again by the agent".to_owned()
        }
        TerminationReason::Killed => {
            let signal = exit_code.and_then(signal_of).unwrap_or(0);
            match signal_name(signal) {
                Some(name) => format!("killed by signal {signal} ({name})"),
                None => format!("killed by signal {signal}"),
            }
        }
    }
}

/// Values that must never show in a status: a service's secrets and its registry
/// password. The status is read by more people than the container's logs.
#[derive(Clone, Default)]
pub struct Redactions {
    /// Longest first, so a secret that contains another is hidden whole.
    needles: Vec<String>,
}

impl Redactions {
    /// Each value, its trimmed form (a secret file's final newline is not printed with
    /// it) and each of its lines (a tail may begin inside a multi-line key).
    pub fn new(values: impl IntoIterator<Item = String>) -> Redactions {
        let mut needles = Vec::new();
        for v in values {
            needles.extend(v.lines().map(|l| l.trim().to_owned()));
            needles.push(v.trim().to_owned());
            needles.push(v);
        }
        needles.retain(|n| !n.is_empty());
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Redactions { needles }
    }
}

/// How many, never what.
impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactions({} values)", self.needles.len())
    }
}

/// `text` with every value of `hide` replaced by `***`.
pub fn redact(text: &str, hide: &Redactions) -> String {
    let mut out = text.to_owned();
    for n in &hide.needles {
        if out.contains(n.as_str()) {
            out = out.replace(n.as_str(), "***");
        }
    }
    out
}

/// The last `lines` lines of `text`, then at most its last `bytes` bytes (cut on a
/// character boundary): the end is where a crash says why.
pub fn cut_tail(text: &str, lines: usize, bytes: usize) -> String {
    let text = text.trim_end_matches(['\n', '\r']);
    let all: Vec<&str> = text.split('\n').collect();
    let kept: Vec<&str> = all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let joined = kept.join("\n");
    if joined.len() <= bytes {
        return joined;
    }
    let mut start = joined.len() - bytes;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    joined[start..].to_owned()
}

/// The termination of a run that `ended` for `cause`. Its output is shown only redacted:
/// when the values to hide could not be read (`Err`, why), it is withheld.
pub fn termination(
    cause: Cause,
    ended: &Ended,
    memory_mb: Option<u64>,
    hide: Result<&Redactions, &str>,
) -> LastTermination {
    let reason = reason(cause, ended);
    let log_tail = match hide {
        // Redact before cutting: a cut could leave part of a secret that no longer
        // matches it whole.
        Ok(hide) => cut_tail(&redact(&ended.output, hide), TAIL_LINES, TAIL_BYTES),
        Err(why) => {
            format!("(log tail withheld: the values to hide from it could not be read: {why})")
        }
    };
    LastTermination {
        exit_code: ended.exit_code,
        reason,
        message: message(reason, ended.exit_code, memory_mb),
        finished_at: ended.finished_at.clone(),
        log_tail,
    }
}

/// One end of a run: the container and when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunEnd {
    container: String,
    finished_at: Option<String>,
}

#[derive(Debug, Clone)]
struct Remembered {
    spec_hash: String,
    last: Option<LastTermination>,
    /// The last end looked at, recorded or passed over (a stop Berth made), so it is
    /// never read twice.
    seen: Option<RunEnd>,
}

impl Remembered {
    /// The kernel's memory kill of the run that ended as `end`, learnt after its end was
    /// recorded: Docker's `oom` event can come after its `die`. Memory is why it ended.
    fn learn_oom_kill(&mut self, end: &RunEnd, oom_killed: bool, memory_mb: Option<u64>) {
        let Some(last) = self.last.as_mut() else {
            return;
        };
        if oom_killed
            && last.reason != TerminationReason::OomKilled
            && last.finished_at == end.finished_at
        {
            last.reason = TerminationReason::OomKilled;
            last.message = message(last.reason, last.exit_code, memory_mb);
        }
    }
}

/// A crash seen for the first time: its output is to be read, before anything starts the
/// container again (a new run's output would follow it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnd {
    /// The slot's container name.
    pub name: String,
    pub container: String,
}

/// The agent's memory of each slot's last termination, by the slot's container name,
/// while the slot keeps its spec (as its restart count does).
#[derive(Debug, Default)]
pub struct Terminations {
    slots: BTreeMap<String, Remembered>,
}

impl Terminations {
    /// Forget slots no longer here or whose spec changed, and take what the last reports
    /// said of slots it knows nothing of: an agent that started again keeps showing them
    /// and does not read them again. `previous` is by container name.
    pub fn sync(&mut self, desired: &[DesiredContainer], previous: &BTreeMap<String, SlotReport>) {
        self.slots.retain(|name, r| {
            desired
                .iter()
                .any(|d| &d.name == name && d.spec_hash == r.spec_hash)
        });
        for d in desired {
            if self.slots.contains_key(&d.name) {
                continue;
            }
            let Some(r) = previous.get(&d.name).filter(|r| r.spec_hash == d.spec_hash) else {
                continue;
            };
            let Some(last) = &r.last_termination else {
                continue;
            };
            self.slots.insert(
                d.name.clone(),
                Remembered {
                    spec_hash: d.spec_hash.clone(),
                    seen: r.container_id.clone().map(|container| RunEnd {
                        container,
                        finished_at: last.finished_at.clone(),
                    }),
                    last: Some(last.clone()),
                },
            );
        }
    }

    /// The crashes among the slots' current containers not seen before. Every exited one
    /// is marked seen, so a container Berth stopped (`desiredState: stopped`) does not
    /// count as a crash when it is started again.
    pub fn observe(
        &mut self,
        desired: &[DesiredContainer],
        actual: &[ActualContainer],
    ) -> Vec<NewEnd> {
        let mut new = Vec::new();
        for d in desired {
            let Some(a) = actual
                .iter()
                .find(|a| a.slot == d.id && a.spec_hash == d.spec_hash)
            else {
                continue;
            };
            if a.state != RunState::Exited {
                continue;
            }
            let end = RunEnd {
                container: a.id.clone(),
                finished_at: a.finished_at.clone(),
            };
            let slot = self.remembered(d);
            if slot.seen.as_ref() == Some(&end) {
                slot.learn_oom_kill(&end, a.oom_killed, d.spec().memory_mb);
                continue;
            }
            slot.seen = Some(end);
            if crashed(d, a) {
                new.push(NewEnd {
                    name: d.name.clone(),
                    container: a.id.clone(),
                });
            }
        }
        new
    }

    /// Remember `t` as the last termination of `d`'s slot, a run of `container`.
    pub fn record(&mut self, d: &DesiredContainer, container: &str, t: LastTermination) {
        let slot = self.remembered(d);
        slot.seen = Some(RunEnd {
            container: container.to_owned(),
            finished_at: t.finished_at.clone(),
        });
        slot.last = Some(t);
    }

    /// The last termination of the slot whose container is named `name`.
    pub fn last(&self, name: &str) -> Option<&LastTermination> {
        self.slots.get(name)?.last.as_ref()
    }

    fn remembered(&mut self, d: &DesiredContainer) -> &mut Remembered {
        let slot = self
            .slots
            .entry(d.name.clone())
            .or_insert_with(|| Remembered {
                spec_hash: d.spec_hash.clone(),
                last: None,
                seen: None,
            });
        // A new spec starts afresh.
        if slot.spec_hash != d.spec_hash {
            *slot = Remembered {
                spec_hash: d.spec_hash.clone(),
                last: None,
                seen: None,
            };
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::desired::spec_hash;
    use crate::assignment::{ContainerSpec, Slot};
    use crate::slot::SlotId;
    use crate::spec::RestartPolicy;

    fn ended(exit_code: Option<i64>, oom_killed: bool) -> Ended {
        Ended {
            exit_code,
            oom_killed,
            finished_at: Some("2026-12-03T10:00:00.5Z".into()),
            output: String::new(),
        }
    }

    #[test]
    fn the_reason_names_oom_kills_liveness_kills_and_signals() {
        use TerminationReason::*;
        // (case, cause, exit code, OOMKilled, reason, message with a 256 MB limit)
        let cases = [
            (
                "exit 7",
                Cause::Exited,
                Some(7),
                false,
                Exited,
                "exited with code 7",
            ),
            (
                "exit 0 (restartPolicy always)",
                Cause::Exited,
                Some(0),
                false,
                Exited,
                "exited with code 0",
            ),
            (
                "no code",
                Cause::Exited,
                None,
                false,
                Exited,
                "exited (Docker did not say with what code)",
            ),
            (
                "OOM",
                Cause::Exited,
                Some(137),
                true,
                OomKilled,
                "out of memory (limit 256 MB)",
            ),
            (
                "OOM while unhealthy: memory is why",
                Cause::Unhealthy,
                Some(137),
                true,
                OomKilled,
                "out of memory (limit 256 MB)",
            ),
            (
                "liveness kill",
                Cause::Unhealthy,
                Some(143),
                false,
                Unhealthy,
                "failed its liveness check; stopped and started again by the agent",
            ),
            (
                "SIGKILL from outside",
                Cause::Exited,
                Some(137),
                false,
                Killed,
                "killed by signal 9 (SIGKILL)",
            ),
            (
                "segfault",
                Cause::Exited,
                Some(139),
                false,
                Killed,
                "killed by signal 11 (SIGSEGV)",
            ),
            (
                "an unnamed signal",
                Cause::Exited,
                Some(128 + 10),
                false,
                Killed,
                "killed by signal 10",
            ),
            (
                "128 is a plain exit code",
                Cause::Exited,
                Some(128),
                false,
                Exited,
                "exited with code 128",
            ),
            (
                "160 too",
                Cause::Exited,
                Some(160),
                false,
                Exited,
                "exited with code 160",
            ),
        ];
        for (name, cause, code, oom, want, words) in cases {
            let e = ended(code, oom);
            let got = reason(cause, &e);
            assert_eq!(got, want, "{name}");
            assert_eq!(message(got, code, Some(256)), words, "{name}");
        }
        assert_eq!(
            message(OomKilled, Some(137), None),
            "out of memory",
            "no limit: no number"
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_and_the_end_of_the_text() {
        let numbered = |n: usize| {
            (1..=n)
                .map(|i| format!("line {i}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let long = "x".repeat(3000) + "END";
        // (case, text, lines, bytes, want)
        let cases: Vec<(&str, String, usize, usize, String)> = vec![
            ("empty", String::new(), 20, 2048, String::new()),
            (
                "short: as is, without the final newline",
                "a\nb\n".into(),
                20,
                2048,
                "a\nb".into(),
            ),
            ("CRLF lines", "a\r\nb\r\n".into(), 20, 2048, "a\nb".into()),
            (
                "more lines than kept: the last ones",
                numbered(25),
                20,
                2048,
                numbered(25).split_once("line 5\n").unwrap().1.to_owned(),
            ),
            ("exactly the bytes", "abcd".into(), 20, 4, "abcd".into()),
            (
                "too many bytes: the end",
                long.clone(),
                20,
                2048,
                long[long.len() - 2048..].to_owned(),
            ),
            (
                "a cut inside a character moves forward",
                "aé€".into(),
                20,
                4,
                "€".into(),
            ),
            (
                "blank lines count",
                "a\n\n\nb".into(),
                2,
                2048,
                "\nb".into(),
            ),
        ];
        for (name, text, lines, bytes, want) in cases {
            let got = cut_tail(&text, lines, bytes);
            assert_eq!(got, want, "{name}");
            assert!(got.len() <= bytes, "{name}");
        }
    }

    #[test]
    fn redaction_hides_every_secret_value_whole_trimmed_and_by_line() {
        let hide = Redactions::new(vec![
            "hunter2".to_owned(),
            "s3cret-with-newline\n".to_owned(),
            "-----BEGIN KEY-----\nAAAAbbbbCCCC\n-----END KEY-----".to_owned(),
            "hunter2-longer".to_owned(),
            String::new(),
        ]);
        // (case, text, want)
        let cases = [
            ("nothing secret", "listening on :8080", "listening on :8080"),
            ("a secret", "password is hunter2!", "password is ***!"),
            ("twice", "hunter2 hunter2", "*** ***"),
            (
                "one secret inside another: the longer whole",
                "pw=hunter2-longer",
                "pw=***",
            ),
            (
                "a file's final newline is not printed",
                "token s3cret-with-newline.",
                "token ***.",
            ),
            (
                "a multi-line key cut by the tail: its lines",
                "AAAAbbbbCCCC\n-----END KEY-----",
                "***\n***",
            ),
            ("an empty secret hides nothing", "a b", "a b"),
        ];
        for (name, text, want) in cases {
            assert_eq!(redact(text, &hide), want, "{name}");
        }
        assert_eq!(
            format!("{hide:?}"),
            "Redactions(8 values)",
            "never the values"
        );
        assert_eq!(redact("hunter2", &Redactions::default()), "hunter2");
    }

    #[test]
    fn a_termination_redacts_before_it_cuts_and_withholds_what_it_cannot_redact() {
        let mut e = ended(Some(7), false);
        e.output = format!("{}\nthe password is hunter2\n", "y".repeat(3000));
        let hide = Redactions::new(["hunter2".to_owned()]);
        let t = termination(Cause::Exited, &e, None, Ok(&hide));
        assert_eq!(t.exit_code, Some(7));
        assert_eq!(t.reason, TerminationReason::Exited);
        assert_eq!(t.message, "exited with code 7");
        assert_eq!(t.finished_at.as_deref(), Some("2026-12-03T10:00:00.5Z"));
        assert!(
            t.log_tail.ends_with("the password is ***"),
            "{}",
            t.log_tail
        );
        assert_eq!(t.log_tail.len(), TAIL_BYTES);

        let t = termination(Cause::Exited, &e, None, Err("secret pw not found"));
        assert!(!t.log_tail.contains("hunter2"));
        assert_eq!(
            t.log_tail,
            "(log tail withheld: the values to hide from it could not be read: secret pw not found)"
        );
    }

    fn desired(policy: RestartPolicy, run: bool, image: &str) -> DesiredContainer {
        let spec = ContainerSpec {
            image: image.into(),
            ..Default::default()
        };
        DesiredContainer {
            id: SlotId::new("s", "web", 1),
            name: "s.web.1".into(),
            spec_hash: spec_hash(&spec, "n"),
            slot: Slot {
                restart_policy: policy,
                ..Slot::bare("web", 1, spec)
            },
            spec_revision: 3,
            run,
            network: "n".into(),
        }
    }

    fn container(
        d: &DesiredContainer,
        id: &str,
        state: RunState,
        code: i64,
        at: &str,
    ) -> ActualContainer {
        ActualContainer {
            id: id.into(),
            name: d.name.clone(),
            slot: d.id.clone(),
            spec_hash: d.spec_hash.clone(),
            image_id: None,
            state,
            exit_code: Some(code),
            docker_health: None,
            health: None,
            ip: None,
            started_at: None,
            finished_at: Some(at.into()),
            oom_killed: false,
            host_ports: vec![],
            order: 0,
        }
    }

    #[test]
    fn only_an_end_berth_did_not_make_is_a_crash() {
        use RestartPolicy::{Always, Never, OnFailure};
        // (case, policy, should run, exit code, crash)
        let cases = [
            ("always, exit 1", Always, true, 1, true),
            (
                "always, exit 0: it is restarted, so it ended",
                Always,
                true,
                0,
                true,
            ),
            ("on-failure, exit 3", OnFailure, true, 3, true),
            (
                "on-failure, exit 0: the job is done",
                OnFailure,
                true,
                0,
                false,
            ),
            ("never, exit 3: failed", Never, true, 3, true),
            ("never, exit 0: the job is done", Never, true, 0, false),
            ("stopped by desiredState", Always, false, 143, false),
        ];
        for (name, policy, run, code, want) in cases {
            let d = desired(policy, run, "i");
            let a = container(&d, "c1", RunState::Exited, code, "t1");
            assert_eq!(crashed(&d, &a), want, "{name}");
        }
        let d = desired(Always, true, "i");
        let running = container(&d, "c1", RunState::Running, 0, "t1");
        assert!(!crashed(&d, &running), "running");
    }

    fn last(code: i64, at: &str) -> LastTermination {
        LastTermination {
            exit_code: Some(code),
            reason: TerminationReason::Exited,
            message: format!("exited with code {code}"),
            finished_at: Some(at.into()),
            log_tail: "bye".into(),
        }
    }

    #[test]
    fn each_end_is_read_once_and_kept_after_the_container_runs_again() {
        let d = desired(RestartPolicy::Always, true, "i");
        let mut t = Terminations::default();
        let desired = std::slice::from_ref(&d);
        let exited = |at: &str| vec![container(&d, "c1", RunState::Exited, 7, at)];

        let first = t.observe(desired, &exited("t1"));
        assert_eq!(
            first,
            [NewEnd {
                name: d.name.clone(),
                container: "c1".into()
            }]
        );
        t.record(&d, "c1", last(7, "t1"));
        assert!(
            t.observe(desired, &exited("t1")).is_empty(),
            "the same end (held back by the crash backoff) is not read again"
        );
        let running = vec![container(&d, "c1", RunState::Running, 0, "t1")];
        assert!(t.observe(desired, &running).is_empty());
        assert_eq!(
            t.last(&d.name),
            Some(&last(7, "t1")),
            "kept while it runs again"
        );
        assert_eq!(
            t.observe(desired, &exited("t2")).len(),
            1,
            "a new end is new"
        );

        // A new spec starts afresh; a slot gone is forgotten.
        let changed = desired_with_image("j");
        t.sync(std::slice::from_ref(&changed), &BTreeMap::new());
        assert_eq!(t.last(&d.name), None);
        t.record(&d, "c1", last(7, "t1"));
        t.sync(&[], &BTreeMap::new());
        assert_eq!(t.last(&d.name), None);
    }

    #[test]
    fn a_memory_kill_learnt_after_the_end_was_recorded_becomes_its_reason() {
        let d = desired(RestartPolicy::Never, true, "i");
        let desired = std::slice::from_ref(&d);
        let killed = |oom: bool, at: &str| {
            vec![ActualContainer {
                oom_killed: oom,
                ..container(&d, "c1", RunState::Exited, 137, at)
            }]
        };
        let sigkill = LastTermination {
            exit_code: Some(137),
            reason: TerminationReason::Killed,
            message: "killed by signal 9 (SIGKILL)".into(),
            finished_at: Some("t1".into()),
            log_tail: "allocating".into(),
        };
        let mut t = Terminations::default();
        assert_eq!(t.observe(desired, &killed(false, "t1")).len(), 1);
        t.record(&d, "c1", sigkill.clone());

        // Docker's `oom` event came after its `die`: the same end, now known as a memory
        // kill; read no second time, its output kept.
        assert!(t.observe(desired, &killed(true, "t1")).is_empty());
        let learnt = t.last(&d.name).expect("kept");
        assert_eq!(learnt.reason, TerminationReason::OomKilled);
        assert_eq!(learnt.message, "out of memory");
        assert_eq!(learnt.log_tail, "allocating");

        // A kill of a later run says nothing of an earlier end.
        let mut t = Terminations::default();
        t.observe(desired, &killed(false, "t1"));
        t.record(&d, "c1", sigkill.clone());
        let later = killed(true, "t2");
        assert_eq!(t.observe(desired, &later).len(), 1, "a new end to read");
        assert_eq!(t.last(&d.name), Some(&sigkill));
    }

    fn desired_with_image(image: &str) -> DesiredContainer {
        desired(RestartPolicy::Always, true, image)
    }

    #[test]
    fn a_container_berth_stopped_is_no_crash_when_it_starts_again() {
        let stopped = desired(RestartPolicy::Always, false, "i");
        let mut t = Terminations::default();
        let a = vec![container(&stopped, "c1", RunState::Exited, 143, "t1")];
        assert!(t.observe(std::slice::from_ref(&stopped), &a).is_empty());
        // desiredState back to running: the same end, already seen.
        let running = desired(RestartPolicy::Always, true, "i");
        assert!(t.observe(std::slice::from_ref(&running), &a).is_empty());
        assert_eq!(t.last(&running.name), None);
    }

    #[test]
    fn an_agent_that_starts_again_takes_the_last_reports_terminations() {
        let d = desired(RestartPolicy::Always, true, "i");
        let report = |hash: &str| SlotReport {
            stack: "s".into(),
            service: "web".into(),
            replica: 1,
            host: "h".into(),
            spec_revision: 3,
            spec_hash: hash.into(),
            container_id: Some("c1".into()),
            state: crate::report::SlotState::Exited,
            health: crate::report::SlotHealth::NotChecked,
            restarts: 1,
            exit_code: Some(7),
            message: None,
            image_id: None,
            image_digest: None,
            pull: None,
            last_termination: Some(last(7, "t1")),
        };
        let mut t = Terminations::default();
        let stale = BTreeMap::from([(d.name.clone(), report("other spec"))]);
        t.sync(std::slice::from_ref(&d), &stale);
        assert_eq!(
            t.last(&d.name),
            None,
            "another spec's termination is not taken"
        );

        let previous = BTreeMap::from([(d.name.clone(), report(&d.spec_hash))]);
        t.sync(std::slice::from_ref(&d), &previous);
        assert_eq!(t.last(&d.name), Some(&last(7, "t1")));
        let a = vec![container(&d, "c1", RunState::Exited, 7, "t1")];
        assert!(
            t.observe(std::slice::from_ref(&d), &a).is_empty(),
            "the end the report told of is not read again"
        );
    }
}
