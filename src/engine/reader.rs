//! The read pass: the file read in order, on blocking threads, each byte hashed once.
//!
//! For every part the reader computes the digests the backend wants (the part's own
//! and the running whole-file digest) and hands the part to the async side, which
//! sends it.
//!
//! - **Resume without re-reading.** The whole-file hash can start from a
//!   [`HashCheckpoint`] an earlier attempt saved: parts the server holds below the
//!   checkpoint are not read at all. A part still to send below it is read for its
//!   own bytes (and digest) only. After each part to send, the reader hands over a
//!   new checkpoint, which the engine saves with the part's `uploading` state.
//! - **Memory.** A part's buffer is allocated only after a slot in the file's
//!   `parts_in_flight` semaphore *and* room in the shared [`Budget`] are taken, and
//!   both travel with the bytes until the part is acknowledged. A part bigger than
//!   the whole budget is never buffered: it is hashed through a small scratch buffer
//!   and then streamed from the file as it is sent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::budget::{Budget, Reserved};
use super::buffers::Buffer;
use crate::backend::{FileDigests, FileRange, Source};
use crate::digest::{Digest, DigestKind, HashCheckpoint, Hasher};
use crate::identity::Identity;
use crate::journal::{PartRow, PartState};

/// Scratch size for parts that are only hashed.
const SCRATCH: usize = 1 << 20;

/// What the reader needs to know.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub path: PathBuf,
    /// The identity recorded at enqueue; any difference means the file changed.
    pub identity: Identity,
    pub parts: Vec<PartRow>,
    pub part_digest: Option<DigestKind>,
    pub object_digest: Option<DigestKind>,
    /// Where an earlier attempt's whole-file hash stopped.
    pub resume: Option<HashCheckpoint>,
}

/// The room a part to send holds until it is acknowledged or dropped.
#[derive(Debug)]
pub struct Held {
    _slot: OwnedSemaphorePermit,
    _memory: Option<Reserved>,
}

/// One step of the pass, in file order.
#[derive(Debug)]
pub enum ReadItem {
    /// A part to send, with where the whole-file hash stands after it.
    Send {
        index: u32,
        source: Source,
        digest: Option<Digest>,
        checkpoint: Option<HashCheckpoint>,
        held: Held,
    },
    /// A part the journal says is uploaded, with its digest when it was read.
    Held { index: u32, digest: Option<Digest> },
    /// The pass finished and the file did not change meanwhile.
    Done(FileDigests),
}

#[derive(Debug)]
pub enum ReadError {
    /// The local file is not the one that was enqueued any more.
    Changed(String),
    /// The local file is gone.
    Vanished,
    Io(std::io::Error),
}

impl ReadError {
    fn from_io(e: std::io::Error) -> ReadError {
        match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::Vanished,
            // The file is shorter than when it was enqueued: truncated under us.
            std::io::ErrorKind::UnexpectedEof => ReadError::Changed("it was truncated".into()),
            _ => ReadError::Io(e),
        }
    }
}

