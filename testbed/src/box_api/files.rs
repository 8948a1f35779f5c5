//! File metadata, download and delete (protocols/box.md §Whole-file verification,
//! rule 14).
//!
//! `GET /2.0/files/{id}` always returns the full file object (id, type, name, size,
//! sha1, etag, parent, ...) whatever `fields` asks: a superset is what clients parse.
//! Download answers 200 with the bytes directly, where Box redirects to a download
//! host; SDKs follow either.

use std::sync::Arc;

use axum::Json;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::BoxError;
use super::{BoxApi, NAME, check_if_match};

fn no_file(id: &str) -> BoxError {
    BoxError::not_found(format!("Could not find the specified resource: file {id}"))
}

/// `GET /2.0/files/{id}`.
pub(crate) async fn info(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
) -> Result<Response, BoxError> {
    let st = api.lock();
    let file = st.tree.file(&id).ok_or_else(|| no_file(&id))?;
    Ok(Json(st.tree.file_json(file)).into_response())
}

/// `GET /2.0/files/{id}/content`: the stored bytes (corruption included).
pub(crate) async fn download(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
) -> Result<Response, BoxError> {
    let blob = {
        let st = api.lock();
        st.tree.file(&id).ok_or_else(|| no_file(&id))?;
        api.shared
            .store
            .blob(NAME, &id)
            .ok_or_else(|| no_file(&id))?
    };
    // Opened handle keeps the bytes even if a new version replaces the blob meanwhile.
    let f = blob.open().map_err(BoxError::internal)?;
    let len = f.len();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        crate::byte_range::slice_body(f, 0, len).map_err(BoxError::internal)?,
    )
        .into_response())
}

/// `DELETE /2.0/files/{id}` → 204; honours `If-Match`.
pub(crate) async fn delete(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, BoxError> {
    let mut st = api.lock();
    let file = st.tree.file(&id).ok_or_else(|| no_file(&id))?;
    check_if_match(&headers, Some(file.etag))?;
    for gone in st.tree.remove(&id) {
        api.shared.store.remove(NAME, &gone);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
