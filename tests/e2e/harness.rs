//! The simulated cluster the end-to-end suite runs on: three hosts, each a network
//! namespace on a private bridge with its own `dockerd` and `berth agent` (host-3's from
//! Berth's image, as a container of its engine), a fourth with a
//! `dockerd` on TCP with TLS and no agent (the agentless host, added by the scenarios that
//! use it), a 3-member etcd and two `berth controller`s in the root namespace, and, once a
//! scenario asks for it, a private registry with TLS on the bridge address. Everything
//! it starts is torn down by `Drop`, and whatever a crashed earlier run left behind is
//! swept before it starts.
//!
//! Traffic stays on 10.77.0.0/24 and loopback. Host `n` is `10.77.0.n`; the root namespace
//! is `10.77.0.254`, where etcd listens and the controllers run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use berth::spec::{Phase, StackStatus};
use berth::store::{keys, Store};

/// A scenario step's outcome: the error says what did not hold, with the last state seen.
pub type R<T> = Result<T, String>;

/// Everything the suite writes lives under here; swept at start and at the end.
pub const BASE: &str = "/tmp/berth-e2e";
/// Serializes concurrent runs (two `make test`s on one machine share the names below).
const LOCK: &str = "/tmp/berth-e2e.lock";
pub const BRIDGE: &str = "berthbr0";
pub const BRIDGE_IP: &str = "10.77.0.254";
const NETNS_PREFIX: &str = "berth-e2e-";
const VETH_PREFIX: &str = "be2e-";
/// Controller ids start with this, so a sweep finds controllers of a crashed run.
const CONTROLLER_PREFIX: &str = "berth-e2e-ctl-";
/// The cgroup parent of every container the suite's engines run.
const CGROUP_PREFIX: &str = "berth-e2e-";
pub const IMAGE: &str = "berth-test/busybox:latest";
pub const HOSTS: usize = 3;
/// Host `4` runs no agent: its engine also listens on TCP with TLS, and scenarios that
/// need it register it with `berth host add` (the leading controller drives it) and
/// forget it again, so the others see three hosts.
pub const AGENTLESS: usize = HOSTS + 1;
pub const AGENTLESS_ID: &str = "host-4";
/// Host `3` runs its agent from Berth's own image (`scripts/image.sh`, what `make image`
/// runs, on this build's binary) as a container of its engine, the way the README's
/// `docker run` line does: host network, the engine's socket mounted, its group added.
pub const IMAGE_AGENT: usize = 3;
/// The image host-3's agent runs from, built by the harness.
const BERTH_IMAGE: &str = "berth-e2e/berth:latest";
/// The agent's container on host-3: it has no `berth.*` labels, so Berth leaves it alone.
const AGENT_CONTAINER: &str = "berth-agent";
const DOCKER_TLS_PORT: u16 = 2376;
/// The private registry's port on [`BRIDGE_IP`] (see [`Registry`]).
const REGISTRY_PORT: u16 = 23990;
/// Where every engine on the machine looks for a registry's CA: the namespaced engines
/// share the root filesystem, so one file serves them all and the main engine.
const CERTS_D: &str = "/etc/docker/certs.d";
const ETCD_CLIENT_PORTS: [u16; 3] = [23791, 23792, 23793];
const ETCD_PEER_PORTS: [u16; 3] = [23891, 23892, 23893];

/// Short timings so faults play out in seconds; the scenarios' figures are relative to them.
pub const HOST_DOWN_GRACE: Duration = Duration::from_secs(5);
pub const LEASE_TTL: Duration = Duration::from_secs(3);
pub const LEADER_TTL: Duration = Duration::from_secs(3);
const RESYNC: &str = "5s";

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// Progress lines go straight to stderr so they show even when libtest captures output.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "[e2e {:>6.1}s] {}", $crate::harness::elapsed(), format!($($arg)*));
    }};
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Run a setup command to completion; its stderr on failure.
fn sh(program: &str, args: &[&str]) -> R<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    stdout_of(program, args, &out)
}

/// A finished command's stdout, or its stderr (with what ran) when it failed.
fn stdout_of(program: &str, args: &[&str], out: &std::process::Output) -> R<String> {
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`sh`], for teardown: failures are expected (the thing is already gone).
fn quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

pub fn signal(pid: u32, sig: &str) {
    quiet("kill", &[&format!("-{sig}"), &pid.to_string()]);
}

/// A daemon the harness started; killed (even when stopped) when dropped.
pub struct Proc {
    name: String,
    program: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Times the harness had to start it again after finding it dead.
    pub revived: u32,
}

impl Proc {
    fn new(name: &str, program: &str, args: Vec<String>, logs: &Path) -> Proc {
        Proc {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            log: logs.join(format!("{name}.log")),
            child: None,
            revived: 0,
        }
    }

