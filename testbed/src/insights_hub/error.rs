//! Insights Hub's error answers.
//!
//! Body shape of the IoT File Service v3 (protocols/insights-hub.md §Errors; the
//! v3.2.4 OpenAPI schemas `badrequest`, `notfound`, `conflict`, ...):
//! `{"id": "<uuid>", "message": "<text>"}`. The newer `{"errors": [...]}` shape belongs
//! to endpoints the emulator does not serve (bulk delete jobs).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One refusal, rendered as the service renders it.
#[derive(Debug)]
pub(crate) struct IhError {
    status: StatusCode,
    message: String,
    /// Seconds for `Retry-After` (503, 429).
    retry_after: Option<u32>,
}

impl IhError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        IhError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn unauthorized() -> Self {
        // The spec's example text for its `unauthorized` schema.
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Not authorized to access this resource.",
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: the spec's text for a stale etag, with why.
    pub(crate) fn conflict(why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("A newer resource version is available. {why}"),
        )
    }

    pub(crate) fn range_not_satisfiable() -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Requested range not satisfiable",
        )
    }

    /// A failure of the testbed itself (disk), not of the request.
    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "insights-hub emulator internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error: {error}"),
        )
    }
}

impl IntoResponse for IhError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), message = %self.message, "insights-hub refusal");
        let body = json!({ "id": crate::hex::uuid_v4(), "message": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
