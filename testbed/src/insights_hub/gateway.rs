//! The API gateway's time limit (protocols/insights-hub.md rule 5): a request still
//! being handled `ih_gateway_timeout_ms` after it reached the emulator is answered
//! 502 Bad Gateway.
//!
//! The handler is raced against the clock and dropped when the clock wins; dropping
//! it drops its staging file, so nothing of the request is kept (a part whose body
//! took too long is not stored). The commit steps run under a plain mutex without an
//! `.await`, so a request is never cut half-committed. The clock starts after the
//! fault layer's `latency_ms`, which it does not count. The body is not read further:
//! like a gateway giving up, the emulator answers and closes the connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::InsightsHub;
use super::error::IhError;

pub(crate) async fn timeout(
    State(api): State<Arc<InsightsHub>>,
    req: Request,
    next: Next,
) -> Response {
    let limit = Duration::from_millis(api.shared.settings().ih_gateway_timeout_ms);
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::info!(%method, %path, ?limit, "insights-hub gateway timeout: 502, nothing kept");
            IhError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "Bad Gateway: the request did not complete within {} ms.",
                    limit.as_millis()
                ),
            )
            .into_response()
        }
    }
}
