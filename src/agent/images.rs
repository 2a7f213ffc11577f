//! Images before containers. A pass's creates and replaces go only once their image is on
//! this host as their `pullPolicy` wants it; until then they wait for a pull. Pulls run in
//! the background, one per image on this host however many slots want it, so a large image
//! holds back nothing else and its progress can be reported while it comes in. A failed
//! pull is told apart (unauthorized, not found, registry unreachable, out of disk) and
//! tried again on a backoff per image, up to [`MAX_BACKOFF`], so a bad credential does not
//! hammer the registry; new credentials end the wait.
//!
//! [`admit`] decides, purely; [`Pulls`] keeps what it decides on across passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::report::SlotError;
use crate::spec::{PullPolicy, PullProgress};

/// The longest a failed image waits before it is pulled again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The wait after a first failure; each further one doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);

/// What the engine has of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Docker's image ID (`sha256:...`).
    pub id: String,
    /// Registry digests (`repo@sha256:...`); none for an image built or loaded here.
    pub repo_digests: Vec<String>,
}

/// Credentials handed to Docker for one pull. Never printed: its `Debug` leaves the
/// password out.
#[derive(Clone, PartialEq, Eq)]
pub struct PullAuth {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PullAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where a pull's credentials came from: what its failure message names (never the
/// credentials themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginSource {
    /// `registries/<registry>` in etcd (the full key).
    Etcd(String),
    /// The `auths` of this Docker config file.
    DockerConfig(PathBuf),
    /// None was found.
    None {
        /// The etcd key that was looked at.
        key: String,
        /// The Docker config file that was looked at, if any.
        file: Option<PathBuf>,
    },
}

/// Why a pull failed, told apart from Docker's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailureKind {
    Unauthorized,
    NotFound,
    Unreachable,
    NoSpace,
    Other,
}

impl PullFailureKind {
    /// Docker says what went wrong only in words; these are the engine's and the
    /// registry's (distribution's) phrasings.
    pub fn of(message: &str) -> PullFailureKind {
        let m = message.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
        if any(&["no space left on device", "disk quota exceeded"]) {
            PullFailureKind::NoSpace
        } else if any(&[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
            "denied",
            "incorrect username or password",
        ]) {
            PullFailureKind::Unauthorized
        } else if any(&["manifest unknown", "not found", "name unknown"]) {
            PullFailureKind::NotFound
        } else if any(&[
            "connection refused",
            "no such host",
            "i/o timeout",
            "timeout exceeded",
            "deadline exceeded",
            "network is unreachable",
            "no route to host",
            "connection reset",
            "server misbehaving",
            "tls: ",
            "x509: ",
            "dial tcp",
            "eof",
        ]) {
            PullFailureKind::Unreachable
        } else {
            PullFailureKind::Other
        }
    }

    /// Retrying will not help until someone changes something (a credential, a tag):
    /// the slot is `failed`. It is still tried again, on the backoff.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            PullFailureKind::Unauthorized | PullFailureKind::NotFound
        )
    }
}

/// A failed pull, as the slot's message tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    pub kind: PullFailureKind,
    pub message: String,
    /// A fingerprint of the credentials used, so new ones end the backoff at once.
    pub login: Option<u64>,
}

impl PullFailure {
    /// The failure of pulling `image` from `registry` on `host`, from Docker's `said`.
    pub fn new(
        image: &str,
        registry: &str,
        host: &str,
        source: &LoginSource,
        said: &str,
        login: Option<u64>,
    ) -> PullFailure {
        let kind = PullFailureKind::of(said);
        let message = match kind {
            PullFailureKind::Unauthorized => {
                let creds = match source {
                    LoginSource::Etcd(key) => format!("the credentials at {key} were refused"),
                    LoginSource::DockerConfig(path) => format!(
                        "the credentials for {registry} in {} were refused",
                        path.display()
                    ),
                    LoginSource::None { key, file } => format!(
                        "no credentials for {registry} were found (not at {key}{})",
                        file.as_ref()
                            .map(|f| format!(" nor in {}", f.display()))
                            .unwrap_or_default()
                    ),
                };
                format!("pulling {image}: unauthorized at registry {registry}: {creds} ({said})")
            }
            PullFailureKind::NotFound => {
                format!("pulling {image}: not found at registry {registry} ({said})")
            }
            PullFailureKind::Unreachable => {
                format!("pulling {image}: registry {registry} unreachable ({said})")
            }
            PullFailureKind::NoSpace => {
                format!("pulling {image}: out of disk on host {host} ({said})")
            }
            PullFailureKind::Other => format!("pulling {image} failed: {said}"),
        };
        PullFailure {
            kind,
            message,
            login,
        }
    }
}

