//! End to end on one host, against a real etcd and the real Docker engine: the path a
//! new user takes with `make run` and `etcdctl put`.

mod common;

use std::time::Duration;

use berth::spec::Phase;
use berth::store::keys;
use common::*;

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_stack_runs_with_labels_and_port_and_reports_running_at_its_revision() {
    let c = Cluster::start("hello").await;
    let hello =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.json"))
            .unwrap();
    // Each test owns its host ports; the example's own port is used only here.
    let rev = c.put_stack("hello-it", &hello).await;
    let st = c
        .wait_status("hello-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    assert_eq!(st.services["web"].health, "healthy");
    assert_eq!(st.services["web"].host.as_deref(), Some(c.host_id.as_str()));

    let ids = containers_of(&c.host_id, "hello-it");
    assert_eq!(ids.len(), 1, "exactly one container");
    let labels = inspect(&ids[0], "{{json .Config.Labels}}");
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["berth.stack"], "hello-it");
    assert_eq!(labels["berth.service"], "web");
    assert_eq!(labels["berth.host"], c.host_id.as_str());
    assert_eq!(labels["berth.managed"], "true");
    assert!(labels["berth.spec-hash"]
        .as_str()
        .is_some_and(|h| h.len() == 16));
    assert_eq!(
        st.services["web"].container_id.as_deref(),
        Some(ids[0].as_str())
    );
    assert_eq!(inspect(&ids[0], "{{.Name}}"), "/hello-it.web.1");

    let body = eventually("port 18080 answers", T, || http_get(18080, "/index.html")).await;
    assert_eq!(body.trim(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_command_replaces_the_container() {
    let c = Cluster::start("replace").await;
    let rev1 = c.put_stack("replace-it", &web_stack(18181, "one")).await;
    c.wait_status("replace-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev1
    })
    .await;
    let before = containers_of(&c.host_id, "replace-it");
    assert_eq!(before.len(), 1);
    assert_eq!(
        eventually("v1 answers", T, || http_get(18181, "/index.html"))
            .await
            .trim(),
        "one"
    );

    let rev2 = c.put_stack("replace-it", &web_stack(18181, "two")).await;
    let st = c
        .wait_status("replace-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev2
        })
        .await;
    let after = containers_of(&c.host_id, "replace-it");
    assert_eq!(after.len(), 1, "the old container is gone: {after:?}");
    assert_ne!(after, before, "a new container replaced the old one");
    assert_eq!(
        st.services["web"].container_id.as_deref(),
        Some(after[0].as_str())
    );
    assert_eq!(
        eventually("v2 answers", T, || http_get(18181, "/index.html"))
            .await
            .trim(),
        "two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_stack_reports_every_problem_while_other_stacks_keep_running() {
    let c = Cluster::start("invalid").await;
    let rev = c.put_stack("good-it", &web_stack(18182, "good")).await;
    c.wait_status("good-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let good = containers_of(&c.host_id, "good-it");

    let many = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/invalid/many-errors.json"
    ))
    .unwrap();
    let bad_rev = c.put_stack("bad-it", &many).await;
    let junk_rev = c.put_stack("junk-it", "{\"itemListElement\": [").await;
    let bad = c
        .wait_status("bad-it", T, |s| {
            s.phase == Phase::Invalid && s.observed_revision == bad_rev
        })
        .await;
    assert!(
        bad.problems.len() >= 5,
        "every problem listed: {:#?}",
        bad.problems
    );
    assert!(bad.message.contains("sideways"), "{}", bad.message);
    let valid = bad.conditions.iter().find(|c| c.type_ == "Valid").unwrap();
    assert_eq!(valid.status, berth::spec::ConditionStatus::False);
    let junk = c
        .wait_status("junk-it", T, |s| {
            s.phase == Phase::Invalid && s.observed_revision == junk_rev
        })
        .await;
    assert!(junk.message.contains("JSON"), "{}", junk.message);

    // An invalid update of a running stack keeps the last valid version running.
    let assignment = || async {
        c.store
            .get(&keys::assignment(&c.host_id, "good-it"))
            .await
            .unwrap()
            .expect("the good stack is assigned")
            .mod_revision
    };
    let assigned = assignment().await;
    let broken_rev = c.put_stack("good-it", "{\"itemListElement\": []}").await;
    c.wait_status("good-it", T, |s| {
        s.phase == Phase::Invalid && s.observed_revision == broken_rev
    })
    .await;
    // The pass that found the spec invalid wrote its assignments before the status.
    assert_eq!(
        assignment().await,
        assigned,
        "the last valid assignment was not rewritten"
    );
    c.agent_passes(2).await;
    assert_eq!(
        containers_of(&c.host_id, "good-it"),
        good,
        "the good stack was not disturbed"
    );
    assert_eq!(inspect(&good[0], "{{.State.Running}}"), "true");
    assert!(containers_of(&c.host_id, "bad-it").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_stack_removes_its_containers_and_status_but_not_unmanaged_ones() {
    let c = Cluster::start("delete").await;
    let rev = c.put_stack("delete-it", &web_stack(18183, "bye")).await;
    c.wait_status("delete-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    // A container Berth does not manage, with a name like a managed one.
    let bystander = format!("delete-it.bystander.{}", std::process::id());
    docker(&["rm", "-f", &bystander]);
    let out = docker(&[
        "run",
        "-d",
        "--name",
        &bystander,
        "--label",
        "berth.host=it-delete",
        "berth-test/busybox:latest",
        "sleep",
        "600",
    ]);
    assert!(!out.is_empty(), "bystander container started");

    c.delete_stack("delete-it").await;
    eventually("containers removed", T, || async {
        containers_of(&c.host_id, "delete-it")
            .is_empty()
            .then_some(())
    })
    .await;
    eventually("status removed", T, || async {
        c.status("delete-it").await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        inspect(&bystander, "{{.State.Running}}"),
        "true",
        "unmanaged container untouched"
    );
    docker(&["rm", "-f", &bystander]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_running_containers_without_restarting_them() {
    let mut c = Cluster::start("adopt").await;
    let rev = c.put_stack("adopt-it", &web_stack(18184, "adopt")).await;
    c.wait_status("adopt-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let ids = containers_of(&c.host_id, "adopt-it");
    let started = inspect(&ids[0], "{{.State.StartedAt}}");
    let adopted = berth::metrics::CONTAINER_ACTIONS
        .with_label_values(&["adopt"])
        .get();

    c.stop_agent().await;
    c.start_agent();
    // The new agent's first pass (which adopts or acts), the one its first probe result
    // wakes, and a resync: each had its chance to restart or replace the container.
    c.agent_passes(3).await;
    assert!(
        berth::metrics::CONTAINER_ACTIONS
            .with_label_values(&["adopt"])
            .get()
            > adopted,
        "the new agent counted the container as adopted"
    );
    let st = c
        .wait_status("adopt-it", T, |s| s.phase == Phase::Running)
        .await;
    assert_eq!(
        containers_of(&c.host_id, "adopt-it"),
        ids,
        "no duplicate, same container"
    );
    assert_eq!(
        inspect(&ids[0], "{{.State.StartedAt}}"),
        started,
        "not restarted"
    );
    assert_eq!(st.services["web"].restarts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_restarted_and_counted() {
    let c = Cluster::start("restart").await;
    let rev = c.put_stack("restart-it", &web_stack(18185, "again")).await;
    c.wait_status("restart-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let ids = containers_of(&c.host_id, "restart-it");
    docker(&["kill", &ids[0]]);
    let st = c
        .wait_status("restart-it", T, |s| {
            s.phase == Phase::Running && s.services["web"].restarts == 1
        })
        .await;
    assert_eq!(
        containers_of(&c.host_id, "restart-it"),
        ids,
        "restarted in place"
    );
    assert_eq!(inspect(&ids[0], "{{.State.Running}}"), "true");
    assert_eq!(st.services["web"].state, "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_had_fails_the_stack_with_a_clear_message() {
    // A registry that answers, with a login that works, but no such tag: not found is
    // permanent, so the stack is Failed; a registry nobody answers for is only missing.
    let reg = common::registry::Registry::start("ci", "pw-noimage");
    let c = Cluster::start("noimage").await;
    c.store
        .put(
            &berth::store::keys::registry(&reg.addr),
            serde_json::json!({"username": "ci", "password": "pw-noimage"})
                .to_string()
                .into_bytes(),
        )
        .await
        .expect("put login");
    let nope = format!("{}/team/nope:1", reg.addr);
    let json = web_stack(18186, "x").replace("berth-test/busybox:latest", &nope);
    let rev = c.put_stack("noimage-it", &json).await;
    let st = c
        .wait_status("noimage-it", T, |s| {
            s.phase == Phase::Failed && s.observed_revision == rev
        })
        .await;
    let msg = st.services["web"].message.clone().unwrap_or_default();
    assert!(
        msg.contains(&format!(
            "pulling {nope}: not found at registry {}",
            reg.addr
        )) && msg.contains("manifest unknown"),
        "{msg}"
    );
    assert_eq!(st.services["web"].state, "failed");
    assert!(containers_of(&c.host_id, "noimage-it").is_empty());

    let gone = format!("127.0.0.1:{}/team/app:1", free_port());
    let json = web_stack(18186, "x").replace("berth-test/busybox:latest", &gone);
    let rev = c.put_stack("noimage-it", &json).await;
    let st = c
        .wait_status("noimage-it", T, |s| {
            s.observed_revision == rev
                && s.services["web"]
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("unreachable"))
        })
        .await;
    let web = &st.services["web"];
    assert!(
        web.message.as_deref().is_some_and(|m| m.contains(&format!(
            "pulling {gone}: registry {} unreachable",
            &gone[..gone.find('/').unwrap()]
        ))),
        "{st:#?}"
    );
    assert_eq!(web.state, "missing", "retried: not failed");
    assert_ne!(st.phase, Phase::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_each_other_by_name_and_named_volumes_are_created_and_kept() {
    let c = Cluster::start("network").await;
    let volume = format!("berth-it-data-{}", std::process::id());
    let json = serde_json::json!({
        "@type": "ItemList",
        "name": "Two services on one network",
        "network": {"name": "berth-it-net", "driver": "bridge", "createIfNotExists": true},
        "volumes": [{"name": volume, "driver": "local", "createIfNotExists": true}],
        "itemListElement": [
            {"name": "web", "position": 1, "image": "berth-test/busybox:latest",
             "command": ["sh", "-c", "trap 'exit 0' TERM; echo shared > /data/index.html; httpd -f -p 8080 -h /data & wait"],
             "environment": {"GREETING": "hi there"},
             "volumeMounts": [{"source": volume, "target": "/data", "type": "volume"}]},
            {"name": "client", "position": 2, "image": "berth-test/busybox:latest",
             "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
             "softwareRequirements": [{"name": "web", "waitForHealthy": false}],
             "healthCheck": {"type": "command", "command": ["wget", "-q", "-O", "/dev/null", "http://web:8080/index.html"],
                             "interval": 1, "timeout": 2, "retries": 3}}
        ]
    })
    .to_string();
    let rev = c.put_stack("network-it", &json).await;
    let st = c
        .wait_status("network-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    assert_eq!(
        st.services["client"].health, "healthy",
        "client reached web by its service name"
    );
    let web = containers_of(&c.host_id, "network-it")
        .into_iter()
        .find(|id| inspect(id, "{{.Name}}") == "/network-it.web.1")
        .expect("web container");
    assert!(inspect(&web, "{{json .Config.Env}}").contains("GREETING=hi there"));
    assert_eq!(inspect(&web, "{{range .Mounts}}{{.Name}}{{end}}"), volume);
    assert!(inspect(&web, "{{json .NetworkSettings.Networks}}").contains("berth-it-net"));

    c.delete_stack("network-it").await;
    eventually("containers removed", T, || async {
        containers_of(&c.host_id, "network-it")
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(
        docker(&["volume", "inspect", "-f", "{{.Name}}", &volume]),
        volume,
        "data is never deleted by surprise"
    );
    docker(&["volume", "rm", &volume]);
    eventually("the stack's network is removed", T, || async {
        docker(&["network", "ls", "-q", "--filter", "name=^berth-it-net$"])
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_state_stopped_stops_containers_and_running_starts_them_again() {
    let c = Cluster::start("stopped").await;
    let json = web_stack(18187, "zzz");
    let rev = c.put_stack("stopped-it", &json).await;
    c.wait_status("stopped-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let ids = containers_of(&c.host_id, "stopped-it");
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["desiredState"] = "stopped".into();
    let rev = c.put_stack("stopped-it", &v.to_string()).await;
    c.wait_status("stopped-it", T, |s| {
        s.phase == Phase::Stopped && s.observed_revision == rev
    })
    .await;
    assert_eq!(
        containers_of(&c.host_id, "stopped-it"),
        ids,
        "stopped, not removed"
    );
    assert_eq!(inspect(&ids[0], "{{.State.Running}}"), "false");
    v["desiredState"] = "running".into();
    let rev = c.put_stack("stopped-it", &v.to_string()).await;
    c.wait_status("stopped-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    assert_eq!(
        containers_of(&c.host_id, "stopped-it"),
        ids,
        "the same container started again"
    );
}
