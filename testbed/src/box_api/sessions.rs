//! Upload sessions: their state, and the create / status / abort calls
//! (protocols/box.md §Session lifecycle, rules 2–4 and 15).
//!
//! A session's parts live in `sessions/box/<id>/<offset>` in the store. A session ends
//! when committed, aborted, or first touched after its expiry; every later call on it
//! is 404 `not_found` (rule 4). Expiry is `created + session_ttl_s` with the ttl
//! current at the time of the call, so lowering the knob expires open sessions early.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::error::BoxError;
use super::tree::check_name;
use super::{BoxApi, BoxState, NAME, read_json};
use crate::clock::iso8601;
use crate::hex::random_upper;

/// One open upload session.
pub(crate) struct Session {
    /// 32 upper-case hex digits, as Box's.
    pub(crate) id: String,
    pub(crate) target: Target,
    pub(crate) file_size: u64,
    /// Dictated at creation from `box_part_size`; later changes of the knob do not
    /// affect this session.
    pub(crate) part_size: u64,
    pub(crate) created: SystemTime,
    /// Stored parts by offset. Immutable once inserted (rule 10).
    pub(crate) parts: BTreeMap<u64, Part>,
    /// Ranges (first, last) whose bodies are being received now; a second upload
    /// overlapping one of them gets 409 until the first ends.
    pub(crate) inflight: Vec<(u64, u64)>,
    /// Commit calls so far, for `box_commit_202`.
    pub(crate) commit_attempts: u32,
    /// Where the parts are; removed with the session.
    pub(crate) dir: PathBuf,
}

/// What a commit will create.
pub(crate) enum Target {
    /// `POST /files/upload_sessions`: a new file `name` in `folder`.
    NewFile { folder: String, name: String },
    /// `POST /files/{id}/upload_sessions`: a new version of `file`, maybe renamed.
    NewVersion {
        file: String,
        rename: Option<String>,
    },
}

/// One stored part.
pub(crate) struct Part {
    /// 8 upper-case hex digits, fresh per part.
    pub(crate) part_id: String,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// Lower-case hex SHA-1 of the part.
    pub(crate) sha1: String,
    pub(crate) path: PathBuf,
    /// Until then the part is "processing" (`box_part_processing_ms`).
    pub(crate) ready_at: Instant,
}

impl Part {
    pub(crate) fn json(&self) -> Value {
        json!({"part_id": self.part_id, "offset": self.offset, "size": self.size, "sha1": self.sha1})
    }
}

impl Session {
    pub(crate) fn expires_at(&self, ttl_s: u64) -> SystemTime {
        self.created + Duration::from_secs(ttl_s)
    }

    pub(crate) fn expired(&self, ttl_s: u64, now: SystemTime) -> bool {
        now >= self.expires_at(ttl_s)
    }

    pub(crate) fn total_parts(&self) -> u64 {
        self.file_size.div_ceil(self.part_size)
    }

    pub(crate) fn processing(&self, now: Instant) -> bool {
        self.parts.values().any(|p| p.ready_at > now)
    }

    fn processed(&self, now: Instant) -> usize {
        self.parts.values().filter(|p| p.ready_at <= now).count()
    }
}

impl BoxState {
    /// The open session `id`, or 404 `not_found`. A session found expired is closed
    /// here, so its parts are freed the first time anyone looks.
    pub(crate) fn live_session(&mut self, id: &str, ttl_s: u64) -> Result<&mut Session, BoxError> {
        let expired = match self.sessions.get(id) {
            None => return Err(session_gone(id)),
            Some(s) => s.expired(ttl_s, SystemTime::now()),
        };
        if expired {
            self.close_session(id);
            return Err(session_gone(id));
        }
        self.sessions.get_mut(id).ok_or_else(|| session_gone(id))
    }

    /// Removes a session and its parts.
    pub(crate) fn close_session(&mut self, id: &str) {
        if let Some(s) = self.sessions.remove(id) {
            // Parts are at most a few files of part_size; unlinking is quick.
            let _ = std::fs::remove_dir_all(&s.dir);
        }
    }
}

fn session_gone(id: &str) -> BoxError {
    BoxError::not_found(format!(
        "Could not find the specified resource: upload session {id}"
    ))
}

impl BoxApi {
    pub(crate) fn session_json(&self, s: &Session, ttl_s: u64) -> Value {
        let url = format!("{}/files/upload_sessions/{}", self.api_base(), s.id);
        json!({
            "id": s.id,
            "type": "upload_session",
            "session_expires_at": iso8601(s.expires_at(ttl_s)),
            "part_size": s.part_size,
            "total_parts": s.total_parts(),
            "num_parts_processed": s.processed(Instant::now()),
            "session_endpoints": {
                "upload_part": url,
                "commit": format!("{url}/commit"),
                "abort": url,
                "list_parts": format!("{url}/parts"),
                "status": url,
                "log_event": format!("{url}/log"),
                "plan": format!("{url}/plan"),
            },
        })
    }

