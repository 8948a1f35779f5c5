//! `GET`/`HEAD` of a stored file (rule 12): the delivery host
//! (`/origin/{account}/{path}`) and the upload host (`/{account}/{path}`), the two
//! forms the seed uses. No auth (delivery is public).
//!
//! 200 with `Content-Length`, `X-Agile-Checksum` (SHA-256 hex of the stored bytes),
//! `Accept-Ranges: bytes`, `Last-Modified` and the file's `Content-Type`. `Range` (the
//! shared `byte_range` rules) → 206 + `Content-Range`, or 416 + `Content-Range: bytes
//! */size`. 404 for another account, a directory, an unknown path, or a multipart
//! upload whose join has not reached SUCCESS (the seed: "a HEAD request too soon
//! results in a 404").

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::tree::FileMeta;
use super::{Edgio, NAME, paths};
use crate::byte_range::{Wanted, slice_body, wanted};
use crate::store::OpenBlob;

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// The file's metadata and an open handle on its bytes, taken together under the lock
/// so they describe the same version.
fn open(api: &Edgio, account: &str, path: &str) -> Option<(FileMeta, OpenBlob)> {
    let s = api.shared.settings();
    if account != s.edgio_account {
        return None;
    }
    let key = paths::resolve("", path).ok()?;
    let st = api.settled(&s);
    let meta = st.tree.files.get(&key)?.clone();
    let blob = api.shared.store.blob(NAME, &key)?;
    let handle = blob.open().ok()?;
    Some((meta, handle))
}

pub(crate) async fn get(
    State(api): State<Arc<Edgio>>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path((account, path))) = path else {
        return not_found();
    };
    let Some((meta, handle)) = open(&api, &account, &path) else {
        return not_found();
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, len) = match wanted(range, meta.size) {
        Wanted::Whole => (StatusCode::OK, 0, meta.size),
        Wanted::Span(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Wanted::Unsatisfiable => {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let body = match slice_body(handle, first, len) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "edgio origin could not read a stored file");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&meta.sha256) {
        h.insert("x-agile-checksum", v);
    }
    if let Ok(v) = HeaderValue::from_str(&crate::clock::http_date(meta.stored)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.mimetype) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let last = first + len - 1;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{}", meta.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}