/// Starts the pass; items arrive on the returned channel. Dropping the receiver or
/// closing `slots` stops the reader at its next step, or while it waits for room.
pub fn spawn(
    plan: ReadPlan,
    slots: Arc<Semaphore>,
    budget: Arc<Budget>,
) -> mpsc::Receiver<Result<ReadItem, ReadError>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Err(e) = read_pass(plan, &slots, &budget, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

/// Fails if the open file is not the content that was enqueued; else its metadata.
fn check(file: &File, expected: &Identity) -> Result<std::fs::Metadata, ReadError> {
    let meta = file.metadata().map_err(ReadError::from_io)?;
    match Identity::of(&meta).change_from(expected) {
        Some(why) => Err(ReadError::Changed(why)),
        None => Ok(meta),
    }
}

/// The whole-file hasher and how far it has read.
struct Whole {
    hasher: Hasher,
    /// Bytes `[0, upto)` are in the hasher.
    upto: u64,
}

impl Whole {
    /// From the checkpoint when it fits this file, else from byte 0.
    fn start(kind: DigestKind, resume: Option<&HashCheckpoint>, size: u64, ctime_ns: i64) -> Whole {
        let fits = |cp: &&HashCheckpoint| {
            cp.kind == kind && cp.offset <= size && cp.ctime_ns == Some(ctime_ns)
        };
        if let Some(cp) = resume.filter(fits)
            && let Some(hasher) = Hasher::resume(cp)
        {
            return Whole {
                hasher,
                upto: cp.offset,
            };
        }
        Whole {
            hasher: Hasher::new(kind),
            upto: 0,
        }
    }

    /// Feeds the bytes of `data` (which starts at `offset`) that it has not seen.
    fn feed(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        if end <= self.upto {
            return;
        }
        let skip = self.upto.saturating_sub(offset) as usize;
        self.hasher.update(&data[skip..]);
        self.upto = end;
    }
}

/// The pass waits for room as a task and reads on a blocking thread one part at a
/// time: a reader waiting for a slot or for the budget (behind a big file's parts)
/// holds no thread, so the blocking pool's size is bounded by work, not by waiters.
async fn read_pass(
    plan: ReadPlan,
    slots: &Arc<Semaphore>,
    budget: &Arc<Budget>,
    tx: &mpsc::Sender<Result<ReadItem, ReadError>>,
) -> Result<(), ReadError> {
    let plan = Arc::new(plan);
    let mut cursor: Option<Cursor> = None;
    let last = plan.parts.len().checked_sub(1);
    for i in 0..plan.parts.len() {
        let part = &plan.parts[i];
        let item = if part.state == PartState::Uploaded {
            // Read only if the file is not open yet (the pass opens it once, and
            // checks it, whatever the parts), for a hash, or for the final check.
            let go = cursor
                .as_ref()
                .is_none_or(|c| c.held_needs(&plan, part).is_some())
                || Some(i) == last;
            let digest = if go {
                let (c, digest) = blocking(cursor.take(), &plan, Some(i) == last, move |c, p| {
                    let Some(mut part_hash) = c.held_needs(p, &p.parts[i]) else {
                        return Ok(None);
                    };
                    c.hash_range(&p.parts[i], &mut part_hash)?;
                    Ok(part_hash.map(Hasher::finish))
                })
                .await?;
                cursor = Some(c);
                digest
            } else {
                None
            };
            ReadItem::Held {
                index: part.index,
                digest,
            }
        } else {
            // Room first: the buffer is allocated only once it is accounted for.
            let slot = tokio::select! {
                _ = tx.closed() => return Ok(()),
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return Ok(()), // closed: the upload stopped
                },
            };
            let memory = tokio::select! {
                _ = tx.closed() => return Ok(()),
                memory = budget.reserve(part.length) => memory,
            };
            if slots.is_closed() {
                return Ok(()); // the upload stopped while this part waited for room
            }
            // The buffer is taken (and, new, zeroed) on the blocking thread too.
            let budget = budget.clone();
            let (c, (source, digest, checkpoint, memory)) =
                blocking(cursor.take(), &plan, Some(i) == last, move |c, p| {
                    let buf = memory
                        .as_ref()
                        .map(|room| budget.buffer(p.parts[i].length as usize, room));
                    let (source, digest, checkpoint) = c.read_part(p, i, buf)?;
                    Ok((source, digest, checkpoint, memory))
                })
                .await?;
            cursor = Some(c);
            ReadItem::Send {
                index: part.index,
                source,
                digest,
                checkpoint,
                held: Held {
                    _slot: slot,
                    _memory: memory,
                },
            }
        };
        if tx.send(Ok(item)).await.is_err() {
            return Ok(()); // the receiver stopped listening
        }
    }
    let cursor = match cursor {
        Some(c) => c,
        // No part was read (a file of no parts): still, the file must be there and
        // the same.
        None => blocking(None, &plan, true, |_, _| Ok(())).await?.0,
    };
    let digests = FileDigests {
        object: cursor.whole.map(|w| w.hasher.finish()),
        part: None,
    };
    let _ = tx.send(Ok(ReadItem::Done(digests))).await;
    Ok(())
}

