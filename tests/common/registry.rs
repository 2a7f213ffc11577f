//! A real Docker registry (distribution's `docker-registry`, as `scripts/setup.sh`
//! installs it) with htpasswd auth on a free loopback port, for tests that pull private
//! images. Each test gets its own instance, storage and logs in a temp dir, all removed on
//! drop with the local images it pushed or built. The engine talks plain HTTP to it, as it
//! does to any registry on 127.0.0.0/8.
//!
//! The registry writes one access-log line per request to stdout, 401s included:
//!
//! ```text
//! 127.0.0.1 - - [03/Dec/2026:11:14:57 +0000] "GET /v2/team/app/manifests/1 HTTP/1.1" 401 151 "" "docker/..."
//! ```
//!
//! [`Registry::requests`] counts those lines, so a test can count pull attempts, failed
//! ones too. (Its stderr log says "response completed" only for authorized requests.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{docker, free_port, run_ok, Proc};

pub struct Registry {
    /// `127.0.0.1:PORT`, the prefix of every reference pushed here.
    pub addr: String,
    pub user: String,
    pub password: String,
    dir: PathBuf,
    proc: Proc,
    /// The access log: one line per request.
    log: PathBuf,
    /// Images [`Registry::push_new_version`] built, removed on drop: they may be left
    /// untagged.
    built: std::sync::Mutex<Vec<String>>,
}

