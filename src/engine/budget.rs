//! The memory budget: one pool of bytes that every part buffer of every worker is
//! taken from, so that peak memory is a fixed base plus at most
//! `workers × parts_in_flight × part_size`, whatever part size a service dictates
//! and however many files wait.
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

#[derive(Debug)]
pub struct Budget {
    pool: Arc<Semaphore>,
    /// In units.
    capacity: u32,
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
            buffers: Buffers::new(DEFAULT_KEPT),
        }
    }

    /// Keeps up to `n` idle buffers for reuse (one file's parts in flight and the
    /// one read ahead), rather than [`DEFAULT_KEPT`].
    pub fn keeping(mut self, n: usize) -> Budget {
        self.buffers = Buffers::new(n);
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

    /// The whole budget in bytes.
    pub fn capacity(&self) -> u64 {
        u64::from(self.capacity) * UNIT
    }

    /// Room for a buffer of `len` bytes, waiting until enough is free; `None` if
    /// `len` exceeds the whole budget (the caller streams instead of buffering).
    pub async fn reserve(&self, len: u64) -> Option<Reserved> {
        let units = len.div_ceil(UNIT);
        if units > u64::from(self.capacity) {
            return None;
        }
        // The pool is never closed, so acquiring can only wait, not fail.
        self.pool
            .clone()
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
}
