//! The mapping, row by row: small compose files and what each becomes.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::*;

/// Files and variables, in memory.
#[derive(Default)]
struct Fake {
    files: BTreeMap<PathBuf, String>,
    vars: BTreeMap<String, String>,
}

impl Surroundings for Fake {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

fn fake() -> Fake {
    let mut f = Fake::default();
    f.vars.insert("HOME".into(), "/home/ann".into());
    f.vars.insert("TAG".into(), "from-env".into());
    f.files.insert(
        "/srv/shop/.env".into(),
        "TAG=from-dotenv\nDOTENV_ONLY=dot\n".into(),
    );
    f.files.insert(
        "/srv/shop/web.env".into(),
        "A=from-file\nB=from-file\n".into(),
    );
    f
}

const DIR: &str = "/srv/shop";

fn run(yaml: &str, options: &Options, f: &Fake) -> Result<Converted, Failure> {
    convert(yaml, Path::new(DIR), options, f)
}

/// Whether every field of `want` is in `got`, recursively (arrays compared whole).
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        _ => got == want,
    }
}

/// Every mapping row: a compose file, what its `web` service (or the stack, for `@stack`
/// rows) must contain, and the warnings (path: message fragments) it must give, exactly.
#[test]
fn every_mapping_row_converts_as_documented() {
    // (case, compose file, expected subset of the service, warnings)
    let cases: Vec<(&str, &str, Value, &[&str])> = vec![
        (
            "image, and restart absent means never (compose restarts nothing)",
            "services:\n  web:\n    image: nginx:1.27\n",
            json!({"name": "web", "image": "nginx:1.27", "restartPolicy": "never", "@type": "SoftwareApplication"}),
            &[],
        ),
        (
            "command string is split as a shell would",
            "services:\n  web:\n    image: i\n    command: sh -c \"trap 'exit 0' TERM; sleep 1 & wait\"\n",
            json!({"command": ["sh", "-c", "trap 'exit 0' TERM; sleep 1 & wait"]}),
            &[],
        ),
        (
            "command list",
            "services:\n  web:\n    image: i\n    command: [\"echo\", \"a b\"]\n",
            json!({"command": ["echo", "a b"]}),
            &[],
        ),
        (
            "entrypoint string and list",
            "services:\n  web:\n    image: i\n    entrypoint: /docker-entrypoint.sh --verbose\n    command: [run]\n",
            json!({"entrypoint": ["/docker-entrypoint.sh", "--verbose"], "command": ["run"]}),
            &[],
        ),
        (
            "empty entrypoint is not carried",
            "services:\n  web:\n    image: i\n    entrypoint: []\n",
            json!({"image": "i"}),
            &["services.web.entrypoint: an empty entrypoint"],
        ),
        (
            "environment list, with a name taken from the environment and an unset one left out",
            "services:\n  web:\n    image: i\n    environment:\n      - A=1\n      - B=x=y\n      - TAG\n      - NOT_SET\n",
            json!({"environment": {"A": "1", "B": "x=y", "TAG": "from-env"}}),
            &[],
        ),
        (
            "environment map with numbers, booleans and null",
            "services:\n  web:\n    image: i\n    environment:\n      PORT: 8080\n      DEBUG: true\n      TAG:\n",
            json!({"environment": {"PORT": "8080", "DEBUG": "true", "TAG": "from-env"}}),
            &[],
        ),
        (
            "env_file relative to the compose file, environment wins",
            "services:\n  web:\n    image: i\n    env_file: web.env\n    environment: {B: mine}\n",
            json!({"environment": {"A": "from-file", "B": "mine"}}),
            &[],
        ),
        (
            "interpolation: environment over .env, .env for the rest, defaults, $$",
            "services:\n  web:\n    image: \"app:${TAG}\"\n    environment:\n      D: ${DOTENV_ONLY}\n      X: ${NOPE:-fallback}\n      Y: ${NOPE-dash}\n      Z: $$literal\n",
            json!({"image": "app:from-env", "environment": {"D": "dot", "X": "fallback", "Y": "dash", "Z": "$literal"}}),
            &[],
        ),
        (
            "an unset variable without default is blank, with a warning",
            "services:\n  web:\n    image: i\n    environment: {X: \"a${NOPE}b\"}\n",
            json!({"environment": {"X": "ab"}}),
            &["services.web.environment.X: variable NOPE is not set"],
        ),
        (
            "ports short and long, with host ip and protocol",
            "services:\n  web:\n    image: i\n    ports:\n      - 8080:80\n      - 127.0.0.1:5353:53/udp\n      - {target: 443, published: 8443}\n",
            json!({"ports": [
                {"containerPort": 80, "hostPort": 8080, "protocol": "tcp"},
                {"containerPort": 53, "hostPort": 5353, "protocol": "udp", "hostIp": "127.0.0.1"},
                {"containerPort": 443, "hostPort": 8443, "protocol": "tcp"}
            ]}),
            &[],
        ),
        (
            "a port with no host port: compose picks one, Berth does not publish",
            "services:\n  web:\n    image: i\n    ports: [\"80\"]\n",
            json!({"ports": [{"containerPort": 80, "protocol": "tcp"}]}),
            &["services.web.ports[0]: compose publishes container port 80 on a random host port"],
        ),
        (
            "expose: listened on, published nowhere",
            "services:\n  web:\n    image: i\n    expose: [\"3000\"]\n",
            json!({"ports": [{"containerPort": 3000, "protocol": "tcp"}]}),
            &[],
        ),
        (
            "volumes named, bind relative, read_only, tmpfs",
            "services:\n  web:\n    image: i\n    volumes:\n      - data:/data\n      - ./conf:/etc/conf:ro\n      - {type: tmpfs, target: /scratch}\n    tmpfs: /run\nvolumes:\n  data:\n",
            json!({"volumeMounts": [
                {"source": "shop_data", "target": "/data", "type": "volume"},
                {"source": "/srv/shop/conf", "target": "/etc/conf", "type": "bind", "readOnly": true},
                {"source": "", "target": "/scratch", "type": "tmpfs"},
                {"source": "", "target": "/run", "type": "tmpfs"}
            ]}),
            &[],
        ),
        (
            "@stack top-level volumes: <project>_<key>, name, external, driver",
            "services:\n  web:\n    image: i\n    volumes: [a:/a, b:/b, c:/c]\nvolumes:\n  a: {driver: local}\n  b: {name: exact}\n  c: {external: true}\n",
            json!({"volumes": [
                {"name": "shop_a", "driver": "local"},
                {"name": "exact"},
                {"name": "c", "createIfNotExists": false}
            ]}),
            &[],
        ),
        (
            "depends_on list",
            "services:\n  web:\n    image: i\n    depends_on: [db]\n  db:\n    image: d\n",
            json!({"requirements": ["db"]}),
            &[],
        ),
        (
            "depends_on map: started, healthy, completed",
            "services:\n  web:\n    image: i\n    depends_on:\n      a: {condition: service_started}\n      b: {condition: service_healthy}\n      c: {condition: service_completed_successfully}\n  a: {image: x}\n  b: {image: x}\n  c: {image: x}\n",
            json!({"requirements": ["a"], "softwareRequirements": [
                {"@type": "SoftwareApplication", "name": "b", "waitForHealthy": true},
                {"@type": "SoftwareApplication", "name": "c", "condition": "completed"}
            ]}),
            &[],
        ),
        (
            "healthcheck CMD with durations",
            "services:\n  web:\n    image: i\n    healthcheck:\n      test: [\"CMD\", \"true\"]\n      interval: 1m30s\n      timeout: 5s\n      retries: 5\n      start_period: 500ms\n",
            json!({"healthCheck": {"type": "command", "command": ["true"], "interval": 90.0, "timeout": 5.0, "retries": 5, "startPeriod": 0.5}}),
            &[],
        ),
        (
            "healthcheck CMD-SHELL, with Docker's defaults spelled out",
            "services:\n  web:\n    image: i\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready -U $$USER\"]\n",
            json!({"healthCheck": {"type": "command", "command": ["/bin/sh", "-c", "pg_isready -U $USER"], "interval": 30.0, "timeout": 30.0, "retries": 3, "startPeriod": 0.0}}),
            &[],
        ),
        (
            "healthcheck as a string is CMD-SHELL",
            "services:\n  web:\n    image: i\n    healthcheck: {test: \"curl -f localhost\"}\n",
            json!({"healthCheck": {"command": ["/bin/sh", "-c", "curl -f localhost"]}}),
            &[],
        ),
        (
            "healthcheck NONE: no check",
            "services:\n  web:\n    image: i\n    healthcheck: {test: [NONE]}\n",
            json!({"image": "i"}),
            &[],
        ),
        (
            "healthcheck disable: no check",
            "services:\n  web:\n    image: i\n    healthcheck: {test: [CMD, \"true\"], disable: true}\n",
            json!({"image": "i"}),
            &[],
        ),
        (
            "restart always",
            "services:\n  web: {image: i, restart: always}\n",
            json!({"restartPolicy": "always"}),
            &[],
        ),
        (
            "restart unless-stopped",
            "services:\n  web: {image: i, restart: unless-stopped}\n",
            json!({"restartPolicy": "always"}),
            &[],
        ),
        (
            "restart on-failure",
            "services:\n  web: {image: i, restart: on-failure}\n",
            json!({"restartPolicy": "on-failure"}),
            &[],
        ),
        (
            "restart on-failure with a count",
            "services:\n  web: {image: i, restart: \"on-failure:3\"}\n",
            json!({"restartPolicy": "on-failure"}),
            &["services.web.restart: a maximum number of retries is not supported"],
        ),
        (
            "restart no",
            "services:\n  web: {image: i, restart: \"no\"}\n",
            json!({"restartPolicy": "never"}),
            &[],
        ),
        (
            "labels list",
            "services:\n  web:\n    image: i\n    labels: [\"team=shop\", \"tier=web\"]\n",
            json!({"labels": {"team": "shop", "tier": "web"}}),
            &[],
        ),
        (
            "labels map",
            "services:\n  web:\n    image: i\n    labels: {team: shop, version: 2}\n",
            json!({"labels": {"team": "shop", "version": "2"}}),
            &[],
        ),
        (
            "deploy: replicas, limits, node label constraint, update_config, restart_policy",
            "services:\n  web:\n    image: i\n    deploy:\n      replicas: 3\n      resources:\n        limits: {cpus: \"0.5\", memory: 512M}\n      placement:\n        constraints: [\"node.labels.disk == ssd\"]\n      update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: pause, monitor: 1m, max_failure_ratio: 0.2}\n      restart_policy: {condition: on-failure}\n",
            json!({
                "replicas": 3,
                "resources": {"cpus": 0.5, "memoryMb": 512},
                "hostConstraints": {"requiredLabels": {"disk": "ssd"}},
                "update": {"parallelism": 2, "delay": 10.0, "order": "start-first", "failureAction": "pause", "monitor": 60.0, "maxFailureRatio": 0.2},
                "restartPolicy": "on-failure"
            }),
            &[],
        ),
        (
            "deploy: what has no Berth field warns",
            "services:\n  web:\n    image: i\n    deploy:\n      mode: global\n      resources:\n        reservations: {memory: 1g}\n        limits: {pids: 10}\n      placement:\n        constraints: [\"node.role == manager\"]\n      rollback_config: {parallelism: 1}\n",
            json!({"image": "i"}),
            &[
                "services.web.deploy.mode: \"global\": not supported",
                "services.web.deploy.resources.limits.pids: not supported, ignored",
                "services.web.deploy.resources.reservations: ignored: Berth reserves",
                "services.web.deploy.placement.constraints[0]: \"node.role == manager\": not supported",
                "services.web.deploy.rollback_config: not supported, ignored",
            ],
        ),
        (
            "version-2 cpus, mem_limit and scale",
            "services:\n  web: {image: i, cpus: 0.25, mem_limit: 1g, scale: 2}\n",
            json!({"resources": {"cpus": 0.25, "memoryMb": 1024}, "replicas": 2}),
            &[],
        ),
        (
            "memory not in whole megabytes rounds up",
            "services:\n  web: {image: i, mem_limit: 1000k}\n",
            json!({"resources": {"memoryMb": 1}}),
            &["services.web.mem_limit: Berth limits memory in whole megabytes: 1 MB"],
        ),
        (
            "@stack one network is the stack's",
            "services:\n  web: {image: i, networks: [back]}\nnetworks:\n  back: {driver: bridge}\n",
            json!({"network": {"name": "shop_back", "driver": "bridge"}}),
            &[],
        ),
        (
            "@stack an external network is never created",
            "services:\n  web: {image: i}\nnetworks:\n  default: {external: true, name: shared}\n",
            json!({"network": {"name": "shared", "createIfNotExists": false}}),
            &[],
        ),
        (
            "@stack several networks and aliases warn",
            "services:\n  web:\n    image: i\n    networks:\n      back: {aliases: [api]}\n      front:\nnetworks:\n  back:\n  front: {external: true}\n",
            json!({"network": {"name": "shop_back"}}),
            &[
                "networks.front: ignored: Berth puts every service of a stack on one network, back",
                "services.web.networks.back.aliases: ignored",
                "services.web.networks.front: ignored: Berth puts every service of a stack on one network (back)",
            ],
        ),
        (
            "secrets and configs say how to store a secret",
            "services:\n  web: {image: i, secrets: [pw], configs: [c]}\nsecrets:\n  pw: {file: ./pw.txt}\n",
            json!({"image": "i"}),
            &[
                "secrets.pw: not supported, ignored; store the value with `etcdctl put /berth/secrets/NAME < FILE`",
                "services.web.secrets: not supported, ignored; store",
                "services.web.configs: not supported, ignored; store",
            ],
        ),
        (
            "user, working_dir, cap_drop",
            "services:\n  web: {image: i, user: \"1000:1000\", working_dir: /srv, cap_drop: [NET_RAW]}\n",
            json!({"user": "1000:1000", "workingDir": "/srv", "capDrop": ["NET_RAW"]}),
            &[],
        ),
        (
            "container_name, hostname, cap_add, links, privileged false, bridge mode",
            "services:\n  web: {image: i, container_name: w, hostname: h, cap_add: [NET_ADMIN], links: [db], privileged: false, network_mode: bridge}\n  db: {image: d}\n",
            json!({"image": "i"}),
            &[
                "services.web.container_name: ignored: Berth names containers",
                "services.web.hostname: ignored",
                "services.web.cap_add: ignored: Berth adds no capabilities",
                "services.web.links: ignored",
            ],
        ),
        (
            "build with an image: the build is ignored",
            "services:\n  web: {image: i, build: .}\n",
            json!({"image": "i"}),
            &["services.web.build: ignored: Berth runs the image"],
        ),
        (
            "pull_policy",
            "services:\n  web: {image: i, pull_policy: always}\n",
            json!({"pullPolicy": "always"}),
            &[],
        ),
        (
            "x- keys are ignored silently, other unknown keys warn",
            "x-common: &c {a: 1}\nservices:\n  web:\n    image: i\n    x-note: hi\n    sysctls: {net.core.somaxconn: 1024}\n    stop_grace_period: 1m\nfoo: bar\n",
            json!({"image": "i"}),
            &[
                "foo: not supported, ignored",
                "services.web.stop_grace_period: not supported, ignored",
                "services.web.sysctls: not supported, ignored",
            ],
        ),
        (
            "YAML anchors and merge keys",
            "x-env: &env {A: \"1\"}\nservices:\n  web:\n    image: i\n    environment:\n      <<: *env\n      B: \"2\"\n",
            json!({"environment": {"A": "1", "B": "2"}}),
            &[],
        ),
        (
            "profiles: a service in an inactive profile is left out, with a warning",
            "services:\n  web: {image: i}\n  debug: {image: d, profiles: [debug]}\n",
            json!({"image": "i"}),
            &["services.debug: left out, as compose does: it is in profile debug"],
        ),
        (
            "extends a service of the same file, environment merged",
            "services:\n  base: {image: i, environment: {A: \"1\", B: \"1\"}, restart: always}\n  web: {extends: base, environment: [B=2]}\n",
            json!({"image": "i", "environment": {"A": "1", "B": "2"}, "restartPolicy": "always"}),
            &[],
        ),
    ];
    let mut failures = Vec::new();
    for (name, yaml, want, warnings) in cases {
        let converted = match run(yaml, &Options::default(), &fake()) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: {e:?}"));
                continue;
            }
        };
        let stack = serde_json::to_value(&converted.stack).unwrap();
        let got = if name.starts_with("@stack") {
            stack.clone()
        } else {
            stack["itemListElement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "web")
                .cloned()
                .unwrap_or(Value::Null)
        };
        if !contains(&got, &want) {
            failures.push(format!("{name}: {got:#} does not contain {want:#}"));
        }
        let lines: Vec<String> = converted.warnings.iter().map(ToString::to_string).collect();
        let matched = lines.len() == warnings.len()
            && warnings
                .iter()
                .all(|w| lines.iter().any(|l| l.starts_with(w)));
        if !matched {
            failures.push(format!("{name}: warnings {lines:#?}, want {warnings:#?}"));
        }
        // Whatever converts is a stack Berth accepts.
        if let Err(problems) = crate::spec::parse_stack(converted.to_json().as_bytes()) {
            failures.push(format!("{name}: output invalid: {problems:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What cannot be converted is an error at its path, and no stack.
#[test]
fn what_berth_cannot_run_fails_with_its_path() {
    // (case, compose file, error line)
    let cases = [
        (
            "build without image",
            "services:\n  backend: {build: .}\n",
            "services.backend.build: Berth runs images; build and push it, then set image",
        ),
        ("no image", "services:\n  web: {command: x}\n", "services.web.image: a service needs an image"),
        (
            "privileged",
            "services:\n  web: {image: i, privileged: true}\n",
            "services.web.privileged: not supported: Berth never creates privileged",
        ),
        (
            "host network",
            "services:\n  web: {image: i, network_mode: host}\n",
            "services.web.network_mode: host networking is not supported",
        ),
        (
            "host pid",
            "services:\n  web: {image: i, pid: host}\n",
            "services.web.pid: sharing the host's pid namespace is not supported",
        ),
        (
            "host ipc",
            "services:\n  web: {image: i, ipc: host}\n",
            "services.web.ipc: sharing the host's ipc namespace is not supported",
        ),
        (
            "devices",
            "services:\n  web: {image: i, devices: [\"/dev/fuse\"]}\n",
            "services.web.devices: not supported",
        ),
        (
            "a service name that is no DNS label",
            "services:\n  my_app: {image: i}\n",
            "services.my_app: \"my_app\" is not a DNS label",
        ),
        (
            "a required variable",
            "services:\n  web: {image: \"${IMAGE:?set IMAGE}\"}\n",
            "services.web.image: required variable IMAGE is missing a value: set IMAGE",
        ),
        (
            "an undeclared named volume",
            "services:\n  web: {image: i, volumes: [\"cache:/c\"]}\n",
            "services.web.volumes[0]: named volume \"cache\" is not declared",
        ),
        (
            "a dependency left out by its profile",
            "services:\n  web: {image: i, depends_on: [dbg]}\n  dbg: {image: i, profiles: [debug]}\n",
            "services.web.depends_on.dbg: \"dbg\" is not a service that is converted",
        ),
        (
            "an env_file that is not there",
            "services:\n  web: {image: i, env_file: missing.env}\n",
            "services.web.env_file[0]: cannot read /srv/shop/missing.env",
        ),
        (
            "include",
            "include: [other.yaml]\nservices:\n  web: {image: i}\n",
            "include: not supported; merge the included files into this one",
        ),
        (
            "extends from another file",
            "services:\n  web: {extends: {file: base.yaml, service: b}}\n",
            "services.web.extends: extending a service of another file is not supported",
        ),
        (
            "a dependency cycle, in compose terms",
            "services:\n  a: {image: i, depends_on: [b]}\n  b: {image: i, depends_on: [a]}\n",
            "services.a: dependency cycle: a -> b -> a",
        ),
        (
            "two services on one host port, in compose terms",
            "services:\n  a: {image: i, ports: [\"80:80\"]}\n  b: {image: i, ports: [\"80:81\"]}\n",
            "services.b.ports[0].hostPort: host port 80/tcp is also published",
        ),
        (
            "a block of the wrong shape is an error, not dropped",
            "services:\n  web: {image: i, deploy: {resources: 5}}\n",
            "services.web.deploy.resources: 5 is not a mapping",
        ),
        (
            "an invalid duration",
            "services:\n  web: {image: i, healthcheck: {test: [CMD, \"true\"], interval: soon}}\n",
            "services.web.healthcheck.interval: \"soon\" is not a duration",
        ),
    ];
    let mut failures = Vec::new();
    for (name, yaml, want) in cases {
        match run(yaml, &Options::default(), &fake()) {
            Err(Failure::NotConverted(report)) => {
                let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
                if !errors.iter().any(|e| e.starts_with(want)) {
                    failures.push(format!("{name}: errors {errors:#?}, want {want:?}"));
                }
            }
            other => failures.push(format!("{name}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_yaml_or_no_services_is_unreadable_exit_2() {
    for (name, text) in [
        ("bad yaml", "services: [\n"),
        ("no services", "version: '3'\n"),
        ("a list", "- a\n"),
    ] {
        match run(text, &Options::default(), &fake()) {
            Err(f @ Failure::Unreadable(_)) => assert_eq!(f.exit_code(), 2, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    let not_converted = Failure::NotConverted(Report::default());
    assert_eq!(not_converted.exit_code(), 1);
}

#[test]
fn the_stack_id_is_the_project_name_unless_given() {
    let f = fake();
    let yaml = "services:\n  web: {image: i}\n";
    let id = |yaml: &str, dir: &str, id: Option<&str>, f: &Fake| {
        let options = Options {
            id: id.map(str::to_owned),
            ..Default::default()
        };
        let c = convert(yaml, Path::new(dir), &options, f).unwrap();
        (c.id, c.stack.name.unwrap_or_default())
    };
    // (case, yaml, dir, --id, (id, project))
    assert_eq!(
        id(yaml, "/srv/shop", None, &f),
        ("shop".into(), "shop".into())
    );
    assert_eq!(
        id(yaml, "/srv/My_Shop", None, &f),
        ("my-shop".into(), "my_shop".into())
    );
    assert_eq!(
        id(yaml, "/srv/shop", Some("other"), &f),
        ("other".into(), "shop".into())
    );
    let named = "name: named\nservices:\n  web: {image: i}\n";
    assert_eq!(
        id(named, "/srv/shop", None, &f),
        ("named".into(), "named".into())
    );
    let mut with_env = fake();
    with_env
        .vars
        .insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
    assert_eq!(
        id(yaml, "/srv/shop", None, &with_env),
        ("fromenv".into(), "fromenv".into())
    );
}

#[test]
fn a_profile_given_or_in_compose_profiles_converts_its_services() {
    let yaml = "services:\n  web: {image: i}\n  debug: {image: d, profiles: [debug]}\n";
    let names = |c: Converted| -> Vec<String> {
        c.stack
            .item_list_element
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    let options = Options {
        profiles: vec!["debug".into()],
        ..Default::default()
    };
    assert_eq!(
        names(run(yaml, &options, &fake()).unwrap()),
        ["debug", "web"]
    );
    let mut f = fake();
    f.vars
        .insert("COMPOSE_PROFILES".into(), "other,debug".into());
    let converted = run(yaml, &Options::default(), &f).unwrap();
    assert!(converted.warnings.is_empty());
    assert_eq!(names(converted), ["debug", "web"]);
}

#[test]
fn documents_are_told_apart_by_content() {
    // (case, bytes, format)
    let cases = [
        (
            "eve json",
            r#"{"@type":"ItemList","itemListElement":[]}"#,
            Format::Eve,
        ),
        (
            "eve without @type",
            r#"{"itemListElement":[]}"#,
            Format::Eve,
        ),
        (
            "compose json",
            r#"{"services":{"web":{"image":"i"}}}"#,
            Format::Compose,
        ),
        (
            "compose yaml",
            "services:\n  web:\n    image: i\n",
            Format::Compose,
        ),
        (
            "a json-ld stack with a services term stays eve",
            r#"{"@type":"ItemList","services":1}"#,
            Format::Eve,
        ),
        (
            "broken json is eve, so its errors are a stack's",
            r#"{"itemListElement": ["#,
            Format::Eve,
        ),
        ("yaml without services", "foo: 1\n", Format::Eve),
        ("binary", "\u{0}\u{1}", Format::Eve),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(detect(bytes.as_bytes()), want, "{name}");
    }
}
