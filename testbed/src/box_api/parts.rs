//! Part upload, part listing and the upload plan (protocols/box.md §Uploading a
//! part, rules 5–12).
//!
//! An upload is judged from its headers first, under the lock, and its range is
//! reserved; the body is then streamed to a staging file (hashing as it goes) without
//! the lock; only a body of the right length and SHA-1 is moved into the session.
//! A request that fails anywhere, or is dropped by a reset, stores nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use super::error::BoxError;
use super::headers::{ContentRange, parse_content_range, parse_sha_digest};
use super::sessions::Part;
use super::{BoxApi, BoxState, header};
use crate::faults::body::drain;
use crate::hex::{hex, random_upper};
use crate::store::{Hashes, Staged};

/// The code of a 409 for a range another request is uploading right now.
const BUSY_RANGE: &str = "conflict";

/// A range reserved for one upload in flight. Dropping it (the request failed or
/// was cut) frees the range; [`Reservation::release`] does so under a lock already held.
struct Reservation {
    api: Arc<BoxApi>,
    session: String,
    /// (first, last) as pushed onto the session's `inflight`.
    range: (u64, u64),
    /// Set by `release`, so `Drop` does not lock again.
    released: bool,
}

impl Reservation {
    fn release(mut self, st: &mut BoxState) {
        if let Some(s) = st.sessions.get_mut(&self.session) {
            s.inflight.retain(|r| *r != self.range);
        }
        self.released = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.released {
            let mut st = self.api.lock();
            if let Some(s) = st.sessions.get_mut(&self.session) {
                s.inflight.retain(|r| *r != self.range);
            }
        }
    }
}

/// What the headers promised, once accepted.
struct Plan {
    range: ContentRange,
    /// The SHA-1 the `Digest` header promised.
    digest: [u8; 20],
    /// The session's parts directory.
    dir: std::path::PathBuf,
    reservation: Reservation,
}

/// Rules 4–10 that need only the headers and the session.
fn plan(api: &Arc<BoxApi>, id: &str, headers: &HeaderMap) -> Result<Plan, BoxError> {
    let ttl = api.shared.settings().session_ttl_s;
    let mut st = api.lock();
    let s = st.live_session(id, ttl)?;
    let range = header(headers, CONTENT_RANGE.as_str())
        .ok_or_else(|| BoxError::bad_request("Missing Content-Range header"))?;
    let digest =
        header(headers, "digest").ok_or_else(|| BoxError::bad_request("Missing Digest header"))?;
    let range = parse_content_range(range).map_err(BoxError::bad_request)?;
    let digest = parse_sha_digest(digest).map_err(BoxError::bad_request)?;
    if range.total != s.file_size {
        return Err(BoxError::range_not_satisfiable(format!(
            "Content-Range total {} does not match the session's file_size {}",
            range.total, s.file_size
        )));
    }
    // Every part but the last is exactly part_size and starts on a multiple of it; the
    // last ends at file_size - 1 (protocols/box.md §Uploading a part).
    let aligned = range.first % s.part_size == 0 && range.first < s.file_size;
    let want_last = (range.first.saturating_add(s.part_size))
        .min(s.file_size)
        .saturating_sub(1);
    if !aligned || range.last != want_last {
        return Err(BoxError::range_not_satisfiable(format!(
            "Content-Range bytes {}-{} does not fit part_size {} of a {}-byte file",
            range.first, range.last, s.part_size, s.file_size
        )));
    }
    if let Some(len) = header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok())
        && len != range.len()
    {
        return Err(BoxError::bad_request(format!(
            "Content-Length {len} does not match the Content-Range length {}",
            range.len()
        )));
    }
    let overlaps = |(a, b): (u64, u64)| a <= range.last && range.first <= b;
    if let Some(p) = s
        .parts
        .values()
        .find(|p| overlaps((p.offset, p.offset + p.size - 1)))
    {
        return Err(BoxError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_overlaps_existing_part",
            "Part overlaps with previously uploaded part",
        )
        .with_context(json!({ "conflicting_part": p.json() })));
    }
    if s.inflight.iter().any(|r| overlaps(*r)) {
        return Err(BoxError::new(
            StatusCode::CONFLICT,
            BUSY_RANGE,
            "The chunk conflicts with a chunk being uploaded now",
        ));
    }
    let r = (range.first, range.last);
    s.inflight.push(r);
    let dir = s.dir.clone();
    Ok(Plan {
        range,
        digest,
        dir,
        reservation: Reservation {
            api: api.clone(),
            session: id.to_string(),
            range: r,
            released: false,
        },
    })
}

