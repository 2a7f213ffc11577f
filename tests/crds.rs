//! The generated schemas in `crds/`: current, structural, and in agreement with `berth validate`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use berth::schema;
use berth::spec::{self, Condition, Endpoint, HostRegistration, Phase, ServiceStatus, StackStatus};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The committed stack schema: the file users point their editors at.
fn stack_validator() -> jsonschema::Validator {
    let schema = read_json(&repo().join("crds/stack.schema.json"));
    jsonschema::validator_for(&schema).expect("crds/stack.schema.json compiles")
}

/// Every schema error for `bytes`, or one saying it is not JSON at all.
fn schema_errors(validator: &jsonschema::Validator, bytes: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) => vec![format!("not JSON: {e}")],
        Ok(doc) => validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect(),
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn committed_crds_match_what_the_code_generates() {
    let generated = schema::files().expect("schemas render");
    let mut stale = Vec::new();
    for file in &generated {
        let path = repo().join("crds").join(&file.name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != file.contents {
            stale.push(file.name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "crds/{{{}}} differ from what the Rust types generate; run `make crds` and commit the result",
        stale.join(",")
    );

    let expected: BTreeSet<String> = generated.into_iter().map(|f| f.name).collect();
    let leftovers: Vec<String> = std::fs::read_dir(repo().join("crds"))
        .expect("crds/ exists")
        .map(|entry| file_name(&entry.expect("directory entry").path()))
        .filter(|n| n.ends_with(".crd.yaml") || n.ends_with(".schema.json"))
        .filter(|n| !expected.contains(n))
        .collect();
    assert!(
        leftovers.is_empty(),
        "crds/ holds generated-looking files the code no longer writes: {leftovers:?}; delete them"
    );
}

#[test]
fn crd_yaml_parses_back_to_the_generated_documents() {
    for crd in schema::crds() {
        let path = repo().join("crds").join(&crd.file);
        let text = std::fs::read_to_string(&path).expect("committed CRD");
        let parsed: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", crd.file));
        assert_eq!(parsed, crd.document, "{} round trip", crd.file);
    }
}

/// Kubernetes' structural schema rules, as far as they concern what Berth generates.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(node) = node.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    let open = node.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    match node.get("type") {
        Some(Value::String(_)) => {}
        None if open => {}
        other => problems.push(format!("{path}: type is {other:?}")),
    }
    for key in node.keys() {
        if key.starts_with('$')
            || ["if", "then", "else", "const", "propertyNames"].contains(&key.as_str())
        {
            problems.push(format!("{path}: {key} is not allowed in a CRD schema"));
        }
    }
    if node.contains_key("properties") && node.contains_key("additionalProperties") {
        problems.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        if values.iter().any(Value::is_null) {
            problems.push(format!("{path}: null in enum"));
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_structural(child, &format!("{path}.{name}"), problems);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get(key).filter(|c| c.is_object()) {
            check_structural(child, &format!("{path}.{key}"), problems);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if branch.get("type").is_some() || branch.get("description").is_some() {
                problems.push(format!("{path}.{key}: a branch sets type or description"));
            }
        }
    }
}

#[test]
fn crd_schemas_are_structural() {
    let mut problems = Vec::new();
    for crd in schema::crds() {
        let doc = &crd.document;
        assert_eq!(doc["apiVersion"], "apiextensions.k8s.io/v1", "{}", crd.file);
        assert_eq!(doc["kind"], "CustomResourceDefinition", "{}", crd.file);
        let version = &doc["spec"]["versions"][0];
        assert_eq!(version["storage"], true, "{}", crd.file);
        let root = &version["schema"]["openAPIV3Schema"];
        check_structural(root, &crd.file, &mut problems);
        assert!(
            root["properties"]["spec"]["properties"].is_object(),
            "{}: spec has no properties",
            crd.file
        );
    }
    assert!(
        problems.is_empty(),
        "not structural:\n{}",
        problems.join("\n")
    );
}

#[test]
fn crd_fields_carry_the_rust_doc_comments_as_descriptions() {
    let stack = schema::crds()
        .into_iter()
        .find(|c| c.file == "stack.crd.yaml")
        .expect("a Stack CRD");
    let service = &stack.document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["spec"]["properties"]["itemListElement"]["items"];
    assert_eq!(
        service["description"],
        "One `SoftwareApplication` of the stack."
    );
    assert_eq!(
        service["properties"]["replicas"]["description"],
        "Number of containers for this service (default 1)."
    );
}

#[test]
fn json_schemas_are_valid_draft_2020_12_schemas() {
    for name in ["stack", "host", "stack-status"] {
        let schema = read_json(&repo().join(format!("crds/{name}.schema.json")));
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("crds/{name}.schema.json is not a valid JSON Schema: {e}");
        }
    }
}

#[test]
fn every_valid_example_passes_the_stack_schema_and_berth_validate() {
    let validator = stack_validator();
    let examples = json_files(&repo().join("examples"));
    assert!(!examples.is_empty(), "no examples found");
    for path in examples {
        let bytes = std::fs::read(&path).expect("example readable");
        let errors = schema_errors(&validator, &bytes);
        assert!(
            errors.is_empty(),
            "{} fails the schema: {errors:#?}",
            path.display()
        );
        if let Err(problems) = spec::parse_stack(&bytes) {
            panic!("{} fails berth validate: {problems:?}", path.display());
        }
    }
}

/// Invalid examples whose problem JSON Schema can express; the schema must reject them.
const REJECTED_BY_SCHEMA: &[&str] = &[
    "many-errors.json",
    "truncated.json",
    "manual-without-target.json",
];

/// Invalid examples whose problem is a cross-reference between services, which only
/// `berth validate` checks (see crds/README.md).
const LEFT_TO_BERTH_VALIDATE: &[&str] = &["cycle.json", "unknown-dependency.json"];

#[test]
fn every_invalid_example_is_classified() {
    for path in json_files(&repo().join("examples/invalid")) {
        let name = file_name(&path);
        assert!(
            REJECTED_BY_SCHEMA.contains(&name.as_str())
                || LEFT_TO_BERTH_VALIDATE.contains(&name.as_str()),
            "examples/invalid/{name} is new: add it to REJECTED_BY_SCHEMA or LEFT_TO_BERTH_VALIDATE"
        );
    }
}

#[test]
fn invalid_examples_fail_the_schema_where_json_schema_can_express_the_rule() {
    let validator = stack_validator();
    for name in REJECTED_BY_SCHEMA {
        let bytes = std::fs::read(repo().join("examples/invalid").join(name)).expect("readable");
        assert!(
            !schema_errors(&validator, &bytes).is_empty(),
            "{name} passes the schema"
        );
        assert!(
            spec::parse_stack(&bytes).is_err(),
            "{name} passes berth validate"
        );
    }
}

#[test]
fn many_errors_example_fails_the_schema_at_every_place_berth_validate_reports() {
    let validator = stack_validator();
    let bytes = std::fs::read(repo().join("examples/invalid/many-errors.json")).expect("readable");
    let errors = schema_errors(&validator, &bytes).join("\n");
    for place in [
        "/deployment/placementStrategy",
        "/itemListElement/0/name",
        "/itemListElement/1/image",
        "/itemListElement/2/ports/0/containerPort",
        "/itemListElement/3/healthCheck/type",
    ] {
        assert!(
            errors.contains(place),
            "no schema error at {place}:\n{errors}"
        );
    }
}

fn with_services(services: Value) -> Vec<u8> {
    let doc = json!({"@type": "ItemList", "name": "t", "itemListElement": services});
    serde_json::to_vec(&doc).expect("serializes")
}

#[test]
fn cross_reference_rules_are_left_to_berth_validate() {
    let validator = stack_validator();
    let mut cases: Vec<(String, Vec<u8>)> = LEFT_TO_BERTH_VALIDATE
        .iter()
        .map(|name| {
            let bytes =
                std::fs::read(repo().join("examples/invalid").join(name)).expect("readable");
            (name.to_string(), bytes)
        })
        .collect();
    cases.push((
        "duplicate service names".into(),
        with_services(json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}])),
    ));
    cases.push((
        "one host port published twice on one host".into(),
        with_services(json!([
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "b", "image": "x", "ports": [{"containerPort": 81, "hostPort": 8080}]}
        ])),
    ));
    cases.push((
        "an action targets an unknown service".into(),
        with_services(json!([{"name": "a", "image": "x",
            "potentialAction": [{"name": "m", "target": "nope", "command": ["true"]}]}])),
    ));
    cases.push((
        "a service depends on itself".into(),
        with_services(json!([{"name": "a", "image": "x", "requirements": ["a"]}])),
    ));
    cases.push((
        "waiting for a service that is always restarted to complete".into(),
        with_services(json!([{"name": "a", "image": "x"},
            {"name": "b", "image": "x",
             "softwareRequirements": [{"name": "a", "condition": "completed"}]}])),
    ));
    cases.push((
        "a condition that waitForHealthy contradicts".into(),
        with_services(json!([{"name": "a", "image": "x"},
            {"name": "b", "image": "x",
             "softwareRequirements": [{"name": "a", "condition": "started", "waitForHealthy": true}]}])),
    ));
    for (name, bytes) in cases {
        // The schema cannot see these; if it ever can, move the case and crds/README.md.
        let errors = schema_errors(&validator, &bytes);
        assert!(
            errors.is_empty(),
            "{name}: the schema now rejects it: {errors:?}"
        );
        assert!(
            spec::parse_stack(&bytes).is_err(),
            "{name}: berth validate accepts it"
        );
    }
}

