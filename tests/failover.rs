//! High availability with real processes: two `berth controller`s, the leader frozen
//! with SIGSTOP past its lease, the other takes over, and the thawed ex-leader writes
//! nothing that lands.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::assignment::Assignment;
use berth::spec::HostRegistration;
use berth::store::{keys, LeasedKey, REQUEST_TIMEOUT};
use common::{eventually, free_port, http_get, Etcd, Proc};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(30);

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn is_leader(port: u16) -> Option<bool> {
    let body = http_get(port, "/metrics").await?;
    let line = body.lines().find(|l| l.starts_with("berth_leader "))?;
    Some(line.trim_end().ends_with(" 1"))
}

async fn fenced(port: u16) -> f64 {
    let body = http_get(port, "/metrics").await.unwrap_or_default();
    body.lines()
        .find(|l| l.starts_with("berth_fenced_writes_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

fn stack_json(tag: &str) -> String {
    format!(
        r#"{{"deployment":{{"mode":"multi-host"}},"itemListElement":[{{"name":"a","image":"i","environment":{{"TAG":"{tag}"}}}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_replaced_within_its_lease_and_its_late_writes_do_not_land() {
    let cluster = Etcd::start().await;
    let (etcd, store) = (&cluster.etcd, cluster.store.clone());
    let reg = HostRegistration {
        id: "h1".into(),
        address: "10.99.0.1".into(),
        cpus: 2.0,
        memory_mb: 2048,
        ..Default::default()
    };
    let host_cancel = CancellationToken::new();
    let _host = LeasedKey::spawn(
        store.clone(),
        keys::host("h1"),
        serde_json::to_vec(&reg).unwrap(),
        Duration::from_secs(10),
        host_cancel.clone(),
    );

    let ports = [free_port(), free_port()];
    let procs: Vec<Proc> = ["ctl-a", "ctl-b"]
        .iter()
        .zip(ports)
        .map(|(id, port)| {
            Proc(
                Command::new(env!("CARGO_BIN_EXE_berth"))
                    .args([
                        "controller",
                        "--etcd-endpoints",
                        &etcd.client_url,
                        "--leader-ttl",
                        "3s",
                        "--controller-id",
                        id,
                        "--metrics-addr",
                        &format!("127.0.0.1:{port}"),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();

    let leader = eventually("exactly one leader", T, || async {
        let a = is_leader(ports[0]).await?;
        let b = is_leader(ports[1]).await?;
        match (a, b) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        }
    })
    .await;
    let other = 1 - leader;

    // The follower's campaign blocks for as long as the leader leads: no request timeout
    // may cut it short, and no failed campaign may leave a lease behind. So once the
    // follower has campaigned for longer than a request may take, the same two leader
    // keys are there, and every lease etcd holds is one of theirs or the host's.
    let campaigns = || async {
        let (mut kvs, _) = store.list(keys::LEADER).await.unwrap();
        kvs.sort_by_key(|kv| kv.mod_revision);
        kvs.into_iter()
            .map(|kv| (kv.key, kv.mod_revision, kv.lease))
            .collect::<Vec<_>>()
    };
    let both = eventually("both controllers campaign", T, || async {
        let c = campaigns().await;
        (c.len() == 2).then_some(c)
    })
    .await;
    tokio::time::sleep(REQUEST_TIMEOUT + Duration::from_secs(1)).await;
    assert_eq!(campaigns().await, both, "the same two campaigns, uncut");
    let host_lease = store.get(&keys::host("h1")).await.unwrap().unwrap().lease;
    let mut expected: Vec<String> = both
        .iter()
        .map(|(_, _, lease)| *lease)
        .chain([host_lease])
        .map(|l| format!("{l:x}"))
        .collect();
    expected.sort();
    let out = common::run_ok(
        Command::new("etcdctl")
            .args(["--endpoints", &etcd.client_url, "lease", "list"])
            .env("ETCDCTL_API", "3"),
    );
    // etcdctl prints some ids with a leading zero; compare them as numbers.
    let mut leases: Vec<String> = out
        .lines()
        .skip(1)
        .map(|l| {
            let id = l.trim();
            i64::from_str_radix(id, 16).map_or_else(|_| id.to_owned(), |n| format!("{n:x}"))
        })
        .collect();
    leases.sort();
    assert_eq!(
        leases, expected,
        "one lease per controller's campaign and one for the host, no other: {out}"
    );

    store
        .put(&keys::stack("ha"), stack_json("one").into_bytes())
        .await
        .unwrap();
    let assigned = |rev: i64| {
        let store = store.clone();
        async move {
            let kv = store.get(&keys::assignment("h1", "ha")).await.ok()??;
            let a: Assignment = serde_json::from_slice(&kv.value).ok()?;
            (a.spec_revision == rev).then_some(a)
        }
    };
    let rev1 = store
        .get(&keys::stack("ha"))
        .await
        .unwrap()
        .unwrap()
        .mod_revision;
    eventually("the leader schedules", T, || assigned(rev1)).await;

    signal(procs[leader].0.id(), "-STOP");
    let frozen = Instant::now();
    eventually("the other controller takes over", T, || async {
        (is_leader(ports[other]).await?).then_some(())
    })
    .await;
    let failover = frozen.elapsed();
    println!(
        "figure: failover after SIGSTOP of the leader took {:.1}s (leader TTL 3s)",
        failover.as_secs_f64()
    );
    assert!(
        failover < Duration::from_secs(3 + 7),
        "failover took {failover:?}"
    );

    // The new leader schedules a change while the old one is frozen.
    store
        .put(&keys::stack("ha"), stack_json("two").into_bytes())
        .await
        .unwrap();
    let rev2 = store
        .get(&keys::stack("ha"))
        .await
        .unwrap()
        .unwrap()
        .mod_revision;
    let a = eventually("the new leader schedules the change", T, || assigned(rev2)).await;
    assert_eq!(a.slots[0].container.env["TAG"], "two");

    // Thaw the ex-leader: it may try to write from its stale view; none of it may land.
    // It says it no longer leads only after the pass it was in has ended, so by then
    // every write it tried has landed or been refused.
    let written = store
        .get(&keys::assignment("h1", "ha"))
        .await
        .unwrap()
        .unwrap()
        .mod_revision;
    signal(procs[leader].0.id(), "-CONT");
    eventually("the ex-leader steps down", T, || async {
        (!is_leader(ports[leader]).await?).then_some(())
    })
    .await;
    let kv = store
        .get(&keys::assignment("h1", "ha"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kv.mod_revision, written,
        "nothing wrote the assignment after the thaw (a stale write put right again would)"
    );
    let a: Assignment = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(a.slots[0].container.env["TAG"], "two");
    assert_eq!(
        is_leader(ports[other]).await,
        Some(true),
        "the new leader kept leading"
    );
    println!(
        "figure: ex-leader writes refused by the fence: {}",
        fenced(ports[leader]).await
    );
    host_cancel.cancel();
}
