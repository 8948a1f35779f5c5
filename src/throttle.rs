//! `bandwidth_limit`: one byte budget shared by every upload of the daemon.
//!
//! A virtual-clock pacer (GCRA): each grant of `n` bytes pushes the time at which the
//! next byte may leave by `n / rate`. Callers ask for small chunks (64 KiB), so all
//! workers and parts interleave fairly and the average rate holds over any window
//! longer than a chunk's time. A short burst (one chunk) is allowed after idleness,
//! never more, so an idle minute does not turn into a minute of unthrottled sending.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Changed live by a reload (SIGHUP); 0 means no limit.
    bytes_per_sec: AtomicU64,
    /// The instant from which the next grant may start. Protected by a std mutex:
    /// it is held for a few arithmetic operations and never across an `.await`.
    next_free: Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec: AtomicU64::new(bytes_per_sec),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Bytes per second; 0 when unlimited.
    pub fn rate(&self) -> u64 {
        self.bytes_per_sec.load(Ordering::Relaxed)
    }

    /// A new rate (0: unlimited) for every grant from now on, bodies already in
    /// flight included.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.bytes_per_sec.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Waits until `n` bytes may be sent.
    pub async fn acquire(&self, n: u64) {
        let rate = self.rate();
        if rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(n as f64 / rate as f64);
        let start = {
            // A poisoned lock only means another task panicked mid-arithmetic; the
            // instant inside is still a valid instant.
            let mut next = self
                .next_free
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + cost;
            start
        };
        // The grant is paid after sending the previous chunk's share: sleeping until
        // `start` (not `start + cost`) lets the first chunk go at once.
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate() {
        let lim = RateLimiter::new(1 << 20); // 1 MiB/s
        let t0 = Instant::now();
        for _ in 0..32 {
            lim.acquire(64 << 10).await; // 32 × 64 KiB = 2 MiB
        }
        let elapsed = t0.elapsed();
        // The first chunk goes at once; the other 31 are paced: 31/16 s (the timer
        // rounds each sleep up to a whole millisecond).
        let ideal = Duration::from_secs_f64(31.0 / 16.0);
        assert!(
            elapsed >= ideal && elapsed <= ideal + Duration::from_millis(2),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shared_between_tasks() {
        let lim = std::sync::Arc::new(RateLimiter::new(1 << 20));
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..4 {
            let lim = lim.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..8 {
                    lim.acquire(64 << 10).await;
                }
            }));
        }
        for h in handles {
            h.await.expect("task");
        }
        // 4 × 8 × 64 KiB = 2 MiB over one budget, not four.
        assert!(t0.elapsed() >= Duration::from_secs_f64(31.0 / 16.0));
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_does_not_bank_a_burst() {
        let lim = RateLimiter::new(1 << 20);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let t0 = Instant::now();
        for _ in 0..17 {
            lim.acquire(64 << 10).await;
        }
        let elapsed = t0.elapsed();
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed <= Duration::from_millis(1002),
            "{elapsed:?}"
        );
    }
}
