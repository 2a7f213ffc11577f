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

/// etcd with TLS, set up by `berth etcd-rbac setup --hosts HOSTS` as an operator runs it,
/// so authentication is on and each role has its user.
struct Secured {
    dir: tempfile::TempDir,
    _etcd: Proc,
    url: String,
    client: u16,
    ca: Vec<u8>,
}

impl Secured {
    async fn start(hosts: &str) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make_certs(d);
        let (client, peer) = (free_port(), free_port());
        let url = format!("https://127.0.0.1:{client}");
        let etcd = Proc(
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
        // The operator's command, as a user would run it.
        std::fs::write(d.join("root.password"), "root-secret\n").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["etcd-rbac", "setup", "--hosts", hosts])
            .args(["--out", &d.join("pw").display().to_string()])
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
        Secured {
            dir,
            _etcd: etcd,
            url,
            client,
            ca,
        }
    }

    /// A client logged in as `user`, with the password `setup` wrote for it.
    async fn as_user(&self, user: &str) -> Store {
        let pw =
            std::fs::read_to_string(self.dir.path().join("pw").join(format!("{user}.password")))
                .unwrap();
        connect(&self.url, &self.ca, Some((user, pw)))
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_and_rbac_an_agent_cannot_touch_another_hosts_keys() {
    berth::telemetry::init(berth::telemetry::LogFormat::Human);
    let etcd = Secured::start("h1,h2").await;
    let (url, ca, client) = (&etcd.url, &etcd.ca, etcd.client);

    // A plain-text client cannot talk to it.
    assert!(
        Store::connect(&[format!("http://127.0.0.1:{client}")], "/berth")
            .await
            .is_err()
    );

    // Without credentials, nothing.
    let anon = connect(url, ca, None).await;
    if let Ok(s) = anon {
        assert!(
            s.put(&keys::host("h1"), b"{}".to_vec()).await.is_err(),
            "anonymous write refused"
        );
    }

    let h1 = etcd.as_user("berth-agent-h1").await;
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
    let op = etcd.as_user("berth-operator").await;
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
    let ctl = etcd.as_user("berth-controller").await;
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

/// What one role may do with one key, as SECURITY.md's table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct May {
    read: bool,
    write: bool,
}

fn may(cell: &str) -> May {
    match cell {
        "read, write" => May {
            read: true,
            write: true,
        },
        "read" => May {
            read: true,
            write: false,
        },
        "write" => May {
            read: false,
            write: true,
        },
        "none" => May {
            read: false,
            write: false,
        },
        other => panic!("SECURITY.md: unknown access {other:?}"),
    }
}

/// SECURITY.md's table of who can read and write which keys: (key, one cell per column).
fn security_table() -> Vec<(String, [May; 4])> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SECURITY.md")).unwrap();
    const HEADER: &str = "| key | controller | operator | agent of H | agent of another host |";
    let mut lines = doc
        .lines()
        .skip_while(|l| l.trim() != HEADER)
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    let mut rows = Vec::new();
    for line in lines.by_ref() {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [key, a, b, c, d] = cells.as_slice() else {
            panic!("SECURITY.md: a row with other than five cells: {line}");
        };
        rows.push((
            key.trim_matches('`').to_owned(),
            [may(a), may(b), may(c), may(d)],
        ));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_securitys_table_holds_against_etcd_with_auth() {
    let table = security_table();
    // Every grant `setup` makes has its row, so the table cannot fall behind the roles.
    for role in berth::store::rbac::plan(&["H".to_owned()]) {
        for grant in role.grants.iter().filter(|g| !g.key.is_empty()) {
            assert!(
                table
                    .iter()
                    .any(|(key, _)| *key == grant.key
                        || (grant.prefix && key.starts_with(&grant.key))),
                "SECURITY.md's table has no row for {} (role {})",
                grant.key,
                role.name
            );
        }
    }
    assert!(
        table.len() >= 17,
        "the table was not found whole: {table:?}"
    );

    let etcd = Secured::start("h1,h2").await;
    let as_role = [
        ("controller", etcd.as_user("berth-controller").await),
        ("operator", etcd.as_user("berth-operator").await),
        ("agent of H", etcd.as_user("berth-agent-h1").await),
        (
            "agent of another host",
            etcd.as_user("berth-agent-h2").await,
        ),
    ];
    let mut wrong = Vec::new();
    for (pattern, cells) in &table {
        let key = pattern.replace("/H/", "/h1/");
        let key = key
            .strip_suffix("/H")
            .map_or(key.clone(), |k| format!("{k}/h1"));
        // A prefix is tried on a key below it, and read as a whole range as well.
        let one = if key.ends_with('/') {
            format!("{key}probe")
        } else {
            key.clone()
        };
        for ((who, store), want) in as_role.iter().zip(cells) {
            let wrote = store.put(&one, b"{}".to_vec()).await.is_ok();
            let mut read = store.get(&one).await.is_ok();
            if key.ends_with('/') {
                read &= store.list(&key).await.is_ok();
            }
            let got = May { read, write: wrote };
            if got != *want {
                wrong.push(format!(
                    "{pattern} as {who}: the table says {want:?}, etcd allows {got:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// An agent for the local Docker engine as host `host`, logged in as its own role.
fn spawn_agent(
    store: Store,
    host: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> berth::agent::AgentHandle {
    berth::agent::spawn(
        store,
        berth::agent::AgentConfig {
            host_id: host.into(),
            address: "127.0.0.1".into(),
            docker_host: "unix:///var/run/docker.sock".into(),
            datacenter: None,
            labels: Default::default(),
            resync_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(10),
            allow_bind_prefixes: vec![],
            docker_tls: Default::default(),
            vantage: berth::agent::Vantage::Local,
            docker_config: None,
            secret_source: berth::agent::SecretSource::HostCopies,
            api: None,
        },
        cancel.clone(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_under_their_own_roles_each_get_only_their_own_secret() {
    const T: Duration = Duration::from_secs(60);
    let (a, b) = ("it-rbac-a", "it-rbac-b");
    for h in [a, b] {
        common::remove_containers_of(h);
    }
    let etcd = Secured::start(&format!("{a},{b}")).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let _controller =
        common::spawn_controller(&etcd.as_user("berth-controller").await, "rbac", &cancel);
    let _agent_a = spawn_agent(etcd.as_user(&format!("berth-agent-{a}")).await, a, &cancel);
    let _agent_b = spawn_agent(etcd.as_user(&format!("berth-agent-{b}")).await, b, &cancel);

    // An operator puts the secrets and one stack per host, each using its own secret.
    let op = etcd.as_user("berth-operator").await;
    let stack = |host: &str, secret: &str| {
        serde_json::json!({
            "deployment": {"mode": "multi-host", "placementStrategy": "manual"},
            "itemListElement": [{"name": "app", "image": "berth-test/busybox:latest",
                "targetHost": host,
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
                "environment": {"PW": format!("{{{{secret:{secret}}}}}")}}]
        })
        .to_string()
        .into_bytes()
    };
    for (host, secret, value) in [(a, "a-only", "A-VALUE-19"), (b, "b-only", "B-VALUE-83")] {
        op.put(&keys::secret(secret), value.as_bytes().to_vec())
            .await
            .unwrap();
        op.put(&keys::stack(&format!("{host}-stack")), stack(host, secret))
            .await
            .unwrap();
    }
    for (host, value) in [(a, "A-VALUE-19"), (b, "B-VALUE-83")] {
        let env = eventually(
            "each service runs with its own secret's value",
            T,
            || async {
                let id = common::containers_of(host, &format!("{host}-stack")).pop()?;
                (common::inspect(&id, "{{.State.Running}}") == "true")
                    .then(|| common::inspect(&id, "{{json .Config.Env}}"))
            },
        )
        .await;
        assert!(env.contains(&format!("PW={value}")), "{host}: {env}");
    }

    // With A's credentials: its own copy, and nothing of B's.
    let agent_a = etcd.as_user(&format!("berth-agent-{a}")).await;
    assert!(agent_a
        .get(&keys::host_secret(a, "a-only"))
        .await
        .unwrap()
        .is_some());
    for (what, denied) in [
        (
            "B's secret",
            agent_a.get(&keys::secret("b-only")).await.err(),
        ),
        (
            "B's copy",
            agent_a.get(&keys::host_secret(b, "b-only")).await.err(),
        ),
        (
            "B's stack",
            agent_a.get(&keys::stack(&format!("{b}-stack"))).await.err(),
        ),
        (
            "A's own stack",
            agent_a.get(&keys::stack(&format!("{a}-stack"))).await.err(),
        ),
        ("registries/", agent_a.list(keys::REGISTRIES).await.err()),
    ] {
        assert!(denied.is_some(), "host A's agent read {what}");
    }

    // Deleting B's stack takes its copy away, and A's stays.
    op.delete(&keys::stack(&format!("{b}-stack")))
        .await
        .unwrap();
    let ctl = etcd.as_user("berth-controller").await;
    eventually("B's copy goes with its stack", T, || async {
        ctl.get(&keys::host_secret(b, "b-only"))
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("B's container goes with its stack", T, || async {
        common::containers_of(b, &format!("{b}-stack"))
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(ctl
        .get(&keys::host_secret(a, "a-only"))
        .await
        .unwrap()
        .is_some());
    cancel.cancel();
    for h in [a, b] {
        common::remove_containers_of(h);
    }
}
