//! Images from a private registry, against a real one (distribution's `docker-registry`
//! with htpasswd auth on loopback) and the real engine: credentials from etcd
//! (`berth registry login`) or the host's Docker config file, failures told apart and
//! retried on a backoff, `pullPolicy` `never` and `always`, a pull's progress in the
//! status, one pull for many slots, pulls before stops, and the image each slot runs.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::spec::{Phase, ServiceStatus, StackStatus};
use berth::store::keys;
use common::registry::Registry;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const LOCAL: &str = "berth-test/busybox:latest";
const RUN: &str = "trap 'exit 0' TERM; sleep 100000 & wait";

fn stack(services: Value) -> String {
    json!({ "itemListElement": services }).to_string()
}

fn service(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "command": ["sh", "-c", RUN]})
}

/// `berth registry login` against this cluster's etcd, the password on stdin; its
/// stdout and stderr.
fn login(c: &Cluster, registry: &str, user: &str, password: &str) -> String {
    let url = c.etcd.as_ref().expect("etcd").client_url.clone();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["registry", "login", registry, "--username", user])
        .args(["--password-stdin", "--etcd-endpoints", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("berth");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "berth registry login: {text}");
    text
}

fn image_id(reference: &str) -> String {
    docker(&["image", "inspect", "-f", "{{.Id}}", reference])
        .trim()
        .to_owned()
}

