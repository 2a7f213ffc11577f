//! Compose files as Berth stacks, for `berth convert` and `berth apply -f compose.yaml`:
//! a compose file's text in, a valid stack plus a warning for everything it does not
//! carry out. Pure: the files beside the compose file and the process environment come
//! in through [`Surroundings`].
//!
//! # Layout
//! - this file: the file as a whole (top-level keys, project name, volumes, networks,
//!   profiles, `extends`) and the kind of a document ([`detect`]);
//! - `service`: one service, key by key;
//! - `ports`, `mounts`: the short and long syntaxes of `ports`, `expose`, `volumes`, `tmpfs`;
//! - `interpolate`: `${VAR:-default}` and friends, and `.env` files;
//! - `values`: durations, sizes, shell words;
//! - `report`: warnings and errors, each at its path in the compose file.

mod interpolate;
mod mounts;
mod ports;
mod report;
mod service;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use serde_json::{Map, Value};

pub use report::{Report, Warning};

use crate::spec::{Network, Stack, Volume};

/// The names compose looks for, in its order, when no file is given.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// What the converter reads besides the compose file: files beside it (`.env`,
/// `env_file`) and the environment `berth convert` runs in.
pub trait Surroundings {
    fn read_file(&self, path: &Path) -> io::Result<String>;
    fn var(&self, name: &str) -> Option<String>;
}

/// Surroundings with nothing in them: no variables and no files. For converting where
/// the machine doing it is not the user's (the web view's preview on a controller), so
/// nothing of that machine leaks into the stack; an `env_file` then cannot be read.
pub struct Isolated;

impl Surroundings for Isolated {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: files are not read here", path.display()),
        ))
    }

    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// What kind of document some bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Berth (EVE) stack: a JSON object with `itemListElement` or `@type`, or anything
    /// that is not compose (so that its parse errors are a stack's).
    Eve,
    /// A YAML or JSON mapping with top-level `services` and no `itemListElement`.
    Compose,
}

/// Tell a compose file from a stack by content, never by name.
pub fn detect(bytes: &[u8]) -> Format {
    let is_compose = |v: &Value| {
        v.as_object().is_some_and(|m| {
            m.contains_key("services")
                && !m.contains_key("itemListElement")
                && !m.contains_key("@type")
        })
    };
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return if is_compose(&v) {
            Format::Compose
        } else {
            Format::Eve
        };
    }
    let yaml = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<Value>(text).ok());
    match yaml {
        Some(v) if is_compose(&v) => Format::Compose,
        _ => Format::Eve,
    }
}

/// Choices the compose file does not make.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The stack id; by default the compose project name made a DNS label.
    pub id: Option<String>,
    /// Profiles to enable, on top of `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// Spread the services over many hosts with this strategy (`--placement`): compose
    /// knows one host only, so without it the stack stays on one host, as compose ran it.
    pub placement: Option<crate::spec::PlacementStrategy>,
}

/// A converted compose file.
#[derive(Debug)]
pub struct Converted {
    /// The stack id to apply it as.
    pub id: String,
    /// Valid: `spec::validate` finds nothing in it.
    pub stack: Stack,
    pub warnings: Vec<Warning>,
}

impl Converted {
    /// The stack as `berth convert` writes it.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(&self.stack).unwrap_or_default();
        json.push('\n');
        json
    }
}

/// Why there is no stack.
#[derive(Debug)]
pub enum Failure {
    /// Not YAML, or not a compose file at all (exit 2).
    Unreadable(String),
    /// A compose file with something Berth cannot run; the errors and the warnings found
    /// along the way (exit 1).
    NotConverted(Report),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Unreadable(_) => 2,
            Failure::NotConverted(_) => 1,
        }
    }
}

