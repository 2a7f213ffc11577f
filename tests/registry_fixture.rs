//! The private-registry fixture (`tests/common/registry.rs`) works for real: the engine
//! pulls what it pushed with the right credentials only, a tag pushed again pulls as the
//! new image, and the access log counts every attempt with credentials. It prints what
//! Docker says for each failure, which is what Berth gets back from the engine.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::{docker_config_json, login, Registry};

/// `docker --config DIR pull REF`; Docker's stderr on failure.
fn pull(config: &Path, reference: &str) -> Result<(), String> {
    let out = Command::new("docker")
        .arg("--config")
        .arg(config)
        .args(["pull", "-q", reference])
        .output()
        .expect("run docker pull");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn config_dir(json: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(json) = json {
        std::fs::write(dir.path().join("config.json"), json).expect("write config.json");
    }
    dir
}

#[test]
fn registry_fixture_push_pull_auth_and_request_counts() {
    let reg = Registry::start("alice", "s3cret");
    let reference = reg.push("berth-test/busybox:latest", "team/app:1");
    assert_eq!(reference, format!("{}/team/app:1", reg.addr));
    reg.forget_local(&reference);
    // One per attempt that has credentials; see `Registry::requests`.
    let attempts = "\"HEAD /v2/team/app/manifests/1 ";

    let good = config_dir(None);
    login(good.path(), &reg.addr, &reg.user, &reg.password).expect("login");
    pull(good.path(), &reference).expect("pull with the right credentials");
    assert_eq!(reg.wait_requests(attempts, 1), 1, "{}", reg.access_log());
    reg.forget_local(&reference);

    // Written by hand: `docker login` checks credentials and would refuse these.
    let wrong = config_dir(Some(&docker_config_json(&reg.addr, "alice", "wrong")));
    let err = pull(wrong.path(), &reference).expect_err("pull with wrong credentials");
    println!("wrong credentials: {err}");
    assert!(err.contains("unauthorized"), "{err}");
    assert_eq!(reg.wait_requests(attempts, 2), 2, "{}", reg.access_log());

    let manifests = reg.requests("/v2/team/app/manifests/");
    let none = config_dir(None);
    let err = pull(none.path(), &reference).expect_err("pull without credentials");
    println!("no credentials: {err}");
    assert!(err.contains("no basic auth credentials"), "{err}");
    // The engine gives up on the 401 to `GET /v2/`, before asking for the manifest.
    assert_eq!(reg.requests("/v2/team/app/manifests/"), manifests);

    let missing = format!("{}/team/app:nope", reg.addr);
    let err = pull(good.path(), &missing).expect_err("pull of a missing tag");
    println!("missing tag: {err}");
    assert!(err.contains("manifest unknown"), "{err}");
    assert!(reg.wait_requests("/v2/team/app/manifests/nope", 1) >= 1);

    let nobody = format!("127.0.0.1:{}/team/app:1", common::free_port());
    let err = pull(good.path(), &nobody).expect_err("pull from nothing listening");
    println!("nothing listening: {err}");
    assert!(err.contains("connection refused"), "{err}");

    // A tag pushed again pulls as the new image; its config.json works as it is.
    let id = reg.push_new_version("team/app:1", "v2");
    let own = config_dir(Some(&reg.docker_config_json()));
    pull(own.path(), &reference).expect("pull the new version");
    let got = common::inspect(&reference, "{{.Id}}");
    assert_eq!(got, id, "access log:\n{}", reg.access_log());
}
