//! `berth history`: the revisions the controller kept of a stack, with their images and
//! how each rollout ended.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::common::{connect, emit, EtcdArgs, Output, ViewArgs};
use berth::controller::history::HistoryEntry;
use berth::store::{keys, Kv, Store};
use berth::view;

#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[command(flatten)]
    view: ViewArgs,
    id: String,
}

/// A stack's key (if it exists) and its kept revisions, by revision.
pub async fn read(store: &Store, id: &str) -> Result<(Option<Kv>, BTreeMap<i64, HistoryEntry>)> {
    let key = store.get(&keys::stack(id)).await?;
    let (kvs, revision) = store.list(&keys::history_of(id)).await?;
    let mut world = view::world_of(kvs, revision);
    let entries = world
        .history
        .remove(id)
        .unwrap_or_default()
        .into_iter()
        .map(|(rev, (e, _))| (rev, e))
        .collect();
    Ok((key, entries))
}

/// Exit 1 when the stack has neither a key nor a history.
pub async fn run(args: HistoryArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    let id = &args.id;
    let (key, entries) = read(&store, id).await?;
    if key.is_none() && entries.is_empty() {
        eprintln!("no stack {id}");
        return Ok(ExitCode::from(1));
    }
    emit(&match args.view.output {
        Output::Table => {
            view::render_history(&entries, key.map(|k| k.mod_revision), args.view.width)
        }
        Output::Json => serde_json::to_string_pretty(&entries.values().collect::<Vec<_>>())? + "\n",
    })?;
    Ok(ExitCode::SUCCESS)
}
