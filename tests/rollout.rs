//! Rolling updates on the real Docker engine: the controller hands a changed service's
//! slots their new container a batch at a time, and rolls a failing version back.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth::spec::Phase;
use berth::store::keys;
use common::*;

const T: Duration = Duration::from_secs(90);

/// `replicas` of `web`: version `version`, healthy once `/ready` exists (`ready_after`
/// seconds after start), or exiting at once when `crash`.
fn web(version: &str, replicas: u32, update: serde_json::Value, crash: bool) -> String {
    let cmd = if crash {
        "exit 1".to_owned()
    } else {
        "trap 'exit 0' TERM; sleep 1; touch /ready; sleep 100000 & wait".to_owned()
    };
    serde_json::json!({"itemListElement": [
        {"name": "web", "image": "berth-test/busybox:latest", "command": ["sh", "-c", cmd],
         "environment": {"VERSION": version}, "replicas": replicas, "update": update,
         "healthCheck": {"type": "command", "command": ["test", "-f", "/ready"],
                         "interval": 0.5, "timeout": 1, "retries": 1, "startPeriod": 10}}
    ]})
    .to_string()
}

/// Containers of `stack` on `host` that Docker reports running and healthy.
fn healthy(host: &str, stack: &str) -> usize {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.host={host}"),
        "--filter",
        &format!("label=berth.stack={stack}"),
        "--filter",
        "health=healthy",
    ])
    .lines()
    .filter(|l| !l.is_empty())
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_replicas_with_parallelism_two_never_have_fewer_than_four_running_and_healthy() {
    let c = Cluster::start("rolling").await;
    // Stop-first, so a slot being replaced is down: only the batch size bounds how many.
    let update = serde_json::json!({"parallelism": 2, "monitor": 1, "order": "stop-first"});
    let rev = c
        .put_stack("rolling-it", &web("1", 6, update.clone(), false))
        .await;
    c.wait_status("rolling-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    eventually("six healthy", T, || async {
        (healthy(&c.host_id, "rolling-it") == 6).then_some(())
    })
    .await;

    let done = Arc::new(AtomicBool::new(false));
    // Stop sampling however the test ends: a panic below must not leave it running.
    struct Stop(Arc<AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = Stop(done.clone());
    let least = Arc::new(AtomicUsize::new(usize::MAX));
    let sampler = {
        let (done, least, host) = (done.clone(), least.clone(), c.host_id.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                least.fetch_min(healthy(&host, "rolling-it"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let rev = c.put_stack("rolling-it", &web("2", 6, update, false)).await;
    let st = c
        .wait_status("rolling-it", T, |s| {
            s.observed_revision == rev
                && s.phase == Phase::Running
                && s.rollout.as_ref().is_some_and(|r| r.state == "Complete")
        })
        .await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let least = least.load(Ordering::Relaxed);
    assert!(
        least >= 4,
        "{least} running and healthy at one point: {st:#?}"
    );
    assert!(least < 6, "the rollout replaced some slot at all");
    let r = st.rollout.unwrap();
    assert_eq!((r.updated, r.total, r.failures), (6, 6, 0));
    let ids = containers_of(&c.host_id, "rolling-it");
    assert_eq!(ids.len(), 6);
    for id in ids {
        assert!(
            inspect(&id, "{{json .Config.Env}}").contains("VERSION=2"),
            "{id} runs version 2"
        );
    }
    let events = berth::events::list(&c.store, Some("rolling-it"))
        .await
        .unwrap();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for want in ["RolloutStarted", "BatchReplaced", "RolloutComplete"] {
        assert!(reasons.contains(&want), "no {want} event: {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_version_is_rolled_back_and_the_old_containers_keep_running() {
    let c = Cluster::start("rollback").await;
    let update = serde_json::json!({"parallelism": 1, "monitor": 1, "deadline": 20});
    let rev1 = c
        .put_stack("rollback-it", &web("1", 3, update.clone(), false))
        .await;
    c.wait_status("rollback-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev1
    })
    .await;
    let old = containers_of(&c.host_id, "rollback-it");
    assert_eq!(old.len(), 3);

    let bad = web("2", 3, update, true);
    let rev2 = c.put_stack("rollback-it", &bad).await;
    let st = c
        .wait_status("rollback-it", T, |s| {
            s.observed_revision == rev2
                && s.rollout.as_ref().is_some_and(|r| r.state == "RolledBack")
                && s.phase == Phase::Running
        })
        .await;
    assert!(
        st.message.contains(&format!(
            "runs revision {rev1} because revision {rev2} failed"
        )),
        "{}",
        st.message
    );
    // The crashed replacement is gone; the containers that ran version 1 never stopped.
    let now = eventually("only the old containers", T, || async {
        let ids = containers_of(&c.host_id, "rollback-it");
        (ids.len() == 3).then_some(ids)
    })
    .await;
    let (mut now, mut old) = (now, old);
    now.sort();
    old.sort();
    assert_eq!(now, old, "the same containers as before the bad version");
    for id in &now {
        assert_eq!(inspect(id, "{{.State.Running}}"), "true");
        assert_eq!(inspect(id, "{{.RestartCount}}"), "0");
    }
    // The key still holds what the user put.
    let kv = c
        .store
        .get(&keys::stack("rollback-it"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kv.value, bad.as_bytes());
    let events = berth::events::list(&c.store, Some("rollback-it"))
        .await
        .unwrap();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for want in ["RolloutStarted", "RolloutFailed", "RolledBack"] {
        assert!(reasons.contains(&want), "no {want} event: {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_carries_the_rollout_on_where_the_old_one_left_it() {
    let mut c = Cluster::start("handover").await;
    let update = serde_json::json!({"parallelism": 1, "monitor": 2});
    let rev1 = c
        .put_stack("handover-it", &web("1", 4, update.clone(), false))
        .await;
    c.wait_status("handover-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev1
    })
    .await;
    let rev2 = c
        .put_stack("handover-it", &web("2", 4, update, false))
        .await;
    c.wait_status("handover-it", T, |s| {
        s.rollout
            .as_ref()
            .is_some_and(|r| r.to_revision == rev2 && r.updated >= 1)
    })
    .await;
    let record = |c: &Cluster| {
        let store = c.store.clone();
        async move {
            let kv = store
                .get(&keys::rollout("handover-it"))
                .await
                .unwrap()
                .unwrap();
            serde_json::from_slice::<berth::controller::rollout::Rollout>(&kv.value).unwrap()
        }
    };
    let before = record(&c).await;
    let replaced: Vec<u32> = before.services["web"]
        .slots
        .iter()
        .filter(|(_, p)| p.outcome.is_some())
        .map(|(r, _)| *r)
        .collect();
    let id_of = |replica: u32| inspect(&format!("handover-it.web.{replica}"), "{{.Id}}");
    let replaced_ids: Vec<String> = replaced.iter().map(|r| id_of(*r)).collect();

    // The leader goes; another controller takes over mid-rollout.
    c.controller.cancel();
    let next = tokio_util::sync::CancellationToken::new();
    spawn_controller(&c.store, "handover-2", &next);
    c.controller = next;
    let st = c
        .wait_status("handover-it", T, |s| {
            s.phase == Phase::Running && s.rollout.as_ref().is_some_and(|r| r.state == "Complete")
        })
        .await;
    let after = record(&c).await;
    assert_eq!(
        (after.started_at_ms, after.from_revision, after.to_revision),
        (before.started_at_ms, rev1, rev2),
        "the same rollout, not a new one: {st:#?}"
    );
    let now: Vec<String> = replaced.iter().map(|r| id_of(*r)).collect();
    assert_eq!(
        now, replaced_ids,
        "slots replaced before the handover were not replaced again"
    );
    c.stop_agent().await;
}

/// Run the `berth` binary against the cluster's etcd with stdin closed; (exit code,
/// stdout, stderr).
fn berth(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let url = c.etcd.as_ref().unwrap().client_url.clone();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .args(["--etcd-endpoints", &url])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each slot's `VERSION` as the assignments in etcd hand it out, by replica.
async fn assigned_versions(c: &Cluster, stack: &str) -> Vec<String> {
    let kv = c
        .store
        .get(&keys::assignment(&c.host_id, stack))
        .await
        .unwrap()
        .unwrap();
    let a: berth::assignment::Assignment = serde_json::from_slice(&kv.value).unwrap();
    let mut slots: Vec<_> = a.slots.iter().filter(|s| !s.handoff).collect();
    slots.sort_by_key(|s| s.replica);
    slots
        .iter()
        .map(|s| s.container.env.get("VERSION").cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_each_revision_and_berth_rollback_writes_the_last_stable_spec_back() {
    let c = Cluster::start("history").await;
    let id = "history-it";
    let update = serde_json::json!({"parallelism": 1, "monitor": 1, "deadline": 20});
    let good = web("1", 2, update.clone(), false);
    let rev1 = c.put_stack(id, &good).await;
    c.wait_status(id, T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev1
    })
    .await;
    let running = containers_of(&c.host_id, id);
    let rev2 = c.put_stack(id, &web("2", 2, update, true)).await;
    c.wait_status(id, T, |s| {
        s.observed_revision == rev2 && s.rollout.as_ref().is_some_and(|r| r.state == "RolledBack")
    })
    .await;

    let history = eventually("revision 2 recorded as rolled back", T, || async {
        let (code, out, _) = berth(&c, &["history", id]);
        (code == 0 && out.contains("rolled back")).then_some(out)
    })
    .await;
    let line = |rev: i64| {
        history
            .lines()
            .find(|l| l.split_whitespace().next() == Some(rev.to_string().as_str()))
            .unwrap_or_else(|| panic!("no line for revision {rev}: {history}"))
            .to_owned()
    };
    assert!(line(rev1).contains("complete"), "{history}");
    assert!(
        line(rev1).contains("web=berth-test/busybox:latest"),
        "{history}"
    );
    assert!(
        line(rev2).contains("* ") && line(rev2).contains("rolled back"),
        "{history}"
    );

    // Not on a terminal and no --yes: it asks nobody, and writes nothing.
    let (code, out, err) = berth(&c, &["rollback", id]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(
        out.contains("\"VERSION\": \"2\"") && out.contains("\"VERSION\": \"1\""),
        "the diff: {out}"
    );
    let key = c.store.get(&keys::stack(id)).await.unwrap().unwrap();
    assert_eq!(key.mod_revision, rev2, "nothing written");

    let (code, out, err) = berth(&c, &["rollback", id, "--to-revision", "999"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not in its history"), "{err}");

    let (code, out, err) = berth(&c, &["rollback", id, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let key = c.store.get(&keys::stack(id)).await.unwrap().unwrap();
    assert_eq!(
        key.value,
        good.as_bytes(),
        "revision 1's spec, byte for byte"
    );
    let rev3 = key.mod_revision;
    assert!(out.contains(&format!("as revision {rev3}")), "{out}");
    let st = c
        .wait_status(id, T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev3
        })
        .await;
    assert!(st.message.contains("2/2"), "{st:#?}");
    assert_eq!(
        containers_of(&c.host_id, id),
        running,
        "the slots already ran revision 1's containers: none replaced"
    );
    eventually("revision 3 recorded as complete", T, || async {
        let (_, out, _) = berth(&c, &["history", id]);
        out.lines()
            .any(|l| l.starts_with(&format!("{rev3} *")) && l.contains("complete"))
            .then_some(())
    })
    .await;
    // The last stable revision before 3 is 1, which is what the key holds already.
    let (code, out, err) = berth(&c, &["rollback", id, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to write"), "{out}");
    let key = c.store.get(&keys::stack(id)).await.unwrap().unwrap();
    assert_eq!(key.mod_revision, rev3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_rollout_pause_holds_every_batch_until_resume() {
    let mut c = Cluster::start("pause").await;
    let id = "pause-it";
    let update = serde_json::json!({"parallelism": 1, "monitor": 1});
    let rev1 = c.put_stack(id, &web("1", 3, update.clone(), false)).await;
    c.wait_status(id, T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev1
    })
    .await;
    let (code, out, err) = berth(&c, &["rollout", "pause", id]);
    assert_eq!(code, 0, "{out}{err}");
    let rev2 = c.put_stack(id, &web("2", 3, update, false)).await;
    let st = c
        .wait_status(id, T, |s| {
            s.rollout
                .as_ref()
                .is_some_and(|r| r.to_revision == rev2 && r.state == "Paused")
        })
        .await;
    let r = st.rollout.as_ref().unwrap();
    assert!(r.paused_by_operator, "{st:#?}");
    assert_eq!(st.phase, Phase::Progressing, "{st:#?}");
    assert!(st.message.contains("paused by an operator"), "{st:#?}");
    // The pass that wrote this status wrote the assignments first.
    assert_eq!(
        assigned_versions(&c, id).await,
        ["1", "1", "1"],
        "no slot handed revision 2 while paused"
    );

    let (code, out, err) = berth(&c, &["rollout", "resume", id]);
    assert_eq!(code, 0, "{out}{err}");
    c.wait_status(id, T, |s| {
        s.phase == Phase::Running && s.rollout.as_ref().is_some_and(|r| r.state == "Complete")
    })
    .await;
    assert_eq!(assigned_versions(&c, id).await, ["2", "2", "2"]);
    let reasons: Vec<String> = berth::events::list(&c.store, Some(id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    for want in ["RolloutPaused", "RolloutResumed", "RolloutComplete"] {
        assert!(reasons.iter().any(|r| r == want), "no {want}: {reasons:?}");
    }
    let (code, _, err) = berth(&c, &["rollout", "resume", id]);
    assert_eq!(code, 1, "not paused any more: {err}");
    let (code, _, err) = berth(&c, &["rollout", "pause", "no-such-stack"]);
    assert_eq!(code, 1, "{err}");
    c.stop_agent().await;
}

/// `app` (`replicas`, reading `PW` from secret `secret`; it exits at once unless `PW` is
/// not `bad`) and `other`, which uses no secret.
fn secret_stack(secret: &str, replicas: u32, update: serde_json::Value) -> String {
    let run = "trap 'exit 0' TERM; sleep 100000 & wait";
    serde_json::json!({"itemListElement": [
        {"name": "app", "image": "berth-test/busybox:latest",
         "command": ["sh", "-c", format!("test \"$PW\" = bad && exit 1; {run}")],
         "environment": {"PW": format!("{{{{secret:{secret}}}}}")},
         "replicas": replicas, "update": update},
        {"name": "other", "image": "berth-test/busybox:latest", "command": ["sh", "-c", run],
         "environment": {"PLAIN": "1"}}
    ]})
    .to_string()
}

/// Container ids of `stack`'s `service`, sorted.
fn ids_of(host: &str, stack: &str, service: &str) -> Vec<String> {
    let mut ids: Vec<String> = containers_of(host, stack)
        .into_iter()
        .filter(|id| inspect(id, "{{index .Config.Labels \"berth.service\"}}") == service)
        .collect();
    ids.sort();
    ids
}

/// `PW` as the running container `id` sees it.
fn pw_in(id: &str) -> String {
    docker(&["exec", id, "env"])
        .lines()
        .find_map(|l| l.strip_prefix("PW="))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_rolled_out_to_the_containers_that_use_it_and_to_no_other() {
    const OLD: &str = "ROTATE-OLD-3c1f7a";
    const NEW: &str = "ROTATE-NEW-9e2d4b";
    let c = Cluster::start("rotate").await;
    let secret = "it-rotate-pw";
    c.store
        .put(&keys::secret(secret), OLD.as_bytes().to_vec())
        .await
        .unwrap();
    let update = serde_json::json!({"parallelism": 1, "monitor": 1});
    let rev = c
        .put_stack("rotate-it", &secret_stack(secret, 2, update))
        .await;
    c.wait_status("rotate-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let apps = ids_of(&c.host_id, "rotate-it", "app");
    let others = ids_of(&c.host_id, "rotate-it", "other");
    assert_eq!((apps.len(), others.len()), (2, 1));
    for id in &apps {
        assert_eq!(pw_in(id), OLD);
    }

    // Rotate: only the secret's key changes.
    let rotated = c
        .store
        .put(&keys::secret(secret), NEW.as_bytes().to_vec())
        .await
        .unwrap();
    c.wait_status("rotate-it", T, |s| {
        s.rollout
            .as_ref()
            .is_some_and(|r| r.to_revision == rotated && r.state == "Progressing")
    })
    .await;
    let st = c
        .wait_status("rotate-it", T, |s| {
            s.phase == Phase::Running
                && s.rollout
                    .as_ref()
                    .is_some_and(|r| r.to_revision == rotated && r.state == "Complete")
        })
        .await;
    assert_eq!(st.observed_revision, rev, "the spec key was not touched");
    let r = st.rollout.as_ref().unwrap();
    assert_eq!((r.from_revision, r.updated, r.total), (rev, 2, 2));
    let now = eventually("the replaced containers alone", T, || async {
        let ids = ids_of(&c.host_id, "rotate-it", "app");
        (ids.len() == 2).then_some(ids)
    })
    .await;
    for id in &now {
        assert!(!apps.contains(id), "{id} was replaced");
        assert_eq!(pw_in(id), NEW);
    }
    assert_eq!(
        ids_of(&c.host_id, "rotate-it", "other"),
        others,
        "the service that does not use the secret kept its container"
    );
    let events = berth::events::list(&c.store, Some("rotate-it"))
        .await
        .unwrap();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for want in ["RolloutStarted", "BatchReplaced", "RolloutComplete"] {
        assert!(reasons.contains(&want), "no {want} event: {reasons:?}");
    }

    // The revision is in the assignment; the value is nowhere but in the secret's key.
    let assignment = c
        .store
        .get(&keys::assignment(&c.host_id, "rotate-it"))
        .await
        .unwrap()
        .unwrap();
    let assignment = String::from_utf8_lossy(&assignment.value).into_owned();
    assert!(
        assignment.contains(&format!("\"secretRevisions\":{{\"{secret}\":{rotated}}}")),
        "{assignment}"
    );
    let (kvs, _) = c.store.list("").await.unwrap();
    // The host's copy holds the version its containers pin, and no longer the old one.
    let copy = kvs
        .iter()
        .find(|kv| kv.key == keys::host_secret(&c.host_id, secret))
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .expect("the host's copy of the secret");
    assert!(
        copy.contains(NEW) && !copy.contains(OLD),
        "the copy holds an old version"
    );
    for kv in kvs
        .iter()
        .filter(|kv| !kv.key.starts_with(keys::SECRETS) && !kv.key.starts_with(keys::HOST_SECRETS))
    {
        let text = String::from_utf8_lossy(&kv.value);
        assert!(
            !text.contains(OLD) && !text.contains(NEW),
            "secret value in {}",
            kv.key
        );
    }
    for e in &events {
        assert!(!e.message.contains(OLD) && !e.message.contains(NEW));
    }
    for id in now.iter().chain(&others) {
        let labels = inspect(id, "{{json .Config.Labels}}");
        assert!(!labels.contains(OLD) && !labels.contains(NEW), "{labels}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_breaks_the_service_is_rolled_back_to_the_old_value_on_an_agentless_host() {
    let mut c = Cluster::start("rotateback").await;
    c.drive_agentless(&[]).await;
    let secret = "it-rotateback-pw";
    c.store
        .put(&keys::secret(secret), b"good".to_vec())
        .await
        .unwrap();
    // Stop-first: the rolled-back slot gets a container created afresh, which must be
    // given the value its spec pins, not the one etcd holds now.
    let update =
        serde_json::json!({"parallelism": 1, "monitor": 1, "deadline": 20, "order": "stop-first"});
    let rev = c
        .put_stack("rotateback-it", &secret_stack(secret, 2, update))
        .await;
    c.wait_status("rotateback-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;

    let rotated = c
        .store
        .put(&keys::secret(secret), b"bad".to_vec())
        .await
        .unwrap();
    let st = c
        .wait_status("rotateback-it", T, |s| {
            s.phase == Phase::Running
                && s.rollout
                    .as_ref()
                    .is_some_and(|r| r.to_revision == rotated && r.state == "RolledBack")
        })
        .await;
    assert!(
        st.message.contains(&format!(
            "runs revision {rev} because revision {rotated} failed"
        )),
        "{}",
        st.message
    );
    let apps = eventually("both replicas running again", T, || async {
        let ids = ids_of(&c.host_id, "rotateback-it", "app");
        (ids.len() == 2
            && ids
                .iter()
                .all(|id| inspect(id, "{{.State.Running}}") == "true"))
        .then_some(ids)
    })
    .await;
    for id in &apps {
        assert_eq!(pw_in(id), "good", "{id} has the value its spec pins");
    }
    let events = berth::events::list(&c.store, Some("rotateback-it"))
        .await
        .unwrap();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    for want in ["RolloutStarted", "RolloutFailed", "RolledBack"] {
        assert!(reasons.contains(&want), "no {want} event: {reasons:?}");
    }
}
