//! Single upload: `PUT /files/{entityId}/{filepath}` with the whole file as body
//! (protocols/insights-hub.md §Single upload, rule 4).
//!
//! `If-Match` is judged before the body is read (a refusal still reads it), and again
//! when storing, since another upload may have replaced the file while this body came.
//! New path → 201, update → 204, both with `ETag` and `Location`. An empty body makes an
//! empty file (assumed: the spec only says the body is required).

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};

use super::InsightsHub;
use super::catalog::{check_if_match, write};
use super::error::IhError;
use super::headers::Meta;
use super::target::Target;
use crate::faults::Settings;
use crate::faults::body::drain;

pub(crate) async fn put(
    api: &Arc<InsightsHub>,
    s: &Settings,
    target: Target,
    meta: Meta,
    body: Body,
) -> Result<Response, IhError> {
    let early = {
        let st = api.lock();
        check_if_match(st.files.get(&target), meta.if_match, s.ih_require_if_match)
    };
    if let Err(e) = early {
        drain(body).await;
        return Err(e);
    }
    let staged = api.receive(body).await?;
    let (staged, corrupted) = api.maybe_corrupt(staged).await?;
    let mut st = api.lock();
    let written = write(api, &mut st, &target, &meta, s.ih_require_if_match, staged)?;
    api.count_corrupted(corrupted);
    Ok(written.into_response())
}
