//! What the server needs from each vendor emulator.
//!
//! An emulator is one module directory (`box_api/`, `insights_hub/`, ...) that
//! implements [`Emulator`]. `app.rs` mounts its routes under `/<name>` behind the
//! shared fault layer; the emulator keeps its own state and stores objects through
//! the shared [`Store`](crate::store::Store).

use std::sync::Arc;

use axum::Router;
use axum::response::Response;

/// A generic fault the fault layer injects; the emulator shapes the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// 503 + `Retry-After` (`fail_rate`).
    Unavailable,
    /// 429 + `Retry-After` (`rate_limit_rate`).
    RateLimited,
}

pub(crate) trait Emulator: Send + Sync + 'static {
    /// Path prefix (without slash) and stats key, e.g. "box".
    fn name(&self) -> &'static str;
    /// The emulator's routes, relative to its prefix, auth included.
    fn routes(self: Arc<Self>) -> Router;
    /// The vendor's answer for an injected fault, with its error body shape.
    fn fault_response(&self, fault: Fault) -> Response;
    /// Upload sessions open now (not committed, aborted or expired).
    fn sessions_open(&self) -> u64;
}
