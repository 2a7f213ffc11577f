//! One compose service as one Berth service: every key is either mapped, or reported as
//! a warning or an error at its path. Pure; files beside the compose file (`env_file`)
//! are read through [`Surroundings`].

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::interpolate::parse_env_file;
use super::mounts::{self, Mounts};
use super::ports;
use super::report::Report;
use super::values::{bytes, duration_secs, number, scalar, shell_words};
use super::Surroundings;
use crate::spec::{
    Command, HealthCheck, HostConstraints, Resources, Service, SoftwareRequirement, UpdateConfig,
};

/// What every service of one file is converted against.
pub struct Context<'a> {
    pub dir: &'a Path,
    pub surroundings: &'a dyn Surroundings,
    /// Top-level volume key to Docker name.
    pub volumes: &'a BTreeMap<String, String>,
    /// The compose project name, which prefixes Docker names (`shop_data`).
    pub project: &'a str,
    /// The top-level network every service is put on, if the file declares networks.
    pub network: Option<&'a str>,
    /// The services that are converted (profiles may leave some out).
    pub services: &'a [String],
}

/// How to store a compose secret or config for Berth, for the warnings that meet one.
pub const SECRETS_HINT: &str = "not supported, ignored; store the value with `etcdctl put \
     /berth/secrets/NAME < FILE` and pass it as an environment variable whose value is \
     {{secret:NAME}}";

