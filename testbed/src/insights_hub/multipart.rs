//! Multi-part uploads: start, parts, abort and expiry (protocols/insights-hub.md
//! §Multi-part sequence, rules 7, 8, 10, 11, 13). Completion is in `complete.rs`.
//!
//! - `upload=start` takes no body (non-empty → 400) and creates the upload of the path,
//!   or resets it (its parts are dropped) if one is in progress (assumed) → 200.
//! - `part=N` needs an upload in progress (404, assumed), stores or overwrites part N
//!   → 200. A part below `ih_min_part_size` is 400 here, unless
//!   `ih_part_size_checked_at_complete` moves the check to completion.
//! - `upload=abort` deletes the upload and its parts → 204; no upload → 404 (assumed).
//! - An upload whose last start or part is `ih_part_ttl_s` old is purged when next
//!   looked at (the service: "parts ... are automatically deleted after 2 days";
//!   counting from the last activity is assumed). Lowering the knob expires open
//!   uploads early, so a test needs no long sleep.
//!
//! Start, parts and completion of an update carry the current etag in `If-Match`
//! (rule 10; see `catalog`). Success answers have an empty body (the service's codes
//! for these steps are unconfirmed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::catalog::check_if_match;
use super::error::IhError;
use super::headers::Meta;
use super::target::Target;
use super::{IhState, InsightsHub, NAME, now_ms};
use crate::faults::Settings;
use crate::faults::body::drain;

/// One multi-part upload in progress.
#[derive(Debug)]
pub(crate) struct Upload {
    /// Random; names the parts directory, and lets a request that awaited its body
    /// check that the upload is still the one it judged.
    pub(crate) id: String,
    /// `sessions/insights-hub/<id>/`, one file per part number; removed with the upload.
    pub(crate) dir: PathBuf,
    /// Stored parts by number.
    pub(crate) parts: BTreeMap<u32, Part>,
    /// The start or the last part stored; the TTL counts from here.
    pub(crate) touched: Instant,
}

/// One stored part.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    /// When it was (last) stored, epoch ms: `fileslist`'s `created`.
    pub(crate) created_ms: i64,
}

impl Upload {
    pub(crate) fn expired(&self, ttl_s: u64, now: Instant) -> bool {
        now.saturating_duration_since(self.touched) >= Duration::from_secs(ttl_s)
    }

    /// Deletes the parts directory. Called once the upload has left the map.
    pub(crate) fn discard(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove parts");
        }
    }
}

impl IhState {
    /// The upload of `target` if one is in progress; an expired one is purged first.
    pub(crate) fn live_upload(
        &mut self,
        target: &Target,
        ttl_s: u64,
    ) -> Result<&mut Upload, IhError> {
        if self
            .uploads
            .get(target)
            .is_some_and(|u| u.expired(ttl_s, Instant::now()))
            && let Some(old) = self.uploads.remove(target)
        {
            tracing::info!(file = %target.store_path(), "insights-hub upload expired: parts purged");
            old.discard();
        }
        self.uploads
            .get_mut(target)
            .ok_or_else(|| no_upload(target))
    }

    /// The upload of `target` if it is still the one with `id`.
    pub(crate) fn same_upload(
        &mut self,
        target: &Target,
        id: &str,
        ttl_s: u64,
    ) -> Result<&mut Upload, IhError> {
        let u = self.live_upload(target, ttl_s)?;
        if u.id == id {
            Ok(u)
        } else {
            Err(IhError::not_found(format!(
                "The multi-part upload of {} was restarted meanwhile.",
                target.filepath
            )))
        }
    }
}

pub(crate) fn no_upload(target: &Target) -> IhError {
    IhError::not_found(format!(
        "No multi-part upload in progress for {}.",
        target.filepath
    ))
}

/// Reads and counts a body that should be empty.
async fn body_len(body: Body) -> u64 {
    let mut n = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        n += chunk.len() as u64;
    }
    n
}

