//! Stored files: their metadata, their integer etag and the optimistic-locking rule
//! (protocols/insights-hub.md §Updating an existing file, rules 4, 9, 10).
//!
//! The etag is 0 for a new file and +1 per update. An update must name the current
//! etag in `If-Match`: a stale one is 409, and so is none at all while
//! `ih_require_if_match` is on (assumed; the real status is unconfirmed). `If-Match`
//! naming a file that does not exist is 409 too (assumed: there is no version to
//! match). Each upload sets all metadata from its own headers; a header left out takes
//! its default again rather than keeping the old value (assumed).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::IhError;
use super::headers::Meta;
use super::target::Target;
use super::timestamp::format_ms;
use super::{IhState, InsightsHub, NAME, now_ms};
use crate::store::Staged;

/// `type` of a file uploaded without the header (assumed).
const DEFAULT_TYPE: &str = "application/octet-stream";

/// `createdBy`/`updatedBy`: the service puts the token's user or client id there.
const UPLOADER: &str = "testbed-client";

/// One stored file's metadata; the bytes are in the store under
/// [`Target::store_path`].
#[derive(Debug, Clone)]
pub(crate) struct StoredFile {
    pub(crate) etag: u64,
    /// Bytes really stored (after any injected corruption, which keeps the size).
    pub(crate) size: u64,
    pub(crate) file_type: String,
    /// `None` when uploaded without a `description` header.
    pub(crate) description: Option<String>,
    /// The `timestamp` header, else the upload time; epoch ms.
    pub(crate) timestamp_ms: i64,
    /// First upload of this path (kept across updates); epoch ms.
    pub(crate) created_ms: i64,
    /// Last upload; epoch ms.
    pub(crate) updated_ms: i64,
}

impl StoredFile {
    /// One search result (v3.2.4 spec, schema `file`).
    pub(crate) fn json(&self, target: &Target) -> Value {
        json!({
            "name": target.name(),
            "path": target.dir(),
            "type": self.file_type,
            "size": self.size,
            "timestamp": format_ms(self.timestamp_ms),
            "created": format_ms(self.created_ms),
            "updated": format_ms(self.updated_ms),
            "createdBy": UPLOADER,
            "updatedBy": UPLOADER,
            "description": self.description.as_deref().unwrap_or(""),
            "etag": self.etag,
        })
    }
}

/// Whether a write with `if_match` may replace `current` (or create the file).
pub(crate) fn check_if_match(
    current: Option<&StoredFile>,
    if_match: Option<u64>,
    require: bool,
) -> Result<(), IhError> {
    match (current, if_match) {
        (Some(f), Some(e)) if e == f.etag => Ok(()),
        (Some(f), Some(e)) => Err(IhError::conflict(format!(
            "If-Match {e} does not match the current etag {}.",
            f.etag
        ))),
        (Some(f), None) if require => Err(IhError::conflict(format!(
            "The file exists (etag {}); send If-Match to overwrite it.",
            f.etag
        ))),
        (Some(_), None) | (None, None) => Ok(()),
        (None, Some(e)) => Err(IhError::conflict(format!(
            "If-Match {e} names a version of a file that does not exist."
        ))),
    }
}

/// What a successful write answers: 201 (new) or 204 (updated), with the new etag.
pub(crate) struct Written {
    status: StatusCode,
    etag: u64,
    location: String,
}

impl IntoResponse for Written {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        let h = resp.headers_mut();
        h.insert(header::ETAG, HeaderValue::from(self.etag));
        if let Ok(v) = HeaderValue::from_str(&self.location) {
            h.insert(header::LOCATION, v);
        }
        resp
    }
}

/// Checks `If-Match` against the file as it is now, then stores `staged` as the new
/// content of `target` and its metadata from `meta`. One step under the caller's lock,
/// so no other write can slip in between check and store.
pub(crate) fn write(
    api: &InsightsHub,
    st: &mut IhState,
    target: &Target,
    meta: &Meta,
    require_if_match: bool,
    staged: Staged,
) -> Result<Written, IhError> {
    let current = st.files.get(target);
    check_if_match(current, meta.if_match, require_if_match)?;
    let now = now_ms();
    let (status, etag, created_ms) = match current {
        Some(f) => (StatusCode::NO_CONTENT, f.etag + 1, f.created_ms),
        None => (StatusCode::CREATED, 0, now),
    };
    let path = target.store_path();
    let file_type = meta
        .file_type
        .clone()
        .unwrap_or_else(|| DEFAULT_TYPE.to_string());
    let info = api
        .shared
        .store
        .put(NAME, &path, &path, Some(&file_type), staged)
        .map_err(IhError::internal)?;
    st.files.insert(
        target.clone(),
        StoredFile {
            etag,
            size: info.size,
            file_type,
            description: meta.description.clone(),
            timestamp_ms: meta.timestamp_ms.unwrap_or(now),
            created_ms,
            updated_ms: now,
        },
    );
    tracing::info!(file = %path, etag, size = info.size, "insights-hub file stored");
    Ok(Written {
        status,
        etag,
        location: api.url(&target.url_path()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(etag: u64) -> StoredFile {
        StoredFile {
            etag,
            size: 0,
            file_type: DEFAULT_TYPE.into(),
            description: None,
            timestamp_ms: 0,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn if_match_table() {
        let f = file(3);
        let status = |cur: Option<&StoredFile>, m: Option<u64>, req: bool| {
            check_if_match(cur, m, req)
                .err()
                .map(|e| e.status().as_u16())
        };
        assert_eq!(status(Some(&f), Some(3), true), None);
        assert_eq!(status(Some(&f), Some(2), true), Some(409));
        assert_eq!(status(Some(&f), Some(2), false), Some(409));
        assert_eq!(status(Some(&f), None, true), Some(409));
        assert_eq!(status(Some(&f), None, false), None);
        assert_eq!(status(None, None, true), None);
        assert_eq!(status(None, Some(0), true), Some(409));
    }
}
