//! The memory budget: one pool of bytes that every part buffer of every worker is
//! taken from, so that peak memory is a fixed base plus at most
//! `parts_in_flight × part_size` (one file's parts in flight) and [`SMALL_POOL`],
//! whatever part size a service dictates, however many files wait, and however
//! many workers send at once: two big files share one file's worth of buffers.
//!
//! Buffers of at most [`SMALL`] bytes (a small file sent in one request) come from
//! a pool of their own. The main pool is first come, first served: a small file's
//! 4 KiB asked for behind a big file's next 8 MiB part would wait for a part to be
//! sent, and a backlog of small files would move at the big file's part rate.
//!
//! A buffer that could never fit (a server-dictated part bigger than the whole
//! budget) is not buffered at all: the part is hashed first and then streamed from
//! the file (see `backend::FileRange`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::buffers::{self, Buffer, Buffers};

/// Idle buffers kept when the engine does not say how many: 4 parts in flight and
/// the one read ahead.
const DEFAULT_KEPT: usize = 5;

/// Permits are KiB: a semaphore counts in `u32` per acquisition.
const UNIT: u64 = 1024;

/// Buffers up to this size come from the small pool.
pub const SMALL: u64 = 256 << 10;

/// The small pool: 256 small files of 4 KiB at once, or 4 of [`SMALL`].
pub const SMALL_POOL: u64 = 1 << 20;

#[derive(Debug)]
pub struct Budget {
    pool: Arc<Semaphore>,
    /// In units.
    capacity: u32,
    /// For buffers of at most [`SMALL`] bytes, [`SMALL_POOL`] of them; see
    /// [`Budget::with_small_pool`].
    small: Option<Arc<Semaphore>>,
    /// The buffers themselves, reused (see `buffers.rs`).
    buffers: Arc<Buffers>,
}

/// Room for one buffer; given back when dropped.
#[derive(Debug)]
pub struct Reserved {
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        let capacity = (bytes / UNIT).clamp(1, u64::from(u32::MAX)) as u32;
        Budget {
            pool: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            small: None,
            buffers: Buffers::new(DEFAULT_KEPT),
        }
    }

    /// Keeps up to `n` idle buffers for reuse (one file's parts in flight and the
    /// one read ahead), rather than [`DEFAULT_KEPT`].
    pub fn keeping(mut self, n: usize) -> Budget {
        self.buffers = Buffers::new(n);
        self
    }

    /// Buffers of at most [`SMALL`] bytes come from a pool of their own,
    /// [`SMALL_POOL`] bytes on top of the main one, and never wait behind a part.
    pub fn with_small_pool(mut self) -> Budget {
        self.small = Some(Arc::new(Semaphore::new((SMALL_POOL / UNIT) as usize)));
        self
    }

    /// A buffer of `len` bytes, for which room was reserved.
    pub fn buffer(&self, len: usize, _room: &Reserved) -> Buffer {
        self.buffers.take(len)
    }

    /// Frees buffers idle for [`buffers::IDLE`].
    pub fn trim(&self) {
        self.buffers.trim(buffers::IDLE);
    }

    /// The main pool in bytes (the small pool comes on top).
    pub fn capacity(&self) -> u64 {
        u64::from(self.capacity) * UNIT
    }

    /// Room for a buffer of `len` bytes, waiting until enough is free; `None` if
    /// `len` exceeds the whole budget (the caller streams instead of buffering).
    pub async fn reserve(&self, len: u64) -> Option<Reserved> {
        let units = len.div_ceil(UNIT);
        let pool = if let Some(small) = self.small.as_ref().filter(|_| len <= SMALL) {
            small
        } else if units <= u64::from(self.capacity) {
            &self.pool
        } else {
            return None;
        };
        // The pools are never closed, so acquiring can only wait, not fail.
        pool.clone()
            .acquire_many_owned(units as u32)
            .await
            .ok()
            .map(|_permit| Reserved { _permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn buffers_wait_for_room_and_oversized_ones_are_refused() {
        let b = Budget::new(10 << 20);
        assert_eq!(b.capacity(), 10 << 20);
        assert!(b.reserve(11 << 20).await.is_none(), "can never fit");
        let first = b.reserve(6 << 20).await.expect("fits");
        let second = b.reserve(4 << 20).await.expect("fits beside");
        // No room for a third until one is given back.
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.reserve(1 << 20)).await;
        assert!(waiting.is_err(), "reserved beyond the budget");
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), b.reserve(6 << 20)).await;
        assert!(third.is_ok_and(|r| r.is_some()));
        drop(second);
        assert!(b.reserve(0).await.is_some());
    }

    #[tokio::test]
    async fn small_buffers_never_queue_behind_a_part_and_have_a_bound_of_their_own() {
        let b = Arc::new(Budget::new(16 << 20).with_small_pool());
        let held = b.reserve(12 << 20).await;
        // The next part waits for room (4 MiB free), first in line.
        let next = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(8 << 20).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!next.is_finished(), "a part fit in less room than it needs");
        // Small files go on meanwhile, up to the small pool.
        let mut small = Vec::new();
        for _ in 0..(SMALL_POOL / SMALL) {
            let r = tokio::time::timeout(Duration::from_millis(50), b.reserve(SMALL)).await;
            small.push(r.expect("a small file waited behind a part"));
        }
        let over = tokio::time::timeout(Duration::from_millis(50), b.reserve(4096)).await;
        assert!(over.is_err(), "the small pool is bounded");
        drop(small);
        // One byte over `SMALL` is a part like any other: it waits its turn behind
        // the waiting part, though the 4 MiB free would hold it.
        let mid = tokio::time::timeout(Duration::from_millis(50), b.reserve(SMALL + 1)).await;
        assert!(mid.is_err(), "jumped the queue");
        drop(held);
        assert!(next.await.expect("joined"), "the waiting part got its room");
    }
}
