//! Reading content back: list, info and download, in both device-API shapes
//! (protocols/exosite.md §Whole-file verification, rule 12). The shapes are assumed
//! for `/onep:v1/content` and documented for the older `/provision/download`; they are
//! all here so they are easy to change together.
//!
//! `/onep:v1/content` (the seed's base; the formats are the emulator's choice):
//! - `GET /onep:v1/content/` (or without the slash) → 200 `text/plain`, one id per
//!   line, in id order, `\n`-separated with no trailing newline; empty when none.
//! - `GET /onep:v1/content/{id}?info=true` → 200 `text/csv`, one line
//!   `<type>,<size>,<updated>,<meta>` (the older API's info line).
//! - `GET /onep:v1/content/{id}` → the bytes (download, below).
//!
//! `/provision/download?vendor=<v>&model=<m>` (the older device API, documented):
//! - no `id` → 200 `text/csv`, the ids as above; a vendor/model pair other than
//!   `exosite_vendor`/`exosite_model` (or either missing) → 403;
//! - `&id=<id>&info=true` → the info line; a bad pair → 400;
//! - `&id=<id>` → the bytes; a bad pair → 403.
//!
//! The info line: `<updated>` is Unix seconds (what exoline parses), `<meta>` is empty
//! for uploaded content (the older API's meta is set by the vendor at creation, which
//! devices cannot do). Content whose upload is in progress is not listed and cannot be
//! downloaded (rule 11); its info is 404, or with `exosite_info_progress` the line
//! `<type>,<bytes received>,<last activity>,uploading`, so a client can learn how far
//! an interrupted upload got. An upload in progress of an id that also has completed
//! content shows that way too, while the knob is on.
//!
//! Download: `Content-Type` is the content's type; `Range: bytes=X-Y`, `X-` or `-Y`
//! → 206 with `Content-Range`; an unsatisfiable or malformed range → 416 with
//! `Content-Range: bytes */size` (see `byte_range`); no `Range` → 200 with
//! `Accept-Ranges: bytes`. An injected corruption is served as stored. Unknown id → 404
//! (the CoAP variant of the same API documents 4.04).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::content::Content;
use super::error::ExError;
use super::{Exosite, NAME};
use crate::byte_range::{Wanted, slice_body, wanted};
use crate::store::OpenBlob;

const TEXT: &str = "text/plain; charset=utf-8";
const CSV: &str = "text/csv; charset=utf-8";

/// `GET /onep:v1/content/`.
pub(crate) async fn onep_list(State(api): State<Arc<Exosite>>) -> Response {
    text(TEXT, list(&api))
}

/// `GET /onep:v1/content/{id}`, with `?info=true` for the info line.
pub(crate) async fn onep_get(
    State(api): State<Arc<Exosite>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ExError> {
    let Path(id) = path.map_err(|e| ExError::bad_request(e.body_text()))?;
    let Query(q) = query.map_err(|e| ExError::bad_request(e.body_text()))?;
    if wants_info(&q) {
        return Ok(text(CSV, info(&api, &id)?));
    }
    download(&api, &id, &headers).await
}

/// `GET /provision/download?vendor=&model=[&id=[&info=true]]`.
pub(crate) async fn provision_download(
    State(api): State<Arc<Exosite>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ExError> {
    let Query(q) = query.map_err(|e| ExError::bad_request(e.body_text()))?;
    let s = api.shared.settings();
    let pair_ok =
        q.get("vendor") == Some(&s.exosite_vendor) && q.get("model") == Some(&s.exosite_model);
    let bad_pair = "the vendor and model pair is invalid";
    match q.get("id") {
        None if !pair_ok => Err(ExError::forbidden(format!("Forbidden: {bad_pair}"))),
        None => Ok(text(CSV, list(&api))),
        Some(_) if !pair_ok && wants_info(&q) => {
            Err(ExError::bad_request(format!("Bad Request: {bad_pair}")))
        }
        Some(_) if !pair_ok => Err(ExError::forbidden(format!("Forbidden: {bad_pair}"))),
        Some(id) if wants_info(&q) => Ok(text(CSV, info(&api, id)?)),
        Some(id) => download(&api, id, &headers).await,
    }
}

fn wants_info(q: &HashMap<String, String>) -> bool {
    q.get("info").is_some_and(|v| v == "true")
}

fn text(content_type: &'static str, body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The completed content ids, one per line.
fn list(api: &Exosite) -> String {
    let st = api.lock();
    st.contents.keys().cloned().collect::<Vec<_>>().join("\n")
}

/// The info line of `id`.
fn info(api: &Exosite, id: &str) -> Result<String, ExError> {
    let s = api.shared.settings();
    let mut st = api.lock();
    if s.exosite_info_progress
        && let Some(u) = st.live_upload(id, s.exosite_upload_ttl_s)
    {
        return Ok(format!(
            "{},{},{},uploading",
            u.file_type, u.received, u.touched_s
        ));
    }
    let c = st.contents.get(id).ok_or_else(|| missing(id))?;
    Ok(format!("{},{},{},", c.file_type, c.size, c.updated_s))
}

fn missing(id: &str) -> ExError {
    ExError::not_found(format!("Not Found: no content {id:?}"))
}

/// The content's metadata and an open handle on its bytes, taken together under the
/// lock so they describe the same version.
fn open(api: &Exosite, id: &str) -> Result<(Content, OpenBlob), ExError> {
    let st = api.lock();
    let c = st.contents.get(id).ok_or_else(|| missing(id))?.clone();
    let blob = api.shared.store.blob(NAME, id).ok_or_else(|| missing(id))?;
    let handle = blob.open().map_err(ExError::internal)?;
    Ok((c, handle))
}

async fn download(api: &Exosite, id: &str, headers: &HeaderMap) -> Result<Response, ExError> {
    let (c, handle) = open(api, id)?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, len) = match wanted(range, c.size) {
        Wanted::Whole => (StatusCode::OK, 0, c.size),
        Wanted::Span(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Wanted::Unsatisfiable => return Err(ExError::range_not_satisfiable(c.size)),
    };
    let body = slice_body(handle, first, len).map_err(ExError::internal)?;
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&c.file_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let last = first + len - 1;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{}", c.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}
