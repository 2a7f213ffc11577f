//! From a placed stack to the per-host [`Assignment`]s agents converge to: resolves each
//! slot's container (env with injected dependency addresses, ports, mounts, health). Pure.

use std::collections::BTreeMap;

use super::plan::SlotId;
use crate::assignment::{
    Assignment, ContainerSpec, DockerHealthcheck, MountSpec, NetworkSpec, PortBinding, Slot,
    VolumeSpec,
};
use crate::spec::{HealthCheckKind, HostRegistration, Service, Stack};

/// The Docker network a stack's containers join on every host.
pub fn network_name(stack_id: &str, stack: &Stack) -> String {
    stack
        .network
        .as_ref()
        .and_then(|n| n.name.clone())
        .unwrap_or_else(|| format!("berth-{stack_id}"))
}

/// Per host, the assignment for stack `id` at spec `revision`. `secrets` holds the
/// `mod_revision` of each secret key there is (never a value): each container pins those
/// it refers to.
pub fn assignments_for(
    id: &str,
    stack: &Stack,
    revision: i64,
    placed: &BTreeMap<SlotId, String>,
    hosts: &BTreeMap<String, HostRegistration>,
    secrets: &BTreeMap<String, i64>,
) -> BTreeMap<String, Assignment> {
    let levels = start_levels(stack);
    let network = NetworkSpec {
        name: network_name(id, stack),
        driver: stack
            .network
            .as_ref()
            .and_then(|n| n.driver.clone())
            .unwrap_or_else(|| "bridge".to_owned()),
        create: stack
            .network
            .as_ref()
            .and_then(|n| n.create_if_not_exists)
            .unwrap_or(true),
    };
    let volumes: Vec<VolumeSpec> = stack
        .volumes
        .iter()
        .map(|v| VolumeSpec {
            name: v.name.clone(),
            driver: v.driver.clone().unwrap_or_else(|| "local".to_owned()),
            remove_on_delete: stack.remove_volumes_on_delete.unwrap_or(false),
            create: v.create_if_not_exists.unwrap_or(true),
        })
        .collect();
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    // Slots are ordered by stack first: this stack's are one range, so building every
    // stack's assignments stays linear in slots (a filter over all of them was
    // stacks x slots, the largest cost of a pass at 1,000 hosts).
    let first = SlotId {
        stack: id.to_owned(),
        service: String::new(),
        replica: 0,
    };
    for (slot, host) in placed.range(first..).take_while(|(s, _)| s.stack == id) {
        let Some(svc) = stack
            .item_list_element
            .iter()
            .find(|s| s.name == slot.service)
        else {
            continue;
        };
        let env = injected_env(id, svc, stack, placed, hosts);
        let injected: Vec<String> = env
            .keys()
            .filter(|k| !svc.environment.contains_key(*k))
            .cloned()
            .collect();
        let a = out.entry(host.clone()).or_insert_with(|| Assignment {
            deleted: None,
            stack: id.to_owned(),
            spec_revision: revision,
            desired_state: stack.desired_state(),
            network: network.clone(),
            volumes: volumes.clone(),
            slots: Vec::new(),
        });
        a.slots.push(Slot {
            service: svc.name.clone(),
            replica: slot.replica,
            order: levels.get(svc.name.as_str()).copied().unwrap_or(0),
            container: container_spec(svc, env, secrets),
            health_check: svc.health_check.clone(),
            handoff: false,
            waiting_for: Vec::new(),
            post_start: svc.potential_action.clone(),
            actions_done: false,
            update_order: stack.update_policy(svc).order,
            restart_policy: svc.restart_policy(),
            pull_policy: svc.pull_policy(),
            injected_env: injected,
        });
    }
    for a in out.values_mut() {
        a.compact();
    }
    out
}

fn container_spec(
    svc: &Service,
    injected: BTreeMap<String, String>,
    secrets: &BTreeMap<String, i64>,
) -> ContainerSpec {
    let mut env = injected;
    // The user's own values win over injected ones of the same name.
    env.extend(svc.environment.clone());
    let secret_revisions = secret_revisions(&env, secrets);
    ContainerSpec {
        image: svc.image.clone(),
        command: svc.command.as_ref().map(|c| c.argv()),
        entrypoint: svc.entrypoint.as_ref().map(|c| c.argv()),
        user: svc.user.clone(),
        working_dir: svc.working_dir.clone(),
        cap_drop: svc.cap_drop.clone(),
        env,
        ports: svc
            .ports
            .iter()
            .filter_map(|p| {
                Some(PortBinding {
                    container_port: u16::try_from(p.container_port).ok()?,
                    host_port: p.host_port.and_then(|h| u16::try_from(h).ok()),
                    protocol: p.protocol().to_owned(),
                    host_ip: p.host_ip.clone(),
                })
            })
            .collect(),
        mounts: svc
            .volume_mounts
            .iter()
            .map(|m| MountSpec {
                kind: m.type_.clone().unwrap_or_else(|| "volume".to_owned()),
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only.unwrap_or(false),
            })
            .collect(),
        labels: svc.labels.clone(),
        aliases: vec![svc.name.clone()],
        healthcheck: svc.health_check.as_ref().and_then(|h| {
            (h.kind() == Some(HealthCheckKind::Command)).then(|| DockerHealthcheck {
                command: h.command.as_ref().map(|c| c.argv()).unwrap_or_default(),
                interval_secs: h.interval.unwrap_or(10.0),
                timeout_secs: h.timeout.unwrap_or(5.0),
                retries: h.retries.unwrap_or(3),
                start_period_secs: h.start_period.unwrap_or(0.0),
            })
        }),
        cpus: svc.resources.as_ref().and_then(|r| r.cpus),
        memory_mb: svc.resources.as_ref().and_then(|r| r.memory_mb),
        secret_revisions,
    }
}

