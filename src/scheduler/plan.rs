//! Placement: which host runs each slot `(stack, service, replica)`. Pure and
//! deterministic: the same stacks, hosts and current placements give the same answer,
//! ties broken by host id.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{DeploymentMode, HostConstraints, HostRegistration, Service, Stack};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId {
    pub stack: String,
    pub service: String,
    pub replica: u32,
}

/// A host as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct HostView<'a> {
    pub reg: &'a HostRegistration,
    /// Its lease is alive.
    pub ready: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Placement {
    pub hosts: BTreeMap<SlotId, String>,
    /// `(stack, service)` -> why it has no host.
    pub unschedulable: BTreeMap<(String, String), String>,
}

/// Place every slot of `stacks` (already validated) on `hosts`.
///
/// A slot keeps its current host while that host is listed (ready, or not ready but still
/// within its grace period: the caller leaves expired hosts out). New slots go only to
/// ready hosts. A slot that cannot be placed anywhere keeps its old host if it had one.
pub fn plan(
    stacks: &[(&str, &Stack)],
    hosts: &[HostView<'_>],
    current: &BTreeMap<SlotId, String>,
) -> Placement {
    let mut out = Placement::default();
    let listed: BTreeMap<&str, &HostView> = hosts.iter().map(|h| (h.reg.id.as_str(), h)).collect();
    let mut load: BTreeMap<&str, usize> = listed.keys().map(|h| (*h, 0)).collect();
    let mut ports: BTreeMap<&str, BTreeSet<(u16, String)>> = BTreeMap::new();

    // Pass 1: sticky slots, so adding a host never moves anything.
    let mut pending: Vec<(&str, &Stack, Vec<SlotId>)> = Vec::new();
    for (id, stack) in stacks {
        let mut left = Vec::new();
        for slot in slots_of(id, stack) {
            let svc = service(stack, &slot.service);
            let keep = current.get(&slot).filter(|h| {
                listed.contains_key(h.as_str())
                    && svc
                        .and_then(|s| s.target_host.as_ref())
                        .is_none_or(|t| t == *h)
            });
            match keep {
                Some(h) => {
                    let h = listed[h.as_str()].reg.id.as_str();
                    *load.entry(h).or_default() += 1;
                    ports.entry(h).or_default().extend(host_ports(svc));
                    out.hosts.insert(slot, h.to_owned());
                }
                None => left.push(slot),
            }
        }
        if !left.is_empty() {
            pending.push((id, stack, left));
        }
    }

    // Pass 2: everything else.
    for (id, stack, slots) in pending {
        if stack.mode() == DeploymentMode::SingleHost {
            let already = out
                .hosts
                .iter()
                .find(|(s, _)| s.stack == id)
                .map(|(_, h)| h.clone());
            let target = stack
                .item_list_element
                .iter()
                .find_map(|s| s.target_host.clone());
            let chosen = match (already, target) {
                (Some(h), _) => Ok(h),
                (None, Some(t)) => match listed.get(t.as_str()) {
                    Some(h) if h.ready => Ok(t),
                    _ => Err(format!("target host {t} is not registered or not ready")),
                },
                (None, None) => {
                    let needed: Vec<(u16, String)> = slots
                        .iter()
                        .flat_map(|s| host_ports(service(stack, &s.service)))
                        .collect();
                    let all: Vec<&HostConstraints> = stack
                        .item_list_element
                        .iter()
                        .flat_map(|s| constraints_of(stack, Some(s)))
                        .collect();
                    best_host(hosts, &load, |h| {
                        fits(h, &all) && needed.iter().all(|p| !port_taken(&ports, &h.id, p))
                    })
                    .ok_or_else(|| no_host_message(hosts))
                }
            };
            for slot in slots {
                place(
                    &mut out, &mut load, &mut ports, stack, slot, &chosen, current,
                );
            }
            continue;
        }
        for slot in slots {
            let svc = service(stack, &slot.service);
            let wanted = host_ports(svc);
            let chosen = match svc.and_then(|s| s.target_host.clone()) {
                Some(t) => match listed.get(t.as_str()) {
                    Some(h) if h.ready => match wanted.iter().find(|p| port_taken(&ports, &t, p)) {
                        Some(p) => Err(format!("port {}/{} is taken on {t}", p.0, p.1)),
                        None => Ok(t),
                    },
                    _ => Err(format!("target host {t} is not registered or not ready")),
                },
                None => {
                    let siblings: BTreeSet<&str> = out
                        .hosts
                        .iter()
                        .filter(|(s, _)| s.stack == slot.stack && s.service == slot.service)
                        .map(|(_, h)| h.as_str())
                        .collect();
                    let constraints = constraints_of(stack, svc);
                    let ok = |h: &HostRegistration| {
                        fits(h, &constraints)
                            && wanted.iter().all(|p| !port_taken(&ports, &h.id, p))
                    };
                    // Replicas on distinct hosts when possible.
                    best_host(hosts, &load, |h| ok(h) && !siblings.contains(h.id.as_str()))
                        .or_else(|| best_host(hosts, &load, ok))
                        .ok_or_else(|| no_host_message(hosts))
                }
            };
            place(
                &mut out, &mut load, &mut ports, stack, slot, &chosen, current,
            );
        }
    }
    out
}

fn place<'h>(
    out: &mut Placement,
    load: &mut BTreeMap<&'h str, usize>,
    ports: &mut BTreeMap<&'h str, BTreeSet<(u16, String)>>,
    stack: &Stack,
    slot: SlotId,
    chosen: &Result<String, String>,
    current: &BTreeMap<SlotId, String>,
) {
    match chosen {
        Ok(h) => {
            if let Some((k, _)) = load.iter().find(|(k, _)| **k == h.as_str()) {
                let k: &'h str = k;
                *load.entry(k).or_default() += 1;
                ports
                    .entry(k)
                    .or_default()
                    .extend(host_ports(service(stack, &slot.service)));
            }
            out.hosts.insert(slot, h.clone());
        }
        Err(why) => {
            out.unschedulable
                .insert((slot.stack.clone(), slot.service.clone()), why.clone());
            // Nowhere better to go: stay where it was rather than vanish.
            if let Some(old) = current.get(&slot) {
                out.hosts.insert(slot, old.clone());
            }
        }
    }
}

