//! A stack's revision history: each valid spec revision the controller saw, with its
//! images and how its rollout ended, kept at `history/<stack>/<revision>` because etcd
//! compaction erases etcd's own history. `berth history` lists it and `berth rollback`
//! writes an entry's spec back to the stack key.
//!
//! Pure: [`plan`] says which entries should exist, and the controller writes the
//! difference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rollout::{Rollout, RolloutState};
use crate::spec::Stack;

/// The default number of revisions kept per stack.
pub const DEFAULT_LIMIT: usize = 10;

/// How a revision's rollout ended, or where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Its rollout is under way.
    Progressing,
    /// It failed and its slots are going back.
    RollingBack,
    /// Every changed slot runs it (or nothing had to change): a stable revision.
    Complete,
    /// It failed and its slots went back to the last stable revision.
    RolledBack,
    /// Its rollout stopped after failures (or its rollback failed).
    Paused,
    /// A newer revision came before its rollout finished.
    Superseded,
}

impl Outcome {
    /// As `berth history` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Progressing => "progressing",
            Outcome::RollingBack => "rolling back",
            Outcome::Complete => "complete",
            Outcome::RolledBack => "rolled back",
            Outcome::Paused => "paused",
            Outcome::Superseded => "superseded",
        }
    }

    fn of(state: RolloutState) -> Outcome {
        match state {
            RolloutState::Progressing => Outcome::Progressing,
            RolloutState::RollingBack => Outcome::RollingBack,
            RolloutState::Complete => Outcome::Complete,
            RolloutState::RolledBack => Outcome::RolledBack,
            RolloutState::Paused => Outcome::Paused,
        }
    }

    fn is_final(self) -> bool {
        !matches!(self, Outcome::Progressing | Outcome::RollingBack)
    }
}

/// One spec revision of a stack, at `history/<stack>/<revision>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The stack key's `mod_revision` that held this spec.
    pub revision: i64,
    /// When the controller first saw it (wall clock, ms).
    pub recorded_at_ms: u64,
    /// When its outcome became final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// Each service's image.
    pub images: BTreeMap<String, String>,
    pub outcome: Outcome,
    /// The stack key's value, exactly as written: what `berth rollback` puts back.
    pub spec: String,
}

/// One valid stack, this pass.
pub struct Inputs<'a> {
    /// The stack key's revision and value.
    pub revision: i64,
    pub raw: &'a [u8],
    pub spec: &'a Stack,
    /// The stack's rollout record as this pass leaves it.
    pub rollout: Option<&'a Rollout>,
    pub existing: &'a BTreeMap<i64, HistoryEntry>,
    /// Revisions kept (at least the current one).
    pub keep: usize,
    pub now_ms: u64,
}

/// The entries that should exist for the stack: the current revision's, with its
/// rollout's outcome; earlier ones whose rollout never finished marked superseded; the
/// newest `keep`.
pub fn plan(i: &Inputs<'_>) -> BTreeMap<i64, HistoryEntry> {
    let outcome = outcome_of(i.revision, i.rollout);
    let ended = outcome.is_final().then_some(i.now_ms);
    let mut out = i.existing.clone();
    let current = out.entry(i.revision).or_insert_with(|| HistoryEntry {
        revision: i.revision,
        recorded_at_ms: i.now_ms,
        ended_at_ms: None,
        images: i
            .spec
            .item_list_element
            .iter()
            .map(|s| (s.name.clone(), s.image.clone()))
            .collect(),
        outcome,
        spec: String::from_utf8_lossy(i.raw).into_owned(),
    });
    if current.outcome != outcome {
        current.outcome = outcome;
        current.ended_at_ms = ended;
    } else if current.ended_at_ms.is_none() {
        current.ended_at_ms = ended;
    }
    for e in out.range_mut(..i.revision).map(|(_, e)| e) {
        if !e.outcome.is_final() {
            e.outcome = Outcome::Superseded;
            e.ended_at_ms = Some(i.now_ms);
        }
    }
    let keep = i.keep.max(1);
    while out.len() > keep {
        out.pop_first();
    }
    out
}

