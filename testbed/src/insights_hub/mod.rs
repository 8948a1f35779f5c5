//! The Insights Hub IoT File Service v3 emulator (protocols/insights-hub.md), mounted at
//! `/insights-hub`. Paths after the prefix are the service's own
//! (`/api/iotfile/v3/files/{entityId}/{filepath}`, ...), so a client whose gateway URL is
//! `http://ADDR/insights-hub` needs no other change.
//!
//! State: one mutex over the stored files' metadata and the multi-part uploads in
//! progress. It is never held across an `.await`: handlers check under the lock, stream
//! bodies to staging files without it, then check again and commit under it. A
//! multi-part upload is keyed by (entityId, filepath) alone, as the service has no
//! upload id; an internal id tells a request whether the upload it checked before its
//! body arrived is still the one there (not aborted, restarted or expired meanwhile).
//!
//! Files: `put` (query → operation), `single`, `multipart` (start, part, abort, expiry),
//! `complete`, `fileslist`, `search` with `filter`, `download` (GET/HEAD with Range,
//! DELETE), `catalog` (stored files, etags, If-Match), `target` (entityId and file path),
//! `headers` and `timestamp` (upload metadata), `gateway` (the 502 timeout), `auth`,
//! `error`.

mod auth;
mod catalog;
mod complete;
mod download;
mod error;
mod fileslist;
mod filter;
mod gateway;
mod headers;
mod multipart;
mod put;
mod search;
mod single;
mod target;
mod timestamp;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;

use crate::app::Shared;
use crate::emulator::{Emulator, Fault};
use crate::stats::EmulatorCounters;
use crate::store::{Hashes, Staged};
use catalog::StoredFile;
use error::IhError;
use multipart::Upload;
use target::Target;

/// Path prefix and stats key.
const NAME: &str = "insights-hub";

/// Where the service's API lives under the prefix.
const API: &str = "/api/iotfile/v3";

pub(crate) struct InsightsHub {
    pub(crate) shared: Arc<Shared>,
    /// This emulator's counters (corruptions are counted here).
    counters: Arc<EmulatorCounters>,
    state: Mutex<IhState>,
}

/// Everything the tenant holds besides file contents (those are in the store).
pub(crate) struct IhState {
    /// Stored files, by asset then path (the order search lists them in).
    pub(crate) files: BTreeMap<Target, StoredFile>,
    /// Multi-part uploads in progress. One leaves the map when completed, aborted,
    /// restarted (replaced) or found expired; its parts directory goes with it.
    pub(crate) uploads: HashMap<Target, Upload>,
}

impl InsightsHub {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        InsightsHub {
            counters: shared.counters.register(NAME),
            shared,
            state: Mutex::new(IhState {
                files: BTreeMap::new(),
                uploads: HashMap::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, IhState> {
        // A panic in a handler while holding the lock leaves at worst one upload or file
        // entry half-updated; serving on beats wedging every later test.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://ADDR/insights-hub/api/iotfile/v3/<path>`: for `Location`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{NAME}{API}/{path}", self.shared.base_url)
    }

    /// Streams a request body into a staging file. Nothing is kept if the request
    /// fails or is dropped (gateway timeout, reset) before the caller persists it.
    pub(crate) async fn receive(&self, body: Body) -> Result<Staged, IhError> {
        let mut staging = self
            .shared
            .store
            .staging(Hashes::NONE)
            .map_err(IhError::internal)?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                IhError::bad_request(format!("Could not read the request body: {e}"))
            })?;
            staging.write(&chunk).await.map_err(IhError::internal)?;
        }
        staging.finish().await.map_err(IhError::internal)
    }

    /// Applies `corrupt_rate` (at `corrupt_offset`) to content about to be stored.
    /// Returns whether it was corrupted; count it with [`InsightsHub::count_corrupted`]
    /// once stored.
    pub(crate) async fn maybe_corrupt(&self, staged: Staged) -> Result<(Staged, bool), IhError> {
        let settings = self.shared.settings();
        if crate::faults::roll(settings.corrupt_rate) {
            let bad = staged
                .corrupt(settings.corrupt_at())
                .await
                .map_err(IhError::internal)?;
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

impl Emulator for InsightsHub {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route(&format!("{API}/files/{{entity}}"), get(search::search))
            .route(
                &format!("{API}/files/{{entity}}/{{*filepath}}"),
                // `get` answers HEAD too, without the body.
                get(download::get).put(put::put).delete(download::delete),
            )
            .route(
                &format!("{API}/fileslist/{{entity}}/{{*filepath}}"),
                get(fileslist::list),
            )
            .fallback(not_found)
            // Bodies are streamed to disk; none is read whole.
            .layer(DefaultBodyLimit::disable())
            .layer(from_fn_with_state(self.clone(), auth::require_token))
            // Outermost: the gateway's clock covers auth and the whole body.
            .layer(from_fn_with_state(self.clone(), gateway::timeout))
            .with_state(self)
    }

    fn fault_response(&self, fault: Fault) -> Response {
        let err = match fault {
            Fault::Unavailable => {
                IhError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            Fault::RateLimited => IhError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        };
        err.with_retry_after(1).into_response()
    }

    fn sessions_open(&self) -> u64 {
        let ttl = self.shared.settings().ih_part_ttl_s;
        let now = Instant::now();
        self.lock()
            .uploads
            .values()
            .filter(|u| !u.expired(ttl, now))
            .count() as u64
    }
}

async fn not_found(body: Body) -> IhError {
    crate::faults::body::drain(body).await;
    IhError::not_found("Resource not found.")
}

/// Now, in milliseconds since the epoch (file and part times).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