/// The last finished pull of an image on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRecord {
    pub finished: Instant,
    pub failure: Option<PullFailure>,
    /// Failures in a row, up to and including this one (0 after a success).
    pub failures: u32,
}

impl PullRecord {
    /// When a failed image may be pulled again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.failure
            .as_ref()
            .map(|_| self.finished + backoff(self.failures))
    }
}

/// The wait after `failures` failed pulls in a row: doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

/// What [`admit`] looks at for one create or replace.
#[derive(Debug, Clone)]
pub struct ImageState<'a> {
    pub policy: PullPolicy,
    /// The engine has the image.
    pub present: bool,
    /// A pull of it is under way, this far.
    pub pulling: Option<PullProgress>,
    /// Its last finished pull.
    pub last: Option<&'a PullRecord>,
    /// When this container (with its current spec) first wanted its image: `always`
    /// needs a pull finished after it.
    pub wanted_since: Instant,
    /// The credentials' fingerprint now, where the last failure used other ones.
    pub login_now: Option<u64>,
    pub now: Instant,
}

/// What happens to a create or replace this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The image is there as the policy wants it: go ahead.
    Go,
    /// Start pulling it (if no pull is under way); the action waits.
    Pull,
    /// A pull is under way; the action waits.
    Pulling(PullProgress),
    /// It cannot go, and why: `pullPolicy: never` and the image is absent, or the last
    /// pull failed and its backoff has not run out.
    Hold(SlotError),
}

/// Whether a create or replace of `image` on `host` may go now. Pure.
pub fn admit(image: &str, host: &str, s: &ImageState<'_>) -> Admission {
    match s.policy {
        PullPolicy::Never if s.present => return Admission::Go,
        PullPolicy::Never => {
            return Admission::Hold(SlotError {
                message: format!(
                    "image {image} is not present on host {host} and pullPolicy is never"
                ),
                permanent: true,
            })
        }
        PullPolicy::Missing if s.present => return Admission::Go,
        _ => {}
    }
    if let Some(p) = s.pulling {
        return Admission::Pulling(p);
    }
    if let Some(last) = s.last {
        match &last.failure {
            None if s.policy == PullPolicy::Always && last.finished >= s.wanted_since => {
                return Admission::Go
            }
            Some(f) => {
                let new_login = s.login_now.is_some() && s.login_now != f.login;
                if !new_login && last.retry_at().is_some_and(|at| s.now < at) {
                    return Admission::Hold(SlotError {
                        message: f.message.clone(),
                        permanent: f.kind.is_permanent(),
                    });
                }
            }
            None => {}
        }
    }
    Admission::Pull
}

/// A fingerprint of credentials, kept in memory to see that they changed; never written.
pub fn fingerprint(auth: &PullAuth) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&auth.registry, &auth.username, &auth.password).hash(&mut h);
    h.finish()
}

/// A pull that ended, on its way from its task to the next pass.
struct FinishedPull {
    image: String,
    at: Instant,
    failure: Option<PullFailure>,
}

/// The pulls of one host across passes: the last outcome of each image, those under way
/// with their progress, and when each container first wanted its image.
#[derive(Default)]
pub struct Pulls {
    records: BTreeMap<String, PullRecord>,
    /// Shared with the pull tasks: progress of the pulls under way, by image.
    running: Arc<Mutex<BTreeMap<String, PullProgress>>>,
    /// Shared with the pull tasks: outcomes not yet folded into `records`.
    finished: Arc<Mutex<Vec<FinishedPull>>>,
    /// By container name: the spec hash that wanted an image, and since when.
    wanted: BTreeMap<String, (String, Instant)>,
}

impl Pulls {
    /// Fold in the pulls that ended since the last pass; returns them (image, failure).
    pub fn collect(&mut self) -> Vec<(String, Option<PullFailure>)> {
        let done = std::mem::take(&mut *lock(&self.finished));
        let mut out = Vec::new();
        for FinishedPull { image, at, failure } in done {
            let failures = match (&failure, self.records.get(&image)) {
                (None, _) => 0,
                (Some(_), Some(r)) => r.failures.saturating_add(1),
                (Some(_), None) => 1,
            };
            out.push((image.clone(), failure.clone()));
            self.records.insert(
                image,
                PullRecord {
                    finished: at,
                    failure,
                    failures,
                },
            );
        }
        out
    }

    pub fn record(&self, image: &str) -> Option<&PullRecord> {
        self.records.get(image)
    }

    pub fn progress(&self, image: &str) -> Option<PullProgress> {
        lock(&self.running).get(image).copied()
    }

    pub fn any_running(&self) -> bool {
        !lock(&self.running).is_empty()
    }

    /// When container `name` with spec `hash` first wanted its image (now, if it just did).
    pub fn wanted_since(&mut self, name: &str, hash: &str, now: Instant) -> Instant {
        match self.wanted.get(name) {
            Some((h, at)) if h == hash => *at,
            _ => {
                self.wanted.insert(name.to_owned(), (hash.to_owned(), now));
                now
            }
        }
    }

