//! The single-machine default: an etcd child process on free loopback ports, with its data
//! under a directory of ours, for `berth up` without `--etcd-endpoints` (and for tests).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("starting {binary} (is etcd installed? `make run` installs Debian's etcd-server)")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing etcd data directory {dir}")]
    DataDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd did not answer on {endpoint} within {secs}s; its log is {log}")]
    NotReady {
        endpoint: String,
        secs: u64,
        log: PathBuf,
    },
    #[error("finding a free loopback port")]
    Port(#[source] std::io::Error),
    #[error("etcd exited at start ({status}); its log is {log}")]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
}

/// A running etcd; killed when dropped.
pub struct EmbeddedEtcd {
    child: Child,
    pub client_url: String,
    pub data_dir: PathBuf,
}

fn free_port() -> Result<u16, EmbeddedError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(EmbeddedError::Port)?;
    Ok(l.local_addr().map_err(EmbeddedError::Port)?.port())
}

/// Whether the etcd on loopback `port` answers its `/health` with `"health":"true"`.
async fn healthy(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await.ok()?;
        Some(String::from_utf8_lossy(&body).contains(r#""health":"true""#))
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl EmbeddedEtcd {
    /// Start `etcd` with its data in `data_dir`, listening on loopback only. A fixed
    /// `client_port` keeps the endpoint stable across restarts (`berth up`); `None` picks
    /// a free one (tests).
    pub async fn start(
        data_dir: &Path,
        client_port: Option<u16>,
    ) -> Result<EmbeddedEtcd, EmbeddedError> {
        EmbeddedEtcd::start_with(data_dir, client_port, &[]).await
    }

    /// [`start`](EmbeddedEtcd::start) with extra etcd flags. Free ports are picked by
    /// binding port 0 and letting go, so another process may take one before etcd binds
    /// it; etcd then exits, and a start on ports of our choosing tries again with others.
    pub async fn start_with(
        data_dir: &Path,
        client_port: Option<u16>,
        extra: &[&str],
    ) -> Result<EmbeddedEtcd, EmbeddedError> {
        let mut tries = if client_port.is_some() { 1 } else { 3 };
        loop {
            tries -= 1;
            match EmbeddedEtcd::start_once(data_dir, client_port, extra).await {
                Err(EmbeddedError::Exited { status, log }) if tries > 0 => {
                    tracing::warn!(%status, log = %log.display(), "etcd exited at start; trying other ports");
                }
                r => return r,
            }
        }
    }

    async fn start_once(
        data_dir: &Path,
        client_port: Option<u16>,
        extra: &[&str],
    ) -> Result<EmbeddedEtcd, EmbeddedError> {
        std::fs::create_dir_all(data_dir).map_err(|source| EmbeddedError::DataDir {
            dir: data_dir.to_owned(),
            source,
        })?;
        let client = match client_port {
            Some(p) => p,
            None => free_port()?,
        };
        let peer = free_port()?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = data_dir.join("etcd.log");
        let log_file = std::fs::File::create(&log).map_err(|source| EmbeddedError::DataDir {
            dir: data_dir.to_owned(),
            source,
        })?;
        let binary = std::env::var("BERTH_ETCD_BIN").unwrap_or_else(|_| "etcd".to_owned());
        let child = Command::new(&binary)
            .arg("--name=berth")
            .arg(format!("--data-dir={}", data_dir.join("member").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=berth={peer_url}"))
            .arg("--log-level=warn")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EmbeddedError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let mut etcd = EmbeddedEtcd {
            child,
            client_url,
            data_dir: data_dir.to_owned(),
        };
        let secs = 20;
        for _ in 0..(secs * 10) {
            // Ask etcd itself: a bare TCP accept may come from any process that holds
            // the port for a moment (another test picking a free port, say).
            if let Ok(Some(status)) = etcd.child.try_wait() {
                return Err(EmbeddedError::Exited { status, log });
            }
            if healthy(client).await && matches!(etcd.child.try_wait(), Ok(None)) {
                return Ok(etcd);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EmbeddedError::NotReady {
            endpoint: etcd.client_url.clone(),
            secs,
            log,
        })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
