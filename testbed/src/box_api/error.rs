//! Box's error answers: the `ClientError` body and the bare 401.
//!
//! Body shape (protocols/box.md §What a faithful emulator enforces):
//! `{"type":"error","status":N,"code":"...","message":"...","context_info":{...},
//! "help_url":"...","request_id":"..."}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One refusal, rendered as Box renders it.
#[derive(Debug)]
pub(crate) struct BoxError {
    status: StatusCode,
    code: &'static str,
    message: String,
    context_info: Option<Value>,
    /// Seconds for `Retry-After` (503, 429).
    retry_after: Option<u32>,
}

impl BoxError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        BoxError {
            status,
            code,
            message: message.into(),
            context_info: None,
            retry_after: None,
        }
    }

    /// Box's error code (`conflict`, `not_found`...).
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    pub(crate) fn with_context(mut self, context_info: Value) -> Self {
        self.context_info = Some(context_info);
        self
    }

    pub(crate) fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn range_not_satisfiable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "requested_range_not_satisfiable",
            message,
        )
    }

    pub(crate) fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            message,
        )
    }

    /// 409 `item_name_in_use`. `conflicts` is one mini item for uploads (what Box
    /// really sends there) and an array for folder creation.
    pub(crate) fn name_in_use(conflicts: Value) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
        )
        .with_context(json!({ "conflicts": conflicts }))
    }

    pub(crate) fn item_name_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "item_name_invalid", message)
    }

    /// A failure of the testbed itself (disk), not of the request.
    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "box emulator internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            format!("Internal Server Error: {error}"),
        )
    }
}

impl IntoResponse for BoxError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "box refusal");
        let mut body = json!({
            "type": "error",
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "help_url": "https://developer.box.com/guides/api-calls/permissions-and-errors/common-errors/",
            "request_id": request_id(),
        });
        if let (Some(ctx), Some(obj)) = (self.context_info, body.as_object_mut()) {
            obj.insert("context_info".into(), ctx);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Box's 401 for a missing or unknown token: empty body, reason in the header.
pub(crate) fn unauthorized() -> Response {
    let mut resp = StatusCode::UNAUTHORIZED.into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            r#"Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid.""#,
        ),
    );
    resp
}

/// A Box-looking request id (lower-case alphanumerics).
fn request_id() -> String {
    (0..16)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[fastrand::usize(..36)]))
        .collect()
}
