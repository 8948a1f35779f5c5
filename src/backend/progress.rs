//! How far one request has got, for its two timeouts:
//!
//! - **stall**: while the body is being sent, no byte has moved for `stall` (the
//!   server stopped reading, the uplink died). A body may take as long as it needs
//!   as long as it keeps moving: an 8 MiB part at 64 KiB/s takes two minutes.
//! - **answer**: the body was handed over and no answer came within `answer` after
//!   the bytes still queued in the socket buffers at that moment can have drained.
//!   Those buffers hold megabytes (5 MB measured on loopback with a throttled
//!   reader: 80 s at 64 KiB/s), so the drain time is estimated from the rate at which
//!   the connection took the body: in steady state it takes bytes as fast as they
//!   leave, and whatever it took beyond `rate × elapsed` is still queued.
//!
//! The stall itself is found by the kernel (`TCP_USER_TIMEOUT`, set to `stall` by
//! `http::client`): bytes unacknowledged, or a receive window shut, for that long.
//! Progress seen here is coarse (a blocked writer is woken only once a good part of
//! a full send buffer has drained: up to a third of 4 MiB, 40 s at 32 KiB/s), so
//! the watch here is a backstop at [`STALL_BACKSTOP`] × `stall`.
//!
//! A request timer from the start of the request (reqwest's `timeout`, and its
//! `read_timeout`, which also runs from the start until the answer's headers) would
//! fail every part that takes longer than the timer to send, on every retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The two timeouts of a request (`upload.stall_timeout`, `upload.answer_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub stall: Duration,
    pub answer: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            stall: Duration::from_secs(60),
            answer: Duration::from_secs(120),
        }
    }
}

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No body byte moved for this long.
    Stalled(Duration),
    /// No answer this long after the body was sent.
    NoAnswer(Duration),
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expired::Stalled(d) => write!(
                f,
                "no byte of the body moved for {} s (upload.stall_timeout)",
                d.as_secs_f64()
            ),
            Expired::NoAnswer(d) => write!(
                f,
                "no answer {} s after the body was sent (upload.answer_timeout)",
                d.as_secs_f64()
            ),
        }
    }
}

/// Shared between a request's body stream (which reports) and its watchdog.
#[derive(Debug, Clone)]
pub struct Progress(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    /// Milliseconds after `epoch` when a byte last moved.
    last_moved: AtomicU64,
    /// Milliseconds after `epoch` when the body was all handed over, plus one; 0
    /// while it is being sent.
    sent_at: AtomicU64,
    /// How long the bytes queued at `sent_at` may take to drain, in milliseconds.
    drain_ms: AtomicU64,
    /// Slices waiting for our own bandwidth limiter: not a stall.
    pacing: AtomicU32,
    /// Bytes handed over so far.
    bytes: AtomicU64,
    /// Bytes per second the link managed on earlier requests (0: unknown), for a
    /// body that went into empty buffers at once and so shows no rate of its own.
    rate_hint: u64,
    /// `(ms, bytes)` at the first slice handed over [`SAMPLE_MS`] or more after the
    /// start, once the buffers are full: the rate since then is the link's. (A
    /// blocked writer is woken in bursts, so only a long span averages them out.)
    /// Written by the body stream only; the watchdog reads it.
    steady_from: (AtomicU64, AtomicU64),
}

/// The kernel finds a stalled body precisely: the client sets `TCP_USER_TIMEOUT`
/// to `stall`, so bytes left unacknowledged, or a receive window left shut, for that
/// long abort the connection. What is seen here is coarser (a writer is woken only
/// when much of a full send buffer has drained), so this watch is the backstop, at a
/// multiple of `stall` that a healthy slow link does not reach.
pub const STALL_BACKSTOP: u64 = 4;

