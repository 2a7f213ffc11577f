//! The scheduler against a real etcd: hosts registered by hand under leases (no Docker
//! needed), leader election and fencing, host loss, the storm guard, drain hand-off.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth::assignment::Assignment;
use berth::controller::{self, ControllerConfig};
use berth::report::SlotReport;
use berth::spec::{HostRegistration, Phase, StackStatus};
use berth::store::{keys, Expect, Leadership, LeasedKey, Store, StoreError, Write};
use common::{eventually, Etcd};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

const T: Duration = Duration::from_secs(30);

/// A running controller, stopped when dropped.
struct Controller {
    _stop: DropGuard,
    passes: watch::Receiver<u64>,
}

impl Controller {
    /// Wait until it has finished `more` passes beyond those it has now.
    async fn passes(&self, more: u64) {
        common::passes(&self.passes, more, "the controller").await;
    }
}

fn controller(store: &Store, id: &str, grace: Duration) -> Controller {
    let cancel = CancellationToken::new();
    let handle = controller::spawn(
        store.clone(),
        ControllerConfig {
            id: id.to_owned(),
            host_down_grace: grace,
            max_unavailable_fraction: 0.5,
            leader_ttl: Duration::from_secs(3),
            resync_interval: Duration::from_secs(1),
            limits: Default::default(),
            history_limit: 10,
            agentless_api: Some(berth::api::server::ApiConfig {
                addr: "127.0.0.1:0".parse().expect("addr"),
                tls: None,
                insecure: false,
            }),
        },
        cancel.clone(),
    );
    Controller {
        _stop: cancel.drop_guard(),
        passes: handle.passes,
    }
}

