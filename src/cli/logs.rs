//! `berth logs`: the merged stdout and stderr of a stack's containers on every host, read
//! from each host's agent API at once. A host that cannot be reached is named on stderr and
//! the others still stream.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tokio::sync::mpsc;

use super::common::{connect, EtcdArgs};
use berth::api::tls::{client_config, TlsFiles};
use berth::api::LogQuery;
use berth::spec::HostRegistration;
use berth::store::keys;
use berth::view::logs::{self as view, HostLine, Style};

#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// The stack.
    id: String,
    /// Only this service.
    service: Option<String>,
    /// Only this replica of it.
    #[arg(long, requires = "service")]
    replica: Option<u32>,
    /// Only the last N lines of each container.
    #[arg(long)]
    tail: Option<u64>,
    /// Only lines since a time: a duration back from now (`10m`, `2h`) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Keep following, through restarts and replacements, until Ctrl-C.
    #[arg(short, long)]
    follow: bool,
    /// Show each line's time (and merge the hosts' lines by it).
    #[arg(long)]
    timestamps: bool,
    /// No `service.replica@host |` prefix.
    #[arg(long)]
    no_prefix: bool,
    /// The CA the agents' API certificates are signed by (hosts whose API wants TLS).
    #[arg(long, env = "BERTH_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// This client's certificate, signed by the CA the agents trust (`--api-client-ca`).
    #[arg(long, env = "BERTH_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "BERTH_TLS_KEY")]
    tls_key: Option<PathBuf>,
}

pub async fn run(args: LogsArgs) -> Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| view::since(s, std::time::SystemTime::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let tls = match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(Arc::new(
            client_config(&TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })
            .map_err(anyhow::Error::msg)?,
        )),
        _ => None,
    };
    let store = connect(&args.etcd).await?;

    // Which hosts hold the stack's slots (of the service asked for), and where their
    // agents serve logs.
    let (assigned, _) = store
        .list(keys::ASSIGNMENTS)
        .await
        .context("reading assignments")?;
    let mut slots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for kv in assigned {
        let Some((host, stack)) = kv.key.trim_start_matches(keys::ASSIGNMENTS).split_once('/')
        else {
            continue;
        };
        if stack != args.id {
            continue;
        }
        let Ok(a) = serde_json::from_slice::<berth::assignment::Assignment>(&kv.value) else {
            continue;
        };
        for s in a.slots.iter().filter(|s| {
            args.service.as_ref().is_none_or(|svc| &s.service == svc)
                && args.replica.is_none_or(|r| s.replica == r)
        }) {
            slots.entry(host.to_owned()).or_default().insert(s.key());
        }
    }
    if slots.is_empty() {
        eprintln!("no containers of {} are assigned to any host", args.id);
        return Ok(ExitCode::from(1));
    }
    let prefixes: Vec<String> = slots
        .iter()
        .flat_map(|(h, s)| s.iter().map(move |slot| view::prefix(slot, h)))
        .collect();
    let style = Style {
        prefix: !args.no_prefix,
        timestamps: args.timestamps,
        color: std::io::stdout().is_terminal(),
        width: prefixes.iter().map(String::len).max().unwrap_or(0),
    };
    let query = LogQuery {
        stack: args.id.clone(),
        service: args.service.clone(),
        replica: args.replica,
        tail: args.tail,
        since,
        follow: args.follow,
    };

    let (tx, mut rx) = mpsc::channel::<HostLine>(1024);
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for host in slots.keys() {
        let reg: Option<HostRegistration> = store
            .get(&keys::host(host))
            .await
            .ok()
            .flatten()
            .and_then(|kv| serde_json::from_slice(&kv.value).ok());
        let (host, tx, query, tls) = (host.clone(), tx.clone(), query.clone(), tls.clone());
        let failed = failed.clone();
        readers.push(tokio::spawn(async move {
            let r = read_host(&host, reg, &query, tls, &tx).await;
            // At once, not at the end: with --follow the others stream on.
            if let Err(why) = r {
                eprintln!("host {host} unreachable: {why}");
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    drop(tx);

    let index: BTreeMap<String, usize> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), i))
        .collect();
    let print = |l: &HostLine, out: &mut std::io::StdoutLock<'_>| -> std::io::Result<()> {
        let i = index
            .get(&view::prefix(&l.line.slot, &l.host))
            .copied()
            .unwrap_or(0);
        writeln!(out, "{}", view::format(l, i, &style))
    };
    // Without --follow and with --timestamps, everything first, then merged by time;
    // else each line as it comes (a container's lines keep their order either way).
    let mut kept = Vec::new();
    while let Some(l) = rx.recv().await {
        if args.timestamps && !args.follow {
            kept.push(l);
        } else if print(&l, &mut std::io::stdout().lock()).is_err() {
            return Ok(ExitCode::SUCCESS); // the reader went away (a closed pipe)
        }
    }
    let mut out = std::io::stdout().lock();
    for l in view::by_time(kept) {
        if print(&l, &mut out).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    drop(out);
    for r in readers {
        let _ = r.await;
    }
    Ok(if failed.load(std::sync::atomic::Ordering::Relaxed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One host's lines into `tx`, or why they cannot be had.
async fn read_host(
    host: &str,
    reg: Option<HostRegistration>,
    query: &LogQuery,
    tls: Option<Arc<rustls::ClientConfig>>,
    tx: &mpsc::Sender<HostLine>,
) -> Result<(), String> {
    let reg = reg.ok_or("not registered (its agent is down or cut off)")?;
    let addr = reg
        .api_address
        .ok_or("its agent serves no API (--no-api, or an older agent)")?;
    if reg.api_tls && tls.is_none() {
        return Err(format!(
            "its agent API at {addr} wants TLS: give --tls-ca, --tls-cert and --tls-key"
        ));
    }
    let tls = if reg.api_tls { tls } else { None };
    let mut lines = berth::api::client::logs(&addr, tls, query).await?;
    while let Some(line) = lines.recv().await {
        let line = line?;
        let l = HostLine {
            host: host.to_owned(),
            line,
        };
        if tx.send(l).await.is_err() {
            break;
        }
    }
    Ok(())
}
