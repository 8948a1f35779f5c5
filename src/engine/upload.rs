//! One file's way from `uploading` to `done`, and what each kind of failure does to
//! its journal row.
//!
//! The work is data-driven, so that any attempt after a crash or a failure continues
//! where the journal says the file stands:
//!
//! - a remote object is recorded → verify it;
//! - a small file (below the backend's single-request size) → one request;
//! - no session → begin one and record it with the part plan before any byte leaves;
//! - a session → ask the server which parts it holds (where it can say), then the
//!   read pass sends the missing parts; complete; verify; post-action; `done`.
//!
//! Cancelling an attempt between steps is safe because every step is committed to
//! the journal before the next one starts.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Ctx;
use super::plan;
use super::reader::{self, ReadError, ReadItem, ReadPlan};
use crate::backend::{
    BackendError, FileDigests, FileSpec, Meter, PartBody, PartSpec, Receipt, RemoteObject, Session,
};
use crate::digest::Digest;
use crate::identity::Identity;
use crate::journal::{FileId, FileRow, FileState, JournalError, PartState, now_ms};

/// Why an attempt stopped short of `done`.
#[derive(Debug)]
enum Stop {
    /// The local file changed: supersede the row.
    Changed(String),
    /// The local file disappeared before delivery.
    Vanished,
    LocalIo(std::io::Error),
    Backend(BackendError),
    /// The server holds other bytes than the file's (verify or part digest).
    Mismatch(String),
    Journal(JournalError),
    /// Shutdown: hand the row back to the queue.
    Cancelled,
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

impl From<ReadError> for Stop {
    fn from(e: ReadError) -> Stop {
        match e {
            ReadError::Changed(why) => Stop::Changed(why),
            ReadError::Vanished => Stop::Vanished,
            ReadError::Io(e) => Stop::LocalIo(e),
        }
    }
}

/// Runs one claimed file to its next resting state.
pub(super) async fn run_file(ctx: Arc<Ctx>, row: FileRow, cancel: CancellationToken) {
    let span = info_span!("file", id = row.id, key = row.key.as_deref().unwrap_or("?"));
    async move {
        debug!(attempt = row.attempts, size = row.size, "claimed");
        let started = std::time::Instant::now();
        let result = attempt(&ctx, &row, &cancel).await;
        if result.is_ok() {
            info!(
                size = row.size,
                secs = started.elapsed().as_secs_f64(),
                "delivered and verified"
            );
        }
        if let Err(stop) = result {
            settle(&ctx, &row, stop).await;
        }
    }
    .instrument(span)
    .await
}

/// The read pass over `parts` of the row's file, with the backend's digests.
fn read_plan(ctx: &Ctx, row: &FileRow, parts: Vec<crate::journal::PartRow>) -> ReadPlan {
    ReadPlan {
        path: row.path.clone(),
        identity: identity(row),
        parts,
        part_digest: ctx.caps.part_digest,
        object_digest: ctx.caps.object_digest,
    }
}

fn identity(row: &FileRow) -> Identity {
    Identity {
        size: row.size,
        mtime_ns: row.mtime_ns,
        inode: row.inode,
    }
}

async fn attempt(ctx: &Ctx, row: &FileRow, cancel: &CancellationToken) -> Result<(), Stop> {
    let Some(key) = row.key.clone() else {
        return Err(Stop::Backend(BackendError::Fatal {
            op: crate::backend::Op::Begin,
            status: None,
            detail: "the file has no remote name".into(),
        }));
    };
    let file = FileSpec {
        key,
        size: row.size,
        mtime: row.mtime_ns.div_euclid(1_000_000_000),
    };
    let id = row.id;
    let (remote, digests) = match (&row.remote, &row.digests) {
        (Some(r), Some(d)) => {
            ctx.journal.call(move |j| j.resume_verifying(id)).await?;
            (r.clone(), d.clone())
        }
        _ => {
            check_local(row).await?;
            if row.session.is_none() && row.size < ctx.caps.single_request_below {
                single(ctx, row, &file, cancel).await?
            } else {
                in_parts(ctx, row, &file, cancel).await?
            }
        }
    };
    verify_and_finish(ctx, row, &remote, &digests).await
}

/// Fails fast if the file changed while it waited in the queue.
async fn check_local(row: &FileRow) -> Result<(), Stop> {
    match tokio::fs::metadata(&row.path).await {
        Ok(meta) => match Identity::of(&meta).change_from(&identity(row)) {
            Some(why) => Err(Stop::Changed(why)),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Stop::Vanished),
        Err(e) => Err(Stop::LocalIo(e)),
    }
}

/// A small file in one request. Its digest is needed before the request goes out
/// (some services take it in a header), so the bytes are read first, then sent.
async fn single(
    ctx: &Ctx,
    row: &FileRow,
    file: &FileSpec,
    cancel: &CancellationToken,
) -> Result<(RemoteObject, FileDigests), Stop> {
    let id = row.id;
    let mut parts = ctx.journal.call(move |j| j.parts(id)).await?;
    if parts.len() != 1 || parts[0].state != crate::journal::PartState::Pending {
        // No plan yet, or one left by an interrupted attempt: plan it afresh.
        let size = row.size;
        ctx.journal
            .call(move |j| j.start_session(id, None, size, &[(0, size)]))
            .await?;
        parts = ctx.journal.call(move |j| j.parts(id)).await?;
    }
    let mut rx = reader::spawn(read_plan(ctx, row, parts), Arc::new(Semaphore::new(1)));
    let mut body = None;
    let mut digests = None;
    while let Some(item) = rx.recv().await {
        match item? {
            ReadItem::Send { data, .. } => body = Some(data),
            ReadItem::Held { .. } => {}
            ReadItem::Done(d) => digests = Some(d),
        }
    }
    let (Some(data), Some(digests)) = (body, digests) else {
        return Err(Stop::LocalIo(std::io::Error::other(
            "the read pass ended early",
        )));
    };
    if cancel.is_cancelled() {
        return Err(Stop::Cancelled);
    }
    let len = data.len() as u64;
    let receipt = Receipt {
        index: 0,
        offset: 0,
        length: len,
        digest: None,
        extra: serde_json::Value::Null,
    };
    // A retry after a request whose answer was lost: the service may hold the file
    // already, and sending it again would make a duplicate (a new version).
    if row.attempts > 1
        && let Some(remote) = already_delivered(ctx, file, &digests).await?
    {
        let (r, d) = (remote.clone(), digests.clone());
        ctx.journal
            .call(move |j| j.to_verifying(id, &r, &d, Some(&receipt)))
            .await?;
        return Ok((remote, digests));
    }
    ctx.journal.call(move |j| j.part_start(id, 0)).await?;
    let meter = Meter::new(ctx.limiter.clone());
    let sent = ctx
        .backend
        .put_single(file, PartBody::new(data, meter.clone()), &digests)
        .await;
    match sent {
        Ok(remote) => {
            let (r, d) = (remote.clone(), digests.clone());
            ctx.journal
                .call(move |j| j.to_verifying(id, &r, &d, Some(&receipt)))
                .await?;
            Ok((remote, digests))
        }
        Err(e) => {
            let unsent = len.saturating_sub(meter.sent());
            ctx.journal
                .call(move |j| j.part_failed(id, 0, unsent))
                .await?;
            Err(e.into())
        }
    }
}

/// The stored object at the file's key, if it already is the file's content (the
/// answer to an earlier completion or single request was lost).
async fn already_delivered(
    ctx: &Ctx,
    file: &FileSpec,
    digests: &FileDigests,
) -> Result<Option<RemoteObject>, Stop> {
    match ctx.backend.stat(&file.key, None).await? {
        Some(st) if stat_matches(ctx, file.size, digests, &st).is_ok() => {
            info!("the service already holds this content");
            Ok(Some(RemoteObject::at(&file.key)))
        }
        _ => Ok(None),
    }
}

/// A file in parts through an upload session.
async fn in_parts(
    ctx: &Ctx,
    row: &FileRow,
    file: &FileSpec,
    cancel: &CancellationToken,
) -> Result<(RemoteObject, FileDigests), Stop> {
    let id = row.id;
    let session = match &row.session {
        Some(s) => {
            match (reconcile(ctx, id, s).await, &row.digests) {
                // Every part was sent and completion was asked for before: a lost
                // answer to a completion that happened closes the session too.
                (Err(Stop::Backend(gone @ BackendError::SessionGone { .. })), Some(d)) => {
                    let Some(remote) = already_delivered(ctx, file, d).await? else {
                        return Err(gone.into());
                    };
                    let (r, digests) = (remote.clone(), d.clone());
                    ctx.journal
                        .call(move |j| j.to_verifying(id, &r, &digests, None))
                        .await?;
                    return Ok((remote, d.clone()));
                }
                (r, _) => r?,
            }
            s.clone()
        }
        None => begin(ctx, id, file).await?,
    };
    let parts = ctx.journal.call(move |j| j.parts(id)).await?;
    let all_held = parts.iter().all(|p| p.state == PartState::Uploaded);
    let digests = match (&row.digests, all_held) {
        // Everything was sent and hashed before a restart: no need to read again.
        (Some(d), true) => d.clone(),
        _ => send_parts(ctx, row, &session, parts, cancel).await?,
    };
    let d = digests.clone();
    ctx.journal.call(move |j| j.to_completing(id, &d)).await?;
    let receipts: Vec<Receipt> = ctx
        .journal
        .call(move |j| j.parts(id))
        .await?
        .into_iter()
        .map(|p| {
            p.receipt
                .ok_or_else(|| Stop::Mismatch(format!("part {} has no receipt", p.index)))
        })
        .collect::<Result<_, _>>()?;
    let remote = match ctx
        .backend
        .complete(&session, file, &receipts, &digests)
        .await
    {
        Ok(r) => r,
        // A completion whose answer was lost closes the session: if the object is
        // there with the right content, the completion did happen.
        Err(gone @ BackendError::SessionGone { .. }) => {
            match already_delivered(ctx, file, &digests).await? {
                Some(remote) => remote,
                None => return Err(gone.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let (r, d) = (remote.clone(), digests.clone());
    ctx.journal
        .call(move |j| j.to_verifying(id, &r, &d, None))
        .await?;
    Ok((remote, digests))
}

/// Opens a session and records it, with the part plan, before any part is sent.
async fn begin(ctx: &Ctx, id: FileId, file: &FileSpec) -> Result<Session, Stop> {
    let session = ctx.backend.begin(file).await?;
    let part_size =
        match plan::part_size(&ctx.caps, ctx.settings.part_size, file.size, Some(&session)) {
            Ok(ps) => ps,
            Err(why) => {
                let _ = ctx.backend.abort(&session).await;
                return Err(Stop::Backend(BackendError::Fatal {
                    op: crate::backend::Op::Begin,
                    status: None,
                    detail: why,
                }));
            }
        };
    let cut = plan::cut(file.size, part_size);
    let s = session.clone();
    let recorded = ctx
        .journal
        .call(move |j| j.start_session(id, Some(&s), part_size, &cut))
        .await;
    if let Err(e) = recorded {
        // Not recorded, so nobody would ever resume or abort it.
        let _ = ctx.backend.abort(&session).await;
        return Err(e.into());
    }
    info!(session = %session.id, part_size, "session begun");
    Ok(session)
}

/// The server's list of held parts wins over the journal's.
async fn reconcile(ctx: &Ctx, id: FileId, session: &Session) -> Result<(), Stop> {
    if !ctx.caps.lists_held_parts {
        return Ok(());
    }
    let Some(held) = ctx.backend.held_parts(session).await? else {
        return Ok(());
    };
    let parts = ctx.journal.call(move |j| j.parts(id)).await?;
    let mut gained = 0;
    let mut lost = 0;
    for p in parts {
        let h = held
            .iter()
            .find(|r| r.index == p.index && r.offset == p.offset && r.length == p.length)
            .cloned();
        match (p.state, h) {
            (PartState::Pending, Some(r)) => {
                ctx.journal
                    .call(move |j| j.part_held(id, p.index, &r))
                    .await?;
                gained += 1;
            }
            (PartState::Uploaded, None) => {
                ctx.journal.call(move |j| j.part_lost(id, p.index)).await?;
                lost += 1;
            }
            _ => {}
        }
    }
    if gained + lost > 0 {
        info!(
            gained,
            lost, "the server's list of parts corrected the journal"
        );
    }
    Ok(())
}

/// What an in-flight part reports when it ends.
struct PartDone {
    index: u32,
    length: u64,
    sent: u64,
    expected: Option<Digest>,
    result: Result<Receipt, BackendError>,
}

/// The read pass, sending the parts the server lacks, up to `parts_in_flight` at
/// once. Stops dispatching at the first failure and lets the parts in flight finish,
/// so their receipts are not wasted.
async fn send_parts(
    ctx: &Ctx,
    row: &FileRow,
    session: &Session,
    parts: Vec<crate::journal::PartRow>,
    cancel: &CancellationToken,
) -> Result<FileDigests, Stop> {
    let id = row.id;
    let in_flight = if ctx.caps.parallel_parts {
        // The memory budget is what the configuration allows, parts_in_flight ×
        // part_size: a server that dictates bigger parts gets fewer in flight.
        let budget = ctx.settings.parts_in_flight as u64 * ctx.settings.part_size;
        let part = row.part_size.unwrap_or(ctx.settings.part_size).max(1);
        (budget / part).clamp(1, ctx.settings.parts_in_flight as u64) as usize
    } else {
        1
    };
    let known: HashMap<u32, (u64, u64, Option<Digest>)> = parts
        .iter()
        .map(|p| {
            let digest = p.receipt.as_ref().and_then(|r| r.digest.clone());
            (p.index, (p.offset, p.length, digest))
        })
        .collect();
    let last_index = parts.len().saturating_sub(1) as u32;
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut rx = reader::spawn(read_plan(ctx, row, parts), slots.clone());
    let mut tasks: JoinSet<PartDone> = JoinSet::new();
    let mut stop: Option<Stop> = None;
    let mut digests = None;
    let mut reading = true;
    loop {
        if tasks.is_empty() && (stop.is_some() || !reading) {
            break;
        }
        tokio::select! {
            biased;
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let done = match joined {
                    Ok(d) => d,
                    Err(e) => {
                        stop.get_or_insert(Stop::LocalIo(std::io::Error::other(format!("part task failed: {e}"))));
                        continue;
                    }
                };
                if let Err(s) = record_part(ctx, id, done).await {
                    stop.get_or_insert(s);
                    slots.close();
                }
            }
            item = rx.recv(), if reading && stop.is_none() => {
                let Some(item) = item else {
                    reading = false;
                    continue;
                };
                match item {
                    Ok(ReadItem::Send { index, data, digest, permit }) => {
                        if let Err(e) = ctx.journal.call(move |j| j.part_start(id, index)).await {
                            stop = Some(e.into());
                            slots.close();
                            continue;
                        }
                        let (offset, length, _) = known.get(&index).cloned().unwrap_or_default();
                        let spec = PartSpec {
                            index,
                            offset,
                            length,
                            total: row.size,
                            digest: digest.clone(),
                            last: index == last_index,
                        };
                        let backend = ctx.backend.clone();
                        let session = session.clone();
                        let meter = Meter::new(ctx.limiter.clone());
                        tasks.spawn(async move {
                            let result = backend
                                .put_part(&session, &spec, PartBody::new(data, meter.clone()))
                                .await;
                            drop(permit);
                            PartDone { index, length, sent: meter.sent(), expected: digest, result }
                        });
                    }
                    Ok(ReadItem::Held { index, digest }) => {
                        let stored = known.get(&index).and_then(|k| k.2.as_ref());
                        if let (Some(ours), Some(theirs)) = (&digest, stored)
                            && !ours.matches(theirs)
                        {
                            stop = Some(Stop::Mismatch(format!(
                                "the server holds other bytes for part {index} ({theirs}) than the file has ({ours})"
                            )));
                            slots.close();
                        }
                    }
                    Ok(ReadItem::Done(d)) => digests = Some(d),
                    Err(e) => {
                        stop = Some(e.into());
                        slots.close();
                    }
                }
            }
            _ = cancel.cancelled(), if stop.is_none() => {
                stop = Some(Stop::Cancelled);
                slots.close();
            }
        }
    }
    if let Some(s) = stop {
        return Err(s);
    }
    digests.ok_or_else(|| Stop::LocalIo(std::io::Error::other("the read pass ended early")))
}

/// Commits one finished part: its receipt, or the bytes that did not leave.
async fn record_part(ctx: &Ctx, id: FileId, done: PartDone) -> Result<(), Stop> {
    let index = done.index;
    match done.result {
        Ok(receipt) => {
            if let (Some(ours), Some(theirs)) = (&done.expected, &receipt.digest)
                && !ours.matches(theirs)
            {
                ctx.journal
                    .call(move |j| j.part_failed(id, index, 0))
                    .await?;
                return Err(Stop::Mismatch(format!(
                    "the server stored other bytes for part {index} ({theirs}) than were sent ({ours})"
                )));
            }
            debug!(part = index, "part acknowledged");
            ctx.journal
                .call(move |j| j.part_uploaded(id, index, &receipt))
                .await?;
            Ok(())
        }
        Err(e) => {
            let unsent = done.length.saturating_sub(done.sent);
            ctx.journal
                .call(move |j| j.part_failed(id, index, unsent))
                .await?;
            Err(e.into())
        }
    }
}

/// Compares what the service stores with what was read from disk.
fn stat_matches(
    ctx: &Ctx,
    size: u64,
    digests: &FileDigests,
    st: &crate::backend::RemoteStat,
) -> Result<(), String> {
    if st.size != size {
        return Err(format!(
            "the service stores {} bytes, the file has {size}",
            st.size
        ));
    }
    if ctx.caps.object_digest.is_none() {
        return Ok(()); // a size-only service: nothing more to compare
    }
    match (&st.digest, &digests.object) {
        (Some(theirs), Some(ours)) if theirs.matches(ours) => Ok(()),
        (Some(theirs), Some(ours)) => Err(format!(
            "the service stores {theirs}, the file read as {ours}"
        )),
        (None, _) => Err("the service reported no digest".into()),
        (_, None) => Err("no local digest was computed".into()),
    }
}

async fn verify_and_finish(
    ctx: &Ctx,
    row: &FileRow,
    remote: &RemoteObject,
    digests: &FileDigests,
) -> Result<(), Stop> {
    let id = row.id;
    let stat = ctx.backend.stat(&remote.key, Some(remote)).await?;
    let Some(stat) = stat else {
        return Err(Stop::Mismatch(format!(
            "the service has no object at {} after completion",
            remote.key
        )));
    };
    stat_matches(ctx, row.size, digests, &stat).map_err(Stop::Mismatch)?;
    debug!("verified");
    // The upload is verified; the post-action must not be cut in half by shutdown,
    // and it is quick: it runs to its end on a blocking thread.
    let after = ctx.settings.after.clone();
    let path = row.path.clone();
    let key = remote.key.clone();
    let verified = identity(row);
    let note =
        tokio::task::spawn_blocking(move || super::post::run(&after, &path, &key, &verified))
            .await
            .map_err(|e| Stop::LocalIo(std::io::Error::other(e.to_string())))?;
    let note = match note {
        Ok(n) => n,
        Err(e) => {
            warn!(error = %e, "delivered, but the post-action failed");
            Some(format!(
                "delivered and verified, but the post-action failed: {e}"
            ))
        }
    };
    ctx.journal
        .call(move |j| j.to_done(id, note.as_deref()))
        .await?;
    Ok(())
}

/// Maps a stop to the row's next state.
async fn settle(ctx: &Ctx, row: &FileRow, stop: Stop) {
    let id = row.id;
    let result: Result<(), JournalError> = async {
        match stop {
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
            Stop::LocalIo(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                warn!(error = %e, "cannot read the local file");
                fail(ctx, id, format!("cannot read the local file: {e}")).await
            }
            Stop::LocalIo(e) => {
                retry_later(ctx, id, None, format!("reading the local file: {e}")).await
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
                BackendError::Conflict { .. } => mismatch(ctx, id, e.to_string()).await,
                BackendError::AuthExpired { .. } | BackendError::Fatal { .. } => {
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

async fn abort_and_forget(
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
    let delay = {
        let mut rng = ctx.rng.lock().unwrap_or_else(|p| p.into_inner());
        ctx.settings.backoff.delay(failures, server_asked, &mut rng)
    };
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
    let session = ctx.journal.call(move |j| j.discard_session(id)).await?;
    if let Some(s) = session
        && let Err(e) = ctx.backend.abort(&s).await
    {
        warn!(error = %e, "could not abort the remote session");
    }
    retry_later(ctx, id, None, format!("verification failed: {why}")).await
}
