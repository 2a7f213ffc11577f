//! The `berth` binary's user-facing contract: `berth validate` output and exit codes.

use std::process::Command;

fn berth(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run berth");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn validate_exits_zero_for_every_shipped_example() {
    for f in [
        "hello",
        "three-tier",
        "spread",
        "constraints",
        "eve-infisical",
        "migrate-then-app",
    ] {
        let (code, out) = berth(&["validate", &format!("examples/{f}.json")]);
        assert_eq!(code, 0, "{f}: {out}");
        assert!(out.contains("valid"), "{out}");
    }
}

#[test]
fn validate_exits_one_and_prints_every_problem_with_its_path() {
    let (code, out) = berth(&["validate", "examples/invalid/many-errors.json"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().count() >= 5, "{out}");
    assert!(
        out.contains("itemListElement[2].ports[0].containerPort: 70000 is not a port (1-65535)"),
        "{out}"
    );
    let (code, out) = berth(&["validate", "examples/invalid/cycle.json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("a -> b -> a") || out.contains("b -> a -> b"),
        "{out}"
    );
}

#[test]
fn validate_exits_two_for_an_unreadable_file_and_reports_the_others() {
    let (code, out) = berth(&[
        "validate",
        "examples/hello.json",
        "examples/no-such-file.json",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no-such-file.json: cannot read"), "{out}");
    assert!(out.contains("hello.json: valid"), "{out}");
}