    pub fn start(&mut self) -> R<()> {
        if self.alive() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("open {}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        // setpriv execs the daemon in place (same pid), which then dies with the thread
        // that started it: killing the test run never leaves a daemon behind. (Their
        // containers may stay; the next run's sweep finds them by cgroup.)
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", &self.program])
            .args(&self.args)
            .env("RUST_LOG", "berth=info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            signal(pid, sig);
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "CONT");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `timeout`.
    pub fn stop(&mut self, timeout: Duration) {
        let Some(c) = &mut self.child else { return };
        signal(c.id(), "CONT");
        signal(c.id(), "TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !matches!(c.try_wait(), Ok(None)) {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }

    /// Start it again if it died; counts as a revival (a component restart).
    fn revive(&mut self) -> R<bool> {
        if self.child.is_some() && !self.alive() {
            self.revived += 1;
            self.child = None;
            self.start()?;
            return Ok(true);
        }
        if self.child.is_none() {
            self.start()?;
        }
        Ok(false)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One simulated host: a network namespace with its own Docker engine and Berth agent.
pub struct Host {
    pub id: String,
    pub ip: String,
    pub netns: String,
    veth: String,
    dir: PathBuf,
    /// `unix:///...`: reachable from the root namespace even while the host is cut off.
    pub sock: String,
    pub dockerd: Proc,
    /// Never started on the agentless host.
    pub agent: Proc,
    /// The agentless host's `tcp://IP:2376`, served with TLS; its client certificate,
    /// key and CA are in [`Host::tls_dir`].
    pub tcp: Option<String>,
}

impl Host {
    /// Host `n`; the agentless one (`n` = [`AGENTLESS`]) gets no agent, and its engine
    /// also listens on TCP with TLS (the certificates are made in [`Host::plumb`]).
    fn new(n: usize, berth: &str, endpoints: &str, logs: &Path) -> Host {
        let dir = PathBuf::from(BASE).join(format!("h{n}"));
        let d = dir.display().to_string();
        let netns = format!("{NETNS_PREFIX}h{n}");
        let id = format!("host-{n}");
        let ip = format!("10.77.0.{n}");
        let sock = format!("unix://{d}/docker.sock");
        let tcp = (n == AGENTLESS).then(|| format!("tcp://{ip}:{DOCKER_TLS_PORT}"));
        let nsenter = |args: Vec<String>| {
            let mut v = vec![format!("--net=/var/run/netns/{netns}")];
            v.extend(args);
            v
        };
        let mut dockerd_args: Vec<String> = [
            "dockerd",
            "--config-file",
            &format!("{d}/daemon.json"),
            "--data-root",
            &format!("{d}/data"),
            "--exec-root",
            &format!("{d}/exec"),
            "--pidfile",
            &format!("{d}/docker.pid"),
            "-H",
            &sock,
            "--bip",
            &format!("172.31.{n}.1/24"),
            "--storage-driver",
            "vfs",
            "--userland-proxy=false",
            "--cgroup-parent",
            &format!("/{CGROUP_PREFIX}h{n}"),
            "--log-level",
            "warn",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(tcp) = &tcp {
            let tls = format!("{d}/tls");
            dockerd_args.extend(
                [
                    "-H",
                    tcp,
                    "--tlsverify",
                    "--tlscacert",
                    &format!("{tls}/ca.pem"),
                    "--tlscert",
                    &format!("{tls}/server-cert.pem"),
                    "--tlskey",
                    &format!("{tls}/server-key.pem"),
                ]
                .map(str::to_owned),
            );
        }
        let dockerd = Proc::new(
            &format!("dockerd-{id}"),
            "nsenter",
            nsenter(dockerd_args),
            logs,
        );
        // Plain HTTP on the bridge: the suite's own network, nothing else on it.
        let api_addr = format!("{ip}:9422");
        let docker_host = if n == IMAGE_AGENT {
            "unix:///var/run/docker.sock".to_owned()
        } else {
            sock.clone()
        };
        let agent_args: Vec<String> = [
            "agent",
            "--etcd-endpoints",
            endpoints,
            "--host-id",
            &id,
            "--address",
            &ip,
            "--docker-host",
            &docker_host,
            "--lease-ttl",
            &secs(LEASE_TTL),
            "--resync-interval",
            RESYNC,
            "--metrics-addr",
            "127.0.0.1:9421",
            "--api-addr",
            &api_addr,
            "--api-insecure",
        ]
        .map(str::to_owned)
        .to_vec();
        let agent = if n == IMAGE_AGENT {
            // The docker CLI in the foreground, attached: its pid lives as long as the
            // container, and SIGTERM reaches the agent through it. A container left by a
            // killed CLI is replaced on the next start.
            let path = format!("{d}/docker.sock");
            let script = format!(
                "docker -H {sock} rm -f {AGENT_CONTAINER} >/dev/null 2>&1; \
                 exec docker -H {sock} run --rm --name {AGENT_CONTAINER} --network host \
                 --group-add \"$(stat -c %g {path})\" -v {path}:/var/run/docker.sock \
                 -e RUST_LOG=berth=info {BERTH_IMAGE} {}",
                agent_args.join(" ")
            );
            Proc::new(
                &format!("agent-{id}"),
                "sh",
                vec!["-c".to_owned(), script],
                logs,
            )
        } else {
            let mut args = vec![berth.to_owned()];
            args.extend(agent_args);
            Proc::new(&format!("agent-{id}"), "nsenter", nsenter(args), logs)
        };
        Host {
            id,
            ip,
            netns,
            veth: format!("{VETH_PREFIX}h{n}"),
            dir,
            sock,
            dockerd,
            agent,
            tcp,
        }
    }

    /// Where the agentless host's TLS files are: `ca.pem`, and the client's `cert.pem`
    /// and `key.pem` that `berth host add` is given.
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    /// A CA, a server certificate for this host's IP and a client certificate: what an
    /// operator sets up to expose an engine on TCP.
    fn make_certs(&self) -> R<()> {
        make_certs(&self.tls_dir(), &self.ip, &self.id, true)
    }

    fn plumb(&self) -> R<()> {
        let ns = self.netns.as_str();
        sh("ip", &["netns", "add", ns])?;
        sh(
            "ip",
            &[
                "link", "add", &self.veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ],
        )?;
        sh("ip", &["link", "set", &self.veth, "master", BRIDGE, "up"])?;
        sh(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", self.ip),
                "dev",
                "eth0",
            ],
        )?;
        sh("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
        sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        // Our own (empty) config: the machine's /etc/docker/daemon.json sets data-root too,
        // and dockerd refuses a directive given both as a flag and in the file.
        fs::write(self.dir.join("daemon.json"), "{}").map_err(|e| e.to_string())?;
        if self.tcp.is_some() {
            self.make_certs()?;
        }
        Ok(())
    }

    /// Start dockerd, first dropping a pid file of a containerd that died with a killed
    /// dockerd: a zombie's pid looks alive, and dockerd would wait for it forever.
    pub fn start_dockerd(&mut self) -> R<()> {
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Ok(pid) = fs::read_to_string(&pidfile) {
            let pid = pid.trim();
            let live = fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
                && fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(BASE))
                    .unwrap_or(false);
            if !live {
                let _ = fs::remove_file(&pidfile);
            }
        }
        self.dockerd.start()
    }

    pub async fn wait_docker(&self, timeout: Duration) -> R<()> {
        until(&format!("{} answers", self.sock), timeout, || async {
            self.docker(&["version", "--format", "{{.Server.Version}}"])
                .await
                .map(|_| ())
        })
        .await
    }

    /// Cut the host off the network (its link goes down); its processes keep running.
    pub fn cut(&self) -> R<()> {
        sh("ip", &["link", "set", &self.veth, "down"]).map(|_| ())
    }

    pub fn heal(&self) -> R<()> {
        sh("ip", &["link", "set", &self.veth, "up"]).map(|_| ())
    }

    /// `docker -H <this host> args...`; stdout, or the error text.
    pub async fn docker(&self, args: &[&str]) -> R<String> {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("docker")
                .arg("-H")
                .arg(&self.sock)
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("docker {} on {}: timed out", args.join(" "), self.id))?
        .map_err(|e| format!("docker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker {} on {}: {}",
                args.join(" "),
                self.id,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Containers (all states) matching `label` filters such as `berth.stack=x`.
    pub async fn ps(&self, labels: &[&str]) -> R<Vec<Ctr>> {
        let mut args = vec![
            "ps".to_owned(),
            "-a".into(),
            "--no-trunc".into(),
            "--format".into(),
            "{{.ID}}|{{.Names}}|{{.State}}|{{.Label \"berth.managed\"}}|{{.Label \"berth.stack\"}}|{{.Label \"berth.service\"}}|{{.Label \"berth.replica\"}}|{{.Status}}".into(),
        ];
        for l in labels {
            args.push("--filter".into());
            args.push(format!("label={l}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.docker(&args).await?;
        Ok(out
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                let get = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
                Ctr {
                    host: self.id.clone(),
                    id: get(0),
                    name: get(1),
                    state: get(2),
                    managed: get(3) == "true",
                    stack: get(4),
                    service: get(5),
                    replica: get(6),
                    health: health_of(&get(7)),
                }
            })
            .collect())
    }

    /// `docker inspect` of one container, as JSON.
    pub async fn inspect(&self, id: &str) -> R<serde_json::Value> {
        let out = self.docker(&["inspect", id]).await?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        v.get(0)
            .cloned()
            .ok_or_else(|| format!("no container {id}"))
    }

    /// Starts of containers matching `labels` since `since`, from the engine's events.
    pub async fn starts_since(&self, since: SystemTime, labels: &[&str]) -> R<Vec<Start>> {
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let until = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            + 1.0;
        let mut args = vec![
            "events".to_owned(),
            "--since".into(),
            format!("{since:.3}"),
            "--until".into(),
            format!("{until:.3}"),
            "--filter".into(),
            "type=container".into(),
            "--filter".into(),
            "event=start".into(),
            "--format".into(),
            "{{.TimeNano}} {{.Actor.ID}} {{index .Actor.Attributes \"berth.service\"}}.{{index .Actor.Attributes \"berth.replica\"}}".into(),
        ];
        for l in labels {
            args.push("--filter".into());
            args.push(format!("label={l}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.docker(&args).await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                let t: u64 = f.next()?.parse().ok()?;
                Some(Start {
                    at: SystemTime::UNIX_EPOCH + Duration::from_nanos(t),
                    id: f.next()?.to_owned(),
                    slot: f.next().unwrap_or("").to_owned(),
                })
            })
            .collect())
    }
}

/// Made with openssl in `tls`: a CA (`ca.pem`, `ca-key.pem`), a server certificate for
/// `ip` (its SAN) named `cn` (`server-cert.pem`, `server-key.pem`) and, with `client`, a
/// client certificate (`cert.pem`, `key.pem`).
fn make_certs(tls: &Path, ip: &str, cn: &str, client: bool) -> R<()> {
    fs::create_dir_all(tls).map_err(|e| e.to_string())?;
    let t = |f: &str| tls.join(f).display().to_string();
    fs::write(
        t("server.ext"),
        format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n"),
    )
    .map_err(|e| e.to_string())?;
    fs::write(t("client.ext"), "extendedKeyUsage=clientAuth\n").map_err(|e| e.to_string())?;
    let key = |out: &str| -> R<()> {
        sh(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &t(out),
            ],
        )
        .map(|_| ())
    };
    key("ca-key.pem")?;
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &t("ca-key.pem"),
            "-out",
            &t("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=berth-e2e-ca",
        ],
    )?;
    let mut certs = vec![(
        "server",
        cn,
        "server.ext",
        "server-key.pem",
        "server-cert.pem",
    )];
    if client {
        certs.push((
            "client",
            "berth-controller",
            "client.ext",
            "key.pem",
            "cert.pem",
        ));
    }
    for (name, cn, ext, k, c) in certs {
        key(k)?;
        let csr = t(&format!("{name}.csr"));
        sh(
            "openssl",
            &[
                "req",
                "-new",
                "-key",
                &t(k),
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        )?;
        sh(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &t("ca.pem"),
                "-CAkey",
                &t("ca-key.pem"),
                "-CAcreateserial",
                "-out",
                &t(c),
                "-days",
                "2",
                "-extfile",
                &t(ext),
            ],
        )?;
    }
    Ok(())
}

/// The private registry's `host:port`, the prefix of every reference pushed to it.
pub fn registry_addr() -> String {
    format!("{BRIDGE_IP}:{REGISTRY_PORT}")
}

/// The directory that makes every engine trust the registry's CA.
fn registry_certs_dir() -> PathBuf {
    PathBuf::from(CERTS_D).join(registry_addr())
}

/// A private registry (distribution's `docker-registry`) on the bridge address, with
/// htpasswd auth and TLS: Docker talks plain HTTP only to a registry on loopback, and the
/// hosts reach the root namespace over the bridge. Its CA is trusted through
/// [`CERTS_D`]; the main engine pushes to it, logged in through a Docker config of its
/// own (never the machine's). Started by the first scenario that needs it; `Drop` kills
/// it and removes the CA file and the images it built, as [`sweep`] does after a crash.
pub struct Registry {
    pub addr: String,
    pub user: String,
    pub password: String,
    dir: PathBuf,
    /// The `docker --config` directory holding the login the pushes use.
    config: PathBuf,
    _proc: Proc,
}

impl Registry {
    async fn start(logs: &Path) -> R<Registry> {
        for tool in ["docker-registry", "htpasswd", "openssl"] {
            if sh("sh", &["-c", &format!("command -v {tool}")]).is_err() {
                return Err(format!("{tool} is not installed (run scripts/setup.sh)"));
            }
        }
        let addr = registry_addr();
        std::net::TcpListener::bind((BRIDGE_IP, REGISTRY_PORT))
            .map_err(|e| format!("port {addr} is taken: {e}"))?;
        let dir = PathBuf::from(BASE).join("registry");
        let tls = dir.join("tls");
        make_certs(&tls, BRIDGE_IP, "berth-e2e-registry", false)?;
        let (user, password) = ("e2e", "e2e-registry-pass");
        // distribution only accepts bcrypt entries.
        let line = sh("htpasswd", &["-Bbn", user, password])?;
        let htpasswd = dir.join("htpasswd");
        fs::write(&htpasswd, line.trim_end()).map_err(|e| e.to_string())?;
        let config_yml = dir.join("config.yml");
        fs::write(
            &config_yml,
            format!(
                "version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: {addr}
  secret: berth-e2e
  tls:
    certificate: {cert}
    key: {key}
auth:
  htpasswd:
    realm: berth-e2e
    path: {htpasswd}
",
                storage = dir.join("storage").display(),
                cert = tls.join("server-cert.pem").display(),
                key = tls.join("server-key.pem").display(),
                htpasswd = htpasswd.display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let certs = registry_certs_dir();
        fs::create_dir_all(&certs).map_err(|e| format!("{}: {e}", certs.display()))?;
        fs::copy(tls.join("ca.pem"), certs.join("ca.crt")).map_err(|e| e.to_string())?;
        let mut proc = Proc::new(
            "registry",
            "docker-registry",
            vec!["serve".into(), config_yml.display().to_string()],
            logs,
        );
        proc.start()?;
        let reg = Registry {
            addr,
            user: user.to_owned(),
            password: password.to_owned(),
            config: dir.join("docker-config"),
            dir,
            _proc: proc,
        };
        // A login through the main engine is the readiness check that counts: it needs
        // the registry up, its certificate trusted and the password right.
        until(
            &format!("docker login {} over TLS", reg.addr),
            Duration::from_secs(30),
            || reg.login(),
        )
        .await?;
        Ok(reg)
    }

    async fn login(&self) -> R<()> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new("docker")
            .arg("--config")
            .arg(&self.config)
            .args(["login", &self.addr, "-u", &self.user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("docker login: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(self.password.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .map_err(|_| "docker login timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Build, on the main engine, the test image plus a file `/version` holding `marker`
    /// (COPY, not RUN: no container to start, and the image has no /tmp); its image ID.
    /// Tagged under the registry's address so that cleanup finds it, but not pushed.
    pub async fn build(&self, marker: &str) -> R<String> {
        let ctx = self.dir.join(format!("build-{marker}"));
        fs::create_dir_all(&ctx).map_err(|e| e.to_string())?;
        fs::write(ctx.join("version"), marker).map_err(|e| e.to_string())?;
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {IMAGE}\nCOPY version /version\n"),
        )
        .map_err(|e| e.to_string())?;
        let tag = format!("{}/build:{marker}", self.addr);
        local_docker(&["build", "-q", "-t", &tag, &ctx.display().to_string()]).await?;
        local_docker(&["image", "inspect", "-f", "{{.Id}}", &tag]).await
    }

    /// Point `ADDR/repo_tag` at local image `id` and push it (the tag moves if it was
    /// there); the pushed manifest's reference, `ADDR/repo@sha256:...`.
    pub async fn push(&self, id: &str, repo_tag: &str) -> R<String> {
        let reference = format!("{}/{repo_tag}", self.addr);
        local_docker(&["tag", id, &reference]).await?;
        let config = self.config.display().to_string();
        let out = local_docker(&["--config", &config, "push", &reference]).await?;
        // "1: digest: sha256:... size: 739"
        let digest = out
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .ok_or(format!("docker push {reference} printed no digest: {out}"))?;
        let repo = reference.rsplit_once(':').map_or(&*reference, |(r, _)| r);
        Ok(format!("{repo}@{digest}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // `_proc` is killed after this, as a field.
        remove_registry_traces();
    }
}

/// `docker args...` on the machine's own engine; stdout, or the error text.
async fn local_docker(args: &[&str]) -> R<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("docker")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("docker {}: timed out", args.join(" ")))?
    .map_err(|e| format!("docker: {e}"))?;
    stdout_of("docker", args, &out).map(|s| s.trim().to_owned())
}

/// What the registry leaves outside [`BASE`]: its CA in [`CERTS_D`] and the main engine's
/// images under its address (built, pushed or only tagged).
fn remove_registry_traces() {
    let _ = fs::remove_dir_all(registry_certs_dir());
    // Only when nothing else is in it: other registries' CAs stay.
    let _ = fs::remove_dir(CERTS_D);
    let prefix = format!("{}/", registry_addr());
    // Never the test image itself, whatever was tagged from it.
    let test_image =
        sh("docker", &["image", "inspect", "-f", "{{.Id}}", IMAGE]).unwrap_or_default();
    let Ok(out) = sh(
        "docker",
        &[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}",
        ],
    ) else {
        return;
    };
    let ids: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(id, repo)| repo.starts_with(&prefix) && *id != test_image.trim())
        .map(|(id, _)| id)
        .collect();
    for id in ids {
        quiet("docker", &["rmi", "-f", id]);
    }
}

/// A container start an engine reported.
#[derive(Debug, Clone)]
pub struct Start {
    pub at: SystemTime,
    pub id: String,
    /// `<service>.<replica>`, from its labels.
    pub slot: String,
}

/// One container as `docker ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctr {
    pub host: String,
    pub id: String,
    pub name: String,
    pub state: String,
    pub managed: bool,
    pub stack: String,
    pub service: String,
    pub replica: String,
    /// Docker's health check: `healthy`, `unhealthy`, `starting`, or empty without one.
    pub health: String,
}

impl Ctr {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
    /// Serving: running, and healthy if it has a check.
    pub fn ready(&self) -> bool {
        self.running() && (self.health == "healthy" || self.health.is_empty())
    }
    /// `<service>.<replica>`, the slot.
    pub fn slot(&self) -> String {
        format!("{}.{}", self.service, self.replica)
    }
}

pub struct EtcdMember {
    pub name: String,
    pub proc: Proc,
}

pub struct Controller {
    pub id: String,
    pub metrics_port: u16,
    pub proc: Proc,
}

pub struct Cluster {
    pub hosts: Vec<Host>,
    /// Host 4: an engine on TCP with TLS and no agent (see [`AGENTLESS`]).
    pub agentless: Host,
    pub etcd: Vec<EtcdMember>,
    pub controllers: Vec<Controller>,
    pub endpoints: Vec<String>,
    pub store: Store,
    pub berth: String,
    /// Started by the first scenario that asks for it ([`Cluster::start_registry`]).
    pub registry: Option<Registry>,
    logs: PathBuf,
    _lock: File,
}

impl Cluster {
    pub async fn start() -> R<Cluster> {
        elapsed();
        preflight()?;
        let lock = File::create(LOCK).map_err(|e| format!("{LOCK}: {e}"))?;
        if lock.try_lock().is_err() {
            say!("another e2e run holds {LOCK}; waiting for it");
            lock.lock().map_err(|e| format!("lock {LOCK}: {e}"))?;
        }
        sweep();
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        let _ = fs::remove_dir_all(&logs);
        fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
        fs::create_dir_all(BASE).map_err(|e| e.to_string())?;
        let berth = env!("CARGO_BIN_EXE_berth").to_owned();
        let endpoints: Vec<String> = ETCD_CLIENT_PORTS
            .iter()
            .map(|p| format!("http://{BRIDGE_IP}:{p}"))
            .collect();
        let joined = endpoints.join(",");

        // Built piecemeal so that a failure half-way still tears down what exists.
        let mut c = Partial {
            hosts: Vec::new(),
            etcd: Vec::new(),
            controllers: Vec::new(),
        };
        let r = async {
            sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
            sh(
                "ip",
                &["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", BRIDGE],
            )?;
            sh("ip", &["link", "set", BRIDGE, "up"])?;
            // The root namespace's Docker engine sets FORWARD's policy to DROP, which would
            // silently drop host-to-host traffic across the bridge.
            sh(
                "iptables",
                &["-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
            )?;
            for p in ETCD_CLIENT_PORTS.iter().chain(&ETCD_PEER_PORTS) {
                std::net::TcpListener::bind((BRIDGE_IP, *p))
                    .map_err(|e| format!("port {BRIDGE_IP}:{p} is taken: {e}"))?;
            }
            c.etcd = etcd_members(&logs);
            for m in &mut c.etcd {
                m.proc.start()?;
            }
            for n in 1..=AGENTLESS {
                let h = Host::new(n, &berth, &joined, &logs);
                h.plumb()?;
                c.hosts.push(h);
            }
            for h in &mut c.hosts {
                h.start_dockerd()?;
            }
            let image = format!("{BASE}/image.tar");
            sh("docker", &["save", "-o", &image, IMAGE])?;
            // Berth's own image, from this build's binary, for host-3's agent.
            let own = format!("{BASE}/berth-image.tar");
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/image.sh");
            sh(script, &[&berth, BERTH_IMAGE])?;
            sh("docker", &["save", "-o", &own, BERTH_IMAGE])?;
            quiet("docker", &["rmi", BERTH_IMAGE]);
            for (n, h) in (1..).zip(&c.hosts) {
                h.wait_docker(Duration::from_secs(60)).await?;
                h.docker(&["load", "-q", "-i", &image]).await?;
                if n == IMAGE_AGENT {
                    h.docker(&["load", "-q", "-i", &own]).await?;
                }
            }
            let _ = fs::remove_file(&own);
            let store = until("etcd answers", Duration::from_secs(30), || async {
                let s = Store::connect(&endpoints, "/berth")
                    .await
                    .map_err(|e| e.to_string())?;
                s.list(keys::HOSTS).await.map_err(|e| e.to_string())?;
                Ok(s)
            })
            .await?;
            for name in ["a", "b"] {
                let port = free_port();
                let id = format!("{CONTROLLER_PREFIX}{name}");
                let mut proc = Proc::new(
                    &format!("controller-{name}"),
                    &berth,
                    [
                        "controller",
                        "--etcd-endpoints",
                        &joined,
                        "--controller-id",
                        &id,
                        "--host-down-grace",
                        &secs(HOST_DOWN_GRACE),
                        "--leader-ttl",
                        &secs(LEADER_TTL),
                        "--controller-resync",
                        RESYNC,
                        "--metrics-addr",
                        &format!("127.0.0.1:{port}"),
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    &logs,
                );
                proc.start()?;
                c.controllers.push(Controller {
                    id,
                    metrics_port: port,
                    proc,
                });
            }
            for h in c.hosts.iter_mut().filter(|h| h.tcp.is_none()) {
                h.agent.start()?;
            }
            Ok::<Store, String>(store)
        }
        .await;
        let store = match r {
            Ok(s) => s,
            Err(e) => {
                drop(c);
                sweep();
                return Err(e);
            }
        };
        let (mut hosts, etcd, controllers) = c.take();
        let agentless = hosts.pop().expect("the agentless host was built last");
        let cluster = Cluster {
            hosts,
            agentless,
            etcd,
            controllers,
            endpoints,
            store,
            berth,
            registry: None,
            logs,
            _lock: lock,
        };
        cluster.wait_hosts_ready(Duration::from_secs(60)).await?;
        cluster.leader(Duration::from_secs(30)).await?;
        say!("cluster up: 3 hosts, 3 etcd members, 2 controllers; {AGENTLESS_ID}'s engine on TLS, not yet added");
        Ok(cluster)
    }

    pub fn host(&self, id: &str) -> &Host {
        self.hosts.iter().find(|h| h.id == id).expect("known host")
    }

    pub fn host_mut(&mut self, id: &str) -> &mut Host {
        self.hosts
            .iter_mut()
            .find(|h| h.id == id)
            .expect("known host")
    }

    pub async fn wait_hosts_ready(&self, timeout: Duration) -> R<()> {
        let want: Vec<String> = self.hosts.iter().map(|h| h.id.clone()).collect();
        until(
            "every agent's host registered, and only those",
            timeout,
            || async {
                let ids = self.registered().await?;
                if ids == want {
                    Ok(())
                } else {
                    Err(format!("registered: {ids:?}"))
                }
            },
        )
        .await
    }

    /// Host ids with a registration in etcd.
    pub async fn registered(&self) -> R<Vec<String>> {
        let (kvs, _) = timed(self.store.list(keys::HOSTS)).await?;
        Ok(kvs
            .into_iter()
            .map(|kv| kv.key.trim_start_matches(keys::HOSTS).to_owned())
            .collect())
    }

    /// Index of the controller whose metrics say it leads (exactly one must).
    pub async fn leader(&self, timeout: Duration) -> R<usize> {
        until("exactly one leading controller", timeout, || async {
            let mut leading = Vec::new();
            for (i, c) in self.controllers.iter().enumerate() {
                if metric(c.metrics_port, "berth_leader").await == Some(1.0) {
                    leading.push(i);
                }
            }
            match leading.as_slice() {
                [one] => Ok(*one),
                other => Err(format!("leading: {other:?}")),
            }
        })
        .await
    }

    /// Scheduler passes the controllers have finished, from their `berth_reconcile_total`
    /// (only the leader runs them; one that does not answer counts none).
    pub async fn scheduler_passes(&self) -> f64 {
        let mut n = 0.0;
        for x in &self.controllers {
            n += metric_sum(
                x.metrics_port,
                "berth_reconcile_total",
                &["component=\"scheduler\""],
            )
            .await
            .unwrap_or(0.0);
        }
        n
    }

    /// Waits until the controllers finish two scheduler passes more than they had when
    /// called: the second of them started after the call, so it saw everything the world
    /// held by then. What a "nothing happened" check waits on instead of a fixed sleep.
    pub async fn wait_full_pass(&self, timeout: Duration) -> R<()> {
        let from = self.scheduler_passes().await;
        until("two more scheduler passes", timeout, || async {
            let now = self.scheduler_passes().await;
            if now >= from + 2.0 {
                Ok(())
            } else {
                Err(format!("{} pass(es) since", now - from))
            }
        })
        .await
    }

    /// Put a stack; its key's mod_revision.
    pub async fn put_stack(&self, id: &str, value: impl Into<Vec<u8>>) -> R<i64> {
        timed(self.store.put(&keys::stack(id), value.into())).await
    }

    pub async fn delete_stack(&self, id: &str) -> R<()> {
        timed(self.store.delete(&keys::stack(id))).await.map(|_| ())
    }

    pub async fn status(&self, id: &str) -> R<Option<StackStatus>> {
        let kv = timed(self.store.get(&keys::status(id))).await?;
        match kv {
            None => Ok(None),
            Some(kv) => serde_json::from_slice(&kv.value)
                .map(Some)
                .map_err(|e| format!("status of {id} does not parse: {e}")),
        }
    }

    /// Wait for the status of `id` at revision `rev` to satisfy `pred`.
    pub async fn wait_status(
        &self,
        id: &str,
        rev: i64,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&StackStatus) -> bool,
    ) -> R<StackStatus> {
        until(&format!("{id}: {what}"), timeout, || async {
            match self.status(id).await? {
                Some(s) if s.observed_revision == rev && pred(&s) => Ok(s),
                Some(s) => Err(format!(
                    "rev {} (want {rev}) phase {:?}: {}; services {}",
                    s.observed_revision,
                    s.phase,
                    s.message,
                    brief_services(&s)
                )),
                None => Err("no status".into()),
            }
        })
        .await
    }

    pub async fn wait_running(&self, id: &str, rev: i64, timeout: Duration) -> R<StackStatus> {
        self.wait_status(id, rev, timeout, "phase Running", |s| {
            s.phase == Phase::Running
        })
        .await
    }

    /// The three agent hosts, then the agentless one.
    pub fn engines(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().chain(std::iter::once(&self.agentless))
    }

    /// Managed containers of `stack` on every host, the agentless one included (all
    /// states).
    pub async fn containers(&self, stack: &str) -> R<Vec<Ctr>> {
        let mut all = Vec::new();
        for h in self.engines() {
            all.extend(
                h.ps(&["berth.managed=true", &format!("berth.stack={stack}")])
                    .await?,
            );
        }
        Ok(all)
    }

    /// Every managed container on every host.
    pub async fn all_managed(&self) -> R<Vec<Ctr>> {
        let mut all = Vec::new();
        for h in self.engines() {
            all.extend(h.ps(&["berth.managed=true"]).await?);
        }
        Ok(all)
    }

    /// `berth <args>` against this cluster's etcd.
    pub async fn berth(&self, args: &[&str]) -> R<String> {
        let out = tokio::process::Command::new(&self.berth)
            .args(args)
            .env("BERTH_ETCD_ENDPOINTS", self.endpoints.join(","))
            .output()
            .await
            .map_err(|e| e.to_string())?;
        stdout_of("berth", args, &out)
    }

    /// `berth <args>` with `input` on its stdin (a password, say).
    pub async fn berth_stdin(&self, args: &[&str], input: &str) -> R<String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(&self.berth)
            .args(args)
            .env("BERTH_ETCD_ENDPOINTS", self.endpoints.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
        stdout_of("berth", args, &out)
    }

    /// Start the private registry unless it runs (see [`Registry`]).
    pub async fn start_registry(&mut self) -> R<&Registry> {
        if self.registry.is_none() {
            self.registry = Some(Registry::start(&self.logs).await?);
            say!("registry up at {} (TLS, htpasswd)", registry_addr());
        }
        self.registry
            .as_ref()
            .ok_or_else(|| "no registry".to_owned())
    }

    /// `etcdctl` against this cluster; its stdout.
    pub async fn etcdctl(&self, args: &[&str]) -> R<String> {
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.endpoints.join(",")))
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("etcdctl {}: timed out", args.join(" ")))?
        .map_err(|e| e.to_string())?;
        stdout_of("etcdctl", args, &out)
    }

    /// Live etcd leases, each with the keys attached to it.
    pub async fn leases(&self) -> R<Vec<(String, Vec<String>)>> {
        let list = self.etcdctl(&["lease", "list"]).await?;
        let mut out = Vec::new();
        for id in list
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let ttl = self
                .etcdctl(&["lease", "timetolive", "--keys", "-w", "json", id])
                .await?;
            let v: serde_json::Value = serde_json::from_str(&ttl).unwrap_or_default();
            if v["ttl"].as_i64().unwrap_or(-1) <= 0 {
                continue;
            }
            let keys = v["keys"]
                .as_array()
                .map(|ks| {
                    ks.iter()
                        .filter_map(|k| k.as_str())
                        .map(|k| decode_base64(k).unwrap_or_else(|| k.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((id.to_owned(), keys));
        }
        Ok(out)
    }

    /// Every PUT under `prefix` from revision `from` until now, replayed from etcd's
    /// history: `(key, value)` in revision order.
    pub async fn history(&self, prefix: &str, from: i64) -> R<Vec<(String, String)>> {
        let mut child = tokio::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints.join(",")))
            .args(["watch", "--prefix", prefix, "--rev", &from.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = Vec::new();
        use tokio::io::AsyncReadExt;
        // The replay arrives at once; then the watch idles until killed.
        let _ = tokio::time::timeout(Duration::from_secs(3), stdout.read_to_end(&mut buf)).await;
        let _ = child.kill().await;
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            match lines[i] {
                "PUT" if i + 2 < lines.len() => {
                    out.push((lines[i + 1].to_owned(), lines[i + 2].to_owned()));
                    i += 3;
                }
                "DELETE" if i + 1 < lines.len() => i += 2,
                _ => i += 1,
            }
        }
        Ok(out)
    }

    /// Current etcd revision.
    pub async fn revision(&self) -> R<i64> {
        timed(self.store.list(keys::HOSTS))
            .await
            .map(|(_, rev)| rev)
    }

    /// Back to a healthy, empty cluster after a scenario, whatever it did: links up,
    /// nothing stopped, every daemon running, the given stacks deleted and their
    /// containers gone. Returns what it had to repair by force.
    pub async fn reset(&mut self, stacks: &[String]) -> Vec<String> {
        let mut notes = Vec::new();
        for h in &mut self.hosts {
            let _ = h.heal();
            h.agent.signal("CONT");
        }
        for c in &mut self.controllers {
            c.proc.signal("CONT");
        }
        for m in &mut self.etcd {
            match m.proc.revive() {
                Ok(true) => notes.push(format!("etcd {} had died", m.name)),
                Err(e) => notes.push(e),
                Ok(false) => {}
            }
        }
        for h in &mut self.hosts {
            if !h.dockerd.alive() {
                if let Err(e) = h.start_dockerd() {
                    notes.push(e);
                }
                if let Err(e) = h.wait_docker(Duration::from_secs(60)).await {
                    notes.push(e);
                }
            }
            match h.agent.revive() {
                Ok(true) => notes.push(format!("agent {} had died", h.id)),
                Err(e) => notes.push(e),
                Ok(false) => {}
            }
        }
        for c in &mut self.controllers {
            match c.proc.revive() {
                Ok(true) => notes.push(format!("controller {} had died", c.id)),
                Err(e) => notes.push(e),
                Ok(false) => {}
            }
        }
        let store_ok = until("etcd answers", Duration::from_secs(30), || self.revision())
            .await
            .is_ok();
        if !store_ok {
            notes.push("etcd did not answer".into());
        }
        for h in &self.hosts {
            let _ = timed(self.store.delete(&keys::maintenance(&h.id))).await;
        }
        let _ = timed(self.store.delete(&keys::registry(&registry_addr()))).await;
        for s in stacks {
            // A pause would hold a rollout of the next stack of that name.
            let _ = timed(self.store.delete(&keys::pause(s))).await;
            let _ = self.delete_stack(s).await;
        }
        let gone = until(
            "the scenario's containers and statuses are gone",
            Duration::from_secs(45),
            || async {
                let mut left = Vec::new();
                for s in stacks {
                    for c in self.containers(s).await? {
                        left.push(format!("{} on {}", c.name, c.host));
                    }
                    if self.status(s).await?.is_some() {
                        left.push(format!("status of {s}"));
                    }
                }
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(left.join(", "))
                }
            },
        )
        .await;
        if let Err(e) = gone {
            notes.push(format!("cleanup by force: {e}"));
            for s in stacks {
                for h in self.engines() {
                    for c in h
                        .ps(&[&format!("berth.stack={s}")])
                        .await
                        .unwrap_or_default()
                    {
                        let _ = h.docker(&["rm", "-f", &c.id]).await;
                    }
                }
                let _ = timed(self.store.delete(&keys::status(s))).await;
            }
        }
        // The agentless host is registered only inside the scenarios that add it.
        let agentless = keys::agentless(AGENTLESS_ID);
        if let Ok(Some(_)) = timed(self.store.get(&agentless)).await {
            notes.push(format!("{AGENTLESS_ID} forgotten by force"));
            let _ = timed(self.store.delete(&agentless)).await;
        }
        for c in self
            .agentless
            .ps(&["berth.managed=true"])
            .await
            .unwrap_or_default()
        {
            notes.push(format!("{} removed by force from {AGENTLESS_ID}", c.name));
            let _ = self.agentless.docker(&["rm", "-f", &c.id]).await;
        }
        if !self.agentless.dockerd.alive() {
            notes.push(format!("dockerd of {AGENTLESS_ID} had died"));
            if let Err(e) = self.agentless.start_dockerd() {
                notes.push(e);
            }
        }
        if let Err(e) = self.wait_hosts_ready(Duration::from_secs(30)).await {
            notes.push(e);
        }
        notes
    }

    /// `berth host add` of the agentless host, over TCP with TLS; returns once the
    /// leading controller drives it (its reconciler registered the host).
    pub async fn add_agentless(&self) -> R<()> {
        let h = &self.agentless;
        let tcp = h
            .tcp
            .as_deref()
            .ok_or("the agentless host has no TCP endpoint")?;
        let tls = h.tls_dir();
        let file = |f: &str| tls.join(f).display().to_string();
        self.berth(&[
            "host",
            "add",
            &h.id,
            "--docker-host",
            tcp,
            "--address",
            &h.ip,
            "--tls-ca",
            &file("ca.pem"),
            "--tls-cert",
            &file("cert.pem"),
            "--tls-key",
            &file("key.pem"),
        ])
        .await?;
        until(
            &format!("the controller drives {} over {tcp}", h.id),
            Duration::from_secs(30),
            || async {
                let ids = self.registered().await?;
                if ids.iter().any(|i| i == &h.id) {
                    Ok(())
                } else {
                    Err(format!("registered: {ids:?}"))
                }
            },
        )
        .await
    }

    /// Orderly teardown; [`sweep`] then removes anything left.
    fn teardown(&mut self) {
        self.registry = None;
        for h in &mut self.hosts {
            h.agent.kill();
        }
        for c in &mut self.controllers {
            c.proc.kill();
        }
        for h in self
            .hosts
            .iter_mut()
            .chain(std::iter::once(&mut self.agentless))
        {
            let _ = h.heal();
            remove_all_containers(&h.sock);
            h.dockerd.stop(Duration::from_secs(20));
        }
        for m in &mut self.etcd {
            m.proc.kill();
        }
        sweep();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
        say!("cluster torn down");
    }
}

/// What exists of a cluster while it is being built.
struct Partial {
    hosts: Vec<Host>,
    etcd: Vec<EtcdMember>,
    controllers: Vec<Controller>,
}

impl Partial {
    fn take(&mut self) -> (Vec<Host>, Vec<EtcdMember>, Vec<Controller>) {
        (
            std::mem::take(&mut self.hosts),
            std::mem::take(&mut self.etcd),
            std::mem::take(&mut self.controllers),
        )
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.agent.kill();
        }
        for c in &mut self.controllers {
            c.proc.kill();
        }
        for h in &mut self.hosts {
            remove_all_containers(&h.sock);
            h.dockerd.stop(Duration::from_secs(20));
        }
        for m in &mut self.etcd {
            m.proc.kill();
        }
    }
}

fn etcd_members(logs: &Path) -> Vec<EtcdMember> {
    let cluster: Vec<String> = ETCD_PEER_PORTS
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{}=http://{BRIDGE_IP}:{p}", i + 1))
        .collect();
    let cluster = cluster.join(",");
    (0..3)
        .map(|i| {
            let name = format!("e{}", i + 1);
            let client = format!("http://{BRIDGE_IP}:{}", ETCD_CLIENT_PORTS[i]);
            let peer = format!("http://{BRIDGE_IP}:{}", ETCD_PEER_PORTS[i]);
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={BASE}/etcd-{name}"),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster={cluster}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=berth-e2e".into(),
                // Scenario 10 writes a 10 MB value: etcd's default limit (1.5 MiB) would
                // refuse it before Berth ever saw it.
                "--max-request-bytes=16777216".into(),
                "--log-level=warn".into(),
            ];
            EtcdMember {
                proc: Proc::new(&format!("etcd-{name}"), "etcd", args, logs),
                name,
            }
        })
        .collect()
}

fn preflight() -> R<()> {
    let uid = sh("id", &["-u"])?;
    if uid.trim() != "0" {
        return Err("the e2e suite needs root (network namespaces, dockerd)".into());
    }
    for tool in [
        "ip", "nsenter", "setpriv", "dockerd", "docker", "iptables", "etcd", "etcdctl",
    ] {
        if sh("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            return Err(format!("{tool} is not installed (run scripts/setup.sh)"));
        }
    }
    sh("docker", &["image", "inspect", "-f", "{{.Id}}", IMAGE])
        .map_err(|e| format!("{IMAGE} is missing from the local engine (make setup): {e}"))?;
    Ok(())
}

fn remove_all_containers(sock: &str) {
    let Ok(out) = Command::new("docker")
        .args(["-H", sock, "ps", "-aq"])
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    let ids = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["-H", sock, "rm", "-f"];
        args.extend(ids);
        quiet("docker", &args);
    }
}

/// Pids whose command line names something only this suite starts.
fn our_processes() -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains(BASE) || cmd.contains(CONTROLLER_PREFIX) {
            pids.push(pid);
        }
    }
    pids
}

/// Remove everything this suite may have left, from this or a crashed earlier run: its
/// engines' containers, its processes (found by their command lines), its containers'
/// cgroups, mounts, namespaces, links, the firewall rule and the files.
pub fn sweep() {
    for n in 1..=AGENTLESS {
        let sock = format!("unix://{BASE}/h{n}/docker.sock");
        if Path::new(&format!("{BASE}/h{n}/docker.sock")).exists() {
            remove_all_containers(&sock);
        }
        if let Ok(pid) = fs::read_to_string(format!("{BASE}/h{n}/docker.pid")) {
            let pid = pid.trim();
            let ours = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(BASE))
                .unwrap_or(false);
            if ours {
                quiet("kill", &["-TERM", pid]);
                for _ in 0..100 {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    for _ in 0..10 {
        let pids = our_processes();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            signal(pid, "KILL");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Container processes of a dockerd that died without stopping them.
    for n in 1..=AGENTLESS {
        for ctl in [
            "pids", "memory", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "systemd",
        ] {
            let root = PathBuf::from(format!("/sys/fs/cgroup/{ctl}/{CGROUP_PREFIX}h{n}"));
            if !root.exists() {
                continue;
            }
            let mut dirs = Vec::new();
            collect_dirs(&root, &mut dirs);
            for d in &dirs {
                if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.split_whitespace() {
                        quiet("kill", &["-KILL", pid]);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
            for d in dirs.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
    }
    if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(BASE))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            quiet("umount", &["-l", p]);
        }
    }
    if let Ok(list) = sh("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if ns.starts_with(NETNS_PREFIX) {
                quiet("ip", &["netns", "del", ns]);
            }
        }
    }
    for n in 1..=AGENTLESS {
        quiet("ip", &["link", "del", &format!("{VETH_PREFIX}h{n}")]);
    }
    quiet("ip", &["link", "del", BRIDGE]);
    for _ in 0..10 {
        let deleted = Command::new("iptables")
            .args(["-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !deleted {
            break;
        }
    }
    remove_registry_traces();
    let _ = fs::remove_dir_all(BASE);
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// What is left of the machine from this suite: empty when the sweep did its job.
pub fn leftovers() -> Vec<String> {
    let mut left = Vec::new();
    for pid in our_processes() {
        left.push(format!("process {pid}"));
    }
    if let Ok(list) = sh("ip", &["netns", "list"]) {
        for ns in list.lines().filter(|l| l.starts_with(NETNS_PREFIX)) {
            left.push(format!("netns {ns}"));
        }
    }
    if sh("ip", &["link", "show", BRIDGE]).is_ok() {
        left.push(format!("bridge {BRIDGE}"));
    }
    if Path::new(BASE).exists() {
        left.push(BASE.to_owned());
    }
    if registry_certs_dir().exists() {
        left.push(registry_certs_dir().display().to_string());
    }
    if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
        for l in mounts.lines().filter(|l| l.contains(BASE)) {
            left.push(format!("mount {l}"));
        }
    }
    for n in 1..=AGENTLESS {
        let cg = format!("/sys/fs/cgroup/pids/{CGROUP_PREFIX}h{n}");
        if Path::new(&cg).exists() {
            left.push(format!("cgroup {cg}"));
        }
    }
    if sh(
        "iptables",
        &["-C", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],
    )
    .is_ok()
    {
        left.push("iptables FORWARD rule".into());
    }
    left
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A store call that cannot hang the suite (etcd may be down on purpose).
pub async fn timed<T>(f: impl Future<Output = Result<T, berth::store::StoreError>>) -> R<T> {
    match tokio::time::timeout(Duration::from_secs(8), f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("etcd request timed out".into()),
    }
}

/// Poll `f` every 100 ms until it is `Ok`, or fail with its last error after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> R<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "timed out after {:.0}s waiting for {what}; last: {last}",
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of 127.0.0.1:`port`/metrics, or `None` when it does not answer in time.
async fn scrape(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// One sample of a Prometheus metric without labels from 127.0.0.1:`port`.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let text = scrape(port).await?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// The sum of every sample of `name` from 127.0.0.1:`port` whose labels include each of
/// `labels` (written `key="value"`).
pub async fn metric_sum(port: u16, name: &str, labels: &[&str]) -> Option<f64> {
    let text = scrape(port).await?;
    let prefix = format!("{name}{{");
    Some(
        text.lines()
            .filter_map(|l| {
                let (series, value) = l.split_once(' ')?;
                let inner = series.strip_prefix(&prefix)?.strip_suffix('}')?;
                let mine: Vec<&str> = inner.split(',').collect();
                labels
                    .iter()
                    .all(|want| mine.contains(want))
                    .then(|| value.trim().parse::<f64>().ok())?
            })
            .sum(),
    )
}

/// `service@host state/health` for error messages.
pub fn brief_services(s: &StackStatus) -> String {
    let parts: Vec<String> = s
        .services
        .iter()
        .map(|(name, svc)| {
            format!(
                "{name}@{} {}/{}",
                svc.host.as_deref().unwrap_or("-"),
                svc.state,
                svc.health
            )
        })
        .collect();
    parts.join(", ")
}

/// The health in a `docker ps` status such as `Up 3 seconds (healthy)`, as [`Ctr::health`].
pub fn health_of(status: &str) -> String {
    let h = if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("(health: starting)") {
        "starting"
    } else {
        ""
    };
    h.to_owned()
}

/// Running copies per slot (`service.replica`) of `stack`, and their hosts.
pub fn copies(ctrs: &[Ctr]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in ctrs.iter().filter(|c| c.running()) {
        m.entry(c.slot()).or_default().push(c.host.clone());
    }
    m
}

/// Standard base64 (as `etcdctl -w json` prints keys) to text.
fn decode_base64(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for ch in s.bytes().filter(|c| *c != b'=') {
        let v = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'a'..=b'z' => ch - b'a' + 26,
            b'0'..=b'9' => ch - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}
