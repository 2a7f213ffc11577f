//! What the convergence and rollout benchmarks stand on: a private etcd, `berth controller` and
//! `berth agent` as child processes (so their CPU and memory can be read from /proc), their
//! /metrics, etcd's write history, and Docker's event stream as the clock of record.
//! Everything it creates carries a `bench` name or label and is swept at start and end.
//! `summary` prints figures and their targets the same way in every bench.

pub mod summary;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth::embedded::EmbeddedEtcd;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use bollard::Docker;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

pub const IMAGE: &str = "berth-test/busybox:latest";
pub const HOST_ID: &str = "bench-host";
/// Exits at once on SIGTERM, so stop times are Docker's, not a 10s grace running out.
pub const SERVE: &str = "trap 'exit 0' TERM; httpd -f -p 8080 -h / & wait";
pub const PREFIX: &str = "/berth/";

pub type Res<T> = Result<T, String>;

pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Median, min and max.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let mid = s.len() / 2;
    let median = if s.len().is_multiple_of(2) {
        (s[mid - 1] + s[mid]) / 2.0
    } else {
        s[mid]
    };
    (median, s[0], s[s.len() - 1])
}

pub fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// CPU time, peak and current resident memory of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_secs: f64,
    pub hwm_kb: u64,
    pub rss_kb: u64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `berth` subcommand running as a child process, with its own /metrics address.
pub struct Proc {
    child: Child,
    pub metrics: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(bin: &Path, args: &[String], log: &Path) -> Proc {
        let metrics = format!("127.0.0.1:{}", free_port());
        let out = std::fs::File::create(log).expect("log file");
        let child = Command::new(bin)
            .args(args)
            .arg("--metrics-addr")
            .arg(&metrics)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start berth");
        Proc {
            child,
            metrics,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn usage(&self) -> Usage {
        let pid = self.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which may contain spaces: utime and stime are
        // the 14th and 15th fields of the line, the 12th and 13th after ") ".
        let after: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| after.get(*i)?.parse::<f64>().ok())
            .sum();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |field: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        Usage {
            cpu_secs: ticks / clock_ticks(),
            hwm_kb: kb("VmHWM:"),
            rss_kb: kb("VmRSS:"),
        }
    }

    /// SIGTERM (the graceful path: leases revoked, containers left running), then wait.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn get(&self, path: &str) -> Res<(u16, String)> {
        http_get(&self.metrics, path).await
    }

    pub async fn scrape(&self) -> Metrics {
        Metrics(
            self.get("/metrics")
                .await
                .map(|(_, b)| b)
                .unwrap_or_default(),
        )
    }

    pub async fn wait_ready(&self, timeout: Duration) -> Res<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = self.get("/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready in {timeout:?}; see {}",
                    self.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One scrape of a /metrics page.
#[derive(Default, Clone)]
pub struct Metrics(String);

impl Metrics {
    /// A page scraped some other way (etcd's own /metrics).
    #[allow(dead_code)] // the scale bench's
    pub fn parse(text: String) -> Metrics {
        Metrics(text)
    }

    /// Sum of the samples of `name` whose labels pass `keep`.
    pub fn sum(&self, name: &str, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
        self.samples(name)
            .filter(|(l, _)| keep(l))
            .map(|(_, v)| v)
            .sum()
    }

    /// Mean of histogram `name` per value of `label`: (sum, count) from its `_sum` and
    /// `_count` series.
    pub fn histogram(&self, name: &str, label: &str) -> BTreeMap<String, (f64, f64)> {
        let sums = self.by(&format!("{name}_sum"), label);
        let counts = self.by(&format!("{name}_count"), label);
        sums.into_iter()
            .map(|(k, s)| {
                let c = counts.get(&k).copied().unwrap_or(0.0);
                (k, (s, c))
            })
            .collect()
    }

    /// Samples of `name` grouped by the value of `label`.
    pub fn by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (l, v) in self.samples(name) {
            *out.entry(l.get(label).cloned().unwrap_or_default())
                .or_insert(0.0) += v;
        }
        out
    }

    fn samples<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (BTreeMap<String, String>, f64)> + 'a {
        self.0.lines().filter_map(move |line| {
            if line.starts_with('#') {
                return None;
            }
            let (head, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match head.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((labels, value.parse().ok()?))
        })
    }

    /// etcd writes Berth made: `berth_etcd_requests_total{op=~"txn|put|delete"}`.
    pub fn etcd_writes(&self) -> f64 {
        self.sum("berth_etcd_requests_total", |l| {
            matches!(
                l.get("op").map(String::as_str),
                Some("txn" | "put" | "delete")
            )
        })
    }
}

/// Key modifications and bytes (key + value) written to etcd, by key kind.
#[derive(Debug, Default, Clone)]
pub struct Writes(pub BTreeMap<String, (u64, u64)>);

impl Writes {
    pub fn total(&self) -> (u64, u64) {
        self.0
            .values()
            .fold((0, 0), |(n, b), (n2, b2)| (n + n2, b + b2))
    }

