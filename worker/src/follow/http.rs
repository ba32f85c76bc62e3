//! `exrscan follow`'s HTTP endpoints: `/metrics` (OpenMetrics), `/healthz` (the process
//! serves) and `/readyz` (no batch is waiting for the sink or S3).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::FollowStats;

/// Binds `addr` and returns the bound address and the server future, which ends when
/// `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<FollowStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(stats);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await }))
}

async fn metrics(State(stats): State<Arc<FollowStats>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], stats.render())
}

async fn readyz(State(stats): State<Arc<FollowStats>>) -> impl IntoResponse {
    match stats.ready() {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
