//! `/healthz` and `/readyz` of the controller and the agent, ready and not ready: a real
//! etcd that goes away and comes back, and a Docker socket that appears.

mod common;

use std::time::Duration;

use berth::agent::{self, AgentConfig};
use berth::embedded::EmbeddedEtcd;
use berth::store::Store;
use common::{free_port, spawn_controller};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(30);

/// GET `path` on 127.0.0.1:`port`: the status code and the body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, text.split("\r\n\r\n").nth(1)?.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

/// Wait until `path` on `port` answers `code` with `body`.
async fn answers(port: u16, path: &str, code: u16, body: &str) {
    let want = Some((code, body.to_owned()));
    let mut last = None;
    let deadline = tokio::time::Instant::now() + T;
    while tokio::time::Instant::now() < deadline {
        last = get(port, path).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} on port {port}: want {want:?}, last {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_ready_only_with_a_complete_etcd_view_and_for_agents_docker_healthz_always() {
    berth::telemetry::init(berth::telemetry::LogFormat::Human);
    let data = tempfile::tempdir().unwrap();
    let etcd_port = free_port();
    let etcd = EmbeddedEtcd::start(data.path(), Some(etcd_port))
        .await
        .expect("start etcd");
    let store = Store::connect(std::slice::from_ref(&etcd.client_url), "/berth")
        .await
        .expect("connect");
    // etcd goes before the controller or the agent has read anything from it, and the
    // agent's Docker socket is not there yet.
    etcd.stop().await;
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("docker.sock");

    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let controller = spawn_controller(&store, "readyz", &cancel);
    let agent = agent::spawn(
        store.clone(),
        AgentConfig {
            host_id: "it-readyz".into(),
            address: "127.0.0.1".into(),
            docker_host: format!("unix://{}", socket.display()),
            datacenter: None,
            labels: Default::default(),
            resync_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            allow_bind_prefixes: vec![],
            docker_tls: Default::default(),
            vantage: agent::Vantage::Local,
            docker_config: None,
            secret_source: agent::SecretSource::HostCopies,
            api: None,
        },
        cancel.clone(),
    )
    .expect("agent config");
    let any = "127.0.0.1:0".parse().unwrap();
    let serve = |ready| berth::serve::spawn(any, vec![ready], cancel.clone());
    let c = serve(controller.ready).await.expect("serve").port();
    let a = serve(agent.ready).await.expect("serve").port();

    for port in [c, a] {
        answers(port, "/healthz", 200, "ok\n").await;
    }
    answers(c, "/readyz", 503, "not ready: initial etcd list not done\n").await;
    answers(
        a,
        "/readyz",
        503,
        "not ready: assignments not yet read from etcd\n",
    )
    .await;

    // etcd is back, on its port and with its data.
    let etcd = EmbeddedEtcd::start(data.path(), Some(etcd_port))
        .await
        .expect("start etcd again");
    answers(c, "/readyz", 200, "ready\n").await;
    answers(a, "/readyz", 503, "not ready: docker not reachable\n").await;

    // Docker appears where the agent looks for it.
    std::os::unix::fs::symlink("/var/run/docker.sock", &socket).expect("symlink");
    answers(a, "/readyz", 200, "ready\n").await;

    // etcd goes again: the controller's view can no longer be kept current.
    etcd.stop().await;
    answers(c, "/readyz", 503, "not ready: etcd watch not connected\n").await;
    for port in [c, a] {
        answers(port, "/healthz", 200, "ok\n").await;
    }
}
