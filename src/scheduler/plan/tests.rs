//! Placement cases, one row each, plus properties over random clusters.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::spec::{parse_stack, UsedPort};

fn host(id: &str) -> HostRegistration {
    HostRegistration {
        id: id.into(),
        address: format!("10.0.0.{}", id.len()),
        cpus: 4.0,
        memory_mb: 4096,
        ..Default::default()
    }
}

fn with(mut h: HostRegistration, f: impl FnOnce(&mut HostRegistration)) -> HostRegistration {
    f(&mut h);
    h
}

fn ready(h: &HostRegistration) -> HostView<'_> {
    HostView {
        reg: h,
        liveness: Liveness::Ready,
        cordoned: false,
        draining: false,
        removing: false,
    }
}

fn stack(json: &str) -> Stack {
    parse_stack(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e:?}"))
}

fn slot(stack: &str, service: &str, replica: u32) -> SlotId {
    SlotId {
        stack: stack.into(),
        service: service.into(),
        replica,
    }
}

fn opts() -> Options {
    Options {
        max_unavailable_fraction: 0.5,
        rebalance: BTreeSet::new(),
    }
}

/// Slots per host, for compact expectations.
fn counts(p: &Placement) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for h in p.hosts.values() {
        *m.entry(h.clone()).or_default() += 1;
    }
    m
}

const TWO: &str = r#"{"itemListElement":[{"name":"a","image":"i"},{"name":"b","image":"i","ports":[{"containerPort":80,"hostPort":8080}]}]}"#;
const SINGLE_TARGET: &str =
    r#"{"itemListElement":[{"name":"a","image":"i","targetHost":"h3"},{"name":"b","image":"i"}]}"#;
const MANUAL: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"manual"},"itemListElement":[{"name":"a","image":"i","targetHost":"h2"}]}"#;
const AUTO_REPLICAS: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"a","image":"i","replicas":3,"ports":[{"containerPort":80,"hostPort":8080}]}]}"#;
const SPREAD6: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[
  {"name":"w1","image":"i"},{"name":"w2","image":"i"},{"name":"w3","image":"i"},
  {"name":"w4","image":"i"},{"name":"w5","image":"i"},{"name":"w6","image":"i"}]}"#;
const DC: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"datacenter","hostConstraints":[{"preferredDatacenter":"eu"}]},
  "itemListElement":[{"name":"a","image":"i"},{"name":"b","image":"i"},{"name":"c","image":"i"}]}"#;
const DC_SSD: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"datacenter"},
  "itemListElement":[{"name":"a","image":"i"},{"name":"db","image":"i","hostConstraints":{"requiredLabels":{"disk":"ssd"}}}]}"#;
const SSD: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"db","image":"i",
  "hostConstraints":{"requiredLabels":{"disk":"ssd"}},"ports":[{"containerPort":80,"hostPort":8080}]}]}"#;
const BIG: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"big","image":"i","hostConstraints":{"minCPU":3}}]}"#;
const HOG: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"hog","image":"i","resources":{"cpus":2}}]}"#;
const PREFER_US: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"auto"},"itemListElement":[{"name":"a","image":"i","hostConstraints":{"preferredDatacenter":"us"}}]}"#;
const MIN_MEM: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[{"name":"big","image":"i","hostConstraints":{"minMemory":2048}}]}"#;
const MEM_HOG: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"hog","image":"i","resources":{"memoryMb":3000}}]}"#;
const MEM_NEED: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[{"name":"app","image":"i","resources":{"memoryMb":2000}}]}"#;
const SMALL2: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"x","image":"i"},{"name":"y","image":"i"}]}"#;
const PORT8080: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"web","image":"i","ports":[{"containerPort":80,"hostPort":8080}]}]}"#;

struct Case {
    name: &'static str,
    stacks: Vec<(&'static str, &'static str)>,
    hosts: Vec<HostView<'static>>,
    current: Vec<(SlotId, &'static str)>,
    opts: Options,
    /// Expected (slot, host) pairs that must hold.
    want: Vec<(SlotId, &'static str)>,
    /// Expected slot counts per host, when given.
    want_counts: Option<Vec<(&'static str, usize)>>,
    /// Substrings of the unschedulable messages, in (stack, service) order.
    unschedulable: Vec<&'static str>,
    /// Slots that must have no host.
    unplaced: Vec<SlotId>,
    moves: Vec<(SlotId, MoveReason)>,
    storm: bool,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            stacks: vec![],
            hosts: vec![],
            current: vec![],
            opts: opts(),
            want: vec![],
            want_counts: None,
            unschedulable: vec![],
            unplaced: vec![],
            moves: vec![],
            storm: false,
        }
    }
}

fn leak(h: HostRegistration) -> &'static HostRegistration {
    Box::leak(Box::new(h))
}

