//! Stack validation: every problem in a stack document at once, each with the JSON path to fix.
//!
//! `parse_stack` is the door for untrusted bytes. It never panics and never stops at the
//! first problem, so a user fixes a whole stack in one round trip, and the controller can
//! write the complete list to the stack's status instead of retrying a broken spec.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::stack::{Command, HealthCheck, Service, Stack};

/// More replicas than this is almost surely a typo, and one stack should not be able to
/// flood every host by accident.
pub const MAX_REPLICAS: u32 = 100;

/// A dense dependency graph has more cycles than anyone can read; the first few are enough
/// to start untangling it.
const MAX_CYCLES_REPORTED: usize = 16;

const DNS_LABEL_RULE: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters";
/// [`is_dns_label`] as a regular expression, for the JSON Schema (with a 63 length limit).
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// [`is_host_id`] as a regular expression, for the JSON Schema.
pub const HOST_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,253}$";
pub const PROTOCOLS: &[&str] = &["tcp", "udp"];
pub const MOUNT_TYPES: &[&str] = &["volume", "bind", "tmpfs"];
pub const ENDPOINT_TYPES: &[&str] = &["host-port"];

/// One validation problem, e.g. path `itemListElement[2].ports[0].containerPort`, message
/// `70000 is not a port (1-65535)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Where in the document, in JavaScript notation; empty for the document as a whole.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn not_one_of(value: &str, noun: &str, valid: &[&str]) -> String {
    format!("{value:?} is not a {noun} ({})", valid.join(", "))
}

/// The typed view of a string field that `stack.rs` keeps as a plain string. The document
/// spelling is written once per variant, so serde, `as_str` and `parse` cannot disagree.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $noun:literal {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant spelled exactly `s` in a stack document.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The problem with `value`, if it is not one of the spellings.
            fn complaint(value: &str) -> Option<String> {
                if Self::parse(value).is_some() {
                    return None;
                }
                let valid: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                Some(not_one_of(value, $noun, &valid))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// How the scheduler picks a host for each service (`deployment.placementStrategy`).
    #[derive(Default)]
    PlacementStrategy, "placement strategy" {
        /// Every service names its host in `targetHost`.
        Manual = "manual",
        #[default]
        Auto = "auto",
        Spread = "spread",
        Datacenter = "datacenter",
    }
}

string_enum! {
    /// Whether a stack runs on one host or across many (`deployment.mode`).
    #[derive(Default)]
    DeploymentMode, "deployment mode" {
        #[default]
        SingleHost = "single-host",
        MultiHost = "multi-host",
    }
}

string_enum! {
    /// Whether the stack's containers should exist and run (`desiredState`).
    #[derive(Default)]
    DesiredState, "desired state" {
        #[default]
        Running = "running",
        Stopped = "stopped",
    }
}

string_enum! {
    /// How a service's health is probed (`healthCheck.type`).
    HealthCheckKind, "health check type" {
        Http = "http",
        Tcp = "tcp",
        Command = "command",
    }
}

impl Stack {
    /// The deployment mode; an unknown string falls back to the default, which only
    /// matters for stacks that have not passed `validate`.
    pub fn mode(&self) -> DeploymentMode {
        self.deployment
            .as_ref()
            .and_then(|d| d.mode.as_deref())
            .and_then(DeploymentMode::parse)
            .unwrap_or_default()
    }

    /// The placement strategy, with the same fallback as [`Stack::mode`].
    pub fn strategy(&self) -> PlacementStrategy {
        self.deployment
            .as_ref()
            .and_then(|d| d.placement_strategy.as_deref())
            .and_then(PlacementStrategy::parse)
            .unwrap_or_default()
    }

    /// The desired state, with the same fallback as [`Stack::mode`].
    pub fn desired_state(&self) -> DesiredState {
        self.desired_state
            .as_deref()
            .and_then(DesiredState::parse)
            .unwrap_or_default()
    }
}

impl HealthCheck {
    /// `None` for a type `validate` rejects.
    pub fn kind(&self) -> Option<HealthCheckKind> {
        HealthCheckKind::parse(&self.type_)
    }
}

/// How big a stack may be. Anyone who can write `stacks/` can make every controller and
/// agent read the spec, so a huge or deep document must cost little and fail clearly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_services: usize,
    pub max_env_per_service: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1024 * 1024,
            max_services: 200,
            max_env_per_service: 500,
        }
    }
}

/// Parse bytes as a stack and validate it; `Err` carries every problem found.
pub fn parse_stack(bytes: &[u8]) -> Result<Stack, Vec<Problem>> {
    parse_stack_with(bytes, &Limits::default())
}

