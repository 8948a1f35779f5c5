//! 502 and 504 from the front end (protocols/exosite.md rule 13; the seed retries on
//! 502, 503 and 504 only). 503 is the generic `fail_rate`; this adds the other two.
//!
//! A fraction `exosite_gateway_error_rate` of Exosite requests is answered 502 or 504,
//! the two in turn so a test sees both, before the product, the credentials or the
//! route are looked at. Nothing of such a request is kept. Its body is read first, so
//! the client gets the answer rather than a broken pipe. A burst is the knob at 1 for
//! a while, then back to 0.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Exosite;
use super::error::ExError;
use crate::faults::body::drain;
use crate::faults::roll;

pub(crate) async fn inject(State(api): State<Arc<Exosite>>, req: Request, next: Next) -> Response {
    if !roll(api.shared.settings().exosite_gateway_error_rate) {
        return next.run(req).await;
    }
    api.counters.add_gateway_error();
    let timeout = api.next_gateway_504.fetch_xor(true, Ordering::Relaxed);
    tracing::debug!(timeout, path = %req.uri().path(), "exosite gateway error injected");
    drain(req.into_body()).await;
    let err = if timeout {
        ExError::new(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
    } else {
        ExError::new(StatusCode::BAD_GATEWAY, "Bad Gateway")
    };
    err.into_response()
}