/// `?upload=start` (rule 7).
pub(crate) async fn start(
    api: &Arc<InsightsHub>,
    s: &Settings,
    target: Target,
    meta: Meta,
    body: Body,
) -> Result<Response, IhError> {
    if body_len(body).await > 0 {
        return Err(IhError::bad_request(
            "The request to start a multi-part upload does not accept a file part.",
        ));
    }
    let id = crate::hex::hex(&fastrand::u128(..).to_le_bytes());
    let dir = api
        .shared
        .store
        .session_dir(NAME, &id)
        .map_err(IhError::internal)?;
    let upload = Upload {
        id,
        dir,
        parts: BTreeMap::new(),
        touched: Instant::now(),
    };
    let mut st = api.lock();
    if let Err(e) = check_if_match(st.files.get(&target), meta.if_match, s.ih_require_if_match) {
        drop(st);
        upload.discard();
        return Err(e);
    }
    if let Some(old) = st.uploads.insert(target.clone(), upload) {
        tracing::info!(file = %target.store_path(), parts = old.parts.len(), "insights-hub upload restarted");
        old.discard();
    } else {
        tracing::info!(file = %target.store_path(), "insights-hub upload started");
    }
    Ok(StatusCode::OK.into_response())
}

/// The id of the live upload a part or completion names, with `If-Match` checked
/// (rules 8–10), before its body is read; a refusal reads the body first, so the
/// client sees the answer rather than a broken pipe.
pub(crate) async fn admit(
    api: &InsightsHub,
    s: &Settings,
    target: &Target,
    meta: &Meta,
    body: Body,
) -> Result<(String, Body), IhError> {
    let early = {
        let mut st = api.lock();
        let id = st
            .live_upload(target, s.ih_part_ttl_s)
            .map(|u| u.id.clone());
        id.and_then(|id| {
            check_if_match(st.files.get(target), meta.if_match, s.ih_require_if_match)?;
            Ok(id)
        })
    };
    match early {
        Ok(id) => Ok((id, body)),
        Err(e) => {
            drain(body).await;
            Err(e)
        }
    }
}

/// `?part=N` (rule 8).
pub(crate) async fn put_part(
    api: &Arc<InsightsHub>,
    s: &Settings,
    target: Target,
    meta: Meta,
    n: u32,
    body: Body,
) -> Result<Response, IhError> {
    let (id, body) = admit(api, s, &target, &meta, body).await?;
    let staged = api.receive(body).await?;
    if !s.ih_part_size_checked_at_complete && staged.len < s.ih_min_part_size {
        return Err(too_small(n, staged.len, s.ih_min_part_size));
    }
    let mut st = api.lock();
    // The file may have been replaced, the upload aborted, restarted or expired while
    // the body came.
    check_if_match(st.files.get(&target), meta.if_match, s.ih_require_if_match)?;
    let u = st.same_upload(&target, &id, s.ih_part_ttl_s)?;
    let path = u.dir.join(n.to_string());
    let size = staged.len;
    // A rename: a part re-sent with the same number replaces the earlier one whole.
    staged.persist(&path).map_err(IhError::internal)?;
    u.parts.insert(
        n,
        Part {
            path,
            size,
            created_ms: now_ms(),
        },
    );
    u.touched = Instant::now();
    tracing::info!(file = %target.store_path(), part = n, size, "insights-hub part stored");
    Ok(StatusCode::OK.into_response())
}

pub(crate) fn too_small(n: u32, size: u64, min: u64) -> IhError {
    IhError::bad_request(format!(
        "Part {n} has {size} bytes; every part but the last must have at least {min}."
    ))
}

/// `?upload=abort` (rule 11). The body, if any, is read and ignored.
pub(crate) async fn abort(
    api: &Arc<InsightsHub>,
    s: &Settings,
    target: &Target,
    body: Body,
) -> Result<Response, IhError> {
    drain(body).await;
    let mut st = api.lock();
    st.live_upload(target, s.ih_part_ttl_s)?;
    if let Some(old) = st.uploads.remove(target) {
        drop(st);
        tracing::info!(file = %target.store_path(), parts = old.parts.len(), "insights-hub upload aborted");
        old.discard();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_from_the_last_touch() {
        let t0 = Instant::now();
        let mut u = Upload {
            id: "x".into(),
            dir: PathBuf::new(),
            parts: BTreeMap::new(),
            touched: t0,
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!u.expired(10, at(9)));
        assert!(u.expired(10, at(10)));
        u.touched = at(8); // a part arrived
        assert!(!u.expired(10, at(17)));
        assert!(u.expired(10, at(18)));
        assert!(u.expired(0, u.touched), "a TTL of 0 expires at once");
    }
}