    /// Its image was there: the next create or replace of `name` wants it anew.
    pub fn served(&mut self, name: &str) {
        self.wanted.remove(name);
    }

    /// Forget containers no longer wanted here, and the records of images none of them
    /// uses, so a later spec with an image starts with a clean slate.
    pub fn retain(&mut self, names: impl Fn(&str) -> bool, images: impl Fn(&str) -> bool) {
        self.wanted.retain(|n, _| names(n));
        self.records.retain(|i, _| images(i));
    }

    /// Mark `image` as being pulled; false if it already is.
    pub fn begin(&self, image: &str) -> bool {
        let mut running = lock(&self.running);
        if running.contains_key(image) {
            return false;
        }
        running.insert(image.to_owned(), PullProgress::default());
        true
    }

    /// Handles for a pull task to report on `image` with.
    pub fn reporter(&self, image: &str) -> PullReporter {
        PullReporter {
            image: image.to_owned(),
            running: self.running.clone(),
            finished: self.finished.clone(),
        }
    }
}

/// What a pull task holds to tell the agent how its pull goes.
pub struct PullReporter {
    image: String,
    running: Arc<Mutex<BTreeMap<String, PullProgress>>>,
    finished: Arc<Mutex<Vec<FinishedPull>>>,
}

impl PullReporter {
    pub fn progress(&self, p: PullProgress) {
        if let Some(slot) = lock(&self.running).get_mut(&self.image) {
            *slot = p;
        }
    }

