//! The Exosite device content-upload emulator (protocols/exosite.md), mounted at
//! `/exosite`. Paths after the prefix are the device API's own (`/onep:v1/content/...`,
//! `/provision/download`), so a client whose base URL is `http://ADDR/exosite` needs no
//! other change. One product, whose id is the `exosite_product` knob; one device
//! credential, the testbed's secret.
//!
//! State: one mutex over the stored contents' metadata and the uploads in progress,
//! both keyed by content id. It is never held across an `.await`: handlers judge under
//! the lock, stream bodies to staging files without it, then judge again and commit
//! under it. An upload is keyed by the content id alone, as the device API has no upload
//! id; an internal serial tells a request whether the upload it judged before its body
//! arrived is still the one there (not reset or expired meanwhile).
//!
//! Files: `initiate` (rule 4), `ranges` (PATCH, rules 5–11), `upload` (an upload in
//! progress, its expiry, and which step a range is), `headers` (`Content-Range`, `MD5`),
//! `single` (rule 3), `content` (stored content), `catalog` (list, info and download in
//! both API shapes, rule 12), `host` (rule 2), `auth` (rule 1), `gateway` (502/504,
//! rule 13), `error` (plain-text answers).

mod auth;
mod catalog;
mod content;
mod error;
mod gateway;
mod headers;
mod host;
mod initiate;
mod ranges;
mod single;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

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
use crate::faults::Settings;
use crate::stats::EmulatorCounters;
use crate::store::{Hashes, Staged};
use content::Content;
use error::ExError;
use upload::Upload;

/// Path prefix and stats key.
const NAME: &str = "exosite";

/// Where the content calls live under the prefix (the seed's URLs).
const CONTENT: &str = "/onep:v1/content";

pub(crate) struct Exosite {
    pub(crate) shared: Arc<Shared>,
    /// This emulator's counters (corruptions, digest mismatches, 502/504).
    counters: Arc<EmulatorCounters>,
    /// Whether the next gateway error is a 504 (else a 502); flips each time.
    next_gateway_504: AtomicBool,
    state: Mutex<ExState>,
}

/// Everything the product holds besides content bytes (those are in the store).
pub(crate) struct ExState {
    /// Completed content by id (the order list answers in).
    pub(crate) contents: BTreeMap<String, Content>,
    /// Uploads in progress by content id. One leaves the map when its last byte is
    /// stored, when it is reset by a new initiate, or when it is found expired; its
    /// range files go with it.
    pub(crate) uploads: HashMap<String, Upload>,
}

/// A request body as it arrived: on disk with its MD5, or too long to keep.
pub(crate) enum Received {
    Kept {
        staged: Staged,
        md5: [u8; 16],
    },
    /// More than the caller's limit: nothing kept; the rest was read and dropped.
    TooLong,
}

impl Exosite {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Exosite {
            counters: shared.counters.register(NAME),
            shared,
            next_gateway_504: AtomicBool::new(false),
            state: Mutex::new(ExState {
                contents: BTreeMap::new(),
                uploads: HashMap::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ExState> {
        // A panic in a handler while holding the lock leaves at worst one upload or
        // content entry half-updated; serving on beats wedging every later test.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Streams a request body into a staging file, hashing it with MD5 on the way (the
    /// only digest the service takes of a body). A body longer than `max` stops
    /// being kept at once but is still read to the end, so the client sees the answer
    /// rather than a broken pipe. Nothing is kept if the request is dropped (reset).
    pub(crate) async fn receive(&self, body: Body, max: u64) -> Result<Received, ExError> {
        let mut staging = Some(
            self.shared
                .store
                .staging(Hashes::MD5)
                .map_err(ExError::internal)?,
        );
        let mut len = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ExError::bad_request(format!("could not read the body: {e}")))?;
            len += chunk.len() as u64;
            if len > max {
                // Dropping the staging file deletes it.
                staging = None;
            }
            if let Some(s) = staging.as_mut() {
                s.write(&chunk).await.map_err(ExError::internal)?;
            }
        }
        match staging {
            Some(s) => {
                let staged = s.finish().await.map_err(ExError::internal)?;
                let md5 = staged
                    .digests
                    .md5
                    .ok_or_else(|| ExError::internal("staging computed no MD5"))?;
                Ok(Received::Kept { staged, md5 })
            }
            None => Ok(Received::TooLong),
        }
    }

    /// Applies `corrupt_rate` (at `corrupt_offset`) to content about to be stored.
    /// Returns whether it was corrupted; count it with [`Exosite::count_corrupted`]
    /// once stored.
    pub(crate) async fn maybe_corrupt(
        &self,
        s: &Settings,
        staged: Staged,
    ) -> Result<(Staged, bool), ExError> {
        if crate::faults::roll(s.corrupt_rate) {
            let bad = staged
                .corrupt(s.corrupt_at())
                .await
                .map_err(ExError::internal)?;
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

    pub(crate) fn count_digest_mismatch(&self) {
        self.counters.add_digest_mismatch();
    }
}

impl Emulator for Exosite {
    fn name(&self) -> &'static str {
        NAME
    }

    fn routes(self: Arc<Self>) -> Router {
        let list_or_initiate = || get(catalog::onep_list).post(initiate::initiate);
        Router::new()
            // The seed initiates at `.../content/`; without the slash is accepted too.
            .route(CONTENT, list_or_initiate())
            .route(&format!("{CONTENT}/"), list_or_initiate())
            .route(
                &format!("{CONTENT}/{{id}}"),
                // `get` answers HEAD too, without the body.
                get(catalog::onep_get)
                    .post(single::upload)
                    .put(single::upload)
                    .patch(ranges::patch),
            )
            .route("/provision/download", get(catalog::provision_download))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            // Bodies are streamed to disk; none is read whole.
            .layer(DefaultBodyLimit::disable())
            .layer(from_fn_with_state(self.clone(), auth::require_device))
            // A host naming another product is unknown before any credential is looked at.
            .layer(from_fn_with_state(self.clone(), host::require_product))
            // Outermost: a gateway error comes before the service sees anything.
            .layer(from_fn_with_state(self.clone(), gateway::inject))
            .with_state(self)
    }

    fn fault_response(&self, fault: Fault) -> Response {
        let err = match fault {
            Fault::Unavailable => {
                ExError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
            }
            Fault::RateLimited => ExError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        };
        err.with_retry_after(1).into_response()
    }

    fn sessions_open(&self) -> u64 {
        let ttl = self.shared.settings().exosite_upload_ttl_s;
        let now = Instant::now();
        self.lock()
            .uploads
            .values()
            .filter(|u| !u.expired(ttl, now))
            .count() as u64
    }
}

async fn not_found(body: Body) -> ExError {
    crate::faults::body::drain(body).await;
    ExError::not_found("Not Found")
}

/// axum's own 405 has an empty body; the device API's errors are plain text.
async fn method_not_allowed(body: Body) -> ExError {
    crate::faults::body::drain(body).await;
    ExError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}
