//! `berth registry login|logout`: the login agents use to pull from an image registry,
//! kept at `registries/<registry>`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};

use super::common::{connect, EtcdArgs};
use berth::registry::{parse_registry, RegistryLogin};
use berth::store::keys;

#[derive(Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Store the login agents use to pull images from REGISTRY (a host[:port], or a URL
    /// such as https://index.docker.io/v1/); it wins over a Docker config file's.
    Login(LoginArgs),
    /// Delete the stored login for REGISTRY.
    Logout { registry: String },
}

#[derive(Args)]
struct LoginArgs {
    registry: String,
    /// The user to log in as.
    #[arg(long, short)]
    username: String,
    /// Read the password (or a `{{secret:NAME}}` reference) from stdin; there is no flag
    /// for the password itself, which `ps` and shell history would show.
    #[arg(long)]
    password_stdin: bool,
}

/// `logout` exits 1 when there was no login for the registry.
pub async fn run(args: RegistryArgs) -> Result<ExitCode> {
    match args.action {
        Action::Login(login) => {
            // Before connecting: a bad name or a missing password is reported as such.
            let registry = parse_registry(&login.registry).map_err(|e| anyhow!(e))?;
            if login.username.is_empty() {
                bail!("--username is empty");
            }
            if !login.password_stdin {
                bail!("pass the password on stdin with --password-stdin (there is no flag for it: `ps` and shell history would show it)");
            }
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the password from stdin")?;
            let password = one_line(&input);
            if password.is_empty() {
                bail!("the password on stdin is empty");
            }
            let value = RegistryLogin {
                username: login.username,
                password: password.to_owned(),
            };
            let store = connect(&args.etcd).await?;
            let key = keys::registry(&registry);
            store.put(&key, serde_json::to_vec(&value)?).await?;
            println!(
                "stored the login for {registry} (username {}) at {}{key}",
                value.username,
                store.prefix()
            );
        }
        Action::Logout { registry } => {
            let registry = parse_registry(&registry).map_err(|e| anyhow!(e))?;
            let store = connect(&args.etcd).await?;
            let key = keys::registry(&registry);
            if store.delete(&key).await? == 0 {
                eprintln!(
                    "there was no login for {registry} at {}{key}",
                    store.prefix()
                );
                return Ok(ExitCode::from(1));
            }
            println!(
                "deleted the login for {registry} at {}{key}",
                store.prefix()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stdin without the one newline `echo` or a file ends it with.
fn one_line(input: &str) -> &str {
    input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(input)
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_trims_one_trailing_newline_only() {
        let cases = [
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw", "pw"),
            ("pw\n\n", "pw\n"),
            (" pw \n", " pw "),
            ("\n", ""),
        ];
        for (input, want) in cases {
            assert_eq!(one_line(input), want, "{input:?}");
        }
    }
}