/// Runs `step` on a blocking thread with the pass's open file, opening it first if
/// this is the first step. `last`: checks afterwards that the file did not change
/// during the pass (appends and rewrites show up there: the bytes read may mix old
/// and new content, so they must not be completed).
async fn blocking<T, F>(
    cursor: Option<Cursor>,
    plan: &Arc<ReadPlan>,
    last: bool,
    step: F,
) -> Result<(Cursor, T), ReadError>
where
    T: Send + 'static,
    F: FnOnce(&mut Cursor, &ReadPlan) -> Result<T, ReadError> + Send + 'static,
{
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = match cursor {
            Some(c) => c,
            None => Cursor::open(&plan)?,
        };
        let out = step(&mut c, &plan)?;
        if last {
            check(&c.file, &plan.identity)?;
        }
        Ok((c, out))
    })
    .await
    .map_err(|e| ReadError::Io(std::io::Error::other(e.to_string())))?
}

/// What the pass carries from one blocking step to the next.
struct Cursor {
    file: Arc<File>,
    ctime: i64,
    whole: Option<Whole>,
    scratch: Vec<u8>,
}

impl Cursor {
    fn open(plan: &ReadPlan) -> Result<Cursor, ReadError> {
        let file = Arc::new(File::open(&plan.path).map_err(ReadError::from_io)?);
        let ctime = ctime_ns(&check(&file, &plan.identity)?);
        let whole = plan
            .object_digest
            .map(|k| Whole::start(k, plan.resume.as_ref(), plan.identity.size, ctime));
        Ok(Cursor {
            file,
            ctime,
            whole,
            scratch: Vec::new(),
        })
    }

    /// Whether a part the server holds is read: `None` if not, else with the
    /// part's own hasher if it needs one. Held parts are read only for a hash: the
    /// whole file's (not yet past them), or their own where it is the only content
    /// check there is (a size-only service with part digests).
    fn held_needs(&self, plan: &ReadPlan, part: &PartRow) -> Option<Option<Hasher>> {
        let end = part.offset + part.length;
        let whole_needs = self.whole.as_ref().is_some_and(|w| w.upto < end);
        let part_check = plan.part_digest.is_some() && plan.object_digest.is_none();
        let part_hash = (whole_needs || part_check)
            .then_some(plan.part_digest)
            .flatten()
            .map(Hasher::new);
        (whole_needs || part_hash.is_some()).then_some(part_hash)
    }

    /// Part `i`, to send: into `buf` (room reserved) or, without one, hashed now and
    /// streamed from the file later. Its digest, and where the whole-file hash
    /// stands after it when it moved.
    fn read_part(
        &mut self,
        plan: &ReadPlan,
        i: usize,
        buf: Option<Buffer>,
    ) -> Result<(Source, Option<Digest>, Option<HashCheckpoint>), ReadError> {
        let part = &plan.parts[i];
        let end = part.offset + part.length;
        let whole_needs = self.whole.as_ref().is_some_and(|w| w.upto < end);
        // One part that is the whole file, with a part digest of the file's own
        // kind (a single request's MD5 or SHA-1 or SHA-256): the whole-file hasher
        // gives both, so each byte is hashed once.
        let shared = part.offset == 0
            && part.length == plan.identity.size
            && plan.part_digest.is_some()
            && plan.part_digest == plan.object_digest
            && self.whole.as_ref().is_some_and(|w| w.upto == 0);
        let mut part_hash = plan.part_digest.filter(|_| !shared).map(Hasher::new);
        let source = if let Some(mut buf) = buf {
            self.file
                .read_exact_at(buf.as_mut_slice(), part.offset)
                .map_err(ReadError::from_io)?;
            if let Some(w) = self.whole.as_mut() {
                w.feed(part.offset, buf.as_ref());
            }
            if let Some(h) = part_hash.as_mut() {
                h.update(buf.as_ref());
            }
            Source::Memory(buf.freeze())
        } else {
            // Bigger than the whole budget: hash now, send from the file later.
            self.hash_range(part, &mut part_hash)?;
            Source::File(FileRange {
                file: self.file.clone(),
                offset: part.offset,
                len: part.length,
                identity: plan.identity,
            })
        };
        let digest = match (shared, self.whole.as_ref()) {
            (true, Some(w)) => Some(w.hasher.clone().finish()),
            _ => part_hash.map(Hasher::finish),
        };
        let checkpoint = self
            .whole
            .as_ref()
            .filter(|_| whole_needs)
            .map(|w| w.hasher.checkpoint(w.upto, Some(self.ctime)));
        Ok((source, digest, checkpoint))
    }

