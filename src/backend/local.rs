//! The local-directory backend: the embedded default, and the reference every other
//! backend is compared with in the behaviour suite.
//!
//! A file with key `a/b.bin` ends up at `<root>/a/b.bin`. Nothing half-written is
//! ever visible there:
//!
//! 1. `begin` makes `<root>/.dropship-staging/<session>/` holding `data`, a sparse
//!    file of the final size.
//! 2. `put_part` writes its range into `data`, syncs it, then records a receipt file
//!    `part-<index>.json` by write-to-temp + rename. A receipt file exists only for
//!    bytes that are on disk, so `held_parts` can trust it after a crash.
//! 3. `complete` checks the receipts cover the file, then renames `data` onto the
//!    destination (atomic on one filesystem, which is why staging lives inside the
//!    root) and syncs the folder.
//!
//! `stat` reads the stored file back and hashes it: verification compares what is on
//! disk now, not what this backend believes it wrote.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{
    Addressing, Backend, BackendError, Capabilities, FileDigests, FileSpec, FinalPart, Op,
    PartBody, PartSizeRule, PartSpec, Progress, Receipt, RemoteObject, RemoteStat, Session,
};
use crate::digest::{DigestKind, Hasher};

/// Staging folder inside the root; its name is refused as a key's first component.
pub const STAGING_DIR: &str = ".dropship-staging";

/// Small files go in one write: below this, a session's extra syncs and receipt files
/// cost more than re-sending the whole file after a crash.
const SINGLE_REQUEST_BELOW: u64 = 256 << 10;

/// `[backend] type = "local"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Destination root; created if missing.
    pub path: PathBuf,
}

#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: &Path) -> Result<LocalBackend, BackendError> {
        std::fs::create_dir_all(root.join(STAGING_DIR)).map_err(|e| {
            BackendError::from_io(
                Op::Begin,
                &format!("creating {}", root.join(STAGING_DIR).display()),
                &e,
            )
        })?;
        Ok(LocalBackend {
            root: root.to_path_buf(),
        })
    }

    fn staging(&self, session: &Session) -> Result<PathBuf, BackendError> {
        // Session ids are ours (hex), but they come back from the journal: check.
        if session.id.is_empty() || !session.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BackendError::SessionGone {
                op: Op::PutPart,
                detail: format!("malformed local session id {:?}", session.id),
            });
        }
        Ok(self.root.join(STAGING_DIR).join(&session.id))
    }

    /// The destination of a key, refusing anything that could leave the root.
    fn destination(&self, op: Op, key: &str) -> Result<PathBuf, BackendError> {
        let rel = Path::new(key);
        let safe = !key.is_empty()
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && rel.components().next() != Some(Component::Normal(STAGING_DIR.as_ref()));
        if !safe {
            return Err(BackendError::Fatal {
                op,
                status: None,
                detail: format!("key {key:?} cannot be stored under the local root"),
            });
        }
        Ok(self.root.join(rel))
    }
}

fn new_session_id() -> String {
    format!("{:016x}{:08x}", fastrand::u64(..), std::process::id())
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    op: Op,
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Retry {
            op,
            after: None,
            cause: format!("blocking task failed: {e}"),
        })?
}

fn io(op: Op, what: impl Fn() -> String) -> impl Fn(std::io::Error) -> BackendError {
    move |e| BackendError::from_io(op, &what(), &e)
}

/// Writes `bytes` to `path` so that `path` either does not exist or is complete.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Renames `from` onto `to` (replacing an older version), creating `to`'s folders,
/// and syncs the folder so the rename survives a power cut.
fn publish(from: &Path, to: &Path) -> std::io::Result<()> {
    let parent = to.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    std::fs::rename(from, to)?;
    sync_dir(parent)
}

fn read_receipts(dir: &Path) -> std::io::Result<Vec<Receipt>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("part-") && name.ends_with(".json")) {
            continue;
        }
        let mut text = String::new();
        std::fs::File::open(entry.path())?.read_to_string(&mut text)?;
        // A receipt file is written by rename, so a torn one means tampering or disk
        // damage: skip it and let the part be sent again.
        if let Ok(r) = serde_json::from_str::<Receipt>(&text) {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.index);
    Ok(out)
}

