//! Why an attempt stopped short of `done`, and what that does to the file's row.
//!
//! Each reason has one resting state: temporary failures wait in `retrying` with
//! backoff; a refusal of the credentials waits without counting against the file;
//! a mismatch begins again a bounded number of times; only reasons that belong to
//! the file (it vanished, the service refuses this file) mark it `failed`; a file
//! that cannot be read waits for its permission to be fixed. Every path here writes the journal before anything else happens.

use tracing::{info, warn};

use super::Ctx;
use super::gate::Verdict;
use super::reader::ReadError;
use crate::backend::{BackendError, Session};
use crate::journal::{FileId, FileRow, FileState, JournalError, now_ms};

/// Why an attempt stopped short of `done`.
#[derive(Debug)]
pub(super) enum Stop {
    /// The local file changed: supersede the row.
    Changed(String),
    /// The local file disappeared before delivery.
    Vanished,
    /// The local file may not be sent (reached through a link, not a regular file).
    Refused(String),
    LocalIo(std::io::Error),
    Backend(BackendError),
    /// The server holds other bytes than the file's (verify or part digest).
    Mismatch(String),
    /// Delivered and verified, but the post-action has to wait (a writer holds the
    /// file open).
    Postponed(String),
    /// The service refused this file's request for lack of permission while it
    /// accepted others: retried with backoff, failed after [`FILE_REFUSALS`].
    RefusedForFile(BackendError),
    Journal(JournalError),
    /// Shutdown: hand the row back to the queue.
    Cancelled,
    /// The service is joining the parts; the row already rests in `joining` until
    /// its next poll. Not a failure: nothing more to record.
    Joining,
}

impl From<BackendError> for Stop {
    fn from(e: BackendError) -> Stop {
        Stop::Backend(e)
    }
}

impl From<JournalError> for Stop {
    fn from(e: JournalError) -> Stop {
        Stop::Journal(e)
    }
}

impl From<crate::verify::VerifyError> for Stop {
    fn from(e: crate::verify::VerifyError) -> Stop {
        use crate::verify::VerifyError as V;
        match e {
            V::Mismatch(why) => Stop::Mismatch(why),
            V::Changed(why) => Stop::Changed(why),
            V::Vanished => Stop::Vanished,
            V::LocalIo(e) => Stop::LocalIo(e),
            V::Backend(e) => Stop::Backend(e),
        }
    }
}

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Stop {
        match e {
            ReadError::Changed(why) => Stop::Changed(why),
            ReadError::Vanished => Stop::Vanished,
            ReadError::Io(e) => Stop::LocalIo(e),
        }
    }
}

/// Refusals of one file, in a row, while the service accepts others, before the
/// file is marked failed.
pub(super) const FILE_REFUSALS: u32 = 5;

/// What a stop tells the gate.
pub(super) fn verdict(stop: &Stop, answered: bool) -> Verdict {
    match stop {
        Stop::Backend(e @ BackendError::AuthRefused { .. }) => Verdict::Refused(e.to_string()),
        // Whatever the attempt had sent before: the service is away now.
        Stop::Backend(e @ BackendError::Unreachable { .. }) => Verdict::Unreachable(e.to_string()),
        Stop::Postponed(_) | Stop::Joining => Verdict::Accepted,
        _ if answered => Verdict::Accepted,
        // The service answered, or a connection to it was made.
        Stop::Backend(_) | Stop::Mismatch(_) | Stop::RefusedForFile(_) => Verdict::Reached,
        _ => Verdict::Unknown,
    }
}

/// Maps a stop to the row's next state.
pub(super) async fn settle(ctx: &Ctx, row: &FileRow, stop: Stop) {
    let id = row.id;
    let result: Result<(), JournalError> = async {
        match stop {
            Stop::Joining => Ok(()),
            Stop::Cancelled => {
                info!("shutdown: the file goes back to the queue");
                ignore_stale(ctx.journal.call(move |j| j.checkpoint(id)).await)
            }
            Stop::Changed(why) => {
                info!(%why, "the local file changed during upload; superseded");
                let msg = format!("superseded: the local file changed during upload ({why})");
                match ctx.journal.call(move |j| j.supersede(id, &msg)).await {
                    Ok(session) => abort_and_forget(ctx, id, session).await,
                    Err(e) if e.is_stale() => after_stale(ctx, id).await,
                    Err(e) => Err(e),
                }
            }
            Stop::Vanished => {
                warn!("the local file disappeared before it was delivered");
                fail(
                    ctx,
                    id,
                    "the local file disappeared before it was delivered".into(),
                )
                .await
            }
            Stop::Refused(why) => {
                warn!(%why, "the local file may not be sent");
                fail(ctx, id, why).await
            }
            // A producer that fixes the mode after writing, a wrong umask fixed by
            // a person: the file waits with the reason, tried again with backoff
            // (up to `retry_max`), never given up.
            Stop::LocalIo(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                warn!(error = %e, "cannot read the local file; it is tried again later");
                retry_later(ctx, id, None, format!("cannot read the local file: {e}")).await
            }
            Stop::LocalIo(e) => {
                retry_later(ctx, id, None, format!("reading the local file: {e}")).await
            }
            Stop::Postponed(why) => {
                info!(%why, "post-action postponed");
                retry_later(ctx, id, None, why).await
            }
            Stop::RefusedForFile(e) => {
                let failures = ctx.journal.call(move |j| j.file(id)).await?.map_or(0, |r| r.failures);
                if failures + 1 >= FILE_REFUSALS {
                    warn!(error = %e, "refused for this file while others are accepted; the file needs attention");
                    fail(ctx, id, format!("refused for this file while the service accepts others: {e}")).await
                } else {
                    retry_later(ctx, id, None, format!("refused for this file while the service accepts others: {e}")).await
                }
            }
            Stop::Backend(e) => match e {
                BackendError::Retry { .. } => {
                    let after = e.retry_after();
                    retry_later(ctx, id, after, e.to_string()).await
                }
                BackendError::SessionGone { .. } => {
                    info!(error = %e, "beginning a new session");
                    let old = ctx.journal.call(move |j| j.discard_session(id)).await?;
                    // Usually gone already; if not, its parts must not linger for days.
                    if let Some(s) = old {
                        let _ = ctx.backend.abort(&s).await;
                    }
                    retry_later(ctx, id, None, e.to_string()).await
                }
                BackendError::Unreachable { .. } => {
                    // Not the file's fault either: back in the queue in its place,
                    // session and parts kept, failures not counted; the gate probes
                    // the service with one file at a time until it answers.
                    let why = format!("waiting for the service: {e}");
                    ignore_stale(
                        ctx.journal
                            .call(move |j| j.wait_service(id, &why))
                            .await,
                    )
                }
                BackendError::Conflict { .. } => mismatch(ctx, id, e.to_string()).await,
                BackendError::AuthRefused { .. } => {
                    // Not the file's fault: it waits, session and parts kept, and is
                    // due again at once (the gate decides when anything is claimed).
                    let why = format!("waiting for credentials: {e}");
                    ignore_stale(
                        ctx.journal
                            .call(move |j| j.wait_credentials(id, now_ms(), &why))
                            .await,
                    )
                }
                BackendError::Fatal { .. } => {
                    warn!(error = %e, "refused; the file needs attention");
                    fail(ctx, id, e.to_string()).await
                }
            },
            Stop::Mismatch(why) => mismatch(ctx, id, why).await,
            Stop::Journal(e) if e.is_stale() => after_stale(ctx, id).await,
            Stop::Journal(e) => Err(e),
        }
    }
    .await;
    if let Err(e) = result {
        // The row stays where it is; the next start recovers it.
        tracing::error!(error = %e, "could not record the outcome in the journal");
    }
}

