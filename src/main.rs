//! The `berth` binary: command-line parsing and dispatch only; each command lives in
//! [`cli`].

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use berth::telemetry::{self, LogFormat};

/// mimalloc rather than glibc's malloc: a controller pass builds and drops every desired
/// assignment, from several threads. In the scale bench at 1,000 hosts (docs/scale.md) it
/// took the one-service change from 0.154 s to 0.105 s and the controller's peak RSS from
/// 224 MB to 204 MB. Transparent huge pages are off for the process (see `main`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "berth",
    version = berth::VERSION,
    about = "Keeps container stacks running across many Docker hosts, with etcd as the source of truth"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: schedule stacks and write their status.
    Controller(cli::controller::ControllerArgs),
    /// Run a host's agent: register the host and converge its Docker engine.
    Agent(cli::agent::AgentArgs),
    /// Everything on one machine: etcd (unless given), a controller and an agent for the
    /// local Docker engine. Ctrl-C stops Berth and leaves the containers running.
    Up(cli::up::UpArgs),
    /// Check stack files; prints every problem. Exit 0 valid, 1 invalid, 2 unreadable.
    Validate(cli::validate::ValidateArgs),
    /// Convert a compose file to a stack (stdout, or -o FILE); what the stack does not carry
    /// is a warning on stderr. Exit 0 converted, 1 a service cannot be, 2 unreadable.
    Convert(cli::convert::ConvertArgs),
    /// Write schemas generated from Berth's types.
    Schema(cli::schema::SchemaArgs),
    /// Validate a stack file and write it to stacks/<id> (id defaults to the file name); a
    /// compose file is converted first (id defaults to its project name).
    Apply(cli::apply::ApplyArgs),
    /// Delete stacks/<id>; its containers are removed everywhere.
    Delete(cli::delete::DeleteArgs),
    /// Cordon, uncordon or drain a host (kept in etcd at maintenance/<host>); add or remove
    /// an agentless host.
    Host(cli::host::HostArgs),
    /// etcd roles and users for least privilege (see SECURITY.md).
    EtcdRbac(cli::etcd_rbac::EtcdRbacArgs),
    /// Show how a stack would be placed afresh (dry run); `--apply` asks the controller
    /// to do it. Nothing moves otherwise: placement is sticky.
    Rebalance(cli::rebalance::RebalanceArgs),
    /// The deployment map: each stack's phase and progress, then per host its services
    /// with state, health, restarts, ports and what each connects to. `-o json` prints the
    /// status objects. Exit 0 shown, 1 no such stack (or, with `-o json`, no status yet),
    /// 2 error.
    Status(cli::status::StatusArgs),
    /// Hosts: readiness, address, datacenter, slots, reserved/total capacity, labels.
    /// Exit 0 shown, 2 error.
    Hosts(cli::hosts::HostsArgs),
    /// Recent events (placed, started, restarted, unhealthy, rescheduled, orphan removed,
    /// ...), oldest first: at most 100 per stack are kept. Exit 0 shown, 2 error.
    Events(cli::events::EventsArgs),
    /// The merged stdout and stderr of a stack's containers on every host, prefixed
    /// `service.replica@host |`, read from each host's agent API (`-f` follows through
    /// restarts and replacements). A host that cannot be reached is named on stderr.
    /// Exit 0 every host answered, 1 some did not (or nothing is assigned), 2 error.
    Logs(cli::logs::LogsArgs),
    /// A stack's kept revisions: time, images and how each rollout ended (`complete`,
    /// `rolled back`, `paused`, `superseded`). Exit 0 shown, 1 no such stack, 2 error.
    History(cli::history::HistoryArgs),
    /// Write an earlier spec from the history back to the stack key, as a new revision
    /// (default: the last complete one before the current); shows the diff and asks first.
    Rollback(cli::rollback::RollbackArgs),
    /// Pause or resume a stack's rollouts.
    Rollout(cli::rollout::RolloutArgs),
    /// Store or delete the login agents use to pull from an image registry (kept at
    /// registries/<registry>). `logout` exits 1 when there was none.
    Registry(cli::registry::RegistryArgs),
}

fn main() -> ExitCode {
    // No transparent huge pages, whatever the machine's THP mode: mimalloc would otherwise
    // have its arenas backed by 2 MiB pages (it asks for them, and the `no_thp` feature
    // only stops the asking), each resident in full however little of it is in use. At
    // 1,000 hosts the controller's peak RSS was 134 MB with them and 119 MB without, for
    // a heap of 77 MB and the same CPU (docs/scale.md). The processes Berth starts inherit
    // it (the etcd of `berth up`). Best effort: a kernel without the call keeps its
    // default.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    berth::metrics::init();
    let result = match cli.command {
        // Offline commands: they work even where no async runtime can start.
        Command::Validate(args) => cli::validate::run(args),
        Command::Schema(args) => cli::schema::run(args),
        Command::Convert(args) => cli::convert::run(args),
        command => tokio::runtime::Runtime::new()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(run(command))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate(_) | Command::Schema(_) | Command::Convert(_) => {
            unreachable!("handled before the runtime starts")
        }
        Command::Controller(args) => cli::controller::run(args).await,
        Command::Agent(args) => cli::agent::run(args).await,
        Command::Up(args) => cli::up::run(args).await,
        Command::Apply(args) => cli::apply::run(args).await,
        Command::Delete(args) => cli::delete::run(args).await,
        Command::Host(args) => cli::host::run(args).await,
        Command::EtcdRbac(args) => cli::etcd_rbac::run(args).await,
        Command::Rebalance(args) => cli::rebalance::run(args).await,
        Command::Status(args) => cli::status::run(args).await,
        Command::Hosts(args) => cli::hosts::run(args).await,
        Command::Events(args) => cli::events::run(args).await,
        Command::Logs(args) => cli::logs::run(args).await,
        Command::History(args) => cli::history::run(args).await,
        Command::Rollback(args) => cli::rollback::run(args).await,
        Command::Rollout(args) => cli::rollout::run(args).await,
        Command::Registry(args) => cli::registry::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
