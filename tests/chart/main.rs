//! The Helm chart in charts/berth and the systemd units in deploy/systemd: files parse,
//! values match their schema and templates, the rendered manifests pass the flags and
//! mounts the values ask for and only flags Berth has, and every variable is one Berth
//! reads.
//!
//! helm cannot be installed here, so [`template`] renders the chart with the subset of
//! Go templates it uses; `helm_template_agrees_with_the_test_renderer` (ignored without
//! helm) checks that renderer against the real one.

mod template;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use template::Templates;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/berth")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn parse_yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn values() -> Value {
    parse_yaml(&chart().join("values.yaml"))
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn templates() -> Vec<(String, String)> {
    files_under(&chart().join("templates"))
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, read(&p))
        })
        .collect()
}

#[test]
fn every_non_template_yaml_and_json_file_of_the_chart_parses() {
    let mut checked = Vec::new();
    for path in files_under(&chart()) {
        if path.starts_with(chart().join("templates")) {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                parse_yaml(&path);
            }
            Some("json") => {
                serde_json::from_str::<Value>(&read(&path))
                    .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            }
            _ => continue,
        }
        checked.push(path);
    }
    assert!(
        checked.len() >= 3,
        "expected Chart.yaml, values.yaml and values.schema.json, checked {checked:?}"
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart_yaml = parse_yaml(&chart().join("Chart.yaml"));
    assert_eq!(
        chart_yaml["apiVersion"], "v2",
        "Helm 3 charts are apiVersion v2"
    );
    assert_eq!(chart_yaml["name"], "berth");
    assert_eq!(
        chart_yaml["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "bump appVersion in charts/berth/Chart.yaml with the crate version"
    );
}

fn schema() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&read(&chart().join("values.schema.json"))).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("values.schema.json compiles")
}

#[test]
fn values_yaml_validates_against_values_schema_json() {
    let validator = schema();
    let values = values();
    let errors: Vec<String> = validator
        .iter_errors(&values)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "values.yaml does not match values.schema.json:\n{}",
        errors.join("\n")
    );

    // The schema must catch mistakes too, or it checks nothing.
    let mut wrong = values.clone();
    wrong["controller"]["replicas"] = Value::from("two");
    assert!(!validator.is_valid(&wrong), "a string replica count passes");
    let mut unknown = values;
    unknown["controller"]["replicaCount"] = Value::from(2);
    assert!(!validator.is_valid(&unknown), "a misspelled key passes");
}

