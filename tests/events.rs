//! Events against a real etcd (no Docker needed): pruning a burst to the bound in a few
//! requests, and the controller forgetting a deleted stack's events, every writer's.

mod common;

use std::time::Duration;

use berth::events::{self, Recorder, MAX_PER_STACK};
use berth::metrics::ETCD_REQUESTS;
use berth::store::{keys, Reflector, Store};
use common::{eventually, Etcd};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(30);

/// The request counters are process-wide: these tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// etcd requests of `op` made so far by this process, answered or not.
fn requests(op: &str) -> u64 {
    ["success", "error"]
        .iter()
        .map(|result| ETCD_REQUESTS.with_label_values(&[op, result]).get())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_is_pruned_to_the_newest_hundred_in_a_few_deletes() {
    let _one_at_a_time = SERIAL.lock().await;
    let etcd = Etcd::start().await;
    let store = etcd.store.clone();
    let recorder = Recorder::new(store.clone(), "agent", Some("h1".into()));
    let (puts, deletes) = (requests("put"), requests("delete"));

    for i in 0..250 {
        recorder.record("web", Some("api"), "Restarted", format!("event {i:03}"));
    }
    // Once every put is answered and only the bound is left, pruning is over: no prune
    // ever deletes one of the newest hundred.
    let kept = eventually("250 events recorded and pruned to the bound", T, || {
        let store = store.clone();
        async move {
            if requests("put") - puts < 250 {
                return None;
            }
            let kept = events::list(&store, Some("web")).await.ok()?;
            (kept.len() == MAX_PER_STACK).then_some(kept)
        }
    })
    .await;

    let messages: Vec<String> = kept.into_iter().map(|e| e.message).collect();
    let newest: Vec<String> = (150..250).map(|i| format!("event {i:03}")).collect();
    assert_eq!(messages, newest);
    let deletes = requests("delete") - deletes;
    println!("etcd delete requests to prune 150 of 250 events: {deletes}");
    // One request per pruned key (let alone per key per event) would be 150 or more.
    assert!(
        deletes <= 10,
        "{deletes} etcd delete requests to prune 150 events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stack_loses_every_writers_events_and_no_other_stack_does() {
    let _one_at_a_time = SERIAL.lock().await;
    let etcd = Etcd::start().await;
    let store = etcd.store.clone();
    let cancel = CancellationToken::new();
    common::spawn_controller(&store, "events", &cancel);
    // `web` is a prefix of `web2`: forgetting one must not reach into the other.
    for stack in ["web", "web2"] {
        put_stack_and_wait_for_status(&store, stack).await;
    }
    let writers = ["controller", "h1", "h2"];
    let mut web2_events = Vec::new();
    for writer in writers {
        put_event(&store, writer, "web", 1).await;
        web2_events.push(put_event(&store, writer, "web2", 1).await);
    }

    store
        .delete(&keys::stack("web"))
        .await
        .expect("delete stack");
    for writer in writers {
        wait_for_no_events(&store, writer, "web").await;
    }

    for key in &web2_events {
        assert!(
            store.get(key).await.expect("get event").is_some(),
            "{key} is gone with stack web"
        );
    }
    assert!(store
        .get(&keys::status("web2"))
        .await
        .expect("get status")
        .is_some());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_after_their_stack_went_go_too() {
    let _one_at_a_time = SERIAL.lock().await;
    let etcd = Etcd::start().await;
    let store = etcd.store.clone();
    let cancel = CancellationToken::new();
    common::spawn_controller(&store, "late-events", &cancel);
    put_stack_and_wait_for_status(&store, "web").await;
    store
        .delete(&keys::stack("web"))
        .await
        .expect("delete stack");
    eventually("the status of web is deleted", T, || {
        let store = store.clone();
        async move {
            let status = store.get(&keys::status("web")).await.ok()?;
            status.is_none().then_some(())
        }
    })
    .await;

    // As an agent does when it removes the containers of a stack that is gone.
    put_event(&store, "h1", "web", 2).await;
    wait_for_no_events(&store, "h1", "web").await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_records_fill_the_controllers_cache_without_waking_it() {
    let etcd = Etcd::start().await;
    let store = etcd.store.clone();
    let cancel = CancellationToken::new();
    let cache = Reflector::spawn_waking(
        store.clone(),
        String::new(),
        cancel.clone(),
        berth::controller::wakes_on,
    );
    let mut wake = cache.subscribe();
    // The first list's wake-up, seen and so spent. Each later one bumps the count.
    let listed = wake
        .wait_for(Option::is_some)
        .await
        .expect("reflector alive")
        .expect("some");

    let cached = |key: String| {
        let cache = cache.clone();
        async move {
            let what = format!("{key} in the cache");
            eventually(&what, T, || {
                let (cache, key) = (cache.clone(), key.clone());
                async move {
                    cache
                        .read(|c| c.entries.contains_key(&key))
                        .await?
                        .then_some(())
                }
            })
            .await
        }
    };
    // Each put waits for the last to be in the cache, so each is a watch batch of its
    // own; and the reflector is done with a batch, wake-up included, before it writes
    // the next to the cache. So once the second event is cached, every wake-up the
    // first event and the stack were to cause has been sent.
    cached(put_event(&store, "h1", "web", 1).await).await;
    put_stack(&store, "web").await;
    cached(keys::stack("web")).await;
    cached(put_event(&store, "h1", "web", 2).await).await;
    let bumps = wake.borrow_and_update().expect("some");
    assert!(bumps > listed, "a stack put wakes the controller");
    assert_eq!(
        bumps,
        listed + 1,
        "one wake-up, the stack's: an event record woke the controller too"
    );
    cancel.cancel();
}

/// Put stack `id` as a user would.
async fn put_stack(store: &Store, id: &str) {
    let spec = common::web_stack(common::free_port(), id);
    store
        .put(&keys::stack(id), spec.into_bytes())
        .await
        .expect("put stack");
}

/// Put stack `id` (placed nowhere: there are no hosts) and wait for the controller to
/// write its status.
async fn put_stack_and_wait_for_status(store: &Store, id: &str) {
    put_stack(store, id).await;
    eventually(&format!("a status for {id}"), T, || {
        let store = store.clone();
        let key = keys::status(id);
        async move { store.get(&key).await.ok()?.map(|_| ()) }
    })
    .await;
}

/// Put the `n`th event of `stack` as `writer` would; returns its key.
async fn put_event(store: &Store, writer: &str, stack: &str, n: u32) -> String {
    let key = format!("{}{n:024}-0", keys::events_of(writer, stack));
    let event = serde_json::json!({
        "time": "2025-01-01T00:00:00.000Z",
        "stack": stack,
        "component": "agent",
        "reason": "OrphanRemoved",
        "message": "test event",
    });
    store
        .put(&key, event.to_string().into_bytes())
        .await
        .expect("put event");
    key
}

async fn wait_for_no_events(store: &Store, writer: &str, stack: &str) {
    let prefix = keys::events_of(writer, stack);
    eventually(&format!("no events under {prefix}"), T, || {
        let (store, prefix) = (store.clone(), prefix.clone());
        async move {
            let (kvs, _) = store.list(&prefix).await.ok()?;
            kvs.is_empty().then_some(())
        }
    })
    .await;
}

/// `berth events ID` as a user runs it, against `store`'s etcd.
fn berth_events(etcd: &Etcd, id: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["events", id, "--etcd-endpoints", &etcd.etcd.client_url])
        .output()
        .expect("run berth events");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_events_shows_where_the_controller_placed_and_rescheduled_each_slot() {
    let _one_at_a_time = SERIAL.lock().await;
    let etcd = Etcd::start().await;
    let store = etcd.store.clone();
    let hosts: Vec<(berth::store::LeasedKey, CancellationToken)> = ["h1", "h2"]
        .iter()
        .map(|h| {
            let reg = berth::spec::HostRegistration {
                id: (*h).to_owned(),
                address: "10.99.0.1".into(),
                cpus: 4.0,
                memory_mb: 4096,
                ..Default::default()
            };
            let cancel = CancellationToken::new();
            let key = berth::store::LeasedKey::spawn(
                store.clone(),
                keys::host(h),
                serde_json::to_vec(&reg).unwrap(),
                Duration::from_secs(2),
                cancel.clone(),
            );
            (key, cancel)
        })
        .collect();
    eventually("both hosts registered", T, || async {
        store.get(&keys::host("h1")).await.ok()??;
        store.get(&keys::host("h2")).await.ok()??;
        Some(())
    })
    .await;
    let controller = CancellationToken::new();
    berth::controller::spawn(
        store.clone(),
        berth::controller::ControllerConfig {
            id: "events-it".into(),
            host_down_grace: Duration::from_secs(1),
            max_unavailable_fraction: 1.0,
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
        controller.clone(),
    );
    let spec = r#"{"itemListElement":[{"name":"web","image":"i","replicas":2}]}"#;
    store
        .put(&keys::stack("ev"), spec.as_bytes().to_vec())
        .await
        .unwrap();
    let placed = eventually("a Placed event", T, || async {
        let out = berth_events(&etcd, "ev");
        out.lines()
            .find(|l| l.contains("Placed"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        placed.contains("web.1 on h") && placed.contains("web.2 on h"),
        "{placed}"
    );
    let first = if placed.contains("web.1 on h1") {
        "h1"
    } else {
        "h2"
    };

    // The host of web.1 goes away: past the grace its slots move, and say so.
    let gone = first;
    hosts[usize::from(gone == "h2")].1.cancel();
    store.delete(&keys::host(gone)).await.unwrap();
    let moved = eventually("a Rescheduled event", T, || async {
        let out = berth_events(&etcd, "ev");
        out.lines()
            .find(|l| l.contains("Rescheduled"))
            .map(str::to_owned)
    })
    .await;
    assert!(
        moved.contains(&format!("from {gone} to ")) && moved.contains("host down"),
        "{moved}"
    );
    controller.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_records_no_event() {
    let _one_at_a_time = SERIAL.lock().await;
    let etcd = Etcd::start().await;
    let store = etcd.store.clone();
    let cancel = CancellationToken::new();
    let lead =
        berth::store::Leadership::campaign(&store, "ev-leader", Duration::from_secs(5), &cancel)
            .await
            .unwrap()
            .unwrap();
    let recorder = Recorder::new(store.clone(), "controller", None).fenced(lead.fence().clone());
    recorder.record("fenced", None, "Placed", "while leading".into());
    eventually("the leader's event", T, || async {
        let (kvs, _) = store
            .list(&keys::events_of("controller", "fenced"))
            .await
            .ok()?;
        (kvs.len() == 1).then_some(())
    })
    .await;
    lead.resign().await;
    let fenced_before = berth::metrics::FENCED_WRITES.get();
    recorder.record("fenced", None, "Placed", "after resigning".into());
    eventually("the write fenced off", T, || async {
        (berth::metrics::FENCED_WRITES.get() > fenced_before).then_some(())
    })
    .await;
    let (kvs, _) = store
        .list(&keys::events_of("controller", "fenced"))
        .await
        .unwrap();
    let messages: Vec<String> = kvs
        .iter()
        .map(|kv| {
            serde_json::from_slice::<events::Event>(&kv.value)
                .unwrap()
                .message
        })
        .collect();
    assert!(
        !messages.iter().any(|m| m == "after resigning"),
        "a deposed leader recorded: {messages:?}"
    );
}