    pub fn done(self, failure: Option<PullFailure>) {
        lock(&self.finished).push(FinishedPull {
            image: self.image.clone(),
            at: Instant::now(),
            failure,
        });
        lock(&self.running).remove(&self.image);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps with no invariant a panicking holder could break.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_messages_are_told_apart() {
        use PullFailureKind::*;
        let cases = [
            ("Head \"http://127.0.0.1:5000/v2/team/app/manifests/1\": no basic auth credentials", Unauthorized),
            ("unauthorized: authentication required", Unauthorized),
            ("pull access denied for x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied", Unauthorized),
            ("manifest for 127.0.0.1:5000/team/app:2 not found: manifest unknown: manifest unknown", NotFound),
            ("Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused", Unreachable),
            ("Get \"https://nope.invalid/v2/\": dial tcp: lookup nope.invalid: no such host", Unreachable),
            ("failed to register layer: write /x: no space left on device", NoSpace),
            ("something else entirely", Other),
        ];
        for (said, kind) in cases {
            assert_eq!(PullFailureKind::of(said), kind, "{said}");
        }
        assert!(Unauthorized.is_permanent() && NotFound.is_permanent());
        assert!(!Unreachable.is_permanent() && !NoSpace.is_permanent() && !Other.is_permanent());
    }

    #[test]
    fn a_failure_message_names_the_registry_and_where_credentials_were_looked_for() {
        let none = LoginSource::None {
            key: "/berth/registries/r:5000".into(),
            file: Some("/root/.docker/config.json".into()),
        };
        let f = PullFailure::new(
            "r:5000/a:1",
            "r:5000",
            "h1",
            &none,
            "unauthorized: authentication required",
            None,
        );
        assert_eq!(f.kind, PullFailureKind::Unauthorized);
        assert!(
            f.message.contains("unauthorized at registry r:5000"),
            "{}",
            f.message
        );
        assert!(f.message.contains("no credentials for r:5000 were found (not at /berth/registries/r:5000 nor in /root/.docker/config.json)"), "{}", f.message);
        let etcd = LoginSource::Etcd("/berth/registries/r:5000".into());
        let f = PullFailure::new("r:5000/a:1", "r:5000", "h1", &etcd, "unauthorized", Some(1));
        assert!(
            f.message
                .contains("the credentials at /berth/registries/r:5000 were refused"),
            "{}",
            f.message
        );
        let f = PullFailure::new(
            "r:5000/a:1",
            "r:5000",
            "h1",
            &etcd,
            "no space left on device",
            None,
        );
        assert!(
            f.message.contains("out of disk on host h1"),
            "{}",
            f.message
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 4, 8, 9, 10, 40, u32::MAX]
            .iter()
            .map(|n| backoff(*n).as_secs())
            .collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 256, 300, 300, 300, 300]);
    }

    #[test]
    #[allow(clippy::type_complexity)] // one row per case reads best as a tuple
    fn admission_by_policy_presence_pulls_and_backoff() {
        use Admission::*;
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let failed =
            |finished: u64, failures: u32, kind: PullFailureKind, login: Option<u64>| PullRecord {
                finished: at(finished),
                failure: Some(PullFailure {
                    kind,
                    message: "pulling i: boom".into(),
                    login,
                }),
                failures,
            };
        let pulled = |finished: u64| PullRecord {
            finished: at(finished),
            failure: None,
            failures: 0,
        };
        let unauthorized = failed(10, 1, PullFailureKind::Unauthorized, Some(7));
        let unreachable = failed(10, 3, PullFailureKind::Unreachable, None);
        let old = pulled(5);
        let fresh = pulled(20);
        let going = PullProgress {
            bytes_done: 1,
            bytes_total: 9,
        };
        let hold = |permanent| {
            Hold(SlotError {
                message: "pulling i: boom".into(),
                permanent,
            })
        };
        let never_absent = Hold(SlotError {
            message: "image i is not present on host h and pullPolicy is never".into(),
            permanent: true,
        });
        use PullPolicy::{Always, Missing, Never};
        // (policy, present, pulling, last, wanted_since, login_now, now, admission)
        let cases: Vec<(
            PullPolicy,
            bool,
            Option<PullProgress>,
            Option<&PullRecord>,
            u64,
            Option<u64>,
            u64,
            Admission,
        )> = vec![
            (Missing, true, None, None, 0, None, 0, Go),
            (Missing, false, None, None, 0, None, 0, Pull),
            (
                Missing,
                false,
                Some(going),
                None,
                0,
                None,
                0,
                Pulling(going),
            ),
            // Another slot pulls it with `always`: one that has it goes anyway.
            (Missing, true, Some(going), None, 0, None, 0, Go),
            (Never, true, None, None, 0, None, 0, Go),
            (Never, false, None, None, 0, None, 0, never_absent.clone()),
            (Never, false, Some(going), None, 0, None, 0, never_absent),
            // `always` pulls even when the image is there, once per want.
            (Always, true, None, None, 15, None, 15, Pull),
            (Always, true, None, Some(&old), 15, None, 15, Pull),
            (Always, true, None, Some(&fresh), 15, None, 21, Go),
            (
                Always,
                true,
                Some(going),
                Some(&old),
                15,
                None,
                15,
                Pulling(going),
            ),
            // A failure waits out its backoff (2 s after one failure, 8 s after three) ...
            (
                Missing,
                false,
                None,
                Some(&unauthorized),
                0,
                Some(7),
                11,
                hold(true),
            ),
            (
                Missing,
                false,
                None,
                Some(&unauthorized),
                0,
                Some(7),
                12,
                Pull,
            ),
            (
                Missing,
                false,
                None,
                Some(&unreachable),
                0,
                None,
                17,
                hold(false),
            ),
            (Missing, false, None, Some(&unreachable), 0, None, 18, Pull),
            (
                Always,
                true,
                None,
                Some(&unreachable),
                0,
                None,
                17,
                hold(false),
            ),
            // ... unless the credentials changed since.
            (
                Missing,
                false,
                None,
                Some(&unauthorized),
                0,
                Some(8),
                11,
                Pull,
            ),
            // An image that turned up meanwhile needs no pull.
            (Missing, true, None, Some(&unauthorized), 0, Some(7), 11, Go),
        ];
        for (i, (policy, present, pulling, last, wanted, login_now, now, want)) in
            cases.into_iter().enumerate()
        {
            let s = ImageState {
                policy,
                present,
                pulling,
                last,
                wanted_since: at(wanted),
                login_now,
                now: at(now),
            };
            assert_eq!(admit("i", "h", &s), want, "case {i}");
        }
    }

    #[test]
    fn one_pull_per_image_and_its_outcome_counts_failures_in_a_row() {
        let mut p = Pulls::default();
        assert!(p.begin("i"));
        assert!(
            !p.begin("i"),
            "a second pull of the same image waits for the first"
        );
        let r = p.reporter("i");
        r.progress(PullProgress {
            bytes_done: 5,
            bytes_total: 10,
        });
        assert_eq!(p.progress("i").map(|x| x.bytes_done), Some(5));
        let fail = || PullFailure {
            kind: PullFailureKind::Unreachable,
            message: "m".into(),
            login: None,
        };
        r.done(Some(fail()));
        assert!(!p.any_running());
        assert_eq!(p.collect().len(), 1);
        assert_eq!(p.record("i").map(|r| r.failures), Some(1));
        assert!(p.begin("i"));
        p.reporter("i").done(Some(fail()));
        p.collect();
        assert_eq!(p.record("i").map(|r| r.failures), Some(2));
        assert!(p.begin("i"));
        p.reporter("i").done(None);
        p.collect();
        assert_eq!(p.record("i").map(|r| r.failures), Some(0));
    }

    #[test]
    fn credentials_never_show_in_debug() {
        let a = PullAuth {
            registry: "r".into(),
            username: "u".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
