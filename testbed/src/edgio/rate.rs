//! The upload host's rate limit (rule 13; protocols/edgio.md §Conventions: 100
//! requests/s per account → 429). One account, so one counter: a fixed one-second
//! window, reset when a request arrives after it ends. `edgio_rate_limit_rps` is read
//! per request; 0 turns the limit off. The delivery host (`/origin`) is not limited.
//!
//! JSON-RPC calls count too and get the same bare 429 (the docs do not say what
//! JSON-RPC sees; the limit sits in front of the interfaces, so no JSON-RPC envelope).
//! `X-Agile-Status` is `-26`, the "unavailable" code (see `error::UNAVAILABLE`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Edgio;
use super::error::{Agile, UNAVAILABLE};
use crate::faults::body::drain;

#[derive(Debug)]
pub(crate) struct Window {
    start: Instant,
    /// Requests admitted in this window.
    count: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            start: Instant::now(),
            count: 0,
        }
    }
}

impl Window {
    /// Whether one more request fits under `rps` at `now`.
    fn admit(&mut self, rps: u64, now: Instant) -> bool {
        if now.saturating_duration_since(self.start) >= Duration::from_secs(1) {
            *self = Window {
                start: now,
                count: 0,
            };
        }
        if self.count >= rps {
            return false;
        }
        self.count += 1;
        true
    }
}

pub(crate) async fn limit(State(api): State<Arc<Edgio>>, req: Request, next: Next) -> Response {
    let rps = api.shared.settings().edgio_rate_limit_rps;
    let admitted = rps == 0
        || api
            .rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(rps, Instant::now());
    if admitted {
        return next.run(req).await;
    }
    tracing::debug!(rps, "edgio rate limit");
    drain(req.into_body()).await;
    Agile::new(StatusCode::TOO_MANY_REQUESTS, UNAVAILABLE)
        .header("retry-after", 1)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_rps_requests() {
        let t0 = Instant::now();
        let mut w = Window {
            start: t0,
            count: 0,
        };
        assert!((0..3).all(|_| w.admit(3, t0)));
        assert!(!w.admit(3, t0));
        assert!(w.admit(3, t0 + Duration::from_secs(1)), "a new window");
    }
}
