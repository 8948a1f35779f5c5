//! The read pass: each byte of a file read once, in order, on a blocking thread.
//!
//! For every part the reader computes the digests the backend wants (the part's own
//! and the running whole-file digest) and hands the bytes to the async side, which
//! sends them. Parts the server already holds are read only if a digest needs their
//! bytes, through a small scratch buffer, and never leave the machine again.
//!
//! Memory: a part's buffer is allocated only after a slot in the file's
//! `parts_in_flight` semaphore is taken, and the slot travels with the bytes until
//! they are sent, so at most `parts_in_flight × part_size` bytes are buffered.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::backend::FileDigests;
use crate::digest::{Digest, DigestKind, Hasher};
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
}

/// One step of the pass, in file order.
#[derive(Debug)]
pub enum ReadItem {
    /// A part to send; the permit is its in-flight slot.
    Send {
        index: u32,
        data: Bytes,
        digest: Option<Digest>,
        permit: OwnedSemaphorePermit,
    },
    /// A part the journal says is uploaded, with its digest when one was computed.
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
/// closing `slots` stops the reader at its next step.
pub fn spawn(plan: ReadPlan, slots: Arc<Semaphore>) -> mpsc::Receiver<Result<ReadItem, ReadError>> {
    let (tx, rx) = mpsc::channel(1);
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_pass(&plan, &slots, &tx, &rt) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

fn check(file: &File, expected: &Identity) -> Result<(), ReadError> {
    let now = Identity::of(&file.metadata().map_err(ReadError::from_io)?);
    match now.change_from(expected) {
        Some(why) => Err(ReadError::Changed(why)),
        None => Ok(()),
    }
}

fn read_pass(
    plan: &ReadPlan,
    slots: &Arc<Semaphore>,
    tx: &mpsc::Sender<Result<ReadItem, ReadError>>,
    rt: &tokio::runtime::Handle,
) -> Result<(), ReadError> {
    let file = File::open(&plan.path).map_err(ReadError::from_io)?;
    check(&file, &plan.identity)?;
    let mut whole = plan.object_digest.map(Hasher::new);
    let mut scratch = Vec::new();
    for part in &plan.parts {
        let mut part_hash = plan.part_digest.map(Hasher::new);
        let item = if part.state == PartState::Uploaded {
            if whole.is_some() || part_hash.is_some() {
                if scratch.is_empty() {
                    scratch = vec![0u8; SCRATCH];
                }
                let mut pos = part.offset;
                let end = part.offset + part.length;
                while pos < end {
                    let n = ((end - pos) as usize).min(SCRATCH);
                    file.read_exact_at(&mut scratch[..n], pos)
                        .map_err(ReadError::from_io)?;
                    feed(&mut whole, &mut part_hash, &scratch[..n]);
                    pos += n as u64;
                }
            }
            ReadItem::Held {
                index: part.index,
                digest: part_hash.map(Hasher::finish),
            }
        } else {
            // Wait for an in-flight slot before allocating the part's buffer.
            let Ok(permit) = rt.block_on(slots.clone().acquire_owned()) else {
                return Ok(()); // closed: the upload stopped
            };
            let mut buf = vec![0u8; part.length as usize];
            file.read_exact_at(&mut buf, part.offset)
                .map_err(ReadError::from_io)?;
            feed(&mut whole, &mut part_hash, &buf);
            ReadItem::Send {
                index: part.index,
                data: Bytes::from(buf),
                digest: part_hash.map(Hasher::finish),
                permit,
            }
        };
        if tx.blocking_send(Ok(item)).is_err() {
            return Ok(()); // the receiver stopped listening
        }
    }
    // Appends and rewrites during the pass show up here (the bytes read may mix old
    // and new content, so they must not be completed).
    check(&file, &plan.identity)?;
    let digests = FileDigests {
        object: whole.map(Hasher::finish),
    };
    let _ = tx.blocking_send(Ok(ReadItem::Done(digests)));
    Ok(())
}

fn feed(whole: &mut Option<Hasher>, part: &mut Option<Hasher>, data: &[u8]) {
    if let Some(h) = whole {
        h.update(data);
    }
    if let Some(h) = part {
        h.update(data);
    }
}
