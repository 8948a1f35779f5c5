//! Whether the engine is making progress, for systemd's watchdog.
//!
//! The engine counts as stuck when uploads are in flight and, for `stuck_after`,
//! none of them moved: no body byte left, no part ended, no verification read
//! came back, no upload began or ended. (One hung upload beside others that move
//! is not caught: the engine as a whole still makes progress.) Every wait the daemon does on purpose (no work, a backoff, a
//! paused backend) has no upload in flight, and every network wait has a timeout
//! (stall, answer) far shorter than `stuck_after`; so "in flight and still" means
//! something hangs beyond the daemon's own timeouts (a filesystem in D state, a
//! deadlock, a request no timer covers), and only a restart helps. The daemon then
//! stops sending `WATCHDOG=1` and systemd restarts it (`WatchdogSec=` in the unit).
//!
//! Process-wide, like the watchdog it serves: the places that see progress (a body
//! stream deep in a backend, a part's end in the pump) would otherwise all need a
//! handle threaded through to them for one timestamp.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Liveness {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last progress.
    last: AtomicU64,
    /// Uploads (file attempts) running now.
    busy: AtomicUsize,
}

static LIVENESS: LazyLock<Liveness> = LazyLock::new(|| Liveness {
    epoch: Instant::now(),
    last: AtomicU64::new(0),
    busy: AtomicUsize::new(0),
});

fn now_ms() -> u64 {
    LIVENESS.epoch.elapsed().as_millis() as u64
}

/// Something moved.
pub fn touch() {
    LIVENESS.last.store(now_ms(), Ordering::Relaxed);
}

/// Marks one upload in flight until the guard is dropped.
pub fn busy() -> Busy {
    LIVENESS.busy.fetch_add(1, Ordering::Relaxed);
    touch();
    Busy(())
}

/// See [`busy`].
#[must_use]
pub struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        LIVENESS.busy.fetch_sub(1, Ordering::Relaxed);
        touch();
    }
}

/// How long uploads have been in flight without moving; `None` while nothing is in
/// flight or something moved within `stuck_after`.
pub fn stuck(stuck_after: Duration) -> Option<Duration> {
    if LIVENESS.busy.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let still =
        Duration::from_millis(now_ms().saturating_sub(LIVENESS.last.load(Ordering::Relaxed)));
    (still >= stuck_after).then_some(still)
}
