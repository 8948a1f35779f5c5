//! Writing incoming bytes to disk while hashing them, in one pass.
//!
//! A [`Staging`] file lives in the store's `tmp/` and is deleted when dropped: a
//! request that is interrupted (reset, client gone, validation failure) leaves
//! nothing behind. Only [`Staged::persist`] keeps the bytes.
//!
//! Each emulator asks only for the digests its vendor computes ([`Hashes`]): on the
//! two cores a benchmark shares with dropship, every digest the emulator takes that
//! the service would not is CPU taken from the client under test. The store's
//! listing computes the rest when asked (see [`super::Store::list`]).
//!
//! Content joined from parts ([`Staged::join`]) is not copied: it is the parts' files
//! themselves, hard-linked in order, as a service keeps a multipart object. A join
//! reads the bytes back only for a digest of the whole that the vendor reports.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tempfile::{NamedTempFile, TempPath};

use crate::hex::hex;

/// Which digests of the bytes to compute as they are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hashes {
    pub(crate) sha1: bool,
    pub(crate) sha256: bool,
    pub(crate) md5: bool,
}

impl Hashes {
    pub(crate) const NONE: Hashes = Hashes {
        sha1: false,
        sha256: false,
        md5: false,
    };
    pub(crate) const SHA1: Hashes = Hashes {
        sha1: true,
        ..Hashes::NONE
    };
    pub(crate) const SHA256: Hashes = Hashes {
        sha256: true,
        ..Hashes::NONE
    };
    pub(crate) const MD5: Hashes = Hashes {
        md5: true,
        ..Hashes::NONE
    };
}

/// The running digests a [`Hashes`] asked for.
#[derive(Default)]
struct Hashers {
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    md5: Option<Md5>,
}

/// Finished digests; `None` where not asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) sha1: Option<[u8; 20]>,
    pub(crate) sha256: Option<[u8; 32]>,
    pub(crate) md5: Option<[u8; 16]>,
}

impl Hashers {
    fn new(h: Hashes) -> Hashers {
        Hashers {
            sha1: h.sha1.then(Sha1::new),
            sha256: h.sha256.then(Sha256::new),
            md5: h.md5.then(Md5::new),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = self.sha1.as_mut() {
            h.update(bytes);
        }
        if let Some(h) = self.sha256.as_mut() {
            h.update(bytes);
        }
        if let Some(h) = self.md5.as_mut() {
            h.update(bytes);
        }
    }

    fn finish(self) -> Digests {
        Digests {
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
            md5: self.md5.map(|h| h.finalize().into()),
        }
    }
}

impl Digests {
    /// Which digests these are, to compute the same again.
    fn hashes(&self) -> Hashes {
        Hashes {
            sha1: self.sha1.is_some(),
            sha256: self.sha256.is_some(),
            md5: self.md5.is_some(),
        }
    }
}

/// A temp file being written; the asked-for digests are updated as bytes arrive.
///
/// Chunks from the socket (often 16 KiB or less) are gathered into 1 MiB blocks;
/// each block is hashed and written on the blocking pool while the next one fills.
/// One hand-off per chunk, as a `tokio::fs::File` makes, cost more CPU than the
/// write itself.
pub(crate) struct Staging {
    /// Deleted on drop: an abandoned request leaves no file.
    path: TempPath,
    /// The file and digests, here between blocks, or with the block being written.
    idle: Option<(std::fs::File, Hashers)>,
    busy: Option<tokio::task::JoinHandle<io::Result<Writer>>>,
    /// The block being filled.
    buf: Vec<u8>,
    /// Bytes received so far.
    len: u64,
}

/// What a block's write hands back: the file, the digests so far, the emptied block.
type Writer = (std::fs::File, Hashers, Vec<u8>);

const BLOCK: usize = 1 << 20;

/// Bytes fully on disk, as one file or several in order, with their digests.
#[derive(Debug)]
pub(crate) struct Staged {
    /// In order; each deleted on drop unless persisted. Never empty.
    segments: Vec<TempPath>,
    pub(crate) len: u64,
    pub(crate) digests: Digests,
}

impl Staging {
    pub(crate) fn new_in(dir: &Path, hashes: Hashes) -> io::Result<Staging> {
        let tmp = NamedTempFile::new_in(dir)?;
        let file = tmp.as_file().try_clone()?;
        Ok(Staging {
            path: tmp.into_temp_path(),
            idle: Some((file, Hashers::new(hashes))),
            busy: None,
            buf: Vec::with_capacity(BLOCK),
            len: 0,
        })
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.len += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= BLOCK {
            self.hand_off().await?;
        }
        Ok(())
    }

