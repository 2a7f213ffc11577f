//! Every shipped example stack validates (or, under `invalid/`, fails for its stated reason),
//! so the examples in the docs can never rot.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use berth::spec::parse_stack;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// Every problem of an invalid example, rendered as users see it.
fn problems_of(path: &Path) -> Vec<String> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    match parse_stack(&bytes) {
        Ok(_) => panic!("{} should be invalid but validated", path.display()),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_example_stack_is_valid() {
    let files = json_files(&examples_dir());
    assert!(
        files.iter().any(|f| f.ends_with("eve-infisical.json")),
        "EVE's published definition must be among the examples"
    );
    for path in files {
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if let Err(problems) = parse_stack(&bytes) {
            panic!("{} should be valid: {problems:#?}", path.display());
        }
    }
}

#[test]
fn every_invalid_example_fails_for_its_stated_reason() {
    let dir = examples_dir().join("invalid");
    let files = json_files(&dir);
    assert!(
        !files.is_empty(),
        "no invalid examples in {}",
        dir.display()
    );
    for path in files {
        let problems = problems_of(&path);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let mentions = |needle: &str| problems.iter().any(|p| p.contains(needle));
        let reason_found = match name {
            "cycle" => mentions("a -> b -> a") || mentions("b -> a -> b"),
            "unknown-dependency" => mentions("postgres"),
            "manual-without-target" => mentions("targetHost"),
            "truncated" => mentions("JSON"),
            // many-errors has its own test below; a new invalid example only has to be invalid.
            _ => true,
        };
        assert!(reason_found, "{name}: unexpected problems {problems:#?}");
    }
}

#[test]
fn many_errors_reports_at_least_five_distinct_messages() {
    let problems = problems_of(&examples_dir().join("invalid/many-errors.json"));
    let distinct: BTreeSet<&String> = problems.iter().collect();
    assert!(distinct.len() >= 5, "only {problems:#?}");
}
