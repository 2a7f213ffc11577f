//! Test harness: a real etcd (a child process on free loopback ports, temp data dir) and
//! the machine's real Docker engine, with Berth's controller and agent in-process.
//! Assertions read Docker through the `docker` CLI, independently of Berth's own client.

#![allow(dead_code)]

pub mod browser;
pub mod registry;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use berth::agent::{self, AgentConfig};
use berth::controller::{self, ControllerConfig};
use berth::embedded::EmbeddedEtcd;
use berth::spec::StackStatus;
use berth::store::{keys, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    /// The agent API the agent serves (loopback, a port of its own, plain HTTP by
    /// default); set it, then restart the agent.
    pub api: Option<berth::api::server::ApiConfig>,
    /// The Docker config file the agent reads registry credentials from (none by
    /// default); set it, then restart the agent.
    pub docker_config: Option<std::path::PathBuf>,
    pub etcd: Option<EmbeddedEtcd>,
    _dir: tempfile::TempDir,
    pub store: Store,
    pub host_id: String,
    pub controller: CancellationToken,
    controller_done: Option<tokio::task::JoinHandle<()>>,
    /// Passes the controller has finished as the leader.
    pub controller_passes: watch::Receiver<u64>,
    /// The controller's list-then-watch cache (what its web view shows).
    pub controller_cache: berth::store::Reflector,
    pub agent: CancellationToken,
    agent_done: Option<tokio::task::JoinHandle<()>>,
    /// Passes the running agent has finished (a restarted agent counts from 0 again).
    pub agent_passes: watch::Receiver<u64>,
    /// Stacks this test put, whose networks are removed at the end.
    stacks: std::sync::Mutex<Vec<String>>,
}

/// A real etcd in a temp dir and a store on it, for tests that need no Docker.
pub struct Etcd {
    pub etcd: EmbeddedEtcd,
    _dir: tempfile::TempDir,
    pub store: Store,
}

impl Etcd {
    pub async fn start() -> Etcd {
        Etcd::start_with(&[]).await
    }

    /// With extra `etcd` flags.
    pub async fn start_with(flags: &[&str]) -> Etcd {
        berth::telemetry::init(berth::telemetry::LogFormat::Human);
        let dir = tempfile::tempdir().expect("tempdir");
        let etcd = EmbeddedEtcd::start_with(dir.path(), None, flags)
            .await
            .expect("start etcd (is etcd-server installed?)");
        let store = Store::connect(std::slice::from_ref(&etcd.client_url), "/berth")
            .await
            .expect("connect to etcd");
        Etcd {
            etcd,
            _dir: dir,
            store,
        }
    }
}

/// Run a controller named `it-controller-<name>` until `cancel` fires.
pub fn spawn_controller(
    store: &Store,
    name: &str,
    cancel: &CancellationToken,
) -> controller::ControllerHandle {
    controller::spawn(
        store.clone(),
        ControllerConfig {
            id: format!("it-controller-{name}"),
            host_down_grace: Duration::from_secs(30),
            max_unavailable_fraction: 0.5,
            leader_ttl: Duration::from_secs(5),
            resync_interval: Duration::from_secs(5),
            limits: Default::default(),
            history_limit: 10,
            agentless_api: Some(berth::api::server::ApiConfig {
                addr: "127.0.0.1:0".parse().expect("addr"),
                tls: None,
                insecure: false,
            }),
        },
        cancel.clone(),
    )
}

/// Wait until `passes` has counted `more` passes beyond those it counts now. With
/// `more` = 2, a pass that began after this call has finished: whatever was true then,
/// the component has seen and had its chance to act on.
pub async fn passes(passes: &watch::Receiver<u64>, more: u64, what: &str) {
    let mut rx = passes.clone();
    let from = *rx.borrow_and_update();
    tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|n| *n >= from + more))
        .await
        .unwrap_or_else(|_| panic!("timed out: {more} more passes of {what} after {from}"))
        .unwrap_or_else(|_| panic!("{what} stopped"));
}

impl Cluster {
    /// etcd + controller + one agent for the local Docker engine, as host `it-<name>`.
    pub async fn start(name: &str) -> Cluster {
        let Etcd {
            etcd,
            _dir: dir,
            store,
        } = Etcd::start().await;
        let host_id = format!("it-{name}");
        remove_containers_of(&host_id);
        let controller = CancellationToken::new();
        let handle = spawn_controller(&store, name, &controller);
        let mut c = Cluster {
            api: Some(berth::api::server::ApiConfig {
                addr: "127.0.0.1:0".parse().expect("addr"),
                tls: None,
                insecure: false,
            }),
            docker_config: None,
            etcd: Some(etcd),
            _dir: dir,
            store,
            host_id,
            controller,
            controller_done: Some(handle.done),
            controller_passes: handle.passes,
            controller_cache: handle.cache,
            agent: CancellationToken::new(),
            agent_done: None,
            agent_passes: watch::channel(0).1,
            stacks: Default::default(),
        };
        c.start_agent();
        c.wait_registered().await;
        c
    }

    pub fn start_agent(&mut self) {
        self.agent = CancellationToken::new();
        let h = agent::spawn(
            self.store.clone(),
            AgentConfig {
                host_id: self.host_id.clone(),
                address: "127.0.0.1".into(),
                docker_host: "unix:///var/run/docker.sock".into(),
                datacenter: None,
                labels: Default::default(),
                resync_interval: Duration::from_secs(5),
                lease_ttl: Duration::from_secs(10),
                allow_bind_prefixes: vec!["/tmp/berth-it".into()],
                docker_tls: Default::default(),
                vantage: agent::Vantage::Local,
                docker_config: self.docker_config.clone(),
                secret_source: berth::agent::SecretSource::HostCopies,
                api: self.api.clone(),
            },
            self.agent.clone(),
        )
        .expect("agent config");
        self.agent_done = Some(h.done);
        self.agent_passes = h.passes;
    }

