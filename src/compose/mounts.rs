//! Compose's service `volumes` (short and long syntax) and `tmpfs`, as Berth volume
//! mounts: named volumes by their Docker name, bind paths made absolute against the
//! compose file's directory. Pure.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::report::Report;
use super::values::scalar;
use crate::spec::VolumeMount;

/// What a mount's source is resolved against.
pub struct Mounts<'a> {
    /// The compose file's directory, absolute: `./data` is `<dir>/data`.
    pub dir: &'a Path,
    /// `$HOME`, for `~/data`.
    pub home: Option<&'a str>,
    /// Top-level volume key to its Docker name (`data` to `shop_data`).
    pub volumes: &'a BTreeMap<String, String>,
    /// The Docker name an anonymous volume of this service gets, before its index.
    pub anonymous_prefix: String,
}

impl Mounts<'_> {
    /// Every entry of a service's `volumes` at `path`.
    pub fn volumes(&self, value: Value, path: &str, report: &mut Report) -> Vec<VolumeMount> {
        let Value::Array(items) = value else {
            report.error(path, "expected a list of volumes");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let at = format!("{path}[{i}]");
            let mount = match item {
                Value::String(s) => self.short(&s, &at, report),
                Value::Object(map) => self.long(map, &at, report),
                other => Err(format!("{other} is not a volume")),
            };
            match mount {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(message) => report.error(at, message),
            }
        }
        out
    }

    /// `[SOURCE:]TARGET[:MODE]`, MODE a comma list of `ro`, `rw` and options.
    fn short(&self, s: &str, at: &str, report: &mut Report) -> Result<Option<VolumeMount>, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, *target, ""),
            [source, target] if target.starts_with('/') => (Some(*source), *target, ""),
            [target, mode] => (None, *target, *mode),
            [source, target, mode] => (Some(*source), *target, *mode),
            _ => return Err(format!("{s:?} is not SOURCE:TARGET[:MODE]")),
        };
        let mut read_only = false;
        for option in mode.split(',').filter(|o| !o.is_empty()) {
            match option {
                "ro" => read_only = true,
                "rw" => read_only = false,
                other => report.warn(
                    at,
                    format!("mount option {other:?}: not supported, ignored"),
                ),
            }
        }
        let kind = match source {
            Some(src) if is_path(src) => "bind",
            _ => "volume",
        };
        self.mount(kind, source, target, read_only, at, report)
            .map(Some)
    }

    fn long(
        &self,
        mut map: Map<String, Value>,
        at: &str,
        report: &mut Report,
    ) -> Result<Option<VolumeMount>, String> {
        let kind = map
            .remove("type")
            .and_then(|v| scalar(&v))
            .ok_or("a long-syntax volume needs a type")?;
        let source = map.remove("source").and_then(|v| scalar(&v));
        let target = map
            .remove("target")
            .and_then(|v| scalar(&v))
            .ok_or("a long-syntax volume needs a target")?;
        let read_only = match map.remove("read_only") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => return Err(format!("read_only: {other} is not true or false")),
        };
        for (key, options) in map {
            match options {
                Value::Object(options) if ["bind", "volume", "tmpfs"].contains(&key.as_str()) => {
                    for option in options.keys() {
                        report.unsupported(format!("{at}.{key}.{option}"));
                    }
                }
                _ => report.unsupported(format!("{at}.{key}")),
            }
        }
        match kind.as_str() {
            "volume" | "bind" => self
                .mount(&kind, source.as_deref(), &target, read_only, at, report)
                .map(Some),
            "tmpfs" => Ok(Some(tmpfs_mount(&target, read_only))),
            other => Err(format!(
                "volume type {other:?} is not supported (Berth mounts volume, bind and tmpfs)"
            )),
        }
    }

    fn mount(
        &self,
        kind: &str,
        source: Option<&str>,
        target: &str,
        read_only: bool,
        at: &str,
        report: &mut Report,
    ) -> Result<VolumeMount, String> {
        let source = match (kind, source.filter(|s| !s.is_empty())) {
            ("bind", Some(path)) => self.host_path(path)?,
            ("bind", None) => return Err("a bind mount needs a source".to_owned()),
            (_, Some(key)) => self.volumes.get(key).cloned().ok_or_else(|| {
                format!("named volume {key:?} is not declared in the top-level volumes")
            })?,
            (_, None) => {
                let name = format!("{}{}", self.anonymous_prefix, slug(target));
                report.warn(
                    at,
                    format!(
                        "anonymous volume: Berth mounts named volumes only, so it is the named \
                         volume {name}"
                    ),
                );
                name
            }
        };
        Ok(VolumeMount {
            source,
            target: target.to_owned(),
            read_only: read_only.then_some(true),
            type_: Some(kind.to_owned()),
        })
    }

    /// A bind source made absolute: `./x` and `x/y` against the compose file's directory,
    /// `~` against `$HOME`, `..` resolved without touching the disk.
    fn host_path(&self, path: &str) -> Result<String, String> {
        let joined = if let Some(rest) = path.strip_prefix('~') {
            let home = self
                .home
                .ok_or_else(|| format!("{path:?} needs $HOME, which is not set"))?;
            Path::new(home).join(rest.trim_start_matches('/'))
        } else {
            self.dir.join(path)
        };
        let mut out = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        Ok(out.to_string_lossy().into_owned())
    }
}

/// `tmpfs: /run` or a list; options after `:` are not carried.
pub fn tmpfs(value: Value, path: &str, report: &mut Report) -> Vec<VolumeMount> {
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(entry) = scalar(&item) else {
            report.error(at, format!("{item} is not a path"));
            continue;
        };
        let (target, options) = entry.split_once(':').unwrap_or((&entry, ""));
        if !options.is_empty() {
            report.warn(
                &at,
                format!("tmpfs options {options:?}: not supported, ignored"),
            );
        }
        out.push(tmpfs_mount(target, false));
    }
    out
}

