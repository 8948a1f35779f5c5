//! The Box emulator (protocols/box.md), mounted at `/box`: upload sessions, direct
//! upload, the preflight check, file info and download, and enough of folders for a
//! client to mirror a tree. Paths after the prefix are Box's own (`/2.0/files/upload_sessions`, ...), so a
//! client with API and upload base `http://ADDR/box` needs no other change.
//!
//! State: one mutex over the folder tree and the open sessions. It is never held
//! across an `.await`: handlers check and reserve under the lock, stream bodies to
//! disk without it, then re-check and commit under it again.
//!
//! Files: `sessions` (create, status, abort, session state), `parts` (upload, list),
//! `commit`, `direct` (multipart upload), `preflight` (`OPTIONS /files/content`),
//! `files`, `folders`, `tree` (names, ids, JSON), `headers` (Content-Range, Digest),
//! `error` (ClientError), `auth`.

mod auth;
mod commit;
mod direct;
mod error;
mod files;
mod folders;
mod headers;
mod parts;
mod preflight;
mod sessions;
mod tree;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::app::Shared;
use crate::emulator::{Emulator, Fault};
use crate::stats::EmulatorCounters;
use crate::store::Staged;
use error::BoxError;
use sessions::Session;
use tree::Tree;

/// Path prefix and stats key.
const NAME: &str = "box";

pub(crate) struct BoxApi {
    pub(crate) shared: Arc<Shared>,
    /// This emulator's counters (corruptions and 202s are counted here).
    counters: Arc<EmulatorCounters>,
    state: Mutex<BoxState>,
}

/// Everything the Box account holds besides file contents (those are in the store).
pub(crate) struct BoxState {
    pub(crate) tree: Tree,
    /// Open sessions by id. A session leaves the map when committed, aborted, or
    /// found expired; its parts directory goes with it.
    pub(crate) sessions: HashMap<String, Session>,
}

impl BoxApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        BoxApi {
            counters: shared.counters.register(NAME),
            shared,
            state: Mutex::new(BoxState {
                tree: Tree::new(),
                sessions: HashMap::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BoxState> {
        // A panic in a handler while holding the lock leaves at worst one session or
        // item half-updated; serving on beats wedging every later test.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://ADDR/box/2.0`: the base of absolute URLs in answers.
    pub(crate) fn api_base(&self) -> String {
        format!("{}/{NAME}/2.0", self.shared.base_url)
    }

    /// Applies `corrupt_rate` to content about to be stored. Returns whether it was
    /// corrupted; the caller counts it with [`BoxApi::count_corrupted`] once stored.
    pub(crate) async fn maybe_corrupt(&self, staged: Staged) -> Result<(Staged, bool), BoxError> {
        let settings = self.shared.settings();
        if crate::faults::roll(settings.corrupt_rate) {
            let bad = staged
                .corrupt(settings.corrupt_at())
                .await
                .map_err(BoxError::internal)?;
            Ok((bad, true))
        } else {
            Ok((staged, false))
        }
    }

    pub(crate) fn count_corrupted(&self, corrupted: bool) {
        if corrupted {
            tracing::info!("corrupt fault: object stored with one byte flipped");
            self.counters.add_corrupted();
        }
    }
}

impl Emulator for BoxApi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(self: Arc<Self>) -> Router {
        let s = "/2.0/files/upload_sessions/{id}";
        Router::new()
            .route("/2.0/files/upload_sessions", post(sessions::create))
            .route(
                "/2.0/files/{id}/upload_sessions",
                post(sessions::create_version),
            )
            .route(
                s,
                get(sessions::status)
                    .put(parts::upload)
                    .delete(sessions::abort),
            )
            .route(&format!("{s}/parts"), get(parts::list))
            .route(&format!("{s}/plan"), post(parts::plan_parts))
            .route(&format!("{s}/commit"), post(commit::commit))
            .route(
                "/2.0/files/content",
                post(direct::upload_new).options(preflight::check),
            )
            .route(
                "/2.0/files/{id}/content",
                get(files::download).post(direct::upload_version),
            )
            .route("/2.0/files/{id}", get(files::info).delete(files::delete))
            .route("/2.0/folders", post(folders::create))
            .route(
                "/2.0/folders/{id}",
                get(folders::info).delete(folders::delete),
            )
            .route("/2.0/folders/{id}/items", get(folders::items))
            .fallback(not_found)
            // Part and file bodies are streamed to disk; JSON bodies are capped where read.
            .layer(DefaultBodyLimit::disable())
            .layer(from_fn_with_state(self.clone(), auth::require_token))
            .with_state(self)
    }

    fn fault_response(&self, fault: Fault) -> Response {
        match fault {
            Fault::Unavailable => BoxError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
            )
            .with_retry_after(1)
            .into_response(),
            Fault::RateLimited => BoxError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "Request rate limit exceeded, please try again later",
            )
            .with_retry_after(1)
            .into_response(),
        }
    }

    fn sessions_open(&self) -> u64 {
        let ttl = self.shared.settings().session_ttl_s;
        let now = SystemTime::now();
        self.lock()
            .sessions
            .values()
            .filter(|s| !s.expired(ttl, now))
            .count() as u64
    }
}

async fn not_found(body: Body) -> BoxError {
    crate::faults::body::drain(body).await;
    BoxError::not_found("Not Found")
}

/// Largest JSON request body read (a commit listing 10,000 parts is about 1 MB).
const JSON_LIMIT: usize = 16 << 20;

/// Reads a JSON request body; anything unparsable is Box's 400 `bad_request`.
pub(crate) async fn read_json(body: Body) -> Result<Value, BoxError> {
    let bytes = axum::body::to_bytes(body, JSON_LIMIT)
        .await
        .map_err(|e| BoxError::bad_request(format!("Could not read the request body: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| BoxError::bad_request(format!("Invalid JSON in the request body: {e}")))
}

/// A header as text, if present and visible ASCII.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks `If-Match` against an item's etag (quotes tolerated). With no current
/// item (`None`), any `If-Match` fails, as HTTP says for a missing resource.
pub(crate) fn check_if_match(headers: &HeaderMap, etag: Option<u64>) -> Result<(), BoxError> {
    let Some(want) = header(headers, "if-match") else {
        return Ok(());
    };
    let want = want.trim().trim_matches('"');
    match etag {
        Some(e) if want == "*" || want == e.to_string() => Ok(()),
        _ => Err(BoxError::precondition_failed(
            "The resource has been modified. Please retrieve the resource again and retry",
        )),
    }
}