/// The one service's status once it is `state`.
async fn service_once(
    c: &Cluster,
    id: &str,
    svc: &str,
    state: &str,
) -> (StackStatus, ServiceStatus) {
    let st = c
        .wait_status(id, T, |s| {
            s.services.get(svc).is_some_and(|x| x.state == state)
        })
        .await;
    let s = st.services[svc].clone();
    (st, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_image_runs_with_a_login_in_etcd_and_the_status_names_its_image_and_digest() {
    let reg = Registry::start("ci", "pw-etcd-1");
    let image = reg.push(LOCAL, "etcd/app:1");
    reg.forget_local(&image);
    let c = Cluster::start("img-etcd").await;

    let said = login(&c, &reg.addr, "ci", "pw-etcd-1");
    assert!(!said.contains("pw-etcd-1"), "{said}");
    let rev = c
        .put_stack("imgetcd-it", &stack(json!([service("app", &image)])))
        .await;
    let st = c
        .wait_status("imgetcd-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    let app = &st.services["app"];
    assert_eq!(app.image_id.as_deref(), Some(image_id(&image).as_str()));
    let digest = app.image_digest.as_deref().unwrap_or_default();
    assert!(
        digest.starts_with(&format!("{}/etcd/app@sha256:", reg.addr)),
        "{st:#?}"
    );
    assert_eq!(
        reg.requests("\"HEAD /v2/etcd/app/manifests/1 "),
        1,
        "one pull"
    );
    let ids = berth::events::list(&c.store, Some("imgetcd-it"))
        .await
        .expect("events");
    assert!(ids.iter().any(|e| e.reason == "Pulled"), "{ids:?}");
    drop(c);
    reg.forget_local(&image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_the_hosts_docker_config_file_is_used_when_etcd_has_none() {
    let reg = Registry::start("ci", "pw-file-2");
    let image = reg.push(LOCAL, "file/app:1");
    reg.forget_local(&image);
    let mut c = Cluster::start("img-file").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, reg.docker_config_json()).expect("write config");
    c.stop_agent().await;
    c.docker_config = Some(config);
    c.start_agent();

    let rev = c
        .put_stack("imgfile-it", &stack(json!([service("app", &image)])))
        .await;
    c.wait_status("imgfile-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    assert_eq!(c.store.get(&keys::registry(&reg.addr)).await.unwrap(), None);

    // A login in etcd wins over the file, even a wrong one.
    login(&c, &reg.addr, "ci", "pw-file-WRONG");
    let second = reg.push(LOCAL, "file/app:2");
    reg.forget_local(&second);
    c.put_stack(
        "imgfile-it",
        &stack(json!([service("app", &image), service("two", &second)])),
    )
    .await;
    let (_, two) = service_once(&c, "imgfile-it", "two", "failed").await;
    assert!(
        two.message.as_deref().is_some_and(|m| m.contains(&format!(
            "the credentials at /berth/registries/{} were refused",
            reg.addr
        ))),
        "{two:#?}"
    );
    drop(c);
    reg.forget_local(&image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_unauthorized_retry_on_a_growing_backoff_and_a_new_login_ends_it() {
    let reg = Registry::start("ci", "pw-right-3");
    let image = reg.push(LOCAL, "wrong/app:1");
    reg.forget_local(&image);
    let c = Cluster::start("img-wrong").await;
    login(&c, &reg.addr, "ci", "pw-WRONG-3");

    // Each pull sends one HEAD of the manifest: when each attempt came, to the 100 ms.
    let head = "\"HEAD /v2/wrong/app/manifests/1 ";
    let mut at: Vec<Instant> = Vec::new();
    let sample = |at: &mut Vec<Instant>| {
        let n = reg.requests(head);
        while at.len() < n {
            at.push(Instant::now());
        }
    };
    c.put_stack("imgwrong-it", &stack(json!([service("app", &image)])))
        .await;
    let (st, app) = service_once(&c, "imgwrong-it", "app", "failed").await;
    let message = app.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("unauthorized at registry {}", reg.addr))
            && message.contains(&format!(
                "the credentials at /berth/registries/{} were refused",
                reg.addr
            )),
        "{message}"
    );
    assert_eq!(st.phase, Phase::Failed, "{st:#?}");
    assert!(!message.contains("pw-WRONG-3"));
    let deadline = Instant::now() + T;
    while at.len() < 4 {
        assert!(Instant::now() < deadline, "{} attempts in {T:?}", at.len());
        sample(&mut at);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new login: the next pass pulls at once instead of waiting out the backoff.
    login(&c, &reg.addr, "ci", "pw-right-3");
    while at.len() < 5 {
        assert!(Instant::now() < deadline, "{} attempts in {T:?}", at.len());
        sample(&mut at);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.wait_status("imgwrong-it", T, |s| s.phase == Phase::Running)
        .await;
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    // 2 s, 4 s, 8 s: each wait about twice the one before (passes add a little).
    for (i, g) in gaps.iter().take(3).enumerate() {
        let want = 2.0 * 2f64.powi(i as i32);
        assert!(
            *g >= want * 0.9 && *g < want + 4.0,
            "wait {i} was {g:.1}s, not about {want}s: {gaps:?}"
        );
    }
    // The pull with the new login came before the fourth wait (16 s) ran out.
    assert!(gaps[3] < 15.0, "{gaps:?}");
    drop(c);
    reg.forget_local(&image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policy_never_with_the_image_absent_fails_without_asking_the_registry() {
    let reg = Registry::start("ci", "pw-never-4");
    let image = reg.push(LOCAL, "never/app:1");
    reg.forget_local(&image);
    let c = Cluster::start("img-never").await;
    login(&c, &reg.addr, "ci", "pw-never-4");
    let before = reg.requests("/v2/");
    let mut app = service("app", &image);
    app["pullPolicy"] = json!("never");
    c.put_stack("imgnever-it", &stack(json!([app]))).await;
    let (st, app) = service_once(&c, "imgnever-it", "app", "failed").await;
    assert_eq!(
        app.message.as_deref(),
        Some(
            format!(
                "image {image} is not present on host {} and pullPolicy is never",
                c.host_id
            )
            .as_str()
        ),
        "{st:#?}"
    );
    assert_eq!(st.phase, Phase::Failed);
    assert_eq!(reg.requests("/v2/"), before, "the registry was asked");

    // Once the image is there, the same spec runs it: the agent looks again each pass.
    reg.push(LOCAL, "never/app:1");
    c.wait_status("imgnever-it", T, |s| s.phase == Phase::Running)
        .await;
    drop(c);
    reg.forget_local(&image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policy_always_brings_a_moved_tag_at_the_next_replacement() {
    let reg = Registry::start("ci", "pw-always-5");
    let image = reg.push(LOCAL, "always/app:1");
    reg.forget_local(&image);
    let c = Cluster::start("img-always").await;
    login(&c, &reg.addr, "ci", "pw-always-5");
    let spec = |v: &str| {
        let mut app = service("app", &image);
        app["pullPolicy"] = json!("always");
        app["environment"] = json!({ "V": v });
        stack(json!([app]))
    };
    let rev = c.put_stack("imgalways-it", &spec("1")).await;
    let st = c
        .wait_status("imgalways-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    let first = st.services["app"].image_id.clone().expect("an image id");

    // The tag moves; this host still has the old image under it.
    let moved = reg.push_new_version("always/app:1", "v2-marker");
    assert_ne!(moved, first);
    assert_eq!(image_id(&image), first, "the engine still has the old bits");
    let rev = c.put_stack("imgalways-it", &spec("2")).await;
    let st = c
        .wait_status("imgalways-it", T, |s| {
            s.phase == Phase::Running
                && s.observed_revision == rev
                && s.services["app"].image_id.is_some()
        })
        .await;
    assert_eq!(st.services["app"].image_id.as_deref(), Some(moved.as_str()));
    let container = st.services["app"].container_id.clone().expect("an id");
    assert_eq!(
        docker(&["exec", &container, "cat", "/version"]),
        "v2-marker"
    );
    drop(c);
    reg.forget_local(&image);
}

/// A TCP relay from a loopback port to `to` that sends the answers back at `bytes_per_sec`:
/// a registry far away, so a pull takes seconds.
fn slow_relay(to: String, bytes_per_sec: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&to) else {
                continue;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                use std::io::Read;
                let chunk = (bytes_per_sec / 20).max(1);
                let mut buf = vec![0u8; chunk];
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// Build an image of the test image plus `mb` MB of random bytes, push it to `reg` as
/// `repo_tag`, and leave the engine without it (nor its new layer).
fn push_big(reg: &Registry, repo_tag: &str, mb: usize) -> String {
    let ctx = tempfile::tempdir().expect("tempdir");
    let mut blob = vec![0u8; mb * 1_000_000];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64 ^ repo_tag.len() as u64;
    for (i, b) in blob.iter_mut().enumerate() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = (seed >> (i % 8)) as u8;
    }
    std::fs::write(ctx.path().join("blob"), &blob).expect("blob");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {LOCAL}\nCOPY blob /blob\n"),
    )
    .expect("Dockerfile");
    let local = format!(
        "berth-test/big-{}:{}",
        std::process::id(),
        repo_tag.replace([':', '/'], "-")
    );
    run_ok(
        Command::new("docker")
            .args(["build", "-q", "-t", &local])
            .arg(ctx.path()),
    );
    let pushed = reg.push(&local, repo_tag);
    docker(&["rmi", &local]);
    reg.forget_local(&pushed);
    pushed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pull_shows_its_progress_is_done_once_for_three_replicas_and_comes_before_any_stop()
{
    let reg = Registry::start("ci", "pw-slow-6");
    push_big(&reg, "slow/big:1", 6);
    // The engine pulls through a relay that gives it about 1.5 MB/s.
    let relay = slow_relay(reg.addr.clone(), 1_500_000);
    let image = format!("{relay}/slow/big:1");
    let c = Cluster::start("img-slow").await;
    login(&c, &relay, "ci", "pw-slow-6");
    let spec = |v: &str| {
        let mut app = service("app", &image);
        app["replicas"] = json!(3);
        app["pullPolicy"] = json!("always");
        app["environment"] = json!({ "V": v });
        app["update"] = json!({"order": "stop-first", "parallelism": 3});
        stack(json!([app]))
    };
    let rev = c.put_stack("imgslow-it", &spec("1")).await;
    let pulling = |s: &StackStatus| -> Option<(u64, u64)> {
        s.services.get("app")?.replicas.iter().find_map(|r| {
            let p = r.pull?;
            (r.state == "pulling").then_some((p.bytes_done, p.bytes_total))
        })
    };
    let early = c
        .wait_status("imgslow-it", T, |s| {
            pulling(s).is_some_and(|(done, total)| total >= 6_000_000 && done < total / 2)
        })
        .await;
    let (done_early, _) = pulling(&early).expect("pulling");
    let later = c
        .wait_status("imgslow-it", T, |s| {
            pulling(s).is_some_and(|(done, _)| done > done_early)
        })
        .await;
    assert!(pulling(&later).is_some(), "{later:#?}");
    let st = c
        .wait_status("imgslow-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    assert_eq!(st.services["app"].replicas.len(), 3);
    assert_eq!(
        reg.wait_requests("\"HEAD /v2/slow/big/manifests/1 ", 1),
        1,
        "three replicas, one pull"
    );
    let old: Vec<String> = containers_of(&c.host_id, "imgslow-it");
    assert_eq!(old.len(), 3);

    // A new version under the same tag, stop-first: nothing stops while it comes in.
    push_big(&reg, "slow/big:1", 6);
    let rev = c.put_stack("imgslow-it", &spec("2")).await;
    c.wait_status("imgslow-it", T, |s| {
        s.observed_revision == rev && pulling(s).is_some()
    })
    .await;
    let running: Vec<String> = old
        .iter()
        .filter(|id| inspect(id, "{{.State.Running}}") == "true")
        .cloned()
        .collect();
    assert_eq!(
        running, old,
        "the old containers serve while the new image comes in"
    );
    c.wait_status("imgslow-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    drop(c);
    docker(&["rmi", "-f", &image]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_passwords_never_leak_into_logs_events_metrics_status_or_output() {
    const PLAIN: &str = "REGPASS-PLAIN-41c7";
    const SECRET: &str = "REGPASS-SECRET-9d2e";
    const WRONG: &str = "REGPASS-WRONG-c05a";
    let plain = Registry::start("ci", PLAIN);
    let secret = Registry::start("ci", SECRET);
    let wrong = Registry::start("ci", "the-right-one");
    let images: Vec<String> = [
        (&plain, "leak/a:1"),
        (&secret, "leak/b:1"),
        (&wrong, "leak/c:1"),
    ]
    .into_iter()
    .map(|(r, tag)| {
        let image = r.push(LOCAL, tag);
        r.forget_local(&image);
        image
    })
    .collect();

    // The harness's agent and controller make way for a `berth up` with debug logging,
    // so everything it logs can be searched.
    let mut c = Cluster::start("img-leak").await;
    c.stop_agent().await;
    c.stop_controller().await;
    let url = c.etcd.as_ref().expect("etcd").client_url.clone();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let up = Proc(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["up", "--etcd-endpoints", &url, "--host-id", &c.host_id])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.reopen().expect("log")))
            .spawn()
            .expect("berth up"),
    );
    let mut output = String::new();
    output += &login(&c, &plain.addr, "ci", PLAIN);
    c.store
        .put(&keys::secret("it-registry-pw"), SECRET.as_bytes().to_vec())
        .await
        .expect("put secret");
    output += &login(&c, &secret.addr, "ci", "{{secret:it-registry-pw}}");
    output += &login(&c, &wrong.addr, "ci", WRONG);

    let spec = stack(json!([
        service("a", &images[0]),
        service("b", &images[1]),
        service("c", &images[2]),
    ]));
    c.put_stack("imgleak-it", &spec).await;
    let st = c
        .wait_status("imgleak-it", T, |s| {
            let state = |n: &str| s.services.get(n).map(|x| x.state.as_str());
            state("a") == Some("running")
                && state("b") == Some("running")
                && state("c") == Some("failed")
        })
        .await;
    assert!(
        st.services["c"]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("unauthorized")),
        "{st:#?}"
    );
    // The failure was an event and the pulls were logged before this is read.
    let events = eventually("the PullFailed event", T, || async {
        let events = berth::events::list(&c.store, Some("imgleak-it"))
            .await
            .ok()?;
        events
            .iter()
            .any(|e| e.reason == "PullFailed")
            .then_some(events)
    })
    .await;
    let metrics = http_get(port, "/metrics").await.expect("metrics");
    let url_args = ["--etcd-endpoints", url.as_str()];
    output += &run_ok(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["status"])
            .args(url_args),
    );
    drop(up);
    let logs = std::fs::read_to_string(log.path()).expect("log");
    assert!(logs.contains("pulling image"), "the log is the agent's");

    let passwords = [PLAIN, SECRET, WRONG];
    let leaks = |what: &str, text: &str| {
        for p in passwords {
            for line in text.lines().filter(|l| l.contains(p)) {
                eprintln!("leak in {what}: {}", &line[..line.len().min(300)]);
            }
            assert!(!text.contains(p), "a registry password in {what}");
        }
    };
    leaks("the agent's and controller's logs", &logs);
    leaks("metrics", &metrics);
    leaks("berth output", &output);
    leaks("the status", &serde_json::to_string(&st).expect("json"));
    leaks("events", &format!("{events:?}"));
    let (kvs, _) = c.store.list("").await.expect("list");
    for kv in kvs.iter().filter(|kv| {
        ![keys::REGISTRIES, keys::SECRETS, keys::HOST_SECRETS]
            .iter()
            .any(|p| kv.key.starts_with(p))
    }) {
        leaks(&kv.key, &String::from_utf8_lossy(&kv.value));
    }
    drop(c);
    for (r, image) in [&plain, &secret, &wrong].into_iter().zip(&images) {
        r.forget_local(image);
    }
}
