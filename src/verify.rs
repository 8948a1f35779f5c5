//! Verification of a completed upload: what `upload.verify` asks for, given what the
//! backend can do.
//!
//! The stored size is always compared. Beyond it:
//! - `Digest`: the service's checksum of the object against the read pass's.
//! - `Sample`: a service without a checksum (Insights Hub) can still be read back.
//!   The first and last [`SAMPLE`] bytes and `n` random ranges of that size are read
//!   and compared byte for byte with the file, so a metered link pays a few hundred
//!   KiB, not the file again. It catches a damaged head or tail (truncation, a
//!   wrong header) always, and a single flipped byte elsewhere with the probability
//!   that a sampled range covers it: about `(n + 2) × 64 KiB / size`.
//! - `Full`: the object is downloaded in [`FULL_CHUNK`]s and hashed; the digest must
//!   be the one the read pass computed. Catches any difference, at the cost of the
//!   file's size in downloads.
//!
//! The file is compared as it was read at upload: `Sample` reads it again and first
//! checks that its identity has not changed (else the row is superseded, as for any
//! change); `Full` compares with the read pass's digest and never reads it again.
//! `Sample` reads the service's ranges before the file's, so a read-back that fails
//! (and is retried with the attempt) costs no local reads.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::debug;

use crate::backend::{Backend, BackendError, Capabilities, RemoteObject};
use crate::config::VerifyMode;
use crate::digest::{Digest, DigestKind, Hasher};
use crate::identity::Identity;

/// Why a read-back verification did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The stored object is not the file's content.
    #[error("{0}")]
    Mismatch(String),
    /// The local file is not the one uploaded any more: nothing to compare with.
    #[error("the local file changed: {0}")]
    Changed(String),
    #[error("the local file is gone")]
    Vanished,
    #[error("reading the local file: {0}")]
    LocalIo(#[from] std::io::Error),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Length of one sampled range.
pub const SAMPLE: u64 = 64 << 10;
/// Size of one ranged read of a full download: bounds the memory it takes.
const FULL_CHUNK: u64 = 8 << 20;

/// The check verification runs, resolved from `upload.verify` and the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Size,
    Digest,
    /// Sampled ranges: `n` random ones besides the first and the last.
    Sample(u32),
    Full,
}

impl Check {
    pub fn resolve(mode: VerifyMode, samples: u32, caps: &Capabilities) -> Check {
        match mode {
            VerifyMode::Size => Check::Size,
            VerifyMode::Sample => Check::Sample(samples),
            VerifyMode::Full => Check::Full,
            VerifyMode::Auto if caps.object_digest.is_some() => Check::Digest,
            VerifyMode::Auto if caps.ranged_reads => Check::Sample(samples),
            VerifyMode::Auto => Check::Size,
        }
    }

    /// Whether the service's digest is compared (besides any reading back).
    pub fn compares_digest(self, caps: &Capabilities) -> bool {
        self != Check::Size && caps.object_digest.is_some()
    }

    /// The whole-file digest the read pass computes: the service's kind where it
    /// reports one, else SHA-256 for a full download to be compared with.
    pub fn whole_digest(self, caps: &Capabilities) -> Option<DigestKind> {
        match (caps.object_digest, self) {
            (Some(kind), _) => Some(kind),
            (None, Check::Full) => Some(DigestKind::Sha256),
            (None, _) => None,
        }
    }
}

/// `(offset, length)` of the ranges to sample in an object of `size` bytes: the
/// first and the last, then `n` random ones, sorted and merged where they overlap.
/// A small object is read whole.
pub fn sample_ranges(size: u64, n: u32, rng: &mut fastrand::Rng) -> Vec<(u64, u64)> {
    if size <= SAMPLE * (u64::from(n) + 2) {
        return if size == 0 {
            Vec::new()
        } else {
            vec![(0, size)]
        };
    }
    let mut starts = vec![0, size - SAMPLE];
    starts.extend((0..n).map(|_| rng.u64(0..=size - SAMPLE)));
    starts.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(starts.len());
    for s in starts {
        match out.last_mut() {
            Some((o, l)) if s <= *o + *l => *l = (s + SAMPLE).max(*o + *l) - *o,
            _ => out.push((s, SAMPLE)),
        }
    }
    out
}