/// The revision of each secret `env` refers to (injected connection strings included),
/// among those that exist; the agent reports a missing one itself.
fn secret_revisions(
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    env.values()
        .flat_map(|v| crate::spec::secret_refs(v))
        .filter_map(|name| Some((name.to_owned(), *secrets.get(name)?)))
        .collect()
}

/// `<DEP>_HOST`, `<DEP>_PORT` and `<DEP>_URL` for every dependency that publishes a port,
/// from where its first replica is placed.
fn injected_env(
    id: &str,
    svc: &Service,
    stack: &Stack,
    placed: &BTreeMap<SlotId, String>,
    hosts: &BTreeMap<String, HostRegistration>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for dep_name in svc.dependencies() {
        let Some(dep) = stack.item_list_element.iter().find(|s| s.name == dep_name) else {
            continue;
        };
        let endpoint = dep.service_endpoint.as_ref();
        let port = endpoint
            .and_then(|e| e.exposed_port)
            .or_else(|| dep.ports.iter().find_map(|p| p.host_port));
        let Some(port) = port else { continue };
        let slot = SlotId {
            stack: id.to_owned(),
            service: dep_name.to_owned(),
            replica: 1,
        };
        let Some(address) = placed
            .get(&slot)
            .and_then(|h| hosts.get(h))
            .map(|h| h.address.clone())
        else {
            continue;
        };
        let prefix = crate::assignment::env_prefix(dep_name);
        let template = svc
            .software_requirements
            .iter()
            .find(|r| r.name == dep_name)
            .and_then(|r| r.connection_string.clone())
            .or_else(|| endpoint.and_then(|e| e.connection_template.clone()));
        if let Some(t) = template {
            let url = t
                .replace("{{HOST}}", &address)
                .replace("{{PORT}}", &port.to_string());
            env.insert(format!("{prefix}_URL"), url);
        }
        env.insert(format!("{prefix}_HOST"), address);
        env.insert(format!("{prefix}_PORT"), port.to_string());
    }
    env
}

