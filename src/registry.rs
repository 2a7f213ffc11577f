//! Image registries and the logins for them (pure, but for reading a Docker config
//! file): which registry an image reference names, how a user's or a Docker config's
//! registry key maps to one, the login value kept at `registries/<registry>`, and the
//! `auths` of a Docker `config.json`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The registry of an image reference that names none (`busybox`, `library/busybox`).
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The registry `image` is pulled from, by Docker's rules (`reference.ParseNormalizedNamed`):
/// the part before the first `/` is a registry only when it has a `.` or a `:`, is
/// `localhost`, or has an upper-case letter (which a repository path may not); otherwise
/// the image is Docker Hub's. The result is [`normalize_registry`]d, so it is the key a
/// login is kept under.
pub fn registry_of(image: &str) -> String {
    // A digest (`@sha256:...`) and a tag (`:1`) follow the last path component, so the
    // first `/` of what precedes the digest is the one that matters.
    let name = image.split_once('@').map_or(image, |(name, _digest)| name);
    match name.split_once('/') {
        Some((first, _rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            normalize_registry(first)
        }
        _ => DEFAULT_REGISTRY.to_owned(),
    }
}

/// The registry a key names, as a user writes it (`berth registry login`) or as a Docker
/// config's `auths` has it: without `http://`/`https://`, path or trailing `/`, in lower
/// case (host names are), and with Docker Hub's other names (`index.docker.io`,
/// `registry-1.docker.io`) as `docker.io`. So `https://index.docker.io/v1/` is `docker.io`.
pub fn normalize_registry(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .unwrap_or(&lower);
    let host = rest.split_once('/').map_or(rest, |(host, _path)| host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_owned(),
        _ => host.to_owned(),
    }
}

/// The registry a user names on the command line, normalized, or why it names none. A
/// path is refused unless it follows a scheme: `ghcr.io/team` looks like an image, and a
/// login is for the whole registry; a URL's path (`https://index.docker.io/v1/`) is not.
pub fn parse_registry(input: &str) -> Result<String, String> {
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "registry {input:?} has a space or a control character"
        ));
    }
    let has_scheme = ["https://", "http://"]
        .iter()
        .any(|scheme| input.to_ascii_lowercase().starts_with(scheme));
    if !has_scheme && input.trim_end_matches('/').contains('/') {
        return Err(format!(
            "registry {input:?} has a path: give the registry alone (host[:port]); a login holds for all of it"
        ));
    }
    let registry = normalize_registry(input);
    if registry.is_empty() {
        return Err(format!("registry {input:?} names no host"));
    }
    Ok(registry)
}

/// A login for one registry: the value at `registries/<registry>`, as JSON
/// `{"username": "...", "password": "..."}`. The password may be a `{{secret:NAME}}`
/// reference, which the agent fills in from `secrets/NAME`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
}

/// By hand: a login that reaches a log line must not carry its password there.
impl fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The logins in a Docker config file's `auths`, by [`normalize_registry`]d registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerConfigAuths(BTreeMap<String, RegistryLogin>);