    pub fn add(&mut self, other: &Writes) {
        for (k, (n, b)) in &other.0 {
            let e = self.0.entry(k.clone()).or_default();
            e.0 += n;
            e.1 += b;
        }
    }
}

/// The bench's own etcd client: puts, deletes, revisions, history replay, and a live map
/// of every stack status (id -> observedRevision, phase).
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    statuses: watch::Receiver<BTreeMap<String, (i64, String)>>,
}

impl Etcd {
    pub async fn connect(url: &str) -> Res<Etcd> {
        let client = Client::connect([url], None).await.map_err(err)?;
        let (tx, statuses) = watch::channel(BTreeMap::new());
        let mut c = client.clone();
        let prefix = format!("{PREFIX}status/stacks/");
        let list = c
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(err)?;
        let rev = list.header().map(|h| h.revision()).unwrap_or(0);
        let mut stream = c
            .watch(
                prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(rev + 1),
                ),
            )
            .await
            .map_err(err)?;
        let status_of = |value: &[u8]| -> Option<(i64, String)> {
            let v: serde_json::Value = serde_json::from_slice(value).ok()?;
            Some((
                v["observedRevision"].as_i64()?,
                v["phase"].as_str()?.to_owned(),
            ))
        };
        tx.send_modify(|m| {
            for kv in list.kvs() {
                if let (Ok(k), Some(s)) = (kv.key_str(), status_of(kv.value())) {
                    m.insert(k.trim_start_matches(&prefix).to_owned(), s);
                }
            }
        });
        tokio::spawn(async move {
            while let Ok(Some(resp)) = stream.message().await {
                tx.send_modify(|m| {
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let Ok(k) = kv.key_str() else { continue };
                        let id = k.trim_start_matches(&prefix).to_owned();
                        match ev.event_type() {
                            EventType::Put => {
                                if let Some(s) = status_of(kv.value()) {
                                    m.insert(id, s);
                                }
                            }
                            EventType::Delete => {
                                m.remove(&id);
                            }
                        }
                    }
                });
            }
        });
        Ok(Etcd { client, statuses })
    }

    pub async fn put(&self, key: &str, value: String) -> Res<i64> {
        let r = self
            .client
            .clone()
            .put(format!("{PREFIX}{key}"), value, None)
            .await
            .map_err(err)?;
        Ok(r.header().map(|h| h.revision()).unwrap_or(0))
    }

    pub async fn delete(&self, key: &str) -> Res<i64> {
        let r = self
            .client
            .clone()
            .delete(format!("{PREFIX}{key}"), None)
            .await
            .map_err(err)?;
        Ok(r.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// The JSON document at `key`, if there is one.
    #[allow(dead_code)] // the rollout bench's; the converge bench has no use for it
    pub async fn get_json(&self, key: &str) -> Res<Option<serde_json::Value>> {
        let r = self
            .client
            .clone()
            .get(format!("{PREFIX}{key}"), None)
            .await
            .map_err(err)?;
        match r.kvs().first() {
            Some(kv) => serde_json::from_slice(kv.value()).map(Some).map_err(err),
            None => Ok(None),
        }
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.client
            .clone()
            .get(format!("{PREFIX}{key}"), None)
            .await
            .is_ok_and(|r| !r.kvs().is_empty())
    }

    pub async fn revision(&self) -> Res<i64> {
        let r = self
            .client
            .clone()
            .get(PREFIX, Some(GetOptions::new().with_count_only()))
            .await
            .map_err(err)?;
        Ok(r.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Every write with a revision in `(after, upto]`, replayed from etcd's history.
    pub async fn replay(&self, after: i64, upto: i64) -> Res<Writes> {
        let mut w = Writes::default();
        if upto <= after {
            return Ok(w);
        }
        let mut stream = self
            .client
            .clone()
            .watch(
                PREFIX,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(after + 1),
                ),
            )
            .await
            .map_err(err)?;
        let mut seen = after;
        while seen < upto {
            // Ten seconds without a message, not for the whole replay: at 5,000 hosts the
            // history is 130,000 revisions, replayed while etcd still serves every lease.
            let msg = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .map_err(|_| format!("replay stopped at revision {seen} of {upto}"))?
                .map_err(err)?;
            let Some(resp) = msg else { break };
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                if kv.mod_revision() > upto {
                    seen = upto;
                    continue;
                }
                seen = seen.max(kv.mod_revision());
                let key = kv.key_str().unwrap_or("");
                let kind = key
                    .trim_start_matches(PREFIX)
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let kind = if ev.event_type() == EventType::Delete {
                    format!("{kind} (delete)")
                } else {
                    kind
                };
                let e = w.0.entry(kind).or_default();
                e.0 += 1;
                e.1 += (kv.key().len() + kv.value().len()) as u64;
            }
        }
        Ok(w)
    }

    /// When the first change under `prefix` arrives (from now on); the watch is in place
    /// when this returns.
    pub async fn first_change(
        &self,
        prefix: &str,
    ) -> Res<tokio::task::JoinHandle<Option<Instant>>> {
        let mut stream = self
            .client
            .clone()
            .watch(
                format!("{PREFIX}{prefix}"),
                Some(WatchOptions::new().with_prefix()),
            )
            .await
            .map_err(err)?;
        Ok(tokio::spawn(async move {
            while let Ok(Some(resp)) = stream.message().await {
                if !resp.events().is_empty() {
                    return Some(Instant::now());
                }
            }
            None
        }))
    }

    /// The live map of every stack status: id -> (observedRevision, phase).
    #[allow(dead_code)] // the scale bench's
    pub fn statuses(&self) -> watch::Receiver<BTreeMap<String, (i64, String)>> {
        self.statuses.clone()
    }

    pub fn status(&self, id: &str) -> Option<(i64, String)> {
        self.statuses.borrow().get(id).cloned()
    }

    /// Wait until the status map satisfies `pred`; when it did.
    pub async fn wait_status(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&BTreeMap<String, (i64, String)>) -> bool,
    ) -> Res<Instant> {
        let mut rx = self.statuses.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|m| pred(m))).await;
        match r {
            Ok(Ok(_)) => Ok(Instant::now()),
            _ => Err(format!(
                "timed out after {timeout:?} waiting for {what}; statuses: {:?}",
                self.statuses.borrow()
            )),
        }
    }

    /// Until stack `id` is Running at revision `rev` (or later).
    pub async fn wait_running(&self, id: &str, rev: i64, timeout: Duration) -> Res<Instant> {
        self.wait_status(timeout, &format!("{id} Running at {rev}"), |m| {
            m.get(id)
                .is_some_and(|(r, p)| *r >= rev && p.as_str() == "Running")
        })
        .await
    }

    pub async fn wait_gone(&self, id: &str, timeout: Duration) -> Res<Instant> {
        self.wait_status(timeout, &format!("status of {id} gone"), |m| {
            !m.contains_key(id)
        })
        .await
    }
}

