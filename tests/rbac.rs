//! etcd with TLS and authentication (certificates made by the test with openssl):
//! `berth etcd-rbac setup` keeps each agent to its own host's keys: it reads (not writes)
//! the copies of secrets and registry logins the leader hands its host, and neither the
//! originals nor another host's copies.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth::store::{keys, EtcdAuth, Expect, Store, Write};
use common::{eventually, free_port, Proc};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=berth-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
}

async fn connect(
    url: &str,
    ca: &[u8],
    user: Option<(&str, String)>,
) -> Result<Store, berth::store::StoreError> {
    let auth = EtcdAuth {
        ca: Some(ca.to_vec()),
        user: user.map(|(u, p)| (u.to_owned(), p)),
        ..EtcdAuth::default()
    };
    Store::connect_with(&[url.to_owned()], "/berth", &auth).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_and_rbac_an_agent_cannot_touch_another_hosts_keys() {
    berth::telemetry::init(berth::telemetry::LogFormat::Human);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d);
    let (client, peer) = (free_port(), free_port());
    let url = format!("https://127.0.0.1:{client}");
    let _etcd = Proc(
        Command::new("etcd")
            .args([
                "--name=tls",
                &format!("--data-dir={}", d.join("data").display()),
                &format!("--listen-client-urls={url}"),
                &format!("--advertise-client-urls={url}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-cluster=tls=http://127.0.0.1:{peer}"),
                &format!("--cert-file={}", d.join("server.pem").display()),
                &format!("--key-file={}", d.join("server.key").display()),
                "--log-level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ca = std::fs::read(d.join("ca.pem")).unwrap();
    let admin = eventually("etcd answers over TLS", Duration::from_secs(20), || async {
        connect(&url, &ca, None).await.ok()
    })
    .await;

    // A plain-text client cannot talk to it.
    assert!(
        Store::connect(&[format!("http://127.0.0.1:{client}")], "/berth")
            .await
            .is_err()
    );

    // The operator's command, as a user would run it.
    std::fs::write(d.join("root.password"), "root-secret\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "etcd-rbac",
            "setup",
            "--hosts",
            "h1,h2",
            "--out",
            &d.join("pw").display().to_string(),
        ])
        .args([
            "--root-password-file",
            &d.join("root.password").display().to_string(),
        ])
        .args([
            "--etcd-endpoints",
            &url,
            "--etcd-ca",
            &d.join("ca.pem").display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(admin);
    let pw = |u: &str| std::fs::read_to_string(d.join("pw").join(format!("{u}.password"))).unwrap();

    // Without credentials, nothing.
    let anon = connect(&url, &ca, None).await;
    if let Ok(s) = anon {
        assert!(
            s.put(&keys::host("h1"), b"{}".to_vec()).await.is_err(),
            "anonymous write refused"
        );
    }

    let h1 = connect(&url, &ca, Some(("berth-agent-h1", pw("berth-agent-h1"))))
        .await
        .unwrap();
    let put = |k: String| Write::Put {
        key: k,
        value: b"{}".to_vec(),
        expect: Expect::Any,
    };
    // Its own keys: yes.
    h1.put(&keys::host("h1"), b"{}".to_vec())
        .await
        .expect("own registration");
    h1.write(&[put(keys::report("h1", "s", "a.1"))])
        .await
        .expect("own report");
    h1.list(&keys::assignments_of("h1"))
        .await
        .expect("own assignments");
    // Another host's: no.
    assert!(
        h1.put(&keys::host("h2"), b"{}".to_vec()).await.is_err(),
        "h1 wrote h2's registration"
    );
    assert!(
        h1.write(&[put(keys::report("h2", "s", "a.1"))])
            .await
            .is_err(),
        "h1 wrote h2's report"
    );
    assert!(
        h1.list(&keys::assignments_of("h2")).await.is_err(),
        "h1 read h2's assignments"
    );
    assert!(
        h1.put(&keys::stack("evil"), b"{}".to_vec()).await.is_err(),
        "an agent wrote a stack"
    );
    assert!(
        h1.put(&keys::assignment("h1", "s"), b"{}".to_vec())
            .await
            .is_err(),
        "an agent wrote its own assignment"
    );

    // Operators write stacks and secrets, read status, but never read a secret back.
    let op = connect(&url, &ca, Some(("berth-operator", pw("berth-operator"))))
        .await
        .unwrap();
    op.put(&keys::stack("web"), b"{}".to_vec())
        .await
        .expect("operator writes stacks");
    op.put(&keys::secret("db"), b"pw".to_vec())
        .await
        .expect("operator writes secrets");
    assert!(
        op.get(&keys::secret("db")).await.is_err(),
        "operator read a secret"
    );
    assert!(
        op.put(&keys::host("h1"), b"{}".to_vec()).await.is_err(),
        "operator wrote a host key"
    );
    // Registry logins likewise: operators write them and never read them back.
    op.put(
        &keys::registry("ghcr.io"),
        br#"{"username":"ci","password":"tok"}"#.to_vec(),
    )
    .await
    .expect("operator writes registry logins");
    assert!(
        op.get(&keys::registry("ghcr.io")).await.is_err(),
        "operator read a registry login"
    );

    // An agent reads neither the originals nor another host's copies: only its own.
    assert!(
        h1.get(&keys::secret("db")).await.is_err(),
        "an agent read secrets/"
    );
    assert!(
        h1.get(&keys::registry("ghcr.io")).await.is_err(),
        "an agent read a registry login"
    );
    assert!(
        h1.list(keys::REGISTRIES).await.is_err(),
        "an agent listed registries/"
    );
    assert!(
        h1.put(&keys::registry("ghcr.io"), b"{}".to_vec())
            .await
            .is_err(),
        "an agent wrote a registry login"
    );
    assert!(
        h1.delete(&keys::registry("ghcr.io")).await.is_err(),
        "an agent deleted a registry login"
    );

    // The controller has the prefix.
    let ctl = connect(
        &url,
        &ca,
        Some(("berth-controller", pw("berth-controller"))),
    )
    .await
    .unwrap();
    ctl.put(&keys::assignment("h2", "web"), b"{}".to_vec())
        .await
        .expect("controller writes assignments");
    for host in ["h1", "h2"] {
        ctl.put(&keys::host_secret(host, "db"), b"copy".to_vec())
            .await
            .expect("controller writes hosts' copies");
    }
    assert_eq!(
        h1.get(&keys::host_secret("h1", "db"))
            .await
            .expect("an agent reads its own host's copies")
            .map(|kv| kv.value),
        Some(b"copy".to_vec())
    );
    assert!(
        h1.get(&keys::host_secret("h2", "db")).await.is_err(),
        "h1 read h2's copy of a secret"
    );
    assert!(
        h1.put(&keys::host_secret("h1", "db"), b"x".to_vec())
            .await
            .is_err(),
        "an agent wrote its own copy"
    );
    assert!(
        op.get(&keys::host_secret("h1", "db")).await.is_err(),
        "operator read a host's copy"
    );

    // A real agent runs under its role: it registers under its lease and reads its keys.
    let cancel = tokio_util::sync::CancellationToken::new();
    let agent = berth::agent::spawn(
        h1.clone(),
        berth::agent::AgentConfig {
            host_id: "h1".into(),
            address: "10.99.0.1".into(),
            docker_host: "unix:///var/run/docker.sock".into(),
            datacenter: None,
            labels: Default::default(),
            resync_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(5),
            allow_bind_prefixes: vec![],
            docker_tls: Default::default(),
            vantage: berth::agent::Vantage::Local,
            docker_config: None,
            secret_source: berth::agent::SecretSource::HostCopies,
            api: None,
        },
        cancel.clone(),
    )
    .unwrap();
    eventually(
        "the agent registered h1 under its role",
        Duration::from_secs(20),
        || async {
            let kv = ctl.get(&keys::host("h1")).await.ok()??;
            let reg: berth::spec::HostRegistration = serde_json::from_slice(&kv.value).ok()?;
            (reg.address == "10.99.0.1").then_some(())
        },
    )
    .await;
    eventually(
        "and is ready (its assignments read)",
        Duration::from_secs(20),
        || async { (agent.ready)().ok() },
    )
    .await;
    cancel.cancel();
}