/// Convert service `name`; `None` when it cannot be, with the reasons in `report`.
pub fn convert(
    name: &str,
    mut svc: Map<String, Value>,
    ctx: &Context<'_>,
    report: &mut Report,
) -> Option<Service> {
    let at = format!("services.{name}");
    let errors_before = report.errors.len();
    let mut out = Service {
        type_: Some("SoftwareApplication".to_owned()),
        name: name.to_owned(),
        ..Default::default()
    };
    if !crate::spec::is_dns_label(name) {
        report.error(
            &at,
            format!(
                "{name:?} is not a DNS label, which Berth needs for a service name \
                 (lowercase letters, digits and -); rename it"
            ),
        );
    }

    let image = svc.remove("image").and_then(|v| scalar(&v));
    match (svc.remove("build"), image) {
        (Some(_), None) => report.error(
            format!("{at}.build"),
            "Berth runs images; build and push it, then set image",
        ),
        (None, None) => report.error(format!("{at}.image"), "a service needs an image"),
        (build, Some(image)) => {
            if build.is_some() {
                report.warn(
                    format!("{at}.build"),
                    "ignored: Berth runs the image; build and push it yourself",
                );
            }
            out.image = image;
        }
    }

    // Every key is taken out of `svc` when handled; what is left is reported at the end.
    let take = |svc: &mut Map<String, Value>, key: &str| svc.remove(key);
    if let Some(v) = take(&mut svc, "command") {
        out.command = argv(v, &format!("{at}.command"), report);
    }
    if let Some(v) = take(&mut svc, "entrypoint") {
        let path = format!("{at}.entrypoint");
        out.entrypoint = argv(v, &path, report).filter(|c| match c {
            Command::Argv(words) if words.is_empty() => {
                report.warn(
                    &path,
                    "an empty entrypoint (to clear the image's) is not supported, ignored",
                );
                false
            }
            _ => true,
        });
    }
    environment(&mut svc, &at, ctx, &mut out, report);
    if let Some(v) = take(&mut svc, "ports") {
        out.ports = ports::ports(v, &format!("{at}.ports"), report);
    }
    if let Some(v) = take(&mut svc, "expose") {
        let exposed = ports::expose(v, &format!("{at}.expose"), report);
        for port in exposed {
            let listed = out
                .ports
                .iter()
                .any(|p| p.container_port == port.container_port && p.protocol == port.protocol);
            if !listed {
                out.ports.push(port);
            }
        }
    }
    let home = ctx.surroundings.var("HOME");
    let mounts = Mounts {
        dir: ctx.dir,
        home: home.as_deref(),
        volumes: ctx.volumes,
        anonymous_prefix: format!("{}_{name}_", ctx.project),
    };
    if let Some(v) = take(&mut svc, "volumes") {
        out.volume_mounts = mounts.volumes(v, &format!("{at}.volumes"), report);
    }
    if let Some(v) = take(&mut svc, "tmpfs") {
        let tmpfs = mounts::tmpfs(v, &format!("{at}.tmpfs"), report);
        out.volume_mounts.extend(tmpfs);
    }
    if let Some(v) = take(&mut svc, "depends_on") {
        depends_on(v, &format!("{at}.depends_on"), ctx, &mut out, report);
    }
    if let Some(v) = take(&mut svc, "healthcheck") {
        out.health_check = healthcheck(v, &format!("{at}.healthcheck"), report);
    }
    // Compose restarts nothing unless told to; Berth's default is to restart always.
    out.restart_policy = Some("never".to_owned());
    let restart = take(&mut svc, "restart");
    if let Some(v) = &restart {
        out.restart_policy = restart_policy(v, &format!("{at}.restart"), report);
    }
    if let Some(v) = take(&mut svc, "labels") {
        out.labels = pairs(v, &format!("{at}.labels"), report)
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
    }
    if let Some(v) = take(&mut svc, "deploy") {
        deploy(
            v,
            &format!("{at}.deploy"),
            restart.is_some(),
            &mut out,
            report,
        );
    }
    if let Some(v) = take(&mut svc, "scale") {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => out.replicas = Some(n),
            None => report.error(
                format!("{at}.scale"),
                format!("{v} is not a number of replicas"),
            ),
        }
    }
    // The version-2 spellings of the limits, which compose still reads.
    if let Some(v) = take(&mut svc, "cpus") {
        cpus(&v, &format!("{at}.cpus"), &mut out, report);
    }
    if let Some(v) = take(&mut svc, "mem_limit") {
        memory(&v, &format!("{at}.mem_limit"), &mut out, report);
    }
    if let Some(v) = take(&mut svc, "user") {
        out.user = text(&v, &format!("{at}.user"), report);
    }
    if let Some(v) = take(&mut svc, "working_dir") {
        out.working_dir = text(&v, &format!("{at}.working_dir"), report);
    }
    if let Some(v) = take(&mut svc, "cap_drop") {
        out.cap_drop = strings(v, &format!("{at}.cap_drop"), report);
    }
    if let Some(v) = take(&mut svc, "pull_policy") {
        let path = format!("{at}.pull_policy");
        out.pull_policy = match scalar(&v).as_deref() {
            Some("always") => Some("always".to_owned()),
            Some("never") => Some("never".to_owned()),
            Some("missing" | "if_not_present") => Some("missing".to_owned()),
            _ => {
                report.warn(
                    path,
                    format!("{v}: not supported, ignored (Berth pulls when missing)"),
                );
                None
            }
        };
    }
    if let Some(v) = take(&mut svc, "networks") {
        networks(v, &format!("{at}.networks"), ctx, report);
    }
    refused(&mut svc, &at, report);
    for key in ["secrets", "configs"] {
        if svc.remove(key).is_some() {
            report.warn(format!("{at}.{key}"), SECRETS_HINT);
        }
    }
    let explained: [(&str, &str); 4] = [
        (
            "container_name",
            "ignored: Berth names containers <stack>.<service>.<replica>; other services \
             reach this one by its service name",
        ),
        (
            "hostname",
            "ignored: other services reach this one by its service name",
        ),
        (
            "cap_add",
            "ignored: Berth adds no capabilities to a container (see SECURITY.md)",
        ),
        (
            "links",
            "ignored: every service of the stack is reachable by its name on the stack network",
        ),
    ];
    for (key, message) in explained {
        if svc.remove(key).is_some() {
            report.warn(format!("{at}.{key}"), message);
        }
    }
    for key in svc.keys() {
        if !key.starts_with("x-") {
            report.unsupported(format!("{at}.{key}"));
        }
    }
    (report.errors.len() == errors_before).then_some(out)
}

