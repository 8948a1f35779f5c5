//! The Edgio (formerly Limelight) Origin Storage emulator (protocols/edgio.md),
//! mounted at `/edgio`. Upload host paths follow the prefix as the service has them
//! (`/account/login`, `/jsonrpc`, `/jsonrpc2`, `/post/raw`, `/post/file`,
//! `/post/directory`, `/multipart/{create,piece,complete}`); the delivery host is
//! `/origin/{account}/{path}`, and the same `HEAD`/`GET` also answers on the upload host
//! as `/{account}/{path}` (the seed does both).
//!
//! State: one mutex over the sessions, the name space (directories and file metadata;
//! the bytes are in the shared store) and the multipart uploads. It is never held
//! across an `.await`: handlers judge under it, stream bodies to staging files without
//! it, then judge again and commit under it. Every request first brings the uploads up
//! to date with the clock (`Edgio::settled`): joins, expiry and token lifetimes are
//! computed from timestamps and the current knobs, not from timers.
//!
//! Files, one job each: `auth` (tokens, rules 1–3), `login` (HTTP login), `jsonrpc/`
//! (envelope and methods, rule 4), `post_raw` (rule 5), `post_file`, `directory`,
//! `multipart/` (rules 6–11), `origin` (rule 12), `rate` (rule 13), `receive` (bodies to
//! disk), `paths`, `tree`, `headers`, `error`.

mod auth;
mod directory;
mod error;
mod headers;
mod jsonrpc;
mod login;
mod multipart;
mod origin;
mod paths;
mod post_file;
mod post_raw;
mod rate;
mod receive;
mod tree;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::Shared;
use crate::emulator::{Emulator, Fault};
use crate::faults::Settings;
use crate::stats::EmulatorCounters;
use crate::store::Staged;
use auth::{Caller, Sessions};
use error::{Agile, UNAVAILABLE};
use multipart::Uploads;
use tree::{FileMeta, Tree};

/// Path prefix and stats key.
pub(crate) const NAME: &str = "edgio";

/// The type of a file stored without one.
const DEFAULT_TYPE: &str = "application/octet-stream";

pub(crate) struct Edgio {
    pub(crate) shared: Arc<Shared>,
    /// This emulator's counters (corruptions, checksum mismatches).
    counters: Arc<EmulatorCounters>,
    state: Mutex<EdState>,
    /// The current rate-limit window (rule 13).
    rate: Mutex<rate::Window>,
}

/// Everything the account holds besides file bytes.
#[derive(Debug, Default)]
pub(crate) struct EdState {
    pub(crate) sessions: Sessions,
    pub(crate) tree: Tree,
    pub(crate) uploads: Uploads,
}

impl Edgio {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Edgio {
            counters: shared.counters.register(NAME),
            shared,
            state: Mutex::new(EdState::default()),
            rate: Mutex::new(rate::Window::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, EdState> {
        // A panic in a handler while holding the lock leaves at worst one entry
        // half-updated; serving on beats wedging every later test.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.sessions.follow_password(self.shared.secret_generation());
        st
    }

    /// The state, locked, with joins and expiry brought up to date.
    pub(crate) fn settled(&self, s: &Settings) -> MutexGuard<'_, EdState> {
        let mut st = self.lock();
        multipart::settle(&mut st, self, s);
        st
    }

    /// The caller of an HTTP call (rule 3): 401 without a token, 403 if it is not live.
    pub(crate) fn http_caller(
        &self,
        s: &Settings,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Caller, Agile> {
        let token = auth::http_token(headers, query)?;
        self.lock()
            .sessions
            .caller(token, s.edgio_token_ttl_s)
            .ok_or_else(Agile::bad_token)
    }

    /// `corrupt_rate` applied to bytes about to be stored; whether a byte was flipped.
    pub(crate) async fn maybe_corrupt(
        &self,
        s: &Settings,
        staged: Staged,
    ) -> Result<(Staged, bool), Agile> {
        if crate::faults::roll(s.corrupt_rate) {
            let bad = staged
                .corrupt(s.corrupt_at())
                .await
                .map_err(Agile::internal)?;
            Ok((bad, true))
        } else {
            Ok((staged, false))
        }
    }

    /// Stores `staged` as the file `key` (replacing any) and records it in `tree`;
    /// the caller checked `Tree::can_store` under the same lock.
    pub(crate) fn publish(
        &self,
        tree: &mut Tree,
        key: &str,
        staged: Staged,
        mimetype: Option<String>,
        mtime: Option<u64>,
        corrupted: bool,
    ) -> std::io::Result<()> {
        let mimetype = mimetype.unwrap_or_else(|| DEFAULT_TYPE.to_string());
        let info = self
            .shared
            .store
            .put(NAME, key, key, Some(&mimetype), staged)?;
        let stored = SystemTime::now();
        tree.store(
            key,
            FileMeta {
                size: info.size,
                sha256: info.sha256,
                mimetype,
                stored,
                mtime: mtime.unwrap_or_else(|| crate::clock::unix_secs(stored)),
            },
        );
        if corrupted {
            tracing::info!(
                file = key,
                "corrupt fault: object stored with one byte flipped"
            );
            self.counters.add_corrupted();
        }
        Ok(())
    }

    pub(crate) fn count_digest_mismatch(&self) {
        self.counters.add_digest_mismatch();
    }
}

impl Emulator for Edgio {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(self: Arc<Self>) -> Router {
        let upload_host = Router::new()
            .route("/account/login", post(login::login))
            .route("/jsonrpc", post(jsonrpc::handle))
            .route("/jsonrpc2", post(jsonrpc::handle))
            .route("/post/raw", post(post_raw::post_raw))
            .route("/post/file", post(post_file::post_file))
            .route("/post/directory", post(directory::post_directory))
            .route("/multipart/create", post(multipart::create::http))
            .route("/multipart/piece", post(multipart::piece::http))
            .route("/multipart/complete", post(multipart::complete::http))
            // The seed also HEADs the stored file on the upload host (`get` answers
            // HEAD too, without the body).
            .route("/{account}/{*path}", get(origin::get))
            .layer(from_fn_with_state(self.clone(), rate::limit));
        let delivery_host = Router::new().route("/origin/{account}/{*path}", get(origin::get));
        upload_host
            .merge(delivery_host)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            // Bodies are streamed to disk; none is read whole.
            .layer(DefaultBodyLimit::disable())
            .with_state(self)
    }

    fn fault_response(&self, fault: Fault) -> Response {
        let status = match fault {
            Fault::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Fault::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        };
        Agile::new(status, UNAVAILABLE)
            .header("retry-after", 1)
            .into_response()
    }

    fn sessions_open(&self) -> u64 {
        let s = self.shared.settings();
        self.settled(&s).uploads.open() as u64
    }
}

/// An unknown URL: `-7` ("invalid URL", protocols/edgio.md §Multipart 2).
async fn not_found(body: Body) -> Agile {
    crate::faults::body::drain(body).await;
    Agile::new(StatusCode::NOT_FOUND, -7)
}

/// Only GET/POST/HEAD are served (protocols/edgio.md §Hosts).
async fn method_not_allowed(body: Body) -> Agile {
    crate::faults::body::drain(body).await;
    Agile::new(StatusCode::METHOD_NOT_ALLOWED, -7)
}
