//! `berth validate`: check stack files offline and print every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use berth::spec;

#[derive(Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Exit 0 when every file is valid, 1 when one is invalid, 2 when one is unreadable;
/// every file is checked either way.
pub fn run(args: ValidateArgs) -> Result<ExitCode> {
    let mut worst = 0u8;
    for f in &args.files {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", f.display());
                worst = 2;
                continue;
            }
        };
        match spec::parse_stack(&bytes) {
            Ok(s) => println!(
                "{}: valid ({} service(s))",
                f.display(),
                s.item_list_element.len()
            ),
            Err(problems) => {
                for p in &problems {
                    println!("{}: {p}", f.display());
                }
                worst = worst.max(1);
            }
        }
    }
    Ok(ExitCode::from(worst))
}
