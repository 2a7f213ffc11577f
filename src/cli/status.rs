//! `berth status`: the deployment map or the status objects, once or, with `--watch`,
//! redrawn on every change.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::common::{connect, emit, EtcdArgs, Output, ViewArgs};
use berth::controller::world::World;
use berth::store::{Reflector, Store};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// Only this stack.
    id: Option<String>,
    #[command(flatten)]
    view: ViewArgs,
    /// Redraw on every change until Ctrl-C (JSON: one line per change).
    #[arg(short, long, env = "BERTH_WATCH")]
    watch: bool,
}

pub async fn run(args: StatusArgs) -> Result<ExitCode> {
    let store = connect(&args.etcd).await?;
    if args.watch {
        watch(store, args.id, args.view).await
    } else {
        once(store, args.id, args.view).await
    }
}

/// `berth status` once: the map, or the status objects as JSON.
async fn once(store: Store, id: Option<String>, view: ViewArgs) -> Result<ExitCode> {
    let (kvs, revision) = store.list("").await?;
    let world = berth::view::world_of(kvs, revision);
    if let Some(i) = &id {
        if !berth::view::has_stack(&world, i) {
            eprintln!("no stack {i}");
            return Ok(ExitCode::from(1));
        }
    }
    match render(&world, id.as_deref(), &view, true)? {
        Some(text) => {
            emit(&text)?;
        }
        None => {
            eprintln!("stack {} has no status yet", id.unwrap_or_default());
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth status --watch`: list-then-watch every key and redraw whenever what would be
/// printed changes (most report writes change nothing visible).
async fn watch(store: Store, id: Option<String>, view: ViewArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let cancel = CancellationToken::new();
    // Dropped on return, so the watch stops with the command.
    let _stop = cancel.clone().drop_guard();
    let reflector = Reflector::spawn(store, String::new(), cancel.clone());
    let mut changes = reflector.subscribe();
    let redraw = view.output == Output::Table && std::io::stdout().is_terminal();
    let mut last = None;
    // One listener for the whole watch, so a Ctrl-C while drawing is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            changed = changes.changed() => if changed.is_err() { break },
        }
        let Some((world, revision)) = reflector
            .read(|c| (World::decode_for_view(c), c.revision))
            .await
        else {
            continue;
        };
        // A stack that does not exist yet may be created while we watch: show `null`.
        let text =
            render(&world, id.as_deref(), &view, false)?.unwrap_or_else(|| "null\n".to_owned());
        if last.as_ref() == Some(&text) {
            continue;
        }
        let frame = if redraw {
            // Clear the screen and home the cursor, like watch(1).
            format!(
                "\x1b[H\x1b[2Jrevision {revision}; redraws on every change; Ctrl-C stops\n\n{text}"
            )
        } else if last.is_some() && view.output == Output::Table {
            format!("\n{text}")
        } else {
            text.clone()
        };
        if !emit(&frame)? {
            break;
        }
        last = Some(text);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `berth status` prints for `world`; `None` when JSON for stack `id` is asked
/// and it has no status. `pretty` JSON for one-shot output, one line per change otherwise.
fn render(
    world: &World,
    id: Option<&str>,
    view: &ViewArgs,
    pretty: bool,
) -> Result<Option<String>> {
    fn json<T: serde::Serialize>(v: &T, pretty: bool) -> Result<String> {
        let text = if pretty {
            serde_json::to_string_pretty(v)?
        } else {
            serde_json::to_string(v)?
        };
        Ok(text + "\n")
    }
    Ok(match (view.output, id) {
        (Output::Table, _) => Some(berth::view::render_deployment(
            &berth::view::deployment_map(world, id),
            view.width,
        )),
        (Output::Json, Some(i)) => match world.statuses.get(i) {
            Some((Some(st), _)) => Some(json(st, pretty)?),
            _ => None,
        },
        (Output::Json, None) => Some(json(&berth::view::statuses(world), pretty)?),
    })
}
