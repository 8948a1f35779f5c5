//! Commit: turns a session's parts into a file (protocols/box.md §Commit, rules 13–14).
//!
//! Three steps, so the lock is never held while hundreds of MiB are copied:
//! 1. under the lock: session alive (404), `Digest` present (400), the injected and
//!    the "still processing" 202s, the client's parts list equal to the stored one
//!    (400 `parts_mismatch`); collect the part files;
//! 2. without it: join the parts (hard links, no copy; see `Staged::join`), hash the
//!    whole with SHA-1, compare with `Digest` (400 `digest_mismatch`), apply `corrupt_rate`;
//! 3. under the lock again: session still alive, `If-Match` (412), name still free
//!    (409), then store the object and close the session — one step, so no other
//!    upload can take the name in between.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::BoxError;
use super::headers::{b64, parse_sha_digest};
use super::sessions::Target;
use super::tree::Content;
use super::{BoxApi, BoxState, NAME, check_if_match, header, read_json};

use crate::store::{Hashes, Staged};

/// 202 + `Retry-After: 1`: parts received but not yet processed.
fn accepted() -> Response {
    let mut resp = StatusCode::ACCEPTED.into_response();
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(1u32));
    resp
}

fn parts_mismatch(why: &str) -> BoxError {
    BoxError::new(
        StatusCode::BAD_REQUEST,
        "parts_mismatch",
        format!("Parts in the commit request do not match the uploaded parts: {why}"),
    )
}

/// Step 1's result.
enum Checked {
    /// Answer now (202).
    Answer(Response),
    /// Go on with these part files, in offset order.
    Assemble(Vec<std::path::PathBuf>, [u8; 20]),
}

/// `POST /2.0/files/upload_sessions/{id}/commit`.
pub(crate) async fn commit(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BoxError> {
    // The body is small JSON: read it whole first, so every answer below is read by
    // the client rather than racing its upload.
    let body = read_json(body).await;
    let (parts, digest) = match check(&api, &id, &headers, body)? {
        Checked::Answer(resp) => return Ok(resp),
        Checked::Assemble(parts, digest) => (parts, digest),
    };

    let staged = Staged::join(api.shared.store.tmp_dir(), parts, Hashes::SHA1)
        .await
        .map_err(BoxError::internal)?;
    if staged.digests.sha1 != Some(digest) {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "digest_mismatch",
            format!(
                "File digest was incorrect. Actual: {} Expected: {}",
                staged.digests.sha1.map(|d| b64(&d)).unwrap_or_default(),
                b64(&digest)
            ),
        ));
    }
    let (staged, corrupted) = api.maybe_corrupt(staged).await?;

    let ttl = api.shared.settings().session_ttl_s;
    let mut st = api.lock();
    st.live_session(&id, ttl)?;
    let file = finish(&api, &mut st, &id, &headers, staged)?;
    st.close_session(&id);
    api.count_corrupted(corrupted);
    tracing::info!(session = %id, file = %file["id"], "box complete: file committed");
    Ok((
        StatusCode::CREATED,
        Json(json!({"total_count": 1, "entries": [file]})),
    )
        .into_response())
}

/// Step 1 (see the module doc).
fn check(
    api: &BoxApi,
    id: &str,
    headers: &HeaderMap,
    body: Result<Value, BoxError>,
) -> Result<Checked, BoxError> {
    let settings = api.shared.settings();
    let mut st = api.lock();
    let s = st.live_session(id, settings.session_ttl_s)?;
    let digest =
        header(headers, "digest").ok_or_else(|| BoxError::bad_request("Missing Digest header"))?;
    let digest = parse_sha_digest(digest).map_err(BoxError::bad_request)?;
    s.commit_attempts += 1;
    if s.commit_attempts <= settings.box_commit_202 {
        api.counters.add_commit_202();
        return Ok(Checked::Answer(accepted()));
    }
    if s.processing(Instant::now()) {
        return Ok(Checked::Answer(accepted()));
    }
    let body = body?;
    let Some(listed) = body.get("parts").and_then(Value::as_array) else {
        return Err(BoxError::bad_request("Missing parameter: parts"));
    };
    if listed.len() != s.parts.len() {
        return Err(parts_mismatch(&format!(
            "{} parts listed, {} uploaded",
            listed.len(),
            s.parts.len()
        )));
    }
    for (given, stored) in listed.iter().zip(s.parts.values()) {
        let same = given.get("part_id").and_then(Value::as_str) == Some(stored.part_id.as_str())
            && given.get("offset").and_then(Value::as_u64) == Some(stored.offset)
            && given.get("size").and_then(Value::as_u64) == Some(stored.size)
            && given
                .get("sha1")
                .and_then(Value::as_str)
                .is_some_and(|h| h.eq_ignore_ascii_case(&stored.sha1));
        if !same {
            return Err(parts_mismatch(&format!(
                "listed {given} differs from uploaded {}",
                stored.json()
            )));
        }
    }
    // Stored parts never overlap (rule 10), so covering = contiguous from 0 to the end.
    let mut next = 0u64;
    for p in s.parts.values() {
        if p.offset != next {
            return Err(parts_mismatch(&format!("no part at offset {next}")));
        }
        next = p.offset + p.size;
    }
    if next != s.file_size {
        return Err(parts_mismatch(&format!(
            "parts cover {next} of {} bytes",
            s.file_size
        )));
    }
    let paths = s.parts.values().map(|p| p.path.clone()).collect();
    Ok(Checked::Assemble(paths, digest))
}

