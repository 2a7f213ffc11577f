//! `berth status` and `berth hosts` against a real etcd holding hand-written keys: the
//! wiring from etcd to the printed map, its JSON, `--watch` and the exit codes.

mod common;

use std::process::Stdio;
use std::time::Duration;

use berth::store::keys;
use common::Etcd;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

impl Etcd {
    async fn put(&self, key: String, value: Value) {
        self.store
            .put(&key, value.to_string().into_bytes())
            .await
            .expect("put");
    }

    /// `berth ARGS` against this etcd: (exit code, stdout, stderr).
    fn berth(&self, args: &[&str]) -> (i32, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_ETCD_ENDPOINTS", &self.etcd.client_url)
            .env_remove("COLUMNS")
            .env_remove("BERTH_OUTPUT")
            .output()
            .expect("run berth");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A stack `web` <- `app` on host h1, and h2 gone but still assigned a worker.
    async fn shop(&self) {
        self.put(
            keys::stack("shop"),
            json!({"itemListElement": [
                {"name": "web", "image": "x"},
                {"name": "app", "image": "x", "requirements": ["web"]},
                {"name": "worker", "image": "x"}
            ]}),
        )
        .await;
        self.put(
            keys::host("h1"),
            json!({"id": "h1", "address": "10.1.0.1", "cpus": 4.0, "memoryMb": 8192}),
        )
        .await;
        let slot = |service: &str, order: u32, env: Value, ports: Value| {
            json!({"service": service, "replica": 1, "order": order,
                   "container": {"image": "x", "env": env, "ports": ports, "cpus": 0.5}})
        };
        let assignment = |slots: Vec<Value>| {
            json!({"stack": "shop", "specRevision": 2, "desiredState": "running",
                   "network": {"name": "berth-shop", "driver": "bridge"}, "slots": slots})
        };
        self.put(
            keys::assignment("h1", "shop"),
            assignment(vec![
                slot(
                    "web",
                    0,
                    json!({}),
                    json!([{"containerPort": 80, "hostPort": 18380, "protocol": "tcp"}]),
                ),
                slot(
                    "app",
                    1,
                    json!({"WEB_HOST": "10.1.0.1", "WEB_PORT": "18380"}),
                    json!([]),
                ),
            ]),
        )
        .await;
        self.put(
            keys::assignment("h2", "shop"),
            assignment(vec![slot("worker", 0, json!({}), json!([]))]),
        )
        .await;
        for (service, health) in [("web", "healthy"), ("app", "none")] {
            self.put(
                keys::report("h1", "shop", &format!("{service}.1")),
                json!({"stack": "shop", "service": service, "replica": 1, "host": "h1",
                       "specRevision": 2, "specHash": "h", "state": "running",
                       "health": health, "restarts": 1}),
            )
            .await;
        }
        self.put(keys::status("shop"), status("Progressing")).await;
    }
}

fn status(phase: &str) -> Value {
    json!({"stack": "shop", "observedRevision": 2, "phase": phase,
           "message": "2/3 containers running", "services": {
               "web": {"host": "h1", "state": "running", "health": "healthy", "restarts": 1},
               "app": {"host": "h1", "state": "running", "health": "none", "restarts": 1},
               "worker": {"host": "h2", "state": "pending", "health": "none", "restarts": 0}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_the_deployment_map_with_progress_hosts_and_connections() {
    let e = Etcd::start().await;
    e.shop().await;
    let (code, out, err) = e.berth(&["status"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "shop   Progressing  2/3 services running",
        "HOST h1  10.1.0.1  Ready",
        "HOST h2  -  NotReady",
        "shop/web",
        "18380->80",
        "web=10.1.0.1:18380",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    for line in out.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line}");
    }
    let (code, one, _) = e.berth(&["status", "shop"]);
    assert_eq!((code, one), (0, out), "one stack of one is the whole map");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_prints_status_objects_and_exit_codes_say_what_is_missing() {
    let e = Etcd::start().await;
    e.shop().await;
    let (code, out, _) = e.berth(&["status", "-o", "json"]);
    assert_eq!(code, 0);
    let all: Value = serde_json::from_str(&out).expect("an array of statuses");
    assert_eq!(all[0]["stack"], "shop");
    assert_eq!(all[0]["phase"], "Progressing");
    let (code, out, _) = e.berth(&["status", "shop", "-o", "json"]);
    assert_eq!(code, 0);
    let one: Value = serde_json::from_str(&out).expect("one status object");
    assert_eq!(one, all[0]);

    let (code, _, err) = e.berth(&["status", "nope"]);
    assert_eq!(code, 1, "no such stack");
    assert!(err.contains("no stack nope"), "{err}");
    e.put(keys::stack("fresh"), json!({"itemListElement": []}))
        .await;
    let (code, _, err) = e.berth(&["status", "fresh", "-o", "json"]);
    assert_eq!(code, 1, "a stack without status yet has no JSON");
    assert!(err.contains("no status yet"), "{err}");
    let (code, out, _) = e.berth(&["status", "fresh"]);
    assert_eq!(code, 0, "the table still shows it");
    assert!(out.contains("fresh  Unknown"), "{out}");

    let (code, _, err) = e.berth(&["status", "--etcd-endpoints", "http://127.0.0.1:1"]);
    assert_eq!(code, 2, "etcd unreachable: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_lists_readiness_capacity_and_slots_as_table_and_json() {
    let e = Etcd::start().await;
    e.shop().await;
    e.put(keys::maintenance("h1"), json!({"cordoned": true}))
        .await;
    let (code, out, err) = e.berth(&["hosts"]);
    assert_eq!(code, 0, "{err}");
    let h1 = out.lines().find(|l| l.starts_with("h1")).expect(&out);
    for want in ["Cordoned", "10.1.0.1", "1/4", "0M/8G"] {
        assert!(h1.contains(want), "{want:?} missing: {h1}");
    }
    let (code, out, _) = e.berth(&["hosts", "-o", "json"]);
    assert_eq!(code, 0);
    let hosts: Value = serde_json::from_str(&out).expect("JSON array");
    assert_eq!(hosts[0]["id"], "h1");
    assert_eq!(hosts[0]["slots"], 2);
    assert_eq!(hosts[0]["cpusReserved"], 1.0);
    assert_eq!(hosts[1]["id"], "h2");
    assert_eq!(hosts[1]["state"], "NotReady");
    assert_eq!(hosts[1]["address"], Value::Null);
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line within 20s")
        .expect("read")
        .expect("not the end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_prints_a_new_line_when_the_status_changes() {
    let e = Etcd::start().await;
    e.shop().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["status", "shop", "--watch", "-o", "json"])
        .env("BERTH_ETCD_ENDPOINTS", &e.etcd.client_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run berth status --watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first: Value = serde_json::from_str(&next_line(&mut lines).await).expect("JSON line");
    assert_eq!(first["phase"], "Progressing");
    // A report write that changes nothing visible prints nothing; the status change does.
    e.put(
        keys::report("h1", "shop", "web.1"),
        json!({"stack": "shop", "service": "web", "replica": 1, "host": "h1",
               "specRevision": 2, "specHash": "h", "state": "running",
               "health": "healthy", "restarts": 1}),
    )
    .await;
    e.put(keys::status("shop"), status("Running")).await;
    let second: Value = serde_json::from_str(&next_line(&mut lines).await).expect("JSON line");
    assert_eq!(second["phase"], "Running");
}
