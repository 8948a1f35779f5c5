//! `GET` (and `HEAD`) and `DELETE` of `/files/{entityId}/{filepath}`
//! (protocols/insights-hub.md §Whole-file verification, rule 15).
//!
//! GET answers the stored bytes (an injected corruption included) with `ETag`,
//! `description` (if the file has one), `timestamp`, `Content-Type` (the file's `type`)
//! and `Content-Length`. `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` → 206 with
//! `Content-Range`; a range that starts past the end, a zero suffix, a range of an empty
//! file, and a header that is not one such range (several ranges, another unit, a > b)
//! → 416 with `Content-Range: bytes */size` (treating a malformed header as
//! unsatisfiable rather than ignoring it is assumed). HEAD: the same headers, no body.
//! DELETE → 204, or 404 if there is no such file; an upload in progress for the path
//! is left alone.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::catalog::StoredFile;
use super::error::IhError;
use super::target::Target;
use super::timestamp::format_ms;
use super::{InsightsHub, NAME};
use crate::byte_range::{Wanted, slice_body, wanted};
use crate::store::OpenBlob;

/// The file's metadata and an open handle on its bytes, taken together under the lock
/// so they describe the same version.
fn open(api: &InsightsHub, target: &Target) -> Result<(StoredFile, OpenBlob), IhError> {
    let st = api.lock();
    let missing = || IhError::not_found(format!("File {} not found.", target.filepath));
    let file = st.files.get(target).ok_or_else(missing)?.clone();
    let blob = api
        .shared
        .store
        .blob(NAME, &target.store_path())
        .ok_or_else(missing)?;
    let handle = blob.open().map_err(IhError::internal)?;
    Ok((file, handle))
}

fn parse_target(
    api: &InsightsHub,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Target, IhError> {
    let Path((entity, filepath)) = path.map_err(|e| IhError::bad_request(e.body_text()))?;
    Target::parse(&api.shared.settings(), &entity, &filepath)
}

/// `GET /files/{entityId}/{filepath}` (HEAD too: axum drops the body).
pub(crate) async fn get(
    State(api): State<Arc<InsightsHub>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, IhError> {
    let target = parse_target(&api, path)?;
    let (meta, handle) = open(&api, &target)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, len) = match wanted(range, meta.size) {
        Wanted::Whole => (StatusCode::OK, 0, meta.size),
        Wanted::Span(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Wanted::Unsatisfiable => {
            let mut resp = IhError::range_not_satisfiable().into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let body = slice_body(handle, first, len).map_err(IhError::internal)?;
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, HeaderValue::from(meta.etag));
    if let Ok(v) = HeaderValue::from_str(&format_ms(meta.timestamp_ms)) {
        h.insert("timestamp", v);
    }
    if let Some(Ok(v)) = meta.description.as_deref().map(HeaderValue::from_str) {
        h.insert("description", v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.file_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let last = first + len - 1;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{}", meta.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

/// `DELETE /files/{entityId}/{filepath}`.
pub(crate) async fn delete(
    State(api): State<Arc<InsightsHub>>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Result<Response, IhError> {
    crate::faults::body::drain(body).await;
    let target = parse_target(&api, path)?;
    let mut st = api.lock();
    if st.files.remove(&target).is_none() {
        return Err(IhError::not_found(format!(
            "File {} not found.",
            target.filepath
        )));
    }
    api.shared.store.remove(NAME, &target.store_path());
    tracing::info!(file = %target.store_path(), "insights-hub file deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
