//! The release tarball (`scripts/dist.sh`, what `make dist` runs on the release binary):
//! unpacked as a user would, its checksum holds, the binary in it reports the version and
//! revision of the build, and the units, env files, compose file, CRDs and install notes
//! a user installs from are in it.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_release_tarball_unpacks_to_a_berth_that_reports_this_build_and_everything_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dist.sh");
    let tarball =
        run(Command::new(script).args([env!("CARGO_BIN_EXE_berth"), out.to_str().unwrap()]));
    let binary = run(Command::new(env!("CARGO_BIN_EXE_berth")).arg("--version"));
    let version = binary.split_whitespace().nth(1).expect("a version");
    let name = format!("berth-{version}-{}-linux", std::env::consts::ARCH);
    assert_eq!(
        Path::new(&tarball).file_name().unwrap().to_str().unwrap(),
        format!("{name}.tar.gz")
    );

    // The checksum file beside it verifies it, as `sha256sum -c` does for a user.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.ends_with(&format!("  {name}.tar.gz\n")), "{sums}");
    run(Command::new("sha256sum")
        .current_dir(&out)
        .args(["-c", "SHA256SUMS"]));

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&unpacked));
    let root = unpacked.join(&name);
    let from_tarball = run(Command::new(root.join("bin/berth")).arg("--version"));
    assert_eq!(from_tarball, binary, "the same build, revision included");
    assert!(from_tarball.contains("(rev "), "{from_tarball}");

    for file in [
        "systemd/berth-agent.service",
        "systemd/berth-controller.service",
        "systemd/agent.env.example",
        "systemd/controller.env.example",
        "compose/agent.yaml",
        "crds/stack.schema.json",
        "crds/host.schema.json",
        "SECURITY.md",
    ] {
        assert!(root.join(file).is_file(), "{file} is missing from {name}");
    }
    // The units start the binary where the install notes put it.
    for unit in ["berth-agent.service", "berth-controller.service"] {
        let text = std::fs::read_to_string(root.join("systemd").join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/berth "), "{unit}");
    }
    let install = std::fs::read_to_string(root.join("INSTALL.md")).unwrap();
    for needle in [
        "## Installing on several hosts",
        "install -m 0755 bin/berth /usr/local/bin/berth",
        "systemctl enable --now berth-agent",
        "docker run -d --name berth-agent",
        "helm install",
    ] {
        assert!(install.contains(needle), "INSTALL.md lacks {needle:?}");
    }
}
