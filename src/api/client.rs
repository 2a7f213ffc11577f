//! What `berth logs` uses to read one host's logs from its agent API: one streaming GET,
//! its NDJSON body handed on line by line.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::{LogLine, LogQuery, LOGS_PATH};

/// How long connecting (and a TLS handshake) may take before the host counts as
/// unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The lines `addr` (`host:port`) serves for `q`, through mutual TLS when `tls` is given.
/// Fails when the agent cannot be reached or refuses; a stream that breaks later ends with
/// an `Err` item.
pub async fn logs(
    addr: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    q: &LogQuery,
) -> Result<mpsc::Receiver<Result<LogLine, String>>, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let path = format!("{LOGS_PATH}?{}", q.to_query());
    match tls {
        None => get(tcp, addr, &path).await,
        Some(cfg) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("{host} is not a server name: {e}"))?;
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
            )
            .await
            .map_err(|_| format!("TLS handshake with {addr} timed out"))?
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            get(stream, addr, &path).await
        }
    }
}

async fn get<IO>(
    io: IO,
    addr: &str,
    path: &str,
) -> Result<mpsc::Receiver<Result<LogLine, String>>, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("talking to {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("asking {addr} for logs: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{addr} answered {}", resp.status()));
    }
    let (tx, rx) = mpsc::channel(256);
    let mut body = resp.into_body();
    let addr = addr.to_owned();
    tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    let _ = tx.send(Err(format!("reading logs from {addr}: {e}"))).await;
                    return;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    pending.extend_from_slice(&data);
                    while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=i).collect();
                        let parsed = serde_json::from_slice::<LogLine>(&line)
                            .map_err(|e| format!("a log line from {addr} is not JSON: {e}"));
                        if tx.send(parsed).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    Ok(rx)
}
