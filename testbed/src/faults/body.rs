//! The request-body wrapper that counts, throttles, and cuts bodies short.
//!
//! Every emulator request body passes through [`FaultBody`]:
//! - each byte read from the socket is counted in `bytes_received`, whether or not
//!   the request later succeeds (retries and interrupted requests included);
//! - each chunk waits for its slot in the server-wide [`Throttle`];
//! - if the request was picked for a mid-body fault ([`CutPlan`]), once `cutoff`
//!   bytes have been read the body never yields again and one of its connection's
//!   switches ([`ConnectionControl`]) fires. The server's connection task then
//!   - for a reset: drops the connection (zero linger, so the client sees a reset),
//!     which also drops the handler mid-read;
//!   - for a stall: takes the socket back from hyper, which drops the handler the
//!     same way, and holds the socket open without reading or writing (server.rs):
//!     the client's writes block once the socket buffers are full, and no answer
//!     ever comes.
//!
//!   Either way nothing the handler staged is kept, and whatever it reserved (a Box
//!   part's range) is released at once, so the client's retry is not refused as
//!   overlapping an upload in flight.

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

/// The switches of one TCP connection, put in every request's extensions by the
/// server. Each ends the request without an HTTP response; see server.rs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionControl {
    /// Drop the connection now, with a reset.
    pub(crate) kill: CancellationToken,
    /// Drop the request but keep the socket open, unread and unanswered.
    pub(crate) stall: CancellationToken,
}

/// What a mid-body fault does once its cutoff is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// `reset_rate`: the connection is dropped.
    Reset,
    /// `stall_rate`: reading stops for good; the connection stays open.
    Stall,
}

/// A mid-body fault chosen for one request.
#[derive(Debug)]
pub(crate) struct CutPlan {
    /// Bytes to read before the cut (at least 1).
    pub(crate) cutoff: u64,
    pub(crate) cut: Cut,
    /// The switches of the request's connection.
    pub(crate) control: ConnectionControl,
}

impl CutPlan {
    /// A cutoff strictly inside a body of `expected` bytes when the length is known
    /// (so the client is always still sending), else within the first 64 KiB. (The
    /// chunk that crosses the cutoff is still read whole, so the server may have read
    /// a little more; a body shorter than an unknown-length cutoff is not cut.)
    pub(crate) fn new(cut: Cut, expected: Option<u64>, control: ConnectionControl) -> Self {
        let cutoff = match expected {
            Some(n) if n >= 2 => fastrand::u64(1..n),
            Some(_) => 1,
            None => fastrand::u64(1..=64 * 1024),
        };
        CutPlan {
            cutoff,
            cut,
            control,
        }
    }
}

pub(crate) struct FaultBody {
    /// The request body as hyper delivers it.
    inner: Body,
    /// Where `bytes_received`, resets and stalls are counted.
    counters: Arc<EmulatorCounters>,
    /// The server-wide speed limit.
    throttle: Arc<Throttle>,
    /// Set if this request was picked for a reset or a stall.
    cut: Option<CutPlan>,
    /// Bytes read so far from this body.
    seen: u64,
    /// The same, for the layer, which charges them as waste unless the request
    /// is answered with success.
    tally: Arc<std::sync::atomic::AtomicU64>,
    /// A chunk already read and counted, waiting for its throttle slot.
    held: Option<(Frame<Bytes>, Pin<Box<Sleep>>)>,
    /// Set once the cut happened; from then on the body only returns Pending and
    /// never polls `inner` again.
    cut_done: bool,
}

impl FaultBody {
    pub(crate) fn new(
        inner: Body,
        counters: Arc<EmulatorCounters>,
        throttle: Arc<Throttle>,
        cut: Option<CutPlan>,
        tally: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        FaultBody {
            inner,
            counters,
            throttle,
            cut,
            tally,
            seen: 0,
            held: None,
            cut_done: false,
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
        if this.cut_done {
            // Never an error: a handler that saw one could answer before the
            // connection task acts, and the client must see a reset or nothing at all.
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
        this.tally
            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        this.seen += len;
        if let Some(plan) = &this.cut
            && this.seen >= plan.cutoff
        {
            match plan.cut {
                Cut::Reset => {
                    this.counters.add_reset();
                    tracing::debug!(read = this.seen, "reset fault: dropping the connection");
                    plan.control.kill.cancel();
                }
                Cut::Stall => {
                    this.counters.add_stalled();
                    tracing::debug!(read = this.seen, "stall fault: reading stops here");
                    plan.control.stall.cancel();
                }
            }
            this.cut_done = true;
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
        !self.cut_done && self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.held.is_some() || self.cut_done {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_length_cutoffs_fall_strictly_inside_the_body() {
        for _ in 0..1000 {
            let plan = CutPlan::new(Cut::Stall, Some(10), ConnectionControl::default());
            assert!((1..10).contains(&plan.cutoff), "{}", plan.cutoff);
        }
        let tiny = CutPlan::new(Cut::Reset, Some(1), ConnectionControl::default());
        assert_eq!(tiny.cutoff, 1);
        let unknown = CutPlan::new(Cut::Stall, None, ConnectionControl::default());
        assert!((1..=64 * 1024).contains(&unknown.cutoff));
    }
}
