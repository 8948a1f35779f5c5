//! The HTTP side of `[metrics] listen`: `GET /metrics` (OpenMetrics text) and
//! `GET /healthz` (200 `ok`, or 503 with the reason).
//!
//! Bound by [`bind`] before the daemon reports itself running, so a port that is
//! taken stops the start with a message naming the key; served by [`serve`] until
//! the daemon's cancel token fires. Plain HTTP: the endpoint is meant for loopback
//! or a trusted network, and nothing it serves is secret (see `metrics/mod.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Metrics;
use crate::journal::JournalHandle;

/// What `/healthz` waits for the journal before it says it does not answer: a
/// probe must answer quickly, and a journal call stuck this long behind another is
/// a daemon that cannot make progress.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `Content-Type` of what `prometheus_client::encoding::text` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr} (metrics.listen): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Takes the configured address (port 0: any free port) and logs the one bound.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    info!(addr = %bound, "metrics listening");
    Ok(listener)
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    journal: JournalHandle,
}

/// Serves until `cancel`; connections still open then are let finish (the
/// daemon's shutdown deadline bounds them).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    journal: JournalHandle,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(Shared { metrics, journal });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(e) = served {
        warn!(error = %e, "the metrics server stopped");
    }
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    match s.metrics.render(&s.journal).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        // Only a formatter error, which writing to a String never returns.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn healthz(State(s): State<Shared>) -> Response {
    let probe = tokio::time::timeout(HEALTH_TIMEOUT, s.journal.call(|j| j.ping())).await;
    let why = match probe {
        Ok(Ok(())) => return (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => format!("journal: {e}"),
        Err(_) => format!(
            "journal: no answer within {} s",
            HEALTH_TIMEOUT.as_secs_f64()
        ),
    };
    warn!(reason = %why, "health check failed");
    (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
}
