//! Bearer-token check for every Box route (protocols/box.md rule 1).
//!
//! Runs after the fault layer, so an injected 503 comes before auth as on a real
//! overloaded front end. The token is the testbed's secret as it is when the request
//! arrives (`PUT /_testbed/secret` changes it at run time).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::BoxApi;
use super::error::unauthorized;
use crate::faults::body::drain;

pub(crate) async fn require_token(
    State(api): State<Arc<BoxApi>>,
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
    unauthorized()
}