/// Register `id` by hand, the way an operator would with `etcdctl put --lease`.
fn register(store: &Store, id: &str, labels: &[(&str, &str)]) -> (LeasedKey, CancellationToken) {
    let reg = HostRegistration {
        id: id.to_owned(),
        address: format!("10.99.0.{}", id.len()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cpus: 4.0,
        memory_mb: 4096,
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let key = LeasedKey::spawn(
        store.clone(),
        keys::host(id),
        serde_json::to_vec(&reg).unwrap(),
        Duration::from_secs(2),
        cancel.clone(),
    );
    (key, cancel)
}

/// Wait until `key` is gone (`what` names it in a timeout).
async fn gone(store: &Store, key: &str, what: &str) {
    eventually(what, T, || async {
        store.get(key).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// Wait until `hosts` are all registered: [`register`] writes in the background.
async fn registered(store: &Store, hosts: &[&str]) {
    eventually("hosts registered", T, || async {
        for h in hosts {
            store.get(&keys::host(h)).await.ok()??;
        }
        Some(())
    })
    .await;
}

async fn placements(store: &Store, stack: &str) -> BTreeMap<String, String> {
    let (kvs, _) = store.list(keys::ASSIGNMENTS).await.unwrap();
    let mut out = BTreeMap::new();
    for kv in kvs {
        let a: Assignment = serde_json::from_slice(&kv.value).unwrap();
        let host = kv.key.split('/').nth(1).unwrap().to_owned();
        if a.stack == stack {
            for s in a.slots.iter().filter(|s| !s.handoff) {
                out.insert(s.service.clone(), host.clone());
            }
        }
    }
    out
}

async fn status(store: &Store, id: &str) -> Option<StackStatus> {
    let kv = store.get(&keys::status(id)).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

const SPREAD2: &str = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[
  {"name":"a","image":"berth-test/busybox:latest"},{"name":"b","image":"berth-test/busybox:latest"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_writes_are_fenced_off() {
    let e = Etcd::start().await;
    let never = CancellationToken::new();
    let a = Leadership::campaign(&e.store, "a", Duration::from_secs(5), &never)
        .await
        .unwrap()
        .unwrap();
    // B waits in the election while A leads.
    let store_b = e.store.clone();
    let b = tokio::spawn(async move {
        let never = CancellationToken::new();
        Leadership::campaign(&store_b, "b", Duration::from_secs(5), &never).await
    });
    let a_key = eventually("both campaign", T, || async {
        let (mut leaders, _) = e.store.list(keys::LEADER).await.ok()?;
        leaders.sort_by_key(|kv| kv.mod_revision);
        (leaders.len() == 2).then(|| leaders.swap_remove(0))
    })
    .await;

    let put = |v: &str| Write::Put {
        key: "fenced-test".into(),
        value: v.as_bytes().to_vec(),
        expect: Expect::Any,
    };
    assert!(e
        .store
        .write_fenced(&[put("by-a")], Some(a.fence()))
        .await
        .unwrap());
    assert!(!b.is_finished(), "B must not lead while A does");

    // A is deposed as it is in production: its lease ends (a pause or a partition kept it
    // from renewing it) and its key goes with it, while A has not noticed yet.
    common::run_ok(
        std::process::Command::new("etcdctl")
            .args(["--endpoints", &e.etcd.client_url, "lease", "revoke"])
            .arg(format!("{:x}", a_key.lease))
            .env("ETCDCTL_API", "3"),
    );
    let b = tokio::time::timeout(T, b)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap();
    let stale = e
        .store
        .write_fenced(&[put("late-by-a")], Some(a.fence()))
        .await;
    assert!(matches!(stale, Err(StoreError::Deposed)), "{stale:?}");

    // The fence is the key and its create revision: the same key made again (by hand
    // here) is another campaigner's, and does not make A the leader again.
    e.store.put(&a_key.key, b"a again".to_vec()).await.unwrap();
    let stale = e
        .store
        .write_fenced(&[put("later-by-a")], Some(a.fence()))
        .await;
    assert!(matches!(stale, Err(StoreError::Deposed)), "{stale:?}");
    e.store.delete(&a_key.key).await.unwrap();

    assert!(e
        .store
        .write_fenced(&[put("by-b")], Some(b.fence()))
        .await
        .unwrap());
    let v = e.store.get("fenced-test").await.unwrap().unwrap();
    assert_eq!(v.value, b"by-b", "the stale writes never landed");
    tokio::time::timeout(T, a.lost().cancelled())
        .await
        .expect("A learns that its lease, and its lead, are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_of_a_lost_host_move_only_after_the_grace_period() {
    let e = Etcd::start().await;
    let (_h1, h1_cancel) = register(&e.store, "h1", &[]);
    let (_h2, _h2_cancel) = register(&e.store, "h2", &[]);
    registered(&e.store, &["h1", "h2"]).await;
    let c = controller(&e.store, "c1", Duration::from_secs(3));
    e.store
        .put(&keys::stack("sp"), SPREAD2.as_bytes().to_vec())
        .await
        .unwrap();
    let first = eventually("both slots placed", T, || async {
        let p = placements(&e.store, "sp").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    assert_eq!(
        first
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2,
        "spread over both hosts: {first:?}"
    );
    let lost_service = first
        .iter()
        .find(|(_, h)| *h == "h1")
        .map(|(s, _)| s.clone())
        .unwrap();

    // Host h1 dies: its registration goes with its lease.
    h1_cancel.cancel();
    let died = Instant::now();
    gone(&e.store, &keys::host("h1"), "h1's registration is gone").await;
    c.passes(2).await;
    let checked = died.elapsed();
    assert!(
        checked < Duration::from_secs(3),
        "the controller took {checked:?} to see the host gone: too late to check the grace"
    );
    assert_eq!(
        placements(&e.store, "sp").await[&lost_service],
        "h1",
        "within the grace nothing moves"
    );

    let moved = eventually("slot rescheduled", T, || async {
        let p = placements(&e.store, "sp").await;
        (p.get(&lost_service).map(String::as_str) == Some("h2")).then_some(p)
    })
    .await;
    let took = died.elapsed();
    println!(
        "figure: host loss -> slot rescheduled in {:.1}s (grace 3s)",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_secs(3),
        "moved before the grace ran out: {took:?}"
    );
    assert!(moved.values().all(|h| h == "h2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storm_guard_holds_slots_when_most_hosts_vanish_at_once() {
    let e = Etcd::start().await;
    // h1 and h2 vanish in one revision, as when a lease they share ends: revoked one by
    // one, the first could outlive the grace alone and be rescheduled, storm or not.
    for h in ["h1", "h2"] {
        let reg = HostRegistration {
            id: h.into(),
            address: format!("10.99.0.{}", h.len()),
            cpus: 4.0,
            memory_mb: 4096,
            ..Default::default()
        };
        e.store
            .put(&keys::host(h), serde_json::to_vec(&reg).unwrap())
            .await
            .unwrap();
    }
    let (_h3, _h3_cancel) = register(&e.store, "h3", &[]);
    registered(&e.store, &["h1", "h2", "h3"]).await;
    let c = controller(&e.store, "c1", Duration::from_secs(1));
    let three = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[
      {"name":"a","image":"i"},{"name":"b","image":"i"},{"name":"c","image":"i"}]}"#;
    e.store
        .put(&keys::stack("storm"), three.as_bytes().to_vec())
        .await
        .unwrap();
    let before = eventually("placed on all three hosts", T, || async {
        let p = placements(&e.store, "storm").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    assert_eq!(
        before
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "spread: {before:?}"
    );
    let gone = |h: &str| Write::Delete {
        key: keys::host(h),
        expect: Expect::Any,
    };
    assert!(e.store.write(&[gone("h1"), gone("h2")]).await.unwrap());
    // Said only by a pass that found the hosts down past their grace, and held back.
    let st = eventually("status explains the storm guard", T, || async {
        let s = status(&e.store, "storm").await?;
        s.services
            .values()
            .any(|x| {
                x.message
                    .as_deref()
                    .unwrap_or("")
                    .contains("not rescheduling")
            })
            .then_some(s)
    })
    .await;
    assert_eq!(
        placements(&e.store, "storm").await,
        before,
        "nothing rescheduled: {st:#?}"
    );
    c.passes(2).await;
    assert_eq!(
        placements(&e.store, "storm").await,
        before,
        "nothing rescheduled by a later pass either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_placement_on_an_unknown_host_is_unschedulable_and_named() {
    let e = Etcd::start().await;
    let (_h1, _c1) = register(&e.store, "host-1", &[]);
    let _c = controller(&e.store, "c1", Duration::from_secs(30));
    let manual = r#"{"deployment":{"mode":"multi-host","placementStrategy":"manual"},"itemListElement":[
      {"name":"a","image":"i","targetHost":"host-1"},{"name":"b","image":"i","targetHost":"host-9"}]}"#;
    e.store
        .put(&keys::stack("man"), manual.as_bytes().to_vec())
        .await
        .unwrap();
    let st = eventually("pending with the reason", T, || async {
        let s = status(&e.store, "man").await?;
        (s.phase == Phase::Pending).then_some(s)
    })
    .await;
    let sched = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Scheduled")
        .unwrap();
    assert_eq!(sched.status, berth::spec::ConditionStatus::False);
    assert_eq!(sched.reason, "Unschedulable");
    assert!(
        st.services["b"]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("host-9"),
        "{st:#?}"
    );
    assert_eq!(
        placements(&e.store, "man")
            .await
            .get("a")
            .map(String::as_str),
        Some("host-1")
    );
    assert!(
        !placements(&e.store, "man").await.contains_key("b"),
        "no silent fallback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_host_starts_each_replacement_before_removing_the_old_copy() {
    let e = Etcd::start().await;
    let (_h1, _c1) = register(&e.store, "h1", &[]);
    let (_h2, _c2) = register(&e.store, "h2", &[]);
    let c = controller(&e.store, "c1", Duration::from_secs(30));
    let one = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[{"name":"a","image":"i"}]}"#;
    e.store
        .put(&keys::stack("dr"), one.as_bytes().to_vec())
        .await
        .unwrap();
    let from = eventually("placed", T, || async {
        placements(&e.store, "dr").await.get("a").cloned()
    })
    .await;
    let to = if from == "h1" { "h2" } else { "h1" };

    e.store
        .put(
            &keys::maintenance(&from),
            br#"{"cordoned":true,"draining":true}"#.to_vec(),
        )
        .await
        .unwrap();
    eventually("replacement placed on the other host", T, || async {
        (placements(&e.store, "dr")
            .await
            .get("a")
            .map(String::as_str)
            == Some(to))
        .then_some(())
    })
    .await;
    // The old copy stays, marked as handing off, while the new one is not yet available:
    // after the pass that placed the replacement, and after a later one.
    c.passes(2).await;
    let old = e
        .store
        .get(&keys::assignment(&from, "dr"))
        .await
        .unwrap()
        .expect("old copy kept");
    let old: Assignment = serde_json::from_slice(&old.value).unwrap();
    assert!(old.slots.iter().all(|s| s.handoff), "{old:?}");

    // The new host's agent reports the replacement running.
    let rev = e
        .store
        .get(&keys::stack("dr"))
        .await
        .unwrap()
        .unwrap()
        .mod_revision;
    let report = SlotReport {
        stack: "dr".into(),
        service: "a".into(),
        replica: 1,
        host: to.into(),
        spec_revision: rev,
        spec_hash: "x".into(),
        container_id: Some("c".into()),
        state: berth::report::SlotState::Running,
        health: berth::report::SlotHealth::NotChecked,
        restarts: 0,
        exit_code: None,
        message: None,
        image_id: None,
        image_digest: None,
        pull: None,
        last_termination: None,
    };
    e.store
        .put(
            &keys::report(to, "dr", "a.1"),
            serde_json::to_vec(&report).unwrap(),
        )
        .await
        .unwrap();
    eventually("old copy released once the replacement runs", T, || async {
        e.store
            .get(&keys::assignment(&from, "dr"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_host_moves_nothing_until_a_rebalance_is_applied() {
    let e = Etcd::start().await;
    let (_h1, _c1) = register(&e.store, "h1", &[]);
    let c = controller(&e.store, "c1", Duration::from_secs(30));
    let four = r#"{"deployment":{"mode":"multi-host","placementStrategy":"spread"},"itemListElement":[
      {"name":"a","image":"i"},{"name":"b","image":"i"},{"name":"c","image":"i"},{"name":"d","image":"i"}]}"#;
    e.store
        .put(&keys::stack("rb"), four.as_bytes().to_vec())
        .await
        .unwrap();
    eventually("all on h1", T, || async {
        let p = placements(&e.store, "rb").await;
        (p.len() == 4 && p.values().all(|h| h == "h1")).then_some(())
    })
    .await;
    let (_h2, _c2) = register(&e.store, "h2", &[]);
    registered(&e.store, &["h2"]).await;
    c.passes(2).await;
    assert!(
        placements(&e.store, "rb").await.values().all(|h| h == "h1"),
        "a new host moves nothing"
    );

    // What `berth rebalance rb` shows: the same planner, as a dry run.
    let (kvs, revision) = e.store.list("").await.unwrap();
    let cache = berth::store::Cache {
        entries: kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect(),
        revision,
    };
    let world = berth::controller::world::World::decode(&cache);
    let preview = berth::controller::decide::preview_rebalance(
        &world,
        "rb",
        berth::controller::DEFAULT_MAX_UNAVAILABLE_FRACTION,
    );
    assert_eq!(preview.moves.len(), 2, "{preview:?}");
    assert!(preview.moves.iter().all(|m| m.from == "h1" && m.to == "h2"));
    assert!(
        placements(&e.store, "rb").await.values().all(|h| h == "h1"),
        "a dry run moves nothing"
    );

    // `--apply`: the controller places the stack afresh once and consumes the request.
    e.store
        .put(&keys::rebalance("rb"), b"{}".to_vec())
        .await
        .unwrap();
    eventually("two slots moved to h2", T, || async {
        let p = placements(&e.store, "rb").await;
        (p.values().filter(|h| *h == "h2").count() == 2).then_some(())
    })
    .await;
    gone(&e.store, &keys::rebalance("rb"), "request consumed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dry_run_shows_the_placement_and_writes_nothing() {
    let e = Etcd::start().await;
    let (_h1, _c1) = register(&e.store, "h1", &[]);
    let (_h2, _c2) = register(&e.store, "h2", &[]);
    registered(&e.store, &["h1", "h2"]).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "apply",
            "-f",
            "examples/spread.json",
            "--id",
            "dry",
            "--dry-run",
        ])
        .env("BERTH_ETCD_ENDPOINTS", &e.etcd.client_url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on = |h: &str| {
        text.lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(h))
            .count()
    };
    assert_eq!((on("h1"), on("h2")), (3, 3), "spread 3/3: {text}");
    assert!(text.contains("dry run"), "{text}");
    assert!(
        e.store.get(&keys::stack("dry")).await.unwrap().is_none(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dry_run_of_a_change_prints_the_batches_of_its_rollout() {
    let e = Etcd::start().await;
    let (_h1, _c1) = register(&e.store, "h1", &[]);
    let (_h2, _c2) = register(&e.store, "h2", &[]);
    let _c = controller(&e.store, "c1", Duration::from_secs(30));
    let spec = |version: &str| {
        serde_json::json!({"deployment": {"placementStrategy": "spread", "update": {"parallelism": 2}},
          "itemListElement": [
            {"name": "web", "image": "web", "replicas": 4, "environment": {"V": version}},
            {"name": "db", "image": "db", "environment": {"V": version},
             "volumeMounts": [{"type": "volume", "source": "data", "target": "/data"}]},
            {"name": "cache", "image": "cache"}]})
        .to_string()
    };
    e.store
        .put(&keys::stack("dry2"), spec("1").into_bytes())
        .await
        .unwrap();
    eventually("6 slots placed", T, || async {
        let (kvs, _) = e.store.list(keys::ASSIGNMENTS).await.ok()?;
        let slots: usize = kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Assignment>(&kv.value).ok())
            .map(|a| a.slots.len())
            .sum();
        (slots == 6).then_some(())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dry2.json");
    std::fs::write(&file, spec("2")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["apply", "-f", file.to_str().unwrap(), "--dry-run"])
        .env("BERTH_ETCD_ENDPOINTS", &e.etcd.client_url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("rollout of web: 4 slot(s) in 2 batch(es), start-first;"),
        "{text}"
    );
    let batch = |n: usize| {
        text.lines()
            .filter(|l| l.trim_start().starts_with(&format!("batch {n}: web.")))
            .count()
    };
    assert_eq!((batch(1), batch(2), batch(3)), (1, 1, 0), "{text}");
    assert!(
        text.contains("rollout of db: 1 slot(s) in 1 batch(es), stop-first;"),
        "{text}"
    );
    assert!(
        text.contains("start-first falls back to stop-first: replica 1 on h"),
        "{text}"
    );
    assert!(text.contains("data mount /data"), "{text}");
    assert!(!text.contains("rollout of cache"), "unchanged: {text}");
    let kv = e.store.get(&keys::stack("dry2")).await.unwrap().unwrap();
    assert_eq!(kv.value, spec("1").into_bytes(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_value_is_invalid_and_does_not_wedge_the_controller() {
    // etcd itself would refuse a value this big by default (1.5 MiB); an operator may
    // raise that, and Berth must still cope.
    let e = Etcd::start_with(&["--max-request-bytes=33554432"]).await;
    let store = e.store.clone();
    let (_h1, _c1) = register(&store, "h1", &[]);
    let _c = controller(&store, "c1", Duration::from_secs(30));
    // 10 MB: more than the spec limit, and more than gRPC's default 4 MB message.
    let huge = format!(
        r#"{{"itemListElement":[{{"name":"a","image":"i","description":"{}"}}]}}"#,
        "x".repeat(10 << 20)
    );
    store
        .put(&keys::stack("huge"), huge.into_bytes())
        .await
        .unwrap();
    let st = eventually("the huge stack is Invalid", T, || async {
        let s = status(&store, "huge").await?;
        (s.phase == Phase::Invalid).then_some(s)
    })
    .await;
    assert!(
        st.message.contains("the limit is 1048576 bytes"),
        "{}",
        st.message
    );
    // Everything else keeps converging.
    store
        .put(&keys::stack("after"), SPREAD2.as_bytes().to_vec())
        .await
        .unwrap();
    eventually("a stack put afterwards is placed", T, || async {
        (placements(&store, "after").await.len() == 2).then_some(())
    })
    .await;
}
