//! `berth rollout pause|resume`: an operator's hold on a stack's rollouts, kept at
//! `pause/<id>` for the leading controller to honour.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::common::{connect, EtcdArgs};
use berth::controller::rollout::{Rollout, RolloutState};
use berth::store::keys;

#[derive(Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// No further batch starts (the one in flight finishes); a rollout that starts later
    /// is held too, until `resume`.
    Pause { id: String },
    /// Go on from where the pause held it.
    Resume { id: String },
}

/// Exit 1 when there is no such stack (pause) or it was not paused (resume).
pub async fn run(args: RolloutArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    match args.action {
        Action::Pause { id } => {
            if store.get(&keys::stack(&id)).await?.is_none() {
                eprintln!("no stack {id}");
                return Ok(ExitCode::from(1));
            }
            store.put(&keys::pause(&id), b"{}".to_vec()).await?;
            println!("rollouts of {id} paused: no further batch starts; `berth rollout resume {id}` goes on");
        }
        Action::Resume { id } => {
            if store.delete(&keys::pause(&id)).await? == 0 {
                eprintln!("rollouts of {id} were not paused");
                return Ok(ExitCode::from(1));
            }
            println!("rollouts of {id} resumed");
            // A pause after failures is the rollout's own; say how to get out of it.
            let record = store.get(&keys::rollout(&id)).await?;
            if let Some(r) = record.and_then(|kv| serde_json::from_slice::<Rollout>(&kv.value).ok())
            {
                if r.state == RolloutState::Paused {
                    println!(
                        "its rollout of revision {} stopped after failures, which a resume does not undo: put a fixed spec, or `berth rollback {id}`",
                        r.to_revision
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