/// Berth on this machine: a private etcd, one controller and one agent (host
/// [`HOST_ID`]) as child processes of the bench.
pub struct Cluster {
    pub etcd: Etcd,
    pub controller: Proc,
    pub agent: Proc,
    bin: PathBuf,
    url: String,
    dir: tempfile::TempDir,
    _etcd: EmbeddedEtcd,
}

impl Cluster {
    pub async fn start() -> Res<Cluster> {
        let dir = tempfile::tempdir().map_err(err)?;
        let embedded = EmbeddedEtcd::start(&dir.path().join("etcd"), None)
            .await
            .map_err(|e| berth::error_chain(&e))?;
        let url = embedded.client_url.clone();
        let etcd = Etcd::connect(&url).await?;
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
        let controller = Self::spawn_controller(&bin, &url, dir.path(), 0);
        let agent = Self::spawn_agent(&bin, &url, dir.path(), 0);
        let c = Cluster {
            etcd,
            controller,
            agent,
            bin,
            url,
            dir,
            _etcd: embedded,
        };
        c.wait_ready().await?;
        Ok(c)
    }

    fn spawn_controller(bin: &Path, url: &str, dir: &Path, n: u32) -> Proc {
        let args: Vec<String> = [
            "controller",
            "--etcd-endpoints",
            url,
            "--controller-id",
            "bench-controller",
            // The agent is restarted on purpose in the idle section: nothing may move.
            "--host-down-grace",
            "300s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn(bin, &args, &dir.join(format!("controller-{n}.log")))
    }

    fn spawn_agent(bin: &Path, url: &str, dir: &Path, n: u32) -> Proc {
        let args: Vec<String> = [
            "agent",
            "--etcd-endpoints",
            url,
            "--host-id",
            HOST_ID,
            "--address",
            "127.0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn(bin, &args, &dir.join(format!("agent-{n}.log")))
    }

    async fn wait_ready(&self) -> Res<()> {
        self.controller.wait_ready(Duration::from_secs(30)).await?;
        self.agent.wait_ready(Duration::from_secs(30)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.etcd.exists(&format!("hosts/{HOST_ID}")).await
            || self.controller.scrape().await.sum("berth_leader", |_| true) < 1.0
        {
            if Instant::now() > deadline {
                return Err("agent not registered or controller not leading".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Fresh processes (fresh memory peaks), the same etcd and containers.
    pub async fn restart(&mut self, n: u32) -> Res<()> {
        self.agent.stop();
        self.controller.stop();
        self.controller = Self::spawn_controller(&self.bin, &self.url, self.dir.path(), n);
        self.agent = Self::spawn_agent(&self.bin, &self.url, self.dir.path(), n);
        self.wait_ready().await
    }

    pub fn logs(&self) -> String {
        format!(
            "{} and {}",
            self.controller.log.display(),
            self.agent.log.display()
        )
    }

    /// Keep the logs of a failed run.
    pub fn keep_logs(self) -> PathBuf {
        self.dir.keep()
    }

    /// The end of a run: the logs are kept when it failed (the error says where) or when
    /// `BERTH_BENCH_KEEP_LOGS` asks for them, and removed otherwise.
    pub fn finish(self, outcome: Res<()>) -> Res<()> {
        match outcome {
            Err(e) => {
                let logs = self.logs();
                let kept = self.keep_logs();
                Err(format!(
                    "{e}\n(Berth's logs: {logs}, kept in {})",
                    kept.display()
                ))
            }
            Ok(()) if std::env::var_os("BERTH_BENCH_KEEP_LOGS").is_some() => {
                eprintln!("Berth's logs kept in {}", self.keep_logs().display());
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

pub async fn docker() -> Res<Docker> {
    Docker::connect_with_unix("/var/run/docker.sock", 120, bollard::API_DEFAULT_VERSION)
        .map_err(err)?
        .negotiate_version()
        .await
        .map_err(err)
}

/// One Docker event, timed by Docker.
#[derive(Debug, Clone)]
pub struct DockerEvent {
    pub typ: String,
    pub action: String,
    pub id: String,
    pub name: String,
    pub nanos: i64,
}

/// Docker's container and network events from a point in time on, collected in the
/// background. `since` is passed to Docker, so nothing is missed however late the stream
/// is established.
pub struct Events {
    rx: mpsc::UnboundedReceiver<DockerEvent>,
    pub seen: Vec<DockerEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    pub fn since(docker: &Docker, since: SystemTime) -> Events {
        let n = nanos(since) - 1_000_000;
        let since_text = format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000);
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "type".to_owned(),
            vec!["container".to_owned(), "network".to_owned()],
        )]);
        let opts = EventsOptionsBuilder::default()
            .since(&since_text)
            .filters(&filters)
            .build();
        let mut stream = Box::pin(docker.events(Some(opts)));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(Ok(e)) = stream.next().await {
                if tx.send(to_event(e)).is_err() {
                    return;
                }
            }
        });
        Events {
            rx,
            seen: Vec::new(),
            task,
        }
    }

    /// Take in what has arrived, without waiting.
    pub fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
    }

    /// Collect until `done(seen)` holds.
    pub async fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[DockerEvent]) -> bool,
    ) -> Res<()> {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => return Err(format!("timed out after {timeout:?} waiting for {what}")),
            }
        }
        Ok(())
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn to_event(e: EventMessage) -> DockerEvent {
    let actor = e.actor.unwrap_or_default();
    DockerEvent {
        typ: e.typ.map(|t| t.to_string()).unwrap_or_default(),
        action: e.action.unwrap_or_default(),
        id: actor.id.unwrap_or_default(),
        name: actor
            .attributes
            .and_then(|mut a| a.remove("name"))
            .unwrap_or_default(),
        nanos: e.time_nano.unwrap_or(0),
    }
}

/// `docker` CLI, for sweeping and for checks that should not go through bollard.
pub fn docker_cli(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Whether cargo bench asked for the measurement: `cargo test --all-targets` runs bench
/// targets too, unoptimised, and then they only print that they skipped.
pub fn measuring(bench: &str) -> bool {
    let asked = std::env::args().any(|a| a == "--bench");
    if !asked {
        println!("{bench} benchmark skipped: run it with `make bench`");
    }
    asked
}

/// Sweeps what a run leaves, even when it fails halfway: at its start and when dropped.
pub struct Sweep;

impl Sweep {
    pub fn start() -> Sweep {
        sweep();
        Sweep
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        sweep();
    }
}

/// Remove every container and network a bench run may have left.
pub fn sweep() {
    let mut ids = Vec::new();
    for filter in [
        format!("label=berth.host={HOST_ID}"),
        "label=berth-bench=raw".to_owned(),
        "label=com.docker.compose.project".to_owned(),
    ] {
        for id in docker_cli(&["ps", "-aq", "--filter", &filter]).lines() {
            let project = docker_cli(&[
                "inspect",
                "-f",
                "{{index .Config.Labels \"com.docker.compose.project\"}}",
                id,
            ]);
            if filter.contains("compose") && !project.starts_with("berthbench") {
                continue;
            }
            ids.push(id.to_owned());
        }
    }
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        docker_cli(&args);
    }
    for net in docker_cli(&["network", "ls", "--format", "{{.Name}}"]).lines() {
        if net.starts_with("berth-bench-")
            || net.starts_with("bench-raw-")
            || net.starts_with("berthbench")
        {
            docker_cli(&["network", "rm", net]);
        }
    }
}

/// `GET path` from the HTTP server at `addr` (`host:port`): the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> Res<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(err)?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .map_err(err)?
        .map_err(err)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_owned()))
}
