//! The agent API listener. Without TLS it binds only to loopback unless told otherwise
//! (`--api-insecure`): anyone who reaches it could read every container's logs. With TLS
//! it requires a client certificate signed by the configured CA. Log responses stream as
//! one JSON object per line from a bounded channel, so a slow reader slows the readers of
//! Docker's logs instead of making the agent buffer without bound.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::tls::{server_config, TlsFiles};
use super::{LogLine, LogQuery, LOGS_PATH};

/// How the listener is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on an address other than loopback, accepted explicitly.
    pub insecure: bool,
}

impl ApiConfig {
    /// Why this configuration must not start, if it must not.
    pub fn refusal(&self) -> Option<String> {
        (self.tls.is_none() && !self.addr.ip().is_loopback() && !self.insecure).then(|| {
            format!(
                "refusing to serve the agent API on {} without TLS: anyone who reaches it could read every container's logs; give --api-tls-cert, --api-tls-key and --api-client-ca, bind to loopback, or allow it explicitly with --api-insecure",
                self.addr
            )
        })
    }
}

/// Where logs come from: the lines of a query, sent into a bounded channel until the
/// receiver goes.
pub type LogSource = Arc<dyn Fn(LogQuery, mpsc::Sender<LogLine>) + Send + Sync>;

/// Lines in flight per response: what a slow reader can hold up.
const BUFFER: usize = 256;

/// Bind and serve until `cancel`; returns the bound address (port 0 picks one).
pub async fn spawn(
    cfg: &ApiConfig,
    source: LogSource,
    cancel: CancellationToken,
) -> Result<SocketAddr, String> {
    if let Some(why) = cfg.refusal() {
        return Err(why);
    }
    let tls = match &cfg.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_config(
            files,
        )?))),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| format!("binding the agent API to {}: {e}", cfg.addr))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = router(source);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "agent API accept failed");
                        continue;
                    }
                },
            };
            let app = app.clone();
            let tls = tls.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(app);
                let http = hyper::server::conn::http1::Builder::new();
                let served = match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            let conn = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                            tokio::select! {
                                r = conn => r,
                                _ = cancel.cancelled() => Ok(()),
                            }
                        }
                        Err(e) => {
                            tracing::info!(peer = %peer, error = %e, "agent API refused a TLS client");
                            return;
                        }
                    },
                    None => {
                        let conn =
                            http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                        tokio::select! {
                            r = conn => r,
                            _ = cancel.cancelled() => Ok(()),
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(peer = %peer, error = %e, "agent API connection ended");
                }
            });
        }
    });
    Ok(bound)
}

fn router(source: LogSource) -> Router {
    Router::new().route(
        LOGS_PATH,
        get(
            move |q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>| {
                let source = source.clone();
                async move {
                    let Ok(Query(q)) = q else {
                        return (StatusCode::BAD_REQUEST, "bad log query\n").into_response();
                    };
                    let (tx, rx) = mpsc::channel(BUFFER);
                    source(q, tx);
                    let body = tokio_stream_of(rx).map(|line| {
                        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                        bytes.push(b'\n');
                        Ok::<_, std::convert::Infallible>(bytes)
                    });
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/x-ndjson")
                        .body(Body::from_stream(body))
                        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
                }
            },
        ),
    )
}

/// A receiver as a stream, without another dependency.
fn tokio_stream_of<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_off_loopback_unless_allowed() {
        let cfg = |addr: &str, tls: bool, insecure: bool| ApiConfig {
            addr: addr.parse().unwrap(),
            tls: tls.then(|| TlsFiles {
                cert: "c".into(),
                key: "k".into(),
                ca: "a".into(),
            }),
            insecure,
        };
        assert!(cfg("127.0.0.1:9422", false, false).refusal().is_none());
        assert!(cfg("[::1]:9422", false, false).refusal().is_none());
        let why = cfg("10.0.0.5:9422", false, false)
            .refusal()
            .expect("refused");
        assert!(
            why.contains("--api-insecure") && why.contains("10.0.0.5:9422"),
            "{why}"
        );
        assert!(cfg("10.0.0.5:9422", true, false).refusal().is_none());
        assert!(cfg("10.0.0.5:9422", false, true).refusal().is_none());
    }
}
