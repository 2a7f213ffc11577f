//! A host's copy of one secret, at `hostsecrets/<host>/<name>`: the contract between the
//! leader, which writes it from `secrets/<name>` while a slot placed on the host uses the
//! secret, and that host's agent, which reads nothing else. Pure.
//!
//! Slots on one host may pin different revisions of a secret while a rotation rolls, so a
//! copy holds each revision its host needs: `{"current": 9, "versions": {"7": "old",
//! "9": "new"}}`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSecret {
    /// The `mod_revision` of `secrets/<name>` when the copy was made.
    pub current: i64,
    /// Revision -> the value as of it; only the revisions some slot on the host needs.
    /// A pinned revision etcd had compacted away is absent, and `current` is here instead.
    pub versions: BTreeMap<i64, String>,
}

/// By hand: a copy that reaches a log line must not carry its values there.
impl fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostSecret")
            .field("current", &self.current)
            .field("revisions", &self.versions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The value a container pinned to `pinned` (or to nothing: the secret did not exist when
/// its spec was built) gets from a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick<'a> {
    /// The value of the pinned revision, or the current one when nothing is pinned.
    Value(&'a str),
    /// The pinned revision was compacted away: the current value instead.
    Compacted { current: i64, value: &'a str },
    /// The copy lacks what the container needs: the leader has not rewritten it yet.
    Missing,
}

impl HostSecret {
    pub fn pick(&self, pinned: Option<i64>) -> Pick<'_> {
        let current = self.versions.get(&self.current).map(String::as_str);
        match (pinned, current) {
            (Some(p), _) if self.versions.contains_key(&p) => Pick::Value(&self.versions[&p]),
            // A pin newer than the copy is a copy the leader has not rewritten yet.
            (Some(p), Some(value)) if p < self.current => Pick::Compacted {
                current: self.current,
                value,
            },
            (None, Some(value)) => Pick::Value(value),
            _ => Pick::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_picks_its_pinned_version_from_the_copy() {
        let copy = |current: i64, v: &[(i64, &str)]| HostSecret {
            current,
            versions: v.iter().map(|(r, s)| (*r, (*s).to_owned())).collect(),
        };
        let both = copy(9, &[(7, "old"), (9, "new")]);
        // (case, copy, pinned, pick)
        let cases = [
            ("pinned to the old one", &both, Some(7), Pick::Value("old")),
            (
                "pinned to the current one",
                &both,
                Some(9),
                Pick::Value("new"),
            ),
            (
                "nothing pinned: the current one",
                &both,
                None,
                Pick::Value("new"),
            ),
            (
                "pinned one compacted away: the current one, said so",
                &copy(9, &[(9, "new")]),
                Some(7),
                Pick::Compacted {
                    current: 9,
                    value: "new",
                },
            ),
            (
                "a copy not rewritten yet",
                &copy(7, &[(7, "old")]),
                Some(9),
                Pick::Missing,
            ),
            (
                "nothing pinned, only an old version in the copy",
                &copy(9, &[(7, "old")]),
                None,
                Pick::Missing,
            ),
        ];
        for (name, c, pinned, want) in cases {
            assert_eq!(c.pick(pinned), want, "{name}");
        }
    }

    #[test]
    fn a_copy_is_written_with_revisions_as_keys_and_never_debug_printed_with_its_values() {
        let c = HostSecret {
            current: 9,
            versions: BTreeMap::from([(7, "old-value".into()), (9, "new-value".into())]),
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"current":9,"versions":{"7":"old-value","9":"new-value"}}"#
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("value"), "{shown}");
    }
}