fn ignore_stale(r: Result<(), JournalError>) -> Result<(), JournalError> {
    match r {
        Err(e) if e.is_stale() => Ok(()),
        other => other,
    }
}

/// The row changed under the worker: superseded by the watcher, most likely.
async fn after_stale(ctx: &Ctx, id: FileId) -> Result<(), JournalError> {
    let Some(row) = ctx.journal.call(move |j| j.file(id)).await? else {
        return Ok(());
    };
    if !row.state.is_active() {
        info!(state = %row.state, "the row changed during upload; stopping");
        return abort_and_forget(ctx, id, row.session).await;
    }
    if matches!(
        row.state,
        FileState::Uploading | FileState::Completing | FileState::Verifying
    ) {
        // Still ours, yet a step was refused: a bug. Do not leave the row held by a
        // worker that has stopped; hand it back to the queue with backoff.
        tracing::error!(state = %row.state, "a journal step was refused for a row still in progress");
        return retry_later(ctx, id, None, "internal: a journal step was refused".into()).await;
    }
    Ok(())
}

pub(super) async fn abort_and_forget(
    ctx: &Ctx,
    id: FileId,
    session: Option<Session>,
) -> Result<(), JournalError> {
    if let Some(s) = session {
        match ctx.backend.abort(&s).await {
            Ok(()) => ctx.journal.call(move |j| j.forget_session(id)).await?,
            // Kept: the next start tries again (`abort_orphans`); the service also
            // expires abandoned sessions on its own.
            Err(e) => warn!(error = %e, "could not abort the remote session"),
        }
    }
    Ok(())
}

async fn fail(ctx: &Ctx, id: FileId, why: String) -> Result<(), JournalError> {
    let row = ctx.journal.call(move |j| j.file(id)).await?;
    ignore_stale(ctx.journal.call(move |j| j.fail(id, &why)).await)?;
    abort_and_forget(ctx, id, row.and_then(|r| r.session)).await
}

async fn retry_later(
    ctx: &Ctx,
    id: FileId,
    server_asked: Option<std::time::Duration>,
    why: String,
) -> Result<(), JournalError> {
    let failures = ctx
        .journal
        .call(move |j| j.file(id))
        .await?
        .map_or(0, |r| r.failures)
        .saturating_add(1);
    let delay = ctx.backoff_delay(failures, server_asked);
    info!(%why, failures, delay_ms = delay.as_millis() as u64, "will retry");
    let at = now_ms() + delay.as_millis() as i64;
    ignore_stale(
        ctx.journal
            .call(move |j| j.retry_later(id, at, failures, &why))
            .await,
    )
}

/// The service holds other content than the file: begin again, a bounded number of
/// times (a store that corrupts everything must not loop forever).
async fn mismatch(ctx: &Ctx, id: FileId, why: String) -> Result<(), JournalError> {
    ctx.metrics.verify_failed();
    let n = ctx
        .journal
        .call(move |j| j.count_verify_failure(id))
        .await?;
    let limit = ctx.settings.verify_attempts;
    if n >= limit {
        warn!(%why, attempts = n, "verification failed; giving up");
        return fail(ctx, id, format!("verification failed {n} times: {why}")).await;
    }
    warn!(%why, attempts = n, "verification failed; uploading again");
    // The session goes, and the saved hash with it: if the local bytes changed
    // without their identity changing, a fresh read is the only way to see it.
    let session = ctx.journal.call(move |j| j.discard_session(id)).await?;
    if let Some(s) = session
        && let Err(e) = ctx.backend.abort(&s).await
    {
        warn!(error = %e, "could not abort the remote session");
    }
    retry_later(ctx, id, None, format!("verification failed: {why}")).await
}
