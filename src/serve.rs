//! The HTTP endpoint every component serves: `/metrics`, `/healthz` and `/readyz`, and
//! beside them whatever else the component adds (the controller's web view).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

/// Answers "is this component ready?" with the reason when it is not.
pub type ReadyCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serve until `cancel`. Binding happens before this returns, so a bad address is an
/// error at start-up rather than a log line later.
pub async fn spawn(
    addr: SocketAddr,
    ready: Vec<ReadyCheck>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    spawn_with(addr, ready, Router::new(), cancel).await
}

/// [`spawn`], serving `routes` too (none of them `/metrics`, `/healthz` or `/readyz`).
pub async fn spawn_with(
    addr: SocketAddr,
    ready: Vec<ReadyCheck>,
    routes: Router,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let ready = Arc::new(ready);
    let app = routes
        .route("/metrics", get(|| async { crate::metrics::render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    for check in ready.iter() {
                        if let Err(why) = check() {
                            return (
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("not ready: {why}\n"),
                            );
                        }
                    }
                    (StatusCode::OK, "ready\n".to_owned())
                }
            }),
        );
    tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}