/// A one-service stack with `field` of the service set to `value`.
fn service_with(field: &str, value: Value) -> Vec<u8> {
    let mut service = json!({"name": "web", "image": "berth-test/busybox:latest",
        "ports": [{"containerPort": 8080}]});
    service[field] = value;
    with_services(json!([service]))
}

#[test]
fn schema_and_berth_validate_agree_on_single_field_changes() {
    let validator = stack_validator();
    let long_name = "a".repeat(63);
    let too_long_name = "a".repeat(64);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("plain service", service_with("replicas", json!(1))),
        (
            "service name not a DNS label",
            service_with("name", json!("Bad Name!")),
        ),
        (
            "service name ends in a dash",
            service_with("name", json!("web-")),
        ),
        (
            "service name of 63 characters",
            service_with("name", json!(long_name)),
        ),
        (
            "service name of 64 characters",
            service_with("name", json!(too_long_name)),
        ),
        ("empty service name", service_with("name", json!(""))),
        ("blank image", service_with("image", json!("  "))),
        (
            "port 0",
            service_with("ports", json!([{"containerPort": 0}])),
        ),
        (
            "port 70000",
            service_with("ports", json!([{"containerPort": 70000}])),
        ),
        (
            "host port 65535",
            service_with("ports", json!([{"containerPort": 80, "hostPort": 65535}])),
        ),
        (
            "host port 65536",
            service_with("ports", json!([{"containerPort": 80, "hostPort": 65536}])),
        ),
        (
            "protocol sctp",
            service_with("ports", json!([{"containerPort": 80, "protocol": "sctp"}])),
        ),
        (
            "restart policy on-failure",
            service_with("restartPolicy", json!("on-failure")),
        ),
        (
            "restart policy unless-stopped",
            service_with("restartPolicy", json!("unless-stopped")),
        ),
        ("100 replicas", service_with("replicas", json!(100))),
        ("101 replicas", service_with("replicas", json!(101))),
        (
            "target host with a space",
            service_with("targetHost", json!("host 1")),
        ),
        (
            "target host FQDN",
            service_with("targetHost", json!("node-1.eu.example")),
        ),
        (
            "environment name with =",
            service_with("environment", json!({"A=B": "x"})),
        ),
        (
            "environment name fine",
            service_with("environment", json!({"A_B": "x"})),
        ),
        (
            "reserved label",
            service_with("labels", json!({"berth.stack": "x"})),
        ),
        (
            "ordinary label",
            service_with("labels", json!({"team": "x"})),
        ),
        (
            "relative mount target",
            service_with("volumeMounts", json!([{"source": "v", "target": "data"}])),
        ),
        (
            "volume mount without source",
            service_with("volumeMounts", json!([{"target": "/data"}])),
        ),
        (
            "tmpfs mount without source",
            service_with("volumeMounts", json!([{"target": "/tmp", "type": "tmpfs"}])),
        ),
        (
            "nfs mount",
            service_with(
                "volumeMounts",
                json!([{"source": "v", "target": "/d", "type": "nfs"}]),
            ),
        ),
        (
            "http check without path",
            service_with("healthCheck", json!({"type": "http"})),
        ),
        (
            "http check with relative path",
            service_with("healthCheck", json!({"type": "http", "path": "x"})),
        ),
        (
            "http check with path",
            service_with("healthCheck", json!({"type": "http", "path": "/"})),
        ),
        (
            "tcp check",
            service_with("healthCheck", json!({"type": "tcp"})),
        ),
        (
            "check without type",
            service_with("healthCheck", json!({"port": 8080})),
        ),
        (
            "command check without command",
            service_with("healthCheck", json!({"type": "command"})),
        ),
        (
            "command check",
            service_with(
                "healthCheck",
                json!({"type": "command", "command": ["true"]}),
            ),
        ),
        (
            "zero interval",
            service_with("healthCheck", json!({"type": "tcp", "interval": 0})),
        ),
        (
            "negative start period",
            service_with("healthCheck", json!({"type": "tcp", "startPeriod": -1})),
        ),
        (
            "interval of a day",
            service_with("healthCheck", json!({"type": "tcp", "interval": 86400})),
        ),
        (
            "interval of 1e20 seconds",
            service_with("healthCheck", json!({"type": "tcp", "interval": 1e20})),
        ),
        (
            "action timeout past a day",
            service_with(
                "potentialAction",
                json!([{"name": "m", "command": "true", "timeout": 86401}]),
            ),
        ),
        (
            "update deadline of a week",
            service_with("update", json!({"deadline": 604800})),
        ),
        (
            "update delay past a week",
            service_with("update", json!({"delay": 604801})),
        ),
        (
            "resources at their bounds",
            service_with("resources", json!({"cpus": 4096, "memoryMb": 67108864})),
        ),
        (
            "memoryMb past 64 TiB",
            service_with("resources", json!({"memoryMb": 67108865u64})),
        ),
        (
            "memoryMb of u64::MAX",
            service_with("resources", json!({"memoryMb": u64::MAX})),
        ),
        (
            "negative cpus",
            service_with("resources", json!({"cpus": -1})),
        ),
        (
            "minCPU past 4096",
            service_with("hostConstraints", json!({"minCPU": 4097})),
        ),
        (
            "action without command",
            service_with("potentialAction", json!([{"name": "m"}])),
        ),
        (
            "action with command",
            service_with("potentialAction", json!([{"name": "m", "command": "true"}])),
        ),
        (
            "endpoint type dns",
            service_with("serviceEndpoint", json!({"type": "dns"})),
        ),
        (
            "endpoint port 0",
            service_with("serviceEndpoint", json!({"exposedPort": 0})),
        ),
        ("null target host", service_with("targetHost", Value::Null)),
        ("no services", with_services(json!([]))),
    ];
    let mut disagreements = Vec::new();
    for (name, bytes) in cases {
        let schema_ok = schema_errors(&validator, &bytes).is_empty();
        let berth = spec::parse_stack(&bytes);
        if schema_ok != berth.is_ok() {
            disagreements.push(format!(
                "{name}: schema {}, berth validate {berth:?}",
                if schema_ok { "accepts" } else { "rejects" }
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn schema_enums_list_exactly_what_berth_validate_accepts() {
    let validator = stack_validator();
    let schema = read_json(&repo().join("crds/stack.schema.json"));
    // (where the enum sits in the schema, how to build a stack with a value there)
    type Build = fn(&str) -> Value;
    let fields: [(&str, Build); 8] = [
        (
            "/properties/desiredState/enum",
            |v| json!({"desiredState": v}),
        ),
        (
            "/properties/deployment/properties/mode/enum",
            |v| json!({"deployment": {"mode": v}}),
        ),
        (
            "/properties/deployment/properties/placementStrategy/enum",
            |v| json!({"deployment": {"placementStrategy": v}}),
        ),
        (
            "/$defs/Port/properties/protocol/enum",
            |v| json!({"svc": {"ports": [{"containerPort": 80, "protocol": v}]}}),
        ),
        (
            "/$defs/VolumeMount/properties/type/enum",
            |v| json!({"svc": {"volumeMounts": [{"source": "s", "target": "/t", "type": v}]}}),
        ),
        (
            "/$defs/Service/properties/healthCheck/properties/type/enum",
            |v| json!({"svc": {"healthCheck": {"type": v, "path": "/", "command": ["true"]}}}),
        ),
        (
            "/$defs/Service/properties/serviceEndpoint/properties/type/enum",
            |v| json!({"svc": {"serviceEndpoint": {"type": v}}}),
        ),
        (
            "/$defs/Service/properties/restartPolicy/enum",
            |v| json!({"svc": {"restartPolicy": v}}),
        ),
    ];
    for (pointer, build) in fields {
        let values = schema
            .pointer(pointer)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no enum at {pointer}"));
        let mut spellings: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        spellings.push("bogus");
        for value in spellings {
            let patch = build(value);
            let mut service = json!({"name": "web", "image": "i", "targetHost": "h",
                "ports": [{"containerPort": 80}]});
            if let Some(extra) = patch.get("svc").and_then(Value::as_object) {
                for (k, v) in extra {
                    service[k] = v.clone();
                }
            }
            let mut doc = json!({"itemListElement": [service]});
            for (k, v) in patch
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "svc")
            {
                doc[k] = v.clone();
            }
            let bytes = serde_json::to_vec(&doc).expect("serializes");
            let schema_ok = schema_errors(&validator, &bytes).is_empty();
            let berth_ok = spec::parse_stack(&bytes).is_ok();
            assert_eq!(schema_ok, value != "bogus", "{pointer} = {value:?}: schema");
            assert_eq!(
                berth_ok,
                value != "bogus",
                "{pointer} = {value:?}: berth validate"
            );
        }
    }
}

#[test]
fn a_status_like_the_controllers_validates_against_the_status_schema() {
    let schema = read_json(&repo().join("crds/stack-status.schema.json"));
    let validator = jsonschema::validator_for(&schema).expect("status schema compiles");
    let replica = ServiceStatus {
        host: Some("host-1".into()),
        container_id: Some("041f".into()),
        state: "running".into(),
        health: "healthy".into(),
        restarts: 0,
        endpoint: Some(Endpoint {
            host: "10.0.0.1".into(),
            port: 18080,
        }),
        message: None,
        exit_code: None,
        actions: vec![berth::spec::ActionStatus {
            name: "Run database migrations".into(),
            ok: true,
            exit_code: Some(0),
            message: None,
        }],
        image_id: Some("sha256:0a1b2c".into()),
        image_digest: Some("127.0.0.1:5000/team/app@sha256:3d4e5f".into()),
        pull: Some(berth::spec::PullProgress {
            bytes_done: 10,
            bytes_total: 20,
        }),
        image_drift: true,
        last_termination: Some(berth::spec::LastTermination {
            exit_code: Some(137),
            reason: berth::spec::TerminationReason::OomKilled,
            message: "out of memory (limit 256 MB)".into(),
            finished_at: Some("2026-11-22T09:12:20.123456789Z".into()),
            log_tail: "allocating\nmore".into(),
        }),
        replicas: Vec::new(),
    };
    let status = StackStatus {
        stack: "hello".into(),
        observed_revision: 3,
        phase: Phase::Running,
        message: "2/2 containers running".into(),
        problems: Vec::new(),
        conditions: vec![Condition {
            type_: "Valid".into(),
            status: spec::ConditionStatus::True,
            reason: "Valid".into(),
            message: String::new(),
            last_transition_time: "2026-11-22T09:12:21Z".into(),
        }],
        services: [(
            "web".to_owned(),
            ServiceStatus {
                replicas: vec![replica.clone(), replica.clone()],
                ..replica
            },
        )]
        .into_iter()
        .collect(),
        rollout: Some(spec::RolloutStatus {
            state: "RolledBack".into(),
            from_revision: 2,
            to_revision: 3,
            updated: 0,
            total: 2,
            failures: 1,
            message: "web: 1 of 2 replaced slot(s) failed; rolling back".into(),
            paused_by_operator: true,
        }),
    };
    let value = serde_json::to_value(&status).expect("serializes");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let mut wrong = value.clone();
    wrong["phase"] = json!("Sideways");
    assert!(!validator.is_valid(&wrong), "an unknown phase passes");
    let mut wrong = value.clone();
    wrong["rollout"]["state"] = json!("Sideways");
    assert!(
        !validator.is_valid(&wrong),
        "an unknown rollout state passes"
    );
    let mut wrong = value.clone();
    wrong["services"]["web"]["lastTermination"]["reason"] = json!("oom_killed");
    assert!(
        !validator.is_valid(&wrong),
        "an unknown termination reason passes"
    );
}

#[test]
fn a_host_registration_validates_against_the_host_schema() {
    let schema = read_json(&repo().join("crds/host.schema.json"));
    let validator = jsonschema::validator_for(&schema).expect("host schema compiles");
    let host = HostRegistration {
        id: "node-1.eu".into(),
        address: "10.0.0.1".into(),
        datacenter: Some("eu-1".into()),
        cpus: 4.0,
        memory_mb: 8192,
        ..HostRegistration::default()
    };
    let value = serde_json::to_value(&host).expect("serializes");
    assert!(validator.is_valid(&value), "{value}");
    // What an operator registering a host by hand most needs: id and address.
    assert!(!validator.is_valid(&json!({"id": "node-1"})));
}
