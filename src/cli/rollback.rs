//! `berth rollback`: write an earlier spec of a stack, from its history, back to the stack
//! key as a new revision (like `kubectl rollout undo`); it then rolls out like any change.

use std::io::{BufRead, IsTerminal, Write as _};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use super::common::{connect, EtcdArgs};
use berth::controller::history;
use berth::store::{keys, Expect, Write};
use berth::view;

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    id: String,
    /// The revision to go back to (see `berth history`); default: the last complete one
    /// before the current.
    #[arg(long)]
    to_revision: Option<i64>,
    /// Write without asking.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Exit 1 when there is nothing to go back to, the answer was no, or the stack changed
/// meanwhile.
pub async fn run(args: RollbackArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    let id = &args.id;
    let (key, entries) = super::history::read(&store, id).await?;
    let Some(key) = key else {
        eprintln!("no stack {id}");
        return Ok(ExitCode::from(1));
    };
    let current = key.mod_revision;
    let target = match args.to_revision {
        Some(n) => match entries.get(&n) {
            Some(e) => e,
            None => {
                let kept: Vec<String> = entries.keys().map(i64::to_string).collect();
                eprintln!(
                    "revision {n} of {id} is not in its history (kept: {})",
                    kept.join(", ")
                );
                return Ok(ExitCode::from(1));
            }
        },
        None => match history::last_stable_before(&entries, current) {
            Some(e) => e,
            None => {
                eprintln!("{id} has no complete revision before {current} to go back to (see `berth history {id}`)");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let now = String::from_utf8_lossy(&key.value);
    let Some(diff) = view::spec_diff(
        &now,
        &target.spec,
        &format!("stacks/{id} (revision {current})"),
        &format!("revision {}", target.revision),
    ) else {
        println!(
            "stack {id} already holds revision {}'s spec; nothing to write",
            target.revision
        );
        return Ok(ExitCode::SUCCESS);
    };
    print!("{diff}");
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not asking on a non-terminal: pass --yes to write");
        }
        print!(
            "write revision {}'s spec to stacks/{id}? [y/N] ",
            target.revision
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing written");
            return Ok(ExitCode::from(1));
        }
    }
    let written = store
        .write(&[Write::Put {
            key: keys::stack(id),
            value: target.spec.clone().into_bytes(),
            expect: Expect::Revision(current),
        }])
        .await?;
    if !written {
        eprintln!("stack {id} changed while rolling back (it is no longer at revision {current}); nothing written");
        return Ok(ExitCode::from(1));
    }
    let now = store
        .get(&keys::stack(id))
        .await?
        .map_or(0, |k| k.mod_revision);
    println!(
        "stack {id} rolled back to revision {}'s spec as revision {now}; it rolls out like any change (`berth status {id}`)",
        target.revision
    );
    Ok(ExitCode::SUCCESS)
}
