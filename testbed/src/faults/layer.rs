//! The middleware in front of every emulator: counts the request, then applies
//! latency, refusal (503), rate limit (429) and the body faults (throttle, then reset
//! or stall), in that order. At most one of refusal, rate limit, reset and stall hits
//! a request, so each fault count is exact.
//!
//! A refused request's body is drained before answering (and counted), so the client
//! reads the 503/429 instead of failing on a half-sent body.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;

use super::body::{ConnectionControl, Cut, CutPlan, FaultBody, drain};
use super::roll;
use crate::app::Shared;
use crate::emulator::{Emulator, Fault};
use crate::stats::EmulatorCounters;

/// The layer's state: one per mounted emulator.
#[derive(Clone)]
pub(crate) struct FaultLayer {
    /// Settings and the throttle.
    pub(crate) shared: Arc<Shared>,
    /// The mounted emulator's counters.
    pub(crate) counters: Arc<EmulatorCounters>,
    /// Shapes the 503/429 answers.
    pub(crate) emulator: Arc<dyn Emulator>,
}

pub(crate) async fn inject(State(layer): State<FaultLayer>, req: Request, next: Next) -> Response {
    layer.counters.add_request();
    let settings = layer.shared.settings();
    if settings.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
    }
    let control = req.extensions().get::<ConnectionControl>().cloned();
    let (parts, body) = req.into_parts();
    let has_body = !body.is_end_stream();
    let expected = body.size_hint().exact();

    let refusal = if roll(settings.fail_rate) {
        layer.counters.add_failed();
        Some(Fault::Unavailable)
    } else if roll(settings.rate_limit_rate) {
        layer.counters.add_rate_limited();
        Some(Fault::RateLimited)
    } else {
        None
    };
    // A refused request is never also cut short, and a reset one never also stalled:
    // one fault per request keeps counts exact. Only a body can be cut.
    let cut = match (refusal, control) {
        (None, Some(control)) if has_body => {
            if roll(settings.reset_rate) {
                Some(CutPlan::new(Cut::Reset, expected, control))
            } else if roll(settings.stall_rate) {
                Some(CutPlan::new(Cut::Stall, expected, control))
            } else {
                None
            }
        }
        _ => None,
    };
    let body = Body::new(FaultBody::new(
        body,
        layer.counters.clone(),
        layer.shared.throttle.clone(),
        cut,
    ));
    if let Some(fault) = refusal {
        tracing::debug!(emulator = layer.emulator.name(), ?fault, "injected refusal");
        drain(body).await;
        let answer = layer.emulator.fault_response(fault);
        if settings.echo_headers {
            return echoing(answer, &parts.headers);
        }
        return answer;
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `answer` with a body that lists `headers` (`name: value` lines), status and
/// headers kept (`echo_headers`).
fn echoing(answer: Response, headers: &axum::http::HeaderMap) -> Response {
    let mut text = String::from("request headers:\n");
    for (name, value) in headers {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let (mut parts, _) = answer.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain"),
    );
    Response::from_parts(parts, Body::from(text))
}
