//! Stack validation: every problem in a parsed stack at once, each with the JSON path to
//! fix. Pure.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::bounds::{cpus_complaint, memory_complaint, Seconds};
use super::names::{is_dns_label, is_host_id, DNS_LABEL_RULE};
use super::order::{dependency_graph, find_cycles, first_index_by_name};
use super::problem::Problem;
use super::stack::{Command, HealthCheck, HostConstraints, Service, Stack, MAX_REPLICAS};
use super::vocabulary::{
    not_one_of, DependencyCondition, DeploymentMode, DesiredState, HealthCheckKind,
    PlacementStrategy, PullPolicy, RestartPolicy, ENDPOINT_TYPES, MOUNT_TYPES, PROTOCOLS,
};

/// A dense dependency graph has more cycles than anyone can read; the first few are enough
/// to start untangling it.
const MAX_CYCLES_REPORTED: usize = 16;

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
        if let Some(update) = &deployment.update {
            for (path, message) in super::update::problems("deployment.update", update) {
                problems.add(path, message);
            }
        }
        for (j, constraints) in deployment.host_constraints.iter().enumerate() {
            let at = format!("deployment.hostConstraints[{j}]");
            check_constraints(&at, constraints, &mut problems);
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
    if let Some(update) = &service.update {
        for (path, message) in super::update::problems(&format!("{at}.update"), update) {
            problems.add(path, message);
        }
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
    check_restart(stack, names, &at, service, problems);

    for (j, port) in service.ports.iter().enumerate() {
        let at = format!("{at}.ports[{j}]");
        problems.add_if(
            format!("{at}.containerPort"),
            port_complaint(port.container_port),
        );
        if let Some(host_port) = port.host_port {
            problems.add_if(format!("{at}.hostPort"), port_complaint(host_port));
        }
        if let Some(ip) = &port.host_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                let message = format!("{ip:?} is not an IP address");
                problems.add(format!("{at}.hostIp"), message);
            } else if port.host_port.is_none() {
                let message = "a hostIp needs a hostPort: a port without one is not published";
                problems.add(format!("{at}.hostIp"), message);
            }
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

    check_process(&at, service, problems);

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
        problems.add_if(
            format!("{at}.timeout"),
            seconds_complaint(Seconds::ACTION_TIMEOUT, action.timeout),
        );
    }

    if let Some(resources) = &service.resources {
        if let Some(cpus) = resources.cpus {
            problems.add_if(format!("{at}.resources.cpus"), cpus_complaint(cpus));
        }
        if let Some(mb) = resources.memory_mb {
            problems.add_if(format!("{at}.resources.memoryMb"), memory_complaint(mb));
        }
    }
    if let Some(constraints) = &service.host_constraints {
        check_constraints(&format!("{at}.hostConstraints"), constraints, problems);
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

/// `restartPolicy`, and what each `softwareRequirements` entry waits for: a spelled-out
/// `condition` that `waitForHealthy` contradicts, or a `completed` one on a dependency
/// that can never complete because it is always restarted.
fn check_restart(
    stack: &Stack,
    names: &HashMap<&str, usize>,
    at: &str,
    service: &Service,
    problems: &mut Problems,
) {
    if let Some(policy) = &service.restart_policy {
        problems.add_if(
            format!("{at}.restartPolicy"),
            RestartPolicy::complaint(policy),
        );
    }
    if let Some(policy) = &service.pull_policy {
        problems.add_if(format!("{at}.pullPolicy"), PullPolicy::complaint(policy));
    }
    for (j, requirement) in service.software_requirements.iter().enumerate() {
        let Some(written) = &requirement.condition else {
            continue;
        };
        let path = format!("{at}.softwareRequirements[{j}].condition");
        let Some(condition) = DependencyCondition::parse(written) else {
            problems.add_if(path, DependencyCondition::complaint(written));
            continue;
        };
        if let Some(wait) = requirement.wait_for_healthy {
            if wait != (condition == DependencyCondition::Healthy) {
                let message =
                    format!("condition {condition} contradicts waitForHealthy: {wait}; keep one");
                problems.add(path.clone(), message);
            }
        }
        let dependency = names
            .get(requirement.name.as_str())
            .and_then(|&i| stack.item_list_element.get(i));
        if let Some(dependency) = dependency {
            let policy = dependency.restart_policy();
            if condition == DependencyCondition::Completed && policy == RestartPolicy::Always {
                let message = format!(
                    "{:?} never completes: its restartPolicy is {policy}, so it is started \
                     again whenever it exits (give it on-failure or never)",
                    requirement.name
                );
                problems.add(path, message);
            }
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
    for (field, bound, value) in [
        ("interval", Seconds::CHECK_INTERVAL, check.interval),
        ("timeout", Seconds::CHECK_TIMEOUT, check.timeout),
        (
            "startPeriod",
            Seconds::CHECK_START_PERIOD,
            check.start_period,
        ),
    ] {
        problems.add_if(format!("{at}.{field}"), seconds_complaint(bound, value));
    }
}

/// How the process is started: `entrypoint`, `user`, `workingDir`, `capDrop`.
fn check_process(at: &str, service: &Service, problems: &mut Problems) {
    if service.entrypoint.is_some() && command_is_missing(service.entrypoint.as_ref()) {
        problems.add(
            format!("{at}.entrypoint"),
            "an entrypoint needs a program (leave it out to keep the image's)",
        );
    }
    if let Some(user) = &service.user {
        let mut parts = user.split(':');
        let well_formed = user.split(':').count() <= 2
            && parts.all(|p| !p.is_empty() && !p.chars().any(char::is_whitespace));
        if !well_formed {
            let message = format!("{user:?} is not a user (user, uid, user:group or uid:gid)");
            problems.add(format!("{at}.user"), message);
        }
    }
    if let Some(dir) = &service.working_dir {
        if !dir.starts_with('/') {
            let message = format!("{dir:?} is not an absolute path");
            problems.add(format!("{at}.workingDir"), message);
        }
    }
    for (j, capability) in service.cap_drop.iter().enumerate() {
        if !is_capability(capability) {
            let message =
                format!("{capability:?} is not a capability (like NET_RAW or CAP_NET_RAW, or ALL)");
            problems.add(format!("{at}.capDrop[{j}]"), message);
        }
    }
}

/// [`CAPABILITY_PATTERN`](super::stack::CAPABILITY_PATTERN), without a regex engine.
fn is_capability(s: &str) -> bool {
    if s == "ALL" {
        return true;
    }
    let name = s.strip_prefix("CAP_").unwrap_or(s);
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn check_constraints(at: &str, constraints: &HostConstraints, problems: &mut Problems) {
    if let Some(cpus) = constraints.min_cpu {
        problems.add_if(format!("{at}.minCPU"), cpus_complaint(cpus));
    }
    if let Some(mb) = constraints.min_memory {
        problems.add_if(format!("{at}.minMemory"), memory_complaint(mb));
    }
}

fn port_complaint(port: i64) -> Option<String> {
    (!(1..=65535).contains(&port)).then(|| format!("{port} is not a port (1-65535)"))
}

fn seconds_complaint(bound: Seconds, seconds: Option<f64>) -> Option<String> {
    bound.complaint(seconds?)
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

#[cfg(test)]
mod tests;