/// Time after which the buffers are taken to be full and the rate to be the link's.
const SAMPLE_MS: u64 = 2000;
/// Longest drain allowed for: a hung server is still found within the hour (a dead
/// link much sooner, by the kernel's `TCP_USER_TIMEOUT`).
const MAX_DRAIN_MS: u64 = 3_600_000;

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// A request whose body is about to be sent.
    pub fn new() -> Progress {
        Progress::with_rate_hint(0)
    }

    /// Like [`Progress::new`], with the link's rate (bytes/s) seen on earlier
    /// requests; see [`Progress::measured_rate`].
    pub fn with_rate_hint(rate_hint: u64) -> Progress {
        Progress(Arc::new(Inner {
            epoch: Instant::now(),
            last_moved: AtomicU64::new(0),
            sent_at: AtomicU64::new(0),
            drain_ms: AtomicU64::new(0),
            pacing: AtomicU32::new(0),
            bytes: AtomicU64::new(0),
            rate_hint,
            steady_from: Default::default(),
        }))
    }

    /// A request without a streamed body (JSON, or none): only the answer is timed.
    pub fn without_body() -> Progress {
        let p = Progress::new();
        p.body_sent();
        p
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    /// `n` bytes of the body were handed to the connection.
    pub fn moved(&self, n: u64) {
        let now = self.now_ms();
        let total = self.0.bytes.fetch_add(n, Ordering::Relaxed) + n;
        self.0.last_moved.store(now, Ordering::Relaxed);
        crate::liveness::touch();
        let (t0, b0) = &self.0.steady_from;
        if t0.load(Ordering::Relaxed) == 0 && now >= SAMPLE_MS {
            b0.store(total, Ordering::Relaxed);
            t0.store(now, Ordering::Relaxed);
        }
    }

    /// The last byte of the body was handed to the connection.
    pub fn body_sent(&self) {
        let now = self.now_ms();
        if self
            .0
            .sent_at
            .compare_exchange(0, now + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let drain = self.drain_estimate(now);
            self.0.drain_ms.store(drain, Ordering::Relaxed);
            tracing::debug!(
                bytes = self.0.bytes.load(Ordering::Relaxed),
                secs = now as f64 / 1000.0,
                rate = self.measured_rate(),
                drain_ms = drain,
                "body handed over"
            );
        }
    }

    /// The rate (bytes/s) at which the connection took the body lately, once it
    /// had taken more than its buffers hold; `None` before there is one.
    pub fn measured_rate(&self) -> Option<u64> {
        let (t0, b0) = (
            self.0.steady_from.0.load(Ordering::Relaxed),
            self.0.steady_from.1.load(Ordering::Relaxed),
        );
        let total = self.0.bytes.load(Ordering::Relaxed);
        let span = self.0.last_moved.load(Ordering::Relaxed).saturating_sub(t0);
        if t0 == 0 || span < SAMPLE_MS || total <= b0 {
            return None;
        }
        Some((total - b0) * 1000 / span)
    }

    /// How long what the connection took beyond its rate takes to leave:
    /// `bytes / rate − elapsed`, with the rate measured on this body, else the hint
    /// from earlier ones; zero with neither.
    fn drain_estimate(&self, now: u64) -> u64 {
        let rate = self.measured_rate().unwrap_or(self.0.rate_hint);
        if rate == 0 {
            return 0;
        }
        let total = self.0.bytes.load(Ordering::Relaxed);
        let due_ms = total.saturating_mul(1000) / rate;
        // Twice the estimate: the buffers grow during a transfer (autotuning), so
        // the rate seen since they first filled runs high (measured: 47 KB/s for a
        // 33.5 KB/s link; 82 s estimated for 155 s). Waiting long costs little: a
        // link that dies meanwhile is found by the kernel within `stall`.
        (2 * due_ms.saturating_sub(now)).min(MAX_DRAIN_MS)
    }

    pub fn is_body_sent(&self) -> bool {
        self.0.sent_at.load(Ordering::Relaxed) != 0
    }

    /// Marks the time until the guard drops as our own pacing.
    pub fn pacing(&self) -> Pacing<'_> {
        self.0.pacing.fetch_add(1, Ordering::Relaxed);
        Pacing(self)
    }

    /// When the request times out if nothing changes meanwhile; `None` while paced.
    fn deadline(&self, t: Timeouts) -> Option<(u64, Expired)> {
        match self.0.sent_at.load(Ordering::Relaxed) {
            0 if self.0.pacing.load(Ordering::Relaxed) > 0 => None,
            0 => Some((
                self.0.last_moved.load(Ordering::Relaxed)
                    + STALL_BACKSTOP * t.stall.as_millis() as u64,
                Expired::Stalled(t.stall * STALL_BACKSTOP as u32),
            )),
            sent => Some((
                sent - 1 + self.0.drain_ms.load(Ordering::Relaxed) + t.answer.as_millis() as u64,
                Expired::NoAnswer(t.answer),
            )),
        }
    }

    /// Resolves once one of the timeouts runs out; race it against the request.
    pub async fn expired(&self, t: Timeouts) -> Expired {
        loop {
            let now = self.now_ms();
            let wait = match self.deadline(t) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at - now,
                // Paced: look again when the limiter has had time to let a slice go.
                None => t.stall.as_millis() as u64,
            };
            // The deadline moves when the body is sent: look at least every second.
            tokio::time::sleep(Duration::from_millis(wait.clamp(1, 1000))).await;
        }
    }
}

