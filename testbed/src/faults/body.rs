//! The request-body wrapper that counts, throttles and resets.
//!
//! Every emulator request body passes through [`FaultBody`]:
//! - each byte read from the socket is counted in `bytes_received`, whether or not
//!   the request later succeeds (retries and interrupted requests included);
//! - each chunk waits for its slot in the server-wide [`Throttle`];
//! - if the request was picked for a reset, once `cutoff` bytes have been read the
//!   connection's kill switch fires and the body never yields again. The server's
//!   connection task then drops the connection (zero linger, so the client sees a
//!   reset), which also drops the handler mid-read: nothing it staged is kept.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::throttle::Throttle;
use crate::stats::EmulatorCounters;

/// The kill switch of one TCP connection, put in every request's extensions by the
/// server. Cancelling it drops the connection without an HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionKill(pub(crate) CancellationToken);

/// A reset chosen for one request.
#[derive(Debug)]
pub(crate) struct ResetPlan {
    /// Bytes to read before killing the connection (at least 1).
    pub(crate) cutoff: u64,
    pub(crate) kill: ConnectionKill,
}

impl ResetPlan {
    /// A cutoff strictly inside a body of `expected` bytes when the length is known
    /// (so the client is always still sending), else within the first 64 KiB.
    pub(crate) fn new(expected: Option<u64>, kill: ConnectionKill) -> Self {
        let cutoff = match expected {
            Some(n) if n >= 2 => fastrand::u64(1..n),
            Some(_) => 1,
            None => fastrand::u64(1..=64 * 1024),
        };
        ResetPlan { cutoff, kill }
    }
}

pub(crate) struct FaultBody {
    /// The request body as hyper delivers it.
    inner: Body,
    /// Where `bytes_received` and resets are counted.
    counters: Arc<EmulatorCounters>,
    /// The server-wide speed limit.
    throttle: Arc<Throttle>,
    /// Set if this request was picked for a reset.
    reset: Option<ResetPlan>,
    /// Bytes read so far from this body.
    seen: u64,
    /// A chunk already read and counted, waiting for its throttle slot.
    held: Option<(Frame<Bytes>, Pin<Box<Sleep>>)>,
    /// Set once the kill switch fired; from then on the body only returns Pending.
    killed: bool,
}

impl FaultBody {
    pub(crate) fn new(
        inner: Body,
        counters: Arc<EmulatorCounters>,
        throttle: Arc<Throttle>,
        reset: Option<ResetPlan>,
    ) -> Self {
        FaultBody {
            inner,
            counters,
            throttle,
            reset,
            seen: 0,
            held: None,
            killed: false,
        }
    }
}

impl http_body::Body for FaultBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.killed {
            // Never an error: a handler that saw one could answer before the
            // connection task drops the connection, and the client must see a reset.
            return Poll::Pending;
        }
        if let Some((_, sleep)) = this.held.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            if let Some((frame, _)) = this.held.take() {
                return Poll::Ready(Some(Ok(frame)));
            }
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        if len == 0 {
            return Poll::Ready(Some(Ok(frame)));
        }
        this.counters.add_bytes(len);
        this.seen += len;
        if let Some(plan) = &this.reset
            && this.seen >= plan.cutoff
        {
            this.counters.add_reset();
            tracing::debug!(read = this.seen, "reset fault: dropping the connection");
            plan.kill.0.cancel();
            this.killed = true;
            return Poll::Pending;
        }
        if let Some(at) = this.throttle.reserve(len) {
            let mut sleep = Box::pin(tokio::time::sleep_until(at));
            if sleep.as_mut().poll(cx).is_pending() {
                this.held = Some((frame, sleep));
                return Poll::Pending;
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        !self.killed && self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.held.is_some() || self.killed {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

/// Reads and discards the rest of `body`. Used before answering an error without
/// reading the body: an unread body makes the server close the connection, and the
/// client would see a broken pipe instead of the answer.
pub(crate) async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            break;
        }
    }
}
