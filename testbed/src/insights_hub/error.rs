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
        let body = json!({ "id": uuid_v4(), "message": self.message });
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// A random version-4 UUID in its usual 8-4-4-4-12 lower-case form.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = fastrand::u128(..).to_le_bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = crate::hex::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::uuid_v4;

    #[test]
    fn ids_look_like_uuids() {
        let id = uuid_v4();
        let groups: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(uuid_v4(), id);
    }
}