    /// Waits for the block being written, if any, then starts writing the full one.
    async fn hand_off(&mut self) -> io::Result<()> {
        let spare = self.settle().await?;
        let block = std::mem::replace(&mut self.buf, spare);
        let (mut file, mut hashers) = self
            .idle
            .take()
            .ok_or_else(|| io::Error::other("staging: a block already in flight"))?;
        self.busy = Some(tokio::task::spawn_blocking(move || {
            hashers.update(&block);
            file.write_all(&block)?;
            let mut block = block;
            block.clear();
            Ok((file, hashers, block))
        }));
        Ok(())
    }

    /// Waits for the block in flight; returns an empty buffer to fill next.
    async fn settle(&mut self) -> io::Result<Vec<u8>> {
        match self.busy.take() {
            Some(h) => {
                let (file, hashers, block) = h.await.map_err(io::Error::other)??;
                self.idle = Some((file, hashers));
                Ok(block)
            }
            None => Ok(Vec::with_capacity(BLOCK)),
        }
    }

    /// Writes what is left and closes the file.
    pub(crate) async fn finish(mut self) -> io::Result<Staged> {
        if !self.buf.is_empty() {
            self.hand_off().await?;
        }
        self.settle().await?;
        let (file, hashers) = self
            .idle
            .take()
            .ok_or_else(|| io::Error::other("staging: the file was lost"))?;
        drop(file);
        Ok(Staged {
            segments: vec![self.path],
            len: self.len,
            digests: hashers.finish(),
        })
    }
}

impl Staged {
    /// Where the bytes are now, in order; valid as long as `self` lives (for
    /// [`Staged::join`]).
    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.segments.iter().map(|p| &**p)
    }

    /// Lower-case hex SHA-1, empty if the stage was not asked for it.
    pub(crate) fn sha1_hex(&self) -> String {
        self.digests.sha1.map(|d| hex(&d)).unwrap_or_default()
    }

    /// Lower-case hex SHA-256, empty if the stage was not asked for it.
    pub(crate) fn sha256_hex(&self) -> String {
        self.digests.sha256.map(|d| hex(&d)).unwrap_or_default()
    }

    /// Moves the bytes of a one-file stage to `dest` (same file system: a rename),
    /// replacing any file there: a part kept for a later join.
    pub(crate) fn persist(self, dest: &Path) -> io::Result<()> {
        let [only] = <[TempPath; 1]>::try_from(self.segments).map_err(|_| {
            io::Error::other("a joined stage is kept by the store, not persisted to one file")
        })?;
        only.persist(dest).map_err(|e| e.error)
    }

    /// Moves every segment to `dest(i)` (same file system: renames), in order.
    pub(crate) fn persist_segments(
        self,
        dest: impl Fn(usize) -> PathBuf,
    ) -> io::Result<Vec<PathBuf>> {
        let mut kept = Vec::with_capacity(self.segments.len());
        for (i, seg) in self.segments.into_iter().enumerate() {
            let to = dest(i);
            if let Err(e) = seg.persist(&to) {
                // No index entry will name the ones already moved.
                for p in &kept {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e.error);
            }
            kept.push(to);
        }
        Ok(kept)
    }