    /// Opens a session for `target` (checked by the caller) and answers 201.
    fn open_session(
        &self,
        st: &mut BoxState,
        target: Target,
        file_size: u64,
    ) -> Result<Response, BoxError> {
        let settings = self.shared.settings();
        let id = random_upper(32);
        let dir = self
            .shared
            .store
            .session_dir(NAME, &id)
            .map_err(BoxError::internal)?;
        let session = Session {
            id: id.clone(),
            target,
            file_size,
            part_size: settings.box_part_size,
            created: SystemTime::now(),
            parts: BTreeMap::new(),
            inflight: Vec::new(),
            commit_attempts: 0,
            dir,
        };
        let body = self.session_json(&session, settings.session_ttl_s);
        st.sessions.insert(id.clone(), session);
        tracing::info!(session = %id, file_size, "box begin: session created");
        Ok((StatusCode::CREATED, Json(body)).into_response())
    }
}

/// `file_size` from a create body: missing → `missing_file_size`, anything but a
/// non-negative integer → `invalid_file_size`, below the minimum → `file_size_too_small`.
fn file_size(v: &Value, min: u64) -> Result<u64, BoxError> {
    let size = match v.get("file_size") {
        None | Some(Value::Null) => {
            return Err(BoxError::new(
                StatusCode::BAD_REQUEST,
                "missing_file_size",
                "Missing parameter: file_size",
            ));
        }
        Some(x) => x.as_u64().ok_or_else(|| {
            BoxError::new(
                StatusCode::BAD_REQUEST,
                "invalid_file_size",
                format!("Invalid value for file_size: {x}"),
            )
        })?,
    };
    if size < min {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "file_size_too_small",
            format!("File size {size} is less than minimum allowed for this API: {min}"),
        ));
    }
    Ok(size)
}

/// `POST /2.0/files/upload_sessions` (rule 2, 3).
pub(crate) async fn create(
    State(api): State<Arc<BoxApi>>,
    body: Body,
) -> Result<Response, BoxError> {
    let v = read_json(body).await?;
    let folder = match v.get("folder_id") {
        None | Some(Value::Null) => {
            return Err(BoxError::new(
                StatusCode::BAD_REQUEST,
                "missing_destination",
                "Missing parameter: folder_id",
            ));
        }
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(BoxError::new(
                StatusCode::BAD_REQUEST,
                "invalid_folder_id",
                format!("Invalid value for folder_id: {other}"),
            ));
        }
    };
    let settings = api.shared.settings();
    let size = file_size(&v, settings.box_min_session_size)?;
    let name = match v.get("file_name") {
        None | Some(Value::Null) => {
            return Err(BoxError::new(
                StatusCode::BAD_REQUEST,
                "missing_file_name",
                "Missing parameter: file_name",
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(BoxError::item_name_invalid(format!(
                "Item name invalid: {other}"
            )));
        }
    };
    check_name(&name)?;
    let mut st = api.lock();
    if st.tree.folder(&folder).is_none() {
        return Err(BoxError::not_found(format!(
            "Could not find the specified resource: folder {folder}"
        )));
    }
    // Box's preflight check happens at creation (protocols/box.md §Session lifecycle).
    st.tree.check_free(&folder, &name, None)?;
    api.open_session(&mut st, Target::NewFile { folder, name }, size)
}

/// `POST /2.0/files/{id}/upload_sessions`: a session for a new version.
pub(crate) async fn create_version(
    State(api): State<Arc<BoxApi>>,
    Path(file): Path<String>,
    body: Body,
) -> Result<Response, BoxError> {
    let v = read_json(body).await?;
    let size = file_size(&v, api.shared.settings().box_min_session_size)?;
    let rename = match v.get("file_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            check_name(s)?;
            Some(s.clone())
        }
        Some(other) => {
            return Err(BoxError::item_name_invalid(format!(
                "Item name invalid: {other}"
            )));
        }
    };
    let mut st = api.lock();
    let Some(f) = st.tree.file(&file) else {
        return Err(BoxError::not_found(format!(
            "Could not find the specified resource: file {file}"
        )));
    };
    if let Some(name) = &rename {
        let parent = f.parent.clone();
        st.tree.check_free(&parent, name, Some(&file))?;
    }
    api.open_session(&mut st, Target::NewVersion { file, rename }, size)
}

/// `GET /2.0/files/upload_sessions/{id}`.
pub(crate) async fn status(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
) -> Result<Response, BoxError> {
    let ttl = api.shared.settings().session_ttl_s;
    let mut st = api.lock();
    let s = st.live_session(&id, ttl)?;
    Ok(Json(api.session_json(s, ttl)).into_response())
}

/// `DELETE /2.0/files/upload_sessions/{id}` → 204; parts discarded (rule 15).
pub(crate) async fn abort(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
) -> Result<Response, BoxError> {
    let ttl = api.shared.settings().session_ttl_s;
    let mut st = api.lock();
    st.live_session(&id, ttl)?;
    st.close_session(&id);
    tracing::info!(session = %id, "box abort: session closed");
    Ok(StatusCode::NO_CONTENT.into_response())
}
