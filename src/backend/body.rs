//! A part's bytes on their way to the wire: from memory or straight from the file,
//! paced by `bandwidth_limit`, counted, and watched for stalls.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::Stream;

use super::progress::Progress;
use crate::identity::Identity;
use crate::throttle::RateLimiter;

/// Size of the slices a body is sent in: small enough that the shared rate limiter
/// interleaves workers fairly, large enough that the per-slice cost is negligible.
pub const SLICE: usize = 64 << 10;

/// Bytes read from the file per blocking read when a body streams from disk.
const FILE_READ: usize = 256 << 10;

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

    async fn pace(&self, n: usize, progress: &Progress) {
        if let Some(l) = &self.limiter {
            // Our own pacing is not the connection stalling.
            let _pacing = progress.pacing();
            l.acquire(n as u64).await;
        }
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A byte range of a local file, sent without buffering it: for parts bigger than
/// the memory budget. The file is checked against `identity` after the last byte is
/// read, so that a file rewritten while it was sent is never delivered as if whole.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
    pub identity: Identity,
}

/// Where a body's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Read (and hashed) once into memory: retries send the same buffer.
    Memory(Bytes),
    /// Read from the file as it is sent (and again on a retry).
    File(FileRange),
}

impl Source {
    pub fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::File(r) => r.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bytes of one part (or of a whole small file). A clone shares the bytes and
/// the meter: a request sent twice (after a 401, say) counts twice, as it should.
#[derive(Debug, Clone)]
pub struct PartBody {
    source: Source,
    meter: Meter,
}

impl PartBody {
    pub fn new(data: Bytes, meter: Meter) -> PartBody {
        PartBody::from_source(Source::Memory(data), meter)
    }

    pub fn from_source(source: Source, meter: Meter) -> PartBody {
        PartBody { source, meter }
    }

