//! The web view's pages as HTML, rendered purely from the same views `berth status`,
//! `berth hosts` and `berth events` print. Every value is escaped; no page shows an
//! environment value or a container's output, so no secret can reach one. States are
//! words first (`Ready`, `running`), coloured second; every link is a real `<a>`, so the
//! map works with a keyboard. Every URL is relative, so the view works under a proxy's
//! path prefix.

use std::fmt::Write as _;

use crate::events::Event;
use crate::spec::{Condition, RolloutStatus, StackStatus};
use crate::view::{
    cpus_cell, dash_if_empty, memory_cell, services_cell, DeploymentMap, HostView, PreviewView,
    SlotLine, StackLine,
};

/// Which page: its path, title and (for live pages) its stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Page {
    Map,
    Stacks,
    Stack(String),
    Hosts,
    Events,
    Preview,
}

impl Page {
    /// Its URL relative to the view's root.
    pub fn href(&self) -> String {
        match self {
            Page::Map => "./".to_owned(),
            Page::Stacks => "stacks".to_owned(),
            Page::Stack(id) => format!("stack?id={}", url_component(id)),
            Page::Hosts => "hosts".to_owned(),
            Page::Events => "events".to_owned(),
            Page::Preview => "preview".to_owned(),
        }
    }

    pub fn title(&self) -> String {
        match self {
            Page::Map => "Deployment map".to_owned(),
            Page::Stacks => "Stacks".to_owned(),
            Page::Stack(id) => format!("Stack {id}"),
            Page::Hosts => "Hosts".to_owned(),
            Page::Events => "Events".to_owned(),
            Page::Preview => "Preview a stack".to_owned(),
        }
    }

    /// The stream that keeps it current, relative to the view's root; `None` for a page
    /// that shows no cluster state (the preview form).
    pub fn live(&self) -> Option<String> {
        Some(match self {
            Page::Map => "live?page=map".to_owned(),
            Page::Stacks => "live?page=stacks".to_owned(),
            Page::Stack(id) => format!("live?page=stack&id={}", url_component(id)),
            Page::Hosts => "live?page=hosts".to_owned(),
            Page::Events => "live?page=events".to_owned(),
            Page::Preview => return None,
        })
    }

    /// The live page a stream's query names (`page`, and `id` for a stack).
    pub fn of_query(page: &str, id: Option<&str>) -> Option<Page> {
        Some(match (page, id) {
            ("map", _) => Page::Map,
            ("stacks", _) => Page::Stacks,
            ("stack", Some(id)) => Page::Stack(id.to_owned()),
            ("hosts", _) => Page::Hosts,
            ("events", _) => Page::Events,
            _ => return None,
        })
    }
}

/// The navigation, in order.
const NAV: [(&str, &str); 5] = [
    ("./", "Map"),
    ("stacks", "Stacks"),
    ("hosts", "Hosts"),
    ("events", "Events"),
    ("preview", "Preview"),
];

/// A whole page around `body` (for a live page, the part the stream replaces).
pub fn shell(page: &Page, body: &str) -> String {
    let mut nav = String::new();
    for (href, label) in NAV {
        let current = match page {
            Page::Stack(_) => label == "Stacks",
            _ => page.href() == href,
        };
        let aria = if current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{aria}>{label}</a>");
    }
    let (live_attr, conn, content) = match page.live() {
        Some(url) => (
            format!(" data-live=\"{}\"", esc(&url)),
            "<p id=\"conn\" class=\"conn\" role=\"status\" data-state=\"static\">Not live: \
             JavaScript is off, reload to update</p>",
            format!("<div id=\"live\">{body}</div>"),
        ),
        None => (String::new(), "", body.to_owned()),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · Berth</title>\n\
         <link rel=\"stylesheet\" href=\"assets/berth.css\">\n\
         <script src=\"assets/berth.js\" defer></script>\n</head>\n\
         <body{live_attr}>\n<a class=\"skip\" href=\"#main\">Skip to content</a>\n\
         <header>\n<a class=\"brand\" href=\"./\">Berth</a>\n\
         <nav aria-label=\"Pages\">{nav}</nav>\n{conn}\n</header>\n\
         <main id=\"main\">\n<h1>{title}</h1>\n{content}\n</main>\n</body>\n</html>\n",
        title = esc(&page.title()),
    )
}

