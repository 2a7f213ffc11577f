//! `berth convert` against docker-compose itself: the same compose file is run by
//! docker-compose and, converted, by Berth, and the containers each creates must agree
//! on every field Berth claims to map. Needs Docker, docker-compose and etcd-server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth::spec::Phase;
use berth::store::keys;
use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

/// The file: two services that use every row of the mapping the containers can show.
/// `${PORT_A}`, `${PORT_B}` come from the environment, `${WHO}` from `.env`.
const COMPOSE: &str = r#"
x-busybox: &busybox berth-test/busybox:latest
services:
  api:
    image: *busybox
    entrypoint: ["sh", "-c"]
    command: ["trap 'exit 0' TERM; sleep 100000 & wait"]
    environment:
      - GREETING=hello ${WHO:-nobody}
      - EMPTY=
      - DOLLAR=$$HOME
    env_file: api.env
    ports:
      - "127.0.0.1:${PORT_A}:8080"
      - "${PORT_B}:5353/udp"
    expose: ["9000"]
    volumes:
      - data:/data
      - ./conf:/conf:ro
    tmpfs: /scratch
    healthcheck:
      test: ["CMD-SHELL", "test -d /conf"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 1m
    labels:
      team: shop
    restart: always
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64M}
    user: "1000:1000"
    working_dir: /conf
    cap_drop: [NET_RAW]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: berth-test/busybox:latest
    command: sh -c "trap 'exit 0' TERM; sleep 100000 & wait"
    labels: ["tier=db"]
    healthcheck:
      test: "true"
      interval: 1s
    restart: on-failure
    mem_limit: 32m
    cpus: 0.25
    volumes:
      - {type: volume, source: data, target: /var/db, read_only: true}
volumes:
  data:
"#;

/// A project directory under the agent's allowed bind prefix, named like the project so
/// both name the volume `<project>_data`; everything the run made goes at the end,
/// however the test ends.
struct Project {
    name: String,
    dir: PathBuf,
}

impl Project {
    fn new(name: &str) -> Project {
        let dir = Path::new("/tmp/berth-it").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf")).expect("project dir");
        std::fs::write(dir.join("compose.yaml"), COMPOSE).expect("compose file");
        std::fs::write(dir.join(".env"), "WHO=dotenv\n").expect(".env");
        std::fs::write(dir.join("api.env"), "FROM_FILE=yes\n# a comment\n").expect("env_file");
        Project {
            name: name.to_owned(),
            dir,
        }
    }