/// What SECURITY.md says Berth never creates: asking for it stops the conversion rather
/// than giving a container that silently lacks what it relies on.
fn refused(svc: &mut Map<String, Value>, at: &str, report: &mut Report) {
    let why = "Berth never creates privileged, host-network, host-PID or device containers \
               (see SECURITY.md)";
    if let Some(v) = svc.remove("privileged") {
        if v == Value::Bool(true) {
            report.error(format!("{at}.privileged"), format!("not supported: {why}"));
        }
    }
    if let Some(v) = svc.remove("network_mode") {
        let path = format!("{at}.network_mode");
        match scalar(&v).as_deref() {
            Some("host") => report.error(path, format!("host networking is not supported: {why}")),
            Some("bridge" | "default") => {}
            _ => report.warn(
                path,
                format!("{v}: not supported, ignored; the service joins the stack network"),
            ),
        }
    }
    for key in ["pid", "ipc"] {
        if let Some(v) = svc.remove(key) {
            let path = format!("{at}.{key}");
            if scalar(&v).as_deref() == Some("host") {
                report.error(
                    path,
                    format!("sharing the host's {key} namespace is not supported: {why}"),
                );
            } else {
                report.unsupported(path);
            }
        }
    }
    if let Some(v) = svc.remove("devices") {
        if v.as_array().is_none_or(|a| !a.is_empty()) {
            report.error(format!("{at}.devices"), format!("not supported: {why}"));
        }
    }
}

/// `command` or `entrypoint`: a list as is, a string split as a shell would.
fn argv(value: Value, path: &str, report: &mut Report) -> Option<Command> {
    match value {
        Value::Null => None,
        Value::String(s) => match shell_words(&s) {
            Ok(words) => Some(Command::Argv(words)),
            Err(message) => {
                report.error(path, message);
                None
            }
        },
        Value::Array(_) => Some(Command::Argv(strings(value, path, report))),
        other => {
            report.error(
                path,
                format!("{other} is not a command (a string or a list)"),
            );
            None
        }
    }
}

/// A block that must be a mapping; anything else is an error at `path`, not dropped.
fn object(value: Option<Value>, path: &str, report: &mut Report) -> Option<Map<String, Value>> {
    match value? {
        Value::Object(map) => Some(map),
        other => {
            report.error(path, format!("{other} is not a mapping"));
            None
        }
    }
}

/// A scalar as a string; anything else is an error at `path`.
fn text(value: &Value, path: &str, report: &mut Report) -> Option<String> {
    let s = scalar(value);
    if s.is_none() {
        report.error(path, format!("{value} is not a string"));
    }
    s
}

/// A list of scalars as strings.
fn strings(value: Value, path: &str, report: &mut Report) -> Vec<String> {
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match scalar(&item) {
            Some(s) => out.push(s),
            None => report.error(format!("{path}[{i}]"), format!("{item} is not a string")),
        }
    }
    out
}

/// `environment` or `labels`: a list of `NAME=value` (or `NAME`), or a map whose value may
/// be null. `None` is a name with no value.
fn pairs(value: Value, path: &str, report: &mut Report) -> Vec<(String, Option<String>)> {
    match value {
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                match scalar(&item) {
                    Some(s) => out.push(match s.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (s, None),
                    }),
                    None => {
                        report.error(format!("{path}[{i}]"), format!("{item} is not NAME=value"))
                    }
                }
            }
            out
        }
        Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Null => Some((k, None)),
                other => match scalar(&other) {
                    Some(s) => Some((k, Some(s))),
                    None => {
                        report.error(format!("{path}.{k}"), format!("{other} is not a string"));
                        None
                    }
                },
            })
            .collect(),
        other => {
            report.error(path, format!("{other} is not a list or a map"));
            Vec::new()
        }
    }
}

