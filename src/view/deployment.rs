//! The deployment map behind `berth status`: each stack's phase and progress, then per
//! host the services it runs with state, health, restarts, published ports and what each
//! connects to; for one stack, also how each slot's container last ended, with the end of
//! its output.

use std::collections::{BTreeMap, BTreeSet};

use super::table::{truncate, Table};
use crate::assignment::{Assignment, PortBinding, Slot};
use crate::controller::world::World;
use crate::report::SlotReport;
use crate::slot::slot_key;
use crate::spec::{LastTermination, Stack, TerminationReason};
use crate::store::keys;

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentMap {
    pub stacks: Vec<StackLine>,
    pub hosts: Vec<HostLine>,
    /// Services the scheduler could not place, with the reason.
    pub unscheduled: Vec<Unscheduled>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackLine {
    pub id: String,
    /// The status phase, or `Unknown` before the controller wrote a status.
    pub phase: String,
    /// Services whose every slot runs the current revision and is healthy (or has no
    /// check), over all services.
    pub running: usize,
    /// Services whose every slot is a one-shot service that completed at the current
    /// revision (`restartPolicy: on-failure` or `never`, exit 0).
    pub completed: usize,
    pub services: usize,
    /// The spec revision the status reflects.
    pub revision: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostLine {
    pub id: String,
    pub address: Option<String>,
    /// As `berth hosts` says: `Ready`, `NotReady`, `Cordoned`, `Draining` or `Removing`.
    pub state: &'static str,
    pub slots: Vec<SlotLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlotLine {
    pub stack: String,
    /// `service`, or `service.<replica>` when the service has several replicas.
    pub name: String,
    pub state: String,
    pub health: String,
    pub restarts: u32,
    /// Published ports, `host->container` (`/udp` when not tcp).
    pub ports: Vec<String>,
    /// Each dependency as `name=address` where an address was injected, else `name`
    /// (reached by service name on the stack network).
    pub connects: Vec<String>,
    /// The short ID of the image its container runs, `-` when none; marked `(drift)` when
    /// replicas of the service at the same spec revision run other images.
    pub image: String,
    /// How its container last ended on its own; only in the map of one stack, which has
    /// room for it.
    pub last_exit: Option<LastTermination>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unscheduled {
    pub stack: String,
    pub service: String,
    pub reason: String,
}

/// The map of every stack, or only of stack `only` (and the hosts running it).
/// What the map looks up per stack and per slot, grouped once per map: scanning every
/// assignment for each stack and every report for each slot made `berth status` and the
/// web view quadratic in the cluster.
struct Index<'w> {
    /// Stack id -> (host, its assignment of the stack).
    by_stack: BTreeMap<&'w str, Vec<(&'w str, &'w Assignment)>>,
    /// (stack, service, spec revision, spec hash) -> the image IDs its replicas report.
    images: BTreeMap<(&'w str, &'w str, i64, &'w str), BTreeSet<&'w str>>,
}

impl<'w> Index<'w> {
    fn of(w: &'w World) -> Index<'w> {
        let mut by_stack: BTreeMap<&str, Vec<(&str, &Assignment)>> = BTreeMap::new();
        for ((host, stack), (a, _)) in &w.assignments {
            by_stack.entry(stack).or_default().push((host, a));
        }
        let mut images: BTreeMap<_, BTreeSet<&str>> = BTreeMap::new();
        for r in w.reports.values() {
            if let Some(id) = &r.image_id {
                images
                    .entry(image_group(r))
                    .or_default()
                    .insert(id.as_str());
            }
        }
        Index { by_stack, images }
    }
}

fn image_group(r: &SlotReport) -> (&str, &str, i64, &str) {
    (&r.stack, &r.service, r.spec_revision, &r.spec_hash)
}

pub fn deployment_map(w: &World, only: Option<&str>) -> DeploymentMap {
    let index = Index::of(w);
    let wanted = |id: &str| only.is_none_or(|o| o == id);
    // Leniently: an invalid spec still tells which services depend on which.
    let specs: BTreeMap<&str, Stack> = w
        .stacks
        .iter()
        .filter(|(id, _)| wanted(id))
        .map(|(id, (_, raw))| (id.as_str(), serde_json::from_slice(raw).unwrap_or_default()))
        .collect();
    let mut ids: Vec<&String> = w.stacks.keys().chain(w.statuses.keys()).collect();
    ids.sort();
    ids.dedup();
    let stacks = ids
        .into_iter()
        .filter(|id| wanted(id))
        .map(|id| stack_line(w, &index, specs.get(id.as_str()), id))
        .collect();

    let mut hosts: BTreeMap<&str, HostLine> = BTreeMap::new();
    if only.is_none() {
        // Every registered host shows, idle or not: an empty host is news too.
        for (id, h) in &w.hosts {
            hosts.insert(id, host_line(w, id, Some(h.address.clone())));
        }
    }
    let mut ordered: Vec<(&str, u32, &str, u32, SlotLine)> = Vec::new();
    for ((host, stack), (a, _)) in &w.assignments {
        if !wanted(stack) {
            continue;
        }
        hosts
            .entry(host)
            .or_insert_with(|| host_line(w, host, w.hosts.get(host).map(|h| h.address.clone())));
        for slot in &a.slots {
            ordered.push((
                host,
                slot.order,
                &slot.service,
                slot.replica,
                slot_line(
                    w,
                    &index,
                    specs.get(stack.as_str()),
                    host,
                    stack,
                    slot,
                    only.is_some(),
                ),
            ));
        }
    }
    // Dependencies first within a stack, as they start.
    ordered.sort_by(|a, b| (a.0, &a.4.stack, a.1, a.2, a.3).cmp(&(b.0, &b.4.stack, b.1, b.2, b.3)));
    for (host, _, _, _, line) in ordered {
        if let Some(h) = hosts.get_mut(host) {
            h.slots.push(line);
        }
    }

    let unscheduled = w
        .statuses
        .iter()
        .filter(|(id, _)| wanted(id))
        .filter_map(|(id, (st, _))| Some((id, st.as_ref()?)))
        .flat_map(|(id, st)| {
            st.services
                .iter()
                .filter(|(_, svc)| svc.host.is_none())
                .map(|(name, svc)| Unscheduled {
                    stack: id.clone(),
                    service: name.clone(),
                    reason: svc.message.clone().unwrap_or_default(),
                })
        })
        .collect();

    DeploymentMap {
        stacks,
        hosts: hosts.into_values().collect(),
        unscheduled,
    }
}

fn host_line(w: &World, id: &str, address: Option<String>) -> HostLine {
    HostLine {
        id: id.to_owned(),
        address,
        state: super::hosts::state(w, id),
        slots: Vec::new(),
    }
}

fn stack_line(w: &World, index: &Index, spec: Option<&Stack>, id: &str) -> StackLine {
    let status = w.statuses.get(id).and_then(|(st, _)| st.as_ref());
    // Per service: (slots, slots available, slots completed), at their assignment's
    // revision. A container still running the previous revision does not count: the
    // counter shows convergence.
    let mut slots: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for name in spec
        .iter()
        .flat_map(|st| st.item_list_element.iter().map(|svc| svc.name.as_str()))
        .chain(
            status
                .iter()
                .flat_map(|st| st.services.keys().map(String::as_str)),
        )
    {
        slots.entry(name).or_default();
    }
    for (host, a) in index.by_stack.get(id).into_iter().flatten() {
        for slot in &a.slots {
            let counts = slots.entry(slot.service.as_str()).or_default();
            counts.0 += 1;
            let current =
                report_of(w, host, id, slot).filter(|r| r.spec_revision == a.spec_revision);
            counts.1 += usize::from(current.is_some_and(|r| r.is_available()));
            counts.2 += usize::from(current.is_some_and(|r| r.is_completed()));
        }
    }
    let running = slots
        .values()
        .filter(|(all, ok, _)| *all > 0 && all == ok)
        .count();
    let completed = slots
        .values()
        .filter(|(all, _, done)| *all > 0 && all == done)
        .count();
    StackLine {
        id: id.to_owned(),
        phase: status.map_or("Unknown", |st| st.phase.as_str()).to_owned(),
        running,
        completed,
        services: slots.len(),
        revision: status.map(|st| st.observed_revision),
        message: status.map_or_else(
            || "no status yet: is a controller running?".to_owned(),
            |st| st.message.clone(),
        ),
    }
}

/// The report of `slot` of `stack` on `host`, looked up by its key.
fn report_of<'w>(w: &'w World, host: &str, stack: &str, slot: &Slot) -> Option<&'w SlotReport> {
    w.reports
        .get(&keys::report(
            host,
            stack,
            &slot_key(&slot.service, slot.replica),
        ))
        .filter(|r| r.host == host && r.is_for_assigned(stack, slot))
}

fn slot_line(
    w: &World,
    index: &Index,
    spec: Option<&Stack>,
    host: &str,
    stack: &str,
    slot: &Slot,
    with_last_exit: bool,
) -> SlotLine {
    let report = report_of(w, host, stack, slot);
    let spec = spec.and_then(|st| {
        st.item_list_element
            .iter()
            .find(|svc| svc.name == slot.service)
    });
    let replicated = slot.replica > 1 || spec.is_some_and(|svc| svc.replica_count() > 1);
    let connects = spec
        .map(|svc| {
            svc.dependencies()
                .into_iter()
                .map(|dep| connection(dep, &slot.container.env))
                .collect()
        })
        .unwrap_or_default();
    SlotLine {
        stack: stack.to_owned(),
        name: if replicated {
            slot.key()
        } else {
            slot.service.clone()
        },
        state: report.map_or_else(|| "pending".to_owned(), slot_state),
        health: report.map_or_else(|| "-".to_owned(), |r| r.health.as_str().to_owned()),
        restarts: report.map_or(0, |r| r.restarts),
        ports: slot.container.ports.iter().filter_map(published).collect(),
        connects,
        image: report.map_or_else(|| "-".to_owned(), |r| image_cell(index, r)),
        last_exit: report
            .and_then(|r| r.last_termination.clone())
            .filter(|_| with_last_exit),
    }
}

/// The state, with a pull's progress while the image comes in (`pulling 31% of 10.0 MB`).
fn slot_state(r: &SlotReport) -> String {
    match (r.state, r.pull) {
        (crate::report::SlotState::Pulling, Some(p)) if p.bytes_total > 0 => format!(
            "pulling {}% of {:.1} MB",
            p.bytes_done.saturating_mul(100) / p.bytes_total,
            p.bytes_total as f64 / 1e6
        ),
        _ => r.state.as_str().to_owned(),
    }
}

/// The report's short image ID, marked when the service's other replicas with the same spec
/// run another image.
fn image_cell(index: &Index, r: &SlotReport) -> String {
    let Some(id) = &r.image_id else {
        return "-".to_owned();
    };
    let short = id.strip_prefix("sha256:").unwrap_or(id);
    let short = short.get(..12).unwrap_or(short);
    let drift = index
        .images
        .get(&image_group(r))
        .is_some_and(|ids| ids.iter().any(|other| other != id));
    if drift {
        format!("{short} (drift)")
    } else {
        short.to_owned()
    }
}

fn published(p: &PortBinding) -> Option<String> {
    let host = p.host_port?;
    let proto = if p.protocol == "tcp" {
        String::new()
    } else {
        format!("/{}", p.protocol)
    };
    Some(format!("{host}->{}{proto}", p.container_port))
}

/// How a service reaches dependency `dep`: the injected `<DEP>_URL`, else
/// `<DEP>_HOST:<DEP>_PORT`, else only its name on the stack network.
fn connection(dep: &str, env: &BTreeMap<String, String>) -> String {
    let prefix = crate::assignment::env_prefix(dep);
    if let Some(url) = env.get(&format!("{prefix}_URL")) {
        return format!("{dep}={}", redact(url));
    }
    match (
        env.get(&format!("{prefix}_HOST")),
        env.get(&format!("{prefix}_PORT")),
    ) {
        (Some(h), Some(p)) => format!("{dep}={h}:{p}"),
        _ => dep.to_owned(),
    }
}

/// A connection string with its secrets replaced by `***`: the password of a URL's
/// `user:password@`, and the value of any `password=`/`secret=`/`token=`-like pair. A
/// terminal is often shared or recorded; the address is what an operator needs.
pub fn redact(s: &str) -> String {
    let mut out = s.to_owned();
    if let Some(scheme) = out.find("://") {
        let start = scheme + 3;
        let end = out[start..].find('/').map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@') {
            if let Some(colon) = out[start..start + at].find(':') {
                out.replace_range(start + colon + 1..start + at, "***");
            }
        }
    }
    let separators = [';', '&', '?'];
    let mut redacted = String::with_capacity(out.len());
    for piece in out.split_inclusive(separators) {
        let pair = piece.trim_end_matches(separators);
        match pair.split_once('=') {
            Some((k, _)) if is_secret_name(k) => {
                redacted.push_str(k);
                redacted.push_str("=***");
            }
            _ => redacted.push_str(pair),
        }
        redacted.push_str(&piece[pair.len()..]);
    }
    redacted
}

fn is_secret_name(key: &str) -> bool {
    let k = key.trim().to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key"]
        .iter()
        .any(|w| k.contains(w))
}

/// `2/3 services running`, and how many completed when any did.
pub fn services_cell(s: &StackLine) -> String {
    let running = format!("{}/{} services running", s.running, s.services);
    match s.completed {
        0 => running,
        n => format!("{running}, {n} completed"),
    }
}

/// The map as text for a `width`-column terminal.
pub fn render(map: &DeploymentMap, width: usize) -> String {
    let mut out = String::new();
    if map.stacks.is_empty() && map.hosts.is_empty() {
        return "no stacks and no hosts yet\n".to_owned();
    }
    if map.stacks.is_empty() {
        out.push_str("no stacks\n");
    } else {
        let mut t = Table::new(&["STACK", "PHASE", "SERVICES", "REV", "MESSAGE"]);
        for s in &map.stacks {
            t.row(vec![
                s.id.clone(),
                s.phase.clone(),
                services_cell(s),
                s.revision.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                s.message.clone(),
            ]);
        }
        out.push_str(&t.render(width));
    }
    for h in &map.hosts {
        out.push('\n');
        let heading = format!(
            "HOST {}  {}  {}",
            h.id,
            h.address.as_deref().unwrap_or("-"),
            h.state
        );
        out.push_str(&truncate(&heading, width));
        out.push('\n');
        if h.slots.is_empty() {
            out.push_str("  (no services)\n");
            continue;
        }
        let mut t = Table::new(&[
            "SERVICE",
            "STATE",
            "HEALTH",
            "RESTARTS",
            "IMAGE",
            "PORTS",
            "CONNECTS TO",
        ])
        .indented(2);
        for s in &h.slots {
            t.row(vec![
                format!("{}/{}", s.stack, s.name),
                s.state.clone(),
                s.health.clone(),
                s.restarts.to_string(),
                s.image.clone(),
                dash_if_empty(s.ports.join(",")),
                dash_if_empty(s.connects.join(", ")),
            ]);
        }
        // One line per row after the header: a slot's last exit goes under its row.
        let table = t.render(width);
        let mut lines = table.lines();
        if let Some(header) = lines.next() {
            out.push_str(header);
            out.push('\n');
        }
        for (line, s) in lines.zip(&h.slots) {
            out.push_str(line);
            out.push('\n');
            if let Some(t) = &s.last_exit {
                out.push_str(&last_exit_lines(t, width));
            }
        }
    }
    if !map.unscheduled.is_empty() {
        out.push_str("\nUNSCHEDULED\n");
        let mut t = Table::new(&["SERVICE", "REASON"]).indented(2);
        for u in &map.unscheduled {
            t.row(vec![format!("{}/{}", u.stack, u.service), u.reason.clone()]);
        }
        out.push_str(&t.render(width));
    }
    out
}

/// A slot's last termination, under its row: `last exit: code 7 (exited) at <time>`,
/// with what it means when the reason says less (`: out of memory (limit 8 MB)`), then
/// its log tail, each line indented and cut to `width`.
fn last_exit_lines(t: &LastTermination, width: usize) -> String {
    let code = t
        .exit_code
        .map_or_else(|| "no exit code".to_owned(), |c| format!("code {c}"));
    let at = t
        .finished_at
        .as_deref()
        .map(|s| format!(" at {}", to_the_second(s)))
        .unwrap_or_default();
    let mut head = format!("    last exit: {code} ({}){at}", t.reason.as_str());
    if t.reason != TerminationReason::Exited {
        head.push_str(": ");
        head.push_str(&t.message);
    }
    let mut out = truncate(&head, width);
    out.push('\n');
    for line in t.log_tail.lines() {
        out.push_str(&truncate(&format!("      {}", printable(line)), width));
        out.push('\n');
    }
    out
}

/// Docker's nanosecond RFC 3339 time to the second; as it is when it cannot be read.
fn to_the_second(rfc3339: &str) -> String {
    humantime::parse_rfc3339(rfc3339)
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// A line of a container's output safe to print in a terminal: colour codes (`ESC [ ...
/// m`) dropped, a tab a space, and any other control character a `?`, so a log cannot
/// move the cursor or clear the screen of whoever reads the status.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                // Parameters and intermediates, up to the final byte (@ to ~).
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// `-` for an empty cell.
pub fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{kv, world};
    use super::*;
    use crate::store::keys;
    use serde_json::{json, Value};

    fn host(id: &str, address: &str) -> crate::store::Kv {
        kv(keys::host(id), json!({"id": id, "address": address}))
    }

    /// A stack whose `app` depends on `db` (published 15432, with a URL template) and on
    /// `cache` (unpublished, reached by name); `web` has two replicas.
    fn shop() -> crate::store::Kv {
        kv(
            keys::stack("shop"),
            json!({"itemListElement": [
                {"name": "db", "image": "pg"},
                {"name": "cache", "image": "redis"},
                {"name": "app", "image": "app", "requirements": ["cache"],
                 "softwareRequirements": [{"name": "db"}]},
                {"name": "web", "image": "web", "replicas": 2}
            ]}),
        )
    }

    fn slot(service: &str, replica: u32, order: u32, env: Value, ports: Value) -> Value {
        json!({"service": service, "replica": replica, "order": order,
               "container": {"image": "x", "env": env, "ports": ports}})
    }

    fn assignment(host: &str, slots: Vec<Value>) -> crate::store::Kv {
        kv(
            keys::assignment(host, "shop"),
            json!({"stack": "shop", "specRevision": 7, "desiredState": "running",
                   "network": {"name": "berth-shop", "driver": "bridge"}, "slots": slots}),
        )
    }

    fn report(
        host: &str,
        slot: &str,
        state: &str,
        health: &str,
        restarts: u32,
    ) -> crate::store::Kv {
        let (service, replica) = slot.split_once('.').unwrap();
        kv(
            keys::report(host, "shop", slot),
            json!({"stack": "shop", "service": service, "replica": replica.parse::<u32>().unwrap(),
                   "host": host, "specRevision": 7, "specHash": "h", "state": state,
                   "health": health, "restarts": restarts}),
        )
    }

    fn status(services: Value) -> crate::store::Kv {
        kv(
            keys::status("shop"),
            json!({"stack": "shop", "observedRevision": 7, "phase": "Progressing",
                   "message": "3/5 containers running", "services": services}),
        )
    }

    fn converging_shop() -> Vec<crate::store::Kv> {
        vec![
            shop(),
            host("h1", "10.0.0.1"),
            host("idle", "10.0.0.9"),
            assignment(
                "h1",
                vec![
                    slot(
                        "db",
                        1,
                        0,
                        json!({}),
                        json!([{"containerPort": 5432, "hostPort": 15432, "protocol": "tcp"}]),
                    ),
                    slot(
                        "cache",
                        1,
                        0,
                        json!({}),
                        json!([{"containerPort": 6379, "protocol": "tcp"}]),
                    ),
                    slot(
                        "app",
                        1,
                        1,
                        json!({"DB_HOST": "10.0.0.1", "DB_PORT": "15432",
                               "DB_URL": "postgres://shop:hunter2@10.0.0.1:15432/shop"}),
                        json!([{"containerPort": 53, "hostPort": 18053, "protocol": "udp"}]),
                    ),
                ],
            ),
            // h2 holds slots but its registration lease is gone.
            assignment(
                "h2",
                vec![
                    slot("web", 1, 0, json!({}), json!([])),
                    slot("web", 2, 0, json!({}), json!([])),
                ],
            ),
            report("h1", "db.1", "running", "healthy", 0),
            report("h1", "cache.1", "running", "none", 0),
            report("h1", "app.1", "running", "starting", 2),
            report("h2", "web.1", "running", "none", 0),
            status(json!({
                "db": {"host": "h1", "state": "running", "health": "healthy", "restarts": 0},
                "cache": {"host": "h1", "state": "running", "health": "none", "restarts": 0},
                "app": {"host": "h1", "state": "running", "health": "starting", "restarts": 2},
                "web": {"host": "h2", "state": "pending", "health": "none", "restarts": 0},
                "extra": {"state": "pending", "health": "none", "restarts": 0,
                          "message": "no ready host has 2 cpus free"}
            })),
        ]
    }

    #[test]
    fn deployment_map_cases() {
        let map = deployment_map(&world(&converging_shop()), None);
        let h1 = map.hosts.iter().find(|h| h.id == "h1").unwrap();
        let h2 = map.hosts.iter().find(|h| h.id == "h2").unwrap();
        let app = h1.slots.iter().find(|s| s.name == "app").unwrap();
        let db = h1.slots.iter().find(|s| s.name == "db").unwrap();
        let cases: Vec<(&str, bool)> = vec![
            (
                "a converging stack counts services running and healthy",
                map.stacks[0].running == 2 && map.stacks[0].services == 5,
            ),
            ("the status phase and revision show", map.stacks[0].phase == "Progressing" && map.stacks[0].revision == Some(7)),
            ("a registered host is ready with its address", h1.state == "Ready" && h1.address.as_deref() == Some("10.0.0.1")),
            ("a host with slots but no registration is not ready", h2.state == "NotReady" && h2.address.is_none()),
            ("an idle registered host still shows", map.hosts.iter().any(|h| h.id == "idle" && h.slots.is_empty())),
            (
                "dependencies start first on a host",
                h1.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>() == ["cache", "db", "app"],
            ),
            (
                "a dependency with an injected URL shows it, password hidden; one without shows its name",
                app.connects == ["cache", "db=postgres://shop:***@10.0.0.1:15432/shop"],
            ),
            ("published ports show as host->container", db.ports == ["15432->5432"]),
            ("udp ports say so", app.ports == ["18053->53/udp"]),
            ("unpublished ports do not show", h1.slots.iter().find(|s| s.name == "cache").unwrap().ports.is_empty()),
            ("restarts and health come from the agent's report", app.restarts == 2 && app.health == "starting"),
            (
                "replicas are named service.n",
                h2.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>() == ["web.1", "web.2"],
            ),
            (
                "a slot without a report is pending",
                h2.slots[1].state == "pending" && h2.slots[1].health == "-",
            ),
            (
                "an unplaced service lists with its reason",
                map.unscheduled
                    == [Unscheduled {
                        stack: "shop".into(),
                        service: "extra".into(),
                        reason: "no ready host has 2 cpus free".into(),
                    }],
            ),
        ];
        for (name, ok) in cases {
            assert!(ok, "{name}: {map:#?}");
        }
    }

    #[test]
    fn a_service_still_running_the_previous_revision_does_not_count_as_running() {
        let mut kvs = converging_shop();
        for kv in kvs
            .iter_mut()
            .filter(|kv| kv.key.starts_with(keys::REPORTS))
        {
            let mut r: Value = serde_json::from_slice(&kv.value).unwrap();
            r["specRevision"] = json!(6);
            kv.value = r.to_string().into_bytes();
        }
        let map = deployment_map(&world(&kvs), None);
        assert_eq!((map.stacks[0].running, map.stacks[0].services), (0, 5));
    }

    #[test]
    fn a_one_shot_service_that_completed_counts_as_completed_not_running() {
        let mut kvs = converging_shop();
        for kv in kvs.iter_mut().filter(|kv| kv.key.ends_with("/cache.1")) {
            let mut r: Value = serde_json::from_slice(&kv.value).unwrap();
            r["state"] = json!("completed");
            kv.value = r.to_string().into_bytes();
        }
        let map = deployment_map(&world(&kvs), None);
        let s = &map.stacks[0];
        assert_eq!((s.running, s.completed, s.services), (1, 1, 5));
        let h1 = map.hosts.iter().find(|h| h.id == "h1").unwrap();
        let cache = h1.slots.iter().find(|s| s.name == "cache").unwrap();
        assert_eq!(cache.state, "completed");
        let text = render(&map, 120);
        assert!(text.contains("1/5 services running, 1 completed"), "{text}");
    }

    #[test]
    fn filtering_by_stack_shows_only_its_stack_and_hosts() {
        let mut kvs = converging_shop();
        kvs.push(kv(
            keys::stack("other"),
            json!({"itemListElement": [{"name": "x", "image": "x"}]}),
        ));
        let all = deployment_map(&world(&kvs), None);
        assert_eq!(all.stacks.len(), 2);
        let other = deployment_map(&world(&kvs), Some("other"));
        assert_eq!(other.stacks.len(), 1);
        assert_eq!(other.stacks[0].phase, "Unknown", "no status written yet");
        assert_eq!(other.stacks[0].services, 1);
        assert!(
            other.hosts.is_empty(),
            "idle hosts only show in the full map"
        );
        assert!(other.unscheduled.is_empty());
        let shop = deployment_map(&world(&kvs), Some("shop"));
        assert_eq!(
            shop.hosts.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["h1", "h2"]
        );
    }

    #[test]
    fn redact_hides_passwords_and_secret_parameters_but_keeps_addresses() {
        let cases = [
            (
                "no secret",
                "redis://10.0.0.2:16379",
                "redis://10.0.0.2:16379",
            ),
            (
                "user without password",
                "postgres://shop@db:5432/x",
                "postgres://shop@db:5432/x",
            ),
            (
                "url password",
                "postgres://u:p@ss@db:5432/x",
                "postgres://u:***@db:5432/x",
            ),
            (
                "query secret",
                "http://h:1/x?user=a&password=b",
                "http://h:1/x?user=a&password=***",
            ),
            (
                "semicolon pairs",
                "Server=db;Uid=sa;Pwd=secret;",
                "Server=db;Uid=sa;Pwd=***;",
            ),
            ("api key", "http://h/?api_key=abc", "http://h/?api_key=***"),
        ];
        for (name, input, want) in cases {
            assert_eq!(redact(input), want, "{name}");
        }
    }

    #[test]
    fn rendered_map_fits_eighty_columns_and_shows_the_counter() {
        let mut kvs = converging_shop();
        kvs.push(assignment(
            "h3",
            vec![slot(
                "app",
                1,
                1,
                json!({"DB_URL": format!("postgres://10.0.0.1:15432/{}", "x".repeat(120)), "CACHE_HOST": "10.0.0.3", "CACHE_PORT": "16379"}),
                json!([]),
            )],
        ));
        let text = render(&deployment_map(&world(&kvs), None), 80);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} chars: {line}",
                line.chars().count()
            );
        }
        let expected = [
            "2/5 services running",
            "HOST h1  10.0.0.1  Ready",
            "HOST h2  -  NotReady",
            "HOST idle  10.0.0.9  Ready\n  (no services)",
            "shop/web.2",
            "cache=10.0.0.3:16379",
            "…",
            "UNSCHEDULED",
            "shop/extra  no ready host has 2 cpus free",
        ];
        for want in expected {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn rendering_nothing_says_so() {
        let empty = deployment_map(&World::default(), None);
        assert_eq!(render(&empty, 80), "no stacks and no hosts yet\n");
        let idle = deployment_map(&world(&[host("h1", "10.0.0.1")]), None);
        assert!(render(&idle, 80).starts_with("no stacks\n"));
    }

    #[test]
    fn a_pull_shows_its_progress_and_replicas_on_other_images_are_marked() {
        let with = |slot: &str, extra: Value| {
            let (service, replica) = slot.split_once('.').unwrap();
            let mut r = json!({"stack": "shop", "service": service,
                "replica": replica.parse::<u32>().unwrap(), "host": "h2",
                "specRevision": 7, "specHash": "h", "state": "running", "health": "none",
                "restarts": 0});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            kv(keys::report("h2", "shop", slot), r)
        };
        let kvs = vec![
            shop(),
            host("h2", "10.0.0.2"),
            assignment(
                "h2",
                vec![
                    slot("web", 1, 0, json!({}), json!([])),
                    slot("web", 2, 0, json!({}), json!([])),
                    slot("db", 1, 0, json!({}), json!([])),
                ],
            ),
            with("web.1", json!({"imageId": "sha256:aaaaaaaaaaaaffff"})),
            with("web.2", json!({"imageId": "sha256:bbbbbbbbbbbbffff"})),
            with(
                "db.1",
                json!({"state": "pulling", "pull": {"bytesDone": 31_000_000, "bytesTotal": 100_000_000}}),
            ),
        ];
        let map = deployment_map(&world(&kvs), None);
        let h2 = &map.hosts[0];
        let line = |name: &str| h2.slots.iter().find(|s| s.name == name).unwrap();
        assert_eq!(line("web.1").image, "aaaaaaaaaaaa (drift)");
        assert_eq!(line("web.2").image, "bbbbbbbbbbbb (drift)");
        assert_eq!(line("db").state, "pulling 31% of 100.0 MB");
        assert_eq!(line("db").image, "-");
        let text = render(&map, 120);
        assert!(
            text.contains("IMAGE") && text.contains("pulling 31% of 100.0 MB"),
            "{text}"
        );
    }

    #[test]
    fn the_map_of_one_stack_shows_how_each_slot_last_ended_under_it() {
        let mut kvs = converging_shop();
        for kv in kvs.iter_mut().filter(|kv| kv.key.ends_with("/app.1")) {
            let mut r: Value = serde_json::from_slice(&kv.value).unwrap();
            r["lastTermination"] = json!({
                "exitCode": 137, "reason": "oom-killed",
                "message": "out of memory (limit 8 MB)",
                "finishedAt": "2026-12-03T11:47:29.513259686Z",
                "logTail": format!("allocating\n\x1b[31mred\x1b[0m\tand a\rbell\n{}", "z".repeat(200))
            });
            kv.value = r.to_string().into_bytes();
        }
        let one = render(&deployment_map(&world(&kvs), Some("shop")), 80);
        let lines: Vec<&str> = one.lines().collect();
        let row = lines
            .iter()
            .position(|l| l.trim_start().starts_with("shop/app "))
            .unwrap_or_else(|| panic!("no app row in:\n{one}"));
        assert_eq!(
            lines[row + 1],
            "    last exit: code 137 (oom-killed) at 2026-12-03T11:47:29Z: out of memory (li…"
        );
        assert_eq!(lines[row + 2], "      allocating");
        assert_eq!(
            lines[row + 3],
            "      red and a?bell",
            "colour codes dropped, control characters made harmless"
        );
        assert!(lines[row + 4].starts_with("      zzz") && lines[row + 4].ends_with('…'));
        for line in &lines {
            assert!(line.chars().count() <= 80, "{line}");
        }
        assert!(
            !lines[row + 5].starts_with("      "),
            "the tail ends there:\n{one}"
        );

        let all = render(&deployment_map(&world(&kvs), None), 80);
        assert!(
            !all.contains("last exit"),
            "the whole map stays one line per slot"
        );
    }
}
