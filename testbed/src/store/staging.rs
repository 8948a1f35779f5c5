//! Writing incoming bytes to disk while hashing them, in one pass.
//!
//! A [`Staging`] file lives in the store's `tmp/` and is deleted when dropped: a
//! request that is interrupted (reset, client gone, validation failure) leaves
//! nothing behind. Only [`Staged::persist`] keeps the bytes.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};
use sha2::Sha256;
use tempfile::{NamedTempFile, TempPath};
use tokio::io::AsyncWriteExt;

/// A temp file being written; hashes are updated as bytes arrive.
pub(crate) struct Staging {
    /// Deleted on drop: an abandoned request leaves no file.
    path: TempPath,
    /// Writes complete in the background; `finish` flushes them.
    file: tokio::fs::File,
    /// Digests of every byte written so far, in order.
    sha1: Sha1,
    sha256: Sha256,
    /// Bytes written so far.
    len: u64,
}

/// Bytes fully written to a temp file, with their digests.
#[derive(Debug)]
pub(crate) struct Staged {
    /// Deleted on drop unless persisted.
    path: TempPath,
    pub(crate) len: u64,
    pub(crate) sha1: [u8; 20],
    pub(crate) sha256: [u8; 32],
}

impl Staging {
    pub(crate) fn new_in(dir: &Path) -> io::Result<Staging> {
        let tmp = NamedTempFile::new_in(dir)?;
        let file = tokio::fs::File::from_std(tmp.as_file().try_clone()?);
        Ok(Staging {
            path: tmp.into_temp_path(),
            file,
            sha1: Sha1::new(),
            sha256: Sha256::new(),
            len: 0,
        })
    }

    pub(crate) async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.sha1.update(chunk);
        self.sha256.update(chunk);
        self.len += chunk.len() as u64;
        self.file.write_all(chunk).await
    }

    /// Flushes and closes the file. tokio's `File` writes in the background: without
    /// the flush, a rename or a read could see a short file.
    pub(crate) async fn finish(mut self) -> io::Result<Staged> {
        self.file.flush().await?;
        drop(self.file);
        Ok(Staged {
            path: self.path,
            len: self.len,
            sha1: self.sha1.finalize().into(),
            sha256: self.sha256.finalize().into(),
        })
    }
}

impl Staged {
    /// Where the bytes are now; valid as long as `self` lives (for [`Staged::concat`]).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the bytes to `dest` (same file system: a rename), replacing any file there.
    pub(crate) fn persist(self, dest: &Path) -> io::Result<()> {
        self.path.persist(dest).map_err(|e| e.error)
    }

    /// Concatenates `parts` in order into a new staged file in `dir`, hashing as it
    /// copies. Runs on the blocking pool: files can be hundreds of MiB.
    pub(crate) async fn concat(dir: PathBuf, parts: Vec<PathBuf>) -> io::Result<Staged> {
        tokio::task::spawn_blocking(move || {
            let mut tmp = NamedTempFile::new_in(&dir)?;
            let (mut sha1, mut sha256, mut len) = (Sha1::new(), Sha256::new(), 0u64);
            let mut buf = vec![0u8; 1 << 20];
            for part in &parts {
                let mut f = std::fs::File::open(part)?;
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sha1.update(&buf[..n]);
                    sha256.update(&buf[..n]);
                    tmp.write_all(&buf[..n])?;
                    len += n as u64;
                }
            }
            tmp.flush()?;
            Ok(Staged {
                path: tmp.into_temp_path(),
                len,
                sha1: sha1.finalize().into(),
                sha256: sha256.finalize().into(),
            })
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Flips every bit of one byte, then re-hashes so the digests describe what is
    /// really stored (the `corrupt_rate` fault). The byte is the one at `at % len`, or a
    /// random one when `at` is `None` (`corrupt_offset`). An empty file is unchanged.
    pub(crate) async fn corrupt(self, at: Option<u64>) -> io::Result<Staged> {
        if self.len == 0 {
            return Ok(self);
        }
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.path)?;
            let at = at.map_or_else(|| fastrand::u64(..self.len), |at| at % self.len);
            let mut byte = [0u8; 1];
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut byte)?;
            byte[0] ^= 0xff;
            f.seek(SeekFrom::Start(at))?;
            f.write_all(&byte)?;
            f.seek(SeekFrom::Start(0))?;
            let (mut sha1, mut sha256) = (Sha1::new(), Sha256::new());
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                sha1.update(&buf[..n]);
                sha256.update(&buf[..n]);
            }
            Ok(Staged {
                sha1: sha1.finalize().into(),
                sha256: sha256.finalize().into(),
                ..self
            })
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::hex;

    #[tokio::test]
    async fn staged_digests_match_the_bytes() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut s = Staging::new_in(dir.path())?;
        s.write(b"hello ").await?;
        s.write(b"world").await?;
        let staged = s.finish().await?;
        assert_eq!(staged.len, 11);
        assert_eq!(
            hex(&staged.sha1),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        let dest = dir.path().join("out");
        staged.persist(&dest)?;
        assert_eq!(std::fs::read(&dest)?, b"hello world");
        Ok(())
    }

    #[tokio::test]
    async fn dropped_staging_leaves_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut s = Staging::new_in(dir.path())?;
        s.write(b"partial").await?;
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn corrupt_changes_one_byte_and_the_digest() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut s = Staging::new_in(dir.path())?;
        s.write(&[7u8; 1000]).await?;
        let clean = s.finish().await?;
        let before = clean.sha1;
        let bad = clean.corrupt(None).await?;
        assert_ne!(bad.sha1, before);
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
            let mut s = Staging::new_in(dir.path())?;
            s.write(&[7u8; 10]).await?;
            let bad = s.finish().await?.corrupt(Some(at)).await?;
            let dest = dir.path().join(format!("bad{at}"));
            bad.persist(&dest)?;
            let bytes = std::fs::read(&dest)?;
            let mut want = vec![7u8; 10];
            want[flipped] = !7;
            assert_eq!(bytes, want, "offset {at}");
        }
        Ok(())
    }
}