/// Tries of one verification request, in place, after temporary failures.
const REQUEST_TRIES: u32 = 4;

/// `request`, asked again in place after a temporary failure (waiting what the
/// server asked, at most 2 s, or half a second), up to [`REQUEST_TRIES`] in all.
/// A verification is a stat and several reads; on a service that refuses one
/// request in three, all of them succeeding in one go is rare, and ending the
/// attempt at each refusal would throw away the reads already made.
pub async fn retrying<T, Fut>(mut request: impl FnMut() -> Fut) -> Result<T, BackendError>
where
    Fut: std::future::Future<Output = Result<T, BackendError>>,
{
    let mut tries = 1;
    loop {
        match request().await {
            Err(e @ BackendError::Retry { .. }) if tries < REQUEST_TRIES => {
                tries += 1;
                let wait = e
                    .retry_after()
                    .unwrap_or(std::time::Duration::from_millis(500))
                    .min(std::time::Duration::from_secs(2));
                debug!(error = %e, wait_ms = wait.as_millis() as u64, "verification request asked again");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Reads `ranges` of the stored object and compares them byte for byte with the
/// file at `path`, which must still have `identity`. Returns the bytes read back.
pub async fn sample(
    backend: &dyn Backend,
    remote: &RemoteObject,
    path: &Path,
    identity: Identity,
    ranges: &[(u64, u64)],
) -> Result<u64, VerifyError> {
    // The service's bytes first: a read that fails (and the attempt with it) then
    // costs no read of the local file, which a retried verification would repeat.
    let mut theirs = Vec::with_capacity(ranges.len());
    let mut read = 0;
    for &(offset, len) in ranges {
        let bytes = retrying(|| backend.read_range(remote, offset, len)).await?;
        crate::liveness::touch();
        read += bytes.len() as u64;
        if bytes.len() as u64 != len {
            return Err(VerifyError::Mismatch(format!(
                "the service returned {} bytes of the stored object at offset {offset}, not {len}",
                bytes.len()
            )));
        }
        theirs.push(bytes);
    }
    let ours = {
        let (path, ranges) = (path.to_path_buf(), ranges.to_vec());
        tokio::task::spawn_blocking(move || read_local(&path, &identity, &ranges))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??
    };
    for ((offset, _), (theirs, ours)) in ranges.iter().zip(theirs.iter().zip(&ours)) {
        if let Some(at) = first_difference(theirs, ours) {
            return Err(VerifyError::Mismatch(format!(
                "byte {} of the stored object differs from the file (sampled verification)",
                offset + at as u64
            )));
        }
    }
    debug!(ranges = ranges.len(), bytes = read, "sampled ranges match");
    Ok(read)
}

/// The file's bytes of `ranges`, if it is still the file that was uploaded.
fn read_local(
    path: &Path,
    identity: &Identity,
    ranges: &[(u64, u64)],
) -> Result<Vec<Vec<u8>>, VerifyError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VerifyError::Vanished),
        Err(e) => return Err(e.into()),
    };
    if let Some(why) = Identity::of(&file.metadata()?).change_from(identity) {
        return Err(VerifyError::Changed(why));
    }
    ranges
        .iter()
        .map(|&(offset, len)| {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Downloads the whole object and compares its digest with the read pass's.
/// Returns the bytes read back.
pub async fn full(
    backend: &dyn Backend,
    remote: &RemoteObject,
    size: u64,
    ours: Option<&Digest>,
) -> Result<u64, VerifyError> {
    let Some(ours) = ours else {
        return Err(VerifyError::Mismatch(
            "no local digest was computed for the full verification".into(),
        ));
    };
    let mut hasher = Hasher::new(ours.kind);
    let mut offset = 0;
    while offset < size {
        let len = FULL_CHUNK.min(size - offset);
        let chunk = retrying(|| backend.read_range(remote, offset, len)).await?;
        crate::liveness::touch();
        if chunk.len() as u64 != len {
            return Err(VerifyError::Mismatch(format!(
                "the service returned {} bytes of the stored object at offset {offset}, not {len}",
                chunk.len()
            )));
        }
        // Hashing 8 MiB takes milliseconds (MD5 more): off the async threads.
        hasher = tokio::task::spawn_blocking(move || {
            hasher.update(&chunk);
            hasher
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        offset += len;
    }
    let theirs = hasher.finish();
    if !theirs.matches(ours) {
        return Err(VerifyError::Mismatch(format!(
            "the stored object reads back as {theirs}, the file read as {ours}"
        )));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> BackendError {
        BackendError::Retry {
            op: crate::backend::Op::ReadBack,
            after: Some(std::time::Duration::from_secs(1)),
            cause: "HTTP 503".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_verification_request_is_asked_again_in_place_a_few_times() {
        use std::sync::atomic::{AtomicU32, Ordering};
        // Refused twice, then answered: one call's worth of result, three asks.
        let calls = AtomicU32::new(0);
        let got = retrying(|| async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(refused()),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!((got.ok(), calls.load(Ordering::Relaxed)), (Some(7), 3));
        // Refused every time: given up after REQUEST_TRIES.
        let calls = AtomicU32::new(0);
        let got: Result<(), _> = retrying(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(refused())
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), REQUEST_TRIES);
        // What a retry cannot fix is not asked again.
        let calls = AtomicU32::new(0);
        let got: Result<(), _> = retrying(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(BackendError::SessionGone {
                op: crate::backend::Op::Stat,
                detail: "gone".into(),
            })
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn small_objects_are_read_whole() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(sample_ranges(0, 4, &mut rng), vec![]);
        assert_eq!(sample_ranges(10, 4, &mut rng), vec![(0, 10)]);
        assert_eq!(
            sample_ranges(6 * SAMPLE, 4, &mut rng),
            vec![(0, 6 * SAMPLE)]
        );
    }

    #[test]
    fn ranges_cover_head_and_tail_and_stay_inside() {
        let size = 100 << 20;
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let r = sample_ranges(size, 4, &mut rng);
            assert_eq!(r[0].0, 0);
            let (lo, ll) = *r.last().expect("ranges");
            assert_eq!(lo + ll, size);
            let total: u64 = r.iter().map(|x| x.1).sum();
            assert!(total <= 6 * SAMPLE, "{r:?}");
            assert!(total >= 2 * SAMPLE, "{r:?}");
            for w in r.windows(2) {
                assert!(
                    w[0].0 + w[0].1 < w[1].0,
                    "overlap or touching left unmerged: {r:?}"
                );
            }
        }
    }

    #[test]
    fn overlapping_ranges_merge() {
        // Just above the read-whole size: the random ranges must overlap others.
        let size = 6 * SAMPLE + 1;
        let mut rng = fastrand::Rng::with_seed(7);
        let r = sample_ranges(size, 4, &mut rng);
        let total: u64 = r.iter().map(|x| x.1).sum();
        assert!(total <= size, "{r:?}");
        assert!(r.iter().all(|&(o, l)| o + l <= size));
    }

    #[test]
    fn auto_takes_the_strongest_check_offered() {
        let mut caps = Capabilities {
            addressing: crate::backend::Addressing::PartNumber { first: 1 },
            part_size: crate::backend::PartSizeRule::SetByServer,
            max_parts: None,
            parallel_parts: true,
            lists_held_parts: true,
            part_digest: None,
            object_digest: Some(DigestKind::Sha1),
            single_request_below: 0,
            last_part_on_complete: false,
            ranged_reads: false,
            request_deadline: None,
            asynchronous_join: false,
            object_digest_from_parts: false,
        };
        assert_eq!(Check::resolve(VerifyMode::Auto, 4, &caps), Check::Digest);
        caps.object_digest = None;
        caps.ranged_reads = true;
        assert_eq!(Check::resolve(VerifyMode::Auto, 4, &caps), Check::Sample(4));
        caps.ranged_reads = false;
        assert_eq!(Check::resolve(VerifyMode::Auto, 4, &caps), Check::Size);
        assert_eq!(Check::Full.whole_digest(&caps), Some(DigestKind::Sha256));
        assert_eq!(Check::Sample(4).whole_digest(&caps), None);
    }
}
