//! The middleware in front of every emulator: counts the request, then applies
//! latency, a hang (never answered), refusal (503), rate limit (429) and the body
//! faults (throttle, then reset or stall), in that order; after the emulator handled
//! the request, the answer faults (garbage, truncated or huge body). At most one
//! fault hits a request, so each fault count is exact.
//!
//! A refused request's body is drained before answering (and counted), so the client
//! reads the 503/429 instead of failing on a half-sent body.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt as _;
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

    if roll(settings.hang_rate) {
        layer.counters.add_hung();
        tracing::debug!(emulator = layer.emulator.name(), "injected hang");
        // Dropped with the connection when the client gives up.
        std::future::pending::<()>().await;
    }
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
    let faulted_body = cut.is_some();
    let mut waste = Waste {
        tally: Arc::default(),
        counters: layer.counters.clone(),
        succeeded: false,
    };
    let body = Body::new(FaultBody::new(
        body,
        layer.counters.clone(),
        layer.shared.throttle.clone(),
        cut,
        waste.tally.clone(),
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
    let answer = next.run(Request::from_parts(parts, body)).await;
    waste.succeeded = succeeded(&answer);
    if faulted_body {
        return answer;
    }
    let mangle = if roll(settings.answer_garbage_rate) {
        Some(Mangle::Garbage)
    } else if roll(settings.answer_truncate_rate) {
        Some(Mangle::Truncate)
    } else if roll(settings.answer_huge_rate) {
        Some(Mangle::Huge)
    } else {
        None
    };
    match mangle {
        Some(m) => {
            layer.counters.add_mangled_answer();
            tracing::debug!(
                emulator = layer.emulator.name(),
                ?m,
                "injected answer fault"
            );
            mangled(answer, m).await
        }
        None => answer,
    }
}

/// Charges a request's body bytes to `bytes_wasted` when it ends without a
/// successful answer: refused, cut, or dropped with the connection (a client that
/// went away drops this with the handler).
struct Waste {
    tally: Arc<std::sync::atomic::AtomicU64>,
    counters: Arc<EmulatorCounters>,
    succeeded: bool,
}

impl Drop for Waste {
    fn drop(&mut self) {
        if !self.succeeded {
            self.counters
                .add_wasted(self.tally.load(std::sync::atomic::Ordering::Relaxed));
        }
    }
}

/// A 2xx, and for Edgio no `X-Agile-Status` other than 0 (its refusals may come
/// with 200).
fn succeeded(answer: &Response) -> bool {
    let agile_ok = answer
        .headers()
        .get("x-agile-status")
        .is_none_or(|v| v.as_bytes() == b"0");
    answer.status().is_success() && agile_ok
}

/// What an answer fault does to an answer the emulator gave.
#[derive(Debug, Clone, Copy)]
enum Mangle {
    Garbage,
    Truncate,
    Huge,
}

/// Size of the body `answer_huge_rate` sends.
const HUGE_ANSWER: usize = 64 << 20;

async fn mangled(answer: Response, m: Mangle) -> Response {
    use axum::http::header::CONTENT_LENGTH;
    let (mut parts, body) = answer.into_parts();
    match m {
        Mangle::Garbage => {
            parts.headers.remove(CONTENT_LENGTH);
            // Now junk bytes, now JSON of a shape no client expects.
            let junk: &'static [u8] = if fastrand::bool() {
                b"\x00\xff\xfegarbage\x01{\"\x80"
            } else {
                b"{\"hostile\": true, \"entries\": \"not a list\"}"
            };
            Response::from_parts(parts, Body::from(junk))
        }
        Mangle::Truncate => {
            // The whole body is promised (its length kept), half of it comes, then
            // the stream fails and hyper drops the connection.
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            parts
                .headers
                .insert(CONTENT_LENGTH, bytes.len().max(2).into());
            let half = bytes.slice(..bytes.len() / 2);
            // The failure comes a moment later, so that the headers and the half
            // leave first (an immediate failure would drop them unsent).
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("answer cut by answer_truncate_rate"))
            });
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(half)]).chain(cut);
            Response::from_parts(parts, Body::from_stream(stream))
        }
        Mangle::Huge => {
            parts.headers.remove(CONTENT_LENGTH);
            let chunk = bytes::Bytes::from(vec![b'x'; 64 << 10]);
            let stream = futures_util::stream::iter(
                std::iter::repeat_n(chunk, HUGE_ANSWER / (64 << 10)).map(Ok::<_, std::io::Error>),
            );
            Response::from_parts(parts, Body::from_stream(stream))
        }
    }
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