    fn compose(&self, args: &[&str], ports: &[(&str, String)]) -> String {
        run_ok(
            Command::new("docker-compose")
                .current_dir(&self.dir)
                .args(["-p", &self.name])
                .args(args)
                .envs(ports.iter().map(|(k, v)| (*k, v.as_str())))
                .env_remove("WHO"),
        )
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .current_dir(&self.dir)
            .args(["-p", &self.name, "down", "-v", "--remove-orphans"])
            .env("PORT_A", "1")
            .env("PORT_B", "2")
            .output();
        // Berth's containers go with the cluster; its network and volume stay (Berth never
        // removes a volume unasked).
        for id in docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=berth.stack={}", self.name),
        ])
        .lines()
        {
            docker(&["rm", "-f", id]);
        }
        let networks = docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=berth.stack={}", self.name),
        ]);
        for id in networks.lines() {
            docker(&["network", "rm", id]);
        }
        docker(&["volume", "rm", "-f", &format!("{}_data", self.name)]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a container shows of the fields Berth maps, in a form both sides write alike.
#[derive(Debug, PartialEq)]
struct Facts {
    image: String,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    /// Without what the image sets (`PATH`).
    env: BTreeSet<String>,
    /// `container/proto -> host_ip:host_port`.
    ports: BTreeSet<String>,
    exposed: BTreeSet<String>,
    /// `type source -> target (ro|rw)`; a volume by its name, tmpfs without source.
    mounts: BTreeSet<String>,
    /// Test as an argv run by Docker, then interval, timeout, start period (seconds),
    /// retries, with Docker's defaults for what is unset.
    healthcheck: Option<(Vec<String>, f64, f64, f64, i64)>,
    /// Without compose's and Berth's own.
    labels: BTreeMap<String, String>,
    nano_cpus: i64,
    memory: i64,
    user: String,
    working_dir: String,
    cap_drop: Vec<String>,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

fn facts(id: &str) -> (String, Facts) {
    let all: Value = serde_json::from_str(&docker(&["inspect", id])).expect("inspect json");
    let c = &all[0];
    let config = &c["Config"];
    let host = &c["HostConfig"];
    let labels_all: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).unwrap_or_default();
    let service = labels_all
        .get("com.docker.compose.service")
        .or_else(|| labels_all.get("berth.service"))
        .cloned()
        .expect("a service label");
    let labels = labels_all
        .into_iter()
        .filter(|(k, _)| !k.starts_with("com.docker.compose.") && !k.starts_with("berth."))
        .collect();
    let env = strings(&config["Env"])
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.starts_with("PATH="))
        .collect();
    let mut ports = BTreeSet::new();
    if let Some(bindings) = host["PortBindings"].as_object() {
        for (port, list) in bindings {
            for b in list.as_array().into_iter().flatten() {
                let ip = b["HostIp"].as_str().unwrap_or_default();
                let ip = if ip == "0.0.0.0" { "" } else { ip };
                let hp = b["HostPort"].as_str().unwrap_or_default();
                ports.insert(format!("{port} -> {ip}:{hp}"));
            }
        }
    }
    let exposed = config["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut mounts = BTreeSet::new();
    for m in c["Mounts"].as_array().into_iter().flatten() {
        let kind = m["Type"].as_str().unwrap_or_default();
        let source = match kind {
            "volume" => m["Name"].as_str(),
            "bind" => m["Source"].as_str(),
            _ => Some(""),
        }
        .unwrap_or_default();
        let rw = if m["RW"].as_bool() == Some(true) {
            "rw"
        } else {
            "ro"
        };
        let target = m["Destination"].as_str().unwrap_or_default();
        mounts.insert(format!("{kind} {source} -> {target} ({rw})"));
    }
    // compose's `tmpfs:` goes to HostConfig.Tmpfs, which `Mounts` does not list.
    for target in host["Tmpfs"].as_object().into_iter().flat_map(|m| m.keys()) {
        mounts.insert(format!("tmpfs  -> {target} (rw)"));
    }
    let healthcheck = config.get("Healthcheck").filter(|h| !h.is_null()).map(|h| {
        let test = strings(&h["Test"]).unwrap_or_default();
        let argv = match test.split_first() {
            Some((kind, rest)) if kind == "CMD-SHELL" => {
                vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.join(" ")]
            }
            Some((_, rest)) => rest.to_vec(),
            None => Vec::new(),
        };
        let secs = |key: &str, default: f64| match h[key].as_i64().unwrap_or(0) {
            0 => default,
            ns => ns as f64 / 1e9,
        };
        let retries = match h["Retries"].as_i64().unwrap_or(0) {
            0 => 3,
            n => n,
        };
        (
            argv,
            secs("Interval", 30.0),
            secs("Timeout", 30.0),
            secs("StartPeriod", 0.0),
            retries,
        )
    });
    let facts = Facts {
        image: config["Image"].as_str().unwrap_or_default().to_owned(),
        entrypoint: strings(&config["Entrypoint"]),
        cmd: strings(&config["Cmd"]),
        env,
        ports,
        exposed,
        mounts,
        healthcheck,
        labels,
        nano_cpus: host["NanoCpus"].as_i64().unwrap_or(0),
        memory: host["Memory"].as_i64().unwrap_or(0),
        user: config["User"].as_str().unwrap_or_default().to_owned(),
        working_dir: config["WorkingDir"].as_str().unwrap_or_default().to_owned(),
        cap_drop: strings(&host["CapDrop"]).unwrap_or_default(),
    };
    (service, facts)
}

