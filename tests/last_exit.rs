//! `lastTermination` against the real Docker engine: a container that exits, one the
//! kernel kills for memory, one the agent restarts for failing its liveness check; each
//! is told in the status with its reason and the end of its output, kept once the
//! container runs again, shown by `berth status ID` and the agent's events, and with the
//! service's secrets and registry password hidden.

mod common;

use std::process::Command;
use std::time::Duration;

use berth::spec::{LastTermination, Phase, StackStatus, TerminationReason};
use berth::store::keys;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const IMAGE: &str = "berth-test/busybox:latest";

fn stack(services: Value) -> String {
    json!({ "itemListElement": services }).to_string()
}

/// Wait until `service`'s status has a termination for which `pred` holds.
async fn wait_termination(
    c: &Cluster,
    id: &str,
    service: &str,
    pred: impl Fn(&LastTermination) -> bool,
) -> (StackStatus, LastTermination) {
    let st = c
        .wait_status(id, T, |s| {
            s.services
                .get(service)
                .and_then(|svc| svc.last_termination.as_ref())
                .is_some_and(&pred)
        })
        .await;
    let t = st.services[service]
        .last_termination
        .clone()
        .expect("a termination");
    (st, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_exits_7_tells_its_code_and_output_and_keeps_them_once_it_runs_again() {
    let mut c = Cluster::start("term-exit").await;
    // Exits 7 the first time only; its own filesystem outlives the restart.
    let script = "if [ -e /ran ]; then trap 'exit 0' TERM; sleep 100000 & wait; fi; \
                  touch /ran; echo before-the-end; echo it-term-marker-7 >&2; exit 7";
    let spec = stack(json!([{"name": "app", "image": IMAGE, "command": ["sh", "-c", script]}]));
    c.put_stack("termexit-it", &spec).await;

    let st = c
        .wait_status("termexit-it", T, |s| {
            s.services.get("app").is_some_and(|a| {
                a.state == "running" && a.restarts == 1 && a.last_termination.is_some()
            })
        })
        .await;
    let t = st.services["app"].last_termination.clone().unwrap();
    assert_eq!(t.exit_code, Some(7), "{st:#?}");
    assert_eq!(t.reason, TerminationReason::Exited);
    assert_eq!(t.message, "exited with code 7");
    // Docker copies the two streams apart: their order between them is not kept.
    let mut lines: Vec<&str> = t.log_tail.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["before-the-end", "it-term-marker-7"],
        "stdout and stderr"
    );
    let container = st.services["app"].container_id.clone().expect("an id");
    assert_eq!(
        t.finished_at
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339(s).ok()),
        humantime::parse_rfc3339(&inspect(&container, "{{.State.FinishedAt}}")).ok(),
        "Docker's FinishedAt of the run that exited"
    );

    // The agent's event says how the run before the restart ended.
    let events = berth::events::list(&c.store, Some("termexit-it"))
        .await
        .expect("events");
    let restarted = events
        .iter()
        .find(|e| e.reason == "Restarted")
        .unwrap_or_else(|| panic!("no Restarted event: {events:#?}"));
    assert_eq!(
        restarted.message,
        "container had exited (code 7, exited); started again"
    );

    // `berth status ID` prints it under the slot.
    let url = c.etcd.as_ref().expect("etcd").client_url.clone();
    let text = run_ok(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["status", "termexit-it", "--etcd-endpoints", &url])
            .env("COLUMNS", "100"),
    );
    assert!(
        text.contains("    last exit: code 7 (exited) at "),
        "{text}"
    );
    assert!(text.contains("\n      it-term-marker-7"), "{text}");

    // An agent that starts again still reports it (taken from its last report), and
    // reads no new one: the container has not ended since.
    c.stop_agent().await;
    c.start_agent();
    c.agent_passes(2).await;
    let key = keys::report(&c.host_id, "termexit-it", &berth::slot::slot_key("app", 1));
    let kv = c.store.get(&key).await.expect("get").expect("a report");
    let report: berth::report::SlotReport = serde_json::from_slice(&kv.value).expect("a report");
    assert_eq!(report.last_termination.as_ref(), Some(&t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_is_oom_killed_and_the_limit_named() {
    let c = Cluster::start("term-oom").await;
    // The shell holds 50 MB in a variable, far over 8 MB.
    let script = "echo allocating; x=$(head -c 50000000 /dev/zero | tr '\\0' a); sleep 100";
    let spec = stack(
        json!([{"name": "hog", "image": IMAGE, "restartPolicy": "never",
        "command": ["sh", "-c", script], "resources": {"memoryMb": 8}}]),
    );
    c.put_stack("termoom-it", &spec).await;

    // Docker's `oom` event can come after its `die` (and then its `State.OOMKilled` stays
    // false): the status may first say SIGKILL, and must come to say memory.
    let (st, t) = wait_termination(&c, "termoom-it", "hog", |t| {
        t.reason == TerminationReason::OomKilled
    })
    .await;
    assert_eq!(t.message, "out of memory (limit 8 MB)", "{st:#?}");
    assert_eq!(t.exit_code, Some(137));
    assert!(t.log_tail.contains("allocating"), "{}", t.log_tail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_restarted_for_failing_its_liveness_check_is_unhealthy() {
    let c = Cluster::start("term-live").await;
    let script =
        "trap 'exit 0' TERM; echo it-term-serving; mkdir -p /w; httpd -f -p 8080 -h /w & wait";
    let spec = stack(
        json!([{"name": "web", "image": IMAGE, "command": ["sh", "-c", script],
        "healthCheck": {"type": "http", "path": "/missing", "port": 8080, "interval": 0.5,
                        "timeout": 1, "retries": 2}}]),
    );
    c.put_stack("termlive-it", &spec).await;

    let (st, t) = wait_termination(&c, "termlive-it", "web", |_| true).await;
    assert_eq!(t.reason, TerminationReason::Unhealthy, "{st:#?}");
    assert_eq!(
        t.message,
        "failed its liveness check; stopped and started again by the agent"
    );
    assert_eq!(t.exit_code, Some(0), "its TERM trap exits 0");
    assert!(t.log_tail.contains("it-term-serving"), "{}", t.log_tail);
    assert!(
        st.services["web"].restarts >= 1,
        "restarted, not replaced: {st:#?}"
    );
    let events = berth::events::list(&c.store, Some("termlive-it"))
        .await
        .expect("events");
    assert!(
        events.iter().any(|e| e.reason == "Unhealthy"
            && e.message
                .starts_with("container stayed unhealthy; restarted (code 0, unhealthy: ")),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_or_registry_password_the_container_prints_is_hidden_in_the_status() {
    let c = Cluster::start("term-secret").await;
    const SECRET: &str = "it-term-s3cret-value";
    const REGISTRY_PASSWORD: &str = "it-term-registry-pw";
    c.store
        .put(&keys::secret("it-term-pw"), SECRET.as_bytes().to_vec())
        .await
        .expect("put secret");
    // The login the agent would pull the image with (it is here already: no pull).
    c.store
        .put(
            &keys::registry(&berth::registry::registry_of(IMAGE)),
            json!({"username": "ci", "password": REGISTRY_PASSWORD})
                .to_string()
                .into_bytes(),
        )
        .await
        .expect("put login");
    let script = "echo \"db password: $PW\"; echo \"registry: $REG\"; exit 3";
    let spec = stack(
        json!([{"name": "leaky", "image": IMAGE, "restartPolicy": "never",
        "command": ["sh", "-c", script],
        "environment": {"PW": "{{secret:it-term-pw}}", "REG": REGISTRY_PASSWORD}}]),
    );
    c.put_stack("termsecret-it", &spec).await;

    let (st, t) = wait_termination(&c, "termsecret-it", "leaky", |_| true).await;
    assert_eq!(
        (t.exit_code, t.reason),
        (Some(3), TerminationReason::Exited)
    );
    assert_eq!(t.log_tail, "db password: ***\nregistry: ***", "{st:#?}");
    let text = serde_json::to_string(&st).expect("serializes");
    assert!(!text.contains(SECRET) && !text.contains(REGISTRY_PASSWORD));
    // The container did print them: the status hid them.
    let container = st.services["leaky"].container_id.clone().expect("an id");
    let logs = docker(&["logs", &container]);
    assert!(
        logs.contains(SECRET) && logs.contains(REGISTRY_PASSWORD),
        "{logs}"
    );
    // ... and `berth logs`, which reads the container's own logs, shows them as printed.
    let url = c.etcd.as_ref().expect("etcd").client_url.clone();
    let out = run_ok(Command::new(env!("CARGO_BIN_EXE_berth")).args([
        "logs",
        "termsecret-it",
        "--etcd-endpoints",
        &url,
    ]));
    assert!(out.contains(&format!("db password: {SECRET}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_or_replacement_berth_made_is_no_termination() {
    let c = Cluster::start("term-onpurpose").await;
    let spec = |version: &str, state: &str| {
        json!({"desiredState": state, "itemListElement": [{"name": "app", "image": IMAGE,
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
            "environment": {"VERSION": version}}]})
        .to_string()
    };
    let running =
        |rev: i64| move |s: &StackStatus| s.phase == Phase::Running && s.observed_revision == rev;
    let rev = c.put_stack("termpurpose-it", &spec("1", "running")).await;
    c.wait_status("termpurpose-it", T, running(rev)).await;
    let rev = c.put_stack("termpurpose-it", &spec("1", "stopped")).await;
    c.wait_status("termpurpose-it", T, |s| {
        s.phase == Phase::Stopped && s.observed_revision == rev
    })
    .await;
    // Started again at once: the container Berth stopped is not a crash.
    let rev = c.put_stack("termpurpose-it", &spec("1", "running")).await;
    c.wait_status("termpurpose-it", T, running(rev)).await;
    // Replaced for a new spec.
    let rev = c.put_stack("termpurpose-it", &spec("2", "running")).await;
    c.wait_status("termpurpose-it", T, running(rev)).await;
    c.agent_passes(2).await;
    let key = keys::report(
        &c.host_id,
        "termpurpose-it",
        &berth::slot::slot_key("app", 1),
    );
    let kv = c.store.get(&key).await.expect("get").expect("a report");
    let report: berth::report::SlotReport = serde_json::from_slice(&kv.value).expect("a report");
    assert_eq!(report.last_termination, None, "{report:#?}");
    let events = berth::events::list(&c.store, Some("termpurpose-it"))
        .await
        .expect("events");
    assert!(
        !events.iter().any(|e| e.message.contains("(code")),
        "{events:#?}"
    );
}
