//! Validation cases, one row per rule, each with the problem and path it reports.

use crate::spec::fixtures::{doc, problems, service, EVE};

#[test]
fn every_rule_reports_its_problem_with_a_path() {
    let case = |name, json: String, expected: &'static [&'static str]| (name, json, expected);
    let two = |a: &str, b: &str| doc("", &format!("{a},{b}"));
    let cases = [
        case("minimal stack is valid", doc("", &service("")), &[]),
        case("eve's own definition is valid", EVE.to_owned(), &[]),
        case(
            "json-ld extra terms are ignored",
            doc(r#""@id":"x","foo":{"bar":1}"#, &service(r#""@id":"y","sameAs":[1]"#)),
            &[],
        ),
        case(
            "not json",
            r#"{"itemListElement": ["#.to_owned(),
            &["not valid JSON: EOF while parsing a list at line 1 column 21"],
        ),
        case("top level not an object", "[1]".to_owned(), &["a stack must be a JSON object, not an array"]),
        case(
            "top-level type error does not hide service problems",
            doc(r#""network":5"#, r#"{"name":"web","image":""}"#),
            &["network: invalid type: integer `5`", "itemListElement[0].image: a service needs an image"],
        ),
        case(
            "type error in one service does not hide another's",
            two(&service(r#""ports":"80""#), r#"{"name":"B","image":"x"}"#),
            &["itemListElement[0].ports: invalid type", "itemListElement[1].name: \"B\" is not a DNS label"],
        ),
        case(
            "nested type error has its full path",
            doc("", &service(r#""ports":[{"containerPort":"80"}]"#)),
            &["itemListElement[0].ports[0].containerPort: invalid type: string \"80\""],
        ),
        case(
            "missing required field is named",
            doc("", &service(r#""volumeMounts":[{"source":"x"}]"#)),
            &["itemListElement[0].volumeMounts[0]: missing field `target`"],
        ),
        case(
            "service that is not an object",
            doc("", "5"),
            &["itemListElement[0]: a service must be a JSON object, not a number"],
        ),
        case(
            "itemListElement that is not an array",
            r#"{"itemListElement":{}}"#.to_owned(),
            &["itemListElement: expected an array of services, not an object"],
        ),
        case("no services", doc("", ""), &["itemListElement: a stack needs at least one service"]),
        case(
            "missing image",
            doc("", r#"{"name":"web"}"#),
            &["itemListElement[0].image: a service needs an image"],
        ),
        case(
            "name not a dns label",
            doc("", r#"{"name":"Bad Name!","image":"x"}"#),
            &[r#"itemListElement[0].name: "Bad Name!" is not a DNS label ([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters)"#],
        ),
        case(
            "name too long",
            doc("", &format!(r#"{{"name":"{}","image":"x"}}"#, "a".repeat(64))),
            &["is not a DNS label"],
        ),
        case("name missing", doc("", r#"{"image":"x"}"#), &["itemListElement[0].name: a service needs a name"]),
        case(
            "duplicate names",
            two(&service(""), &service("")),
            &[r#"itemListElement[1].name: "web" is the name of both itemListElement[0] and itemListElement[1]"#],
        ),
        case(
            "unknown requirement",
            doc("", &service(r#""requirements":["db"]"#)),
            &[r#"itemListElement[0].requirements[0]: "db" is not a service in this stack"#],
        ),
        case(
            "unknown software requirement",
            doc("", &service(r#""softwareRequirements":[{"name":"postgres"}]"#)),
            &[r#"itemListElement[0].softwareRequirements[0].name: "postgres" is not a service in this stack"#],
        ),
        case(
            "dependency on itself",
            doc("", &service(r#""requirements":["web"]"#)),
            &["itemListElement[0].requirements[0]: \"web\" is this service itself"],
        ),
        case(
            "dependency cycle",
            two(
                r#"{"name":"a","image":"x","softwareRequirements":[{"name":"b"}]}"#,
                r#"{"name":"b","image":"x","requirements":["a"]}"#,
            ),
            &["itemListElement[0]: dependency cycle: a -> b -> a"],
        ),
        case(
            "unknown placement strategy",
            doc(r#""deployment":{"placementStrategy":"sideways"}"#, &service("")),
            &[r#"deployment.placementStrategy: "sideways" is not a placement strategy (manual, auto, spread, datacenter)"#],
        ),
        case(
            "unknown deployment mode",
            doc(r#""deployment":{"mode":"cluster"}"#, &service("")),
            &[r#"deployment.mode: "cluster" is not a deployment mode (single-host, multi-host)"#],
        ),
        case(
            "unknown desired state",
            doc(r#""desiredState":"paused""#, &service("")),
            &[r#"desiredState: "paused" is not a desired state (running, stopped)"#],
        ),
        case(
            "manual placement without targetHost",
            doc(r#""deployment":{"mode":"multi-host","placementStrategy":"manual"}"#, &service("")),
            &["itemListElement[0].targetHost: manual placement needs a targetHost"],
        ),
        case(
            "manual placement with operator-style host ids is valid",
            doc(
                r#""deployment":{"mode":"multi-host","placementStrategy":"manual"}"#,
                &service(r#""targetHost":"Node_1.eu-west.example.com""#),
            ),
            &[],
        ),
        case(
            "targetHost not a host id",
            doc("", &service(r#""targetHost":"host 1""#)),
            &[r#"itemListElement[0].targetHost: "host 1" is not a host id"#],
        ),
        case(
            "containerPort out of range",
            doc("", &service(r#""ports":[{"containerPort":70000}]"#)),
            &["itemListElement[0].ports[0].containerPort: 70000 is not a port (1-65535)"],
        ),
        case(
            "hostPort out of range",
            doc("", &service(r#""ports":[{"containerPort":80,"hostPort":0}]"#)),
            &["itemListElement[0].ports[0].hostPort: 0 is not a port (1-65535)"],
        ),
        case(
            "unknown protocol",
            doc("", &service(r#""ports":[{"containerPort":80,"protocol":"sctp"}]"#)),
            &[r#"itemListElement[0].ports[0].protocol: "sctp" is not a protocol (tcp, udp)"#],
        ),
        case(
            "host port clash in single-host mode",
            two(
                &service(r#""ports":[{"containerPort":80,"hostPort":8080}]"#),
                r#"{"name":"api","image":"x","ports":[{"containerPort":81,"hostPort":8080,"protocol":"tcp"}]}"#,
            ),
            &["itemListElement[1].ports[0].hostPort: host port 8080/tcp is also published by itemListElement[0].ports[0]"],
        ),
        case(
            "same host port on different protocols is valid",
            two(
                &service(r#""ports":[{"containerPort":53,"hostPort":53}]"#),
                r#"{"name":"dns","image":"x","ports":[{"containerPort":53,"hostPort":53,"protocol":"udp"}]}"#,
            ),
            &[],
        ),
        case(
            "host port clash on the same targetHost in multi-host mode",
            doc(
                r#""deployment":{"mode":"multi-host","placementStrategy":"manual"}"#,
                &format!(
                    "{},{}",
                    service(r#""targetHost":"h1","ports":[{"containerPort":80,"hostPort":80}]"#),
                    r#"{"name":"api","image":"x","targetHost":"h1","ports":[{"containerPort":80,"hostPort":80}]}"#
                ),
            ),
            &["itemListElement[1].ports[0].hostPort: host port 80/tcp is also published"],
        ),
        case(
            "same host port across services in multi-host auto is valid",
            doc(
                r#""deployment":{"mode":"multi-host"}"#,
                &format!(
                    "{},{}",
                    service(r#""replicas":3,"ports":[{"containerPort":80,"hostPort":80}]"#),
                    r#"{"name":"api","image":"x","ports":[{"containerPort":80,"hostPort":80}]}"#
                ),
            ),
            &[],
        ),
        case(
            "replicas sharing a host port in single-host mode",
            doc("", &service(r#""replicas":2,"ports":[{"containerPort":80,"hostPort":80}]"#)),
            &["itemListElement[0].ports[0].hostPort: host port 80/tcp would be published by all 2 replicas"],
        ),
        case(
            "unknown health check type",
            doc("", &service(r#""healthCheck":{"type":"telepathy"}"#)),
            &[r#"itemListElement[0].healthCheck.type: "telepathy" is not a health check type (http, tcp, command)"#],
        ),
        case(
            "http health check without path",
            doc("", &service(r#""healthCheck":{"type":"http","port":80}"#)),
            &["itemListElement[0].healthCheck.path: an http health check needs a path"],
        ),
        case(
            "http health check with a relative path",
            doc("", &service(r#""healthCheck":{"type":"http","path":"status","port":80}"#)),
            &[r#"itemListElement[0].healthCheck.path: "status" must start with /"#],
        ),
        case(
            "tcp health check without any port",
            doc("", &service(r#""healthCheck":{"type":"tcp"}"#)),
            &["itemListElement[0].healthCheck.port: a tcp health check needs a port"],
        ),
        case(
            "tcp health check falls back to the service's ports",
            doc("", &service(r#""ports":[{"containerPort":80}],"healthCheck":{"type":"tcp"}"#)),
            &[],
        ),
        case(
            "command health check without command",
            doc("", &service(r#""healthCheck":{"type":"command","command":[]}"#)),
            &["itemListElement[0].healthCheck.command: a command health check needs a command"],
        ),
        case(
            "zero interval and negative timeout",
            doc(
                "",
                &service(r#""healthCheck":{"type":"command","command":"true","interval":0,"timeout":-1}"#),
            ),
            &[
                "itemListElement[0].healthCheck.interval: 0 is not a positive number of seconds",
                "itemListElement[0].healthCheck.timeout: -1 is not a positive number of seconds",
            ],
        ),
        case(
            "a health check interval of 1e20 seconds",
            doc("", &service(r#""healthCheck":{"type":"command","command":"true","interval":1e20}"#)),
            &["itemListElement[0].healthCheck.interval: 100000000000000000000 seconds is more than the maximum of 86400 (a day)"],
        ),
        case(
            "every time at its bound",
            doc(
                r#""deployment":{"update":{"delay":604800,"monitor":604800,"deadline":604800}}"#,
                &service(
                    r#""healthCheck":{"type":"command","command":"true","interval":86400,"timeout":86400,"startPeriod":86400},
                       "potentialAction":[{"name":"m","command":"true","timeout":86400}]"#,
                ),
            ),
            &[],
        ),
        case(
            "every size at its bound",
            doc(
                r#""deployment":{"hostConstraints":[{"minCPU":4096,"minMemory":67108864}]}"#,
                &service(r#""resources":{"cpus":4096,"memoryMb":67108864},"hostConstraints":{"minCPU":0,"minMemory":0}"#),
            ),
            &[],
        ),
        case(
            "memoryMb of u64::MAX",
            doc("", &service(r#""resources":{"memoryMb":18446744073709551615}"#)),
            &["itemListElement[0].resources.memoryMb: 18446744073709551615 megabytes is more than the maximum of 67108864 (64 TiB)"],
        ),
        case(
            "negative cpus",
            doc("", &service(r#""resources":{"cpus":-1}"#)),
            &["itemListElement[0].resources.cpus: -1 is not a number of CPUs from 0 to 4096"],
        ),
        case("zero replicas scale to zero", doc("", &service(r#""replicas":0"#)), &[]),
        case(
            "too many replicas",
            doc("", &service(r#""replicas":101"#)),
            &["itemListElement[0].replicas: 101 replicas is more than the maximum of 100"],
        ),
        case(
            "unknown volume mount type",
            doc("", &service(r#""volumeMounts":[{"source":"x","target":"/x","type":"nfs"}]"#)),
            &[r#"itemListElement[0].volumeMounts[0].type: "nfs" is not a volume mount type (volume, bind, tmpfs)"#],
        ),
        case(
            "bind mount without source",
            doc("", &service(r#""volumeMounts":[{"target":"/x","type":"bind"}]"#)),
            &["itemListElement[0].volumeMounts[0].source: a bind mount needs a source"],
        ),
        case(
            "relative mount target",
            doc("", &service(r#""volumeMounts":[{"source":"x","target":"data"}]"#)),
            &[r#"itemListElement[0].volumeMounts[0].target: "data" is not an absolute path"#],
        ),
        case(
            "undeclared named volume is an implicit volume",
            doc(
                r#""volumes":[{"name":"declared"}]"#,
                &service(r#""volumeMounts":[{"source":"undeclared","target":"/d","type":"volume"},{"target":"/t","type":"tmpfs"}]"#),
            ),
            &[],
        ),
        case(
            "environment name with =",
            doc("", &service(r#""environment":{"A=B":"1"}"#)),
            &[r#"itemListElement[0].environment: "A=B" is not an environment variable name"#],
        ),
        case(
            "empty environment name",
            doc("", &service(r#""environment":{"":"1"}"#)),
            &["itemListElement[0].environment: an environment variable name cannot be empty"],
        ),
        case(
            "action without command",
            doc("", &service(r#""potentialAction":[{"name":"migrate"}]"#)),
            &["itemListElement[0].potentialAction[0].command: an action needs a command"],
        ),
        case(
            "action targeting an unknown service",
            doc("", &service(r#""potentialAction":[{"name":"m","command":"true","target":"worker"}]"#)),
            &[r#"itemListElement[0].potentialAction[0].target: "worker" is not a service in this stack"#],
        ),
        case(
            "unknown service endpoint type",
            doc("", &service(r#""serviceEndpoint":{"type":"ingress"}"#)),
            &[r#"itemListElement[0].serviceEndpoint.type: "ingress" is not a service endpoint type (host-port)"#],
        ),
        case(
            "restart policies are valid",
            two(
                &service(r#""restartPolicy":"always""#),
                r#"{"name":"job","image":"x","restartPolicy":"on-failure"},{"name":"once","image":"x","restartPolicy":"never"}"#,
            ),
            &[],
        ),
        case(
            "unknown restart policy",
            doc("", &service(r#""restartPolicy":"unless-stopped""#)),
            &[r#"itemListElement[0].restartPolicy: "unless-stopped" is not a restart policy (always, on-failure, never)"#],
        ),
        case(
            "pull policies are valid",
            two(
                &service(r#""pullPolicy":"always""#),
                r#"{"name":"b","image":"x","pullPolicy":"missing"},{"name":"c","image":"x","pullPolicy":"never"}"#,
            ),
            &[],
        ),
        case(
            "unknown pull policy",
            doc("", &service(r#""pullPolicy":"if-not-present""#)),
            &[r#"itemListElement[0].pullPolicy: "if-not-present" is not a pull policy (missing, always, never)"#],
        ),
        case(
            "waiting for a job to complete is valid",
            two(
                &service(r#""softwareRequirements":[{"name":"migrate","condition":"completed"},{"name":"db","condition":"healthy","waitForHealthy":true},{"name":"cache","condition":"started"}]"#),
                r#"{"name":"migrate","image":"x","restartPolicy":"on-failure"},{"name":"db","image":"x"},{"name":"cache","image":"x"}"#,
            ),
            &[],
        ),
        case(
            "unknown dependency condition",
            two(
                &service(r#""softwareRequirements":[{"name":"db","condition":"ready"}]"#),
                r#"{"name":"db","image":"x"}"#,
            ),
            &[r#"itemListElement[0].softwareRequirements[0].condition: "ready" is not a dependency condition (started, healthy, completed)"#],
        ),
        case(
            "condition contradicting waitForHealthy",
            two(
                &service(r#""softwareRequirements":[{"name":"db","condition":"completed","waitForHealthy":true},{"name":"db","condition":"healthy","waitForHealthy":false}]"#),
                r#"{"name":"db","image":"x","restartPolicy":"never"}"#,
            ),
            &[
                "itemListElement[0].softwareRequirements[0].condition: condition completed contradicts waitForHealthy: true",
                "itemListElement[0].softwareRequirements[1].condition: condition healthy contradicts waitForHealthy: false",
            ],
        ),
        case(
            "waiting for a service that is always restarted to complete",
            two(
                &service(r#""softwareRequirements":[{"name":"db","condition":"completed"}]"#),
                r#"{"name":"db","image":"x"}"#,
            ),
            &[r#"itemListElement[0].softwareRequirements[0].condition: "db" never completes: its restartPolicy is always"#],
        ),
        case(
            "reserved label",
            doc("", &service(r#""labels":{"berth.stack":"other","team":"a"}"#)),
            &[r#"itemListElement[0].labels: "berth.stack" is reserved"#],
        ),
        case(
            "entrypoint, user, workingDir, capDrop and hostIp as Docker takes them",
            doc("", &service(r#""entrypoint":["/bin/sh","-c"],"user":"1000:1000","workingDir":"/srv","capDrop":["NET_RAW","CAP_CHOWN","ALL"],"ports":[{"containerPort":80,"hostPort":8080,"hostIp":"127.0.0.1"},{"containerPort":81,"hostPort":8081,"hostIp":"::1"}]"#)),
            &[],
        ),
        case(
            "empty entrypoint",
            doc("", &service(r#""entrypoint":[]"#)),
            &["itemListElement[0].entrypoint: an entrypoint needs a program"],
        ),
        case(
            "user with spaces or too many colons",
            doc("", &service(r#""user":"a b""#)),
            &[r#"itemListElement[0].user: "a b" is not a user"#],
        ),
        case(
            "user with three parts",
            doc("", &service(r#""user":"1:2:3""#)),
            &[r#"itemListElement[0].user: "1:2:3" is not a user"#],
        ),
        case(
            "relative workingDir",
            doc("", &service(r#""workingDir":"srv""#)),
            &[r#"itemListElement[0].workingDir: "srv" is not an absolute path"#],
        ),
        case(
            "capability that is not one",
            doc("", &service(r#""capDrop":["net raw"]"#)),
            &[r#"itemListElement[0].capDrop[0]: "net raw" is not a capability"#],
        ),
        case(
            "hostIp that is not an address",
            doc("", &service(r#""ports":[{"containerPort":80,"hostPort":8080,"hostIp":"localhost"}]"#)),
            &[r#"itemListElement[0].ports[0].hostIp: "localhost" is not an IP address"#],
        ),
        case(
            "hostIp without a hostPort",
            doc("", &service(r#""ports":[{"containerPort":80,"hostIp":"127.0.0.1"}]"#)),
            &["itemListElement[0].ports[0].hostIp: a hostIp needs a hostPort"],
        ),
    ];

    let mut failures = Vec::new();
    for (name, json, expected) in &cases {
        let found = problems(json);
        if expected.is_empty() && !found.is_empty() {
            failures.push(format!("{name}: expected valid, got {found:#?}"));
        }
        if !expected.is_empty() && found.is_empty() {
            failures.push(format!("{name}: expected invalid, got no problems"));
        }
        for want in expected.iter() {
            if !found.iter().any(|p| p.contains(want)) {
                failures.push(format!(
                    "{name}: no problem contains {want:?} in {found:#?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_time_and_size_beyond_its_bound_is_reported_with_its_path() {
    let json = doc(
        r#""deployment":{"hostConstraints":[{"minCPU":1e300,"minMemory":18446744073709551615}],
                         "update":{"delay":1e20,"monitor":1e20,"deadline":1e20}}"#,
        &service(
            r#""healthCheck":{"type":"command","command":"true","interval":1e20,"timeout":1e20,"startPeriod":1e20},
               "potentialAction":[{"name":"m","command":"true","timeout":1e20}],
               "update":{"delay":604801,"monitor":1e300,"deadline":1e20},
               "resources":{"cpus":1e20,"memoryMb":67108865},
               "hostConstraints":{"minCPU":4097,"minMemory":18446744073709551615}"#,
        ),
    );
    let found = problems(&json);
    let paths = [
        "deployment.hostConstraints[0].minCPU",
        "deployment.hostConstraints[0].minMemory",
        "deployment.update.delay",
        "deployment.update.monitor",
        "deployment.update.deadline",
        "itemListElement[0].healthCheck.interval",
        "itemListElement[0].healthCheck.timeout",
        "itemListElement[0].healthCheck.startPeriod",
        "itemListElement[0].potentialAction[0].timeout",
        "itemListElement[0].update.delay",
        "itemListElement[0].update.monitor",
        "itemListElement[0].update.deadline",
        "itemListElement[0].resources.cpus",
        "itemListElement[0].resources.memoryMb",
        "itemListElement[0].hostConstraints.minCPU",
        "itemListElement[0].hostConstraints.minMemory",
    ];
    for path in paths {
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{path}: "))),
            "{path} not reported: {found:#?}"
        );
    }
    assert_eq!(found.len(), paths.len(), "{found:#?}");
}

#[test]
fn each_cycle_is_reported_once() {
    let json = doc(
        "",
        r#"{"name":"a","image":"x","requirements":["b"]},
           {"name":"b","image":"x","requirements":["c"]},
           {"name":"c","image":"x","requirements":["a"]}"#,
    );
    let found = problems(&json);
    let cycles: Vec<_> = found.iter().filter(|p| p.contains("cycle")).collect();
    assert_eq!(
        cycles,
        ["itemListElement[0]: dependency cycle: a -> b -> c -> a"]
    );
}
