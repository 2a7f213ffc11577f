//! `berth apply`: validate a stack file (or convert a compose file) and write it to
//! `stacks/<id>`, or with `--dry-run` show where the scheduler would place it and write
//! nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::common::{connect, emit, EtcdArgs, StormGuardArgs};
use super::convert::{convert_text, directory_of};
use berth::compose;
use berth::controller::decide::dry_run;
use berth::spec;
use berth::store::keys;
use berth::view;

#[derive(Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    #[arg(short = 'f', long, env = "BERTH_APPLY_FILE")]
    file: PathBuf,
    #[arg(long, env = "BERTH_STACK_ID")]
    id: Option<String>,
    /// Show where the scheduler would place each slot (the same planner), and write
    /// nothing.
    #[arg(long, env = "BERTH_DRY_RUN")]
    dry_run: bool,
    /// For a compose file: place its services over many hosts with this strategy (auto,
    /// spread, datacenter), as `berth convert --placement` does.
    #[arg(long, value_parser = super::convert::parse_placement)]
    placement: Option<berth::spec::PlacementStrategy>,
    #[command(flatten)]
    storm_guard: StormGuardArgs,
}

/// Exit 1 for an invalid file, with its problems on stderr. A compose file (told by its
/// content) is converted first, as `berth convert` does, with its warnings on stderr.
pub async fn run(args: ApplyArgs) -> Result<ExitCode> {
    let file = &args.file;
    let mut bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut id = args.id.clone();
    if compose::detect(&bytes) == compose::Format::Compose {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let dir = directory_of(file).with_context(|| format!("locating {}", file.display()))?;
        let options = compose::Options {
            id: args.id.clone(),
            profiles: Vec::new(),
            placement: args.placement,
        };
        let converted = match convert_text(file, &text, &dir, &options) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        };
        id = Some(converted.id.clone());
        bytes = converted.to_json().into_bytes();
    }
    if let Err(problems) = spec::parse_stack(&bytes) {
        for p in &problems {
            eprintln!("{}: {p}", file.display());
        }
        return Ok(ExitCode::from(1));
    }
    let id = match id {
        Some(i) => i,
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned(),
    };
    if !spec::is_dns_label(&id) {
        bail!("stack id {id:?} is not a DNS label; pass --id");
    }
    let store = connect(&args.etcd).await?;
    if args.dry_run {
        let (kvs, revision) = store.list("").await?;
        let mut world = view::world_of(kvs, revision);
        let preview = match dry_run(
            &mut world,
            &id,
            bytes,
            args.storm_guard.max_unavailable_fraction,
        ) {
            Ok(p) => p,
            Err(problems) => {
                for p in &problems {
                    eprintln!("{}: {p}", file.display());
                }
                return Ok(ExitCode::from(1));
            }
        };
        emit(&view::render_apply_preview(&preview, view::DEFAULT_WIDTH))?;
        println!("(dry run: nothing written)");
        return Ok(ExitCode::SUCCESS);
    }
    let rev = store.put(&keys::stack(&id), bytes).await?;
    println!("stack {id} applied at revision {rev}");
    Ok(ExitCode::SUCCESS)
}