fn tmpfs_mount(target: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        source: String::new(),
        target: target.to_owned(),
        read_only: read_only.then_some(true),
        type_: Some("tmpfs".to_owned()),
    }
}

/// A source is a host path, not a volume name, when it starts as a path does.
fn is_path(source: &str) -> bool {
    source.starts_with(['/', '.', '~'])
}

/// `/var/lib/data` as `var_lib_data`, for a volume name.
fn slug(target: &str) -> String {
    target
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(kind: &str, source: &str, target: &str, ro: bool) -> VolumeMount {
        VolumeMount {
            source: source.into(),
            target: target.into(),
            read_only: ro.then_some(true),
            type_: Some(kind.into()),
        }
    }

    #[test]
    fn every_volume_syntax_becomes_a_berth_mount() {
        let volumes = BTreeMap::from([("data".to_owned(), "shop_data".to_owned())]);
        let mounts = Mounts {
            dir: Path::new("/srv/shop"),
            home: Some("/home/ann"),
            volumes: &volumes,
            anonymous_prefix: "shop_web_".into(),
        };
        // (case, entry, mount, warnings)
        let cases: Vec<(&str, Value, VolumeMount, usize)> = vec![
            (
                "named",
                json!("data:/var/lib/data"),
                m("volume", "shop_data", "/var/lib/data", false),
                0,
            ),
            (
                "named read-only",
                json!("data:/d:ro"),
                m("volume", "shop_data", "/d", true),
                0,
            ),
            (
                "relative bind",
                json!("./conf:/etc/app:ro"),
                m("bind", "/srv/shop/conf", "/etc/app", true),
                0,
            ),
            (
                "parent bind",
                json!("../shared:/s"),
                m("bind", "/srv/shared", "/s", false),
                0,
            ),
            (
                "absolute bind",
                json!("/etc/hosts:/h:rw"),
                m("bind", "/etc/hosts", "/h", false),
                0,
            ),
            (
                "home bind",
                json!("~/x:/x"),
                m("bind", "/home/ann/x", "/x", false),
                0,
            ),
            (
                "selinux option warns",
                json!("./c:/c:ro,z"),
                m("bind", "/srv/shop/c", "/c", true),
                1,
            ),
            (
                "anonymous",
                json!("/cache"),
                m("volume", "shop_web_cache", "/cache", false),
                1,
            ),
            (
                "long volume",
                json!({"type": "volume", "source": "data", "target": "/d", "read_only": true}),
                m("volume", "shop_data", "/d", true),
                0,
            ),
            (
                "long bind with an option",
                json!({"type": "bind", "source": "./c", "target": "/c", "bind": {"propagation": "rshared"}}),
                m("bind", "/srv/shop/c", "/c", false),
                1,
            ),
            (
                "long tmpfs",
                json!({"type": "tmpfs", "target": "/run"}),
                m("tmpfs", "", "/run", false),
                0,
            ),
        ];
        for (name, entry, want, warnings) in cases {
            let mut report = Report::default();
            let got = mounts.volumes(json!([entry]), "services.web.volumes", &mut report);
            assert!(report.errors.is_empty(), "{name}: {:?}", report.errors);
            assert_eq!(got, vec![want], "{name}");
            assert_eq!(
                report.warnings.len(),
                warnings,
                "{name}: {:?}",
                report.warnings
            );
        }
        let mut report = Report::default();
        let got = mounts.volumes(json!(["data:/d:ro,nocopy"]), "v", &mut report);
        assert_eq!(got, vec![m("volume", "shop_data", "/d", true)]);
        assert_eq!(
            report.warnings[0].to_string(),
            "v[0]: mount option \"nocopy\": not supported, ignored"
        );
    }

    #[test]
    fn a_volume_berth_cannot_mount_is_an_error_at_its_path() {
        let volumes = BTreeMap::new();
        let mounts = Mounts {
            dir: Path::new("/srv"),
            home: None,
            volumes: &volumes,
            anonymous_prefix: "p_".into(),
        };
        // (case, entry, error contains)
        let cases = [
            (
                "undeclared named volume",
                json!("cache:/c"),
                "named volume \"cache\" is not declared",
            ),
            (
                "npipe",
                json!({"type": "npipe", "source": "x", "target": "/x"}),
                "volume type \"npipe\"",
            ),
            (
                "too many colons",
                json!("a:/b:ro:x"),
                "is not SOURCE:TARGET",
            ),
            ("home unset", json!("~/x:/x"), "needs $HOME"),
        ];
        for (name, entry, want) in cases {
            let mut report = Report::default();
            mounts.volumes(json!([entry]), "services.web.volumes", &mut report);
            let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
            assert!(
                errors.len() == 1
                    && errors[0].starts_with("services.web.volumes[0]: ")
                    && errors[0].contains(want),
                "{name}: {errors:?}"
            );
        }
    }

    #[test]
    fn tmpfs_takes_a_path_or_a_list() {
        let mut report = Report::default();
        assert_eq!(
            tmpfs(json!("/run"), "t", &mut report),
            vec![m("tmpfs", "", "/run", false)]
        );
        let got = tmpfs(json!(["/a", "/b:size=64m"]), "t", &mut report);
        assert_eq!(
            got,
            vec![m("tmpfs", "", "/a", false), m("tmpfs", "", "/b", false)]
        );
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(report.warnings[0].path, "t[1]");
    }
}