/// Dependency depth of each service: 0 without dependencies, else one more than its
/// deepest dependency. Services of one level can start together.
fn start_levels(stack: &Stack) -> BTreeMap<&str, u32> {
    let mut levels: BTreeMap<&str, u32> = BTreeMap::new();
    for i in crate::spec::start_order(stack) {
        let Some(s) = stack.item_list_element.get(i) else {
            continue;
        };
        let level = s
            .dependencies()
            .iter()
            .filter_map(|d| levels.get(d))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        levels.insert(s.name.as_str(), level);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_stack, RestartPolicy};

    #[test]
    fn dependencies_get_host_port_and_url_of_where_they_run() {
        let json = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/three-tier.json"
        ))
        .unwrap();
        let stack = parse_stack(&json).unwrap();
        let mut placed = BTreeMap::new();
        for (svc, host) in [("db", "host-1"), ("cache", "host-2"), ("app", "host-3")] {
            placed.insert(
                SlotId {
                    stack: "shop".into(),
                    service: svc.into(),
                    replica: 1,
                },
                host.to_owned(),
            );
        }
        let hosts: BTreeMap<String, HostRegistration> = (1..=3)
            .map(|i| {
                (
                    format!("host-{i}"),
                    HostRegistration {
                        id: format!("host-{i}"),
                        address: format!("10.77.0.{i}"),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let a = assignments_for("shop", &stack, 42, &placed, &hosts, &BTreeMap::new());
        assert_eq!(a.len(), 3);
        let app = &a["host-3"].slots[0];
        assert_eq!(app.service, "app");
        assert_eq!(app.order, 1, "app starts after its dependencies");
        assert_eq!(a["host-1"].slots[0].order, 0);
        let env = &app.container.env;
        assert_eq!(env["DB_HOST"], "10.77.0.1");
        assert_eq!(env["DB_PORT"], "15432");
        assert_eq!(env["DB_URL"], "postgres://10.77.0.1:15432/shop");
        assert_eq!(env["CACHE_URL"], "redis://10.77.0.2:16379");
        assert_eq!(env["LOG_LEVEL"], "info");
        assert!(
            app.injected_env.contains(&"DB_HOST".to_owned())
                && app.injected_env.contains(&"CACHE_URL".to_owned())
                && !app.injected_env.contains(&"LOG_LEVEL".to_owned()),
            "the injected addresses, not the user's own: {:?}",
            app.injected_env
        );
        assert_eq!(a["host-3"].network.name, "shop-net");
        assert_eq!(a["host-1"].spec_revision, 42);
        let cache = &a["host-2"].slots[0].container;
        assert!(
            cache.healthcheck.is_some(),
            "command checks become Docker healthchecks"
        );
    }

    #[test]
    fn the_restart_policy_is_handed_to_the_agent_and_changes_no_container() {
        let slot = |policy: &str| {
            let json =
                format!(r#"{{"itemListElement": [{{"name": "job", "image": "i"{policy}}}]}}"#);
            let stack = parse_stack(json.as_bytes()).unwrap();
            let placed = BTreeMap::from([(SlotId::new("s", "job", 1), "h1".to_owned())]);
            let hosts = BTreeMap::from([("h1".to_owned(), HostRegistration::default())]);
            let a = assignments_for("s", &stack, 1, &placed, &hosts, &BTreeMap::new());
            let network = a["h1"].network.name.clone();
            let slot = a["h1"].slots[0].clone();
            (slot.restart_policy, slot.container.hash(&network))
        };
        let (always, hash) = slot("");
        assert_eq!(always, RestartPolicy::Always, "the default");
        // (case, policy field, policy)
        let cases = [
            (
                "on-failure",
                r#","restartPolicy":"on-failure""#,
                RestartPolicy::OnFailure,
            ),
            ("never", r#","restartPolicy":"never""#, RestartPolicy::Never),
            (
                "always, said",
                r#","restartPolicy":"always""#,
                RestartPolicy::Always,
            ),
        ];
        for (name, field, want) in cases {
            let (policy, h) = slot(field);
            assert_eq!(policy, want, "{name}");
            assert_eq!(h, hash, "{name}: a new policy replaces no container");
        }
    }

    #[test]
    fn each_container_pins_the_revisions_of_the_secrets_it_uses_and_only_those() {
        let stack = parse_stack(
            br#"{"itemListElement": [
              {"name": "db", "image": "i", "ports": [{"containerPort": 5432, "hostPort": 15432}],
               "environment": {"PW": "{{secret:db-pass}}"},
               "serviceEndpoint": {"type": "host-port", "exposedPort": 15432,
                                   "connectionTemplate": "pg://u:{{secret:db-pass}}@{{HOST}}:{{PORT}}/x"}},
              {"name": "app", "image": "i", "requirements": ["db"],
               "environment": {"TOKEN": "t-{{secret:api}}", "MISSING": "{{secret:nowhere}}"}},
              {"name": "plain", "image": "i", "environment": {"A": "1"}}]}"#,
        )
        .unwrap();
        let placed: BTreeMap<SlotId, String> = ["db", "app", "plain"]
            .iter()
            .map(|s| (SlotId::new("s", *s, 1), "h1".to_owned()))
            .collect();
        let hosts = BTreeMap::from([(
            "h1".to_owned(),
            HostRegistration {
                id: "h1".into(),
                address: "10.0.0.1".into(),
                ..Default::default()
            },
        )]);
        let secrets = BTreeMap::from([
            ("db-pass".to_owned(), 7),
            ("api".to_owned(), 9),
            ("unused".to_owned(), 11),
        ]);
        let a = assignments_for("s", &stack, 3, &placed, &hosts, &secrets);
        let pins = |service: &str| -> Vec<(String, i64)> {
            let slot = a["h1"].slots.iter().find(|s| s.service == service).unwrap();
            slot.container
                .secret_revisions
                .clone()
                .into_iter()
                .collect()
        };
        let pin = |name: &str, rev: i64| (name.to_owned(), rev);
        // (case, service, pins)
        let cases = [
            ("its own environment", "db", vec![pin("db-pass", 7)]),
            (
                "an injected connection string too; a missing secret is left out",
                "app",
                vec![pin("api", 9), pin("db-pass", 7)],
            ),
            ("no secret, no pin", "plain", vec![]),
        ];
        for (name, service, want) in cases {
            assert_eq!(pins(service), want, "{name}");
        }
        assert_eq!(
            a["h1"].revision(),
            9,
            "the newest secret is newer than the spec"
        );
    }
}