/// The deployment map: the stacks, then one card per host with its services, then the
/// services that have no host.
pub fn map(map: &DeploymentMap, hosts: &[HostView], statuses: &[StackStatus]) -> String {
    let mut out = String::new();
    if map.stacks.is_empty() && map.hosts.is_empty() {
        return "<p class=\"empty\">No stacks and no hosts yet.</p>".to_owned();
    }
    out.push_str("<h2>Stacks</h2>\n");
    out.push_str(&stacks(&map.stacks, statuses));
    out.push_str("<h2>Hosts</h2>\n");
    if map.hosts.is_empty() {
        out.push_str(
            "<p class=\"empty\">No hosts: start an agent (berth agent) or berth up.</p>\n",
        );
    }
    out.push_str("<div class=\"hosts\">\n");
    for h in &map.hosts {
        let view = hosts.iter().find(|v| v.id == h.id);
        let anchor = format!("host-{}", h.id);
        let _ = write!(
            out,
            "<section class=\"host\" id=\"{a}\" aria-labelledby=\"{a}-name\">\n\
             <h3><a id=\"{a}-name\" href=\"#{a}\">{id}</a> {state}</h3>\n<dl class=\"facts\">\
             <dt>Address</dt><dd>{address}</dd>",
            a = esc(&anchor),
            id = esc(&h.id),
            state = badge(h.state, host_tone(h.state)),
            address = esc(h.address.as_deref().unwrap_or("-")),
        );
        if let Some(v) = view {
            let _ = write!(
                out,
                "<dt>CPU reserved/total</dt><dd>{}</dd><dt>Memory reserved/total</dt><dd>{}</dd>",
                esc(&cpus_cell(v)),
                esc(&memory_cell(v)),
            );
        }
        out.push_str("</dl>\n");
        if h.slots.is_empty() {
            out.push_str("<p class=\"empty\">No services.</p>\n");
        } else {
            out.push_str("<ul class=\"services\">\n");
            for s in &h.slots {
                out.push_str(&service_item(&h.id, s));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</div>\n");
    out.push_str(&unscheduled(map));
    out
}

/// One service on a host's card: its name (a link to its stack), state, health,
/// restarts, ports and what it connects to.
fn service_item(host: &str, s: &SlotLine) -> String {
    format!(
        "<li class=\"service\"><a id=\"{id}\" href=\"{href}\">{stack}/{name}</a> \
         {state} {health} <span class=\"restarts\">restarts {restarts}</span>\
         <dl><dt>Ports</dt><dd>{ports}</dd><dt>Connects to</dt><dd>{connects}</dd></dl></li>\n",
        id = esc(&format!("svc-{host}-{}-{}", s.stack, s.name)),
        href = esc(&Page::Stack(s.stack.clone()).href()),
        stack = esc(&s.stack),
        name = esc(&s.name),
        state = badge(&s.state, slot_tone(&s.state)),
        health = badge(&format!("health {}", s.health), health_tone(&s.health)),
        restarts = s.restarts,
        ports = esc(&dash_if_empty(s.ports.join(", "))),
        connects = esc(&dash_if_empty(s.connects.join(", "))),
    )
}

fn unscheduled(map: &DeploymentMap) -> String {
    if map.unscheduled.is_empty() {
        return String::new();
    }
    let mut out = "<h2>Unscheduled</h2>\n<ul class=\"unscheduled\">\n".to_owned();
    for u in &map.unscheduled {
        let _ = writeln!(
            out,
            "<li><a href=\"{}\">{}/{}</a>: {}</li>",
            esc(&Page::Stack(u.stack.clone()).href()),
            esc(&u.stack),
            esc(&u.service),
            esc(&dash_if_empty(u.reason.clone())),
        );
    }
    out.push_str("</ul>\n");
    out
}

/// The stacks page: each stack's phase, services running, revision, message and
/// rollout.
pub fn stacks(lines: &[StackLine], statuses: &[StackStatus]) -> String {
    if lines.is_empty() {
        return "<p class=\"empty\">No stacks yet.</p>".to_owned();
    }
    stacks_table(lines, statuses)
}

fn stacks_table(lines: &[StackLine], statuses: &[StackStatus]) -> String {
    let mut out = "<div class=\"scroll\"><table class=\"stacks\">\n<thead><tr><th>Stack</th>\
                   <th>Phase</th><th>Services</th><th>Revision</th><th>Message</th>\
                   <th>Rollout</th></tr></thead>\n<tbody>\n"
        .to_owned();
    for s in lines {
        let rollout = statuses
            .iter()
            .find(|st| st.stack == s.id)
            .and_then(|st| st.rollout.as_ref())
            .map_or_else(|| "-".to_owned(), rollout_text);
        let _ = writeln!(
            out,
            "<tr><td><a href=\"{href}\">{id}</a></td><td>{phase}</td><td>{services}</td>\
             <td>{rev}</td><td>{message}</td><td>{rollout}</td></tr>",
            href = esc(&Page::Stack(s.id.clone()).href()),
            id = esc(&s.id),
            phase = badge(&s.phase, phase_tone(&s.phase)),
            services = esc(&services_cell(s)),
            rev = s.revision.map_or_else(|| "-".to_owned(), |r| r.to_string()),
            message = esc(&s.message),
            rollout = esc(&rollout),
        );
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// `Progressing: 2/4 updated (revision 7 to 9)`, with failures and why it paused.
fn rollout_text(r: &RolloutStatus) -> String {
    let mut s = format!(
        "{}: {}/{} updated (revision {} to {})",
        r.state, r.updated, r.total, r.from_revision, r.to_revision
    );
    if r.failures > 0 {
        let _ = write!(s, ", {} failed", r.failures);
    }
    if !r.message.is_empty() {
        let _ = write!(s, "; {}", r.message);
    }
    s
}

/// What one stack's page shows.
pub struct StackPage<'a> {
    pub id: &'a str,
    /// Its line of the stack table, `None` when the stack is gone.
    pub line: Option<&'a StackLine>,
    pub status: Option<&'a StackStatus>,
    /// The map of this stack alone (with each slot's last exit).
    pub map: &'a DeploymentMap,
    /// Its recent events, oldest first.
    pub events: &'a [Event],
}

/// A stack's page: summary, problems with their JSON paths, conditions, services and
/// their replicas (with each one's last exit), unscheduled services, recent events.
pub fn stack(p: &StackPage<'_>) -> String {
    let Some(line) = p.line else {
        return format!(
            "<p class=\"empty\">There is no stack {} (yet): this page shows it once it is put.</p>",
            esc(p.id)
        );
    };
    let mut out = format!(
        "<dl class=\"facts summary\"><dt>Phase</dt><dd>{}</dd><dt>Services</dt><dd>{}</dd>\
         <dt>Revision</dt><dd>{}</dd><dt>Message</dt><dd>{}</dd>",
        badge(&line.phase, phase_tone(&line.phase)),
        esc(&services_cell(line)),
        line.revision
            .map_or_else(|| "-".to_owned(), |r| r.to_string()),
        esc(&dash_if_empty(line.message.clone())),
    );
    if let Some(r) = p.status.and_then(|st| st.rollout.as_ref()) {
        let _ = write!(out, "<dt>Rollout</dt><dd>{}</dd>", esc(&rollout_text(r)));
    }
    out.push_str("</dl>\n");
    if let Some(st) = p.status.filter(|st| !st.problems.is_empty()) {
        let _ = writeln!(
            out,
            "<h2>Problems ({})</h2>\n<ul class=\"problems\">",
            st.problems.len()
        );
        for problem in &st.problems {
            out.push_str(&problem_item(problem));
        }
        out.push_str("</ul>\n");
    }
    if let Some(st) = p.status.filter(|st| !st.conditions.is_empty()) {
        out.push_str(&conditions(&st.conditions));
    }
    out.push_str(&services(p));
    out.push_str(&unscheduled(p.map));
    out.push_str("<h2>Recent events</h2>\n");
    out.push_str(&events_table(p.events, 20, false));
    out
}

/// `itemListElement[0].image: required` as the path in `<code>`, then the message.
fn problem_item(problem: &str) -> String {
    // Problems read `path: message`; a path has no spaces, a message for the whole
    // document has no path.
    match problem.split_once(": ") {
        Some((path, message)) if !path.is_empty() && !path.contains(' ') => format!(
            "<li><code class=\"path\">{}</code>: {}</li>\n",
            esc(path),
            esc(message)
        ),
        _ => format!("<li>{}</li>\n", esc(problem)),
    }
}

fn conditions(conditions: &[Condition]) -> String {
    let mut out = "<h2>Conditions</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>Type</th>\
                   <th>Status</th><th>Reason</th><th>Message</th><th>Since</th></tr></thead>\n\
                   <tbody>\n"
        .to_owned();
    for c in conditions {
        let status = format!("{:?}", c.status);
        let tone = if status == "True" { "ok" } else { "bad" };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.type_),
            badge(&status, tone),
            esc(&c.reason),
            esc(&c.message),
            esc(&c.last_transition_time),
        );
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// Every service the status knows, then each replica where it runs.
fn services(p: &StackPage<'_>) -> String {
    let mut out = String::new();
    if let Some(st) = p.status.filter(|st| !st.services.is_empty()) {
        out.push_str(
            "<h2>Services</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>Service</th>\
             <th>Host</th><th>State</th><th>Health</th><th>Restarts</th><th>Message</th></tr>\
             </thead>\n<tbody>\n",
        );
        for (name, svc) in &st.services {
            let message = match (&svc.message, svc.exit_code) {
                (Some(m), Some(code)) => format!("{m} (exit code {code})"),
                (Some(m), None) => m.clone(),
                (None, Some(code)) => format!("exit code {code}"),
                (None, None) => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                svc.host
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), host_link),
                badge(&svc.state, slot_tone(&svc.state)),
                badge(&svc.health, health_tone(&svc.health)),
                svc.restarts,
                esc(&message),
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    let replicas: Vec<(&str, &SlotLine)> = p
        .map
        .hosts
        .iter()
        .flat_map(|h| h.slots.iter().map(move |s| (h.id.as_str(), s)))
        .collect();
    if replicas.is_empty() {
        return out;
    }
    out.push_str(
        "<h2>Replicas</h2>\n<div class=\"scroll\"><table>\n<thead><tr><th>Replica</th>\
         <th>Host</th><th>State</th><th>Health</th><th>Restarts</th><th>Image</th>\
         <th>Ports</th><th>Connects to</th><th>Last exit</th></tr></thead>\n<tbody>\n",
    );
    for (host, s) in replicas {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            host_link(host),
            badge(&s.state, slot_tone(&s.state)),
            badge(&s.health, health_tone(&s.health)),
            s.restarts,
            esc(&s.image),
            esc(&dash_if_empty(s.ports.join(", "))),
            esc(&dash_if_empty(s.connects.join(", "))),
            esc(&s
                .last_exit
                .as_ref()
                .map_or_else(|| "-".to_owned(), |t| t.summary())),
        );
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// A link to a host's card on the map.
fn host_link(host: &str) -> String {
    format!("<a href=\"./#host-{0}\">{0}</a>", esc(host))
}

/// The hosts page, as `berth hosts` lists them.
pub fn hosts(hosts: &[HostView]) -> String {
    if hosts.is_empty() {
        return "<p class=\"empty\">No hosts: start an agent (berth agent) or berth up.</p>"
            .to_owned();
    }
    let mut out = "<div class=\"scroll\"><table>\n<thead><tr><th>Host</th><th>State</th>\
                   <th>Address</th><th>Datacenter</th><th>Slots</th><th>CPU reserved/total</th>\
                   <th>Memory reserved/total</th><th>Labels</th><th>Agent</th><th>Docker</th>\
                   </tr></thead>\n<tbody>\n"
        .to_owned();
    for h in hosts {
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            host_link(&h.id),
            badge(h.state, host_tone(h.state)),
            esc(h.address.as_deref().unwrap_or("-")),
            esc(h.datacenter.as_deref().unwrap_or("-")),
            h.slots,
            esc(&cpus_cell(h)),
            esc(&memory_cell(h)),
            esc(&dash_if_empty(labels.join(", "))),
            esc(h.agent_version.as_deref().unwrap_or("-")),
            esc(h.docker_version.as_deref().unwrap_or("-")),
        );
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// The events page: the newest `limit` events, newest first.
pub fn events(events: &[Event], limit: usize) -> String {
    events_table(events, limit, true)
}

fn events_table(events: &[Event], limit: usize, with_stack: bool) -> String {
    if events.is_empty() {
        return "<p class=\"empty\">No events.</p>\n".to_owned();
    }
    let mut out = format!(
        "<p class=\"note\">Newest first; the latest {} of {}.</p>\n<div class=\"scroll\"><table>\n\
         <thead><tr><th>Time</th>{}<th>Service</th><th>Host</th><th>Reason</th><th>Message</th>\
         </tr></thead>\n<tbody>\n",
        limit.min(events.len()),
        events.len(),
        if with_stack { "<th>Stack</th>" } else { "" },
    );
    for e in events.iter().rev().take(limit) {
        let stack = if with_stack {
            format!(
                "<td><a href=\"{}\">{}</a></td>",
                esc(&Page::Stack(e.stack.clone()).href()),
                esc(&e.stack)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr><td><time datetime=\"{t}\">{t}</time></td>{stack}<td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(e.service.as_deref().unwrap_or("-")),
            esc(e.host.as_deref().unwrap_or("-")),
            esc(&e.reason),
            esc(&e.message),
            t = esc(&e.time),
        );
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// What the preview form was given back, to fill it in again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviewInput {
    pub id: String,
    pub spec: String,
}

/// What the preview found.
#[derive(Debug, Clone, PartialEq)]
pub enum PreviewOutcome {
    /// Every validation problem, as `path: message`.
    Invalid(Vec<String>),
    Placed(PreviewView),
}

/// The preview page: the form, then (after a submit) the problems or the placement.
pub fn preview(input: &PreviewInput, outcome: Option<&PreviewOutcome>) -> String {
    let mut out = format!(
        "<p>Paste or upload a stack (JSON, as for <code>berth apply</code>) to see every \
         problem in it, or where the scheduler would place each slot against the cluster as \
         it is now: the planner of <code>berth apply --dry-run</code>. Nothing is written.</p>\n\
         <form method=\"post\" action=\"preview\" class=\"preview\">\n\
         <label for=\"id\">Stack id</label>\n\
         <input id=\"id\" name=\"id\" required autocomplete=\"off\" value=\"{id}\">\n\
         <label for=\"file\">File</label>\n\
         <input id=\"file\" type=\"file\" accept=\".json,application/json\">\n\
         <label for=\"spec\">Stack JSON</label>\n\
         <textarea id=\"spec\" name=\"spec\" rows=\"14\" required spellcheck=\"false\">{spec}</textarea>\n\
         <button id=\"submit\" type=\"submit\">Preview</button>\n</form>\n",
        id = esc(&input.id),
        spec = esc(&input.spec),
    );
    match outcome {
        None => {}
        Some(PreviewOutcome::Invalid(problems)) => {
            let _ = writeln!(
                out,
                "<section id=\"result\" class=\"result\"><h2>{} problem(s): nothing would be \
                 placed</h2>\n<ul class=\"problems\">",
                problems.len()
            );
            for p in problems {
                out.push_str(&problem_item(p));
            }
            out.push_str("</ul>\n<p class=\"note\">Nothing was written.</p></section>\n");
        }
        Some(PreviewOutcome::Placed(v)) => {
            let _ = writeln!(
                out,
                "<section id=\"result\" class=\"result\"><h2>Placement of {}</h2>",
                esc(&v.stack)
            );
            out.push_str(
                "<div class=\"scroll\"><table class=\"placement\">\n<thead><tr><th>Service</th>\
                 <th>Replica</th><th>Host</th><th>Note</th></tr></thead>\n<tbody>\n",
            );
            for s in &v.slots {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&s.service),
                    s.replica,
                    host_link(&s.host),
                    esc(s.note.as_deref().unwrap_or("-")),
                );
            }
            for u in &v.unschedulable {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>-</td><td>{}</td><td>{}</td></tr>",
                    esc(&u.service),
                    badge("no host", "bad"),
                    esc(&u.reason),
                );
            }
            out.push_str("</tbody></table></div>\n");
            if v.rollouts.is_empty() {
                out.push_str(
                    "<p>Rollout: none (no slot changes its container on the host it runs on).</p>\n",
                );
            }
            for r in &v.rollouts {
                let _ = writeln!(
                    out,
                    "<h3>Rollout of {}, {}</h3>",
                    esc(&r.service),
                    esc(&r.order)
                );
                if let Some(why) = &r.fallback {
                    let _ = writeln!(
                        out,
                        "<p>start-first falls back to stop-first: {}</p>",
                        esc(why)
                    );
                }
                out.push_str("<ol>\n");
                for b in &r.batches {
                    let _ = writeln!(out, "<li>{}</li>", esc(&b.join(", ")));
                }
                out.push_str("</ol>\n");
            }
            out.push_str("<p class=\"note\">Nothing was written.</p></section>\n");
        }
    }
    out
}

/// A state as a word in a coloured box: the word carries it, the colour helps.
fn badge(text: &str, tone: &str) -> String {
    format!("<span class=\"badge {tone}\">{}</span>", esc(text))
}

fn phase_tone(phase: &str) -> &'static str {
    match phase {
        "Running" | "Succeeded" => "ok",
        "Pending" | "Progressing" => "warn",
        "Degraded" | "Failed" | "Invalid" => "bad",
        _ => "idle",
    }
}

fn host_tone(state: &str) -> &'static str {
    match state {
        "Ready" => "ok",
        "NotReady" => "bad",
        _ => "warn",
    }
}

fn slot_state_word(state: &str) -> &str {
    // `pulling 31% of 10.0 MB` is a pull.
    state.split_whitespace().next().unwrap_or(state)
}

fn slot_tone(state: &str) -> &'static str {
    match slot_state_word(state) {
        "running" | "completed" => "ok",
        "exited" | "failed" | "missing" | "dead" => "bad",
        _ => "warn",
    }
}

fn health_tone(health: &str) -> &'static str {
    match health.trim_start_matches("health ") {
        "healthy" => "ok",
        "unhealthy" => "bad",
        "starting" => "warn",
        _ => "idle",
    }
}

/// Text as HTML (also safe inside a double-quoted attribute). A carriage return goes:
/// a stream would split the page there.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A query value, percent-encoded (stack ids are DNS labels, but a key may hold anything).
fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{HostLine, Unscheduled};

    fn slot(stack: &str, name: &str, state: &str) -> SlotLine {
        SlotLine {
            stack: stack.into(),
            name: name.into(),
            state: state.into(),
            health: "healthy".into(),
            restarts: 2,
            ports: vec!["18080->80".into()],
            connects: vec!["db=10.0.0.1:15432".into()],
            image: "0123456789ab".into(),
            last_exit: None,
        }
    }

    fn one_host_map() -> DeploymentMap {
        DeploymentMap {
            stacks: vec![StackLine {
                id: "shop".into(),
                phase: "Progressing".into(),
                running: 1,
                completed: 0,
                services: 2,
                revision: Some(7),
                message: "1/2 containers running".into(),
            }],
            hosts: vec![HostLine {
                id: "h1".into(),
                address: Some("10.0.0.1".into()),
                state: "Cordoned",
                slots: vec![slot("shop", "web", "running")],
            }],
            unscheduled: vec![Unscheduled {
                stack: "shop".into(),
                service: "db".into(),
                reason: "no host has 4 CPUs free".into(),
            }],
        }
    }

    #[test]
    fn text_is_escaped_for_elements_and_attributes_and_loses_carriage_returns() {
        let cases = [
            ("plain", "plain"),
            ("<script>", "&lt;script&gt;"),
            ("a \"b\" & 'c'", "a &quot;b&quot; &amp; &#39;c&#39;"),
            ("line\r\nnext", "line\nnext"),
        ];
        for (input, want) in cases {
            assert_eq!(esc(input), want, "{input:?}");
        }
    }

    #[test]
    fn each_page_has_a_relative_url_and_each_live_page_a_stream() {
        let cases = [
            (Page::Map, "./", Some("live?page=map")),
            (Page::Stacks, "stacks", Some("live?page=stacks")),
            (
                Page::Stack("a b".into()),
                "stack?id=a%20b",
                Some("live?page=stack&id=a%20b"),
            ),
            (Page::Hosts, "hosts", Some("live?page=hosts")),
            (Page::Events, "events", Some("live?page=events")),
            (Page::Preview, "preview", None),
        ];
        for (page, href, live) in cases {
            assert_eq!(page.href(), href, "{page:?}");
            assert_eq!(page.live().as_deref(), live, "{page:?}");
        }
        assert_eq!(
            Page::of_query("stack", Some("shop")),
            Some(Page::Stack("shop".into()))
        );
        assert_eq!(Page::of_query("stack", None), None);
        assert_eq!(Page::of_query("preview", None), None);
    }

    #[test]
    fn the_shell_marks_the_current_page_and_names_its_stream() {
        let out = shell(&Page::Stack("shop".into()), "<p>body</p>");
        assert!(
            out.contains("<a href=\"stacks\" aria-current=\"page\">Stacks</a>"),
            "{out}"
        );
        assert!(
            out.contains("data-live=\"live?page=stack&amp;id=shop\""),
            "{out}"
        );
        assert!(out.contains("<div id=\"live\"><p>body</p></div>"), "{out}");
        assert!(out.contains("<title>Stack shop · Berth</title>"), "{out}");
        let form = shell(&Page::Preview, "<form></form>");
        assert!(!form.contains("data-live"), "{form}");
        assert!(!form.contains("id=\"conn\""), "{form}");
    }

    #[test]
    fn the_map_shows_each_host_its_state_in_words_and_its_services_as_links() {
        let hosts = [HostView {
            id: "h1".into(),
            state: "Cordoned",
            address: Some("10.0.0.1".into()),
            datacenter: None,
            labels: Default::default(),
            cpus: 4.0,
            memory_mb: 8192,
            cpus_reserved: 0.5,
            memory_mb_reserved: 512,
            slots: 1,
            agent_version: None,
            docker_version: None,
        }];
        let out = map(&one_host_map(), &hosts, &[]);
        for want in [
            "<section class=\"host\" id=\"host-h1\"",
            "<span class=\"badge warn\">Cordoned</span>",
            "<dd>10.0.0.1</dd>",
            "<dd>0.5/4</dd>",
            "<dd>512M/8G</dd>",
            "<a id=\"svc-h1-shop-web\" href=\"stack?id=shop\">shop/web</a>",
            "<span class=\"badge ok\">running</span>",
            "<span class=\"badge ok\">health healthy</span>",
            "restarts 2",
            "<dd>18080-&gt;80</dd>",
            "<dd>db=10.0.0.1:15432</dd>",
            "<a href=\"stack?id=shop\">shop/db</a>: no host has 4 CPUs free",
            "<span class=\"badge warn\">Progressing</span>",
            "1/2 services running",
        ] {
            assert!(out.contains(want), "missing {want:?} in:\n{out}");
        }
    }

    #[test]
    fn states_read_as_words_with_a_tone_that_only_helps() {
        let cases = [
            (phase_tone("Running"), "ok"),
            (phase_tone("Succeeded"), "ok"),
            (phase_tone("Progressing"), "warn"),
            (phase_tone("Invalid"), "bad"),
            (phase_tone("Unknown"), "idle"),
            (host_tone("Ready"), "ok"),
            (host_tone("Draining"), "warn"),
            (host_tone("NotReady"), "bad"),
            (slot_tone("running"), "ok"),
            (slot_tone("pulling 31% of 10.0 MB"), "warn"),
            (slot_tone("exited"), "bad"),
            (health_tone("health unhealthy"), "bad"),
            (health_tone("-"), "idle"),
        ];
        for (n, (got, want)) in cases.iter().enumerate() {
            assert_eq!(got, want, "case {n}");
        }
    }

    #[test]
    fn the_stacks_table_shows_each_stacks_rollout_progress() {
        let map = one_host_map();
        let status = StackStatus {
            stack: "shop".into(),
            observed_revision: 9,
            phase: crate::spec::Phase::Progressing,
            message: String::new(),
            problems: vec![],
            conditions: vec![],
            services: Default::default(),
            rollout: Some(RolloutStatus {
                state: "Progressing".into(),
                from_revision: 7,
                to_revision: 9,
                updated: 2,
                total: 4,
                failures: 1,
                message: String::new(),
                paused_by_operator: false,
            }),
        };
        let out = stacks(&map.stacks, &[status]);
        assert!(
            out.contains("<td>Progressing: 2/4 updated (revision 7 to 9), 1 failed</td>"),
            "{out}"
        );
        assert!(stacks(&map.stacks, &[]).contains("<td>-</td></tr>"));
    }

    #[test]
    fn a_problem_shows_its_json_path_apart_from_its_message() {
        let cases = [
            (
                "itemListElement[0].ports[0].containerPort: 70000 is not a port (1-65535)",
                "<li><code class=\"path\">itemListElement[0].ports[0].containerPort</code>: 70000 is not a port (1-65535)</li>\n",
            ),
            (
                "the spec is 5 bytes: too big",
                "<li>the spec is 5 bytes: too big</li>\n",
            ),
            ("no path at all", "<li>no path at all</li>\n"),
        ];
        for (problem, want) in cases {
            assert_eq!(problem_item(problem), want);
        }
    }

    #[test]
    fn a_missing_stack_says_so_and_events_come_newest_first() {
        let empty = DeploymentMap {
            stacks: vec![],
            hosts: vec![],
            unscheduled: vec![],
        };
        let out = stack(&StackPage {
            id: "gone",
            line: None,
            status: None,
            map: &empty,
            events: &[],
        });
        assert!(out.contains("There is no stack gone (yet)"), "{out}");
        let event = |time: &str, reason: &str| Event {
            time: time.into(),
            stack: "shop".into(),
            service: None,
            host: None,
            component: "controller".into(),
            reason: reason.into(),
            message: "m".into(),
        };
        let out = events(
            &[
                event("2026-12-03T10:00:00Z", "Placed"),
                event("2026-12-03T10:00:01Z", "Created"),
                event("2026-12-03T10:00:02Z", "Started"),
            ],
            2,
        );
        let started = out.find("Started").expect("newest shown");
        let created = out.find("Created").expect("second newest shown");
        assert!(started < created, "{out}");
        assert!(!out.contains("Placed"), "only the newest 2: {out}");
        assert!(out.contains("the latest 2 of 3"), "{out}");
    }

    #[test]
    fn a_stacks_page_shows_each_replicas_last_exit_but_not_its_output() {
        use crate::spec::{LastTermination, TerminationReason};
        let mut map = one_host_map();
        map.hosts[0].slots[0].last_exit = Some(LastTermination {
            exit_code: Some(7),
            reason: TerminationReason::Exited,
            message: String::new(),
            finished_at: Some("2026-12-03T11:47:29Z".into()),
            log_tail: "fatal: password hunter2 rejected".into(),
        });
        let line = map.stacks[0].clone();
        let out = stack(&StackPage {
            id: "shop",
            line: Some(&line),
            status: None,
            map: &map,
            events: &[],
        });
        assert!(out.contains("<td>code 7, exited</td>"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
    }

    #[test]
    fn the_preview_shows_each_slot_or_each_problem_and_says_nothing_was_written() {
        use crate::view::{PlacedSlot, UnplacedService};
        let input = PreviewInput {
            id: "shop".into(),
            spec: "{\"a\": \"<b>\"}".into(),
        };
        let placed = PreviewView {
            stack: "shop".into(),
            slots: vec![PlacedSlot {
                service: "web".into(),
                replica: 1,
                host: "h1".into(),
                note: Some("moves from h2 (drain)".into()),
            }],
            unschedulable: vec![UnplacedService {
                service: "db".into(),
                reason: "no host has 4 CPUs free".into(),
            }],
            rollouts: vec![],
        };
        let out = preview(&input, Some(&PreviewOutcome::Placed(placed)));
        assert!(
            out.contains("{&quot;a&quot;: &quot;&lt;b&gt;&quot;}</textarea>"),
            "{out}"
        );
        assert!(out.contains("<tr><td>web</td><td>1</td><td><a href=\"./#host-h1\">h1</a></td><td>moves from h2 (drain)</td></tr>"), "{out}");
        assert!(out.contains("<td>db</td><td>-</td><td><span class=\"badge bad\">no host</span></td><td>no host has 4 CPUs free</td>"), "{out}");
        assert!(out.contains("Nothing was written."), "{out}");
        let out = preview(
            &input,
            Some(&PreviewOutcome::Invalid(vec![
                "itemListElement[0].image: a service needs an image".into(),
            ])),
        );
        assert!(out.contains("1 problem(s)"), "{out}");
        assert!(
            out.contains("<code class=\"path\">itemListElement[0].image</code>"),
            "{out}"
        );
        assert!(out.contains("Nothing was written."), "{out}");
    }
}
