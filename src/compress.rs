//! Compression before upload (`compress = "gzip" | "zstd"`): the compressed form
//! of a file is written to the spool folder, recorded in the journal, and uploaded
//! and verified like any file; the original gets its post-action only once the
//! compressed object verified.
//!
//! The spool file is written under a temporary name, synced, then renamed: a crash
//! leaves either nothing or a complete file, and a file the journal does not name
//! is removed at the next start ([`sweep`]). Compression runs on a blocking thread
//! whose nice value is raised for the while, so that it never starves uploads on a
//! device with one or two cores.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    None,
    /// Level 0–9 (flate2's default is 6).
    Gzip(u32),
    /// Level 1–22 (zstd's default is 3).
    Zstd(i32),
}

impl Compress {
    pub const GZIP_DEFAULT: u32 = 6;
    pub const ZSTD_DEFAULT: i32 = 3;

    /// `name` ("none", "gzip", "zstd") with an optional level.
    pub fn parse(name: &str, level: Option<i64>) -> Result<Compress, String> {
        match (name, level) {
            ("none", None) => Ok(Compress::None),
            ("none", Some(_)) => Err("compress = \"none\" takes no level".into()),
            ("gzip", None) => Ok(Compress::Gzip(Self::GZIP_DEFAULT)),
            ("gzip", Some(l)) if (0..=9).contains(&l) => Ok(Compress::Gzip(l as u32)),
            ("gzip", Some(l)) => Err(format!("gzip levels are 0 to 9, not {l}")),
            ("zstd", None) => Ok(Compress::Zstd(Self::ZSTD_DEFAULT)),
            ("zstd", Some(l)) if (1..=22).contains(&l) => Ok(Compress::Zstd(l as i32)),
            ("zstd", Some(l)) => Err(format!("zstd levels are 1 to 22, not {l}")),
            (other, _) => Err(format!(
                "{other:?} is not a compression (\"none\", \"gzip\" or \"zstd\")"
            )),
        }
    }

    /// The extension the remote key gains.
    pub fn ext(self) -> Option<&'static str> {
        match self {
            Compress::None => None,
            Compress::Gzip(_) => Some(".gz"),
            Compress::Zstd(_) => Some(".zst"),
        }
    }

    /// As the journal keeps it: `gzip:6`, `zstd:3`; `None` for no compression.
    pub fn to_journal(self) -> Option<String> {
        match self {
            Compress::None => None,
            Compress::Gzip(l) => Some(format!("gzip:{l}")),
            Compress::Zstd(l) => Some(format!("zstd:{l}")),
        }
    }

    /// The journal's form back; `None` for a value this build does not know.
    pub fn from_journal(s: &str) -> Option<Compress> {
        let (name, level) = s.split_once(':')?;
        Compress::parse(name, Some(level.parse().ok()?)).ok()
    }
}

impl fmt::Display for Compress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compress::None => f.write_str("none"),
            Compress::Gzip(l) => write!(f, "gzip (level {l})"),
            Compress::Zstd(l) => write!(f, "zstd (level {l})"),
        }
    }
}

/// A compressed copy in the spool, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spooled {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

impl Spooled {
    pub fn identity(&self) -> Identity {
        Identity {
            size: self.size,
            mtime_ns: self.mtime_ns,
            inode: self.inode,
        }
    }
}

/// The spool file of row `id`.
pub fn spool_path(spool: &Path, id: i64, how: Compress) -> PathBuf {
    spool.join(format!("{id}{}", how.ext().unwrap_or("")))
}