/// Step 3: checks that need the current tree, then stores. Returns the file JSON.
fn finish(
    api: &BoxApi,
    st: &mut BoxState,
    id: &str,
    headers: &HeaderMap,
    staged: Staged,
) -> Result<Value, BoxError> {
    let Some(session) = st.sessions.get(id) else {
        return Err(BoxError::not_found("upload session gone"));
    };
    match &session.target {
        Target::NewFile { folder, name } => {
            let (folder, name) = (folder.clone(), name.clone());
            check_if_match(headers, None)?;
            if st.tree.folder(&folder).is_none() {
                return Err(BoxError::not_found(format!(
                    "Could not find the specified resource: folder {folder}"
                )));
            }
            st.tree.check_free(&folder, &name, None)?;
            store_new_file(api, st, &folder, &name, staged)
        }
        Target::NewVersion { file, rename } => {
            let (file, rename) = (file.clone(), rename.clone());
            store_new_version(api, st, headers, &file, rename.as_deref(), staged)
        }
    }
}

/// Adds a new file with `staged` as content. The caller checked folder and name.
pub(crate) fn store_new_file(
    api: &BoxApi,
    st: &mut BoxState,
    folder: &str,
    name: &str,
    staged: Staged,
) -> Result<Value, BoxError> {
    let content = Content {
        size: staged.len,
        sha1: staged.sha1_hex(),
    };
    let file_id = st.tree.add_file(folder, name, content);
    let Some(file) = st.tree.file(&file_id) else {
        return Err(BoxError::internal("file vanished right after insertion"));
    };
    let path = st.tree.path(file);
    match api.shared.store.put(NAME, &file_id, &path, None, staged) {
        Ok(_) => {
            let file = st.tree.file(&file_id).map(|f| st.tree.file_json(f));
            Ok(file.unwrap_or(Value::Null))
        }
        Err(e) => {
            st.tree.remove(&file_id);
            Err(BoxError::internal(e))
        }
    }
}

/// Replaces file `id`'s content with `staged`, renaming it if asked; checks the
/// file exists (404), `If-Match` (412) and the new name (409).
pub(crate) fn store_new_version(
    api: &BoxApi,
    st: &mut BoxState,
    headers: &HeaderMap,
    id: &str,
    rename: Option<&str>,
    staged: Staged,
) -> Result<Value, BoxError> {
    let Some(file) = st.tree.file(id) else {
        return Err(BoxError::not_found(format!(
            "Could not find the specified resource: file {id}"
        )));
    };
    check_if_match(headers, Some(file.etag))?;
    let parent = file.parent.clone();
    if let Some(name) = rename {
        st.tree.check_free(&parent, name, Some(id))?;
    }
    let name = rename.unwrap_or(&file.name);
    let path = st.tree.path_in(&parent, name);
    // Store first: if the disk fails, the tree still describes the old content.
    let info = api
        .shared
        .store
        .put(NAME, id, &path, None, staged)
        .map_err(BoxError::internal)?;
    let content = Content {
        size: info.size,
        sha1: info.sha1,
    };
    st.tree.new_version(id, rename, content);
    Ok(st
        .tree
        .file(id)
        .map_or(Value::Null, |f| st.tree.file_json(f)))
}
