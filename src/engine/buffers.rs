//! Part buffers, reused from one part to the next.
//!
//! A fresh buffer of megabytes per part costs either way with glibc: taken from
//! `mmap`, every 4 KiB of it faults in and is zeroed (0.4 CPU-s per GiB sent, on
//! this project's 2-core test machine); taken from a heap, freed buffers stay with
//! the heap of the thread that freed them, and a 1 GiB upload peaked at 55 MiB,
//! against 44–46 MiB with every buffer handed back to the system at once. So a buffer given back is kept for the next part: no fault, no
//! zeroing, and the memory in use stays what the [`Budget`](super::Budget) allows, or
//! at most twice that: a buffer is reused only for a length of at least half its own.
//!
//! At most `keep` idle buffers are kept, and none for longer than [`IDLE`]: after a
//! burst, the daemon gives the memory back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Idle buffers older than this are freed by [`Buffers::trim`].
pub const IDLE: Duration = Duration::from_secs(10);

/// Below this a buffer is not worth keeping: the allocator does well with those.
const MIN_KEPT: usize = 256 << 10;

#[derive(Debug)]
pub struct Buffers {
    free: Mutex<Vec<(Vec<u8>, Instant)>>,
    keep: usize,
}

/// A buffer of `len` bytes from the pool; back to the pool when dropped.
#[derive(Debug)]
pub struct Buffer {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<Buffers>,
}

impl Buffers {
    /// A pool that keeps up to `keep` idle buffers.
    pub fn new(keep: usize) -> Arc<Buffers> {
        Arc::new(Buffers {
            free: Mutex::new(Vec::new()),
            keep,
        })
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<u8>, Instant)>> {
        // Every update is a single push or remove: a panic elsewhere cannot leave
        // the list half-changed.
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of `len` bytes. Its contents are unspecified (a reused buffer holds
    /// an earlier part's bytes): the caller overwrites all of them.
    pub fn take(self: &Arc<Buffers>, len: usize) -> Buffer {
        let reused = {
            let mut free = self.free();
            // The smallest that fits, and never one more than twice the length: the
            // budget accounts for `len`, so a small file's few KiB must not take
            // (and hold) an idle part buffer of megabytes, while the big file beside
            // it allocates another.
            free.iter()
                .enumerate()
                .filter(|(_, (b, _))| b.len() >= len && b.len() <= len.saturating_mul(2))
                .min_by_key(|(_, (b, _))| b.len())
                .map(|(i, _)| i)
                .map(|i| free.swap_remove(i).0)
        };
        Buffer {
            buf: reused.unwrap_or_else(|| vec![0; len]),
            len,
            pool: self.clone(),
        }
    }

    /// Frees idle buffers older than `idle`.
    pub fn trim(&self, idle: Duration) {
        let now = Instant::now();
        self.free()
            .retain(|(_, since)| now.duration_since(*since) < idle);
    }

    /// Bytes held idle.
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.free().iter().map(|(b, _)| b.len()).sum()
    }

    /// Keeps `buf` while there is room; when full, in place of a smaller idle one:
    /// mid-sized buffers (a 1 MiB file's) must not crowd the part buffers out, for
    /// a part never takes one under half its length.
    fn give_back(&self, buf: Vec<u8>) {
        if buf.len() < MIN_KEPT {
            return;
        }
        let mut free = self.free();
        if free.len() < self.keep {
            free.push((buf, Instant::now()));
        } else if let Some(smallest) = free
            .iter_mut()
            .filter(|(b, _)| b.len() < buf.len())
            .min_by_key(|(b, _)| b.len())
        {
            *smallest = (buf, Instant::now());
        }
    }
}

impl Buffer {
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The bytes, shared without a copy; the buffer goes back to the pool when the
    /// last clone is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_and_idle_ones_are_freed() {
        let pool = Buffers::new(2);
        let mut a = pool.take(1 << 20);
        a.as_mut_slice().fill(7);
        let bytes = a.freeze();
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.idle_bytes(), 0, "still shared");
        drop(clone);
        assert_eq!(pool.idle_bytes(), 1 << 20, "back in the pool");
        // Reused, shorter: its first bytes are the old part's, to be overwritten.
        let b = pool.take(512 << 10);
        assert_eq!(b.as_ref().len(), 512 << 10);
        assert_eq!(b.as_ref()[0], 7, "the same memory, not a fresh buffer");
        assert_eq!(pool.idle_bytes(), 0);
        drop(b);
        // At most `keep` are kept.
        let (c, d, e) = (pool.take(1 << 20), pool.take(1 << 20), pool.take(1 << 20));
        drop((c, d, e));
        assert_eq!(pool.idle_bytes(), 2 << 20);
        pool.trim(Duration::from_secs(60));
        assert_eq!(pool.idle_bytes(), 2 << 20, "not idle long enough");
        pool.trim(Duration::ZERO);
        assert_eq!(pool.idle_bytes(), 0, "idle ones freed");
        // Small ones are never kept.
        drop(pool.take(4096));
        assert_eq!(pool.idle_bytes(), 0);
    }

    #[test]
    fn a_small_buffer_never_takes_an_idle_part_buffer() {
        let pool = Buffers::new(2);
        drop(pool.take(8 << 20));
        assert_eq!(pool.idle_bytes(), 8 << 20);
        // A small file's buffer is allocated afresh; the part buffer stays idle for
        // the next part.
        let small = pool.take(4096);
        assert_eq!(
            pool.idle_bytes(),
            8 << 20,
            "a small file took the part buffer"
        );
        drop(small);
        // Neither does a buffer under half its size; a last, shorter part does.
        let under_half = pool.take((4 << 20) - 1);
        assert_eq!(pool.idle_bytes(), 8 << 20);
        let last = pool.take(5 << 20);
        assert_eq!(pool.idle_bytes(), 0, "a last part reuses the buffer");
        drop((under_half, last));
        // Both kept (room for 2). A part buffer given back to a full pool takes the
        // place of the smaller one rather than being dropped.
        assert_eq!(pool.idle_bytes(), (8 << 20) + (4 << 20) - 1);
        let (p, q) = (pool.take(8 << 20), pool.take(8 << 20));
        let mid = pool.take(1 << 20);
        assert_eq!(pool.idle_bytes(), (4 << 20) - 1, "only the 4 MiB one idle");
        drop(mid);
        assert_eq!(pool.idle_bytes(), (4 << 20) - 1 + (1 << 20));
        drop((p, q));
        assert_eq!(pool.idle_bytes(), 16 << 20, "the part buffers kept");
    }
}
