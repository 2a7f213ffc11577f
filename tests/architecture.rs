//! The house rules that the compiler does not check, read from the source: imports inside
//! `src/` run one way (no module cycle), only `store/` talks to etcd, and only
//! `agent/runtime/` talks to Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `agent::plan` for `src/agent/plan.rs`; `agent` for `src/agent/mod.rs`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its tests and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file's `use` items name, with groups spread out: `use crate::{a, b::c};`
/// gives `crate::a` and `crate::b::c`.
fn use_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in code.split(';') {
        let item = item.trim();
        let Some(rest) = item
            .strip_prefix("use ")
            .or_else(|| item.strip_prefix("pub use "))
            .or_else(|| item.strip_prefix("pub(crate) use "))
            .or_else(|| item.strip_prefix("pub(super) use "))
        else {
            continue;
        };
        let rest: String = rest.split_whitespace().collect();
        match rest.split_once("::{") {
            Some((base, group)) => {
                let group = group.trim_end_matches('}');
                let mut depth = 0;
                let mut part = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.push(format!("{base}::{part}"));
                            part.clear();
                            continue;
                        }
                        _ => {}
                    }
                    part.push(c);
                }
                if !part.is_empty() {
                    out.push(format!("{base}::{part}"));
                }
            }
            None => out.push(rest),
        }
    }
    out
}

/// The module a `use` path in module `from` points into, if it is one of `modules`.
fn target(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = from.split("::").filter(|s| !s.is_empty()).collect();
    match *segs.first()? {
        "crate" => {
            base.clear();
            segs.remove(0);
        }
        "super" => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        "self" => {
            segs.remove(0);
        }
        _ => return None,
    }
    (0..=segs.len()).rev().find_map(|n| {
        let m = base
            .iter()
            .chain(segs[..n].iter())
            .copied()
            .collect::<Vec<_>>()
            .join("::");
        modules.contains(&m).then_some(m)
    })
}

fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .filter(|f| !f.ends_with("main.rs") && !f.to_string_lossy().contains("/cli/"))
        .map(|f| {
            (
                module_of(&src, f),
                code(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .map(|(m, t)| (if m == "lib" { String::new() } else { m }, t))
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in &texts {
        let deps = edges.entry(m.clone()).or_default();
        for path in use_paths(text) {
            if let Some(t) = target(m, &path, &modules) {
                // A module and its own children or parent are one room.
                let related = t.starts_with(&format!("{m}::"))
                    || m.starts_with(&format!("{t}::"))
                    || t.is_empty()
                    || &t == m;
                if !related {
                    deps.insert(t);
                }
            }
        }
    }
    (edges, texts)
}

/// The first cycle found, if any (depth-first, three colours).
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(m.to_owned(), 1);
        stack.push(m.to_owned());
        for d in edges.get(m).into_iter().flatten() {
            match state.get(d).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == d).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(d, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(m, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn imports_inside_src_run_one_way() {
    let (edges, _) = graph();
    assert!(edges.contains_key("agent::plan"), "the source was read");
    assert!(
        edges["agent::plan"].contains("agent::actual"),
        "imports were read: {:?}",
        edges["agent::plan"]
    );
    assert_eq!(cycle(&edges), None, "an import cycle");
}

#[test]
fn a_cycle_is_found_where_there_is_one() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, d)| (m.to_owned(), d.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn only_store_talks_to_etcd_and_only_the_runtime_to_docker() {
    let (_, texts) = graph();
    for (m, text) in &texts {
        if text.contains("etcd_client::") {
            assert!(
                m == "store" || m.starts_with("store::"),
                "{m} uses etcd_client"
            );
        }
        if text.contains("bollard::") {
            assert!(m.starts_with("agent::runtime"), "{m} uses bollard");
        }
    }
}

/// Every repository path the docs name (a top-level `*.md`, or a path under one of the
/// repository's folders) exists: a pointer to a file nobody can open is a broken promise.
#[test]
fn every_file_the_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    const FOLDERS: [&str; 11] = [
        "src/",
        "tests/",
        "charts/",
        "crds/",
        "examples/",
        "scripts/",
        "benches/",
        "docs/",
        "deploy/",
        "dashboards/",
        "testimage/",
    ];
    let mut missing = Vec::new();
    for doc in ["README.md", "ARCHITECTURE.md", "SECURITY.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let path = quoted.trim_end_matches(['.', ',', ':']);
            let named = (path.ends_with(".md") && !path.contains(' '))
                || FOLDERS.iter().any(|f| path.starts_with(f));
            if named && !path.contains(['<', '*', ' ']) && !root.join(path).exists() {
                missing.push(format!("{doc}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but not in the repository: {missing:?}"
    );
}
