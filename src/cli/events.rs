//! `berth events`: the recent events of every stack, or of one.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::common::{connect, emit, EtcdArgs, Output, ViewArgs};

#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    view: ViewArgs,
    /// Only this stack's events.
    id: Option<String>,
}

pub async fn run(args: EventsArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    let events = berth::events::list(&store, args.id.as_deref()).await?;
    emit(&match args.view.output {
        Output::Table => berth::view::render_events(&events, args.view.width),
        Output::Json => serde_json::to_string_pretty(&events)? + "\n",
    })?;
    Ok(ExitCode::SUCCESS)
}