fn slots_of(id: &str, stack: &Stack) -> Vec<SlotId> {
    let mut v = Vec::new();
    for i in crate::spec::start_order(stack) {
        let Some(s) = stack.item_list_element.get(i) else {
            continue;
        };
        for r in 1..=s.replica_count() {
            v.push(SlotId {
                stack: id.to_owned(),
                service: s.name.clone(),
                replica: r,
            });
        }
    }
    v
}

fn service<'s>(stack: &'s Stack, name: &str) -> Option<&'s Service> {
    stack.item_list_element.iter().find(|s| s.name == name)
}

fn host_ports(svc: Option<&Service>) -> Vec<(u16, String)> {
    svc.map(|s| {
        s.ports
            .iter()
            .filter_map(|p| {
                let hp = u16::try_from(p.host_port?).ok()?;
                Some((hp, p.protocol().to_owned()))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn port_taken(
    ports: &BTreeMap<&str, BTreeSet<(u16, String)>>,
    host: &str,
    p: &(u16, String),
) -> bool {
    ports.get(host).is_some_and(|set| set.contains(p))
}

/// Does `host` satisfy every constraint (stack-level and the service's own)?
fn fits(host: &HostRegistration, constraints: &[&HostConstraints]) -> bool {
    constraints.iter().all(|c| {
        c.required_labels
            .iter()
            .all(|(k, v)| host.labels.get(k) == Some(v))
            && c.min_cpu.is_none_or(|m| host.cpus >= m)
            && c.min_memory.is_none_or(|m| host.memory_mb >= m)
    })
}

fn constraints_of<'s>(stack: &'s Stack, svc: Option<&'s Service>) -> Vec<&'s HostConstraints> {
    let mut v: Vec<&HostConstraints> = stack
        .deployment
        .iter()
        .flat_map(|d| d.host_constraints.iter())
        .collect();
    v.extend(svc.and_then(|s| s.host_constraints.as_ref()));
    v
}

/// The ready host with the fewest slots that passes `ok`; ties go to the lowest id.
fn best_host(
    hosts: &[HostView<'_>],
    load: &BTreeMap<&str, usize>,
    ok: impl Fn(&HostRegistration) -> bool,
) -> Option<String> {
    hosts
        .iter()
        .filter(|h| h.ready && ok(h.reg))
        .min_by_key(|h| {
            (
                load.get(h.reg.id.as_str()).copied().unwrap_or(0),
                h.reg.id.clone(),
            )
        })
        .map(|h| h.reg.id.clone())
}

fn no_host_message(hosts: &[HostView<'_>]) -> String {
    let ready = hosts.iter().filter(|h| h.ready).count();
    if ready == 0 {
        "no ready host: start a berth agent or register a host".to_owned()
    } else {
        format!("0/{ready} hosts fit (constraints or host ports)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_stack;

    fn host(id: &str) -> HostRegistration {
        HostRegistration {
            id: id.into(),
            address: format!("10.0.0.{}", id.len()),
            cpus: 2.0,
            memory_mb: 1024,
            ..Default::default()
        }
    }

    fn stack(json: &str) -> Stack {
        parse_stack(json.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn slot(stack: &str, service: &str, replica: u32) -> SlotId {
        SlotId {
            stack: stack.into(),
            service: service.into(),
            replica,
        }
    }

    const TWO: &str = r#"{"itemListElement":[{"name":"a","image":"i"},{"name":"b","image":"i"}]}"#;
    const MULTI: &str = r#"{"deployment":{"mode":"multi-host"},"itemListElement":[{"name":"a","image":"i","replicas":2,"ports":[{"containerPort":80,"hostPort":8080}]},{"name":"b","image":"i"}]}"#;
    const MANUAL: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"manual"},"itemListElement":[{"name":"a","image":"i","targetHost":"h2"}]}"#;

    #[test]
    fn placement_table() {
        let (h1, h2, h3) = (host("h1"), host("h2"), host("h3"));
        let ready = |r: &[&HostRegistration]| -> Vec<HostView<'static>> {
            r.iter()
                .map(|h| HostView {
                    reg: Box::leak(Box::new((*h).clone())),
                    ready: true,
                })
                .collect()
        };
        let two = stack(TWO);
        let multi = stack(MULTI);
        let manual = stack(MANUAL);
        struct Case {
            name: &'static str,
            stacks: Vec<(&'static str, Stack)>,
            hosts: Vec<HostView<'static>>,
            current: BTreeMap<SlotId, String>,
            want: Vec<(SlotId, &'static str)>,
            unschedulable: usize,
        }
        let cases = vec![
            Case {
                name: "single-host: all slots on the least-loaded host",
                stacks: vec![("s", two.clone())],
                hosts: ready(&[&h1, &h2]),
                current: BTreeMap::new(),
                want: vec![(slot("s", "a", 1), "h1"), (slot("s", "b", 1), "h1")],
                unschedulable: 0,
            },
            Case {
                name: "sticky: a new host does not move running slots",
                stacks: vec![("s", two.clone())],
                hosts: ready(&[&h1, &h2]),
                current: BTreeMap::from([
                    (slot("s", "a", 1), "h2".into()),
                    (slot("s", "b", 1), "h2".into()),
                ]),
                want: vec![(slot("s", "a", 1), "h2"), (slot("s", "b", 1), "h2")],
                unschedulable: 0,
            },
            Case {
                name: "multi-host: replicas on distinct hosts, ports kept apart",
                stacks: vec![("m", multi.clone())],
                hosts: ready(&[&h1, &h2, &h3]),
                current: BTreeMap::new(),
                want: vec![
                    (slot("m", "a", 1), "h1"),
                    (slot("m", "a", 2), "h2"),
                    (slot("m", "b", 1), "h3"),
                ],
                unschedulable: 0,
            },
            Case {
                name: "multi-host: second replica cannot share the only host's port",
                stacks: vec![("m", multi.clone())],
                hosts: ready(&[&h1]),
                current: BTreeMap::new(),
                want: vec![(slot("m", "a", 1), "h1"), (slot("m", "b", 1), "h1")],
                unschedulable: 1,
            },
            Case {
                name: "manual: target host used",
                stacks: vec![("x", manual.clone())],
                hosts: ready(&[&h1, &h2]),
                current: BTreeMap::new(),
                want: vec![(slot("x", "a", 1), "h2")],
                unschedulable: 0,
            },
            Case {
                name: "manual: unknown target is unschedulable, never a fallback",
                stacks: vec![("x", manual.clone())],
                hosts: ready(&[&h1]),
                current: BTreeMap::new(),
                want: vec![],
                unschedulable: 1,
            },
            Case {
                name: "no hosts: unschedulable, old placement kept",
                stacks: vec![("s", two.clone())],
                hosts: vec![],
                current: BTreeMap::from([(slot("s", "a", 1), "gone".into())]),
                want: vec![(slot("s", "a", 1), "gone")],
                unschedulable: 2,
            },
        ];
        for c in cases {
            let stacks: Vec<(&str, &Stack)> = c.stacks.iter().map(|(i, s)| (*i, s)).collect();
            let p = plan(&stacks, &c.hosts, &c.current);
            let got: Vec<(SlotId, &str)> = p
                .hosts
                .iter()
                .map(|(s, h)| (s.clone(), h.as_str()))
                .collect();
            assert_eq!(got, c.want, "case: {}", c.name);
            assert_eq!(
                p.unschedulable.len(),
                c.unschedulable,
                "case: {} {:?}",
                c.name,
                p.unschedulable
            );
            // Deterministic and idempotent.
            assert_eq!(
                plan(&stacks, &c.hosts, &p.hosts).hosts,
                p.hosts,
                "case: {} (idempotent)",
                c.name
            );
        }
    }
}
