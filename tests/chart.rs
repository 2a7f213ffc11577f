//! The Helm chart in charts/berth and the systemd units in deploy/systemd: files parse,
//! values match their schema and templates, only real flags and variables are used, and
//! `helm lint` and `helm template` pass where a helm binary is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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

#[test]
fn values_yaml_validates_against_values_schema_json() {
    let schema: Value =
        serde_json::from_str(&read(&chart().join("values.schema.json"))).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("values.schema.json compiles");
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
fn every_template_block_is_closed() {
    for (name, text) in templates() {
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{name}: unbalanced {{{{ }}}}"
        );
        let actions: Vec<&str> = text
            .split("{{")
            .skip(1)
            .map(|a| a.trim_start_matches('-').trim_start())
            .collect();
        let opened = actions
            .iter()
            .filter(|a| {
                ["if ", "with ", "range ", "define "]
                    .iter()
                    .any(|k| a.starts_with(k))
            })
            .count();
        let closed = actions
            .iter()
            .filter(|a| a.starts_with("end ") || a.starts_with("end}") || a.starts_with("end-"))
            .count();
        assert_eq!(
            opened, closed,
            "{name}: {opened} blocks opened, {closed} ended"
        );
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

/// The `--flag` names in a template's argument lines (`- --flag=...`).
fn flags_in(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("- --"))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect::<String>()
        })
        .filter(|flag| !flag.is_empty())
        .collect()
}

#[test]
fn every_flag_the_chart_passes_exists_in_berth_help() {
    for (template, subcommand) in [
        ("controller-deployment.yaml", "controller"),
        ("agent-daemonset.yaml", "agent"),
    ] {
        let help = berth_help(subcommand);
        let flags = flags_in(&read(&chart().join("templates").join(template)));
        assert!(flags.len() >= 5, "{template}: only {flags:?} found");
        for flag in flags {
            assert!(
                help.contains(&format!("--{flag} ")) || help.contains(&format!("--{flag}\n")),
                "{template} passes --{flag}, which `berth {subcommand}` does not have"
            );
        }
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

fn helm(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("helm").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running helm: {e}"),
    }
}

#[test]
fn helm_lints_and_renders_the_chart_when_helm_is_installed() {
    let dir = chart();
    let dir = dir.to_str().expect("UTF-8 path");
    if helm(&["version", "--short"]).is_none() {
        // Not a pass in disguise: say plainly that this part did not run.
        println!("skipped: helm not installed; `helm lint` and `helm template` did not run");
        return;
    }
    let ok = |args: &[&str]| {
        let out = helm(args).expect("helm is installed");
        assert!(
            out.status.success(),
            "helm {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["lint", "--strict", dir]);
    let rendered = ok(&["template", "t", dir]);
    assert!(
        rendered.contains("kind: StatefulSet"),
        "bundled etcd not rendered"
    );
    let everything = ok(&[
        "template",
        "t",
        dir,
        "--set",
        "agent.enabled=true,metrics.serviceMonitor.enabled=true,etcdTls.enabled=true,etcdTls.secretName=etcd-client",
    ]);
    assert!(everything.contains("kind: DaemonSet"));
    assert!(everything.contains("kind: ServiceMonitor"));
    assert!(
        !everything.contains("--etcd-ca"),
        "a flag Berth does not have is passed"
    );
    let external = ok(&[
        "template",
        "t",
        dir,
        "--set",
        "etcd.enabled=false,externalEtcd.endpoints={http://10.0.0.1:2379}",
    ]);
    assert!(external.contains("--etcd-endpoints=http://10.0.0.1:2379"));
    let out = helm(&["template", "t", dir, "--set", "etcd.enabled=false"]).expect("helm");
    assert!(!out.status.success(), "no etcd at all renders");
}
