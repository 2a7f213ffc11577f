//! `berth logs` against the real engine, through the agent API: the prefixes, `--tail`,
//! `--since`, `-f` through a restart and a replacement, only managed containers, and the
//! API's refusals (a client without a certificate when TLS is on; plain HTTP off loopback).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::spec::Phase;
use common::*;
use serde_json::json;

const T: Duration = Duration::from_secs(60);
const IMAGE: &str = "berth-test/busybox:latest";

fn url(c: &Cluster) -> String {
    c.etcd.as_ref().expect("etcd").client_url.clone()
}

/// `berth logs ARGS` against the cluster: (exit code, stdout, stderr).
fn logs(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("logs")
        .args(args)
        .args(["--etcd-endpoints", &url(c)])
        .output()
        .expect("berth logs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `berth logs ARGS` until its output holds `want`.
async fn logs_until(c: &Cluster, args: &[&str], want: &str) -> String {
    eventually(
        &format!("berth logs {args:?} shows {want:?}"),
        T,
        || async {
            let (code, out, _) = logs(c, args);
            (code == 0 && out.contains(want)).then_some(out)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_merge_every_replica_with_its_prefix_and_honour_tail_and_since() {
    let c = Cluster::start("logs").await;
    let script = "trap 'exit 0' TERM; for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; sleep 3; echo late; sleep 100000 & wait";
    let spec = json!({"itemListElement": [
        {"name": "web", "image": IMAGE, "replicas": 2, "command": ["sh", "-c", script]}
    ]});
    let rev = c.put_stack("logs-it", &spec.to_string()).await;
    c.wait_status("logs-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    let host = c.host_id.clone();
    // Both replicas have printed their last line (they started a moment apart).
    let all = eventually("berth logs shows both replicas' last lines", T, || async {
        let (code, out, _) = logs(&c, &["logs-it"]);
        (code == 0 && out.lines().filter(|l| l.ends_with("late")).count() == 2).then_some(out)
    })
    .await;
    for replica in [1, 2] {
        let prefix = format!("web.{replica}@{host} |");
        for text in ["line-1", "line-5", "oops", "late"] {
            assert!(
                all.lines()
                    .any(|l| l.starts_with(&prefix) && l.ends_with(text)),
                "no {text:?} under {prefix:?}:\n{all}"
            );
        }
    }
    // Piped: no colour codes.
    assert!(!all.contains('\x1b'), "{all:?}");

    let (_, tail, _) = logs(&c, &["logs-it", "web", "--replica", "2", "--tail", "2"]);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(&format!("web.2@{host} |"))),
        "{tail}"
    );
    assert!(tail.contains("late"), "{tail}");

    // --timestamps: the early lines' time; --since two seconds later leaves only `late`.
    let (_, stamped, _) = logs(&c, &["logs-it", "web", "--replica", "1", "--timestamps"]);
    let first = stamped
        .lines()
        .find(|l| l.ends_with("line-1"))
        .and_then(|l| l.split(" | ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a timestamp");
    let at = humantime::parse_rfc3339(first).expect("rfc3339");
    let since = humantime::format_rfc3339_seconds(at + Duration::from_secs(2)).to_string();
    let (_, later, _) = logs(&c, &["logs-it", "web", "--replica", "1", "--since", &since]);
    assert!(
        later.contains("late") && !later.contains("line-1"),
        "{later}"
    );
    assert!(
        !logs(&c, &["logs-it", "--no-prefix"]).1.contains(" | "),
        "--no-prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_goes_on_through_a_restart_and_a_replacement_and_reads_only_managed_containers() {
    let c = Cluster::start("logsf").await;
    let host = c.host_id.clone();
    // Exits after a second: the agent restarts it, the same container.
    let spec = |v: &str| {
        json!({"itemListElement": [
            {"name": "job", "image": IMAGE, "environment": {"V": v},
             "command": ["sh", "-c", "echo boot-$V-$(cat /proc/sys/kernel/random/uuid); sleep 1"]}
        ]})
        .to_string()
    };
    c.put_stack("logsf-it", &spec("one")).await;
    // A look-alike Berth does not manage: its lines must never show.
    let lookalike = docker(&[
        "run",
        "-d",
        "--label",
        "berth.stack=logsf-it",
        "--label",
        "berth.service=job",
        "--label",
        "berth.replica=1",
        "--label",
        &format!("berth.host={host}"),
        IMAGE,
        "sh",
        "-c",
        "echo NOT-MANAGED; trap 'exit 0' TERM; sleep 100000 & wait",
    ]);
    logs_until(&c, &["logsf-it"], "boot-one").await;

    let mut follow = Proc(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["logs", "logsf-it", "-f", "--tail", "1"])
            .args(["--etcd-endpoints", &url(&c)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth logs -f"),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = follow.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut wait_for = |pred: &dyn Fn(&[String]) -> bool, what: &str| {
        let deadline = Instant::now() + T;
        while !pred(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("berth logs -f never showed {what}: {seen:#?}"),
            }
        }
    };
    let boots = |v: &str| {
        let v = v.to_owned();
        move |seen: &[String]| {
            seen.iter()
                .filter(|l| l.contains(&format!("boot-{v}-")))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        }
    };
    // `--tail 1` shows one boot; two more come from the container restarted meanwhile.
    wait_for(
        &|s: &[String]| boots("one")(s) >= 3,
        "three boots of the restarted container",
    );
    // A new spec: the next container, under the same prefix.
    c.put_stack("logsf-it", &spec("two")).await;
    wait_for(
        &|s: &[String]| boots("two")(s) >= 1,
        "the replacement's lines",
    );
    drop(follow);
    assert!(
        seen.iter()
            .filter(|l| l.contains("boot-"))
            .all(|l| l.starts_with(&format!("job.1@{host} |"))),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.contains("NOT-MANAGED")), "{seen:#?}");
    let (_, all, _) = logs(&c, &["logsf-it"]);
    assert!(!all.contains("NOT-MANAGED"), "{all}");
    docker(&["rm", "-f", lookalike.trim()]);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn certificates(dir: &Path) {
    let sh = |script: &str| {
        run_ok(Command::new("sh").arg("-c").arg(script).current_dir(dir));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=berth-test-ca 2>/dev/null");
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
        sh(&format!(
            "openssl req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr -subj /CN={name} 2>/dev/null && \
             openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days 1 -extfile {name}.ext 2>/dev/null"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_the_api_wants_a_client_certificate_and_plain_http_stays_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    certificates(dir.path());
    let file = |n: &str| dir.path().join(n);
    let mut c = Cluster::start("logstls").await;
    c.stop_agent().await;
    c.api = Some(berth::api::server::ApiConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: Some(berth::api::tls::TlsFiles {
            cert: file("server.pem"),
            key: file("server.key"),
            ca: file("ca.pem"),
        }),
        insecure: false,
    });
    c.start_agent();
    let spec = json!({"itemListElement": [
        {"name": "web", "image": IMAGE, "command": ["sh", "-c", "echo over-tls; trap 'exit 0' TERM; sleep 100000 & wait"]}
    ]});
    c.put_stack("logstls-it", &spec.to_string()).await;
    let reg = eventually("a registration that says TLS", T, || async {
        let kv = c
            .store
            .get(&berth::store::keys::host(&c.host_id))
            .await
            .ok()??;
        let reg: berth::spec::HostRegistration = serde_json::from_slice(&kv.value).ok()?;
        reg.api_tls.then_some(reg)
    })
    .await;
    let addr = reg.api_address.expect("an API address");
    let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let with_cert = [
        "logstls-it".to_owned(),
        "--tls-ca".into(),
        s(file("ca.pem")),
        "--tls-cert".into(),
        s(file("client.pem")),
        "--tls-key".into(),
        s(file("client.key")),
    ];
    let with_cert: Vec<&str> = with_cert.iter().map(String::as_str).collect();
    logs_until(&c, &with_cert, "over-tls").await;

    // Without a certificate: berth logs says what it needs, and a TLS client that has
    // none is refused by the listener itself.
    let (code, out, err) = logs(&c, &["logstls-it"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("wants TLS"), "{err}");
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(file("ca.pem"))
        .arg(format!("https://{addr}/v1/logs?stack=logstls-it"))
        .output()
        .expect("curl");
    assert!(
        !curl.status.success() && !String::from_utf8_lossy(&curl.stdout).contains("over-tls"),
        "a client without a certificate was served: {}",
        String::from_utf8_lossy(&curl.stdout)
    );

    // Plain HTTP off loopback: the agent refuses to start, and says why.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "agent",
            "--host-id",
            "it-logs-refused",
            "--address",
            "192.0.2.10",
        ])
        .args(["--etcd-endpoints", &url(&c)])
        .output()
        .expect("berth agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("without TLS") && err.contains("--api-insecure"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agentless_hosts_logs_are_served_by_the_controller_that_drives_it() {
    let mut c = Cluster::start("logsal").await;
    c.drive_agentless(&[]).await;
    let spec = json!({"itemListElement": [
        {"name": "web", "image": IMAGE, "command": ["sh", "-c", "echo from-agentless; trap 'exit 0' TERM; sleep 100000 & wait"]}
    ]});
    c.put_stack("logsal-it", &spec.to_string()).await;
    let out = logs_until(&c, &["logsal-it"], "from-agentless").await;
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("web.1@{} |", c.host_id))
                && l.ends_with("from-agentless")),
        "{out}"
    );
}