/// Convert the compose file `text`, which lives in directory `dir` (absolute).
pub fn convert(
    text: &str,
    dir: &Path,
    options: &Options,
    surroundings: &dyn Surroundings,
) -> Result<Converted, Failure> {
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| Failure::Unreadable(format!("not valid YAML: {e}")))?;
    let mut top = match value {
        Value::Object(map) if map.contains_key("services") => map,
        _ => {
            return Err(Failure::Unreadable(
                "not a compose file: it has no top-level services".to_owned(),
            ))
        }
    };
    let mut report = Report::default();

    // The environment wins over `.env`, as in compose.
    let dotenv: BTreeMap<String, String> = match surroundings.read_file(&dir.join(".env")) {
        Ok(text) => interpolate::parse_env_file(&text)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            report.error(".env", format!("cannot read it: {e}"));
            BTreeMap::new()
        }
    };
    let var = |name: &str| surroundings.var(name).or_else(|| dotenv.get(name).cloned());
    let mut doc = Value::Object(std::mem::take(&mut top));
    interpolate::interpolate_tree(&mut doc, "", &var, &mut report);
    let Value::Object(mut top) = doc else {
        unreachable!("interpolation keeps the shape")
    };

    top.remove("version"); // obsolete; compose ignores it too
    let name = top.remove("name").and_then(|v| values::scalar(&v));
    let project = project_name(name.or_else(|| var("COMPOSE_PROJECT_NAME")), dir);
    let id = options.id.clone().unwrap_or_else(|| dns_label(&project));
    if !crate::spec::is_dns_label(&id) {
        report.error("", format!("stack id {id:?} is not a DNS label; pass --id"));
    }
    if top.remove("include").is_some() {
        report.error(
            "include",
            "not supported; merge the included files into this one",
        );
    }

    let volumes = top_volumes(top.remove("volumes"), &project, &mut report);
    let services = top.remove("services").unwrap_or(Value::Null);
    let Value::Object(services) = services else {
        return Err(Failure::Unreadable("services is not a mapping".to_owned()));
    };
    let mut profiles: BTreeSet<String> = options.profiles.iter().cloned().collect();
    if let Some(env) = var("COMPOSE_PROFILES") {
        profiles.extend(
            env.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        );
    }
    let services = enabled(services, &profiles, &mut report);
    let names: Vec<String> = services.keys().cloned().collect();
    let (network_key, network) =
        match top_network(top.remove("networks"), &project, &services, &mut report) {
            Some((key, network)) => (Some(key), Some(network)),
            None => (None, None),
        };

    for key in ["secrets", "configs"] {
        if let Some(Value::Object(entries)) = top.remove(key) {
            for entry in entries.keys() {
                report.warn(format!("{key}.{entry}"), service::SECRETS_HINT);
            }
        }
    }
    for key in top.keys().filter(|k| !k.starts_with("x-")) {
        report.unsupported(key.clone());
    }

    let ctx = service::Context {
        dir,
        surroundings,
        volumes: &volumes.names,
        project: &project,
        network: network_key.as_deref(),
        services: &names,
    };
    let mut stack = Stack {
        context: Some(Value::String("https://schema.org".to_owned())),
        type_: Some("ItemList".to_owned()),
        name: Some(project.clone()),
        network,
        volumes: volumes.stack,
        deployment: options.placement.map(|p| crate::spec::Deployment {
            mode: Some("multi-host".to_owned()),
            placement_strategy: Some(p.as_str().to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (name, svc) in &services {
        let svc = extended(name, svc, &services, &mut report);
        if let Some(converted) = service::convert(name, svc, &ctx, &mut report) {
            stack.item_list_element.push(converted);
        }
    }
    if report.errors.is_empty() {
        // What the mapping let through but Berth refuses (two services on one host
        // port, a dependency cycle), said in the compose file's terms.
        for problem in crate::spec::validate(&stack) {
            let path = compose_path(&problem.path, &stack);
            report.error(path, problem.message);
        }
    }
    if !report.errors.is_empty() {
        return Err(Failure::NotConverted(report));
    }
    Ok(Converted {
        id,
        stack,
        warnings: report.warnings,
    })
}

/// Compose's project name: `name`, `COMPOSE_PROJECT_NAME`, or the directory's name,
/// lowercased, keeping `[a-z0-9_-]` as compose does. It prefixes the Docker names of
/// volumes and networks, so a converted stack mounts the volumes compose created.
fn project_name(explicit: Option<String>, dir: &Path) -> String {
    let raw = explicit.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    raw.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect()
}

/// A project name as a stack id: `_` becomes `-`, at most 63 characters.
fn dns_label(project: &str) -> String {
    let label: String = project.replace('_', "-").chars().take(63).collect();
    label.trim_matches('-').to_owned()
}

struct TopVolumes {
    /// Key to Docker name.
    names: BTreeMap<String, String>,
    stack: Vec<Volume>,
}

/// Top-level `volumes`: Docker name `<project>_<key>` (or `name`), created when missing
/// unless `external`.
fn top_volumes(value: Option<Value>, project: &str, report: &mut Report) -> TopVolumes {
    let mut out = TopVolumes {
        names: BTreeMap::new(),
        stack: Vec::new(),
    };
    let Some(value) = value else { return out };
    let Value::Object(entries) = value else {
        report.error("volumes", "expected a mapping");
        return out;
    };
    for (key, options) in entries {
        let at = format!("volumes.{key}");
        let options = match options {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => {
                report.error(&at, format!("{other} is not a mapping"));
                continue;
            }
        };
        let declared = declared(&key, options, project, &at, report);
        out.names.insert(key, declared.name.clone());
        out.stack.push(Volume {
            name: declared.name,
            driver: declared.driver,
            create_if_not_exists: declared.external.then_some(false),
        });
    }
    out
}

/// Top-level `networks` as the stack's one network: the first one a service uses (or
/// the first declared); the others are reported. `None` keeps Berth's `berth-<id>`.
fn top_network(
    value: Option<Value>,
    project: &str,
    services: &BTreeMap<String, Map<String, Value>>,
    report: &mut Report,
) -> Option<(String, Network)> {
    let Value::Object(entries) = value? else {
        report.error("networks", "expected a mapping");
        return None;
    };
    let used = |key: &str| {
        services.values().any(|svc| match svc.get("networks") {
            Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(key)),
            Some(Value::Object(map)) => map.contains_key(key),
            _ => key == "default",
        })
    };
    let chosen = entries
        .keys()
        .find(|k| used(k))
        .or_else(|| entries.keys().next())?
        .clone();
    let mut network = None;
    for (key, options) in entries {
        let at = format!("networks.{key}");
        if key != chosen {
            report.warn(
                &at,
                format!("ignored: Berth puts every service of a stack on one network, {chosen}"),
            );
            continue;
        }
        let options = match options {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let declared = declared(&key, options, project, &at, report);
        network = Some((
            key.clone(),
            Network {
                name: Some(declared.name),
                driver: declared.driver,
                create_if_not_exists: declared.external.then_some(false),
            },
        ));
    }
    network
}

/// A top-level volume or network as Docker will know it.
struct Declared {
    /// `name`, else the key for an `external` one, else `<project>_<key>`, as compose
    /// names it.
    name: String,
    driver: Option<String>,
    /// Made by someone else: Berth must not create it.
    external: bool,
}

fn declared(
    key: &str,
    mut options: Map<String, Value>,
    project: &str,
    at: &str,
    report: &mut Report,
) -> Declared {
    let explicit = options.remove("name").and_then(|v| values::scalar(&v));
    // `external: {name: x}` is the older spelling of `external: true` with `name: x`.
    let (external, external_name) = match options.remove("external") {
        None | Some(Value::Bool(false)) => (false, None),
        Some(Value::Object(mut legacy)) => {
            (true, legacy.remove("name").and_then(|v| values::scalar(&v)))
        }
        Some(_) => (true, None),
    };
    let name = explicit.or(external_name).unwrap_or_else(|| {
        if external {
            key.to_owned()
        } else {
            format!("{project}_{key}")
        }
    });
    let driver = options.remove("driver").and_then(|v| values::scalar(&v));
    for option in options.keys() {
        report.unsupported(format!("{at}.{option}"));
    }
    Declared {
        name,
        driver,
        external,
    }
}

/// The services compose would start: those in no profile, or in an enabled one. The
/// others are reported, not dropped in silence.
fn enabled(
    services: Map<String, Value>,
    profiles: &BTreeSet<String>,
    report: &mut Report,
) -> BTreeMap<String, Map<String, Value>> {
    let mut out = BTreeMap::new();
    for (name, svc) in services {
        let at = format!("services.{name}");
        let mut svc = match svc {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                report.error(&at, format!("{other} is not a mapping"));
                continue;
            }
        };
        let in_profiles: Vec<String> = match svc.remove("profiles") {
            Some(Value::Array(items)) => items.iter().filter_map(values::scalar).collect(),
            _ => Vec::new(),
        };
        if !in_profiles.is_empty() && !in_profiles.iter().any(|p| profiles.contains(p)) {
            report.warn(
                &at,
                format!(
                    "left out, as compose does: it is in profile {} (pass --profile to convert it)",
                    in_profiles.join(", ")
                ),
            );
            continue;
        }
        out.insert(name, svc);
    }
    out
}

/// Service `name` with what it `extends` (a service of the same file) merged under it:
/// its own keys win, and `environment` and `labels` are merged name by name.
fn extended(
    name: &str,
    svc: &Map<String, Value>,
    services: &BTreeMap<String, Map<String, Value>>,
    report: &mut Report,
) -> Map<String, Value> {
    let mut chain = vec![name.to_owned()];
    let mut merged = svc.clone();
    while let Some(extends) = merged.remove("extends") {
        let at = format!(
            "services.{}.extends",
            chain.last().map_or(name, |s| s.as_str())
        );
        let base = match &extends {
            Value::String(s) => Some(s.clone()),
            Value::Object(map) => {
                if map.contains_key("file") {
                    report.error(
                        &at,
                        "extending a service of another file is not supported; copy it into this file",
                    );
                    return merged;
                }
                map.get("service").and_then(values::scalar)
            }
            _ => None,
        };
        let Some(base) = base else {
            report.error(&at, "expected a service name");
            return merged;
        };
        if chain.contains(&base) {
            report.error(
                &at,
                format!("extends itself: {} -> {base}", chain.join(" -> ")),
            );
            return merged;
        }
        let Some(parent) = services.get(&base) else {
            report.error(&at, format!("{base:?} is not a service of this file"));
            return merged;
        };
        chain.push(base);
        let mut result = parent.clone();
        for (key, value) in merged {
            let inherited = result.remove(&key);
            let value = match (key.as_str(), inherited) {
                ("environment" | "labels", Some(parent_value)) => {
                    let mut map = as_map(parent_value);
                    map.extend(as_map(value));
                    Value::Object(map)
                }
                _ => value,
            };
            result.insert(key, value);
        }
        merged = result;
    }
    merged
}

/// `environment` or `labels` in its map form.
fn as_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        Value::Array(items) => items
            .iter()
            .filter_map(values::scalar)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
                None => (s, Value::Null),
            })
            .collect(),
        _ => Map::new(),
    }
}

/// `itemListElement[1].ports[0].hostPort` as `services.web.ports[0].hostPort`.
fn compose_path(path: &str, stack: &Stack) -> String {
    let Some(rest) = path.strip_prefix("itemListElement[") else {
        return path.to_owned();
    };
    let Some((index, tail)) = rest.split_once(']') else {
        return path.to_owned();
    };
    match index
        .parse::<usize>()
        .ok()
        .and_then(|i| stack.item_list_element.get(i))
    {
        Some(svc) => format!("services.{}{tail}", svc.name),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests;