/// [`parse_stack`] with explicit size limits.
pub fn parse_stack_with(bytes: &[u8], limits: &Limits) -> Result<Stack, Vec<Problem>> {
    // Checked before parsing: a 10 MB value is refused without being read into a tree.
    if bytes.len() > limits.max_bytes {
        return Err(vec![Problem::new(
            "",
            format!(
                "the spec is {} bytes; the limit is {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        )]);
    }
    // serde_json refuses nesting deeper than 128 levels with an error, not a stack overflow.
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| vec![Problem::new("", format!("not valid JSON: {e}"))])?;
    let mut top = match value {
        Value::Object(map) => map,
        other => {
            return Err(vec![Problem::new(
                "",
                format!("a stack must be a JSON object, not {}", describe(&other)),
            )])
        }
    };

    let mut problems = Vec::new();
    // Fields that could not be read. What `validate` says about them afterwards is an echo
    // of the type error already reported (a dropped `image` is not "missing"), so it is
    // left out.
    let mut dropped = Vec::new();

    // Services are read one by one so a type error in one leaves the others checked.
    let services = top.remove("itemListElement");
    let mut stack: Stack = read_lenient(top, "", &mut problems, &mut dropped);
    match services {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("itemListElement[{i}]");
                let service = match item {
                    Value::Object(map) => read_lenient(map, &path, &mut problems, &mut dropped),
                    other => {
                        let message =
                            format!("a service must be a JSON object, not {}", describe(&other));
                        problems.push(Problem::new(path.clone(), message));
                        dropped.push(path);
                        // A placeholder keeps later indices equal to the document's.
                        Service::default()
                    }
                };
                stack.item_list_element.push(service);
            }
        }
        Some(other) => {
            let message = format!("expected an array of services, not {}", describe(&other));
            problems.push(Problem::new("itemListElement", message));
            dropped.push("itemListElement".to_owned());
        }
    }

    if stack.item_list_element.len() > limits.max_services {
        return Err(vec![Problem::new(
            "itemListElement",
            format!(
                "{} services is more than the maximum of {}",
                stack.item_list_element.len(),
                limits.max_services
            ),
        )]);
    }
    for (i, svc) in stack.item_list_element.iter().enumerate() {
        if svc.environment.len() > limits.max_env_per_service {
            problems.push(Problem::new(
                format!("itemListElement[{i}].environment"),
                format!(
                    "{} variables is more than the maximum of {}",
                    svc.environment.len(),
                    limits.max_env_per_service
                ),
            ));
        }
    }
    problems.extend(
        validate(&stack)
            .into_iter()
            .filter(|p| !dropped.iter().any(|d| is_within(&p.path, d))),
    );
    if problems.is_empty() {
        Ok(stack)
    } else {
        Err(problems)
    }
}

/// Deserialize `map`, reporting each type error with its path and retrying without the
/// top-level field that held it, so one wrong type costs only that field.
fn read_lenient<T: DeserializeOwned + Default>(
    mut map: Map<String, Value>,
    prefix: &str,
    problems: &mut Vec<Problem>,
    dropped: &mut Vec<String>,
) -> T {
    // Every round either returns or removes a key, so this ends.
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(Value::Object(map.clone())) {
            Ok(value) => return value,
            Err(err) => err,
        };
        let mut path = prefix.to_owned();
        for segment in err.path() {
            push_segment(&mut path, segment);
        }
        problems.push(Problem::new(path, err.inner().to_string()));

        let field = match err.path().iter().next() {
            Some(Segment::Map { key }) => map.remove_entry(key),
            _ => None,
        };
        let Some((key, _)) = field else {
            dropped.push(prefix.to_owned());
            return T::default();
        };
        let mut field_path = prefix.to_owned();
        push_segment(&mut field_path, &Segment::Map { key });
        dropped.push(field_path);
    }
}

fn push_segment(path: &mut String, segment: &Segment) {
    match segment {
        Segment::Seq { index } => path.push_str(&format!("[{index}]")),
        Segment::Map { key } | Segment::Enum { variant: key } => {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
        }
        Segment::Unknown => path.push_str(".?"),
    }
}

/// Whether `path` is `root` or lies beneath it.
fn is_within(path: &str, root: &str) -> bool {
    root.is_empty()
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    fn add_if(&mut self, path: impl Into<String>, message: Option<String>) {
        if let Some(message) = message {
            self.add(path, message);
        }
    }
}

/// Validate an already parsed stack; empty means valid.
pub fn validate(stack: &Stack) -> Vec<Problem> {
    let mut problems = Problems::default();
    let names = first_index_by_name(stack);

    if let Some(deployment) = &stack.deployment {
        if let Some(mode) = &deployment.mode {
            problems.add_if("deployment.mode", DeploymentMode::complaint(mode));
        }
        if let Some(strategy) = &deployment.placement_strategy {
            problems.add_if(
                "deployment.placementStrategy",
                PlacementStrategy::complaint(strategy),
            );
        }
    }
    if let Some(state) = &stack.desired_state {
        problems.add_if("desiredState", DesiredState::complaint(state));
    }
    if stack.item_list_element.is_empty() {
        problems.add("itemListElement", "a stack needs at least one service");
    }

    for (i, service) in stack.item_list_element.iter().enumerate() {
        check_service(stack, &names, i, service, &mut problems);
    }
    check_cycles(stack, &names, &mut problems);
    check_host_ports(stack, &mut problems);
    problems.0
}

/// Service name to index; the first wins, so a duplicate name cannot redirect dependencies.
/// Empty names are left out so that a dependency on "" is reported as unknown.
fn first_index_by_name(stack: &Stack) -> HashMap<&str, usize> {
    let mut names = HashMap::new();
    for (i, service) in stack.item_list_element.iter().enumerate() {
        if !service.name.is_empty() {
            names.entry(service.name.as_str()).or_insert(i);
        }
    }
    names
}