fn views(hs: Vec<HostRegistration>) -> Vec<HostView<'static>> {
    hs.into_iter().map(|h| ready(leak(h))).collect()
}

fn state(mut v: HostView<'static>, f: impl FnOnce(&mut HostView<'static>)) -> HostView<'static> {
    f(&mut v);
    v
}

#[test]
fn placement_table() {
    let hosts3 = || views(vec![host("h1"), host("h2"), host("h3")]);
    let cases = vec![
        Case {
            name: "single-host: the whole stack on one host",
            stacks: vec![("s", TWO)],
            hosts: hosts3(),
            want: vec![(slot("s", "a", 1), "h1"), (slot("s", "b", 1), "h1")],
            ..Default::default()
        },
        Case {
            name: "single-host: a targetHost pins the whole stack",
            stacks: vec![("s", SINGLE_TARGET)],
            hosts: hosts3(),
            want: vec![(slot("s", "a", 1), "h3"), (slot("s", "b", 1), "h3")],
            ..Default::default()
        },
        Case {
            name: "sticky: a new, emptier host does not move running slots",
            stacks: vec![("s", TWO)],
            hosts: hosts3(),
            current: vec![(slot("s", "a", 1), "h2"), (slot("s", "b", 1), "h2")],
            want: vec![(slot("s", "a", 1), "h2"), (slot("s", "b", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "manual: the target host is used",
            stacks: vec![("m", MANUAL)],
            hosts: hosts3(),
            want: vec![(slot("m", "a", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "manual: an unknown target is unschedulable, never a fallback",
            stacks: vec![("m", MANUAL)],
            hosts: views(vec![host("h1")]),
            unschedulable: vec!["target host h2 is not registered"],
            ..Default::default()
        },
        Case {
            name: "manual: a target that is not ready is unschedulable",
            stacks: vec![("m", MANUAL)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h2"))), |v| v.liveness = Liveness::NotReady),
            ],
            unschedulable: vec!["target host h2 is not ready"],
            ..Default::default()
        },
        Case {
            name: "manual: a pinned slot stays on its host when the host goes down",
            stacks: vec![("m", MANUAL)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h2"))), |v| v.liveness = Liveness::Down),
            ],
            current: vec![(slot("m", "a", 1), "h2")],
            want: vec![(slot("m", "a", 1), "h2")],
            unschedulable: vec!["target host h2 is not ready"],
            ..Default::default()
        },
        Case {
            name: "auto: replicas on distinct hosts, never sharing a host port",
            stacks: vec![("r", AUTO_REPLICAS)],
            hosts: hosts3(),
            want_counts: Some(vec![("h1", 1), ("h2", 1), ("h3", 1)]),
            ..Default::default()
        },
        Case {
            name: "auto: a replica with no free port anywhere is unschedulable",
            stacks: vec![("r", AUTO_REPLICAS)],
            hosts: views(vec![host("h1"), host("h2")]),
            want_counts: Some(vec![("h1", 1), ("h2", 1)]),
            unschedulable: vec!["0/2 hosts fit: 2 have port 8080/tcp taken"],
            ..Default::default()
        },
        Case {
            name: "auto: more free CPU and memory scores higher",
            stacks: vec![("b", BIG)],
            hosts: views(vec![
                host("h1"),
                with(host("h2"), |h| {
                    h.cpus = 8.0;
                    h.memory_mb = 8192
                }),
            ]),
            want: vec![(slot("b", "big", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "auto: the preferred datacenter outweighs free capacity",
            stacks: vec![("p", PREFER_US)],
            hosts: views(vec![
                with(host("h1"), |h| {
                    h.cpus = 16.0;
                    h.datacenter = Some("eu".into())
                }),
                with(host("h2"), |h| h.datacenter = Some("us".into())),
            ]),
            want: vec![(slot("p", "a", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "auto: the preferred datacenter is a preference, not a filter",
            stacks: vec![("p", PREFER_US)],
            hosts: views(vec![with(host("h1"), |h| h.datacenter = Some("eu".into()))]),
            want: vec![(slot("p", "a", 1), "h1")],
            ..Default::default()
        },
        Case {
            name: "spread: six services over three hosts, two each",
            stacks: vec![("w", SPREAD6)],
            hosts: hosts3(),
            want_counts: Some(vec![("h1", 2), ("h2", 2), ("h3", 2)]),
            ..Default::default()
        },
        Case {
            name: "spread: balances against slots already placed, not round-robin",
            stacks: vec![("w", SPREAD6), ("x", TWO)],
            hosts: hosts3(),
            current: vec![(slot("x", "a", 1), "h1"), (slot("x", "b", 1), "h1")],
            want_counts: Some(vec![("h1", 3), ("h2", 3), ("h3", 2)]),
            ..Default::default()
        },
        Case {
            name: "datacenter: all slots in the preferred datacenter, spread within it",
            stacks: vec![("d", DC)],
            hosts: views(vec![
                with(host("a1"), |h| h.datacenter = Some("us".into())),
                with(host("e1"), |h| h.datacenter = Some("eu".into())),
                with(host("e2"), |h| h.datacenter = Some("eu".into())),
            ]),
            want_counts: Some(vec![("e1", 2), ("e2", 1)]),
            ..Default::default()
        },
        Case {
            name: "datacenter: another datacenter when the preferred one has no ready host",
            stacks: vec![("d", DC)],
            hosts: vec![
                ready(leak(with(host("a1"), |h| h.datacenter = Some("us".into())))),
                state(
                    ready(leak(with(host("e1"), |h| h.datacenter = Some("eu".into())))),
                    |v| v.cordoned = true,
                ),
            ],
            want_counts: Some(vec![("a1", 3)]),
            ..Default::default()
        },
        Case {
            name: "datacenter: hosts that name no datacenter form one of their own",
            stacks: vec![("d", DC)],
            hosts: vec![
                ready(leak(host("n1"))),
                ready(leak(host("n2"))),
                state(
                    ready(leak(with(host("e1"), |h| h.datacenter = Some("eu".into())))),
                    |v| v.cordoned = true,
                ),
                ready(leak(with(host("u1"), |h| h.datacenter = Some("us".into())))),
            ],
            want_counts: Some(vec![("n1", 2), ("n2", 1)]),
            ..Default::default()
        },
        Case {
            name: "datacenter: a stack no datacenter can hold whole says so, not 'no hosts'",
            stacks: vec![("d", DC_SSD)],
            hosts: vec![
                ready(leak(with(host("e1"), |h| h.datacenter = Some("eu".into())))),
                ready(leak(with(host("u1"), |h| h.datacenter = Some("us".into())))),
            ],
            unschedulable: vec![
                "no single datacenter has room for every service of this datacenter stack; for this service, 2/2 hosts fit",
                "no single datacenter has room for every service of this datacenter stack; for this service, 0/2 hosts fit: 2 lack label disk=ssd",
            ],
            ..Default::default()
        },
        Case {
            name: "constraints: the message counts each reason like the kube scheduler",
            stacks: vec![("s", SSD), ("o", PORT8080)],
            hosts: views(vec![
                host("h1"),
                host("h2"),
                with(host("h3"), |h| {
                    h.labels.insert("disk".into(), "ssd".into());
                }),
            ]),
            current: vec![(slot("o", "web", 1), "h3")],
            want: vec![(slot("o", "web", 1), "h3")],
            unschedulable: vec!["0/3 hosts fit: 2 lack label disk=ssd, 1 has port 8080/tcp taken"],
            ..Default::default()
        },
        Case {
            name: "capacity: reservations already on a host count against minCPU",
            stacks: vec![("g", HOG), ("b", BIG)],
            hosts: views(vec![host("h1")]),
            current: vec![(slot("g", "hog", 1), "h1")],
            want: vec![(slot("g", "hog", 1), "h1")],
            unschedulable: vec!["0/1 hosts fit: 1 has too little free CPU"],
            ..Default::default()
        },
        Case {
            name: "memory: minMemory passes over a host with less (spread would pick it)",
            stacks: vec![("m", MIN_MEM)],
            hosts: views(vec![with(host("h1"), |h| h.memory_mb = 1024), host("h2")]),
            want: vec![(slot("m", "big", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "memory: no host has minMemory: unschedulable, and the reason says memory",
            stacks: vec![("m", MIN_MEM)],
            hosts: views(vec![
                with(host("h1"), |h| h.memory_mb = 1024),
                with(host("h2"), |h| h.memory_mb = 2047),
            ]),
            unschedulable: vec!["0/2 hosts fit: 2 have too little free memory"],
            ..Default::default()
        },
        Case {
            name: "memory: minMemory counts what is already reserved on the host",
            stacks: vec![("g", MEM_HOG), ("m", MIN_MEM)],
            hosts: views(vec![host("h1")]),
            current: vec![(slot("g", "hog", 1), "h1")],
            want: vec![(slot("g", "hog", 1), "h1")],
            unschedulable: vec!["0/1 hosts fit: 1 has too little free memory"],
            ..Default::default()
        },
        Case {
            name: "memory: resources.memoryMb reserved on a host counts against the next slot",
            stacks: vec![("g", MEM_HOG), ("s", SMALL2), ("n", MEM_NEED)],
            hosts: views(vec![host("h1"), host("h2")]),
            // Spread alone would pick h1, which holds one slot to h2's two.
            current: vec![
                (slot("g", "hog", 1), "h1"),
                (slot("s", "x", 1), "h2"),
                (slot("s", "y", 1), "h2"),
            ],
            want: vec![(slot("n", "app", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "memory: a slot whose memoryMb fits nowhere is unschedulable, and says why",
            stacks: vec![("g", MEM_HOG), ("n", MEM_NEED)],
            hosts: views(vec![host("h1")]),
            current: vec![(slot("g", "hog", 1), "h1")],
            unschedulable: vec!["0/1 hosts fit: 1 has too little free memory"],
            ..Default::default()
        },
        Case {
            name: "memory: a host that reports no memory is not held to memoryMb",
            stacks: vec![("n", MEM_NEED)],
            hosts: views(vec![with(host("h1"), |h| h.memory_mb = 0)]),
            want: vec![(slot("n", "app", 1), "h1")],
            ..Default::default()
        },
        Case {
            name: "ports: a port taken by an unmanaged container is avoided",
            stacks: vec![("o", PORT8080)],
            hosts: views(vec![
                with(host("h1"), |h| {
                    h.used_ports.push(UsedPort {
                        port: 8080,
                        protocol: "tcp".into(),
                    })
                }),
                host("h2"),
            ]),
            want: vec![(slot("o", "web", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "degraded host (its Docker does not answer): no new slots",
            stacks: vec![("o", PORT8080)],
            hosts: views(vec![
                with(host("h1"), |h| {
                    h.degraded = Some("docker: connection refused".into())
                }),
                host("h2"),
            ]),
            want: vec![(slot("o", "web", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "policy: a bind mount goes only where the host allows its path",
            stacks: vec![(
                "b",
                r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"a","image":"i","volumeMounts":[{"type":"bind","source":"/srv/data","target":"/d"}]}]}"#,
            )],
            hosts: views(vec![
                host("h1"),
                with(host("h2"), |h| h.allow_bind_prefixes = vec!["/srv".into()]),
            ]),
            want: vec![(slot("b", "a", 1), "h2")],
            ..Default::default()
        },
        Case {
            name: "policy: no host allows the bind mount",
            stacks: vec![(
                "b",
                r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"a","image":"i","volumeMounts":[{"type":"bind","source":"/etc","target":"/d"}]}]}"#,
            )],
            hosts: views(vec![host("h1")]),
            unschedulable: vec!["0/1 hosts fit: 1 does not allow bind mounts of /etc"],
            ..Default::default()
        },
        Case {
            name: "host down past the grace: its slots move",
            stacks: vec![("w", SPREAD6)],
            hosts: vec![
                ready(leak(host("h1"))),
                ready(leak(host("h2"))),
                state(ready(leak(host("h3"))), |v| v.liveness = Liveness::Down),
            ],
            current: vec![(slot("w", "w3", 1), "h3"), (slot("w", "w6", 1), "h3")],
            want_counts: Some(vec![("h1", 3), ("h2", 3)]),
            moves: vec![
                (slot("w", "w3", 1), MoveReason::HostDown),
                (slot("w", "w6", 1), MoveReason::HostDown),
            ],
            ..Default::default()
        },
        Case {
            name: "host not ready within the grace: its slots stay, it gets no new ones",
            stacks: vec![("w", SPREAD6)],
            hosts: vec![
                ready(leak(host("h1"))),
                ready(leak(host("h2"))),
                state(ready(leak(host("h3"))), |v| v.liveness = Liveness::NotReady),
            ],
            current: vec![(slot("w", "w3", 1), "h3")],
            want: vec![(slot("w", "w3", 1), "h3")],
            want_counts: Some(vec![("h1", 3), ("h2", 2), ("h3", 1)]),
            ..Default::default()
        },
        Case {
            name: "storm guard: most hosts down at once, nothing moves",
            stacks: vec![("w", SPREAD6)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h2"))), |v| v.liveness = Liveness::Down),
                state(ready(leak(host("h3"))), |v| v.liveness = Liveness::Down),
            ],
            current: vec![(slot("w", "w2", 1), "h2"), (slot("w", "w3", 1), "h3")],
            want: vec![(slot("w", "w2", 1), "h2"), (slot("w", "w3", 1), "h3")],
            storm: true,
            ..Default::default()
        },
        Case {
            name: "cordoned: existing slots stay, new ones go elsewhere",
            stacks: vec![("w", SPREAD6)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h2"))), |v| v.cordoned = true),
            ],
            current: vec![(slot("w", "w1", 1), "h2")],
            want: vec![(slot("w", "w1", 1), "h2")],
            want_counts: Some(vec![("h1", 5), ("h2", 1)]),
            ..Default::default()
        },
        Case {
            name: "drain: slots move off the host, pinned ones stay",
            stacks: vec![("w", SPREAD6), ("m", MANUAL)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h2"))), |v| {
                    v.cordoned = true;
                    v.draining = true
                }),
            ],
            current: vec![(slot("w", "w1", 1), "h2"), (slot("m", "a", 1), "h2")],
            want: vec![(slot("w", "w1", 1), "h1"), (slot("m", "a", 1), "h2")],
            moves: vec![(slot("w", "w1", 1), MoveReason::Drain)],
            ..Default::default()
        },
        Case {
            name: "removal: every slot leaves, a pinned one loses its host and says why",
            stacks: vec![("w", SPREAD6), ("m", MANUAL)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h2"))), |v| {
                    v.cordoned = true;
                    v.draining = true;
                    v.removing = true
                }),
            ],
            current: vec![(slot("w", "w1", 1), "h2"), (slot("m", "a", 1), "h2")],
            want: vec![(slot("w", "w1", 1), "h1")],
            unplaced: vec![slot("m", "a", 1)],
            unschedulable: vec!["target host h2 is being removed"],
            moves: vec![(slot("w", "w1", 1), MoveReason::Drain)],
            ..Default::default()
        },
        Case {
            name: "removal: a slot that fits nowhere else does not stay behind",
            stacks: vec![("b", BIG)],
            hosts: vec![
                ready(leak(with(host("h1"), |h| h.cpus = 1.0))),
                state(ready(leak(host("h2"))), |v| {
                    v.cordoned = true;
                    v.draining = true;
                    v.removing = true
                }),
            ],
            current: vec![(slot("b", "big", 1), "h2")],
            unplaced: vec![slot("b", "big", 1)],
            unschedulable: vec!["0/2 hosts fit"],
            ..Default::default()
        },
        Case {
            name: "single-host: a stack pinned to a host being removed is unschedulable",
            stacks: vec![("s", SINGLE_TARGET)],
            hosts: vec![
                ready(leak(host("h1"))),
                state(ready(leak(host("h3"))), |v| {
                    v.cordoned = true;
                    v.draining = true;
                    v.removing = true
                }),
            ],
            current: vec![(slot("s", "a", 1), "h3"), (slot("s", "b", 1), "h3")],
            unplaced: vec![slot("s", "a", 1), slot("s", "b", 1)],
            unschedulable: vec![
                "target host h3 is being removed",
                "target host h3 is being removed",
            ],
            ..Default::default()
        },
        Case {
            name: "constraints changed under a running slot: it moves",
            stacks: vec![("s", SSD)],
            hosts: views(vec![
                host("h1"),
                with(host("h2"), |h| {
                    h.labels.insert("disk".into(), "ssd".into());
                }),
            ]),
            current: vec![(slot("s", "db", 1), "h1")],
            want: vec![(slot("s", "db", 1), "h2")],
            moves: vec![(slot("s", "db", 1), MoveReason::Constraints)],
            ..Default::default()
        },
        Case {
            name: "rebalance: the stack is placed afresh",
            stacks: vec![("w", SPREAD6)],
            hosts: hosts3(),
            current: (1..=6)
                .map(|i| (slot("w", &format!("w{i}"), 1), "h1"))
                .collect(),
            opts: Options {
                max_unavailable_fraction: 0.5,
                rebalance: BTreeSet::from(["w".to_owned()]),
            },
            want_counts: Some(vec![("h1", 2), ("h2", 2), ("h3", 2)]),
            moves: ["w2", "w3", "w5", "w6"]
                .iter()
                .map(|s| (slot("w", s, 1), MoveReason::Rebalance))
                .collect(),
            ..Default::default()
        },
        Case {
            name: "no hosts at all: unschedulable, and the old placement is kept",
            stacks: vec![("s", TWO)],
            hosts: vec![],
            current: vec![(slot("s", "a", 1), "gone")],
            want: vec![(slot("s", "a", 1), "gone")],
            unschedulable: vec!["no hosts", "no hosts"],
            ..Default::default()
        },
    ];
    for c in cases {
        let parsed: Vec<(&str, Stack)> = c.stacks.iter().map(|(id, j)| (*id, stack(j))).collect();
        let stacks: Vec<(&str, &Stack)> = parsed.iter().map(|(i, s)| (*i, s)).collect();
        let current: BTreeMap<SlotId, String> = c
            .current
            .iter()
            .map(|(s, h)| (s.clone(), h.to_string()))
            .collect();
        let p = plan(&stacks, &c.hosts, &current, &c.opts);
        for (s, h) in &c.want {
            assert_eq!(
                p.hosts.get(s).map(String::as_str),
                Some(*h),
                "case {:?}: slot {s:?} in {:#?}",
                c.name,
                p
            );
        }
        for s in &c.unplaced {
            assert_eq!(
                p.hosts.get(s),
                None,
                "case {:?}: slot {s:?} has a host",
                c.name
            );
        }
        if let Some(want) = &c.want_counts {
            let want: BTreeMap<String, usize> =
                want.iter().map(|(h, n)| (h.to_string(), *n)).collect();
            assert_eq!(counts(&p), want, "case {:?}: {:#?}", c.name, p);
        }
        let msgs: Vec<&String> = p.unschedulable.values().collect();
        assert_eq!(
            msgs.len(),
            c.unschedulable.len(),
            "case {:?}: {:?}",
            c.name,
            p.unschedulable
        );
        for (got, want) in msgs.iter().zip(&c.unschedulable) {
            assert!(
                got.contains(want),
                "case {:?}: {got:?} should contain {want:?}",
                c.name
            );
        }
        let moves: Vec<(SlotId, MoveReason)> =
            p.moves.iter().map(|m| (m.slot.clone(), m.reason)).collect();
        assert_eq!(moves, c.moves, "case {:?}", c.name);
        assert_eq!(
            p.storm.is_some(),
            c.storm,
            "case {:?}: {:?}",
            c.name,
            p.storm
        );
        // Deterministic, and idempotent: planning again from the result changes nothing.
        assert_eq!(
            plan(&stacks, &c.hosts, &current, &c.opts),
            p,
            "case {:?} (deterministic)",
            c.name
        );
        let again = plan(&stacks, &c.hosts, &p.hosts, &opts());
        assert_eq!(again.hosts, p.hosts, "case {:?} (idempotent)", c.name);
    }
}

// ---- Properties over random clusters ----

/// A stack as written, unvalidated: the scheduler must not panic even on what validation
/// would refuse.
fn raw(json: &str) -> Stack {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Host registrations are not validated: an agent or an operator's `etcdctl put` may
/// write any number. None panics the planner; a capacity that is no number (NaN,
/// infinite, negative) counts as not reported, and a huge one as huge.
#[test]
fn absurd_host_capacities_neither_panic_nor_mislead_placement() {
    let capacity = |id: &str, cpus: f64, memory_mb: u64| {
        with(host(id), |h| {
            h.cpus = cpus;
            h.memory_mb = memory_mb;
        })
    };
    let place = |stack: &Stack, regs: &[HostRegistration]| {
        let views: Vec<HostView> = regs.iter().map(ready).collect();
        plan(&[("s", stack)], &views, &BTreeMap::new(), &opts())
    };
    let reserving = stack(
        r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"a","image":"i","replicas":4,
            "resources":{"cpus":1,"memoryMb":1024}}]}"#,
    );
    let huge = [
        capacity("big", 1e300, u64::MAX),
        capacity("max", f64::MAX, u64::MAX),
    ];
    let p = place(&reserving, &huge);
    assert_eq!(p.hosts.len(), 4, "huge hosts take everything: {p:?}");

    let min_cpu =
        stack(r#"{"itemListElement":[{"name":"a","image":"i","hostConstraints":{"minCPU":1}}]}"#);
    for cpus in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -4.0] {
        let p = place(&min_cpu, &[capacity("odd", cpus, u64::MAX)]);
        assert!(p.hosts.is_empty(), "{cpus} CPUs meet no minCPU: {p:?}");
        let why = p.unschedulable.values().next().cloned().unwrap_or_default();
        assert!(why.contains("too little free CPU"), "{cpus}: {why}");
        // Like a host that reports no CPUs at all, its reservations go unchecked.
        let p = place(&reserving, &[capacity("odd", cpus, u64::MAX)]);
        assert_eq!(p.hosts.len(), 4, "{cpus} CPUs: {p:?}");
    }

    // Reservations that add up past u64::MAX (validation refuses them, the planner must
    // not panic on them either): the second does not fit beside the first.
    for mode in ["multi-host", "single-host"] {
        let greedy = raw(&format!(
            r#"{{"deployment":{{"mode":"{mode}"}},"itemListElement":[
                {{"name":"a","image":"i","resources":{{"cpus":1e308,"memoryMb":{max}}}}},
                {{"name":"b","image":"i","resources":{{"cpus":1e308,"memoryMb":{max}}}}}]}}"#,
            max = u64::MAX
        ));
        let p = place(&greedy, &[capacity("big", f64::MAX, u64::MAX)]);
        assert!(p.hosts.len() <= 1, "{mode}: {p:?}");
    }
}

#[derive(Debug, Clone)]
struct GenHost {
    cpus: u8,
    ssd: bool,
    dc: u8,
    used_port: Option<u16>,
}

#[derive(Debug, Clone)]
struct GenService {
    replicas: u8,
    port: Option<u16>,
    ssd: bool,
    min_cpu: u8,
    cpus: u8,
}

#[derive(Debug, Clone)]
struct GenStack {
    single: bool,
    strategy: u8,
    services: Vec<GenService>,
}

fn gen_host() -> impl Strategy<Value = GenHost> {
    (
        1u8..8,
        any::<bool>(),
        0u8..3,
        prop::option::weighted(0.2, 8080u16..8084),
    )
        .prop_map(|(cpus, ssd, dc, used_port)| GenHost {
            cpus,
            ssd,
            dc,
            used_port,
        })
}

fn gen_service() -> impl Strategy<Value = GenService> {
    (
        1u8..4,
        prop::option::weighted(0.4, 8080u16..8084),
        prop::bool::weighted(0.3),
        0u8..4,
        0u8..3,
    )
        .prop_map(|(replicas, port, ssd, min_cpu, cpus)| GenService {
            replicas,
            port,
            ssd,
            min_cpu,
            cpus,
        })
}

fn gen_stack() -> impl Strategy<Value = GenStack> {
    (
        any::<bool>(),
        0u8..3,
        prop::collection::vec(gen_service(), 1..5),
    )
        .prop_map(|(single, strategy, services)| GenStack {
            single,
            strategy,
            services,
        })
}

fn hosts_of(g: &[GenHost]) -> Vec<HostRegistration> {
    g.iter()
        .enumerate()
        .map(|(i, h)| HostRegistration {
            id: format!("h{i:02}"),
            address: format!("10.0.0.{i}"),
            datacenter: Some(format!("dc{}", h.dc)),
            labels: if h.ssd {
                BTreeMap::from([("disk".to_owned(), "ssd".to_owned())])
            } else {
                BTreeMap::new()
            },
            cpus: h.cpus as f64,
            memory_mb: 4096,
            used_ports: h
                .used_port
                .map(|p| UsedPort {
                    port: p,
                    protocol: "tcp".into(),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// A valid stack, or `None` when the generated one is not (e.g. a port clash in a
/// single-host stack): validation rejects those before the scheduler sees them.
fn stack_of(g: &GenStack) -> Option<Stack> {
    let strategy = ["auto", "spread", "datacenter"][g.strategy as usize % 3];
    let services: Vec<serde_json::Value> = g
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v =
                serde_json::json!({"name": format!("s{i}"), "image": "i", "replicas": s.replicas});
            if let Some(p) = s.port {
                v["ports"] = serde_json::json!([{"containerPort": 80, "hostPort": p}]);
            }
            let mut c = serde_json::json!({});
            if s.ssd {
                c["requiredLabels"] = serde_json::json!({"disk": "ssd"});
            }
            if s.min_cpu > 0 {
                c["minCPU"] = s.min_cpu.into();
            }
            v["hostConstraints"] = c;
            if s.cpus > 0 {
                v["resources"] = serde_json::json!({"cpus": s.cpus});
            }
            v
        })
        .collect();
    let json = serde_json::json!({
        "deployment": {"mode": if g.single { "single-host" } else { "multi-host" }, "placementStrategy": strategy},
        "itemListElement": services,
    });
    parse_stack(json.to_string().as_bytes()).ok()
}

fn service_of<'s>(stacks: &'s [(String, Stack)], slot: &SlotId) -> &'s Service {
    let (_, st) = stacks.iter().find(|(id, _)| *id == slot.stack).unwrap();
    st.item_list_element
        .iter()
        .find(|s| s.name == slot.service)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn placements_never_violate_constraints_ports_or_capacity_and_are_idempotent(
        gh in prop::collection::vec(gen_host(), 1..7),
        gs in prop::collection::vec(gen_stack(), 1..4),
    ) {
        let regs = hosts_of(&gh);
        let views: Vec<HostView> = regs.iter().map(ready).collect();
        let stacks: Vec<(String, Stack)> = gs.iter().enumerate().filter_map(|(i, g)| Some((format!("st{i}"), stack_of(g)?))).collect();
        let refs: Vec<(&str, &Stack)> = stacks.iter().map(|(i, s)| (i.as_str(), s)).collect();
        let p = plan(&refs, &views, &BTreeMap::new(), &opts());

        let mut ports: BTreeSet<(String, u16)> = BTreeSet::new();
        for r in &regs {
            for u in &r.used_ports {
                ports.insert((r.id.clone(), u.port));
            }
        }
        let mut cpus: BTreeMap<String, f64> = BTreeMap::new();
        for (slot, h) in &p.hosts {
            let svc = service_of(&stacks, slot);
            let reg = regs.iter().find(|r| &r.id == h).unwrap();
            if let Some(c) = &svc.host_constraints {
                for (k, v) in &c.required_labels {
                    prop_assert_eq!(reg.labels.get(k), Some(v), "label constraint violated for {:?}", slot);
                }
            }
            for port in svc.ports.iter().filter_map(|x| x.host_port) {
                prop_assert!(ports.insert((h.clone(), port as u16)), "two slots share port {} on {}", port, h);
            }
            *cpus.entry(h.clone()).or_default() += svc.resources.as_ref().and_then(|r| r.cpus).unwrap_or(0.0);
        }
        for (h, used) in &cpus {
            let reg = regs.iter().find(|r| &r.id == h).unwrap();
            prop_assert!(*used <= reg.cpus, "{} reserves {} of {} CPUs", h, used, reg.cpus);
        }
        // Single-host stacks sit on one host.
        for (id, st) in &stacks {
            if st.mode() == DeploymentMode::SingleHost {
                let hs: BTreeSet<&String> = p.hosts.iter().filter(|(s, _)| &s.stack == id).map(|(_, h)| h).collect();
                prop_assert!(hs.len() <= 1, "single-host stack {} on {:?}", id, hs);
            }
        }
        let again = plan(&refs, &views, &p.hosts, &opts());
        prop_assert_eq!(&again.hosts, &p.hosts, "plan(plan(x)) == plan(x)");
        // A stack left out of `unsettled` is exactly where it was; once placed, only
        // stacks with a slot that found no host stay unsettled.
        for (current, placed) in [(&BTreeMap::new(), &p), (&p.hosts, &again)] {
            for (id, _) in &stacks {
                if !placed.unsettled.contains(id) {
                    let of = |m: &BTreeMap<SlotId, String>| -> Vec<(SlotId, String)> {
                        m.iter().filter(|(s, _)| &s.stack == id).map(|(s, h)| (s.clone(), h.clone())).collect()
                    };
                    prop_assert_eq!(of(&placed.hosts), of(current), "{} is settled but moved", id);
                }
            }
        }
        let short: BTreeSet<&String> = p.unschedulable.keys().map(|(s, _)| s).collect();
        prop_assert!(again.unsettled.iter().all(|s| short.contains(s)), "settled stacks stay settled: {:?}", again.unsettled);
    }

    #[test]
    fn spread_without_constraints_balances_within_one(
        n_hosts in 1usize..8,
        services in prop::collection::vec(1u8..4, 1..12),
    ) {
        let regs: Vec<HostRegistration> = (0..n_hosts).map(|i| host(&format!("h{i}"))).collect();
        let views: Vec<HostView> = regs.iter().map(ready).collect();
        let items: Vec<serde_json::Value> = services.iter().enumerate().map(|(i, r)| serde_json::json!({"name": format!("s{i}"), "image": "i", "replicas": r})).collect();
        let st = stack(&serde_json::json!({"deployment": {"mode": "multi-host", "placementStrategy": "spread"}, "itemListElement": items}).to_string());
        let p = plan(&[("s", &st)], &views, &BTreeMap::new(), &opts());
        let total: usize = services.iter().map(|r| *r as usize).sum();
        prop_assert_eq!(p.hosts.len(), total);
        let c = counts(&p);
        let max = regs.iter().map(|r| c.get(&r.id).copied().unwrap_or(0)).max().unwrap();
        let min = regs.iter().map(|r| c.get(&r.id).copied().unwrap_or(0)).min().unwrap();
        prop_assert!(max - min <= 1, "unbalanced: {:?}", c);
    }
}

/// A change placement does not read keeps the key; one it reads changes it.
#[test]
fn the_placement_key_changes_with_what_placement_reads_and_only_that() {
    let base = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"web","image":"i:1","environment":{"V":"1"},"ports":[{"containerPort":80,"hostPort":8080}]},{"name":"db","image":"d"}]}"#;
    let key = |json: &str| placement_key(&stack(json));
    let same = [
        ("another image", base.replace("i:1", "i:2")),
        (
            "another environment",
            base.replace(r#""V":"1""#, r#""V":"2""#),
        ),
        (
            "a command",
            base.replace(r#""image":"d""#, r#""image":"d","command":["x"]"#),
        ),
        (
            "a health check",
            base.replace(
                r#""image":"d""#,
                r#""image":"d","healthCheck":{"type":"command","command":["true"]}"#,
            ),
        ),
    ];
    for (what, json) in same {
        assert_eq!(key(&json), key(base), "{what} keeps the key");
    }
    let other = [
        ("another host port", base.replace("8080", "8081")),
        (
            "more replicas",
            base.replace(r#""image":"d""#, r#""image":"d","replicas":2"#),
        ),
        (
            "a target host",
            base.replace(r#""image":"d""#, r#""image":"d","targetHost":"h1""#),
        ),
        (
            "a reservation",
            base.replace(r#""image":"d""#, r#""image":"d","resources":{"cpus":1}"#),
        ),
        (
            "another strategy",
            base.replace("multi-host", "single-host"),
        ),
        ("a service renamed", base.replace(r#""db""#, r#""db2""#)),
        (
            "a dependency (start order)",
            base.replace(
                r#""image":"i:1""#,
                r#""image":"i:1","softwareRequirements":[{"name":"db"}]"#,
            ),
        ),
    ];
    for (what, json) in other {
        assert_ne!(key(&json), key(base), "{what} changes the key");
    }
}
