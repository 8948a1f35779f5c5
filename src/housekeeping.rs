//! The daemon's housekeeping: prunes `done` and `superseded` rows older than
//! `journal.keep_done`, so that a device shipping 100,000 files a day keeps a
//! journal of about `keep_done` worth of rows instead of every row it ever wrote.
//!
//! A row whose file is still in the outbox, unchanged, stays whatever its age (see
//! `journal::housekeeping`). Each pass reads candidates in batches, looks at the
//! disk off the journal's thread, and deletes in one short transaction per batch,
//! so the engine's claims are never held up for long.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::journal::{JournalHandle, now_ms};

/// The first pass waits for the start-up scan and resume to settle.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(5);
/// Then one pass an hour: a day's rows become due over a day, so an hour's worth
/// is a few thousand rows at most.
const PASS_EVERY: Duration = Duration::from_secs(3600);
/// Rows looked at per transaction.
const BATCH: usize = 500;

/// Runs passes until `cancel`.
pub async fn run(journal: JournalHandle, keep_done: Duration, cancel: CancellationToken) {
    let mut wait = FIRST_PASS_AFTER;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = PASS_EVERY;
        match pass(&journal, keep_done, &cancel).await {
            Ok(Pass { pruned: 0, kept }) => {
                debug!(kept, "housekeeping: nothing to prune")
            }
            Ok(Pass { pruned, kept }) => info!(
                pruned,
                kept,
                keep_done_s = keep_done.as_secs(),
                "housekeeping: pruned finished files' rows (rows of files still in the outbox are kept)"
            ),
            // A full disk or a locked journal: the next pass tries again.
            Err(e) => warn!(error = %e, "housekeeping: cannot prune the journal now"),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub pruned: usize,
    /// Old enough, but their files are still in the outbox.
    pub kept: usize,
}

/// One pass over every finished row older than `keep_done`.
pub async fn pass(
    journal: &JournalHandle,
    keep_done: Duration,
    cancel: &CancellationToken,
) -> Result<Pass, crate::journal::JournalError> {
    let before = now_ms().saturating_sub(keep_done.as_millis().min(i64::MAX as u128) as i64);
    let mut after = 0;
    let mut done = Pass::default();
    while !cancel.is_cancelled() {
        let batch = journal
            .call(move |j| j.prune_candidates(before, after, BATCH))
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        let (looked, full) = (batch.len(), batch.len() == BATCH);
        // stat() may block on a slow disk: not on the runtime's threads.
        let gone = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .filter(|c| !c.still_on_disk())
                .map(|c| c.id)
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        done.kept += looked - gone.len();
        done.pruned += journal.call(move |j| j.prune(&gone, before)).await?;
        if !full {
            break;
        }
    }
    Ok(done)
}
