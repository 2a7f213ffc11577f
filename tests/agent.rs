//! The agent against the real Docker engine: liveness restarts, waitForHealthy start
//! order, start-first replacement (gated on the new container's health), drift put back
//! by hand.

mod common;

use std::time::Duration;

use berth::spec::{HostRegistration, Phase};
use berth::store::keys;
use common::*;

const T: Duration = Duration::from_secs(60);

fn busybox(cmd: &str) -> serde_json::Value {
    serde_json::json!(["sh", "-c", format!("trap 'exit 0' TERM; {cmd} & wait")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_starts_only_after_its_dependency_is_healthy() {
    let c = Cluster::start("waits").await;
    // db answers only after 4 s; app waits for it to be healthy.
    let json = serde_json::json!({
        "itemListElement": [
            {"name": "db", "image": "berth-test/busybox:latest",
             "command": busybox("sleep 4; mkdir -p /w; echo ok > /w/index.html; httpd -f -p 5432 -h /w"),
             "healthCheck": {"type": "tcp", "port": 5432, "interval": 0.5, "timeout": 1, "retries": 1, "startPeriod": 10}},
            {"name": "app", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000"),
             "softwareRequirements": [{"name": "db", "waitForHealthy": true}]}
        ]
    })
    .to_string();
    let rev = c.put_stack("waits-it", &json).await;
    let st = c
        .wait_status("waits-it", T, |s| {
            s.services.get("app").is_some_and(|a| a.state == "waiting")
        })
        .await;
    let msg = st.services["app"].message.clone().unwrap_or_default();
    assert!(msg.starts_with("Waiting for db (it-waits)"), "{msg}");
    let names = |c: &Cluster| -> Vec<String> {
        containers_of(&c.host_id, "waits-it")
            .iter()
            .map(|id| inspect(id, "{{.Name}}"))
            .collect()
    };
    assert!(
        !names(&c).contains(&"/waits-it.app.1".to_owned()),
        "app not created while db is starting"
    );

    c.wait_status("waits-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let ids = containers_of(&c.host_id, "waits-it");
    let started = |name: &str| {
        let id = ids
            .iter()
            .find(|id| inspect(id, "{{.Name}}") == name)
            .unwrap();
        inspect(id, "{{.State.StartedAt}}")
    };
    // RFC 3339 with the same offset sorts as text.
    assert!(started("/waits-it.app.1") > started("/waits-it.db.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_stays_unhealthy_is_restarted() {
    let c = Cluster::start("liveness").await;
    let json = serde_json::json!({
        "itemListElement": [
            {"name": "web", "image": "berth-test/busybox:latest",
             "command": busybox("mkdir -p /w; httpd -f -p 8080 -h /w"),
             "healthCheck": {"type": "http", "path": "/missing", "port": 8080, "interval": 0.5, "timeout": 1, "retries": 2}}
        ]
    })
    .to_string();
    c.put_stack("liveness-it", &json).await;
    let st = c
        .wait_status("liveness-it", T, |s| {
            s.services.get("web").is_some_and(|w| w.restarts >= 1)
        })
        .await;
    assert_eq!(
        containers_of(&c.host_id, "liveness-it").len(),
        1,
        "restarted in place: {st:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_without_shared_ports_starts_before_the_old_container_stops() {
    let c = Cluster::start("startfirst").await;
    let spec = |v: &str| {
        serde_json::json!({"itemListElement": [
            {"name": "worker", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000"),
             "environment": {"VERSION": v}}
        ]})
        .to_string()
    };
    let rev = c.put_stack("startfirst-it", &spec("1")).await;
    c.wait_status("startfirst-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let old = containers_of(&c.host_id, "startfirst-it");
    let since = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let rev = c.put_stack("startfirst-it", &spec("2")).await;
    c.wait_status("startfirst-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    // The old container goes in the pass after the new one is found ready.
    let new = eventually("the old container gone", T, || async {
        let ids = containers_of(&c.host_id, "startfirst-it");
        (ids.len() == 1).then_some(ids)
    })
    .await;
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
    assert_eq!(
        inspect(&new[0], "{{.Name}}"),
        "/startfirst-it.worker.1",
        "renamed to its slot name"
    );
    let events = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &docker(&["system", "info", "--format", "{{.SystemTime}}"]),
        "--filter",
        "label=berth.stack=startfirst-it",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    let lines: Vec<&str> = events.lines().collect();
    let new_start = lines.iter().position(|l| *l == format!("start {}", new[0]));
    let old_stop = lines
        .iter()
        .position(|l| l.starts_with("kill ") || l.starts_with("die ") || l.starts_with("stop "))
        .filter(|i| lines[*i].ends_with(&old[0]));
    assert!(
        matches!((new_start, old_stop), (Some(a), Some(b)) if a < b),
        "the new container started before the old one stopped: {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_that_cannot_be_had_is_reported_and_the_old_container_kept() {
    let c = Cluster::start("badimage").await;
    // A published host port: the replacement would stop the old container first.
    let port = free_port();
    let spec = |image: &str| {
        serde_json::json!({"itemListElement": [
            {"name": "web", "image": image, "command": busybox("httpd -f -p 8080 -h /"),
             "ports": [{"containerPort": 8080, "hostPort": port}]}
        ]})
        .to_string()
    };
    let rev = c
        .put_stack("badimage-it", &spec("berth-test/busybox:latest"))
        .await;
    c.wait_status("badimage-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let old = containers_of(&c.host_id, "badimage-it");
    assert_eq!(old.len(), 1);

    let missing = "berth-test/no-such-image:latest";
    c.put_stack("badimage-it", &spec(missing)).await;
    let st = c
        .wait_status("badimage-it", T, |s| {
            s.services.get("web").is_some_and(|w| {
                w.message
                    .as_deref()
                    .is_some_and(|m| m.contains(&format!("pulling {missing}")))
            })
        })
        .await;
    let msg = st.services["web"].message.clone().unwrap_or_default();
    assert!(msg.contains(missing), "{msg}");
    assert_eq!(
        containers_of(&c.host_id, "badimage-it"),
        old,
        "the old container is still the one there"
    );
    assert_eq!(inspect(&old[0], "{{.State.Running}}"), "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_by_hand_is_put_back_and_unmanaged_containers_are_left_alone() {
    let c = Cluster::start("drift").await;
    let rev = c.put_stack("drift-it", &web_stack(18188, "drift")).await;
    c.wait_status("drift-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let id = containers_of(&c.host_id, "drift-it")[0].clone();

    // docker stop: started again.
    docker(&["stop", "-t", "1", &id]);
    eventually("started again after docker stop", T, || async {
        (inspect(&id, "{{.State.Running}}") == "true").then_some(())
    })
    .await;

    // docker rename: renamed back.
    docker(&["rename", &id, "someone-renamed-it"]);
    eventually("renamed back", T, || async {
        (inspect(&id, "{{.Name}}") == "/drift-it.web.1").then_some(())
    })
    .await;

    // docker rm -f: created again.
    docker(&["rm", "-f", &id]);
    let new = eventually("recreated after docker rm", T, || async {
        let ids = containers_of(&c.host_id, "drift-it");
        (ids.len() == 1 && ids[0] != id && inspect(&ids[0], "{{.State.Running}}") == "true")
            .then(|| ids[0].clone())
    })
    .await;
    assert_eq!(inspect(&new, "{{.Name}}"), "/drift-it.web.1");
    assert_eq!(
        eventually("serves again", T, || http_get(18188, "/index.html"))
            .await
            .trim(),
        "drift"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_start_actions_run_once_per_version_and_a_failure_fails_the_stack() {
    let c = Cluster::start("actions").await;
    let record = serde_json::json!({"name": "Record start", "actionType": "init",
        "command": ["sh", "-c", "echo ran >> /actions.log"], "timeout": 10});
    // `side` is the control: a new version of it runs its action again.
    let spec = |second: &str, side: &str| {
        serde_json::json!({"itemListElement": [
            {"name": "app", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000"),
             "potentialAction": [
                record,
                {"name": "Second", "command": ["sh", "-c", second], "timeout": 10}
             ]},
            {"name": "side", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000"),
             "environment": {"VERSION": side}, "potentialAction": [record]}
        ]})
        .to_string()
    };
    let rev = c.put_stack("actions-it", &spec("true", "1")).await;
    let st = c
        .wait_status("actions-it", T, |s| {
            s.phase == Phase::Running
                && s.observed_revision == rev
                && s.services["app"].actions.len() == 2
                && s.services["side"].actions.len() == 1
        })
        .await;
    assert!(st.services["app"].actions.iter().all(|a| a.ok), "{st:#?}");
    let id_of = |service: &str| inspect(&format!("actions-it.{service}.1"), "{{.Id}}");
    let log = |id: &str| docker(&["exec", id, "cat", "/actions.log"]);
    let (app, side) = (id_of("app"), id_of("side"));
    assert_eq!(log(&app), "ran");

    // A restart is not a new version: app's actions do not run again. A new version of
    // side, put after the restart, runs side's action on a pass after its new container
    // runs; every such pass saw app restarted, so had app's actions been due again they
    // would have started no later than side's.
    docker(&["restart", "-t", "1", &app]);
    let rev = c.put_stack("actions-it", &spec("true", "2")).await;
    let new_side = eventually("side's action ran in its new container", T, || async {
        let id = id_of("side");
        (!id.is_empty() && id != side && log(&id) == "ran").then_some(id)
    })
    .await;
    assert_ne!(new_side, side);
    c.wait_status("actions-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    assert_eq!(id_of("app"), app, "app was not replaced");
    assert_eq!(log(&app), "ran", "app's actions ran once only");

    // A new version whose second action fails: the stack is Failed, with its exit code.
    let rev = c
        .put_stack("actions-it", &spec("echo migration broke; exit 3", "2"))
        .await;
    let st = c
        .wait_status("actions-it", T, |s| {
            s.phase == Phase::Failed && s.observed_revision == rev
        })
        .await;
    let second = st.services["app"]
        .actions
        .iter()
        .find(|a| a.name == "Second")
        .unwrap();
    assert_eq!(second.exit_code, Some(3));
    assert!(
        second
            .message
            .as_deref()
            .unwrap_or("")
            .contains("migration broke"),
        "{second:?}"
    );
    assert!(st.message.contains("exit code 3"), "{}", st.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_by_an_unmanaged_container_is_reported_never_removed() {
    let c = Cluster::start("conflict").await;
    let squatter = "conflict-it.web.1";
    docker(&["rm", "-f", squatter]);
    let id = docker(&[
        "run",
        "-d",
        "--name",
        squatter,
        "berth-test/busybox:latest",
        "sleep",
        "600",
    ]);
    assert!(!id.is_empty());
    c.put_stack("conflict-it", &web_stack(18189, "x")).await;
    let st = c
        .wait_status("conflict-it", T, |s| {
            s.services
                .get("web")
                .and_then(|w| w.message.as_deref())
                .is_some_and(|m| m.contains("does not manage"))
        })
        .await;
    assert_ne!(st.phase, Phase::Running);
    assert_eq!(
        inspect(&id, "{{.State.Running}}"),
        "true",
        "the unmanaged container is untouched"
    );
    docker(&["rm", "-f", &id]);
    // Once it is gone, the slot converges.
    c.wait_status("conflict-it", T, |s| s.phase == Phase::Running)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agentless_host_is_driven_by_the_controller_with_the_same_reconciler() {
    let mut c = Cluster::start("agentless").await;
    // No agent on this host: the operator registers it and the controller drives it.
    c.drive_agentless(&["--label", "kind=agentless"]).await;
    let url = c.etcd.as_ref().unwrap().client_url.clone();
    // The controller probes `web` through its published port and `inner`, which
    // publishes none, inside its container.
    let mut stack: serde_json::Value = serde_json::from_str(&web_stack(18190, "remote")).unwrap();
    let mut inner = stack["itemListElement"][0].clone();
    inner["name"] = "inner".into();
    inner.as_object_mut().unwrap().remove("ports");
    stack["itemListElement"].as_array_mut().unwrap().push(inner);
    let rev = c.put_stack("agentless-it", &stack.to_string()).await;
    let st = c
        .wait_status("agentless-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    assert_eq!(st.services["web"].host.as_deref(), Some(c.host_id.as_str()));
    for svc in ["web", "inner"] {
        assert_eq!(st.services[svc].health, "healthy", "{svc}: {st:#?}");
    }
    let ids = containers_of(&c.host_id, "agentless-it");
    assert_eq!(ids.len(), 2);
    let reg = c
        .store
        .get(&berth::store::keys::host(&c.host_id))
        .await
        .unwrap()
        .unwrap();
    let reg: berth::spec::HostRegistration = serde_json::from_slice(&reg.value).unwrap();
    assert_eq!(
        reg.labels.get("kind").map(String::as_str),
        Some("agentless")
    );

    // --force forgets it at once, for an engine that cannot be reached any more: what
    // runs there is left as it is.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "host",
            "remove",
            &c.host_id,
            "--force",
            "--etcd-endpoints",
            &url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    eventually("the controller stops driving it", T, || async {
        c.store
            .get(&berth::store::keys::host(&c.host_id))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        inspect(&ids[0], "{{.State.Running}}"),
        "true",
        "containers keep running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_agentless_host_removes_its_containers_and_unpins_its_slots() {
    let c = Cluster::start("rmhost").await;
    let url = c.etcd.as_ref().unwrap().client_url.clone();
    // A second host on the same engine, agentless; Berth tells their containers apart
    // by their `berth.host` label.
    let gone = format!("{}-b", c.host_id);
    remove_containers_of(&gone);
    run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["host", "add", &gone, "--etcd-endpoints", &url])
            .args(["--docker-host", "unix:///var/run/docker.sock"])
            .args(["--address", "127.0.0.1"]),
    );
    eventually("the controller drives the second host", T, || async {
        c.store
            .get(&berth::store::keys::host(&gone))
            .await
            .ok()?
            .map(|_| ())
    })
    .await;
    // Pinned, so nothing moves between two hosts that share one engine (and would share
    // container names); moves are the e2e suite's, on engines of their own. One stack per
    // host, for the same reason (each host makes the stack's network).
    let pinned_to = |host: &str| {
        serde_json::json!({"itemListElement": [
            {"name": "pinned", "image": "berth-test/busybox:latest",
             "command": busybox("sleep 100000"), "targetHost": host}
        ]})
        .to_string()
    };
    for (stack, host) in [("rmhost-it", &gone), ("rmhost-keep", &c.host_id)] {
        let rev = c.put_stack(stack, &pinned_to(host)).await;
        c.wait_status(stack, T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    }
    let kept = containers_of(&c.host_id, "rmhost-keep");
    assert_eq!(kept.len(), 1);
    assert_eq!(containers_of(&gone, "rmhost-it").len(), 1);

    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["host", "remove", &gone, "--timeout", "60s"])
            .args(["--etcd-endpoints", &url]),
    );
    // The command returns once the host is forgotten, its containers gone.
    assert_eq!(
        containers_of(&gone, "rmhost-it"),
        Vec::<String>::new(),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "host {gone} removed: moved 0 slot(s), removed 1 container(s), 1 pinned slot(s) now have no host"
        )),
        "{out}"
    );
    assert!(c
        .store
        .get(&berth::store::keys::agentless(&gone))
        .await
        .unwrap()
        .is_none());
    eventually("its registration goes with its reconciler", T, || async {
        c.store
            .get(&berth::store::keys::host(&gone))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let st = c
        .wait_status("rmhost-it", T, |s| s.phase == Phase::Pending)
        .await;
    // "is being removed" while it goes, "is not registered" once it is gone.
    assert!(
        st.message.contains(&format!("target host {gone} is")),
        "{}",
        st.message
    );
    assert_eq!(st.services["pinned"].host, None, "{st:#?}");
    assert_eq!(
        containers_of(&c.host_id, "rmhost-keep"),
        kept,
        "the other host's container is untouched"
    );
    assert_eq!(
        c.status("rmhost-keep").await.map(|s| s.phase),
        Some(Phase::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mounts_are_allowed_only_under_the_hosts_prefixes() {
    let c = Cluster::start("bind").await;
    let dir = "/tmp/berth-it/bind";
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/index.html"), "from the host").unwrap();
    let stack = |source: &str| {
        serde_json::json!({"itemListElement": [
            {"name": "web", "image": "berth-test/busybox:latest", "command": busybox("httpd -f -p 8080 -h /w"),
             "ports": [{"containerPort": 8080, "hostPort": 18191}],
             "volumeMounts": [{"type": "bind", "source": source, "target": "/w", "readOnly": true}]}
        ]})
        .to_string()
    };
    // The harness's agent allows only /tmp/berth-it.
    let rev = c.put_stack("bind-it", &stack("/etc")).await;
    let st = c
        .wait_status("bind-it", T, |s| {
            s.phase == Phase::Pending
                && s.observed_revision == rev
                && s.message.contains("does not allow bind mounts of /etc")
        })
        .await;
    assert!(
        st.message.contains("does not allow bind mounts of /etc"),
        "{}",
        st.message
    );
    assert!(containers_of(&c.host_id, "bind-it").is_empty());

    let rev = c.put_stack("bind-it", &stack(dir)).await;
    c.wait_status("bind-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    assert_eq!(
        eventually("serves the host's file", T, || http_get(
            18191,
            "/index.html"
        ))
        .await
        .trim(),
        "from the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_network_docker_refused_to_remove_is_removed_once_it_can_be() {
    let c = Cluster::start("netsweep").await;
    let json = serde_json::json!({
        "itemListElement": [
            {"name": "web", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000")}
        ]
    })
    .to_string();
    let rev = c.put_stack("netsweep-it", &json).await;
    c.wait_status("netsweep-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let net = "berth-netsweep-it";
    assert_eq!(
        docker(&[
            "network",
            "inspect",
            "-f",
            "{{index .Labels \"berth.host\"}}",
            net
        ]),
        c.host_id,
        "the network names the host that made it"
    );
    // A container Berth does not manage holds the network: Docker refuses to remove it.
    let squatter = "netsweep-it-squatter";
    docker(&["rm", "-f", squatter]);
    docker(&[
        "run",
        "-d",
        "--name",
        squatter,
        "--network",
        net,
        "berth-test/busybox:latest",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 100000 & wait",
    ]);
    c.delete_stack("netsweep-it").await;
    eventually("the stack's containers are removed", T, || async {
        containers_of(&c.host_id, "netsweep-it")
            .is_empty()
            .then_some(())
    })
    .await;
    // Every pass sweeps the stack networks: two passes, and the agent has tried.
    c.agent_passes(2).await;
    assert!(
        !docker(&["network", "ls", "-q", "--filter", &format!("name=^{net}$")]).is_empty(),
        "Docker refused while the squatter is attached"
    );
    assert!(
        !docker(&["ps", "-q", "--filter", &format!("name={squatter}")]).is_empty(),
        "Berth left the unmanaged container alone"
    );
    // Once it can be removed, a later pass removes it: nothing else touches the host.
    docker(&["rm", "-f", squatter]);
    eventually("the network is removed on a later pass", T, || async {
        docker(&["network", "ls", "-q", "--filter", &format!("name=^{net}$")])
            .is_empty()
            .then_some(())
    })
    .await;
}

/// A service whose container is healthy once `/ready` exists: `ready_after` seconds after
/// it starts (inside its start period), or never (unhealthy once the start period ends).
fn gated_spec(version: &str, ready_after: Option<u32>) -> String {
    let cmd = match ready_after {
        Some(secs) => format!("sleep {secs}; touch /ready; sleep 100000"),
        None => "sleep 100000".to_owned(),
    };
    serde_json::json!({"itemListElement": [
        {"name": "web", "image": "berth-test/busybox:latest", "command": busybox(&cmd),
         "environment": {"VERSION": version},
         // The controller's rollout must not undo what these tests watch the agent do.
         "update": {"failureAction": "continue"},
         "healthCheck": {"type": "command", "command": ["test", "-f", "/ready"],
                         "interval": 0.5, "timeout": 1, "retries": 1, "startPeriod": 10}}
    ]})
    .to_string()
}

/// Docker's events for `stack` between `since` and now, as (time in ns, action, id).
fn events_since(stack: &str, since: &str) -> Vec<(u128, String, String)> {
    let until = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    docker(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        &format!("label=berth.stack={stack}"),
        "--format",
        "{{.TimeNano}}|{{.Action}}|{{.Actor.ID}}",
    ])
    .lines()
    .filter_map(|l| {
        let mut p = l.splitn(3, '|');
        Some((
            p.next()?.parse().ok()?,
            p.next()?.to_owned(),
            p.next()?.to_owned(),
        ))
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_first_replacement_stops_the_old_container_only_once_the_new_one_is_healthy() {
    let c = Cluster::start("gated").await;
    let rev = c.put_stack("gated-it", &gated_spec("1", Some(0))).await;
    c.wait_status("gated-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let old = containers_of(&c.host_id, "gated-it");
    assert_eq!(old.len(), 1);
    let since = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    // The new version turns healthy 3 s after it starts.
    let rev = c.put_stack("gated-it", &gated_spec("2", Some(3))).await;
    c.wait_status("gated-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let new = eventually("the old container gone", T, || async {
        let ids = containers_of(&c.host_id, "gated-it");
        (ids.len() == 1).then_some(ids)
    })
    .await;
    assert_eq!(new.len(), 1, "the old container is gone");
    assert_ne!(new, old);
    assert_eq!(inspect(&new[0], "{{.Name}}"), "/gated-it.web.1");
    let events = events_since("gated-it", &since);
    let at = |id: &str, actions: &[&str]| {
        events
            .iter()
            .find(|(_, a, i)| i == id && actions.iter().any(|x| a.starts_with(x)))
            .map(|(t, _, _)| *t)
    };
    let new_started = at(&new[0], &["start"]);
    let new_healthy = at(&new[0], &["health_status: healthy"]);
    let old_stopped = at(&old[0], &["kill", "die", "stop"]);
    assert!(
        matches!((new_started, new_healthy, old_stopped), (Some(s), Some(h), Some(o)) if s < h && h <= o),
        "the old container stopped only after the new one was healthy: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_first_replacement_that_never_turns_healthy_leaves_the_old_container_serving() {
    let c = Cluster::start("neverhealthy").await;
    let rev = c
        .put_stack("neverhealthy-it", &gated_spec("1", Some(0)))
        .await;
    c.wait_status("neverhealthy-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let old = containers_of(&c.host_id, "neverhealthy-it");
    assert_eq!(old.len(), 1);
    let since = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let rev = c.put_stack("neverhealthy-it", &gated_spec("2", None)).await;
    // The new container has been found unhealthy and restarted: the agent has looked at
    // the slot several times since.
    let st = c
        .wait_status("neverhealthy-it", T, |s| {
            s.observed_revision == rev && s.services.get("web").is_some_and(|w| w.restarts >= 1)
        })
        .await;
    assert_ne!(st.phase, Phase::Running, "{st:#?}");
    assert_eq!(inspect(&old[0], "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(&old[0], "{{.Name}}"),
        "/neverhealthy-it.web.1",
        "the old container keeps the slot's name"
    );
    let events = events_since("neverhealthy-it", &since);
    assert!(
        !events
            .iter()
            .any(|(_, a, id)| id == &old[0] && (a == "kill" || a == "die" || a == "stop")),
        "the old container was never stopped: {events:#?}"
    );
    assert_eq!(containers_of(&c.host_id, "neverhealthy-it").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_asks_for_stop_first_is_stopped_before_its_replacement_starts() {
    let c = Cluster::start("stopfirst").await;
    let spec = |v: &str| {
        serde_json::json!({"itemListElement": [
            {"name": "worker", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000"),
             "environment": {"VERSION": v}, "update": {"order": "stop-first"}}
        ]})
        .to_string()
    };
    let rev = c.put_stack("stopfirst-it", &spec("1")).await;
    c.wait_status("stopfirst-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let old = containers_of(&c.host_id, "stopfirst-it");
    let since = docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    let rev = c.put_stack("stopfirst-it", &spec("2")).await;
    c.wait_status("stopfirst-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let new = containers_of(&c.host_id, "stopfirst-it");
    assert_eq!(new.len(), 1);
    assert_ne!(new, old);
    let events = events_since("stopfirst-it", &since);
    let at = |id: &str, actions: &[&str]| {
        events
            .iter()
            .find(|(_, a, i)| i == id && actions.contains(&a.as_str()))
            .map(|(t, _, _)| *t)
    };
    let old_gone = at(&old[0], &["destroy"]);
    let new_created = at(&new[0], &["create"]);
    assert!(
        matches!((old_gone, new_created), (Some(o), Some(n)) if o <= n),
        "the old container was removed before the new one was created: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_and_volume_that_must_exist_are_waited_for_not_created() {
    let mut c = Cluster::start("premade").await;
    let (net, vol) = ("berth-it-premade-net", "berth-it-premade-vol");
    let cleanup = || {
        docker(&["network", "rm", net]);
        docker(&["volume", "rm", "-f", vol]);
    };
    cleanup();
    let spec = serde_json::json!({
        "network": {"name": net, "createIfNotExists": false},
        "volumes": [{"name": vol, "createIfNotExists": false}],
        "itemListElement": [{"name": "app", "image": "berth-test/busybox:latest",
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
            "volumeMounts": [{"type": "volume", "source": vol, "target": "/data"}]}]
    })
    .to_string();
    let rev = c.put_stack("premade-it", &spec).await;
    let st = c
        .wait_status("premade-it", T, |s| {
            s.observed_revision == rev
                && s.services["app"]
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("createIfNotExists is false"))
        })
        .await;
    let msg = st.services["app"].message.clone().unwrap();
    assert!(
        msg.contains(&format!("network {net} does not exist")),
        "{msg}"
    );
    assert!(containers_of(&c.host_id, "premade-it").is_empty());
    assert!(
        docker(&["network", "ls", "-q", "--filter", &format!("name=^{net}$")])
            .trim()
            .is_empty(),
        "Berth did not create the network"
    );

    // The network appears; now the volume is the one missing.
    docker(&["network", "create", net]);
    c.wait_status("premade-it", T, |s| {
        s.services["app"]
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("volume {vol} does not exist")))
    })
    .await;
    assert!(
        docker(&["volume", "ls", "-q", "--filter", &format!("name=^{vol}$")])
            .trim()
            .is_empty(),
        "neither Berth nor Docker created the volume"
    );
    docker(&["volume", "create", vol]);
    c.wait_status("premade-it", T, |s| s.phase == Phase::Running)
        .await;
    let id = &containers_of(&c.host_id, "premade-it")[0];
    assert!(
        inspect(id, "{{json .NetworkSettings.Networks}}").contains(net),
        "joined the existing network"
    );
    c.delete_stack("premade-it").await;
    eventually("containers removed", T, || async {
        containers_of(&c.host_id, "premade-it")
            .is_empty()
            .then_some(())
    })
    .await;
    c.stop_agent().await;
    cleanup();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_become_the_containers_docker_cpu_and_memory_limits() {
    let c = Cluster::start("limits").await;
    let json = serde_json::json!({"itemListElement": [
        {"name": "app", "image": "berth-test/busybox:latest", "command": busybox("sleep 100000"),
         "resources": {"cpus": 0.5, "memoryMb": 64}}
    ]})
    .to_string();
    let rev = c.put_stack("limits-it", &json).await;
    c.wait_status("limits-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let id = containers_of(&c.host_id, "limits-it")[0].clone();
    assert_eq!(
        inspect(&id, "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}"),
        format!("{} {}", 500_000_000, 64 * 1024 * 1024),
        "cpus 0.5 and memoryMb 64 as Docker's NanoCpus and Memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_held_by_an_unmanaged_container_is_registered_and_not_scheduled_onto() {
    let c = Cluster::start("usedport").await;
    let port: u16 = 18192;
    let squatter = "usedport-it-squatter";
    docker(&["rm", "-f", squatter]);
    let out = docker(&[
        "run",
        "-d",
        "--name",
        squatter,
        "-p",
        &format!("{port}:8080"),
        "berth-test/busybox:latest",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 100000 & wait",
    ]);
    assert!(!out.is_empty(), "the unmanaged container started");
    struct Remove(&'static str);
    impl Drop for Remove {
        fn drop(&mut self) {
            docker(&["rm", "-f", self.0]);
        }
    }
    let _squatter = Remove(squatter);
    let used = || async {
        let kv = c.store.get(&keys::host(&c.host_id)).await.ok()??;
        let reg: HostRegistration = serde_json::from_slice(&kv.value).ok()?;
        Some(
            reg.used_ports
                .iter()
                .any(|p| p.port == port && p.protocol == "tcp"),
        )
    };
    // Unmanaged containers wake no pass: the agent finds it at the latest on a resync.
    eventually("the host registration lists the port", T, || async {
        used().await?.then_some(())
    })
    .await;

    let rev = c.put_stack("usedport-it", &web_stack(port, "mine")).await;
    let taken = format!("port {port}/tcp taken");
    let st = c
        .wait_status("usedport-it", T, |s| {
            s.observed_revision == rev
                && s.services
                    .get("web")
                    .and_then(|w| w.message.as_deref())
                    .is_some_and(|m| m.contains(&taken))
        })
        .await;
    assert_eq!(st.phase, Phase::Pending, "{st:#?}");
    assert!(
        containers_of(&c.host_id, "usedport-it").is_empty(),
        "no container created to clash with it"
    );

    // Once the port is free again, the registration says so and the stack runs there.
    docker(&["rm", "-f", squatter]);
    eventually("the port leaves the host registration", T, || async {
        (!used().await?).then_some(())
    })
    .await;
    c.wait_status("usedport-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    assert_eq!(
        eventually("serves on the port", T, || http_get(port, "/index.html"))
            .await
            .trim(),
        "mine"
    );
}