/// One entry of `auths`, as Docker writes it.
#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
struct DockerConfigFile {
    // A BTreeMap, so that of two keys for one registry the first in key order wins,
    // whatever order the file has them in.
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

impl DockerConfigAuths {
    /// The logins in a Docker `config.json`. An entry with `auth` (base64 of
    /// `user:password`) or with `username` and `password` is a login; one with neither
    /// (its login is in a `credsStore` or `credHelpers`, or it has an `identitytoken`)
    /// is skipped. Errors name the entry or the place in the file, never a value.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        // serde_json's own messages quote the values they choke on, which here may be
        // passwords: say only where.
        let file: DockerConfigFile = serde_json::from_slice(json).map_err(|e| {
            format!(
                "not a Docker config file (at line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let mut logins = BTreeMap::new();
        for (key, entry) in file.auths {
            let login = match entry {
                AuthEntry {
                    auth: Some(auth), ..
                } if !auth.is_empty() => decode_auth(&auth)
                    .ok_or_else(|| format!("auths[{key:?}].auth is not base64 of user:password"))?,
                AuthEntry {
                    username: Some(username),
                    password: Some(password),
                    ..
                } if !username.is_empty() && !password.is_empty() => {
                    RegistryLogin { username, password }
                }
                _ => continue,
            };
            logins.entry(normalize_registry(&key)).or_insert(login);
        }
        Ok(DockerConfigAuths(logins))
    }

    /// [`parse`](Self::parse) the file at `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The login for `registry`, written any way [`normalize_registry`] accepts.
    pub fn get(&self, registry: &str) -> Option<&RegistryLogin> {
        self.0.get(&normalize_registry(registry))
    }
}

/// `user:password` from base64; the password may itself hold a `:`.
fn decode_auth(auth: &str) -> Option<RegistryLogin> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    (!username.is_empty()).then(|| RegistryLogin {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// The Docker config file the `docker` CLI would use, when it exists:
/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    docker_config_in(
        std::env::var_os("DOCKER_CONFIG").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

/// [`default_docker_config`] with the environment passed in. An empty variable counts as
/// unset, as it does for Docker.
fn docker_config_in(docker_config: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let set = |v: Option<&OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    let path = match (set(docker_config), set(home)) {
        (Some(dir), _) => dir.join("config.json"),
        (None, Some(home)) => home.join(".docker").join("config.json"),
        (None, None) => return None,
    };
    path.is_file().then_some(path)
}

/// The registry digest of `image` among an image's `digests`: the one of its repository
/// (`127.0.0.1:5000/team/app:1` is `127.0.0.1:5000/team/app@sha256:...`).
pub fn digest_for(image: &str, digests: &[String]) -> Option<String> {
    let repo = repository(image);
    digests
        .iter()
        .find(|d| d.split('@').next() == Some(repo))
        .or_else(|| {
            // Docker writes Docker Hub repositories short (`busybox@...`) or long.
            let short = repo
                .strip_prefix("docker.io/")
                .map(|r| r.strip_prefix("library/").unwrap_or(r));
            digests
                .iter()
                .find(|d| short.is_some() && d.split('@').next() == short)
        })
        .cloned()
}

/// An image reference without its tag or digest.
pub fn repository(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_of_follows_dockers_rules() {
        let digest = "sha256:".to_owned() + &"a".repeat(64);
        let cases = [
            ("busybox", "docker.io"),
            ("busybox:1.36", "docker.io"),
            ("library/busybox", "docker.io"),
            ("team/app:1", "docker.io"),
            ("docker.io/library/busybox", "docker.io"),
            ("index.docker.io/library/busybox", "docker.io"),
            ("localhost/app", "localhost"),
            ("localhost:5000/app:1", "localhost:5000"),
            ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000"),
            ("registry.example.com:5000/a", "registry.example.com:5000"),
            ("ghcr.io/x/y", "ghcr.io"),
            ("quay.io/x/y:latest", "quay.io"),
            ("Registry/app", "registry"),
        ];
        for (image, want) in cases {
            assert_eq!(registry_of(image), want, "{image}");
        }
        let with_digest = [
            (format!("ghcr.io/x/y@{digest}"), "ghcr.io"),
            (format!("ghcr.io/x/y:1@{digest}"), "ghcr.io"),
            (format!("busybox@{digest}"), "docker.io"),
            (format!("127.0.0.1:5000/app@{digest}"), "127.0.0.1:5000"),
        ];
        for (image, want) in with_digest {
            assert_eq!(registry_of(&image), want, "{image}");
        }
    }

    #[test]
    fn normalize_registry_maps_user_and_docker_config_keys() {
        let cases = [
            ("docker.io", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("https://registry-1.docker.io/v2/", "docker.io"),
            ("ghcr.io", "ghcr.io"),
            ("ghcr.io/", "ghcr.io"),
            ("https://ghcr.io", "ghcr.io"),
            ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
            (
                "HTTPS://Registry.Example.com:5000/v2/",
                "registry.example.com:5000",
            ),
            ("localhost:5000", "localhost:5000"),
            ("", ""),
        ];
        for (key, want) in cases {
            assert_eq!(normalize_registry(key), want, "{key:?}");
        }
    }

    #[test]
    fn parse_registry_takes_a_host_or_a_url_and_refuses_the_rest() {
        let ok = [
            ("ghcr.io", "ghcr.io"),
            ("ghcr.io/", "ghcr.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
        ];
        for (input, want) in ok {
            assert_eq!(parse_registry(input).as_deref(), Ok(want), "{input:?}");
        }
        let refused = [
            ("", "names no host"),
            ("https://", "names no host"),
            ("/", "names no host"),
            ("ghcr.io/team", "has a path"),
            ("ghcr .io", "space"),
            ("ghcr.io\n", "space"),
        ];
        for (input, why) in refused {
            let err = parse_registry(input).expect_err(input);
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn a_login_never_shows_its_password_in_debug() {
        let login = RegistryLogin {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{login:?} {login:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("ci") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn a_login_is_stored_as_username_and_password() {
        let login = RegistryLogin {
            username: "ci".into(),
            password: "{{secret:ghcr}}".into(),
        };
        let json = serde_json::to_value(&login).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"username": "ci", "password": "{{secret:ghcr}}"})
        );
        assert_eq!(
            serde_json::from_value::<RegistryLogin>(json).unwrap(),
            login
        );
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn login(username: &str, password: &str) -> RegistryLogin {
        RegistryLogin {
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn docker_config_auths_reads_auth_and_username_password_and_skips_helpers() {
        let json = serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub-user:hub:pass")},
                "ghcr.io": {"username": "gh", "password": "tok"},
                "127.0.0.1:5000": {"auth": b64("local:pw"), "username": "ignored"},
                "quay.io": {},
                "registry.example.com": {"identitytoken": "opaque"},
                "empty.example.com": {"auth": ""}
            },
            "credsStore": "desktop",
            "credHelpers": {"gcr.io": "gcloud"}
        });
        let auths = DockerConfigAuths::parse(json.to_string().as_bytes()).unwrap();
        let cases = [
            ("docker.io", Some(login("hub-user", "hub:pass"))),
            (
                "https://index.docker.io/v1/",
                Some(login("hub-user", "hub:pass")),
            ),
            ("ghcr.io", Some(login("gh", "tok"))),
            ("127.0.0.1:5000", Some(login("local", "pw"))),
            ("quay.io", None),
            ("registry.example.com", None),
            ("empty.example.com", None),
            ("gcr.io", None),
        ];
        for (registry, want) in cases {
            assert_eq!(auths.get(registry), want.as_ref(), "{registry}");
        }
    }

    #[test]
    fn docker_config_auths_of_two_keys_for_one_registry_takes_the_first_in_key_order() {
        let json = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": b64("b:2")},
            "docker.io": {"auth": b64("a:1")}
        }});
        let auths = DockerConfigAuths::parse(json.to_string().as_bytes()).unwrap();
        assert_eq!(auths.get("docker.io"), Some(&login("a", "1")));
    }

    #[test]
    fn docker_config_auths_without_auths_is_empty() {
        let auths = DockerConfigAuths::parse(br#"{"credsStore": "osxkeychain"}"#).unwrap();
        assert_eq!(auths, DockerConfigAuths::default());
    }

    #[test]
    fn docker_config_errors_never_quote_a_value() {
        let cases: [(String, &str); 3] = [
            (
                serde_json::json!({"auths": {"ghcr.io": {"auth": "hunter2!!"}}}).to_string(),
                "auths[\"ghcr.io\"].auth",
            ),
            (
                serde_json::json!({"auths": {"ghcr.io": {"auth": b64("no-colon-hunter2")}}})
                    .to_string(),
                "auths[\"ghcr.io\"].auth",
            ),
            (
                serde_json::json!({"auths": {"ghcr.io": "hunter2"}}).to_string(),
                "not a Docker config file",
            ),
        ];
        for (json, want) in cases {
            let err = DockerConfigAuths::parse(json.as_bytes()).expect_err(&json);
            assert!(err.contains(want), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn docker_config_load_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let err = DockerConfigAuths::load(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");

        std::fs::write(&path, r#"{"auths": {"ghcr.io": "hunter2"}}"#).unwrap();
        let err = DockerConfigAuths::load(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        let json = serde_json::json!({"auths": {"ghcr.io": {"auth": b64("gh:tok")}}});
        std::fs::write(&path, json.to_string()).unwrap();
        let auths = DockerConfigAuths::load(&path).unwrap();
        assert_eq!(auths.get("ghcr.io"), Some(&login("gh", "tok")));
    }

    #[test]
    fn the_default_docker_config_is_dockers_and_only_when_it_exists() {
        let with = tempfile::tempdir().unwrap();
        std::fs::write(with.path().join("config.json"), "{}").unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".docker")).unwrap();
        std::fs::write(home.path().join(".docker/config.json"), "{}").unwrap();
        let without = tempfile::tempdir().unwrap();
        let (with, home, without) = (
            with.path().as_os_str(),
            home.path().as_os_str(),
            without.path().as_os_str(),
        );
        let empty = OsStr::new("");
        let in_dir = |d: &OsStr| Some(Path::new(d).join("config.json"));
        let in_home = |h: &OsStr| Some(Path::new(h).join(".docker/config.json"));
        let cases = [
            ("DOCKER_CONFIG wins", Some(with), Some(home), in_dir(with)),
            (
                "HOME without DOCKER_CONFIG",
                None,
                Some(home),
                in_home(home),
            ),
            (
                "an empty DOCKER_CONFIG is unset",
                Some(empty),
                Some(home),
                in_home(home),
            ),
            (
                "DOCKER_CONFIG without the file",
                Some(without),
                Some(home),
                None,
            ),
            ("HOME without the file", None, Some(without), None),
            ("neither", None, None, None),
        ];
        for (name, docker_config, home, want) in cases {
            assert_eq!(docker_config_in(docker_config, home), want, "{name}");
        }
    }
    #[test]
    fn the_digest_is_the_one_of_the_images_repository() {
        let d = |s: &str| s.to_owned();
        let digests = vec![
            d("other/app@sha256:aaa"),
            d("127.0.0.1:5000/team/app@sha256:bbb"),
            d("busybox@sha256:ccc"),
        ];
        let cases = [
            (
                "127.0.0.1:5000/team/app:1",
                Some("127.0.0.1:5000/team/app@sha256:bbb"),
            ),
            (
                "127.0.0.1:5000/team/app",
                Some("127.0.0.1:5000/team/app@sha256:bbb"),
            ),
            (
                "127.0.0.1:5000/team/app@sha256:bbb",
                Some("127.0.0.1:5000/team/app@sha256:bbb"),
            ),
            ("busybox:latest", Some("busybox@sha256:ccc")),
            ("docker.io/library/busybox:1", Some("busybox@sha256:ccc")),
            ("berth-test/busybox:latest", None),
        ];
        for (image, want) in cases {
            assert_eq!(digest_for(image, &digests).as_deref(), want, "{image}");
        }
    }
}