impl Registry {
    /// Start a registry that lets `user` with `password` push and pull, and wait until it
    /// answers.
    pub fn start(user: &str, password: &str) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let htpasswd = dir.join("htpasswd");
        // distribution only accepts bcrypt entries.
        let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
        std::fs::write(&htpasswd, format!("{line}\n")).expect("write htpasswd");
        let log = dir.join("access.log");
        let errors = dir.join("registry.log");
        // The port is free when picked but could be taken before the registry binds it:
        // a registry that exits at once gets another port.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let config = dir.join("config.yml");
            std::fs::write(&config, config_yml(&dir, &addr, &htpasswd)).expect("write config");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).expect("create access log"))
                .stderr(std::fs::File::create(&errors).expect("create registry log"))
                .spawn()
                .expect("run docker-registry (run scripts/setup.sh)");
            let mut proc = Proc(child);
            if wait_answering(&addr, &mut proc) {
                return Registry {
                    addr,
                    user: user.to_owned(),
                    password: password.to_owned(),
                    dir,
                    proc,
                    log,
                    built: Default::default(),
                };
            }
        }
        let why = std::fs::read_to_string(&errors).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        panic!("docker-registry did not start:\n{why}");
    }

    /// Push local image `local` as `ADDR/repo_tag` (e.g. `team/app:1`), logged in as this
    /// registry's user in a throwaway Docker config, never the machine's. The local tag
    /// stays (see [`Registry::forget_local`]). Returns the full reference.
    pub fn push(&self, local: &str, repo_tag: &str) -> String {
        let reference = format!("{}/{repo_tag}", self.addr);
        run_ok(Command::new("docker").args(["tag", local, &reference]));
        self.push_tagged(&reference);
        reference
    }

    /// Remove local tag `reference` (if there), so the engine has to pull it.
    pub fn forget_local(&self, reference: &str) {
        docker(&["rmi", reference]);
        let left = Command::new("docker")
            .args(["image", "inspect", reference])
            .output()
            .expect("run docker");
        assert!(
            !left.status.success(),
            "{reference} is still there after docker rmi (a container uses it?)"
        );
    }

    /// Push a new image under `ADDR/repo_tag`: the test image plus a file `/version`
    /// holding `marker`. Where the engine had `ADDR/repo_tag`, it keeps the image it had
    /// (elsewhere it has none), so what runs it only gets the new one by pulling again.
    /// Returns the new image's id (`sha256:...`).
    pub fn push_new_version(&self, repo_tag: &str, marker: &str) -> String {
        let reference = format!("{}/{repo_tag}", self.addr);
        let ctx = tempfile::tempdir_in(&self.dir).expect("build dir");
        std::fs::write(ctx.path().join("version"), marker).expect("write version");
        // COPY rather than RUN: no container to start, and the image has no /tmp.
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM berth-test/busybox:latest\nCOPY version /version\n",
        )
        .expect("write Dockerfile");
        let id = run_ok(Command::new("docker").args(["build", "-q"]).arg(ctx.path()));
        self.built.lock().unwrap().push(id.clone());
        let before = image_id(&reference);
        run_ok(Command::new("docker").args(["tag", &id, &reference]));
        self.push_tagged(&reference);
        match before {
            Some(old) => run_ok(Command::new("docker").args(["tag", &old, &reference])),
            None => docker(&["rmi", &reference]),
        };
        id
    }

    /// How many requests the registry has logged whose line contains `needle`. To count
    /// pull attempts of `team/app:1`, count `"HEAD /v2/team/app/manifests/1 `: the engine
    /// (20.10) makes one per pull that has credentials, right or wrong. The other manifest
    /// requests vary: a GET by digest when the engine lacks the manifest, a GET by tag
    /// after a refused HEAD. A pull without credentials stops at the 401 to `GET /v2/`, so
    /// it logs no manifest request at all. A request is logged just after its response is
    /// sent: right after a pull, use [`Registry::wait_requests`].
    pub fn requests(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Wait (up to 10 s) until [`Registry::requests`] counts at least `at_least`; the
    /// count then, which may be larger.
    pub fn wait_requests(&self, needle: &str, at_least: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = self.requests(needle);
            if n >= at_least || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole access log, for a failing test's message.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A Docker `config.json` holding this registry's credentials (for `--docker-config`).
    pub fn docker_config_json(&self) -> String {
        docker_config_json(&self.addr, &self.user, &self.password)
    }

    /// Log in as this registry's user in a config dir of its own, then push.
    fn push_tagged(&self, reference: &str) {
        let config = self.dir.join("docker-config");
        if !config.join("config.json").exists() {
            std::fs::create_dir_all(&config).expect("docker config dir");
            login(&config, &self.addr, &self.user, &self.password)
                .unwrap_or_else(|e| panic!("docker login {}: {e}", self.addr));
        }
        run_ok(
            Command::new("docker")
                .arg("--config")
                .arg(&config)
                .args(["push", "-q", reference]),
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Tags under this address are dead once the registry is gone.
        let prefix = format!("{}/", self.addr);
        let tags = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        for tag in tags.lines().filter(|t| t.starts_with(&prefix)) {
            docker(&["rmi", tag]);
        }
        for id in self.built.lock().unwrap().iter() {
            docker(&["rmi", id]);
        }
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Docker `config.json` with `user`:`password` for registry `addr`.
pub fn docker_config_json(addr: &str, user: &str, password: &str) -> String {
    serde_json::json!({
        "auths": { addr: { "auth": base64(format!("{user}:{password}").as_bytes()) } }
    })
    .to_string()
}

/// `docker --config DIR login ADDR`, the password on stdin; Docker's stderr on failure.
pub fn login(config: &Path, addr: &str, user: &str, password: &str) -> Result<(), String> {
    let mut child = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(["login", addr, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("docker login");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn config_yml(dir: &Path, addr: &str, htpasswd: &Path) -> String {
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: {addr}
  # Set, so it does not warn about generating one.
  secret: berth-test
auth:
  htpasswd:
    realm: berth-test
    path: {htpasswd}
",
        storage = dir.join("storage").display(),
        htpasswd = htpasswd.display(),
    )
}

/// Wait until `GET /v2/` at `addr` answers 401 (auth is on, so that is "up"); false if
/// the registry exits first.
fn wait_answering(addr: &str, proc: &mut Proc) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = proc.0.try_wait() {
            return false;
        }
        if let Some(status) = get_status(addr, "/v2/") {
            assert_eq!(status, 401, "GET /v2/ without credentials at {addr}");
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("docker-registry at {addr} did not answer in 30 s");
}

/// The status code of `GET path` at `addr`, if something answered HTTP.
fn get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    // "HTTP/1.0 401 Unauthorized"
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The id of local image `reference`, if there is one.
fn image_id(reference: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", reference])
        .output()
        .expect("run docker");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Standard base64 with padding (the encoding of `auth` in a Docker config).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