/// Every `.Values.a.b.c` a template mentions, as "a.b.c".
fn values_paths(text: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for (at, _) in text.match_indices(".Values.") {
        let rest = &text[at + ".Values.".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let path = path.trim_end_matches('.');
        if !path.is_empty() {
            paths.insert(path.to_owned());
        }
    }
    paths
}

#[test]
fn every_values_path_a_template_uses_exists_in_values_yaml() {
    let values = values();
    let mut missing = Vec::new();
    let mut used = 0;
    for (name, text) in templates() {
        for path in values_paths(&text) {
            used += 1;
            let found = path
                .split('.')
                .try_fold(&values, |node, key| node.get(key))
                .is_some();
            if !found {
                missing.push(format!("{name}: .Values.{path}"));
            }
        }
    }
    assert!(
        used > 20,
        "only {used} .Values paths found; is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "not in values.yaml:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_included_template_is_defined() {
    let all: Vec<(String, String)> = templates();
    let defined: BTreeSet<String> = all
        .iter()
        .flat_map(|(_, text)| quoted_after(text, "define "))
        .collect();
    for (name, text) in &all {
        for used in quoted_after(text, "include ")
            .into_iter()
            .chain(quoted_after(text, "template "))
        {
            assert!(
                defined.contains(&used),
                "{name} includes {used:?}, which no template defines"
            );
        }
    }
}

/// The quoted names after `keyword`, as in `include "berth.fullname"`.
fn quoted_after(text: &str, keyword: &str) -> Vec<String> {
    text.match_indices(keyword)
        .filter_map(|(at, _)| {
            let rest = text[at + keyword.len()..].strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

#[test]
fn every_template_parses() {
    if let Err(e) = Templates::parse(&templates()) {
        panic!("{e}");
    }
}

/// `berth <subcommand> --help`, from the binary this test run built.
fn berth_help(subcommand: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([subcommand, "--help"])
        .output()
        .expect("berth runs");
    assert!(out.status.success(), "berth {subcommand} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_flag_the_chart_passes_exists_in_berth_help() {
    // Everything on, so that every conditional flag is rendered.
    let rendered = render(&format!(
        "{EXTERNAL_TLS},agent.enabled=true,agent.datacenter=dc1,agent.labels.disk=ssd"
    ));
    let mut seen = BTreeSet::new();
    for kind in ["Deployment", "DaemonSet"] {
        let args = container_args(rendered.only(kind));
        let (subcommand, flags) = args.split_first().expect("a subcommand");
        let help = berth_help(subcommand);
        for arg in flags {
            let flag = arg.split('=').next().unwrap_or_default();
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "the {kind} passes {flag}, which `berth {subcommand}` does not have"
            );
            seen.insert(flag.to_owned());
        }
    }
    for flag in [
        "--etcd-ca",
        "--etcd-cert",
        "--etcd-key",
        "--label",
        "--datacenter",
    ] {
        assert!(seen.contains(flag), "{flag} not rendered; saw {seen:?}");
    }
}

#[test]
fn every_variable_in_the_systemd_env_files_is_one_berth_reads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    for (unit, env_file, subcommand) in [
        ("berth-agent.service", "agent.env.example", "agent"),
        (
            "berth-controller.service",
            "controller.env.example",
            "controller",
        ),
    ] {
        let unit_text = read(&dir.join(unit));
        assert!(
            unit_text.contains("Restart=always"),
            "{unit}: no Restart=always"
        );
        assert!(
            unit_text.contains(&format!("EnvironmentFile=/etc/berth/{subcommand}.env")),
            "{unit}: no EnvironmentFile"
        );
        assert!(
            unit_text.contains(&format!("ExecStart=/usr/local/bin/berth {subcommand}")),
            "{unit}: does not run berth {subcommand}"
        );
        let help = berth_help(subcommand);
        let mut seen = 0;
        for line in read(&dir.join(env_file)).lines() {
            // Commented-out lines are optional settings and must be real names too.
            let line = line.trim_start_matches('#');
            let Some((name, _)) = line.split_once('=') else {
                continue;
            };
            if !name.starts_with("BERTH_") {
                continue;
            }
            seen += 1;
            assert!(
                help.contains(&format!("[env: {name}=")),
                "{env_file} sets {name}, which `berth {subcommand}` does not read"
            );
        }
        assert!(seen >= 4, "{env_file}: only {seen} BERTH_ variables");
    }
}

// Rendering: what `helm template t charts/berth --set ...` would print.

/// External etcd members, over plain http.
const EXTERNAL: &str =
    "etcd.enabled=false,externalEtcd.endpoints={http://10.0.0.1:2379,http://10.0.0.2:2379}";
/// External etcd members over https, with a client certificate.
const EXTERNAL_TLS: &str = "etcd.enabled=false,\
    externalEtcd.endpoints={https://10.0.0.1:2379,https://10.0.0.2:2379},\
    etcdTls.enabled=true,etcdTls.secretName=etcd-client";

/// The rendered manifests, each parsed, and the rendered NOTES.txt.
struct Rendered {
    manifests: Vec<Value>,
    notes: String,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.manifests
            .iter()
            .filter(|m| m["kind"] == kind)
            .collect()
    }

    /// The one manifest of `kind`.
    fn only(&self, kind: &str) -> &Value {
        match self.of_kind(kind).as_slice() {
            [one] => one,
            all => panic!("{} manifests of kind {kind}", all.len()),
        }
    }
}

/// Renders the chart as `helm template t charts/berth --set <set>` does: values.yaml with
/// `set` over it, checked against values.schema.json, then every template but the `_`
/// helpers. An error is what helm would fail with: a schema mismatch, `required` or `fail`.
fn try_render(set: &str) -> Result<Rendered, String> {
    let mut values = values();
    for (key, value) in parse_set(set) {
        let (parents, leaf) = key.rsplit_once('.').unwrap_or(("", &key));
        let parent = parents
            .split('.')
            .filter(|k| !k.is_empty())
            .try_fold(&mut values, |node, k| node.get_mut(k))
            .unwrap_or_else(|| panic!("--set {key}: no {parents} in values.yaml"));
        parent[leaf] = value;
    }
    let validator = schema();
    if let Some(e) = validator.iter_errors(&values).next() {
        return Err(format!(
            "values don't meet the schema: {}: {e}",
            e.instance_path()
        ));
    }
    let chart_yaml = parse_yaml(&chart().join("Chart.yaml"));
    let data = json!({
        "Values": values,
        "Release": {"Name": "t", "Namespace": "default", "Service": "Helm"},
        "Chart": {
            "Name": chart_yaml["name"],
            "Version": chart_yaml["version"],
            "AppVersion": chart_yaml["appVersion"],
        },
    });
    let files = templates();
    let parsed = Templates::parse(&files).unwrap_or_else(|e| panic!("{e}"));
    let mut rendered = Rendered {
        manifests: Vec::new(),
        notes: String::new(),
    };
    for (name, _) in files.iter().filter(|(name, _)| !name.starts_with('_')) {
        let text = parsed.render(name, &data)?;
        if name == "NOTES.txt" {
            rendered.notes = text;
            continue;
        }
        for document in documents(&text) {
            let manifest: Value = serde_saphyr::from_str(&document)
                .unwrap_or_else(|e| panic!("{name} renders invalid YAML: {e}\n{document}"));
            rendered.manifests.push(manifest);
        }
    }
    Ok(rendered)
}

fn render(set: &str) -> Rendered {
    try_render(set).unwrap_or_else(|e| panic!("--set {set}: {e}"))
}

/// The YAML documents of a rendered file, without the empty ones (a disabled template).
fn documents(text: &str) -> Vec<String> {
    text.split("\n---")
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(str::to_owned)
        .collect()
}

/// Helm's `--set a.b=v,c={x,y}` for what these tests set: booleans, integers, lists of
/// strings and strings.
fn parse_set(set: &str) -> Vec<(String, Value)> {
    let mut pairs = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in set.char_indices().chain([(set.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                pairs.push(&set[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let scalar = |v: &str| match v {
        "true" | "false" => Value::from(v == "true"),
        _ => v.parse::<i64>().map_or(Value::from(v), Value::from),
    };
    pairs
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("--set {pair}: no ="));
            let value = match value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
                Some(list) => list.split(',').map(Value::from).collect(),
                None => scalar(value),
            };
            (key.to_owned(), value)
        })
        .collect()
}

fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

fn container_args(workload: &Value) -> Vec<String> {
    let args = container(workload)["args"]
        .as_array()
        .unwrap_or_else(|| panic!("no args in {workload}"));
    args.iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

/// The entries of a list that may be absent, by their `name`.
fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item["name"] == name)
}

#[test]
fn etcd_tls_passes_the_certificate_flags_and_mounts_the_secret_in_controller_and_agent() {
    let with_tls = render(&format!("{EXTERNAL_TLS},agent.enabled=true"));
    let without = render(&format!("{EXTERNAL},agent.enabled=true"));
    for kind in ["Deployment", "DaemonSet"] {
        let workload = with_tls.only(kind);
        let args = container_args(workload);
        for flag in [
            "--etcd-endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379",
            "--etcd-ca=/etc/berth/etcd-tls/ca.crt",
            "--etcd-cert=/etc/berth/etcd-tls/tls.crt",
            "--etcd-key=/etc/berth/etcd-tls/tls.key",
        ] {
            assert!(
                args.iter().any(|a| a == flag),
                "{kind}: no {flag} in {args:?}"
            );
        }
        let mount = named(&container(workload)["volumeMounts"], "etcd-tls");
        assert_eq!(
            mount,
            Some(
                &json!({"name": "etcd-tls", "mountPath": "/etc/berth/etcd-tls", "readOnly": true})
            ),
            "{kind}: the certificates are not mounted where the flags point"
        );
        let volume = named(&workload["spec"]["template"]["spec"]["volumes"], "etcd-tls");
        assert_eq!(
            volume,
            Some(&json!({"name": "etcd-tls", "secret": {"secretName": "etcd-client"}})),
            "{kind}: the volume is not the etcdTls secret"
        );

        // Off, none of it: the flags would name files that are not there.
        let workload = without.only(kind);
        let args = container_args(workload);
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--etcd-c") || a.starts_with("--etcd-key")),
            "{kind}: TLS flags without etcdTls: {args:?}"
        );
        assert_eq!(
            named(&container(workload)["volumeMounts"], "etcd-tls"),
            None
        );
        assert_eq!(
            named(&workload["spec"]["template"]["spec"]["volumes"], "etcd-tls"),
            None
        );
    }
}

/// Every container the chart starts that is not the bundled etcd, with its workload's
/// kind: these run Berth.
fn berth_containers(rendered: &Rendered) -> Vec<(String, &Value)> {
    let etcd_image = values()["etcd"]["image"]["repository"]
        .as_str()
        .expect("etcd's image")
        .to_owned();
    rendered
        .manifests
        .iter()
        .flat_map(|m| {
            let kind = m["kind"].as_str().unwrap_or_default().to_owned();
            m["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(
                    m["spec"]["template"]["spec"]["initContainers"]
                        .as_array()
                        .into_iter()
                        .flatten(),
                )
                .map(move |c| (kind.clone(), c))
        })
        .filter(|(_, c)| {
            !c["image"]
                .as_str()
                .is_some_and(|i| i.starts_with(&etcd_image))
        })
        .collect()
}

#[test]
fn every_container_that_runs_berth_uses_berth_at_the_charts_app_version() {
    let chart_yaml = parse_yaml(&chart().join("Chart.yaml"));
    let app_version = chart_yaml["appVersion"].as_str().expect("appVersion");
    for set in ["agent.enabled=true", EXTERNAL_TLS] {
        let set = format!("{set},agent.enabled=true");
        let rendered = render(&set);
        let berth = berth_containers(&rendered);
        let mut kinds: Vec<&str> = berth.iter().map(|(k, _)| k.as_str()).collect();
        kinds.sort();
        assert_eq!(kinds, ["DaemonSet", "Deployment"], "{set}");
        for (kind, c) in &berth {
            assert_eq!(
                c["image"],
                format!("berth:{app_version}"),
                "{kind} with {set}: the image `make image` builds"
            );
            let args = c["args"].as_array().expect("args");
            assert!(
                ["agent", "controller"].contains(&args[0].as_str().unwrap_or_default()),
                "{kind}: a berth subcommand first (the entrypoint is berth): {args:?}"
            );
        }
    }
    // A registry of the user's own, as values.yaml says.
    let pushed =
        render("agent.enabled=true,image.repository=registry.example.com/berth,image.tag=9.9.9");
    for (kind, c) in berth_containers(&pushed) {
        assert_eq!(c["image"], "registry.example.com/berth:9.9.9", "{kind}");
    }
}

#[test]
fn etcd_tls_with_the_bundled_etcd_fails_to_render() {
    // The bundled etcd serves plain http, and Berth refuses TLS options for http:// URLs:
    // the controllers would crash-loop instead of the install failing.
    let err = try_render("etcdTls.enabled=true,etcdTls.secretName=etcd-client")
        .err()
        .expect("etcdTls with the bundled etcd renders");
    assert!(err.contains("bundled etcd serves plain http"), "{err}");
}

#[test]
fn etcd_tls_without_a_secret_name_fails_to_render() {
    let err = try_render(&EXTERNAL_TLS.replace("etcdTls.secretName=etcd-client", ""))
        .err()
        .expect("etcdTls without a secret renders");
    assert!(err.contains("etcdTls.secretName is required"), "{err}");
}

#[test]
fn external_etcd_endpoints_are_passed_to_controller_and_agent_and_no_etcd_is_bundled() {
    let rendered = render(&format!("{EXTERNAL},agent.enabled=true"));
    for kind in ["Deployment", "DaemonSet"] {
        let args = container_args(rendered.only(kind));
        assert!(
            args.iter()
                .any(|a| a == "--etcd-endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379"),
            "{kind}: {args:?}"
        );
    }
    assert!(rendered.of_kind("StatefulSet").is_empty());
    assert!(
        rendered
            .notes
            .contains("http://10.0.0.1:2379,http://10.0.0.2:2379"),
        "NOTES.txt does not say which etcd:\n{}",
        rendered.notes
    );
}

#[test]
fn no_etcd_at_all_fails_to_render() {
    let err = try_render("etcd.enabled=false")
        .err()
        .expect("neither a bundled nor an external etcd renders");
    assert!(
        err.contains("externalEtcd.endpoints must list the etcd client URLs"),
        "{err}"
    );
}

#[test]
fn the_defaults_run_two_controllers_on_a_bundled_three_member_etcd() {
    let rendered = render("");
    assert!(
        rendered.of_kind("DaemonSet").is_empty(),
        "agents are opt-in"
    );
    assert!(rendered.of_kind("ServiceMonitor").is_empty());
    let controller = rendered.only("Deployment");
    assert_eq!(controller["metadata"]["name"], "t-berth-controller");
    assert_eq!(controller["spec"]["replicas"], 2);
    let etcd = rendered.only("StatefulSet");
    assert_eq!(etcd["spec"]["replicas"], 3);
    let member = |i| format!("t-berth-etcd-{i}.t-berth-etcd-headless.default.svc.cluster.local");
    let endpoints: Vec<String> = (0..3)
        .map(|i| format!("http://{}:2379", member(i)))
        .collect();
    let args = container_args(controller);
    assert!(
        args.contains(&format!("--etcd-endpoints={}", endpoints.join(","))),
        "the controllers do not list every member: {args:?}"
    );
    let peers: Vec<String> = (0..3)
        .map(|i| format!("t-berth-etcd-{i}=http://{}:2380", member(i)))
        .collect();
    let command = &container(etcd)["command"];
    assert!(
        command
            .as_array()
            .expect("etcd's command")
            .contains(&Value::from(format!(
                "--initial-cluster={}",
                peers.join(",")
            ))),
        "{command}"
    );
}

fn helm(args: &[&str]) -> std::process::Output {
    Command::new("helm")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running helm {}: {e}", args.join(" ")))
}

#[test]
#[ignore = "needs a helm binary; run with --ignored where helm is installed"]
fn helm_template_agrees_with_the_test_renderer() {
    let dir = chart();
    let dir = dir.to_str().expect("UTF-8 path");
    let lint = helm(&["lint", "--strict", dir]);
    assert!(
        lint.status.success(),
        "helm lint:\n{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let by_kind_and_name = |mut manifests: Vec<Value>| {
        manifests.sort_by_key(|m| (m["kind"].to_string(), m["metadata"]["name"].to_string()));
        manifests
    };
    let everything =
        format!("{EXTERNAL_TLS},agent.enabled=true,metrics.serviceMonitor.enabled=true");
    for set in [
        "",
        EXTERNAL,
        &everything,
        "etcd.enabled=false",
        "etcdTls.enabled=true,etcdTls.secretName=etcd-client",
    ] {
        let mut args = vec!["template", "t", dir];
        if !set.is_empty() {
            args.extend(["--set", set]);
        }
        let out = helm(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match try_render(set) {
            Ok(ours) => {
                assert!(out.status.success(), "helm template --set {set}:\n{stderr}");
                let theirs = documents(&String::from_utf8_lossy(&out.stdout))
                    .iter()
                    .map(|d| serde_saphyr::from_str(d).expect("helm renders YAML"))
                    .collect();
                assert_eq!(
                    by_kind_and_name(theirs),
                    by_kind_and_name(ours.manifests),
                    "--set {set}: helm (left) and the test renderer (right) differ"
                );
            }
            Err(ours) => assert!(
                // Without the "<file>: " in front, which helm words differently.
                !out.status.success()
                    && stderr.contains(ours.split_once(": ").map_or(&*ours, |m| m.1)),
                "--set {set}: the test renderer fails with {ours:?}, helm with:\n{stderr}"
            ),
        }
    }
}