/// `env_file` first, then `environment` over it; a name with no value takes the value
/// the variable has where `berth convert` runs, or is left out when unset, as compose
/// does.
fn environment(
    svc: &mut Map<String, Value>,
    at: &str,
    ctx: &Context<'_>,
    out: &mut Service,
    report: &mut Report,
) {
    let mut env: Vec<(String, Option<String>)> = Vec::new();
    if let Some(files) = svc.remove("env_file") {
        let path = format!("{at}.env_file");
        let list = match files {
            Value::Array(items) => items,
            single => vec![single],
        };
        for (i, file) in list.into_iter().enumerate() {
            let here = format!("{path}[{i}]");
            // The long syntax, `{path, required}`, came after compose 1.
            let (name, required) = match &file {
                Value::Object(map) => (
                    map.get("path").and_then(scalar),
                    map.get("required").and_then(Value::as_bool).unwrap_or(true),
                ),
                other => (scalar(other), true),
            };
            let Some(name) = name else {
                report.error(here, format!("{file} is not a file name"));
                continue;
            };
            let full = ctx.dir.join(&name);
            match ctx.surroundings.read_file(&full) {
                Ok(text) => env.extend(parse_env_file(&text)),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => report.error(here, format!("cannot read {}: {e}", full.display())),
            }
        }
    }
    if let Some(v) = svc.remove("environment") {
        env.extend(pairs(v, &format!("{at}.environment"), report));
    }
    for (name, value) in env {
        match value.or_else(|| ctx.surroundings.var(&name)) {
            Some(value) => {
                out.environment.insert(name, value);
            }
            None => {
                out.environment.remove(&name);
            }
        }
    }
}

/// `depends_on` as a list (started first) or a map with a `condition` each.
fn depends_on(value: Value, path: &str, ctx: &Context<'_>, out: &mut Service, report: &mut Report) {
    let entries: Vec<(String, Option<Map<String, Value>>)> = match value {
        Value::Array(items) => strings(Value::Array(items), path, report)
            .into_iter()
            .map(|s| (s, None))
            .collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, v.as_object().cloned().or_else(|| Some(Map::new()))))
            .collect(),
        other => {
            report.error(path, format!("{other} is not a list or a map"));
            return;
        }
    };
    for (name, options) in entries {
        let here = format!("{path}.{name}");
        if !ctx.services.contains(&name) {
            report.error(
                &here,
                format!("{name:?} is not a service that is converted (is it in a profile?)"),
            );
            continue;
        }
        let Some(mut options) = options else {
            out.requirements.push(name);
            continue;
        };
        let condition = options.remove("condition").and_then(|v| scalar(&v));
        for key in options.keys() {
            report.unsupported(format!("{here}.{key}"));
        }
        match condition.as_deref().unwrap_or("service_started") {
            "service_started" => out.requirements.push(name),
            "service_healthy" => out.software_requirements.push(SoftwareRequirement {
                type_: Some("SoftwareApplication".to_owned()),
                name,
                wait_for_healthy: Some(true),
                ..Default::default()
            }),
            "service_completed_successfully" => {
                out.software_requirements.push(SoftwareRequirement {
                    type_: Some("SoftwareApplication".to_owned()),
                    name,
                    condition: Some("completed".to_owned()),
                    ..Default::default()
                })
            }
            other => report.error(
                format!("{here}.condition"),
                format!("{other:?} is not a condition"),
            ),
        }
    }
}

/// `healthcheck` as a `command` check, with Docker's defaults spelled out (30 s interval
/// and timeout, 3 retries) so the check runs as it did under compose; `None` when
/// disabled.
fn healthcheck(value: Value, path: &str, report: &mut Report) -> Option<HealthCheck> {
    let Value::Object(mut map) = value else {
        report.error(path, "expected a map");
        return None;
    };
    let disabled = map.remove("disable") == Some(Value::Bool(true));
    let test = map.remove("test");
    let mut check = HealthCheck {
        type_: "command".to_owned(),
        interval: Some(30.0),
        timeout: Some(30.0),
        retries: Some(3),
        start_period: Some(0.0),
        ..Default::default()
    };
    for (key, slot) in [
        ("interval", &mut check.interval),
        ("timeout", &mut check.timeout),
        ("start_period", &mut check.start_period),
    ] {
        if let Some(v) = map.remove(key) {
            match duration_secs(&v) {
                Ok(secs) => *slot = Some(secs),
                Err(message) => report.error(format!("{path}.{key}"), message),
            }
        }
    }
    if let Some(v) = map.remove("retries") {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => check.retries = Some(n),
            None => report.error(format!("{path}.retries"), format!("{v} is not a count")),
        }
    }
    for key in map.keys() {
        report.unsupported(format!("{path}.{key}"));
    }
    if disabled {
        return None;
    }
    let command = match test? {
        Value::String(shell) => vec!["/bin/sh".to_owned(), "-c".to_owned(), shell],
        list @ Value::Array(_) => {
            let words = strings(list, &format!("{path}.test"), report);
            match words.split_first() {
                Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
                Some((kind, rest)) if kind == "CMD-SHELL" => {
                    vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")]
                }
                Some((kind, _)) if kind == "NONE" => return None,
                _ => {
                    report.error(
                        format!("{path}.test"),
                        "a test list starts with CMD, CMD-SHELL or NONE",
                    );
                    return None;
                }
            }
        }
        other => {
            report.error(format!("{path}.test"), format!("{other} is not a test"));
            return None;
        }
    };
    check.command = Some(Command::Argv(command));
    Some(check)
}

