//! Berth's own image (`scripts/image.sh`, what `make image` runs on the release binary):
//! built with no registry, it reports the binary's version and revision, carries its
//! labels, runs as a non-root user, and runs the agent as a container beside the
//! containers it manages, which never include itself.

mod common;

use std::process::Command;
use std::time::Duration;

use berth::spec::Phase;
use berth::store::keys;
use common::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(60);

/// This test binary's own berth, built into an image tagged for this test.
fn build_image() -> String {
    let tag = format!("berth-test/berth:it-{}", std::process::id());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/image.sh");
    run_ok(Command::new(script).args([env!("CARGO_BIN_EXE_berth"), &tag]));
    tag
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_the_agent_as_a_container_that_berth_never_manages() {
    let image = build_image();
    let binary = run_ok(Command::new(env!("CARGO_BIN_EXE_berth")).arg("--version"));
    assert!(binary.contains("(rev "), "{binary}");
    assert_eq!(docker(&["run", "--rm", &image, "--version"]), binary.trim());
    let labels = docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Labels}}|{{.Config.User}}",
        &image,
    ]);
    let version = binary.split_whitespace().nth(1).expect("a version");
    assert!(
        labels.contains(&format!(
            "\"org.opencontainers.image.version\":\"{version}\""
        )) && labels.contains("org.opencontainers.image.revision")
            && labels.ends_with("|10001:10001"),
        "{labels}"
    );

    // The agent as a container: host network, Docker's socket through its group.
    let e = Etcd::start().await;
    let cancel = CancellationToken::new();
    let _controller = spawn_controller(&e.store, "image", &cancel);
    let host = "it-image";
    remove_containers_of(host);
    remove_networks_of("image-it");
    let socket_group = run_ok(Command::new("stat").args(["-c", "%g", "/var/run/docker.sock"]));
    let name = format!("berth-it-agent-{}", std::process::id());
    let metrics = format!("127.0.0.1:{}", free_port());
    let agent = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--restart",
        "unless-stopped",
        "--group-add",
        socket_group.trim(),
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        &image,
        "agent",
        "--host-id",
        host,
        "--address",
        "127.0.0.1",
        "--etcd-endpoints",
        &e.etcd.client_url,
        "--metrics-addr",
        &metrics,
        "--api-addr",
        "127.0.0.1:0",
        "--resync-interval",
        "5s",
    ]);
    let agent = Removed(agent.trim().to_owned());
    let registered = eventually("the containerised agent registers", T, || async {
        let kv = e.store.get(&keys::host(host)).await.ok()??;
        let reg: berth::spec::HostRegistration = serde_json::from_slice(&kv.value).ok()?;
        Some(reg)
    })
    .await;
    assert_eq!(registered.agent_version.as_deref(), Some(berth::VERSION));

    let spec = json!({"itemListElement": [
        {"name": "web", "image": "berth-test/busybox:latest", "replicas": 2,
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]}
    ]});
    e.store
        .put(&keys::stack("image-it"), spec.to_string().into_bytes())
        .await
        .expect("put stack");
    let status = |store: berth::store::Store| async move {
        let kv = store.get(&keys::status("image-it")).await.ok()??;
        serde_json::from_slice::<berth::spec::StackStatus>(&kv.value).ok()
    };
    let deadline = std::time::Instant::now() + T;
    loop {
        let st = status(e.store.clone()).await;
        if st.as_ref().is_some_and(|s| s.phase == Phase::Running) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let out = Command::new("docker").args(["logs", &agent.0]).output();
            let logs = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            panic!("the stack never ran: {st:#?}\nagent: {logs:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(containers_of(host, "image-it").len(), 2);
    // Deleted: its containers go, the agent's own container stays, untouched.
    e.store
        .delete(&keys::stack("image-it"))
        .await
        .expect("delete");
    eventually("the stack's containers are gone", T, || async {
        containers_of(host, "image-it").is_empty().then_some(())
    })
    .await;
    assert_eq!(
        inspect(&agent.0, "{{.State.Running}} {{.RestartCount}}"),
        "true 0"
    );
    let labels = inspect(&agent.0, "{{json .Config.Labels}}");
    assert!(
        !labels.contains("berth."),
        "the agent's container carries Berth's labels: {labels}"
    );
    // The agent logs to stderr, which `docker logs` hands back on its own stderr.
    let out = Command::new("docker")
        .args(["logs", &agent.0])
        .output()
        .expect("docker logs");
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    drop(agent);
    cancel.cancel();
    remove_containers_of(host);
    remove_networks_of("image-it");
    docker(&["rmi", &image]);
    assert!(logs.contains("agent started"), "{logs}");
}

/// A container removed when the test ends, however it ends.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}

/// The networks Berth made for `stack` on this engine (a crashed run may leave some).
fn remove_networks_of(stack: &str) {
    let filter = format!("label=berth.stack={stack}");
    for net in docker(&["network", "ls", "-q", "--filter", &filter]).lines() {
        docker(&["network", "rm", net]);
    }
}
