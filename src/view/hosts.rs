//! The host list behind `berth hosts`: readiness, where each host is, its capacity and
//! how much of it the slots placed there reserve.

use std::collections::BTreeMap;

use serde::Serialize;

use super::table::Table;
use crate::controller::world::World;

/// One host as `berth hosts -o json` prints it. Every field is always present (`null`
/// when unknown), so scripts can rely on the shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    pub id: String,
    /// See [`state`].
    pub state: &'static str,
    pub address: Option<String>,
    pub datacenter: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpus: f64,
    pub memory_mb: u64,
    /// What the resource limits of the slots placed here add up to.
    pub cpus_reserved: f64,
    pub memory_mb_reserved: u64,
    /// Containers (stack, service, replica) placed here.
    pub slots: usize,
    pub agent_version: Option<String>,
    pub docker_version: Option<String>,
}

/// `Ready` while registered, `Cordoned`, `Draining` or `Removing` while an operator holds
/// it (`berth host`), `NotReady` when only assignments still name it (its lease is gone).
pub fn state(w: &World, id: &str) -> &'static str {
    if !w.hosts.contains_key(id) {
        return "NotReady";
    }
    if w.removing(id) {
        return "Removing";
    }
    match w.maintenance.get(id) {
        Some(m) if m.draining => "Draining",
        Some(m) if m.cordoned => "Cordoned",
        _ => "Ready",
    }
}

pub fn hosts(w: &World) -> Vec<HostView> {
    let mut out: BTreeMap<&str, HostView> = BTreeMap::new();
    for (id, h) in &w.hosts {
        out.insert(
            id,
            HostView {
                id: id.clone(),
                state: state(w, id),
                address: Some(h.address.clone()),
                datacenter: h.datacenter.clone(),
                labels: h.labels.clone(),
                cpus: h.cpus,
                memory_mb: h.memory_mb,
                cpus_reserved: 0.0,
                memory_mb_reserved: 0,
                slots: 0,
                agent_version: h.agent_version.clone(),
                docker_version: h.docker_version.clone(),
            },
        );
    }
    for ((host, _), (a, _)) in &w.assignments {
        let v = out.entry(host).or_insert_with(|| HostView {
            id: host.clone(),
            state: "NotReady",
            address: None,
            datacenter: None,
            labels: BTreeMap::new(),
            cpus: 0.0,
            memory_mb: 0,
            cpus_reserved: 0.0,
            memory_mb_reserved: 0,
            slots: 0,
            agent_version: None,
            docker_version: None,
        });
        for slot in &a.slots {
            v.slots += 1;
            v.cpus_reserved += slot.container.cpus.unwrap_or(0.0);
            // Assignments are the controller's, but etcd holds whatever was put there.
            v.memory_mb_reserved = v
                .memory_mb_reserved
                .saturating_add(slot.container.memory_mb.unwrap_or(0));
        }
    }
    out.into_values().collect()
}

/// The hosts as text for a `width`-column terminal.
pub fn render(hosts: &[HostView], width: usize) -> String {
    if hosts.is_empty() {
        return "no hosts: start an agent (berth agent) or berth up\n".to_owned();
    }
    let mut t = Table::new(&[
        "HOST", "STATE", "ADDRESS", "DC", "SLOTS", "CPUS", "MEMORY", "LABELS",
    ]);
    for h in hosts {
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        t.row(vec![
            h.id.clone(),
            h.state.to_owned(),
            h.address.clone().unwrap_or_else(|| "-".to_owned()),
            h.datacenter.clone().unwrap_or_else(|| "-".to_owned()),
            h.slots.to_string(),
            cpus_cell(h),
            memory_cell(h),
            if labels.is_empty() {
                "-".to_owned()
            } else {
                labels.join(",")
            },
        ]);
    }
    t.render(width)
}

/// CPUs as `reserved/total` (`0.5/4`), `-` for a total the host did not report.
pub fn cpus_cell(h: &HostView) -> String {
    capacity(number(h.cpus_reserved), h.cpus > 0.0, number(h.cpus))
}

/// Memory as `reserved/total` (`512M/15.6G`), `-` for a total the host did not report.
pub fn memory_cell(h: &HostView) -> String {
    capacity(mib(h.memory_mb_reserved), h.memory_mb > 0, mib(h.memory_mb))
}

/// `reserved/total`, with `-` for a total the host did not report.
fn capacity(reserved: String, known: bool, total: String) -> String {
    format!("{reserved}/{}", if known { total.as_str() } else { "-" })
}

