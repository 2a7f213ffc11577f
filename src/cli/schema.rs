//! `berth schema`: write the JSON Schemas and CRDs generated from Berth's types.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct SchemaArgs {
    #[command(subcommand)]
    what: SchemaCommand,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// CustomResourceDefinitions and JSON Schemas for stacks, hosts and stack statuses.
    Crds {
        /// Directory to write the files into; created if missing.
        #[arg(long, env = "BERTH_SCHEMA_OUT", default_value = "crds")]
        out: PathBuf,
    },
}

pub fn run(args: SchemaArgs) -> Result<ExitCode> {
    let SchemaCommand::Crds { out } = args.what;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for file in berth::schema::files().context("rendering the CRDs as YAML")? {
        let path = out.join(&file.name);
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
