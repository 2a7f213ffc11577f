//! `berth etcd-rbac setup`: least-privilege etcd roles and users for the controller, an
//! operator and each host's agent, then etcd authentication switched on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use super::common::{connect, EtcdArgs};
use berth::spec;

#[derive(Args)]
pub struct EtcdRbacArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(subcommand)]
    action: RbacAction,
}

#[derive(Subcommand)]
enum RbacAction {
    /// Create roles and users (controller, operator, one agent per host), write each new
    /// user's random password to OUT/<user>.password (mode 600), and enable etcd auth.
    Setup {
        /// Host ids to create agent users for, comma separated.
        #[arg(long, env = "BERTH_RBAC_HOSTS", value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// Directory for the password files.
        #[arg(long, env = "BERTH_RBAC_OUT")]
        out: PathBuf,
        /// File holding the password to give etcd's `root` user.
        #[arg(long, env = "BERTH_RBAC_ROOT_PASSWORD_FILE")]
        root_password_file: PathBuf,
    },
}

pub async fn run(args: EtcdRbacArgs) -> Result<ExitCode> {
    let RbacAction::Setup {
        hosts,
        out,
        root_password_file,
    } = args.action;
    for h in &hosts {
        if !spec::is_host_id(h) {
            bail!("host id {h:?} is not valid");
        }
    }
    let root = std::fs::read_to_string(&root_password_file)
        .with_context(|| format!("reading {}", root_password_file.display()))?;
    let store = connect(&args.etcd).await?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let roles = berth::store::rbac::plan(&hosts);
    let mut users = Vec::new();
    for r in &roles {
        let file = out.join(format!("{}.password", r.name));
        let password = random_password()?;
        write_secret_file(&file, &password)?;
        users.push((r.name.clone(), password, r.name.clone()));
    }
    berth::store::rbac::apply(&store, &roles, &users, root.trim_end()).await?;
    for (user, _, _) in &users {
        println!(
            "user {user}: password in {}",
            out.join(format!("{user}.password")).display()
        );
    }
    println!("etcd authentication enabled");
    // etcd roles do not cover logs: they never pass through etcd.
    println!(
        "container logs (berth logs) are read from each agent's API, not etcd: a reader needs a client certificate signed by the CA the agents trust (--api-client-ca), given to berth logs as --tls-cert/--tls-key with --tls-ca"
    );
    Ok(ExitCode::SUCCESS)
}

/// 24 random bytes from the kernel, hex encoded.
fn random_password() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write a file only its owner can read.
fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