/// `2`, `0.5`, `1.25`: no trailing zeros.
fn number(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Megabytes as `512M` or `15.6G`.
fn mib(mb: u64) -> String {
    if mb >= 1024 {
        format!("{}G", number((mb as f64 / 1024.0 * 10.0).round() / 10.0))
    } else {
        format!("{mb}M")
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{kv, world};
    use super::*;
    use crate::store::keys;
    use serde_json::json;

    fn fleet() -> World {
        world(&[
            kv(
                keys::host("h1"),
                json!({"id": "h1", "address": "10.0.0.1", "datacenter": "fra",
                       "labels": {"disk": "ssd", "gpu": "no"}, "cpus": 8.0, "memoryMb": 16000,
                       "agentVersion": "0.1.0", "dockerVersion": "26.1"}),
            ),
            kv(keys::host("h3"), json!({"id": "h3", "address": "10.0.0.3"})),
            kv(keys::host("h4"), json!({"id": "h4", "address": "10.0.0.4"})),
            kv(keys::host("h5"), json!({"id": "h5", "address": "10.0.0.5"})),
            kv(
                keys::agentless("h5"),
                json!({"dockerHost": "tcp://10.0.0.5:2376", "address": "10.0.0.5", "removing": true}),
            ),
            kv(keys::maintenance("h3"), json!({"cordoned": true})),
            kv(
                keys::maintenance("h4"),
                json!({"cordoned": true, "draining": true}),
            ),
            // A hold on a host that is down: down is what matters.
            kv(keys::maintenance("h2"), json!({"cordoned": true})),
            kv(
                keys::assignment("h1", "shop"),
                json!({"stack": "shop", "specRevision": 1, "desiredState": "running",
                       "network": {"name": "n", "driver": "bridge"}, "slots": [
                    {"service": "db", "replica": 1, "order": 0,
                     "container": {"image": "x", "cpus": 0.5, "memoryMb": 512}},
                    {"service": "app", "replica": 1, "order": 1, "container": {"image": "x"}}
                ]}),
            ),
            kv(
                keys::assignment("h2", "shop"),
                json!({"stack": "shop", "specRevision": 1, "desiredState": "running",
                       "network": {"name": "n", "driver": "bridge"}, "slots": [
                    {"service": "web", "replica": 1, "order": 0, "container": {"image": "x", "cpus": 1.0}}
                ]}),
            ),
        ])
    }

    #[test]
    fn host_list_cases() {
        let hosts = hosts(&fleet());
        let by = |id: &str| hosts.iter().find(|h| h.id == id).unwrap().clone();
        let cases: Vec<(&str, bool)> = vec![
            (
                "sorted by id",
                hosts.iter().map(|h| h.id.as_str()).collect::<Vec<_>>()
                    == ["h1", "h2", "h3", "h4", "h5"],
            ),
            ("a cordoned host says so", by("h3").state == "Cordoned"),
            ("a draining host says so", by("h4").state == "Draining"),
            (
                "an agentless host being removed says so",
                by("h5").state == "Removing",
            ),
            ("a registered host is Ready", by("h1").state == "Ready"),
            (
                "a host with assignments but no registration is NotReady",
                by("h2").state == "NotReady" && by("h2").address.is_none(),
            ),
            (
                "slots count every placed container",
                by("h1").slots == 2 && by("h2").slots == 1 && by("h3").slots == 0,
            ),
            (
                "reservations add up the slots' limits",
                by("h1").cpus_reserved == 0.5 && by("h1").memory_mb_reserved == 512,
            ),
            (
                "registration details carry over",
                by("h1").datacenter.as_deref() == Some("fra") && by("h1").labels.len() == 2,
            ),
        ];
        for (name, ok) in cases {
            assert!(ok, "{name}: {hosts:#?}");
        }
    }

    #[test]
    fn host_json_has_every_documented_field() {
        let v = serde_json::to_value(hosts(&fleet())).unwrap();
        let h2 = &v[1];
        for field in [
            "id",
            "state",
            "address",
            "datacenter",
            "labels",
            "cpus",
            "memoryMb",
            "cpusReserved",
            "memoryMbReserved",
            "slots",
            "agentVersion",
            "dockerVersion",
        ] {
            assert!(h2.get(field).is_some(), "{field} missing in {h2}");
        }
        assert_eq!(v[0]["memoryMbReserved"], 512);
        assert_eq!(v[0]["labels"]["disk"], "ssd");
    }

    #[test]
    fn host_table_fits_eighty_columns() {
        let text = render(&hosts(&fleet()), 80);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
        let h1 = text.lines().find(|l| l.starts_with("h1")).unwrap();
        for want in [
            "Ready",
            "10.0.0.1",
            "fra",
            "0.5/8",
            "512M/15.6G",
            "disk=ssd",
        ] {
            assert!(h1.contains(want), "{want:?} missing: {h1}");
        }
        let h2 = text.lines().find(|l| l.starts_with("h2")).unwrap();
        assert!(h2.contains("NotReady") && h2.contains("1/-"), "{h2}");
        assert_eq!(render(&[], 80).lines().count(), 1);
    }

    #[test]
    fn absurd_numbers_add_up_without_overflow_and_print() {
        let w = world(&[
            kv(
                keys::host("h1"),
                json!({"id": "h1", "address": "10.0.0.1", "cpus": 1e300, "memoryMb": u64::MAX}),
            ),
            kv(
                keys::assignment("h1", "shop"),
                json!({"stack": "shop", "specRevision": 1, "desiredState": "running",
                       "network": {"name": "n", "driver": "bridge"}, "slots": [
                    {"service": "a", "replica": 1, "order": 0,
                     "container": {"image": "x", "cpus": 1e308, "memoryMb": u64::MAX}},
                    {"service": "b", "replica": 1, "order": 0,
                     "container": {"image": "x", "cpus": 1e308, "memoryMb": u64::MAX}}
                ]}),
            ),
        ]);
        let hosts = hosts(&w);
        assert_eq!(hosts[0].memory_mb_reserved, u64::MAX, "saturates");
        assert!(render(&hosts, 80).contains("h1"));
    }

    #[test]
    fn numbers_print_without_trailing_zeros() {
        let cases = [(2.0, "2"), (0.5, "0.5"), (1.25, "1.25"), (0.0, "0")];
        for (x, want) in cases {
            assert_eq!(number(x), want);
        }
        assert_eq!(mib(512), "512M");
        assert_eq!(mib(2048), "2G");
    }
}
