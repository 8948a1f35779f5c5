//! `POST` (or `PUT`) `/onep:v1/content/{id}`: upload content in one request
//! (protocols/exosite.md §Single upload, rule 3; the shape is assumed by analogy with
//! the ranges' URL and with the older `POST /provision/manage/content/<model>/<id>`).
//!
//! The body is the content; `Content-Type` is its MIME type (none:
//! `application/octet-stream`, assumed). A body over `exosite_single_max` (100 MiB) →
//! 413 and nothing is kept (status assumed). An optional `MD5` header is honoured like
//! a range's: malformed or not the body's MD5 → 400 and nothing stored (assumed).
//! Success: the content replaces any earlier content of the id at once → 204
//! (assumed). An upload in parts of the same id in progress is left alone; if it
//! completes later, it replaces this content (assumed).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::content::{check_id, store};
use super::error::ExError;
use super::headers;
use super::{Exosite, Received};
use crate::faults::body::drain;

/// `type` of content uploaded without `Content-Type` (assumed).
const DEFAULT_TYPE: &str = "application/octet-stream";

/// What the headers say, once valid.
struct Judged {
    id: String,
    file_type: String,
    md5: Option<[u8; 16]>,
}

fn judge(
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<Judged, ExError> {
    let Path(id) = path.map_err(|e| ExError::bad_request(e.body_text()))?;
    check_id(&id)?;
    let file_type = match headers.get(header::CONTENT_TYPE) {
        None => DEFAULT_TYPE.to_string(),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ExError::bad_request("Content-Type must be a MIME type"))?
            .to_string(),
    };
    let md5 = headers::md5(headers)?;
    Ok(Judged { id, file_type, md5 })
}

pub(crate) async fn upload(
    State(api): State<Arc<Exosite>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ExError> {
    let j = match judge(path, &headers) {
        Ok(j) => j,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let s = api.shared.settings();
    let (staged, md5) = match api.receive(body, s.exosite_single_max).await? {
        Received::Kept { staged, md5 } => (staged, md5),
        Received::TooLong => return Err(ExError::too_large(s.exosite_single_max)),
    };
    if j.md5.is_some_and(|want| want != md5) {
        api.count_digest_mismatch();
        return Err(ExError::bad_request(
            "MD5 does not match the body: nothing stored",
        ));
    }
    let (staged, corrupted) = api.maybe_corrupt(&s, staged).await?;
    let mut st = api.lock();
    store(&api, &mut st, &j.id, &j.file_type, staged, None)?;
    drop(st);
    api.count_corrupted(corrupted);
    Ok(StatusCode::NO_CONTENT.into_response())
}