fn restart_policy(value: &Value, path: &str, report: &mut Report) -> Option<String> {
    let policy = match scalar(value).as_deref() {
        Some("no" | "false") => "never",
        Some("always" | "unless-stopped") => "always",
        Some("on-failure") => "on-failure",
        Some(other) if other.starts_with("on-failure:") => {
            report.warn(
                path,
                "a maximum number of retries is not supported; Berth retries with backoff until it succeeds",
            );
            "on-failure"
        }
        _ => {
            report.error(
                path,
                format!("{value} is not a restart policy (no, always, on-failure, unless-stopped)"),
            );
            return None;
        }
    };
    Some(policy.to_owned())
}

fn cpus(value: &Value, path: &str, out: &mut Service, report: &mut Report) {
    match number(value) {
        Some(n) => out.resources.get_or_insert_with(Resources::default).cpus = Some(n),
        None => report.error(path, format!("{value} is not a number of CPUs")),
    }
}

/// Bytes as Berth's megabytes, rounded up so a limit never shrinks.
fn memory(value: &Value, path: &str, out: &mut Service, report: &mut Report) {
    const MB: u64 = 1024 * 1024;
    match bytes(value) {
        Ok(b) => {
            if b % MB != 0 {
                report.warn(
                    path,
                    format!(
                        "Berth limits memory in whole megabytes: {} MB",
                        b.div_ceil(MB)
                    ),
                );
            }
            out.resources
                .get_or_insert_with(Resources::default)
                .memory_mb = Some(b.div_ceil(MB));
        }
        Err(message) => report.error(path, message),
    }
}

