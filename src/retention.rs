//! Local retention: delivered files that `after = "keep"` left in the outbox are
//! removed after `upload.keep_for`, and, oldest first, whenever the outbox holds
//! more than `upload.outbox_max`. Undelivered data is never removed: when the outbox
//! is over the limit with nothing delivered left to remove, `status` (notice
//! `outbox`), the log and the metrics (`dropship_outbox_over_limit`) say so.
//!
//! A kept file is removed only as the post-action would remove it: reached without
//! crossing a link, unchanged since it was delivered (a rewritten file is new
//! content, the watcher's to send), and held open for writing by nobody.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::After;
use crate::engine::post::{self, Post};
use crate::identity::Identity;
use crate::journal::{JournalError, JournalHandle, KeptFile, now_ms};

/// The notice `status` shows while the outbox is over `outbox_max`.
pub const NOTICE: &str = "outbox";

/// The first pass waits for the start-up scan and resume to settle.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(2);
/// A disk guard must act within a minute or so of the outbox growing.
const PASS_EVERY: Duration = Duration::from_secs(30);
/// Rows read per query.
const BATCH: usize = 200;

/// What retention is asked to do.
#[derive(Debug, Clone)]
pub struct Retention {
    /// The watched folder: files are removed only if reached from it.
    pub root: PathBuf,
    pub keep_for: Option<Duration>,
    pub outbox_max: Option<u64>,
}

impl Retention {
    pub fn is_off(&self) -> bool {
        self.keep_for.is_none() && self.outbox_max.is_none()
    }
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub removed: usize,
    pub bytes_removed: u64,
    /// Bytes above `outbox_max` that nothing delivered was left to remove.
    pub over_by: Option<u64>,
}

/// Runs passes every [`PASS_EVERY`] (or `every`, for tests) until `cancel`.
pub async fn run(
    journal: JournalHandle,
    r: Retention,
    every: Option<Duration>,
    cancel: CancellationToken,
) {
    if r.is_off() {
        return;
    }
    let mut wait = FIRST_PASS_AFTER;
    let mut was_over = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every.unwrap_or(PASS_EVERY);
        match pass(&journal, &r, &cancel).await {
            Ok(p) => {
                if p.removed > 0 {
                    info!(
                        removed = p.removed,
                        bytes = p.bytes_removed,
                        "retention: removed delivered files kept in the outbox"
                    );
                }
                match (p.over_by, was_over) {
                    (Some(over), false) => warn!(
                        over_by = over,
                        outbox_max = r.outbox_max.unwrap_or(0),
                        "the outbox is over outbox_max with nothing delivered left to remove; undelivered files are never removed"
                    ),
                    (None, true) => info!("the outbox is back under outbox_max"),
                    _ => {}
                }
                was_over = p.over_by.is_some();
            }
            Err(e) => warn!(error = %e, "retention: cannot read the journal now"),
        }
    }
}

/// One pass: `keep_for`, then `outbox_max`.
pub async fn pass(
    journal: &JournalHandle,
    r: &Retention,
    cancel: &CancellationToken,
) -> Result<Pass, JournalError> {
    let mut done = Pass::default();
    if let Some(keep_for) = r.keep_for {
        let before = now_ms().saturating_sub(keep_for.as_millis().min(i64::MAX as u128) as i64);
        remove_while(journal, r, before, &mut done, cancel, |_| true).await?;
    }
    if let Some(max) = r.outbox_max {
        let mut total = journal.call(|j| j.outbox_bytes()).await?;
        if total > max {
            let mut need = total - max;
            remove_while(journal, r, i64::MAX, &mut done, cancel, |freed| {
                need = need.saturating_sub(freed);
                need > 0
            })
            .await?;
            total = journal.call(|j| j.outbox_bytes()).await?;
        }
        done.over_by = (total > max).then(|| total - max);
        let over = done.over_by;
        journal
            .call(move |j| match over {
                Some(by) => j.set_notice(
                    NOTICE,
                    "over_limit",
                    &format!(
                        "the outbox holds {total} bytes, {by} above upload.outbox_max ({max}), and nothing delivered is left to remove; undelivered files are never removed"
                    ),
                ),
                None => j.clear_notice(NOTICE).map(|_| ()),
            })
            .await?;
    }
    Ok(done)
}

/// Removes kept files delivered before `before`, oldest first, while `more` (told
/// the bytes each removal freed) says so.
async fn remove_while(
    journal: &JournalHandle,
    r: &Retention,
    before: i64,
    done: &mut Pass,
    cancel: &CancellationToken,
    mut more: impl FnMut(u64) -> bool,
) -> Result<(), JournalError> {
    // Rows left in place this pass (held open, a failed removal) are skipped by
    // remembering them; each batch starts from the oldest again.
    let mut skipped: Vec<i64> = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let limit = BATCH + skipped.len();
        // Each row is `done`, and removing the file cannot be undone: the rows must
        // outlive a power cut first (see `Journal::sync`).
        let batch = journal
            .call(move |j| {
                let batch = j.kept_files(before, limit)?;
                if !batch.is_empty() {
                    j.sync()?;
                }
                Ok(batch)
            })
            .await?;
        let batch: Vec<KeptFile> = batch
            .into_iter()
            .filter(|k| !skipped.contains(&k.id))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        for k in batch {
            let id = k.id;
            match remove(r, k).await {
                Removed::Yes(bytes) => {
                    journal.call(move |j| j.unkeep(id)).await?;
                    done.removed += 1;
                    done.bytes_removed += bytes;
                    if !more(bytes) {
                        return Ok(());
                    }
                }
                Removed::NotOurs => journal.call(move |j| j.unkeep(id)).await?,
                Removed::NotNow => skipped.push(id),
            }
        }
    }
}

enum Removed {
    Yes(u64),
    /// Gone, changed or behind a link: no longer the delivered file.
    NotOurs,
    /// Held open for writing, or the removal failed: tried again next pass.
    NotNow,
}

async fn remove(r: &Retention, k: KeptFile) -> Removed {
    let root = r.root.clone();
    let identity = Identity {
        size: k.size,
        mtime_ns: k.mtime_ns,
        inode: k.inode,
    };
    let size = k.size;
    let path = k.path.clone();
    let res = tokio::task::spawn_blocking(move || {
        post::run(&After::Delete, &root, &k.path, &k.key, &identity)
    })
    .await;
    match res {
        Ok(Ok(Post::Done(None))) => {
            debug!(path = %path.display(), "retention: removed a delivered file");
            Removed::Yes(size)
        }
        Ok(Ok(Post::Done(Some(why)))) => {
            debug!(path = %path.display(), %why, "retention: not the delivered file any more");
            Removed::NotOurs
        }
        Ok(Ok(Post::Postponed(why))) => {
            debug!(path = %path.display(), %why, "retention: not now");
            Removed::NotNow
        }
        Ok(Err(e)) => {
            warn!(path = %path.display(), error = %e, "retention: cannot remove a delivered file");
            Removed::NotNow
        }
        Err(e) => {
            warn!(error = %e, "retention: the removal did not run");
            Removed::NotNow
        }
    }
}