    pub fn len(&self) -> u64 {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// The whole body at once, when it is in memory and no bandwidth limit paces
    /// it: a local write takes it in one call, where the stream would cost a
    /// blocking hand-off per slice. Not counted: the taker calls
    /// [`PartBody::count_sent`] with what it wrote.
    pub fn unpaced_bytes(&self) -> Option<Bytes> {
        match (&self.source, &self.meter.limiter) {
            (Source::Memory(all), None) => Some(all.clone()),
            _ => None,
        }
    }

    /// Counts `n` bytes as sent (see [`PartBody::unpaced_bytes`]).
    pub fn count_sent(&self, n: u64) {
        self.meter.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// The body as paced slices, each counted when it is handed out (so a
    /// connection that breaks mid-body still counts what it sent) and reported to
    /// `progress`, which the request's stall timeout watches.
    pub fn into_stream(
        self,
        progress: Progress,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let state = Streaming {
            source: self.source,
            done: 0,
            buffer: Bytes::new(),
            meter: self.meter,
            progress,
        };
        futures_util::stream::unfold(state, |mut st| async move {
            match st.next_slice().await {
                Ok(Some(slice)) => Some((Ok(slice), st)),
                Ok(None) => {
                    st.progress.body_sent();
                    None
                }
                Err(e) => {
                    // Stop after the error: the request fails and is retried whole.
                    st.done = st.source.len();
                    st.buffer = Bytes::new();
                    Some((Err(e), st))
                }
            }
        })
    }
}

struct Streaming {
    source: Source,
    /// Bytes of the source handed out so far, or read into `buffer`.
    done: u64,
    /// Read from the file, not yet handed out.
    buffer: Bytes,
    meter: Meter,
    progress: Progress,
}

impl Streaming {
    async fn next_slice(&mut self) -> std::io::Result<Option<Bytes>> {
        if self.buffer.is_empty() {
            match &self.source {
                Source::Memory(all) => {
                    let at = self.done as usize;
                    if at >= all.len() {
                        return Ok(None);
                    }
                    let n = (all.len() - at).min(SLICE);
                    self.buffer = all.slice(at..at + n);
                }
                Source::File(range) => {
                    if self.done >= range.len {
                        return Ok(None);
                    }
                    self.buffer = read_range(range.clone(), self.done).await?;
                }
            }
            self.done += self.buffer.len() as u64;
        }
        let n = self.buffer.len().min(SLICE);
        let slice = self.buffer.split_to(n);
        self.meter.pace(slice.len(), &self.progress).await;
        self.progress.moved(slice.len() as u64);
        Ok(Some(slice))
    }
}

/// The next chunk of `range` after `done` bytes, read on a blocking thread; after the
/// last chunk, checks that the file is still the one that was hashed.
async fn read_range(range: FileRange, done: u64) -> std::io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let n = (range.len - done).min(FILE_READ as u64) as usize;
        let mut buf = vec![0u8; n];
        range.file.read_exact_at(&mut buf, range.offset + done)?;
        if done + n as u64 == range.len {
            let now = Identity::of(&range.file.metadata()?);
            if let Some(why) = now.change_from(&range.identity) {
                return Err(std::io::Error::other(format!(
                    "the local file changed while it was sent: {why}"
                )));
            }
        }
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| std::io::Error::other(format!("read task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    #[tokio::test]
    async fn stream_yields_all_bytes_and_counts_them() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let meter = Meter::new(None);
        let body = PartBody::new(Bytes::from(data.clone()), meter.clone());
        let progress = Progress::new();
        let chunks: Vec<Bytes> = body
            .into_stream(progress.clone())
            .map(|r| r.expect("in-memory"))
            .collect()
            .await;
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks.concat(), data);
        assert_eq!(meter.sent(), 200_000);
        assert!(progress.is_body_sent());
    }

    #[tokio::test]
    async fn empty_body_yields_nothing() {
        let meter = Meter::new(None);
        let n = PartBody::new(Bytes::new(), meter.clone())
            .into_stream(Progress::new())
            .count()
            .await;
        assert_eq!((n, meter.sent()), (0, 0));
    }

    fn file_with(data: &[u8]) -> (tempfile::NamedTempFile, Arc<File>, Identity) {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        f.write_all(data).expect("write");
        let file = File::open(f.path()).expect("open");
        let id = Identity::of(&file.metadata().expect("meta"));
        (f, Arc::new(file), id)
    }

    #[tokio::test]
    async fn a_file_range_streams_exactly_its_bytes() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let (_tmp, file, identity) = file_with(&data);
        let range = FileRange {
            file,
            offset: 1000,
            len: 600_000,
            identity,
        };
        let meter = Meter::new(None);
        let chunks: Vec<Bytes> = PartBody::from_source(Source::File(range), meter.clone())
            .into_stream(Progress::new())
            .map(|r| r.expect("read"))
            .collect()
            .await;
        assert!(chunks.iter().all(|c| c.len() <= SLICE));
        assert_eq!(chunks.concat(), data[1000..601_000]);
        assert_eq!(meter.sent(), 600_000);
    }

    #[tokio::test]
    async fn a_file_rewritten_while_it_streams_fails_the_body() {
        let data = vec![7u8; 300_000];
        let (tmp, file, identity) = file_with(&data);
        let range = FileRange {
            file,
            offset: 0,
            len: 300_000,
            identity,
        };
        // Same size, new content and mtime: only the identity check can tell.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(tmp.path(), vec![8u8; 300_000]).expect("rewrite");
        let results: Vec<std::io::Result<Bytes>> =
            PartBody::from_source(Source::File(range), Meter::new(None))
                .into_stream(Progress::new())
                .collect()
                .await;
        let err = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .expect("an error");
        assert!(err.to_string().contains("changed"), "{err}");
        assert!(
            results.last().is_some_and(|r| r.is_err()),
            "the error ends the body"
        );
    }
}