fn check_service(
    stack: &Stack,
    names: &HashMap<&str, usize>,
    i: usize,
    service: &Service,
    problems: &mut Problems,
) {
    let at = format!("itemListElement[{i}]");

    let name = &service.name;
    if name.is_empty() {
        problems.add(format!("{at}.name"), "a service needs a name");
    } else {
        if !is_dns_label(name) {
            let message = format!("{name:?} is not a DNS label ({DNS_LABEL_RULE})");
            problems.add(format!("{at}.name"), message);
        }
        if let Some(&first) = names.get(name.as_str()) {
            if first != i {
                let message =
                    format!("{name:?} is the name of both itemListElement[{first}] and {at}");
                problems.add(format!("{at}.name"), message);
            }
        }
    }

    if service.image.trim().is_empty() {
        problems.add(format!("{at}.image"), "a service needs an image");
    }
    if let Some(replicas) = service.replicas {
        if replicas > MAX_REPLICAS {
            let message = format!("{replicas} replicas is more than the maximum of {MAX_REPLICAS}");
            problems.add(format!("{at}.replicas"), message);
        }
    }

    match &service.target_host {
        Some(host) if !is_host_id(host) => {
            let message = format!("{host:?} is not a host id ([A-Za-z0-9._-], 1-253 characters)");
            problems.add(format!("{at}.targetHost"), message);
        }
        None if stack.strategy() == PlacementStrategy::Manual => {
            problems.add(
                format!("{at}.targetHost"),
                "manual placement needs a targetHost on every service",
            );
        }
        _ => {}
    }

    let check_dependency = |dependency: &str, path: String, problems: &mut Problems| {
        if dependency == name {
            problems.add(
                path,
                format!("{dependency:?} is this service itself; a service cannot depend on itself"),
            );
        } else if !names.contains_key(dependency) {
            problems.add(
                path,
                format!("{dependency:?} is not a service in this stack"),
            );
        }
    };
    for (j, dependency) in service.requirements.iter().enumerate() {
        check_dependency(dependency, format!("{at}.requirements[{j}]"), problems);
    }
    for (j, requirement) in service.software_requirements.iter().enumerate() {
        let path = format!("{at}.softwareRequirements[{j}].name");
        check_dependency(&requirement.name, path, problems);
    }

    for (j, port) in service.ports.iter().enumerate() {
        let at = format!("{at}.ports[{j}]");
        problems.add_if(
            format!("{at}.containerPort"),
            port_complaint(port.container_port),
        );
        if let Some(host_port) = port.host_port {
            problems.add_if(format!("{at}.hostPort"), port_complaint(host_port));
        }
        if let Some(protocol) = &port.protocol {
            if !PROTOCOLS.contains(&protocol.as_str()) {
                let message = not_one_of(protocol, "protocol", PROTOCOLS);
                problems.add(format!("{at}.protocol"), message);
            }
        }
    }

    for (j, mount) in service.volume_mounts.iter().enumerate() {
        let at = format!("{at}.volumeMounts[{j}]");
        match mount.type_.as_deref().unwrap_or("volume") {
            kind @ ("volume" | "bind") => {
                if mount.source.trim().is_empty() {
                    problems.add(
                        format!("{at}.source"),
                        format!("a {kind} mount needs a source"),
                    );
                }
            }
            "tmpfs" => {}
            other => {
                let message = not_one_of(other, "volume mount type", MOUNT_TYPES);
                problems.add(format!("{at}.type"), message);
            }
        }
        if !mount.target.starts_with('/') {
            let message = format!("{:?} is not an absolute path", mount.target);
            problems.add(format!("{at}.target"), message);
        }
    }

    // Docker passes these as `NAME=value` strings; an `=` or NUL in the name corrupts it.
    for variable in service.environment.keys() {
        if variable.is_empty() {
            problems.add(
                format!("{at}.environment"),
                "an environment variable name cannot be empty",
            );
        } else if variable.contains(['=', '\0']) {
            let message = format!(
                "{variable:?} is not an environment variable name (it contains \"=\" or NUL)"
            );
            problems.add(format!("{at}.environment"), message);
        }
    }

    // Berth's own labels mark ownership and drift; a user value there would hijack them.
    for key in service.labels.keys().filter(|k| k.starts_with("berth.")) {
        let message =
            format!("{key:?} is reserved: label keys starting with \"berth.\" belong to Berth");
        problems.add(format!("{at}.labels"), message);
    }

    if let Some(check) = &service.health_check {
        check_health(&format!("{at}.healthCheck"), service, check, problems);
    }

    for (j, action) in service.potential_action.iter().enumerate() {
        let at = format!("{at}.potentialAction[{j}]");
        if command_is_missing(action.command.as_ref()) {
            problems.add(format!("{at}.command"), "an action needs a command");
        }
        if let Some(target) = &action.target {
            if !names.contains_key(target.as_str()) {
                let message = format!("{target:?} is not a service in this stack");
                problems.add(format!("{at}.target"), message);
            }
        }
        problems.add_if(format!("{at}.timeout"), seconds_complaint(action.timeout));
    }

    if let Some(endpoint) = &service.service_endpoint {
        if let Some(kind) = &endpoint.type_ {
            if !ENDPOINT_TYPES.contains(&kind.as_str()) {
                let message = not_one_of(kind, "service endpoint type", ENDPOINT_TYPES);
                problems.add(format!("{at}.serviceEndpoint.type"), message);
            }
        }
        if let Some(port) = endpoint.exposed_port {
            problems.add_if(
                format!("{at}.serviceEndpoint.exposedPort"),
                port_complaint(port),
            );
        }
    }
}

fn check_health(at: &str, service: &Service, check: &HealthCheck, problems: &mut Problems) {
    match check.kind() {
        None => problems.add_if(
            format!("{at}.type"),
            HealthCheckKind::complaint(&check.type_),
        ),
        Some(kind @ (HealthCheckKind::Http | HealthCheckKind::Tcp)) => {
            if kind == HealthCheckKind::Http {
                match &check.path {
                    None => problems.add(format!("{at}.path"), "an http health check needs a path"),
                    Some(path) if !path.starts_with('/') => {
                        problems.add(format!("{at}.path"), format!("{path:?} must start with /"));
                    }
                    Some(_) => {}
                }
            }
            if check.port.is_none() && service.ports.is_empty() {
                let message =
                    format!("a {kind} health check needs a port, and the service has no ports");
                problems.add(format!("{at}.port"), message);
            }
        }
        Some(HealthCheckKind::Command) => {
            if command_is_missing(check.command.as_ref()) {
                problems.add(
                    format!("{at}.command"),
                    "a command health check needs a command",
                );
            }
        }
    }
    if let Some(port) = check.port {
        problems.add_if(format!("{at}.port"), port_complaint(port));
    }
    problems.add_if(format!("{at}.interval"), seconds_complaint(check.interval));
    problems.add_if(format!("{at}.timeout"), seconds_complaint(check.timeout));
    if let Some(start) = check.start_period {
        let ok = start.is_finite() && start >= 0.0;
        if !ok {
            problems.add(
                format!("{at}.startPeriod"),
                format!("{start} is not a number of seconds (0 or more)"),
            );
        }
    }
}

