//! Security properties against real etcd and Docker: secrets resolved only at container
//! creation and never leaked, volumes removed only when a stack asks.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use berth::spec::{Phase, StackStatus};
use berth::store::keys;
use common::*;

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_container_and_no_env_value_leaks_into_logs_events_metrics_or_status() {
    // The harness's own controller and agent are stopped: a `berth up` process with debug
    // logging runs instead, so everything it logs can be searched.
    let mut c = Cluster::start("secret").await;
    c.stop_agent().await;
    c.stop_controller().await;
    let url = c.etcd.as_ref().unwrap().client_url.clone();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    // Killed however the test ends: a `berth up` left behind would keep driving this
    // host's containers from its last view.
    let up = Proc(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "up",
                "--etcd-endpoints",
                &url,
                "--host-id",
                &c.host_id,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .unwrap(),
    );

    const SECRET: &str = "SECRET-MARKER-5f3a9c";
    const PLAIN: &str = "PLAIN-MARKER-77b1";
    c.store
        .put(&keys::secret("it-db-pass"), SECRET.as_bytes().to_vec())
        .await
        .unwrap();
    let json = serde_json::json!({"itemListElement": [
        {"name": "app", "image": "berth-test/busybox:latest",
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
         "environment": {"DB_PASSWORD": "{{secret:it-db-pass}}", "API_TOKEN": PLAIN,
                         "DB_URL": "postgres://app:{{secret:it-db-pass}}@db/x"}}
    ]})
    .to_string();
    let rev = c.put_stack("secret-it", &json).await;
    c.wait_status("secret-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let id = containers_of(&c.host_id, "secret-it")[0].clone();
    let env = inspect(&id, "{{json .Config.Env}}");
    assert!(env.contains(&format!("DB_PASSWORD={SECRET}")), "{env}");
    assert!(
        env.contains(&format!("DB_URL=postgres://app:{SECRET}@db/x")),
        "{env}"
    );

    // Everything that could carry a value out has had its turn: the agent's event of the
    // container it created is written, and the agent and the controller have each made
    // passes, which go over every stack, since: another stack put now has been placed,
    // created and reported running.
    let created = |stack: &'static str| {
        let store = c.store.clone();
        async move {
            eventually(
                &format!("the agent's Created event of {stack}"),
                T,
                || async {
                    let events = berth::events::list(&store, Some(stack)).await.ok()?;
                    events.iter().any(|e| e.reason == "Created").then_some(())
                },
            )
            .await
        }
    };
    created("secret-it").await;
    let passes = |component: &'static str| async move {
        let body = http_get(port, "/metrics").await?;
        let series = format!("berth_reconcile_total{{component=\"{component}\"");
        Some(metric_sum(&body, &series))
    };
    let before = (
        passes("agent").await.expect("metrics"),
        passes("scheduler").await.expect("metrics"),
    );
    let after = serde_json::json!({"itemListElement": [
        {"name": "after", "image": "berth-test/busybox:latest",
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]}
    ]})
    .to_string();
    let rev = c.put_stack("secret-after-it", &after).await;
    c.wait_status("secret-after-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    created("secret-after-it").await;
    for (component, from) in [("agent", before.0), ("scheduler", before.1)] {
        let now = passes(component).await.expect("metrics");
        assert!(
            now >= from + 2.0,
            "{component} passes since: {from} -> {now}"
        );
    }
    let metrics = http_get(port, "/metrics").await.expect("metrics");
    drop(up);
    let logs = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        logs.contains("secret-it"),
        "the log is the agent's and controller's"
    );

    let (kvs, _) = c.store.list("").await.unwrap();
    let copy = keys::host_secret(&c.host_id, "it-db-pass");
    assert!(
        kvs.iter()
            .any(|kv| kv.key == copy && String::from_utf8_lossy(&kv.value).contains(SECRET)),
        "the host's copy at {copy}"
    );
    for kv in &kvs {
        let text = String::from_utf8_lossy(&kv.value);
        // The secret itself, and the host's copy of it that its agent reads.
        if kv.key.starts_with(keys::SECRETS) || kv.key.starts_with(keys::HOST_SECRETS) {
            continue;
        }
        assert!(!text.contains(SECRET), "secret value in {}", kv.key);
        // The user's own spec holds the plain value (and only the reference to the
        // secret), and so do its kept revisions, which `berth rollback` puts back;
        // assignments carry the spec's env to the agent. Nothing else does.
        let spec = [keys::STACKS, keys::HISTORY, keys::ASSIGNMENTS];
        if !spec.iter().any(|p| kv.key.starts_with(p)) {
            assert!(!text.contains(PLAIN), "env value in {}", kv.key);
        }
    }
    // Show where a leak is, if there is one.
    for line in logs
        .lines()
        .filter(|l| l.contains(SECRET) || l.contains(PLAIN))
    {
        eprintln!("leak: {}", &line[..line.len().min(300)]);
    }
    for (what, text) in [("logs", &logs), ("metrics", &metrics)] {
        assert!(!text.contains(SECRET), "secret value in {what}");
        assert!(!text.contains(PLAIN), "env value in {what}");
    }
    let events = berth::events::list(&c.store, Some("secret-it"))
        .await
        .unwrap();
    assert!(!events.is_empty());
    let status: StackStatus = c.status("secret-it").await.unwrap();
    let status = serde_json::to_string(&status).unwrap();
    assert!(!status.contains(SECRET) && !status.contains(PLAIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_holds_a_copy_of_the_secrets_its_slots_use_only_while_they_run() {
    let c = Cluster::start("hostcopy").await;
    const VALUE: &str = "COPY-MARKER-41c2";
    c.store
        .put(&keys::secret("it-copy"), VALUE.as_bytes().to_vec())
        .await
        .unwrap();
    c.store
        .put(&keys::secret("it-unused"), b"unused".to_vec())
        .await
        .unwrap();
    let rev = c
        .put_stack("hostcopy-it", &app_using("it-copy", serde_json::json!({})))
        .await;
    c.wait_status("hostcopy-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    // The agent read the value from its host's copy: it reads nothing else.
    let id = containers_of(&c.host_id, "hostcopy-it")[0].clone();
    let env = inspect(&id, "{{json .Config.Env}}");
    assert!(env.contains(&format!("PW={VALUE}")), "{env}");
    let key = keys::host_secret(&c.host_id, "it-copy");
    let kv = c.store.get(&key).await.unwrap().expect("the host's copy");
    let copy: berth::hostsecret::HostSecret = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(
        copy.versions.values().collect::<Vec<_>>(),
        [VALUE],
        "one version, the one its container pins"
    );
    assert!(
        c.store
            .get(&keys::host_secret(&c.host_id, "it-unused"))
            .await
            .unwrap()
            .is_none(),
        "a secret no slot uses is not handed out"
    );
    c.delete_stack("hostcopy-it").await;
    eventually("the deleted stack's copy is gone", T, || async {
        c.store.get(&key).await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_reported_and_the_container_waits_for_it() {
    let c = Cluster::start("nosecret").await;
    let json = serde_json::json!({"itemListElement": [
        {"name": "app", "image": "berth-test/busybox:latest",
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
         "environment": {"TOKEN": "{{secret:it-not-yet}}"}}
    ]})
    .to_string();
    c.put_stack("nosecret-it", &json).await;
    let st = c
        .wait_status("nosecret-it", T, |s| {
            s.services["app"]
                .message
                .as_deref()
                .unwrap_or("")
                .contains(&format!(
                    "secret it-not-yet not yet delivered to host {}",
                    c.host_id
                ))
        })
        .await;
    assert_ne!(st.phase, Phase::Running);
    assert!(containers_of(&c.host_id, "nosecret-it").is_empty());
    c.store
        .put(&keys::secret("it-not-yet"), b"now".to_vec())
        .await
        .unwrap();
    c.wait_status("nosecret-it", T, |s| s.phase == Phase::Running)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_missing_while_the_controller_is_down_stops_only_new_creates() {
    let mut c = Cluster::start("static").await;
    c.store
        .put(&keys::secret("it-static"), b"STATIC-7f".to_vec())
        .await
        .unwrap();
    let rev = c
        .put_stack("static-it", &app_using("it-static", serde_json::json!({})))
        .await;
    c.wait_status("static-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let running = containers_of(&c.host_id, "static-it");
    // The controller is gone, and with it whoever hands out copies; the copy goes too.
    c.stop_controller().await;
    let copy = keys::host_secret(&c.host_id, "it-static");
    c.store.delete(&copy).await.unwrap();
    c.agent_passes(2).await;
    assert_eq!(
        containers_of(&c.host_id, "static-it"),
        running,
        "the running container is left alone"
    );
    assert_eq!(inspect(&running[0], "{{.State.Running}}"), "true");
    // A new create (its container removed behind Berth's back) waits, and says why.
    docker(&["rm", "-f", &running[0]]);
    let report = keys::report(&c.host_id, "static-it", "app.1");
    let want = format!("secret it-static not yet delivered to host {}", c.host_id);
    let message = eventually("the slot's report says what it waits for", T, || async {
        let kv = c.store.get(&report).await.ok()??;
        let r: berth::report::SlotReport = serde_json::from_slice(&kv.value).ok()?;
        r.message.filter(|m| m.contains(&want))
    })
    .await;
    assert!(
        containers_of(&c.host_id, "static-it").is_empty(),
        "created without its secret: {message}"
    );
}

/// One `app` with `PW` from secret `secret`, replaced by the rules of `update`.
fn app_using(secret: &str, update: serde_json::Value) -> String {
    serde_json::json!({"itemListElement": [
        {"name": "app", "image": "berth-test/busybox:latest",
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
         "environment": {"PW": format!("{{{{secret:{secret}}}}}")}, "update": update}
    ]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_created_again_gets_the_secret_version_its_spec_pins_even_once_etcd_compacted_it(
) {
    let mut c = Cluster::start("pinned").await;
    let secret = "it-pinned-pw";
    c.store
        .put(&keys::secret(secret), b"PINNED-OLD-a1".to_vec())
        .await
        .unwrap();
    let json = app_using(secret, serde_json::json!({}));
    let rev = c.put_stack("pinned-it", &json).await;
    c.wait_status("pinned-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    // No controller: the assignment keeps pinning the old version while etcd holds a
    // new one, as it does for a slot whose batch has not come yet.
    c.stop_controller().await;
    let rotated = c
        .store
        .put(&keys::secret(secret), b"PINNED-NEW-b2".to_vec())
        .await
        .unwrap();
    let pw_after_removal = |c: &Cluster| {
        let old = containers_of(&c.host_id, "pinned-it");
        for id in &old {
            docker(&["rm", "-f", id]);
        }
        let host = c.host_id.clone();
        async move {
            eventually("the container created again", T, || async {
                let id = containers_of(&host, "pinned-it").pop()?;
                if old.contains(&id) || inspect(&id, "{{.State.Running}}") != "true" {
                    return None;
                }
                let env = docker(&["exec", &id, "env"]);
                env.lines()
                    .find_map(|l| l.strip_prefix("PW="))
                    .map(str::to_owned)
            })
            .await
        }
    };
    assert_eq!(
        pw_after_removal(&c).await,
        "PINNED-OLD-a1",
        "the version its spec pins"
    );
    let events = berth::events::list(&c.store, Some("pinned-it"))
        .await
        .unwrap();
    assert!(!events.iter().any(|e| e.reason == "SecretRevisionCompacted"));

    // etcd forgets the pinned version: the host's copy, made while etcd had it, still
    // holds it, so the agent does not depend on etcd's history (nor on the controller).
    let url = c.etcd.as_ref().unwrap().client_url.clone();
    run_ok(
        Command::new("etcdctl")
            .args(["--endpoints", &url, "compact", &rotated.to_string()])
            .env("ETCDCTL_API", "3"),
    );
    assert_eq!(
        pw_after_removal(&c).await,
        "PINNED-OLD-a1",
        "the pinned version, from the host's copy"
    );
    c.stop_agent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_secret_in_use_leaves_its_containers_running() {
    let c = Cluster::start("delsecret").await;
    let secret = "it-deleted-pw";
    c.store
        .put(&keys::secret(secret), b"DELETED-MARKER-c3".to_vec())
        .await
        .unwrap();
    let update = serde_json::json!({"monitor": 1, "deadline": 3, "order": "stop-first"});
    let json = app_using(secret, update);
    let rev = c.put_stack("delsecret-it", &json).await;
    c.wait_status("delsecret-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let before = containers_of(&c.host_id, "delsecret-it");
    assert_eq!(before.len(), 1);

    c.store.delete(&keys::secret(secret)).await.unwrap();
    c.wait_status("delsecret-it", T, |s| {
        s.phase == Phase::Running && s.rollout.as_ref().is_some_and(|r| r.state == "RolledBack")
    })
    .await;
    assert_eq!(containers_of(&c.host_id, "delsecret-it"), before);
    assert_eq!(inspect(&before[0], "{{.State.Running}}"), "true");
    let events = berth::events::list(&c.store, Some("delsecret-it"))
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.reason == "RolloutFailed"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_are_removed_only_when_the_stack_asks_and_only_berths_own() {
    let c = Cluster::start("volumes").await;
    let pid = std::process::id();
    let (owned, foreign) = (
        format!("berth-it-owned-{pid}"),
        format!("berth-it-foreign-{pid}"),
    );
    // A volume Berth did not create, used by the stack by name.
    docker(&["volume", "create", &foreign]);
    let json = serde_json::json!({
        "removeVolumesOnDelete": true,
        "volumes": [{"name": owned, "createIfNotExists": true}],
        "itemListElement": [{"name": "app", "image": "berth-test/busybox:latest",
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
            "volumeMounts": [{"source": owned, "target": "/a"}, {"source": foreign, "target": "/b"}]}]
    })
    .to_string();
    let rev = c.put_stack("volumes-it", &json).await;
    c.wait_status("volumes-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    // Gone from this host (scaled to nothing), not deleted: its containers go, the data
    // stays. The agent reads no stack's spec: only a tombstone tells it "deleted".
    let mut moved: serde_json::Value = serde_json::from_str(&json).unwrap();
    moved["itemListElement"][0]["replicas"] = 0.into();
    c.put_stack("volumes-it", &moved.to_string()).await;
    eventually("the stack's container is gone from the host", T, || async {
        containers_of(&c.host_id, "volumes-it")
            .is_empty()
            .then_some(())
    })
    .await;
    c.agent_passes(2).await;
    assert_eq!(
        docker(&["volume", "ls", "-q", "--filter", &format!("name=^{owned}$")]),
        owned,
        "a stack that left the host keeps its volume"
    );
    let rev = c.put_stack("volumes-it", &json).await;
    c.wait_status("volumes-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    c.delete_stack("volumes-it").await;
    eventually("Berth's own volume removed", T, || async {
        docker(&["volume", "ls", "-q", "--filter", &format!("name=^{owned}$")])
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(
        docker(&["volume", "inspect", "-f", "{{.Name}}", &foreign]),
        foreign,
        "a volume Berth did not create stays"
    );
    docker(&["volume", "rm", &foreign]);
}
