//! The service's asynchronous join (Edgio): after it accepted the completion, the
//! file rests in `joining` and each poll asks once where the join stands; a newer
//! content of the same file waits until an older content's join has settled.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::Ctx;
use super::attempt::Attempt;
use super::outcome::Stop;
use crate::backend::{BackendError, FileDigests, FileSpec, Join, Op, RemoteObject, Session};
use crate::journal::{FileId, now_ms};

impl Attempt<'_> {
    /// An older content of this file whose completion the service accepted, then
    /// superseded while it joined: its join could still land after this upload and
    /// put the older bytes back. This upload begins only once every such join has
    /// settled (landed, failed or gone); until then the file retries.
    pub(super) async fn settle_older_joins(&self, file: &FileSpec) -> Result<(), Stop> {
        let ctx = self.ctx;
        let path = self.row.path.clone();
        let older = ctx.journal.call(move |j| j.unsettled_joins(&path)).await?;
        for (id, session) in older {
            if let Some(stage) = settle_join(ctx, id, &session, file).await? {
                return Err(Stop::Backend(BackendError::Retry {
                    op: Op::Begin,
                    after: Some(join_poll_delay(Duration::from_secs(1))),
                    cause: format!(
                        "an older content of this file is still being joined by the service ({stage})"
                    ),
                }));
            }
        }
        Ok(())
    }

    /// Asks where the join of a completion stands (never completing again while
    /// the service holds one): the object is there → verify it; still joining →
    /// rest until the next poll; failed → have the service run it again, once per
    /// session, then begin a new upload; never requested (the daemon died before
    /// the request went out) → `None`: the upload is to be completed.
    pub(super) async fn poll_join(
        &self,
        file: &FileSpec,
    ) -> Result<Option<(RemoteObject, FileDigests)>, Stop> {
        let (ctx, row) = (self.ctx, self.row);
        let id = row.id;
        let (Some(session), Some(digests)) = (&row.session, &row.digests) else {
            // The columns are written together; a row without them is damaged.
            return Err(Stop::Backend(BackendError::SessionGone {
                op: Op::Complete,
                detail: "the journal holds a join without its session".into(),
            }));
        };
        let started = row.join_started.unwrap_or_else(now_ms);
        let waited = Duration::from_millis(now_ms().saturating_sub(started).max(0) as u64);
        let next = move || now_ms() + join_poll_delay(waited).as_millis() as i64;
        match ctx.backend.join(session, file).await? {
            Join::Done(remote) => {
                info!(
                    join_secs = waited.as_secs_f64(),
                    "the service finished joining"
                );
                let (r, d) = (remote.clone(), digests.clone());
                ctx.journal
                    .call(move |j| j.to_verifying(id, &r, &d, None))
                    .await?;
                Ok(Some((remote, digests.clone())))
            }
            Join::NotRequested => {
                info!("the service never received the completion; it is asked again");
                ctx.journal
                    .call(move |j| j.completion_unrequested(id))
                    .await?;
                Ok(None)
            }
            Join::Pending { stage } if waited > JOIN_PATIENCE => {
                warn!(%stage, waited_s = waited.as_secs(), "the service has not finished joining; the file is uploaded again");
                Err(Stop::Backend(BackendError::SessionGone {
                    op: Op::Complete,
                    detail: format!(
                        "the service's join stayed {stage} for {} s",
                        waited.as_secs()
                    ),
                }))
            }
            Join::Pending { stage } => {
                debug!(%stage, waited_ms = waited.as_millis() as u64, "still joining");
                let at = next();
                ctx.journal
                    .call(move |j| j.to_joining(id, at, None))
                    .await?;
                Err(Stop::Joining)
            }
            Join::Failed(why) if row.join_restarts == 0 => {
                warn!(%why, "the service failed to join the parts; asking it to restart the join");
                ctx.backend.restart_join(session).await?;
                ctx.journal.call(move |j| j.join_restarted(id)).await?;
                let at = now_ms() + join_poll_delay(Duration::ZERO).as_millis() as i64;
                ctx.journal
                    .call(move |j| j.to_joining(id, at, None))
                    .await?;
                Err(Stop::Joining)
            }
            Join::Failed(why) => Err(Stop::Backend(BackendError::SessionGone {
                op: Op::Complete,
                detail: format!(
                    "the service failed to join the parts again after a restart: {why}"
                ),
            })),
        }
    }
}

/// Settles the join of row `id` (superseded or failed) if it can: `None` once it
/// has (landed, failed or gone, or never requested and aborted now), the stage
/// while the service still joins it.
pub(super) async fn settle_join(
    ctx: &Ctx,
    id: FileId,
    session: &Session,
    file: &FileSpec,
) -> Result<Option<String>, Stop> {
    match ctx.backend.join(session, file).await {
        Ok(Join::Pending { stage }) => return Ok(Some(stage)),
        Ok(Join::Done(_) | Join::Failed(_)) | Err(BackendError::SessionGone { .. }) => {}
        // Never completed: an open upload that nothing will finish. A completion
        // sent by the daemon that died may still land just before the abort, so
        // the service is asked once more.
        Ok(Join::NotRequested) => {
            ctx.backend.abort(session).await?;
            match ctx.backend.join(session, file).await {
                Ok(Join::Pending { stage }) => return Ok(Some(stage)),
                Ok(Join::NotRequested) => {
                    return Err(Stop::Backend(BackendError::Retry {
                        op: Op::Abort,
                        after: None,
                        cause: "the service kept an upload open after aborting it".into(),
                    }));
                }
                Ok(_) | Err(BackendError::SessionGone { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    ctx.journal.call(move |j| j.join_settled(id)).await?;
    Ok(None)
}

/// At start: settles the joins that superseded or failed rows left (their path
/// may never be written again, and an upload never completed would stay open on
/// the service for ever). Best effort: what is still joining, or cannot be asked
/// now, is settled by the path's next upload or the next start.
pub(super) async fn settle_left_joins(ctx: &Ctx) {
    let left = match ctx.journal.call(|j| j.all_unsettled_joins()).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot list the joins left unsettled");
            return;
        }
    };
    for (id, session, file) in left {
        match settle_join(ctx, id, &session, &file).await {
            Ok(None) => debug!(file = id, "a join left unsettled is settled"),
            Ok(Some(stage)) => debug!(file = id, %stage, "a join left unsettled is still running"),
            Err(e) => {
                debug!(file = id, error = ?e, "cannot settle a join left unsettled now");
                return;
            }
        }
    }
}

/// How long a join may take before the file is uploaded again: a service whose
/// join never ends must not hold a file for ever. The service joins at disk speed;
/// an hour is far beyond any file an edge device sends.
const JOIN_PATIENCE: Duration = Duration::from_secs(3600);

/// How long a file rests before its join is polled again, after waiting `waited`
/// since the completion was accepted: a quarter of that, within [0.2 s, 30 s]. A
/// quick join is seen soon after it ends; a join of hours is asked about twice a
/// minute, not hundreds of times.
pub(super) fn join_poll_delay(waited: Duration) -> Duration {
    (waited / 4).clamp(Duration::from_millis(200), MAX_POLL_DELAY)
}

/// The longest rest between two polls of a join.
pub(super) const MAX_POLL_DELAY: Duration = Duration::from_secs(30);