fn port_complaint(port: i64) -> Option<String> {
    (!(1..=65535).contains(&port)).then(|| format!("{port} is not a port (1-65535)"))
}

fn seconds_complaint(seconds: Option<f64>) -> Option<String> {
    let seconds = seconds?;
    let ok = seconds.is_finite() && seconds > 0.0;
    (!ok).then(|| format!("{seconds} is not a positive number of seconds"))
}

/// An absent command, an empty argv or a blank program name all leave nothing to run.
fn command_is_missing(command: Option<&Command>) -> bool {
    match command {
        None => true,
        Some(command) => command
            .argv()
            .first()
            .is_none_or(|program| program.trim().is_empty()),
    }
}

/// For each service, the indices of the services it depends on; unknown names and
/// self-references are left out (they are reported on their own).
fn dependency_graph(stack: &Stack, names: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
    stack
        .item_list_element
        .iter()
        .enumerate()
        .map(|(i, service)| {
            service
                .dependencies()
                .into_iter()
                .filter_map(|name| names.get(name).copied())
                .filter(|&j| j != i)
                .collect()
        })
        .collect()
}

fn check_cycles(stack: &Stack, names: &HashMap<&str, usize>, problems: &mut Problems) {
    let graph = dependency_graph(stack, names);
    let name = |i: usize| {
        stack
            .item_list_element
            .get(i)
            .map_or("", |s| s.name.as_str())
    };
    for cycle in find_cycles(&graph, MAX_CYCLES_REPORTED) {
        let Some(&first) = cycle.first() else {
            continue;
        };
        let mut names: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
        names.push(name(first));
        let message = format!("dependency cycle: {}", names.join(" -> "));
        problems.add(format!("itemListElement[{first}]"), message);
    }
}

