//! `berth delete`: remove `stacks/<id>`; the agents then remove its containers.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::common::{connect, EtcdArgs};
use berth::store::keys;

#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    id: String,
}

/// Exit 1 when there is no such stack.
pub async fn run(args: DeleteArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    let id = &args.id;
    if store.delete(&keys::stack(id)).await? == 0 {
        eprintln!("no stack {id}");
        return Ok(ExitCode::from(1));
    }
    println!("stack {id} deleted; its containers are being removed");
    Ok(ExitCode::SUCCESS)
}
