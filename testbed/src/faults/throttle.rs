//! The server-wide request-body speed limit (`throttle_bps`).
//!
//! One schedule for the whole server: each chunk read books the next free slot of
//! `len / bps` seconds, and is handed to the handler only when its slot ends. Idle
//! time is not saved up, so there are no bursts above the limit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Shared by every connection; the rate changes with the settings.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// Bytes per second; 0 = unlimited. Written when the settings change.
    bps: AtomicU64,
    /// When the schedule is next free. Only moves forward.
    next_free: Mutex<Instant>,
}

impl Throttle {
    pub(crate) fn new(bps: u64) -> Self {
        Throttle {
            bps: AtomicU64::new(bps),
            next_free: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn set_rate(&self, bps: u64) {
        self.bps.store(bps, Ordering::Relaxed);
    }

    /// Books `len` bytes; returns when they may be handed on, or `None` if unlimited.
    pub(crate) fn reserve(&self, len: u64) -> Option<Instant> {
        let bps = self.bps.load(Ordering::Relaxed);
        if bps == 0 || len == 0 {
            return None;
        }
        // A poisoned lock only means another reader panicked mid-update of an Instant;
        // the value is still a valid instant.
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(Instant::now());
        let end = start + Duration::from_secs_f64(len as f64 / bps as f64);
        *next = end;
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_books_nothing() {
        assert!(Throttle::new(0).reserve(1_000_000).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn bookings_queue_up() {
        let t = Throttle::new(1000);
        let now = Instant::now();
        let first = t.reserve(500).expect("limited");
        let second = t.reserve(1000).expect("limited");
        assert_eq!(first - now, Duration::from_millis(500));
        assert_eq!(second - now, Duration::from_millis(1500));
    }
}
