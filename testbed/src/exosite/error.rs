//! Exosite's error answers: a status and a plain-text line (protocols/exosite.md §What a
//! faithful emulator enforces: "Error bodies are plain text"). The device API documents
//! only the codes, so the texts are the emulator's own; clients must not parse them.

use axum::http::header::{CONTENT_RANGE, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One refusal.
#[derive(Debug)]
pub(crate) struct ExError {
    status: StatusCode,
    message: String,
    /// `Retry-After` (503, 429), `Content-Range` (416). A list, not a `HeaderMap`: it
    /// keeps the error small enough to return by value.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ExError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ExError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn with_retry_after(mut self, secs: u32) -> Self {
        self.headers.push((RETRY_AFTER, HeaderValue::from(secs)));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The general response table's 401: "No or invalid CIK".
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: no or invalid credentials",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub(crate) fn too_large(max: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Payload Too Large: a single upload holds at most {max} bytes; upload in parts"
            ),
        )
    }

    /// 416 with `Content-Range: bytes */size`, as RFC 9110 asks.
    pub(crate) fn range_not_satisfiable(size: u64) -> Self {
        let mut e = Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Requested Range Not Satisfiable",
        );
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            e.headers.push((CONTENT_RANGE, v));
        }
        e
    }

    /// A failure of the testbed itself (disk), not of the request.
    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "exosite emulator internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error: {error}"),
        )
    }
}

impl IntoResponse for ExError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), message = %self.message, "exosite refusal");
        let mut resp = (self.status, self.message).into_response();
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        resp
    }
}