/// Compresses `source` (whose identity must stay `expected` throughout) into
/// `dest`, through `dest` + `.tmp`, synced before the rename. Blocking: call it
/// from a blocking thread.
pub fn compress_file(
    source: &Path,
    expected: &Identity,
    dest: &Path,
    how: Compress,
) -> io::Result<Spooled> {
    let _nice = Niceness::lowered();
    let tmp = dest.with_extension("tmp");
    let result = (|| {
        let mut input = std::fs::File::open(source)?;
        let out = std::fs::File::create(&tmp)?;
        let out = io::BufWriter::with_capacity(256 << 10, out);
        let out = match how {
            Compress::None => return Err(io::Error::other("nothing to compress")),
            Compress::Gzip(level) => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
                io::copy(&mut input, &mut enc)?;
                enc.finish()?
            }
            Compress::Zstd(level) => {
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                io::copy(&mut input, &mut enc)?;
                enc.finish()?
            }
        };
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        // The source must be what was queued from start to end.
        let now = Identity::of(&input.metadata()?);
        if let Some(why) = now.change_from(expected) {
            return Err(io::Error::other(format!(
                "the file changed while it was compressed: {why}"
            )));
        }
        std::fs::rename(&tmp, dest)?;
        let meta = std::fs::metadata(dest)?;
        let id = Identity::of(&meta);
        Ok(Spooled {
            path: dest.to_path_buf(),
            size: id.size,
            mtime_ns: id.mtime_ns,
            inode: id.inode,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes every file of the spool folder that `keep` does not name (spool files
/// of rows no longer in progress, and temporary ones a crash left). Returns how
/// many it removed.
pub fn sweep(spool: &Path, keep: &[PathBuf]) -> io::Result<usize> {
    let entries = match std::fs::read_dir(spool) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        if keep.contains(&path) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Bytes the spool folder holds now.
pub fn spool_bytes(spool: &Path) -> u64 {
    std::fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Raises this thread's nice value for as long as it lives, then puts it back:
/// blocking threads are pooled, and the next task on this one must not inherit it.
struct Niceness {
    before: Option<i32>,
}

/// How much lower than the daemon's a compressing thread runs.
const NICE_STEP: i32 = 10;

impl Niceness {
    fn lowered() -> Niceness {
        // SAFETY: gettid and get/setpriority have no memory preconditions; on Linux
        // PRIO_PROCESS with a thread id acts on that thread alone.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            *libc::__errno_location() = 0;
            let before = libc::getpriority(libc::PRIO_PROCESS, tid);
            if *libc::__errno_location() != 0 {
                return Niceness { before: None };
            }
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid, (before + NICE_STEP).min(19));
            Niceness {
                before: Some(before),
            }
        }
    }
}

impl Drop for Niceness {
    fn drop(&mut self) {
        if let Some(before) = self.before {
            // SAFETY: as above. Lowering the nice value back needs no privilege on
            // Linux ≥ 2.6.12 within RLIMIT_NICE; if refused, the thread stays low,
            // which only slows later blocking work a little.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                let _ = libc::setpriority(libc::PRIO_PROCESS, tid, before);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn levels_and_names() {
        assert_eq!(Compress::parse("gzip", None), Ok(Compress::Gzip(6)));
        assert_eq!(Compress::parse("zstd", Some(19)), Ok(Compress::Zstd(19)));
        assert!(Compress::parse("zstd", Some(23)).is_err());
        assert!(Compress::parse("gzip", Some(10)).is_err());
        assert!(Compress::parse("lz4", None).is_err());
        assert!(Compress::parse("none", Some(1)).is_err());
        for c in [Compress::Gzip(1), Compress::Zstd(22)] {
            assert_eq!(
                Compress::from_journal(&c.to_journal().expect("some")),
                Some(c)
            );
        }
        assert_eq!(Compress::None.to_journal(), None);
    }

    #[test]
    fn a_spooled_copy_decompresses_to_the_file_and_a_sweep_keeps_only_what_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let src = dir.path().join("app.log");
        let text: String = (0..20_000)
            .map(|i| {
                format!(
                    "2026-11-25T04:{:02}:00Z INFO request {i} served in 3 ms\n",
                    i % 60
                )
            })
            .collect();
        std::fs::write(&src, &text).expect("write");
        let id = Identity::of(&std::fs::metadata(&src).expect("meta"));
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).expect("spool");
        for how in [Compress::Gzip(6), Compress::Zstd(3)] {
            let dest = spool_path(&spool, 7, how);
            let s = compress_file(&src, &id, &dest, how).expect("compress");
            assert!(s.size < text.len() as u64 / 5, "{how}: {} bytes", s.size);
            let mut back = String::new();
            let f = std::fs::File::open(&dest).expect("open");
            match how {
                Compress::Gzip(_) => flate2::read::GzDecoder::new(f).read_to_string(&mut back),
                _ => zstd::stream::read::Decoder::new(f)
                    .expect("zstd")
                    .read_to_string(&mut back),
            }
            .expect("decompress");
            assert_eq!(back, text);
        }
        std::fs::write(spool.join("9.gz.tmp"), b"a crash left this").expect("tmp");
        let keep = vec![spool_path(&spool, 7, Compress::Gzip(6))];
        assert_eq!(
            sweep(&spool, &keep).expect("sweep"),
            2,
            "the .zst and the .tmp"
        );
        assert!(keep[0].exists());
    }

    #[test]
    fn a_file_changed_while_compressed_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let src = dir.path().join("a.log");
        std::fs::write(&src, b"first").expect("write");
        let mut id = Identity::of(&std::fs::metadata(&src).expect("meta"));
        id.size += 1; // as if it grew since it was queued
        let dest = dir.path().join("1.gz");
        let e = compress_file(&src, &id, &dest, Compress::Gzip(6)).expect_err("changed");
        assert!(e.to_string().contains("changed"), "{e}");
        assert!(!dest.exists() && !dir.path().join("1.tmp").exists());
    }
}