    /// Wait until the agent has finished `more` passes beyond those it has now (see
    /// [`passes`]).
    pub async fn agent_passes(&self, more: u64) {
        passes(&self.agent_passes, more, "the agent").await;
    }

    /// Wait until the controller has finished `more` passes beyond those it has now.
    pub async fn controller_passes(&self, more: u64) {
        passes(&self.controller_passes, more, "the controller").await;
    }

    /// Stop the controller and wait until it has: nothing it decides lands after this.
    pub async fn stop_controller(&mut self) {
        self.controller.cancel();
        if let Some(done) = self.controller_done.take() {
            let _ = done.await;
        }
    }

    /// Wait until this cluster's host is registered, so a stack put next is placed at once
    /// rather than reported as having no host.
    pub async fn wait_registered(&self) {
        let store = self.store.clone();
        let key = keys::host(&self.host_id);
        eventually(
            "the agent registered its host",
            Duration::from_secs(30),
            || {
                let (store, key) = (store.clone(), key.clone());
                async move { store.get(&key).await.ok()?.map(|_| ()) }
            },
        )
        .await;
    }

    pub async fn stop_agent(&mut self) {
        self.agent.cancel();
        if let Some(done) = self.agent_done.take() {
            let _ = done.await;
        }
    }

    /// Stop this host's agent and add the host as agentless (`berth host add`, plus
    /// `extra` flags): from then on the leading controller drives it, with the same
    /// reconciler an agent runs.
    pub async fn drive_agentless(&mut self, extra: &[&str]) {
        self.stop_agent().await;
        let url = self.etcd.as_ref().expect("etcd").client_url.clone();
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["host", "add", &self.host_id])
                .args(["--docker-host", "unix:///var/run/docker.sock"])
                .args(["--address", "127.0.0.1", "--etcd-endpoints", &url])
                .args(extra),
        );
    }

    /// Put a stack; returns the key's mod_revision.
    pub async fn put_stack(&self, id: &str, json: &str) -> i64 {
        self.stacks.lock().unwrap().push(id.to_owned());
        self.store
            .put(&keys::stack(id), json.as_bytes().to_vec())
            .await
            .expect("put stack");
        self.store
            .get(&keys::stack(id))
            .await
            .expect("get stack")
            .expect("stack just written")
            .mod_revision
    }

    pub async fn delete_stack(&self, id: &str) {
        self.store.delete(&keys::stack(id)).await.expect("delete");
    }

    pub async fn status(&self, id: &str) -> Option<StackStatus> {
        let kv = self.store.get(&keys::status(id)).await.ok()??;
        serde_json::from_slice(&kv.value).ok()
    }

    /// Wait for a status satisfying `pred`, failing with the last status seen.
    pub async fn wait_status(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&StackStatus) -> bool,
    ) -> StackStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id).await;
            if let Some(s) = &s {
                if pred(s) {
                    return s.clone();
                }
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for status of {id}; last: {s:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.agent.cancel();
        self.controller.cancel();
        remove_containers_of(&self.host_id);
        for stack in self.stacks.lock().unwrap().iter() {
            let nets = docker(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=berth.stack={stack}"),
            ]);
            for net in nets.lines().filter(|l| !l.is_empty()) {
                docker(&["network", "rm", net]);
            }
        }
    }
}

/// Poll `f` until it returns `Some`, or panic with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run `cmd`, failing the test with its stderr unless it succeeds; its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Ids of containers Berth manages for `host` and `stack`.
pub fn containers_of(host: &str, stack: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=berth.host={host}"),
        "--filter",
        &format!("label=berth.stack={stack}"),
    ]);
    out.lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

pub fn inspect(id: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, id])
}

pub fn remove_containers_of(host: &str) {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label=berth.host={host}")]);
    for id in ids.lines().filter(|l| !l.is_empty()) {
        docker(&["rm", "-f", id]);
    }
}

/// GET `path` from 127.0.0.1:`port`; the body, if the server answered.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    if !text.starts_with("HTTP/1.") || !text.contains(" 200 ") {
        return None;
    }
    text.split("\r\n\r\n").nth(1).map(str::to_owned)
}

/// The sum of the series in a `/metrics` text whose lines start with `series` (a name,
/// or a name and the first of its labels: `berth_reconcile_total{component="agent"`).
pub fn metric_sum(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// A one-service stack serving `body` over HTTP on host port `port`.
pub fn web_stack(port: u16, body: &str) -> String {
    serde_json::json!({
        "@context": "https://schema.org",
        "@type": "ItemList",
        "name": "Web",
        "itemListElement": [{
            "@type": "SoftwareApplication",
            "position": 1,
            "name": "web",
            "image": "berth-test/busybox:latest",
            "command": ["sh", "-c", format!("trap 'exit 0' TERM; echo {body} > /index.html; httpd -f -p 8080 -h / & wait")],
            "ports": [{"containerPort": 8080, "hostPort": port, "protocol": "tcp"}],
            "healthCheck": {"type": "http", "path": "/index.html", "port": 8080, "interval": 1, "timeout": 1, "retries": 3}
        }]
    })
    .to_string()
}

/// A child process killed (even when stopped) when the test ends, however it ends.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local addr")
        .port()
}
