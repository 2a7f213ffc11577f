//! `berth hosts`: every host's readiness, place, capacity and what its slots reserve.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::common::{connect, emit, EtcdArgs, Output, ViewArgs};

#[derive(Args)]
pub struct HostsArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    view: ViewArgs,
}

pub async fn run(args: HostsArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    let (kvs, revision) = store.list("").await?;
    let hosts = berth::view::hosts(&berth::view::world_of(kvs, revision));
    emit(&match args.view.output {
        Output::Table => berth::view::render_hosts(&hosts, args.view.width),
        Output::Json => serde_json::to_string_pretty(&hosts)? + "\n",
    })?;
    Ok(ExitCode::SUCCESS)
}