/// Cycles of `graph`, one per back edge of a depth-first search, each rotated to start at
/// its lowest index so the same cycle is never reported twice. Iterative, because a long
/// dependency chain in a hostile document must not overflow the stack.
fn find_cycles(graph: &[Vec<usize>], limit: usize) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Visit {
        New,
        OnPath,
        Done,
    }
    let mut visit = vec![Visit::New; graph.len()];
    let mut seen = HashSet::new();
    let mut cycles = Vec::new();
    for root in 0..graph.len() {
        if visit.get(root) != Some(&Visit::New) {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        if let Some(v) = visit.get_mut(root) {
            *v = Visit::OnPath;
        }
        while let Some(&(node, next)) = path.last() {
            let Some(&to) = graph.get(node).and_then(|edges| edges.get(next)) else {
                if let Some(v) = visit.get_mut(node) {
                    *v = Visit::Done;
                }
                path.pop();
                continue;
            };
            if let Some(top) = path.last_mut() {
                top.1 += 1;
            }
            match visit.get(to) {
                Some(Visit::New) => {
                    if let Some(v) = visit.get_mut(to) {
                        *v = Visit::OnPath;
                    }
                    path.push((to, 0));
                }
                Some(Visit::OnPath) => {
                    let start = path.iter().position(|&(v, _)| v == to).unwrap_or(0);
                    let mut cycle: Vec<usize> = path.iter().skip(start).map(|&(v, _)| v).collect();
                    let lowest = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, &v)| v)
                        .map_or(0, |(k, _)| k);
                    cycle.rotate_left(lowest);
                    if seen.insert(cycle.clone()) {
                        cycles.push(cycle);
                        if cycles.len() >= limit {
                            return cycles;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    cycles
}

/// Which containers could share a host, and so must not publish the same host port.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Colocation<'a> {
    /// Single-host mode: everything shares the one host.
    OneHost,
    /// Pinned by `targetHost`.
    Host(&'a str),
    /// Multi-host without a pin: the scheduler keeps services with the same host port
    /// apart, so only a service's own ports can collide.
    Own(usize),
}

fn check_host_ports(stack: &Stack, problems: &mut Problems) {
    let single_host = stack.mode() == DeploymentMode::SingleHost;
    let mut first_publisher: HashMap<(i64, &str, Colocation), (usize, usize)> = HashMap::new();
    for (i, service) in stack.item_list_element.iter().enumerate() {
        let colocation = match (single_host, service.target_host.as_deref()) {
            (true, _) => Colocation::OneHost,
            (false, Some(host)) => Colocation::Host(host),
            (false, None) => Colocation::Own(i),
        };
        for (j, port) in service.ports.iter().enumerate() {
            let Some(host_port) = port.host_port else {
                continue;
            };
            let protocol = port.protocol();
            // Out-of-range ports and unknown protocols are already reported.
            if port_complaint(host_port).is_some() || !PROTOCOLS.contains(&protocol) {
                continue;
            }
            let at = format!("itemListElement[{i}].ports[{j}].hostPort");
            match first_publisher.entry((host_port, protocol, colocation)) {
                Entry::Occupied(first) => {
                    let (fi, fj) = *first.get();
                    let message = format!(
                        "host port {host_port}/{protocol} is also published by \
                         itemListElement[{fi}].ports[{fj}] and both would run on the same host"
                    );
                    problems.add(at, message);
                }
                Entry::Vacant(slot) => {
                    slot.insert((i, j));
                    let replicas = service.replica_count();
                    if replicas > 1 && colocation != Colocation::Own(i) {
                        let message = format!(
                            "host port {host_port}/{protocol} would be published by all \
                             {replicas} replicas of this service on the same host"
                        );
                        problems.add(at, message);
                    }
                }
            }
        }
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let alphanumeric = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = s.as_bytes();
    bytes.len() <= 63
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|c| alphanumeric(c) || *c == b'-')
}

/// Host ids are chosen by operators (often FQDNs or cloud instance names), so they get a
/// looser rule than service names: `[A-Za-z0-9._-]`, 1-253 characters.
pub fn is_host_id(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Indices into `stack.item_list_element` in start order: dependencies first, ties broken
/// by `position` (absent last) then index. On a cyclic stack the services caught in or
/// behind a cycle come last, in tie-break order, so every index still appears once.
pub fn start_order(stack: &Stack) -> Vec<usize> {
    let services = &stack.item_list_element;
    let graph = dependency_graph(stack, &first_index_by_name(stack));
    let tie_break = |i: usize| {
        let position = services.get(i).and_then(|s| s.position);
        Reverse((position.is_none(), position, i))
    };

    let mut waiting_on = vec![0usize; services.len()];
    let mut dependents = vec![Vec::new(); services.len()];
    for (i, dependencies) in graph.iter().enumerate() {
        for &j in dependencies {
            if let Some(count) = waiting_on.get_mut(i) {
                *count += 1;
            }
            if let Some(list) = dependents.get_mut(j) {
                list.push(i);
            }
        }
    }

    let mut ready: BinaryHeap<_> = (0..services.len())
        .filter(|&i| waiting_on.get(i) == Some(&0))
        .map(tie_break)
        .collect();
    let mut order = Vec::with_capacity(services.len());
    let mut started = vec![false; services.len()];
    while let Some(Reverse((_, _, i))) = ready.pop() {
        order.push(i);
        if let Some(s) = started.get_mut(i) {
            *s = true;
        }
        for &dependent in dependents.get(i).map_or(&[][..], Vec::as_slice) {
            if let Some(count) = waiting_on.get_mut(dependent) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    ready.push(tie_break(dependent));
                }
            }
        }
    }

    let mut stuck: Vec<usize> = (0..services.len())
        .filter(|&i| started.get(i) == Some(&false))
        .collect();
    stuck.sort_by_key(|&i| tie_break(i).0);
    order.extend(stuck);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVE: &str = include_str!("../../examples/eve-infisical.json");
    const EXAMPLES: &[&str] = &[
        EVE,
        include_str!("../../examples/hello.json"),
        include_str!("../../examples/three-tier.json"),
        include_str!("../../examples/spread.json"),
        include_str!("../../examples/constraints.json"),
        include_str!("../../examples/invalid/many-errors.json"),
        include_str!("../../examples/invalid/cycle.json"),
    ];

    /// A stack with extra top-level fields `top` (may be empty) and the services given.
    fn doc(top: &str, services: &str) -> String {
        let comma = if top.is_empty() { "" } else { "," };
        format!(r#"{{{top}{comma}"itemListElement":[{services}]}}"#)
    }

    fn service(extra: &str) -> String {
        let comma = if extra.is_empty() { "" } else { "," };
        format!(r#"{{"name":"web","image":"busybox"{comma}{extra}}}"#)
    }

    fn problems(json: &str) -> Vec<String> {
        match parse_stack(json.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(Problem::to_string).collect(),
        }
    }

    #[test]
    fn every_rule_reports_its_problem_with_a_path() {
        let case = |name, json: String, expected: &'static [&'static str]| (name, json, expected);
        let two = |a: &str, b: &str| doc("", &format!("{a},{b}"));
        let cases = [
            case("minimal stack is valid", doc("", &service("")), &[]),
            case("eve's own definition is valid", EVE.to_owned(), &[]),
            case(
                "json-ld extra terms are ignored",
                doc(r#""@id":"x","foo":{"bar":1}"#, &service(r#""@id":"y","sameAs":[1]"#)),
                &[],
            ),
            case(
                "not json",
                r#"{"itemListElement": ["#.to_owned(),
                &["not valid JSON: EOF while parsing a list at line 1 column 21"],
            ),
            case("top level not an object", "[1]".to_owned(), &["a stack must be a JSON object, not an array"]),
            case(
                "top-level type error does not hide service problems",
                doc(r#""network":5"#, r#"{"name":"web","image":""}"#),
                &["network: invalid type: integer `5`", "itemListElement[0].image: a service needs an image"],
            ),
            case(
                "type error in one service does not hide another's",
                two(&service(r#""ports":"80""#), r#"{"name":"B","image":"x"}"#),
                &["itemListElement[0].ports: invalid type", "itemListElement[1].name: \"B\" is not a DNS label"],
            ),
            case(
                "nested type error has its full path",
                doc("", &service(r#""ports":[{"containerPort":"80"}]"#)),
                &["itemListElement[0].ports[0].containerPort: invalid type: string \"80\""],
            ),
            case(
                "missing required field is named",
                doc("", &service(r#""volumeMounts":[{"source":"x"}]"#)),
                &["itemListElement[0].volumeMounts[0]: missing field `target`"],
            ),
            case(
                "service that is not an object",
                doc("", "5"),
                &["itemListElement[0]: a service must be a JSON object, not a number"],
            ),
            case(
                "itemListElement that is not an array",
                r#"{"itemListElement":{}}"#.to_owned(),
                &["itemListElement: expected an array of services, not an object"],
            ),
            case("no services", doc("", ""), &["itemListElement: a stack needs at least one service"]),
            case(
                "missing image",
                doc("", r#"{"name":"web"}"#),
                &["itemListElement[0].image: a service needs an image"],
            ),
            case(
                "name not a dns label",
                doc("", r#"{"name":"Bad Name!","image":"x"}"#),
                &[r#"itemListElement[0].name: "Bad Name!" is not a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters)"#],
            ),
            case(
                "name too long",
                doc("", &format!(r#"{{"name":"{}","image":"x"}}"#, "a".repeat(64))),
                &["is not a DNS label"],
            ),
            case("name missing", doc("", r#"{"image":"x"}"#), &["itemListElement[0].name: a service needs a name"]),
            case(
                "duplicate names",
                two(&service(""), &service("")),
                &[r#"itemListElement[1].name: "web" is the name of both itemListElement[0] and itemListElement[1]"#],
            ),
            case(
                "unknown requirement",
                doc("", &service(r#""requirements":["db"]"#)),
                &[r#"itemListElement[0].requirements[0]: "db" is not a service in this stack"#],
            ),
            case(
                "unknown software requirement",
                doc("", &service(r#""softwareRequirements":[{"name":"postgres"}]"#)),
                &[r#"itemListElement[0].softwareRequirements[0].name: "postgres" is not a service in this stack"#],
            ),
            case(
                "dependency on itself",
                doc("", &service(r#""requirements":["web"]"#)),
                &["itemListElement[0].requirements[0]: \"web\" is this service itself"],
            ),
            case(
                "dependency cycle",
                two(
                    r#"{"name":"a","image":"x","softwareRequirements":[{"name":"b"}]}"#,
                    r#"{"name":"b","image":"x","requirements":["a"]}"#,
                ),
                &["itemListElement[0]: dependency cycle: a -> b -> a"],
            ),
            case(
                "unknown placement strategy",
                doc(r#""deployment":{"placementStrategy":"sideways"}"#, &service("")),
                &[r#"deployment.placementStrategy: "sideways" is not a placement strategy (manual, auto, spread, datacenter)"#],
            ),
            case(
                "unknown deployment mode",
                doc(r#""deployment":{"mode":"cluster"}"#, &service("")),
                &[r#"deployment.mode: "cluster" is not a deployment mode (single-host, multi-host)"#],
            ),
            case(
                "unknown desired state",
                doc(r#""desiredState":"paused""#, &service("")),
                &[r#"desiredState: "paused" is not a desired state (running, stopped)"#],
            ),
            case(
                "manual placement without targetHost",
                doc(r#""deployment":{"mode":"multi-host","placementStrategy":"manual"}"#, &service("")),
                &["itemListElement[0].targetHost: manual placement needs a targetHost"],
            ),
            case(
                "manual placement with operator-style host ids is valid",
                doc(
                    r#""deployment":{"mode":"multi-host","placementStrategy":"manual"}"#,
                    &service(r#""targetHost":"Node_1.eu-west.example.com""#),
                ),
                &[],
            ),
            case(
                "targetHost not a host id",
                doc("", &service(r#""targetHost":"host 1""#)),
                &[r#"itemListElement[0].targetHost: "host 1" is not a host id"#],
            ),
            case(
                "containerPort out of range",
                doc("", &service(r#""ports":[{"containerPort":70000}]"#)),
                &["itemListElement[0].ports[0].containerPort: 70000 is not a port (1-65535)"],
            ),
            case(
                "hostPort out of range",
                doc("", &service(r#""ports":[{"containerPort":80,"hostPort":0}]"#)),
                &["itemListElement[0].ports[0].hostPort: 0 is not a port (1-65535)"],
            ),
            case(
                "unknown protocol",
                doc("", &service(r#""ports":[{"containerPort":80,"protocol":"sctp"}]"#)),
                &[r#"itemListElement[0].ports[0].protocol: "sctp" is not a protocol (tcp, udp)"#],
            ),
            case(
                "host port clash in single-host mode",
                two(
                    &service(r#""ports":[{"containerPort":80,"hostPort":8080}]"#),
                    r#"{"name":"api","image":"x","ports":[{"containerPort":81,"hostPort":8080,"protocol":"tcp"}]}"#,
                ),
                &["itemListElement[1].ports[0].hostPort: host port 8080/tcp is also published by itemListElement[0].ports[0]"],
            ),
            case(
                "same host port on different protocols is valid",
                two(
                    &service(r#""ports":[{"containerPort":53,"hostPort":53}]"#),
                    r#"{"name":"dns","image":"x","ports":[{"containerPort":53,"hostPort":53,"protocol":"udp"}]}"#,
                ),
                &[],
            ),
            case(
                "host port clash on the same targetHost in multi-host mode",
                doc(
                    r#""deployment":{"mode":"multi-host","placementStrategy":"manual"}"#,
                    &format!(
                        "{},{}",
                        service(r#""targetHost":"h1","ports":[{"containerPort":80,"hostPort":80}]"#),
                        r#"{"name":"api","image":"x","targetHost":"h1","ports":[{"containerPort":80,"hostPort":80}]}"#
                    ),
                ),
                &["itemListElement[1].ports[0].hostPort: host port 80/tcp is also published"],
            ),
            case(
                "same host port across services in multi-host auto is valid",
                doc(
                    r#""deployment":{"mode":"multi-host"}"#,
                    &format!(
                        "{},{}",
                        service(r#""replicas":3,"ports":[{"containerPort":80,"hostPort":80}]"#),
                        r#"{"name":"api","image":"x","ports":[{"containerPort":80,"hostPort":80}]}"#
                    ),
                ),
                &[],
            ),
            case(
                "replicas sharing a host port in single-host mode",
                doc("", &service(r#""replicas":2,"ports":[{"containerPort":80,"hostPort":80}]"#)),
                &["itemListElement[0].ports[0].hostPort: host port 80/tcp would be published by all 2 replicas"],
            ),
            case(
                "unknown health check type",
                doc("", &service(r#""healthCheck":{"type":"telepathy"}"#)),
                &[r#"itemListElement[0].healthCheck.type: "telepathy" is not a health check type (http, tcp, command)"#],
            ),
            case(
                "http health check without path",
                doc("", &service(r#""healthCheck":{"type":"http","port":80}"#)),
                &["itemListElement[0].healthCheck.path: an http health check needs a path"],
            ),
            case(
                "http health check with a relative path",
                doc("", &service(r#""healthCheck":{"type":"http","path":"status","port":80}"#)),
                &[r#"itemListElement[0].healthCheck.path: "status" must start with /"#],
            ),
            case(
                "tcp health check without any port",
                doc("", &service(r#""healthCheck":{"type":"tcp"}"#)),
                &["itemListElement[0].healthCheck.port: a tcp health check needs a port"],
            ),
            case(
                "tcp health check falls back to the service's ports",
                doc("", &service(r#""ports":[{"containerPort":80}],"healthCheck":{"type":"tcp"}"#)),
                &[],
            ),
            case(
                "command health check without command",
                doc("", &service(r#""healthCheck":{"type":"command","command":[]}"#)),
                &["itemListElement[0].healthCheck.command: a command health check needs a command"],
            ),
            case(
                "zero interval and negative timeout",
                doc(
                    "",
                    &service(r#""healthCheck":{"type":"command","command":"true","interval":0,"timeout":-1}"#),
                ),
                &[
                    "itemListElement[0].healthCheck.interval: 0 is not a positive number of seconds",
                    "itemListElement[0].healthCheck.timeout: -1 is not a positive number of seconds",
                ],
            ),
            case("zero replicas scale to zero", doc("", &service(r#""replicas":0"#)), &[]),
            case(
                "too many replicas",
                doc("", &service(r#""replicas":101"#)),
                &["itemListElement[0].replicas: 101 replicas is more than the maximum of 100"],
            ),
            case(
                "unknown volume mount type",
                doc("", &service(r#""volumeMounts":[{"source":"x","target":"/x","type":"nfs"}]"#)),
                &[r#"itemListElement[0].volumeMounts[0].type: "nfs" is not a volume mount type (volume, bind, tmpfs)"#],
            ),
            case(
                "bind mount without source",
                doc("", &service(r#""volumeMounts":[{"target":"/x","type":"bind"}]"#)),
                &["itemListElement[0].volumeMounts[0].source: a bind mount needs a source"],
            ),
            case(
                "relative mount target",
                doc("", &service(r#""volumeMounts":[{"source":"x","target":"data"}]"#)),
                &[r#"itemListElement[0].volumeMounts[0].target: "data" is not an absolute path"#],
            ),
            case(
                "undeclared named volume is an implicit volume",
                doc(
                    r#""volumes":[{"name":"declared"}]"#,
                    &service(r#""volumeMounts":[{"source":"undeclared","target":"/d","type":"volume"},{"target":"/t","type":"tmpfs"}]"#),
                ),
                &[],
            ),
            case(
                "environment name with =",
                doc("", &service(r#""environment":{"A=B":"1"}"#)),
                &[r#"itemListElement[0].environment: "A=B" is not an environment variable name"#],
            ),
            case(
                "empty environment name",
                doc("", &service(r#""environment":{"":"1"}"#)),
                &["itemListElement[0].environment: an environment variable name cannot be empty"],
            ),
            case(
                "action without command",
                doc("", &service(r#""potentialAction":[{"name":"migrate"}]"#)),
                &["itemListElement[0].potentialAction[0].command: an action needs a command"],
            ),
            case(
                "action targeting an unknown service",
                doc("", &service(r#""potentialAction":[{"name":"m","command":"true","target":"worker"}]"#)),
                &[r#"itemListElement[0].potentialAction[0].target: "worker" is not a service in this stack"#],
            ),
            case(
                "unknown service endpoint type",
                doc("", &service(r#""serviceEndpoint":{"type":"ingress"}"#)),
                &[r#"itemListElement[0].serviceEndpoint.type: "ingress" is not a service endpoint type (host-port)"#],
            ),
            case(
                "reserved label",
                doc("", &service(r#""labels":{"berth.stack":"other","team":"a"}"#)),
                &[r#"itemListElement[0].labels: "berth.stack" is reserved"#],
            ),
        ];

        let mut failures = Vec::new();
        for (name, json, expected) in &cases {
            let found = problems(json);
            if expected.is_empty() && !found.is_empty() {
                failures.push(format!("{name}: expected valid, got {found:#?}"));
            }
            if !expected.is_empty() && found.is_empty() {
                failures.push(format!("{name}: expected invalid, got no problems"));
            }
            for want in expected.iter() {
                if !found.iter().any(|p| p.contains(want)) {
                    failures.push(format!(
                        "{name}: no problem contains {want:?} in {found:#?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn type_errors_do_not_echo_as_missing_fields() {
        let found = problems(&doc("", r#"{"name":"web","image":5}"#));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("itemListElement[0].image: invalid type"));
    }

    #[test]
    fn each_cycle_is_reported_once() {
        let json = doc(
            "",
            r#"{"name":"a","image":"x","requirements":["b"]},
               {"name":"b","image":"x","requirements":["c"]},
               {"name":"c","image":"x","requirements":["a"]}"#,
        );
        let found = problems(&json);
        let cycles: Vec<_> = found.iter().filter(|p| p.contains("cycle")).collect();
        assert_eq!(
            cycles,
            ["itemListElement[0]: dependency cycle: a -> b -> c -> a"]
        );
    }

    #[test]
    fn defaults_apply_when_deployment_and_state_are_absent() {
        let stack = parse_stack(doc("", &service("")).as_bytes()).unwrap();
        assert_eq!(stack.mode(), DeploymentMode::SingleHost);
        assert_eq!(stack.strategy(), PlacementStrategy::Auto);
        assert_eq!(stack.desired_state(), DesiredState::Running);

        let top = r#""deployment":{"mode":"multi-host","placementStrategy":"datacenter"},"desiredState":"stopped""#;
        let stack = parse_stack(doc(top, &service("")).as_bytes()).unwrap();
        assert_eq!(stack.mode(), DeploymentMode::MultiHost);
        assert_eq!(stack.strategy(), PlacementStrategy::Datacenter);
        assert_eq!(stack.desired_state(), DesiredState::Stopped);
    }

    #[test]
    fn enum_spellings_agree_with_serde() {
        fn check<T: Serialize + Copy>(all: &[T], as_str: fn(T) -> &'static str) {
            for &v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), as_str(v));
            }
        }
        check(PlacementStrategy::ALL, PlacementStrategy::as_str);
        check(DeploymentMode::ALL, DeploymentMode::as_str);
        check(DesiredState::ALL, DesiredState::as_str);
        check(HealthCheckKind::ALL, HealthCheckKind::as_str);
        let check = HealthCheck {
            type_: "tcp".into(),
            ..HealthCheck::default()
        };
        assert_eq!(check.kind(), Some(HealthCheckKind::Tcp));
    }

    #[test]
    fn problem_display_omits_an_empty_path() {
        assert_eq!(Problem::new("a.b", "bad").to_string(), "a.b: bad");
        assert_eq!(Problem::new("", "bad").to_string(), "bad");
    }

    #[test]
    fn dns_labels() {
        for ok in ["a", "0", "web-1", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    fn stack_of(services: &[(&str, Option<i64>, &[&str])]) -> Stack {
        Stack {
            item_list_element: services
                .iter()
                .map(|&(name, position, requirements)| Service {
                    name: name.into(),
                    image: "x".into(),
                    position,
                    requirements: requirements.iter().map(|r| r.to_string()).collect(),
                    ..Service::default()
                })
                .collect(),
            ..Stack::default()
        }
    }

    #[test]
    fn start_order_puts_dependencies_first_then_position_then_index() {
        let chain = stack_of(&[("c", None, &["b"]), ("b", None, &["a"]), ("a", None, &[])]);
        assert_eq!(start_order(&chain), [2, 1, 0]);

        let diamond = stack_of(&[
            ("app", Some(4), &["left", "right"]),
            ("right", Some(3), &["base"]),
            ("left", Some(2), &["base"]),
            ("base", Some(9), &[]),
            ("solo", Some(1), &[]),
            ("unplaced", None, &[]),
            ("tied", Some(1), &[]),
        ]);
        assert_eq!(start_order(&diamond), [4, 6, 3, 2, 1, 0, 5]);
    }

    #[test]
    fn start_order_terminates_on_a_cycle_and_lists_every_service_once() {
        let cyclic = stack_of(&[
            ("a", None, &["b"]),
            ("b", None, &["a"]),
            ("free", None, &[]),
            ("after", None, &["a"]),
        ]);
        assert_eq!(start_order(&cyclic), [2, 0, 1, 3]);
    }

    #[test]
    fn garbage_and_truncated_input_never_panics() {
        // xorshift: deterministic and dependency-free.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const JSONISH: &[u8] = b"{}[]\":,-0123456789.eE truefalsnul\\ab";
        for _ in 0..500 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        r as u8
                    } else {
                        JSONISH[(r >> 8) as usize % JSONISH.len()]
                    }
                })
                .collect();
            let _ = parse_stack(&bytes);
        }
        for example in EXAMPLES {
            let bytes = example.as_bytes();
            for end in 0..bytes.len() {
                let _ = parse_stack(&bytes[..end]);
            }
            // Mutations keep the JSON mostly intact, so they reach deep into validation.
            for _ in 0..300 {
                let mut mutated = bytes.to_vec();
                let at = (next() % bytes.len() as u64) as usize;
                mutated[at] = JSONISH[(next() % JSONISH.len() as u64) as usize];
                let _ = parse_stack(&mutated);
            }
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn oversized_deep_and_wide_specs_are_refused_cheaply_and_clearly() {
        let limits = Limits::default();
        // (case, document, expected fragment)
        let big = format!(
            r#"{{"itemListElement":[{{"name":"a","image":"i","description":"{}"}}]}}"#,
            "x".repeat(limits.max_bytes)
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let wide = serde_json::json!({"itemListElement": (0..=limits.max_services)
            .map(|i| serde_json::json!({"name": format!("s{i}"), "image": "i"}))
            .collect::<Vec<_>>()})
        .to_string();
        let env: serde_json::Map<String, serde_json::Value> = (0..=limits.max_env_per_service)
            .map(|i| (format!("V{i}"), serde_json::Value::from("x")))
            .collect();
        let many_env = serde_json::json!({"itemListElement": [{"name": "a", "image": "i", "environment": env}]}).to_string();
        let cases = [
            ("over the byte limit", big, "the limit is 1048576 bytes"),
            (
                "nested beyond serde's recursion limit",
                deep,
                "not valid JSON: recursion limit exceeded",
            ),
            (
                "too many services",
                wide,
                "201 services is more than the maximum of 200",
            ),
            (
                "too many variables",
                many_env,
                "501 variables is more than the maximum of 500",
            ),
        ];
        for (name, doc, want) in cases {
            let started = std::time::Instant::now();
            let problems = parse_stack(doc.as_bytes()).expect_err(name);
            assert!(
                problems.iter().any(|p| p.to_string().contains(want)),
                "{name}: {problems:?}"
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{name}: took {:?}",
                started.elapsed()
            );
        }
        let smaller = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert!(parse_stack_with(br#"{"itemListElement":[]}"#, &smaller).is_err());
    }
}

#[cfg(test)]
mod fuzz_tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z{}:/@ -]{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("name".to_owned()),
                        Just("image".to_owned()),
                        Just("itemListElement".to_owned()),
                        Just("ports".to_owned()),
                        Just("deployment".to_owned()),
                        Just("healthCheck".to_owned()),
                        Just("softwareRequirements".to_owned()),
                        Just("replicas".to_owned()),
                        "[a-zA-Z]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_and_answer_quickly(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let started = std::time::Instant::now();
            let _ = parse_stack(&bytes);
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }

        #[test]
        fn arbitrary_json_shaped_like_a_stack_never_panics(v in json_value()) {
            let bytes = serde_json::to_vec(&v).unwrap();
            let started = std::time::Instant::now();
            if let Ok(stack) = parse_stack(&bytes) {
                // Whatever validates can be ordered and re-validated without trouble.
                let order = start_order(&stack);
                prop_assert_eq!(order.len(), stack.item_list_element.len());
                prop_assert!(validate(&stack).is_empty());
            }
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
    }
}
