//! Edgio's answers on the HTTP interface (protocols/edgio.md §Conventions): an HTTP
//! status plus `X-Agile-Status`, success being 200 with status 0. Bodies are empty
//! (`Content-Type: text/json;charset=utf-8`) except where a call documents one
//! (`/post/directory`'s `{"message", "code"}`).
//!
//! The same type carries successes and refusals, so a handler adds its headers
//! (`X-Agile-Path`, ...) to whichever it returns.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `X-Agile-Status` of every answer.
pub(crate) const STATUS_HEADER: &str = "x-agile-status";

/// The status of a body that ended before its `Content-Length` (a cut connection):
/// documented for pieces (protocols/edgio.md §Multipart 2: "500 `-49` stored size ≠
/// `Content-Length`") and used for every upload, as the interface contract asks.
pub(crate) const CUT_BODY: i64 = -49;

/// An invalid or missing token on every call (protocols/edgio.md §Auth and sessions).
pub(crate) const BAD_TOKEN: i64 = -10001;

/// "Service unavailable": injected 503s, and the 429 of the rate limit (the docs give
/// the 429 no code; the one every "come back later" answer carries was chosen, so a
/// client that branches on the HTTP status first, as it must, sees nothing new).
pub(crate) const UNAVAILABLE: i64 = -26;

/// One HTTP-interface answer.
#[derive(Debug)]
pub(crate) struct Agile {
    status: StatusCode,
    code: i64,
    /// Extra headers; a list keeps the type small enough to return by value.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Only `/post/directory` has one.
    body: Option<String>,
}

pub(crate) type AgileResult = Result<Agile, Agile>;

impl Agile {
    pub(crate) fn new(status: StatusCode, code: i64) -> Self {
        Agile {
            status,
            code,
            headers: Vec::new(),
            body: None,
        }
    }

    /// 200 with status 0.
    pub(crate) fn ok() -> Self {
        Self::new(StatusCode::OK, 0)
    }

    /// 400 with `code`: the documented status of every request error.
    pub(crate) fn bad(code: i64) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code)
    }

    /// 401: no `X-Agile-Authorization` at all (rule 3).
    pub(crate) fn no_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, BAD_TOKEN)
    }

    /// 403: a token that is unknown, logged out or expired (rule 3).
    pub(crate) fn bad_token() -> Self {
        Self::new(StatusCode::FORBIDDEN, BAD_TOKEN)
    }

    /// 500 `-49`: the body ended early; nothing was stored.
    pub(crate) fn cut_body() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, CUT_BODY)
    }

    /// A failure of the testbed itself (disk): 500 `-5`, the docs' generic error.
    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "edgio emulator internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, -5)
    }

    /// Adds a header; a value no header can carry is left out (paths are checked
    /// printable before they get here, so this does not happen in practice).
    pub(crate) fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// `/post/directory`'s body, `{"message": ..., "code": ...}`.
    pub(crate) fn with_message(mut self, message: &str) -> Self {
        self.body = Some(serde_json::json!({ "message": message, "code": self.code }).to_string());
        self
    }
}

impl IntoResponse for Agile {
    fn into_response(self) -> Response {
        if self.code != 0 {
            tracing::debug!(
                status = self.status.as_u16(),
                code = self.code,
                "edgio refusal"
            );
        }
        let mut resp = (self.status, self.body.unwrap_or_default()).into_response();
        let h = resp.headers_mut();
        h.insert(STATUS_HEADER, HeaderValue::from(self.code));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/json;charset=utf-8"),
        );
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        resp
    }
}