/// Docker's restart policy, as the `restartPolicy` Berth's agent enforces itself (it
/// creates every container with Docker's `no`, so restarts come with backoff and status).
fn berth_policy(docker_policy: &str) -> &'static str {
    match docker_policy {
        "always" | "unless-stopped" => "always",
        "on-failure" => "on-failure",
        _ => "never",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_converted_compose_file_runs_as_docker_compose_runs_it() {
    let name = format!("czeq{}", std::process::id());
    let project = Project::new(&name);
    let ports = vec![
        ("PORT_A", free_port().to_string()),
        ("PORT_B", free_port().to_string()),
    ];

    // docker-compose first, then all of it gone before Berth starts (same host ports).
    project.compose(&["up", "-d"], &ports);
    let ids = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={name}"),
    ]);
    let mut by_compose = BTreeMap::new();
    let mut restart = BTreeMap::new();
    for id in ids.lines().filter(|l| !l.is_empty()) {
        let (service, f) = facts(id);
        restart.insert(
            service.clone(),
            inspect(id, "{{.HostConfig.RestartPolicy.Name}}"),
        );
        by_compose.insert(service, f);
    }
    assert_eq!(by_compose.len(), 2, "compose ran both services");
    project.compose(&["down", "-v"], &ports);

    // Then `berth apply -f compose.yaml` (the binary, as a user runs it), and Berth runs
    // what it converted.
    let c = Cluster::start("compose-eq").await;
    let url = c.etcd.as_ref().expect("etcd").client_url.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .current_dir(&project.dir)
        .args(["apply", "-f", "compose.yaml", "--id", &name])
        .args(["--etcd-endpoints", &url])
        .envs(ports.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("WHO")
        .output()
        .expect("run berth apply");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "this file converts without a warning");
    let kv = c
        .store
        .get(&keys::stack(&name))
        .await
        .expect("read the stack")
        .expect("apply wrote the stack");
    let stack: Value = serde_json::from_slice(&kv.value).expect("stack json");
    c.wait_status(&name, T, |s| {
        s.phase == Phase::Running && s.observed_revision == kv.mod_revision
    })
    .await;
    let mut by_berth = BTreeMap::new();
    for id in containers_of(&c.host_id, &name) {
        let (service, f) = facts(&id);
        by_berth.insert(service, f);
    }

    for (service, want) in &by_compose {
        let got = by_berth
            .get(service)
            .unwrap_or_else(|| panic!("Berth runs no {service}"));
        assert_eq!(
            got, want,
            "{service}: Berth's container (left) differs from compose's"
        );
        let policy = stack["itemListElement"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == service.as_str()))
            .map(|s| s["restartPolicy"].clone());
        assert_eq!(
            policy,
            Some(Value::from(berth_policy(&restart[service]))),
            "{service}: restart"
        );
    }
    // The file's own values made it through, so the comparison compared something.
    let api = &by_compose["api"];
    assert!(api.env.contains("GREETING=hello dotenv"), "{:?}", api.env);
    assert!(api.env.contains("DOLLAR=$HOME") && api.env.contains("FROM_FILE=yes"));
    assert_eq!(api.ports.len(), 2);
    assert_eq!(api.memory, 64 * 1024 * 1024);
    assert_eq!(by_compose["db"].nano_cpus, 250_000_000);
}

/// `berth convert` as a user meets it: the file it finds, stdin, `-o`, the warnings on
/// stderr with their paths, and its exit codes. Needs neither Docker nor etcd.
#[test]
fn berth_convert_finds_the_file_warns_by_path_and_exits_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let berth = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .current_dir(dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run berth");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
        drop(input);
        let out = child.wait_with_output().expect("berth ends");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let good =
        "services:\n  db:\n    image: postgres:16\n    sysctls: {net.core.somaxconn: 1024}\n";

    // No file here: exit 2. Then docker-compose.yml is found, as compose finds it.
    let (code, _, stderr) = berth(&["convert"], None);
    assert_eq!(code, 2, "{stderr}");
    std::fs::write(dir.path().join("docker-compose.yml"), good).unwrap();
    let (code, stdout, stderr) = berth(&["convert", "--id", "shop"], None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr,
        "docker-compose.yml: warning: services.db.sysctls: not supported, ignored\n"
    );
    let stack: Value = serde_json::from_str(&stdout).expect("a stack on stdout");
    assert_eq!(stack["itemListElement"][0]["image"], "postgres:16");

    // compose.yaml comes first; -o writes the file, which `berth validate` accepts.
    std::fs::write(
        dir.path().join("compose.yaml"),
        good.replace("postgres:16", "redis:7"),
    )
    .unwrap();
    let (code, stdout, _) = berth(&["convert", "-o", "stack.json"], None);
    assert_eq!((code, stdout.as_str()), (0, ""));
    let written = std::fs::read_to_string(dir.path().join("stack.json")).expect("-o wrote it");
    assert!(written.contains("redis:7"), "{written}");
    let (code, stdout, _) = berth(&["validate", "stack.json"], None);
    assert_eq!(code, 0, "{stdout}");

    // stdin; a service that cannot be converted is exit 1 with its path.
    let build = "services:\n  backend: {build: .}\n";
    let (code, stdout, stderr) = berth(&["convert", "-"], Some(build));
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        "-: error: services.backend.build: Berth runs images; build and push it, then set image\n"
    );
    // Not YAML: exit 2.
    let (code, _, stderr) = berth(&["convert", "-"], Some("services: [\n"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("-: not valid YAML"), "{stderr}");

    // `apply -f` knows a compose file by its content, whatever its name, and converts it
    // before it connects anywhere: the same error, the same exit code.
    std::fs::write(dir.path().join("stack.yaml"), build).unwrap();
    let (code, _, stderr) = berth(
        &[
            "apply",
            "-f",
            "stack.yaml",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
        ],
        None,
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr,
        "stack.yaml: error: services.backend.build: Berth runs images; build and push it, then set image\n"
    );
}