/// Where revision `revision` stands, by the stack's rollout record.
fn outcome_of(revision: i64, rollout: Option<&Rollout>) -> Outcome {
    match rollout {
        Some(r) if r.to_revision == revision => Outcome::of(r.state),
        // Nothing to roll out: a first deployment, or a change no container sees.
        _ => Outcome::Complete,
    }
}

/// Whether `kept` (in revision order) already is what [`plan`] would make of it: the
/// case of nearly every pass, told without copying a spec.
pub fn settled<'a>(
    revision: i64,
    rollout: Option<&Rollout>,
    keep: usize,
    kept: impl DoubleEndedIterator<Item = &'a HistoryEntry> + ExactSizeIterator,
) -> bool {
    if kept.len() > keep.max(1) {
        return false;
    }
    let outcome = outcome_of(revision, rollout);
    let mut kept = kept.rev();
    let current_as_planned = kept.next().is_some_and(|e| {
        e.revision == revision
            && e.outcome == outcome
            && (e.ended_at_ms.is_some() || !outcome.is_final())
    });
    current_as_planned && kept.all(|e| e.outcome.is_final())
}

/// The revision `berth rollback` goes back to by default: the newest complete one before
/// `current` (the stack key's revision).
pub fn last_stable_before(
    entries: &BTreeMap<i64, HistoryEntry>,
    current: i64,
) -> Option<&HistoryEntry> {
    entries
        .range(..current)
        .rev()
        .map(|(_, e)| e)
        .find(|e| e.outcome == Outcome::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_stack;

    fn stack(image: &str) -> (Vec<u8>, Stack) {
        let raw = format!(r#"{{"itemListElement":[{{"name":"web","image":"{image}"}}]}}"#);
        let spec = parse_stack(raw.as_bytes()).unwrap();
        (raw.into_bytes(), spec)
    }

    fn rollout(to: i64, state: RolloutState) -> Rollout {
        Rollout {
            to_revision: to,
            state,
            ..Rollout::default()
        }
    }

    fn entry(revision: i64, outcome: Outcome) -> HistoryEntry {
        HistoryEntry {
            revision,
            recorded_at_ms: 0,
            ended_at_ms: None,
            images: BTreeMap::new(),
            outcome,
            spec: String::new(),
        }
    }

    fn outcomes(h: &BTreeMap<i64, HistoryEntry>) -> Vec<(i64, Outcome)> {
        h.values().map(|e| (e.revision, e.outcome)).collect()
    }

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn each_revision_is_recorded_with_its_rollouts_outcome() {
        use Outcome::*;
        let (raw, spec) = stack("web:2");
        let existing = BTreeMap::from([(3, entry(3, Complete)), (5, entry(5, Progressing))]);
        let cases: Vec<(&str, Option<Rollout>, Vec<(i64, Outcome)>)> = vec![
            (
                "nothing to roll out: complete at once",
                None,
                vec![(3, Complete), (5, Superseded), (7, Complete)],
            ),
            (
                "under way",
                Some(rollout(7, RolloutState::Progressing)),
                vec![(3, Complete), (5, Superseded), (7, Progressing)],
            ),
            (
                "rolled back",
                Some(rollout(7, RolloutState::RolledBack)),
                vec![(3, Complete), (5, Superseded), (7, RolledBack)],
            ),
            (
                "paused after failures",
                Some(rollout(7, RolloutState::Paused)),
                vec![(3, Complete), (5, Superseded), (7, Paused)],
            ),
            (
                "rolling back",
                Some(rollout(7, RolloutState::RollingBack)),
                vec![(3, Complete), (5, Superseded), (7, RollingBack)],
            ),
        ];
        for (name, r, want) in cases {
            let got = plan(&Inputs {
                revision: 7,
                raw: &raw,
                spec: &spec,
                rollout: r.as_ref(),
                existing: &existing,
                keep: 10,
                now_ms: 1_000,
            });
            assert_eq!(outcomes(&got), want, "{name}");
            let e = &got[&7];
            assert_eq!(e.spec.as_bytes(), raw.as_slice(), "{name}");
            assert_eq!(e.images["web"], "web:2", "{name}");
            assert_eq!(e.ended_at_ms.is_some(), e.outcome.is_final(), "{name}");
        }
    }

    #[test]
    fn an_entry_follows_its_rollout_and_keeps_when_it_was_first_seen() {
        let (raw, spec) = stack("web:2");
        let mut h = BTreeMap::new();
        for (now, state) in [
            (1_000, RolloutState::Progressing),
            (2_000, RolloutState::Progressing),
            (3_000, RolloutState::Complete),
            (4_000, RolloutState::Complete),
        ] {
            let r = rollout(7, state);
            h = plan(&Inputs {
                revision: 7,
                raw: &raw,
                spec: &spec,
                rollout: Some(&r),
                existing: &h,
                keep: 10,
                now_ms: now,
            });
        }
        let e = &h[&7];
        assert_eq!(e.outcome, Outcome::Complete);
        assert_eq!(e.recorded_at_ms, 1_000);
        assert_eq!(e.ended_at_ms, Some(3_000), "ended when it completed");
    }

    #[test]
    fn a_plans_result_is_settled_and_a_new_revision_or_outcome_is_not() {
        let (raw, spec) = stack("web:2");
        let existing = BTreeMap::from([(3, entry(3, Outcome::Progressing))]);
        let done = rollout(7, RolloutState::Complete);
        let planned = plan(&Inputs {
            revision: 7,
            raw: &raw,
            spec: &spec,
            rollout: Some(&done),
            existing: &existing,
            keep: 10,
            now_ms: 5,
        });
        assert!(settled(7, Some(&done), 10, planned.values()));
        assert!(!settled(7, Some(&done), 10, existing.values()), "7 missing");
        assert!(
            !settled(8, Some(&done), 10, planned.values()),
            "a new revision"
        );
        let failed = rollout(7, RolloutState::RolledBack);
        assert!(
            !settled(7, Some(&failed), 10, planned.values()),
            "a new outcome"
        );
        assert!(
            !settled(7, Some(&done), 1, planned.values()),
            "one too many kept"
        );
    }

    #[test]
    fn only_the_newest_revisions_are_kept() {
        let (raw, spec) = stack("web:2");
        let existing: BTreeMap<i64, HistoryEntry> =
            (1..=12).map(|r| (r, entry(r, Outcome::Complete))).collect();
        let got = plan(&Inputs {
            revision: 13,
            raw: &raw,
            spec: &spec,
            rollout: None,
            existing: &existing,
            keep: 10,
            now_ms: 0,
        });
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            (4..=13).collect::<Vec<_>>()
        );
        let got = plan(&Inputs {
            keep: 0,
            existing: &got,
            revision: 13,
            raw: &raw,
            spec: &spec,
            rollout: None,
            now_ms: 0,
        });
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            vec![13],
            "never the current one"
        );
    }

    #[test]
    fn rollback_goes_to_the_newest_complete_revision_before_the_current() {
        use Outcome::*;
        let h: BTreeMap<i64, HistoryEntry> = [
            (2, Complete),
            (4, Complete),
            (6, RolledBack),
            (8, Superseded),
            (9, Paused),
        ]
        .into_iter()
        .map(|(r, o)| (r, entry(r, o)))
        .collect();
        assert_eq!(last_stable_before(&h, 9).map(|e| e.revision), Some(4));
        assert_eq!(last_stable_before(&h, 4).map(|e| e.revision), Some(2));
        assert_eq!(last_stable_before(&h, 2).map(|e| e.revision), None);
    }
}