fn hash_file(path: &Path) -> std::io::Result<Option<RemoteStat>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut h = Hasher::new(DigestKind::Sha256);
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Some(RemoteStat {
        size,
        digest: Some(h.finish()),
    }))
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    /// A local folder stores any UTF-8 name a file already has.
    fn name_problem(&self, _key: &str) -> Option<String> {
        None
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            addressing: Addressing::ByteOffset,
            part_size: PartSizeRule::Chosen {
                min: 1,
                max: 1 << 30,
            },
            max_parts: None,
            parallel_parts: true,
            lists_held_parts: true,
            part_digest: None,
            object_digest: Some(DigestKind::Sha256),
            single_request_below: SINGLE_REQUEST_BELOW,
            last_part_on_complete: false,
            ranged_reads: true,
            request_deadline: None,
            asynchronous_join: false,
            object_digest_from_parts: false,
        }
    }

    async fn put_single(
        &self,
        file: &FileSpec,
        body: PartBody,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::PutSingle;
        let dest = self.destination(op, &file.key)?;
        let tmp = self
            .root
            .join(STAGING_DIR)
            .join(format!("single-{}", new_session_id()));
        if let Some(bytes) = body.unpaced_bytes() {
            // In memory and unpaced: created, written, synced and published in one
            // blocking call (a small file's cost is its hand-offs, not its bytes).
            blocking(op, move || {
                let written = std::fs::File::create(&tmp).and_then(|mut out| {
                    out.write_all(&bytes)?;
                    Ok(out)
                });
                match written {
                    Ok(out) => {
                        body.count_sent(bytes.len() as u64);
                        sync_and_publish(op, out, &tmp, &dest)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        Err(io(op, || format!("creating or writing {}", tmp.display()))(
                            e,
                        ))
                    }
                }
            })
            .await?;
            return Ok(RemoteObject::at(&file.key));
        }
        let mut out = tokio::fs::File::create(&tmp)
            .await
            .map_err(io(op, || format!("creating {}", tmp.display())))?;
        let written = write_stream(op, &mut out, body).await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        blocking(op, move || {
            out_sync_and_publish(op, out, &tmp, &dest)?;
            Ok(())
        })
        .await?;
        Ok(RemoteObject::at(&file.key))
    }

    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError> {
        let op = Op::Begin;
        self.destination(op, &file.key)?;
        let session = Session {
            id: new_session_id(),
            part_size: None,
            extra: serde_json::Value::Null,
        };
        let dir = self.staging(&session)?;
        let size = file.size;
        blocking(op, move || {
            std::fs::create_dir_all(&dir)
                .map_err(io(op, || format!("creating {}", dir.display())))?;
            let data = std::fs::File::create(dir.join("data"))
                .map_err(io(op, || "creating staging data".into()))?;
            data.set_len(size)
                .map_err(io(op, || "sizing staging data".into()))?;
            Ok(())
        })
        .await?;
        Ok(session)
    }

    async fn put_part(
        &self,
        session: &Session,
        part: &PartSpec,
        body: PartBody,
    ) -> Result<Receipt, BackendError> {
        let op = Op::PutPart;
        let dir = self.staging(session)?;
        let data_path = dir.join("data");
        let data = match std::fs::OpenOptions::new().write(true).open(&data_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackendError::SessionGone {
                    op,
                    detail: format!("staging for session {} is gone", session.id),
                });
            }
            Err(e) => return Err(BackendError::from_io(op, "opening staging data", &e)),
        };
        if body.len() != part.length {
            return Err(BackendError::Conflict {
                op,
                detail: format!("body of {} bytes for a part of {}", body.len(), part.length),
            });
        }
        let data = std::sync::Arc::new(data);
        let mut offset = part.offset;
        let mut stream = std::pin::pin!(body.into_stream(Progress::new()));
        while let Some(slice) = stream.next().await {
            let slice = slice.map_err(io(op, || "reading part body".into()))?;
            let f = data.clone();
            let at = offset;
            offset += slice.len() as u64;
            blocking(op, move || {
                f.write_all_at(&slice, at)
                    .map_err(io(op, || "writing staging data".into()))
            })
            .await?;
        }
        let receipt = Receipt::of(part);
        let record = serde_json::to_vec(&receipt).map_err(|e| BackendError::Fatal {
            op,
            status: None,
            detail: format!("encoding receipt: {e}"),
        })?;
        let index = part.index;
        blocking(op, move || {
            // The bytes reach the disk before the receipt that vouches for them.
            data.sync_data()
                .map_err(io(op, || "syncing staging data".into()))?;
            write_atomically(&dir.join(format!("part-{index}.json")), &record)
                .map_err(io(op, || "writing part receipt".into()))
        })
        .await?;
        Ok(receipt)
    }

    async fn held_parts(
        &self,
        session: &Session,
        _file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError> {
        let op = Op::HeldParts;
        let dir = self.staging(session)?;
        blocking(op, move || match read_receipts(&dir) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BackendError::SessionGone {
                op,
                detail: "staging folder is gone".into(),
            }),
            Err(e) => Err(BackendError::from_io(op, "listing receipts", &e)),
        })
        .await
    }

    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        parts: &[Receipt],
        _last: Option<FinalPart>,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::Complete;
        let dir = self.staging(session)?;
        let dest = self.destination(op, &file.key)?;
        let wanted: Vec<(u32, u64, u64)> = parts
            .iter()
            .map(|p| (p.index, p.offset, p.length))
            .collect();
        let size = file.size;
        blocking(op, move || {
            let held = match read_receipts(&dir) {
                Ok(h) => h,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(BackendError::SessionGone {
                        op,
                        detail: "staging folder is gone".into(),
                    });
                }
                Err(e) => return Err(BackendError::from_io(op, "listing receipts", &e)),
            };
            let held: Vec<(u32, u64, u64)> =
                held.iter().map(|p| (p.index, p.offset, p.length)).collect();
            let covered: u64 = wanted.iter().map(|p| p.2).sum();
            if held != wanted || covered != size {
                return Err(BackendError::Conflict {
                    op,
                    detail: format!(
                        "parts do not cover the file: {} held, {} listed, {covered} of {size} bytes",
                        held.len(),
                        wanted.len()
                    ),
                });
            }
            let data = dir.join("data");
            match publish(&data, &dest) {
                Ok(()) => {}
                // Published already, and the cleanup below was cut short by a crash:
                // the engine checks the destination and finds the file there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !data.exists() => {
                    return Err(BackendError::SessionGone {
                        op,
                        detail: "the session's data was already published".into(),
                    });
                }
                Err(e) => return Err(BackendError::from_io(op, &format!("publishing {}", dest.display()), &e)),
            }
            // The staging folder only holds receipts now; losing this cleanup to a
            // crash leaves a few bytes behind, never a wrong file.
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        })
        .await?;
        Ok(RemoteObject::at(&file.key))
    }

    async fn abort(&self, session: &Session) -> Result<(), BackendError> {
        let dir = self.staging(session)?;
        blocking(Op::Abort, move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::from_io(Op::Abort, "removing staging", &e)),
        })
        .await
    }

    async fn stat(
        &self,
        key: &str,
        _known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError> {
        let path = self.destination(Op::Stat, key)?;
        blocking(Op::Stat, move || {
            hash_file(&path).map_err(io(Op::Stat, || format!("reading {}", path.display())))
        })
        .await
    }

    async fn read_range(
        &self,
        remote: &RemoteObject,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let op = Op::ReadBack;
        let path = self.destination(op, &remote.key)?;
        blocking(op, move || {
            let file = std::fs::File::open(&path)
                .map_err(io(op, || format!("opening {}", path.display())))?;
            let size = file
                .metadata()
                .map_err(io(op, || format!("reading {}", path.display())))?
                .len();
            let len = len.min(size.saturating_sub(offset));
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset)
                .map_err(io(op, || format!("reading {}", path.display())))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    /// Removes every staging entry no journal session names: session folders begun
    /// by a daemon that died before recording them (each holds a sparse file of the
    /// full size), and half-written single-request files. A destination root belongs
    /// to one daemon: another daemon's staging would look orphaned here.
    async fn sweep(&self, known: &[Session], _unrecorded: &[String]) -> Result<u64, BackendError> {
        let op = Op::Abort;
        let staging = self.root.join(STAGING_DIR);
        let keep: std::collections::HashSet<String> = known.iter().map(|s| s.id.clone()).collect();
        blocking(op, move || {
            let mut removed = 0;
            let entries = std::fs::read_dir(&staging)
                .map_err(io(op, || format!("listing {}", staging.display())))?;
            for entry in entries {
                let entry = entry.map_err(io(op, || format!("listing {}", staging.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let path = entry.path();
                let gone = match entry.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                    _ => std::fs::remove_file(&path),
                };
                match gone {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(BackendError::from_io(
                            op,
                            &format!("removing {}", path.display()),
                            &e,
                        ));
                    }
                }
            }
            Ok(removed)
        })
        .await
    }
}

async fn write_stream(
    op: Op,
    out: &mut tokio::fs::File,
    body: PartBody,
) -> Result<(), BackendError> {
    use tokio::io::AsyncWriteExt;
    let mut stream = std::pin::pin!(body.into_stream(Progress::new()));
    while let Some(slice) = stream.next().await {
        let slice = slice.map_err(io(op, || "reading body".into()))?;
        out.write_all(&slice)
            .await
            .map_err(io(op, || "writing staging file".into()))?;
    }
    out.flush()
        .await
        .map_err(io(op, || "flushing staging file".into()))
}

fn out_sync_and_publish(
    op: Op,
    out: tokio::fs::File,
    tmp: &Path,
    dest: &Path,
) -> Result<(), BackendError> {
    let out = out.try_into_std().map_err(|_| BackendError::Retry {
        op,
        after: None,
        cause: "staging file still busy".into(),
    })?;
    sync_and_publish(op, out, tmp, dest)
}

fn sync_and_publish(
    op: Op,
    out: std::fs::File,
    tmp: &Path,
    dest: &Path,
) -> Result<(), BackendError> {
    out.sync_all()
        .map_err(io(op, || "syncing staging file".into()))?;
    publish(tmp, dest).map_err(io(op, || format!("publishing {}", dest.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Meter;
    use crate::digest::digest_of;
    use bytes::Bytes;

    fn spec(key: &str, size: u64) -> FileSpec {
        FileSpec {
            key: key.into(),
            size,
            mtime: 0,
            content_type: None,
        }
    }

    fn part(index: u32, offset: u64, length: u64, total: u64) -> PartSpec {
        PartSpec {
            index,
            offset,
            length,
            total,
            digest: None,
            last: offset + length == total,
        }
    }

    fn body(b: &[u8]) -> PartBody {
        PartBody::new(Bytes::copy_from_slice(b), Meter::new(None))
    }

    #[tokio::test]
    async fn session_parts_in_any_order_then_atomic_publish() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(root.path()).expect("backend");
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let f = spec("a/b c.bin", content.len() as u64);
        let s = b.begin(&f).await.expect("begin");
        let p1 = part(1, 4096, 4096, 10_000);
        let p0 = part(0, 0, 4096, 10_000);
        let p2 = part(2, 8192, 1808, 10_000);
        let r1 = b
            .put_part(&s, &p1, body(&content[4096..8192]))
            .await
            .expect("p1");
        let r0 = b
            .put_part(&s, &p0, body(&content[..4096]))
            .await
            .expect("p0");
        let held = b.held_parts(&s, &f).await.expect("held").expect("lists");
        assert_eq!(held, vec![r0.clone(), r1.clone()]);
        // Not visible before complete, and complete refuses a gap.
        assert!(!root.path().join("a/b c.bin").exists());
        let gap = b
            .complete(
                &s,
                &f,
                &[r0.clone(), r1.clone()],
                None,
                &FileDigests::default(),
            )
            .await;
        assert!(matches!(gap, Err(BackendError::Conflict { .. })), "{gap:?}");
        let r2 = b
            .put_part(&s, &p2, body(&content[8192..]))
            .await
            .expect("p2");
        b.complete(&s, &f, &[r0, r1, r2], None, &FileDigests::default())
            .await
            .expect("complete");
        assert_eq!(
            std::fs::read(root.path().join("a/b c.bin")).expect("stored"),
            content
        );
        let st = b
            .stat("a/b c.bin", None)
            .await
            .expect("stat")
            .expect("exists");
        assert_eq!(st.size, 10_000);
        assert_eq!(st.digest, Some(digest_of(DigestKind::Sha256, &content)));
        // The session is closed: the staging folder is gone.
        assert!(matches!(
            b.held_parts(&s, &f).await,
            Err(BackendError::SessionGone { .. })
        ));
    }

    #[tokio::test]
    async fn abort_discards_and_stat_of_missing_is_none() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(root.path()).expect("backend");
        let f = spec("x.bin", 10);
        let s = b.begin(&f).await.expect("begin");
        b.abort(&s).await.expect("abort");
        b.abort(&s).await.expect("abort twice is fine");
        let r = b.put_part(&s, &part(0, 0, 10, 10), body(&[0; 10])).await;
        assert!(matches!(r, Err(BackendError::SessionGone { .. })), "{r:?}");
        assert_eq!(b.stat("x.bin", None).await.expect("stat"), None);
    }

    #[tokio::test]
    async fn sweep_removes_staging_no_journal_session_names() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(root.path()).expect("backend");
        let kept = b.begin(&spec("kept.bin", 10)).await.expect("begin");
        // Begun by a daemon that died before recording it: the journal never knew.
        let orphan = b.begin(&spec("orphan.bin", 1 << 20)).await.expect("begin");
        let half_single = root.path().join(STAGING_DIR).join("single-00ff");
        std::fs::write(&half_single, b"half").expect("half-written single");
        let staging = |s: &Session| root.path().join(STAGING_DIR).join(&s.id);
        assert!(staging(&orphan).exists());

        let removed = b
            .sweep(std::slice::from_ref(&kept), &["orphan.bin".into()])
            .await
            .expect("sweep");
        assert_eq!(removed, 2);
        assert!(!staging(&orphan).exists());
        assert!(!half_single.exists());
        assert!(
            staging(&kept).join("data").exists(),
            "a known session survives"
        );
        // Nothing left to sweep the second time.
        assert_eq!(b.sweep(&[kept], &[]).await.expect("again"), 0);
    }

    #[tokio::test]
    async fn single_request_and_empty_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(root.path()).expect("backend");
        b.put_single(&spec("d/one", 1), body(b"x"), &FileDigests::default())
            .await
            .expect("single");
        b.put_single(&spec("empty", 0), body(b""), &FileDigests::default())
            .await
            .expect("empty");
        assert_eq!(std::fs::read(root.path().join("d/one")).expect("one"), b"x");
        assert_eq!(
            std::fs::read(root.path().join("empty")).expect("empty"),
            b""
        );
    }

    /// In memory and unpaced, a body is written in one blocking call; under a
    /// bandwidth limit it streams, paced. Both publish the same bytes, count them
    /// as sent, and leave no staging file behind.
    #[tokio::test]
    async fn a_single_request_is_written_whole_or_paced() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(root.path()).expect("backend");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let limiter = std::sync::Arc::new(crate::throttle::RateLimiter::new(1 << 30));
        for (key, limiter) in [("whole", None), ("paced", Some(limiter))] {
            let meter = Meter::new(limiter);
            let body = PartBody::new(Bytes::copy_from_slice(&data), meter.clone());
            // Which way it goes; nothing is counted before it is written.
            assert_eq!(body.unpaced_bytes().is_some(), key == "whole");
            assert_eq!(meter.sent(), 0);
            b.put_single(&spec(key, data.len() as u64), body, &FileDigests::default())
                .await
                .expect(key);
            assert_eq!(std::fs::read(root.path().join(key)).expect(key), data);
            assert_eq!(meter.sent(), data.len() as u64, "{key}");
        }
        let staging = std::fs::read_dir(root.path().join(STAGING_DIR))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(staging, 0, "staging files left");
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let root = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(root.path()).expect("backend");
        for key in [
            "../x",
            "/etc/passwd",
            "",
            ".dropship-staging/x",
            "a/../../x",
        ] {
            let r = b.begin(&spec(key, 1)).await;
            assert!(matches!(r, Err(BackendError::Fatal { .. })), "{key}: {r:?}");
        }
    }
}
