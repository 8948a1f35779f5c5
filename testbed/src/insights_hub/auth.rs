//! Bearer-token check for every Insights Hub route (protocols/insights-hub.md rule 1).
//!
//! The token the emulator "issued" is the testbed's secret as it is when the request
//! arrives; `PUT /_testbed/secret` changing it is how a token expiry is modelled: the
//! old token then gets 401 with the service's `{"id","message"}` body. Runs after the
//! fault layer, so an injected 503/429 comes before auth, as on a real gateway.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::InsightsHub;
use super::error::IhError;
use crate::faults::body::drain;

pub(crate) async fn require_token(
    State(api): State<Arc<InsightsHub>>,
    req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    // Compared with the secret current now: it can change between requests.
    if token.is_some_and(|t| api.shared.secret_matches(t)) {
        return next.run(req).await;
    }
    // Read the body first so the client sees the 401, not a broken pipe.
    drain(req.into_body()).await;
    IhError::unauthorized().into_response()
}
