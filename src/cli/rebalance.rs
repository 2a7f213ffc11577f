//! `berth rebalance`: show how a stack would be placed afresh and, with `--apply`, ask
//! the leading controller to do it once.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::common::{connect, EtcdArgs, StormGuardArgs};
use berth::controller::decide::preview_rebalance;
use berth::store::keys;

#[derive(Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    stack: String,
    #[arg(long, env = "BERTH_REBALANCE_APPLY")]
    apply: bool,
    #[command(flatten)]
    storm_guard: StormGuardArgs,
}

/// Exit 1 when there is no such stack.
pub async fn run(args: RebalanceArgs) -> Result<ExitCode> {
    let stack = &args.stack;
    let store = connect(&args.etcd).await?;
    let (kvs, revision) = store.list("").await?;
    let world = berth::view::world_of(kvs, revision);
    if !world.stacks.contains_key(stack) {
        eprintln!("no stack {stack}");
        return Ok(ExitCode::from(1));
    }
    let preview = preview_rebalance(&world, stack, args.storm_guard.max_unavailable_fraction);
    if preview.moves.is_empty() {
        println!("stack {stack} is already placed as it would be afresh; nothing would move");
    }
    for m in &preview.moves {
        println!(
            "{}.{}: {} -> {}",
            m.slot.service, m.slot.replica, m.from, m.to
        );
    }
    for ((_, svc), why) in preview
        .unschedulable
        .iter()
        .filter(|((s, _), _)| s == stack)
    {
        println!("{svc}: unschedulable: {why}");
    }
    if args.apply && !preview.moves.is_empty() {
        store.put(&keys::rebalance(stack), b"{}".to_vec()).await?;
        println!("rebalance of {stack} requested; each replacement starts before its old copy is removed");
    } else if !args.apply {
        println!("(dry run: add --apply to move)");
    }
    Ok(ExitCode::SUCCESS)
}