/// `deploy`: replicas, limits, placement constraints on node labels, the update policy
/// and (when `restart` is not set) the restart policy.
fn deploy(value: Value, path: &str, has_restart: bool, out: &mut Service, report: &mut Report) {
    let Value::Object(mut deploy) = value else {
        report.error(path, "expected a map");
        return;
    };
    if let Some(v) = deploy.remove("replicas") {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => out.replicas = Some(n),
            None => report.error(
                format!("{path}.replicas"),
                format!("{v} is not a number of replicas"),
            ),
        }
    }
    if let Some(v) = deploy.remove("mode") {
        if scalar(&v).as_deref() != Some("replicated") {
            report.warn(
                format!("{path}.mode"),
                format!("{v}: not supported, ignored; Berth runs `replicas` containers"),
            );
        }
    }
    if let Some(mut resources) = object(
        deploy.remove("resources"),
        &format!("{path}.resources"),
        report,
    ) {
        let at = format!("{path}.resources");
        if let Some(mut limits) =
            object(resources.remove("limits"), &format!("{at}.limits"), report)
        {
            if let Some(v) = limits.remove("cpus") {
                cpus(&v, &format!("{at}.limits.cpus"), out, report);
            }
            if let Some(v) = limits.remove("memory") {
                memory(&v, &format!("{at}.limits.memory"), out, report);
            }
            for key in limits.keys() {
                report.unsupported(format!("{at}.limits.{key}"));
            }
        }
        if resources.remove("reservations").is_some() {
            report.warn(
                format!("{at}.reservations"),
                "ignored: Berth reserves on the host what it limits; set limits",
            );
        }
        for key in resources.keys() {
            report.unsupported(format!("{at}.{key}"));
        }
    }
    if let Some(mut placement) = object(
        deploy.remove("placement"),
        &format!("{path}.placement"),
        report,
    ) {
        let at = format!("{path}.placement");
        if let Some(constraints) = placement.remove("constraints") {
            let constraints = match constraints {
                Value::Array(items) => items,
                single => vec![single],
            };
            for (i, c) in constraints.iter().enumerate() {
                let label = scalar(c).and_then(|c| {
                    let (key, value) = c.split_once("==")?;
                    let key = key.trim().strip_prefix("node.labels.")?;
                    Some((key.to_owned(), value.trim().to_owned()))
                });
                match label {
                    Some((k, v)) => {
                        out.host_constraints
                            .get_or_insert_with(HostConstraints::default)
                            .required_labels
                            .insert(k, v);
                    }
                    None => report.warn(
                        format!("{at}.constraints[{i}]"),
                        format!("{c}: not supported, ignored; Berth places on host labels (node.labels.KEY == VALUE)"),
                    ),
                }
            }
        }
        for key in placement.keys() {
            report.unsupported(format!("{at}.{key}"));
        }
    }
    if let Some(update) = object(
        deploy.remove("update_config"),
        &format!("{path}.update_config"),
        report,
    ) {
        out.update = update_config(update, &format!("{path}.update_config"), report);
    }
    if let Some(mut policy) = object(
        deploy.remove("restart_policy"),
        &format!("{path}.restart_policy"),
        report,
    ) {
        let at = format!("{path}.restart_policy");
        if has_restart {
            report.warn(&at, "ignored: the service's restart is used");
        } else if let Some(v) = policy.remove("condition") {
            out.restart_policy = match scalar(&v).as_deref() {
                Some("none") => Some("never".to_owned()),
                Some("on-failure") => Some("on-failure".to_owned()),
                Some("any") => Some("always".to_owned()),
                _ => {
                    report.error(
                        format!("{at}.condition"),
                        format!("{v} is not none, on-failure or any"),
                    );
                    None
                }
            };
        }
        if !has_restart {
            for key in policy.keys() {
                report.unsupported(format!("{at}.{key}"));
            }
        }
    }
    for key in deploy.keys() {
        report.unsupported(format!("{path}.{key}"));
    }
}

fn update_config(
    mut update: Map<String, Value>,
    path: &str,
    report: &mut Report,
) -> Option<UpdateConfig> {
    let mut out = UpdateConfig::default();
    if let Some(v) = update.remove("parallelism") {
        out.parallelism = v.as_i64();
    }
    for (key, slot) in [("delay", &mut out.delay), ("monitor", &mut out.monitor)] {
        if let Some(v) = update.remove(key) {
            match duration_secs(&v) {
                Ok(secs) => *slot = Some(secs),
                Err(message) => report.error(format!("{path}.{key}"), message),
            }
        }
    }
    if let Some(v) = update.remove("failure_action") {
        out.failure_action = scalar(&v);
    }
    if let Some(v) = update.remove("max_failure_ratio") {
        out.max_failure_ratio = number(&v);
    }
    if let Some(v) = update.remove("order") {
        out.order = scalar(&v);
    }
    for key in update.keys() {
        report.unsupported(format!("{path}.{key}"));
    }
    Some(out)
}

/// A service's `networks`: Berth puts every service on the one stack network, so a
/// service on another network, or an alias, is reported.
fn networks(value: Value, path: &str, ctx: &Context<'_>, report: &mut Report) {
    let entries: Vec<(String, Option<Value>)> = match value {
        Value::Array(items) => strings(Value::Array(items), path, report)
            .into_iter()
            .map(|n| (n, None))
            .collect(),
        Value::Object(map) => map.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        other => {
            report.error(path, format!("{other} is not a list or a map"));
            return;
        }
    };
    for (name, options) in entries {
        let here = format!("{path}.{name}");
        if ctx.network != Some(name.as_str()) {
            report.warn(
                &here,
                format!(
                    "ignored: Berth puts every service of a stack on one network ({})",
                    ctx.network.unwrap_or("the stack's own")
                ),
            );
        }
        if let Some(Value::Object(options)) = options {
            for key in options.keys() {
                let message = if key == "aliases" {
                    "ignored: other services reach this one by its service name"
                } else {
                    "not supported, ignored"
                };
                report.warn(format!("{here}.{key}"), message);
            }
        }
    }
}