    /// The content of `parts`, in order, as a new stage in `dir`: each part is
    /// hard-linked there (no copy; the emulator's own part files stay as they are, for
    /// a commit the client may retry). The bytes are read back only for `whole`, the
    /// digests of the whole content the vendor itself computes. Fails if a part is gone
    /// (an abort or expiry meanwhile). Runs on the blocking pool.
    pub(crate) async fn join(
        dir: PathBuf,
        parts: Vec<PathBuf>,
        whole: Hashes,
    ) -> io::Result<Staged> {
        tokio::task::spawn_blocking(move || {
            let mut segments = Vec::with_capacity(parts.len().max(1));
            let mut len = 0u64;
            for part in &parts {
                let seg = link_into(&dir, part)?;
                len += std::fs::metadata(&seg)?.len();
                segments.push(seg);
            }
            if segments.is_empty() {
                // An empty object is one empty file, so that every object has a blob.
                segments.push(NamedTempFile::new_in(&dir)?.into_temp_path());
            }
            let digests = digest_files(segments.iter().map(|p| &**p), whole)?;
            Ok(Staged {
                segments,
                len,
                digests,
            })
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Flips every bit of one byte, then re-hashes so the digests describe what is
    /// really stored (the `corrupt_rate` fault). The byte is the one at `at % len`, or a
    /// random one when `at` is `None` (`corrupt_offset`). An empty file is unchanged.
    /// The segment holding the byte is copied first: a joined segment is a link to an
    /// emulator's part file, which must keep the bytes the client sent.
    pub(crate) async fn corrupt(mut self, at: Option<u64>) -> io::Result<Staged> {
        if self.len == 0 {
            return Ok(self);
        }
        tokio::task::spawn_blocking(move || {
            let at = at.map_or_else(|| fastrand::u64(..self.len), |at| at % self.len);
            let (mut i, mut start) = (0usize, 0u64);
            loop {
                let size = std::fs::metadata(&self.segments[i])?.len();
                if at < start + size {
                    break;
                }
                start += size;
                i += 1;
                if i == self.segments.len() {
                    return Err(io::Error::other("corrupt: offset past the segments"));
                }
            }
            let dir = self.segments[i]
                .parent()
                .ok_or_else(|| io::Error::other("a segment has no folder"))?
                .to_path_buf();
            let copy = NamedTempFile::new_in(&dir)?.into_temp_path();
            std::fs::copy(&self.segments[i], &copy)?;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&copy)?;
            let mut byte = [0u8; 1];
            f.seek(SeekFrom::Start(at - start))?;
            f.read_exact(&mut byte)?;
            byte[0] ^= 0xff;
            f.seek(SeekFrom::Start(at - start))?;
            f.write_all(&byte)?;
            drop(f);
            self.segments[i] = copy;
            let digests = digest_files(self.segments.iter().map(|p| &**p), self.digests.hashes())?;
            Ok(Staged { digests, ..self })
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// A new name for `part`'s file in `dir`, deleted on drop.
fn link_into(dir: &Path, part: &Path) -> io::Result<TempPath> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // The pid and a random tag keep names apart from an earlier run's leftovers.
        let name = dir.join(format!(
            ".join-{}-{n}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        match std::fs::hard_link(part, &name) {
            Ok(()) => return TempPath::try_from_path(name),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The `hashes` of the files' bytes, in order; reads nothing when none are asked.
pub(crate) fn digest_files<'a>(
    files: impl Iterator<Item = &'a Path>,
    hashes: Hashes,
) -> io::Result<Digests> {
    let mut h = Hashers::new(hashes);
    if hashes == Hashes::NONE {
        return Ok(h.finish());
    }
    let mut buf = vec![0u8; 1 << 20];
    for path in files {
        let mut f = std::fs::File::open(path)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Hashes = Hashes {
        sha1: true,
        sha256: true,
        md5: true,
    };

    async fn staged(dir: &Path, bytes: &[u8], hashes: Hashes) -> io::Result<Staged> {
        let mut s = Staging::new_in(dir, hashes)?;
        s.write(bytes).await?;
        s.finish().await
    }

    #[tokio::test]
    async fn staged_digests_match_the_bytes() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut s = Staging::new_in(dir.path(), ALL)?;
        s.write(b"hello ").await?;
        s.write(b"world").await?;
        let staged = s.finish().await?;
        assert_eq!(staged.len, 11);
        assert_eq!(
            staged.sha1_hex(),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        assert_eq!(
            staged.sha256_hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(
            staged.digests.md5.map(|d| hex(&d)).as_deref(),
            Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        let dest = dir.path().join("out");
        staged.persist(&dest)?;
        assert_eq!(std::fs::read(&dest)?, b"hello world");
        Ok(())
    }

    #[tokio::test]
    async fn only_the_asked_digests_are_computed() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let none = staged(dir.path(), b"abc", Hashes::NONE).await?;
        assert_eq!(none.digests, Digests::default());
        assert_eq!(none.sha1_hex(), "");
        let sha1 = staged(dir.path(), b"abc", Hashes::SHA1).await?;
        assert!(sha1.digests.sha1.is_some());
        assert_eq!((sha1.digests.sha256, sha1.digests.md5), (None, None));
        Ok(())
    }

    #[tokio::test]
    async fn dropped_staging_leaves_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut s = Staging::new_in(dir.path(), ALL)?;
        s.write(b"partial").await?;
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn corrupt_changes_one_byte_and_the_digest() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let clean = staged(dir.path(), &[7u8; 1000], Hashes::SHA1).await?;
        let before = clean.digests;
        let bad = clean.corrupt(None).await?;
        assert_ne!(bad.digests.sha1, before.sha1);
        assert!(bad.digests.sha1.is_some() && bad.digests.sha256.is_none());
        let dest = dir.path().join("bad");
        bad.persist(&dest)?;
        let bytes = std::fs::read(&dest)?;
        assert_eq!(bytes.len(), 1000);
        assert_eq!(bytes.iter().filter(|&&b| b != 7).count(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn corrupt_at_an_offset_flips_that_byte_modulo_the_size() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        for (at, flipped) in [(3u64, 3usize), (10, 0), (25, 5)] {
            let bad = staged(dir.path(), &[7u8; 10], Hashes::NONE)
                .await?
                .corrupt(Some(at))
                .await?;
            let dest = dir.path().join(format!("bad{at}"));
            bad.persist(&dest)?;
            let bytes = std::fs::read(&dest)?;
            let mut want = vec![7u8; 10];
            want[flipped] = !7;
            assert_eq!(bytes, want, "offset {at}");
        }
        Ok(())
    }

    /// The bytes of a stage, segment after segment.
    fn content(s: &Staged) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        for p in s.paths() {
            all.extend(std::fs::read(p)?);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn a_join_is_the_parts_in_order_without_touching_them() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let parts = [b"hello ".to_vec(), Vec::new(), b"world".to_vec()];
        let mut files = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let f = dir.path().join(format!("part{i}"));
            std::fs::write(&f, p)?;
            files.push(f);
        }
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let joined = Staged::join(tmp.clone(), files.clone(), Hashes::SHA1).await?;
        assert_eq!(joined.len, 11);
        assert_eq!(content(&joined)?, b"hello world");
        assert_eq!(
            joined.sha1_hex(),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        assert_eq!(joined.digests.sha256, None);

        // A fault flips a byte of what is stored; the client's parts stay as sent.
        let bad = joined.corrupt(Some(8)).await?;
        assert_eq!(content(&bad)?, b"hello wo\x8dld");
        assert_ne!(bad.sha1_hex(), "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        for (f, p) in files.iter().zip(&parts) {
            assert_eq!(&std::fs::read(f)?, p);
        }
        drop(bad);
        assert_eq!(
            std::fs::read_dir(&tmp)?.count(),
            0,
            "a dropped join leaves nothing"
        );
        assert!(files.iter().all(|f| f.exists()), "nor removes the parts");
        Ok(())
    }

    #[tokio::test]
    async fn a_join_of_nothing_is_one_empty_file_and_of_a_missing_part_fails() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let empty = Staged::join(dir.path().to_path_buf(), Vec::new(), ALL).await?;
        assert_eq!((empty.len, empty.paths().count()), (0, 1));
        assert_eq!(empty.sha1_hex(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        let gone = Staged::join(
            dir.path().to_path_buf(),
            vec![dir.path().join("no-such-part")],
            Hashes::NONE,
        )
        .await;
        assert!(gone.is_err());
        Ok(())
    }
}