/// While alive, the request is waiting for our bandwidth limiter.
pub struct Pacing<'a>(&'a Progress);

impl Drop for Pacing<'_> {
    fn drop(&mut self) {
        self.0.moved(0);
        self.0.0.pacing.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        stall: Duration::from_secs(2),
        answer: Duration::from_secs(5),
    };

    /// Runs `expired` against a body that moves at `times` (seconds), then is sent
    /// at `sent` if given; returns when it expired, in seconds after the start.
    async fn expiry(moves: &[u64], sent: Option<u64>) -> (f64, Expired) {
        let p = Progress::new();
        let start = Instant::now();
        let reporter = {
            let p = p.clone();
            let moves = moves.to_vec();
            tokio::spawn(async move {
                for at in moves {
                    tokio::time::sleep_until(start + Duration::from_secs(at)).await;
                    p.moved(1000);
                }
                if let Some(at) = sent {
                    tokio::time::sleep_until(start + Duration::from_secs(at)).await;
                    p.body_sent();
                }
            })
        };
        let why = p.expired(T).await;
        reporter.abort();
        (start.elapsed().as_secs_f64(), why)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_that_keeps_moving_never_stalls() {
        // One slice a second for 30 s: far longer than the stall timeout in all.
        let moves: Vec<u64> = (1..=30).collect();
        let (at, why) = expiry(&moves, Some(30)).await;
        assert_eq!(why, Expired::NoAnswer(T.answer));
        assert!((at - 35.0).abs() < 0.01, "{at}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_moving_stalls_after_the_backstop() {
        let (at, why) = expiry(&[1, 2, 3], None).await;
        assert_eq!(why, Expired::Stalled(T.stall * STALL_BACKSTOP as u32));
        assert!(
            (at - (3.0 + 2.0 * STALL_BACKSTOP as f64)).abs() < 0.01,
            "{at}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_is_not_a_stall() {
        let p = Progress::new();
        let start = Instant::now();
        let guard = p.pacing();
        let waited = tokio::time::timeout(Duration::from_secs(20), p.expired(T)).await;
        assert!(waited.is_err(), "expired while paced");
        drop(guard);
        let why = p.expired(T).await;
        assert_eq!(why, Expired::Stalled(T.stall * STALL_BACKSTOP as u32));
        let expected = 20.0 + 2.0 * STALL_BACKSTOP as f64;
        assert!((start.elapsed().as_secs_f64() - expected).abs() < 0.01);
    }

    #[tokio::test(start_paused = true)]
    async fn the_answer_waits_for_what_the_buffers_still_hold() {
        // 3000 bytes at once (into empty buffers), then 100 bytes a second: at that
        // rate the 6000 bytes handed over by second 30 leave by second 60; twice
        // that drain (30 s) is allowed for, then the answer timeout.
        let p = Progress::new();
        let start = Instant::now();
        p.moved(3000);
        for s in 1..=30 {
            tokio::time::sleep_until(start + Duration::from_secs(s)).await;
            p.moved(100);
        }
        p.body_sent();
        let why = p.expired(T).await;
        assert_eq!(why, Expired::NoAnswer(T.answer));
        let at = start.elapsed().as_secs_f64();
        assert!((at - 95.0).abs() < 0.5, "{at}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_taken_at_once_drains_at_the_rate_seen_before() {
        // 4000 bytes into empty buffers, on a link that managed 100 bytes/s before:
        // 40 s to drain, twice that allowed for, then the answer timeout.
        let p = Progress::with_rate_hint(100);
        let start = Instant::now();
        p.moved(4000);
        p.body_sent();
        assert_eq!(p.measured_rate(), None);
        assert_eq!(p.expired(T).await, Expired::NoAnswer(T.answer));
        let at = start.elapsed().as_secs_f64();
        assert!((at - 85.0).abs() < 0.5, "{at}");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_body_only_the_answer_is_timed() {
        let start = Instant::now();
        let why = Progress::without_body().expired(T).await;
        assert_eq!(why, Expired::NoAnswer(T.answer));
        assert!((start.elapsed().as_secs_f64() - 5.0).abs() < 0.01);
    }
}
