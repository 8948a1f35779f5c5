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

use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::catalog::StoredFile;
use super::error::IhError;
use super::target::Target;
use super::timestamp::format_ms;
use super::{InsightsHub, NAME};

/// The bytes a `Range` header asks for, judged against the file size.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Whole,
    /// First and last byte, inclusive, both inside the file.
    Span(u64, u64),
    Unsatisfiable,
}

fn wanted(range: Option<&str>, size: u64) -> Wanted {
    let Some(range) = range else {
        return Wanted::Whole;
    };
    let Some(spec) = range
        .trim()
        .strip_prefix("bytes=")
        .filter(|s| !s.contains(','))
    else {
        return Wanted::Unsatisfiable;
    };
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Unsatisfiable;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(a), num(b), a.is_empty()) {
        // bytes=-n: the last n bytes.
        (None, Some(n), true) if n > 0 && size > 0 => Wanted::Span(size - n.min(size), size - 1),
        // bytes=a- and bytes=a-b.
        (Some(first), None, false) if b.is_empty() && first < size => Wanted::Span(first, size - 1),
        (Some(first), Some(last), false) if first <= last && first < size => {
            Wanted::Span(first, last.min(size - 1))
        }
        _ => Wanted::Unsatisfiable,
    }
}

/// The file's metadata and an open handle on its bytes, taken together under the lock
/// so they describe the same version.
fn open(api: &InsightsHub, target: &Target) -> Result<(StoredFile, std::fs::File), IhError> {
    let st = api.lock();
    let missing = || IhError::not_found(format!("File {} not found.", target.filepath));
    let file = st.files.get(target).ok_or_else(missing)?.clone();
    let blob = api
        .shared
        .store
        .blob(NAME, &target.store_path())
        .ok_or_else(missing)?;
    let handle = std::fs::File::open(blob).map_err(IhError::internal)?;
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
    let mut f = tokio::fs::File::from_std(handle);
    f.seek(SeekFrom::Start(first))
        .await
        .map_err(IhError::internal)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        f.take(len),
        256 * 1024,
    ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let w = |r: &str, size| wanted(Some(r), size);
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(w("bytes=0-3", 10), Wanted::Span(0, 3));
        assert_eq!(w("bytes=2-100", 10), Wanted::Span(2, 9));
        assert_eq!(w("bytes=9-9", 10), Wanted::Span(9, 9));
        assert_eq!(w("bytes=4-", 10), Wanted::Span(4, 9));
        assert_eq!(w("bytes=-3", 10), Wanted::Span(7, 9));
        assert_eq!(w("bytes=-30", 10), Wanted::Span(0, 9));
        for bad in [
            "bytes=10-",
            "bytes=10-12",
            "bytes=-0",
            "bytes=3-2",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
        ] {
            assert_eq!(w(bad, 10), Wanted::Unsatisfiable, "{bad}");
        }
        assert_eq!(w("bytes=0-", 0), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-1", 0), Wanted::Unsatisfiable);
    }
}
