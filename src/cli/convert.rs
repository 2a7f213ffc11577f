//! `berth convert`: a compose file to a stack, on stdout or in a file, with a warning on
//! stderr for everything the stack does not carry. `berth apply` converts with the same
//! functions when it is handed a compose file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use berth::compose::{self, Converted, Failure, Options, Surroundings};

#[derive(Args)]
pub struct ConvertArgs {
    /// The compose file; `-` reads stdin. Default: the first of compose.yaml,
    /// compose.yml, docker-compose.yml, docker-compose.yaml in this directory.
    file: Option<PathBuf>,
    /// Stack id (default: the compose project name, made a DNS label).
    #[arg(long)]
    id: Option<String>,
    /// Write the stack here instead of stdout.
    #[arg(short = 'o', long)]
    out: Option<PathBuf>,
    /// Convert the services of this profile too (repeatable; COMPOSE_PROFILES counts too).
    #[arg(long = "profile")]
    profiles: Vec<String>,
}

/// Exit 0 converted (warnings or not), 1 a service cannot be converted, 2 the file is
/// unreadable or not YAML.
pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    let options = Options {
        id: args.id,
        profiles: args.profiles,
    };
    let file = match args.file {
        Some(file) => file,
        None => match compose::FILE_NAMES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        {
            Some(found) => found,
            None => {
                eprintln!(
                    "no compose file here (looked for {}); name one",
                    compose::FILE_NAMES.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let read = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| (text, std::env::current_dir().unwrap_or_default()))
    } else {
        std::fs::read_to_string(&file).and_then(|text| Ok((text, directory_of(&file)?)))
    };
    let (text, dir) = match read {
        Ok(read) => read,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let converted = match convert_text(&file, &text, &dir, &options) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match &args.out {
        Some(out) => std::fs::write(out, converted.to_json())
            .with_context(|| format!("writing {}", out.display()))?,
        None => print!("{}", converted.to_json()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The absolute directory of `file`, which relative paths in it are resolved against.
pub fn directory_of(file: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(file)?;
    Ok(absolute.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Convert a compose file's `text`, printing its warnings (and errors) on stderr; on
/// failure, the exit code to end with.
pub fn convert_text(
    file: &Path,
    text: &str,
    dir: &Path,
    options: &Options,
) -> Result<Converted, ExitCode> {
    let shown = file.display();
    match compose::convert(text, dir, options, &Process) {
        Ok(converted) => {
            for warning in &converted.warnings {
                eprintln!("{shown}: warning: {warning}");
            }
            Ok(converted)
        }
        Err(failure) => {
            match &failure {
                Failure::Unreadable(message) => eprintln!("{shown}: {message}"),
                Failure::NotConverted(report) => {
                    for line in report.lines() {
                        eprintln!("{shown}: {line}");
                    }
                }
            }
            Err(ExitCode::from(failure.exit_code()))
        }
    }
}

/// The files and environment of this process.
struct Process;

impl Surroundings for Process {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}
