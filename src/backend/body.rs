//! A part's bytes on their way to the wire, paced by `bandwidth_limit` and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::Stream;

use crate::throttle::RateLimiter;

/// Size of the slices a body is sent in: small enough that the shared rate limiter
/// interleaves workers fairly, large enough that the per-slice cost is negligible.
pub const SLICE: usize = 64 << 10;

/// Paces and counts bytes as they leave. Clones share the counter.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    limiter: Option<Arc<RateLimiter>>,
    sent: Arc<AtomicU64>,
}

impl Meter {
    pub fn new(limiter: Option<Arc<RateLimiter>>) -> Meter {
        Meter {
            limiter,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes handed to the wire through this meter so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    async fn pace(&self, n: usize) {
        if let Some(l) = &self.limiter {
            l.acquire(n as u64).await;
        }
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The bytes of one part (or of a whole small file). A clone shares the bytes and
/// the meter: a request sent twice (after a 401, say) counts twice, as it should.
#[derive(Debug, Clone)]
pub struct PartBody {
    data: Bytes,
    meter: Meter,
}

impl PartBody {
    pub fn new(data: Bytes, meter: Meter) -> PartBody {
        PartBody { data, meter }
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The body as paced slices. Every slice is counted when it is handed out, so a
    /// connection that breaks mid-body still counts what it sent.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold((self.data, self.meter), |(mut rest, meter)| async move {
            if rest.is_empty() {
                return None;
            }
            let slice = rest.split_to(rest.len().min(SLICE));
            meter.pace(slice.len()).await;
            Some((Ok(slice), (rest, meter)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn stream_yields_all_bytes_and_counts_them() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let meter = Meter::new(None);
        let body = PartBody::new(Bytes::from(data.clone()), meter.clone());
        let chunks: Vec<Bytes> = body
            .into_stream()
            .map(|r| r.expect("in-memory"))
            .collect()
            .await;
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.concat(), data);
        assert_eq!(meter.sent(), 200_000);
    }

    #[tokio::test]
    async fn empty_body_yields_nothing() {
        let meter = Meter::new(None);
        let n = PartBody::new(Bytes::new(), meter.clone())
            .into_stream()
            .count()
            .await;
        assert_eq!((n, meter.sent()), (0, 0));
    }
}
