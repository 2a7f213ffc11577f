//! Embeds the git revision the binary was built from, so `berth --version` (and the
//! image's label) say exactly which source it is. A build outside a git checkout (a
//! source tarball) says `unknown`.

use std::process::Command;

fn main() {
    let revision = std::env::var("BERTH_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BERTH_GIT_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=BERTH_GIT_REVISION");
    // A new commit or checkout changes HEAD (or the ref it points at).
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
