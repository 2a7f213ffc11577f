//! The `berth` binary's user-facing contract: `berth validate` output and exit codes,
//! `berth registry login|logout` against an etcd, and `berth up` with its own etcd.

mod common;

use std::process::Command;
use std::time::Duration;

use berth::spec::{Phase, StackStatus};
use berth::store::{keys, Store};

fn berth(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run berth");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn validate_exits_zero_for_every_shipped_example() {
    for f in [
        "hello",
        "three-tier",
        "spread",
        "constraints",
        "eve-infisical",
        "migrate-then-app",
    ] {
        let (code, out) = berth(&["validate", &format!("examples/{f}.json")]);
        assert_eq!(code, 0, "{f}: {out}");
        assert!(out.contains("valid"), "{out}");
    }
}

#[test]
fn validate_exits_one_and_prints_every_problem_with_its_path() {
    let (code, out) = berth(&["validate", "examples/invalid/many-errors.json"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().count() >= 5, "{out}");
    assert!(
        out.contains("itemListElement[2].ports[0].containerPort: 70000 is not a port (1-65535)"),
        "{out}"
    );
    let (code, out) = berth(&["validate", "examples/invalid/cycle.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("a -> b -> a") || out.contains("b -> a -> b"),
        "{out}"
    );
}

#[test]
fn validate_exits_two_for_an_unreadable_file_and_reports_the_others() {
    let (code, out) = berth(&[
        "validate",
        "examples/hello.json",
        "examples/no-such-file.json",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no-such-file.json: cannot read"), "{out}");
    assert!(out.contains("hello.json: valid"), "{out}");
}

/// The binary runs with transparent huge pages off, whatever the machine's THP mode: its
/// allocator's arenas would otherwise be resident in 2 MiB pieces (docs/scale.md).
#[test]
fn the_binary_turns_transparent_huge_pages_off_for_itself() {
    // `convert -` waits on its stdin: a process to look at for as long as it is open.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["convert", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run berth");
    let status = format!("/proc/{}/status", child.id());
    let thp = || {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:").map(|v| v.trim().to_owned()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = thp();
    while seen.as_deref() != Some("0") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        seen = thp();
    }
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen.as_deref(), Some("0"), "THP_enabled in {status}");
}

/// `berth ARGS` against the etcd at `url`, with `stdin` on its stdin: (exit code, stdout,
/// stderr).
fn berth_on(url: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .args(["--etcd-endpoints", url])
        .env_remove("BERTH_PREFIX")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run berth");
    // A command that does not read stdin may exit before it is written: that is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait for berth");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_login_stores_the_login_as_json_and_logout_deletes_it_never_printing_the_password()
{
    let e = common::Etcd::start().await;
    let url = e.etcd.client_url.clone();
    let password = "s3cr3t-registry-pw";
    let stored = |registry: &str| {
        let store = e.store.clone();
        let key = keys::registry(registry);
        async move {
            store
                .get(&key)
                .await
                .unwrap()
                .map(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).unwrap())
        }
    };

    // No password on the command line: the flag says where it comes from.
    let (code, out, err) = berth_on(&url, &["registry", "login", "ghcr.io", "-u", "ci"], "");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--password-stdin"), "{err}");
    assert_eq!(stored("ghcr.io").await, None);

    // An empty one, or a registry with a path, is refused.
    let login = [
        "registry",
        "login",
        "ghcr.io",
        "-u",
        "ci",
        "--password-stdin",
    ];
    let (code, _, err) = berth_on(&url, &login, "\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty"), "{err}");
    let (code, _, err) = berth_on(
        &url,
        &[
            "registry",
            "login",
            "ghcr.io/team",
            "-u",
            "ci",
            "--password-stdin",
        ],
        password,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has a path"), "{err}");

    let (code, out, err) = berth_on(&url, &login, &format!("{password}\n"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("stored the login for ghcr.io (username ci) at /berth/registries/ghcr.io"),
        "{out}"
    );
    assert!(
        !out.contains(password) && !err.contains(password),
        "{out}{err}"
    );
    assert_eq!(
        stored("ghcr.io").await,
        Some(serde_json::json!({"username": "ci", "password": password}))
    );

    // Docker Hub under the URL docker's own config uses is kept as docker.io.
    let (code, out, err) = berth_on(
        &url,
        &[
            "registry",
            "login",
            "https://index.docker.io/v1/",
            "--username",
            "hub",
            "--password-stdin",
        ],
        "{{secret:hub}}",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        stored("docker.io").await,
        Some(serde_json::json!({"username": "hub", "password": "{{secret:hub}}"}))
    );

    let (code, out, err) = berth_on(&url, &["registry", "logout", "ghcr.io"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deleted the login for ghcr.io"), "{out}");
    assert_eq!(stored("ghcr.io").await, None);
    let (code, out, err) = berth_on(&url, &["registry", "logout", "https://ghcr.io/"], "");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("there was no login for ghcr.io"), "{err}");
    assert!(
        stored("docker.io").await.is_some(),
        "another registry's login stays"
    );
}

/// `berth up` with the given data dir and ports, as host `it-up`, its stdout in `out`.
struct Up(std::process::Child);

impl Up {
    fn start(
        data: &std::path::Path,
        etcd_port: u16,
        metrics_port: u16,
        out: &std::path::Path,
    ) -> Up {
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["up", "--host-id", "it-up", "--data-dir"])
            .arg(data)
            .args(["--etcd-port", &etcd_port.to_string()])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .env_remove("BERTH_ETCD_ENDPOINTS")
            .stdout(std::fs::File::create(out).expect("stdout file"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run berth up");
        Up(child)
    }

    /// SIGTERM, as systemd or Ctrl-C would stop it; its exit status.
    async fn stop(&mut self) -> std::process::ExitStatus {
        common::run_ok(Command::new("kill").args(["-TERM", &self.0.id().to_string()]));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "berth up did not exit"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Up {
    /// On a failed test: SIGTERM first, so berth stops its etcd too.
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            for _ in 0..100 {
                if !matches!(self.0.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_up_runs_a_stack_on_its_own_etcd_and_sigterm_leaves_it_running() {
    const T: Duration = Duration::from_secs(60);
    let data = tempfile::tempdir().unwrap();
    let (etcd_port, metrics_port) = (common::free_port(), common::free_port());
    let out = data.path().join("up.out");
    let (host, stack, port) = ("it-up", "up-it", 18193);
    common::remove_containers_of(host);
    struct Clean;
    impl Drop for Clean {
        fn drop(&mut self) {
            common::remove_containers_of("it-up");
            common::docker(&["network", "rm", "berth-up-it"]);
        }
    }
    let _clean = Clean;

    let mut up = Up::start(data.path(), etcd_port, metrics_port, &out);
    common::eventually("berth up is ready", T, || {
        common::http_get(metrics_port, "/readyz")
    })
    .await;
    let url = format!("http://127.0.0.1:{etcd_port}");
    let said = std::fs::read_to_string(&out).unwrap();
    assert!(said.contains(&format!("etcd {url},")), "{said}");

    let store = Store::connect(std::slice::from_ref(&url), "/berth")
        .await
        .expect("the embedded etcd answers where berth up said");
    store
        .put(
            &keys::stack(stack),
            common::web_stack(port, "up").into_bytes(),
        )
        .await
        .unwrap();
    common::eventually("the stack runs", T, || async {
        let kv = store.get(&keys::status(stack)).await.ok()??;
        let s: StackStatus = serde_json::from_slice(&kv.value).ok()?;
        (s.phase == Phase::Running).then_some(())
    })
    .await;
    let ids = common::containers_of(host, stack);
    assert_eq!(ids.len(), 1);
    let started = common::inspect(&ids[0], "{{.State.StartedAt}}");

    // SIGTERM stops berth and the etcd it started; the containers keep running.
    assert!(up.stop().await.success());
    drop(store);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", etcd_port)).is_err(),
        "the embedded etcd stopped with berth"
    );
    assert_eq!(common::inspect(&ids[0], "{{.State.Running}}"), "true");
    assert_eq!(
        common::eventually("still serves", T, || common::http_get(port, "/index.html"))
            .await
            .trim(),
        "up"
    );

    // Up again on the same data: the stack is still there, and its container is adopted
    // as it runs.
    let mut up = Up::start(data.path(), etcd_port, metrics_port, &out);
    common::eventually("berth up is ready again", T, || {
        common::http_get(metrics_port, "/readyz")
    })
    .await;
    let store = Store::connect(std::slice::from_ref(&url), "/berth")
        .await
        .expect("connect again");
    assert!(
        store.get(&keys::stack(stack)).await.unwrap().is_some(),
        "the stack survived in --data-dir"
    );
    // The new agent's own count: it adopted the container, and has had a pass since.
    common::eventually("the new agent adopts the container", T, || async {
        let body = common::http_get(metrics_port, "/metrics").await?;
        let adopted = common::metric_sum(&body, "berth_container_actions_total{action=\"adopt\"}");
        let passes = common::metric_sum(&body, "berth_reconcile_total{component=\"agent\"");
        (adopted == 1.0 && passes >= 2.0).then_some(())
    })
    .await;
    assert_eq!(common::containers_of(host, stack), ids);
    assert_eq!(
        common::inspect(&ids[0], "{{.State.StartedAt}}"),
        started,
        "not restarted"
    );
    assert!(up.stop().await.success());
}