/// Streams the body to staging; returns it only if exactly `want` bytes came.
/// Bytes past `want` are read and dropped so the client still gets our answer.
async fn receive(api: &BoxApi, body: Body, want: u64) -> Result<Staged, BoxError> {
    let mut staging = api
        .shared
        .store
        .staging(Hashes::SHA1)
        .map_err(BoxError::internal)?;
    let mut got = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| BoxError::bad_request(format!("Could not read the body: {e}")))?;
        got += chunk.len() as u64;
        if got <= want {
            staging.write(&chunk).await.map_err(BoxError::internal)?;
        }
    }
    if got != want {
        return Err(BoxError::bad_request(format!(
            "Body length {got} does not match the Content-Range length {want}"
        )));
    }
    staging.finish().await.map_err(BoxError::internal)
}

/// `PUT /2.0/files/upload_sessions/{id}`.
pub(crate) async fn upload(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BoxError> {
    let plan = match plan(&api, &id, &headers) {
        Ok(p) => p,
        // Another request for this range is being received (a client that died
        // mid-part, whose bytes still arrive): refused on its headers, without
        // reading a body that could not be stored anyway, and the connection closed,
        // as an HTTP/1.1 server must after answering before the body.
        Err(e) if e.code() == BUSY_RANGE => {
            let mut resp = e.into_response();
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Ok(resp);
        }
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let staged = receive(&api, body, plan.range.len()).await?;
    if staged.digests.sha1 != Some(plan.digest) {
        return Err(BoxError::precondition_failed(
            "The digest of the uploaded part does not match the Digest header",
        ));
    }
    let processing = Duration::from_millis(api.shared.settings().box_part_processing_ms);
    let ttl = api.shared.settings().session_ttl_s;
    let mut st = api.lock();
    let stored = keep_part(&mut st, &id, ttl, &plan, staged, processing);
    // Released under the lock we hold; the reservation's Drop would lock again.
    plan.reservation.release(&mut st);
    let part = stored?;
    tracing::info!(session = %id, offset = part["offset"].as_u64(), "box put_part: stored");
    Ok(Json(json!({ "part": part })).into_response())
}

/// Moves a verified part into its session.
fn keep_part(
    st: &mut BoxState,
    id: &str,
    ttl: u64,
    plan: &Plan,
    staged: Staged,
    processing: Duration,
) -> Result<serde_json::Value, BoxError> {
    // The session may have been aborted, committed or expired while the body came.
    let s = st.live_session(id, ttl)?;
    let dest = plan.dir.join(plan.range.first.to_string());
    staged.persist(&dest).map_err(BoxError::internal)?;
    let part = Part {
        part_id: random_upper(8),
        offset: plan.range.first,
        size: plan.range.len(),
        sha1: hex(&plan.digest),
        path: dest,
        ready_at: Instant::now() + processing,
    };
    let answer = part.json();
    s.parts.insert(part.offset, part);
    Ok(answer)
}

/// Parses an optional non-negative integer query parameter.
fn query_u64(q: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, BoxError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| BoxError::bad_request(format!("Invalid value for {name}: {v:?}"))),
    }
}

/// `GET /2.0/files/upload_sessions/{id}/parts?offset=&limit=` (rule 12).
pub(crate) async fn list(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, BoxError> {
    let Query(q) = query.map_err(|e| BoxError::bad_request(e.body_text()))?;
    let ttl = api.shared.settings().session_ttl_s;
    let mut st = api.lock();
    let s = st.live_session(&id, ttl)?;
    let offset = query_u64(&q, "offset", 0)?;
    // protocols/box.md §Resume: offsets above 10000 are refused, limit caps at 1000.
    if offset > 10_000 {
        return Err(BoxError::bad_request(format!(
            "Invalid value for offset: {offset} (max 10000)"
        )));
    }
    let limit = query_u64(&q, "limit", 100)?.min(1000);
    let entries: Vec<_> = s
        .parts
        .values()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(Part::json)
        .collect();
    Ok(Json(json!({
        "total_count": s.parts.len(),
        "limit": limit,
        "offset": offset,
        "order": [{"by": "offset", "direction": "ASC"}],
        "entries": entries,
    }))
    .into_response())
}

/// `POST /2.0/files/upload_sessions/{id}/plan` `{"parts": [{offset, size, sha512}]}`:
/// which parts the server already holds (newer SDKs call it before each part of a
/// new version, to skip unchanged parts). The emulator keeps no cross-session part
/// cache, so every part is a miss: a valid answer that makes the client upload all.
pub(crate) async fn plan_parts(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, BoxError> {
    let v = super::read_json(body).await;
    let ttl = api.shared.settings().session_ttl_s;
    api.lock().live_session(&id, ttl)?;
    let v = v?;
    let Some(listed) = v.get("parts").and_then(serde_json::Value::as_array) else {
        return Err(BoxError::bad_request("Missing parameter: parts"));
    };
    Ok(Json(json!({"upload_session_id": id, "hits": [], "misses": listed})).into_response())
}