    /// Reads a part through the scratch buffer into the hashers, without buffering
    /// it.
    fn hash_range(
        &mut self,
        part: &PartRow,
        part_hash: &mut Option<Hasher>,
    ) -> Result<(), ReadError> {
        if self.scratch.is_empty() {
            self.scratch.resize(SCRATCH, 0);
        }
        let end = part.offset + part.length;
        // Only what one of the hashers still needs.
        let from = match (self.whole.as_ref(), part_hash.is_some()) {
            (_, true) | (None, false) => part.offset,
            (Some(w), false) => w.upto.max(part.offset),
        };
        let mut pos = from;
        while pos < end {
            let n = ((end - pos) as usize).min(SCRATCH);
            let chunk = &mut self.scratch[..n];
            self.file
                .read_exact_at(chunk, pos)
                .map_err(ReadError::from_io)?;
            if let Some(w) = self.whole.as_mut() {
                w.feed(pos, chunk);
            }
            if let Some(h) = part_hash.as_mut() {
                h.update(chunk);
            }
            pos += n as u64;
        }
        Ok(())
    }
}

fn ctime_ns(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest_of;

    fn parts(size: u64, ps: u64, uploaded: &[u32]) -> Vec<PartRow> {
        crate::engine::plan::cut(size, ps)
            .into_iter()
            .enumerate()
            .map(|(i, (offset, length))| PartRow {
                index: i as u32,
                offset,
                length,
                state: if uploaded.contains(&(i as u32)) {
                    PartState::Uploaded
                } else {
                    PartState::Pending
                },
                receipt: None,
            })
            .collect()
    }

    struct Pass {
        sent: Vec<(u32, Vec<u8>, Option<HashCheckpoint>)>,
        /// The part digest each sent part came with.
        sent_digests: Vec<Option<Digest>>,
        /// Which sent parts were streamed from the file rather than buffered.
        streamed: Vec<u32>,
        held_digests: Vec<(u32, Option<Digest>)>,
        done: FileDigests,
    }

    async fn run(plan: ReadPlan, budget: u64) -> Pass {
        let mut rx = spawn(
            plan,
            Arc::new(Semaphore::new(8)),
            Arc::new(Budget::new(budget)),
        );
        let mut pass = Pass {
            sent: Vec::new(),
            sent_digests: Vec::new(),
            streamed: Vec::new(),
            held_digests: Vec::new(),
            done: FileDigests::default(),
        };
        while let Some(item) = rx.recv().await {
            match item.expect("read") {
                ReadItem::Send {
                    index,
                    source,
                    checkpoint,
                    digest,
                    ..
                } => {
                    pass.sent_digests.push(digest);
                    let bytes = match source {
                        Source::Memory(b) => b.to_vec(),
                        Source::File(r) => {
                            pass.streamed.push(index);
                            let mut v = vec![0u8; r.len as usize];
                            r.file.read_exact_at(&mut v, r.offset).expect("read");
                            v
                        }
                    };
                    pass.sent.push((index, bytes, checkpoint));
                }
                ReadItem::Held { index, digest } => pass.held_digests.push((index, digest)),
                ReadItem::Done(d) => pass.done = d,
            }
        }
        pass
    }

    fn setup(size: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>, Identity) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 257) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let id = Identity::of(&std::fs::metadata(&path).expect("meta"));
        (dir, path, data, id)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_request_of_the_files_own_digest_kind_is_hashed_once_and_right() {
        let (_d, path, data, identity) = setup(10_000);
        for (kind, budget) in [
            (DigestKind::Md5, 1 << 20),
            (DigestKind::Sha256, 1 << 20),
            // Bigger than the budget: hashed, then streamed from the file.
            (DigestKind::Sha1, 100),
        ] {
            let plan = ReadPlan {
                path: path.clone(),
                identity,
                parts: parts(10_000, 10_000, &[]),
                part_digest: Some(kind),
                object_digest: Some(kind),
                resume: None,
            };
            let pass = run(plan, budget).await;
            let want = Some(digest_of(kind, &data));
            assert_eq!(pass.done.object, want, "{kind}");
            assert_eq!(pass.sent_digests, vec![want.clone()], "{kind}");
        }
        // Kinds that differ still get each their own.
        let plan = ReadPlan {
            path: path.clone(),
            identity,
            parts: parts(10_000, 10_000, &[]),
            part_digest: Some(DigestKind::Md5),
            object_digest: Some(DigestKind::Sha256),
            resume: None,
        };
        let pass = run(plan, 1 << 20).await;
        assert_eq!(
            pass.sent_digests,
            vec![Some(digest_of(DigestKind::Md5, &data))]
        );
        assert_eq!(pass.done.object, Some(digest_of(DigestKind::Sha256, &data)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resumed_pass_reads_only_what_it_sends_and_hashes_on() {
        let (_d, path, data, identity) = setup(10_000);
        let plan = |parts, resume| ReadPlan {
            path: path.clone(),
            identity,
            parts,
            part_digest: Some(DigestKind::Sha1),
            object_digest: Some(DigestKind::Sha1),
            resume,
        };
        // First attempt: parts 0 and 1 sent, then the attempt stopped.
        let first = run(plan(parts(10_000, 3000, &[]), None), 1 << 20).await;
        assert_eq!(first.done.object, Some(digest_of(DigestKind::Sha1, &data)));
        let cp = first.sent[1].2.clone().expect("a checkpoint after part 1");
        assert_eq!(cp.offset, 6000);
        // Second attempt: 0 and 1 held, continuing from the checkpoint.
        let second = run(plan(parts(10_000, 3000, &[0, 1]), Some(cp)), 1 << 20).await;
        assert_eq!(second.done.object, Some(digest_of(DigestKind::Sha1, &data)));
        assert_eq!(second.held_digests, vec![(0, None), (1, None)], "not read");
        let sent: Vec<u32> = second.sent.iter().map(|s| s.0).collect();
        assert_eq!(sent, vec![2, 3]);
        assert_eq!(second.sent[0].1, data[6000..9000]);

        // The same bytes rewritten in place, size, mtime and inode kept (`cp -p`):
        // only the ctime tells, and the checkpoint is not trusted.
        let mtime = std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime");
        let mut changed = data.clone();
        changed[10] ^= 0xff;
        std::fs::write(&path, &changed).expect("rewrite");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open")
            .set_modified(mtime)
            .expect("keep mtime");
        let identity = Identity::of(&std::fs::metadata(&path).expect("meta"));
        let third = run(
            ReadPlan {
                identity,
                ..plan(parts(10_000, 3000, &[0, 1]), first.sent[1].2.clone())
            },
            1 << 20,
        )
        .await;
        assert_eq!(
            third.done.object,
            Some(digest_of(DigestKind::Sha1, &changed))
        );
        assert!(
            third.held_digests.iter().all(|(_, d)| d.is_some()),
            "read again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_inside_a_part_and_a_pending_part_below_it() {
        let (_d, path, data, identity) = setup(10_000);
        let mut h = Hasher::new(DigestKind::Sha256);
        h.update(&data[..4500]);
        let ctime = Some(ctime_ns(&std::fs::metadata(&path).expect("meta")));
        // Another plan (a new session with another part size) than the checkpoint's.
        let pass = run(
            ReadPlan {
                path: path.clone(),
                identity,
                parts: parts(10_000, 3000, &[2]),
                part_digest: None,
                object_digest: Some(DigestKind::Sha256),
                resume: Some(h.checkpoint(4500, ctime)),
            },
            1 << 20,
        )
        .await;
        assert_eq!(pass.done.object, Some(digest_of(DigestKind::Sha256, &data)));
        assert_eq!(pass.sent[0].2, None, "part 0 is below the checkpoint");
        assert_eq!(pass.sent[0].1, data[..3000]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_bigger_than_the_budget_stream_from_the_file() {
        let (_d, path, data, identity) = setup(9_000);
        let pass = run(
            ReadPlan {
                path,
                identity,
                parts: parts(9_000, 4096 + 100, &[]),
                part_digest: Some(DigestKind::Md5),
                object_digest: Some(DigestKind::Md5),
                resume: None,
            },
            4096,
        )
        .await;
        let all: Vec<u8> = pass.sent.iter().flat_map(|s| s.1.clone()).collect();
        assert_eq!(all, data);
        // The two full parts exceed the 4 KiB budget; the short last one fits.
        assert_eq!(pass.streamed, vec![0, 1]);
        assert_eq!(pass.done.object, Some(digest_of(DigestKind::Md5, &data)));
    }
}
