//! One attempt at one file: from `uploading` to `done`, or to the resting state its
//! stop leads to (see `outcome.rs`).
//!
//! The work is data-driven, so that any attempt after a crash or a failure continues
//! where the journal says the file stands:
//!
//! - a remote object is recorded → verify it;
//! - a small file (below the backend's single-request size) → one request;
//! - no session → note the intent, begin one, and record it with the part plan
//!   before any byte leaves;
//! - a session → ask the server which parts it holds (where it can say), then the
//!   read pass sends the missing parts (`pump.rs`); complete; verify; post-action;
//!   `done`.
//!
//! Cancelling an attempt between steps is safe because every step is committed to
//! the journal before the next one starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::gate::{Ticket, Verdict};
use super::join::join_poll_delay;
use super::outcome::{self, Stop};
use super::post::Post;
use super::pump::{Carried, PART_TRIES};
use super::reader::{self, ReadItem, ReadPlan};
use super::{Ctx, plan, pump};
use crate::backend::{
    BackendError, FileDigests, FileSpec, FinalPart, Meter, Op, PartBody, Receipt, RemoteObject,
    RemoteStat, Session, Source,
};
use crate::config::{After, OnExists};
use crate::confine;
use crate::digest::{Digest, DigestKind};
use crate::identity::Identity;
use crate::journal::{FileId, FileRow, PartRow, PartState, now_ms};
use crate::metrics::Reason;
use crate::verify::{self, Check};

/// One attempt's context.
pub(super) struct Attempt<'a> {
    pub ctx: &'a Ctx,
    /// What is sent: the claimed row, or (a compressed file) the same row with the
    /// spool copy's path, size and identity.
    pub row: &'a FileRow,
    /// The claimed row itself: its file gets the post-action.
    pub source: &'a FileRow,
    pub cancel: &'a CancellationToken,
    /// Set once the service answered a request of this attempt with success (a part
    /// acknowledged): the credentials work.
    pub answered: AtomicBool,
}

/// Runs one claimed file to its next resting state; says what it learnt about the
/// credentials.
pub(super) async fn run_file(
    ctx: Arc<Ctx>,
    row: FileRow,
    cancel: CancellationToken,
    ticket: Ticket,
) -> Verdict {
    let span = info_span!("file", id = row.id, key = row.key.as_deref().unwrap_or("?"));
    async move {
        debug!(attempt = row.attempts, size = row.size, "claimed");
        let started = std::time::Instant::now();
        // A file to compress is compressed first; its copy is what goes out.
        let content = match super::spool::content(&ctx, &row).await {
            Ok(c) => c,
            Err(stop) => {
                let verdict = outcome::verdict(&stop, false);
                outcome::settle(&ctx, &row, stop).await;
                return verdict;
            }
        };
        let at = Attempt {
            ctx: &ctx,
            row: &content,
            source: &row,
            cancel: &cancel,
            answered: AtomicBool::new(false),
        };
        match at.run().await {
            Ok(()) => {
                info!(
                    size = row.size,
                    secs = started.elapsed().as_secs_f64(),
                    "delivered and verified"
                );
                ctx.metrics.forget(row.id);
                Verdict::Delivered
            }
            Err(stop) => {
                // Refused while the service accepted another file after this one
                // was claimed: the refusal is about this file (a locked item, a
                // folder it may not write), not about the credentials.
                let stop = match stop {
                    Stop::Backend(e @ BackendError::AuthRefused { .. })
                        if ctx.gate.accepted_since(ticket.claimed_at) =>
                    {
                        Stop::RefusedForFile(e)
                    }
                    other => other,
                };
                let verdict = outcome::verdict(&stop, at.answered.load(Ordering::Relaxed));
                // This row's parts are not sent again (a new content is a new row).
                if matches!(
                    stop,
                    Stop::Changed(_)
                        | Stop::Vanished
                        | Stop::Refused(_)
                        | Stop::Backend(BackendError::Fatal { .. })
                ) {
                    ctx.metrics.forget(row.id);
                }
                outcome::settle(&ctx, &row, stop).await;
                verdict
            }
        }
    }
    .instrument(span)
    .await
}

/// The folder a row's file must be reached from without crossing a symbolic link,
/// and its post-action. A file the watcher found is confined to the outbox and gets
/// its rule's `after`, else `upload.after`. A file given to `dropship push` may lie anywhere: it is confined
/// to its own folder (push recorded its path with every link resolved, so the file
/// itself must still be a regular file, not a link swapped in since), and it is
/// always kept: push never deletes or moves what a person named.
fn confinement(ctx: &Ctx, row: &FileRow) -> (PathBuf, After) {
    if row.path.starts_with(&ctx.settings.spool) {
        // A compressed copy: read from the spool, never post-actioned itself.
        return (ctx.settings.spool.clone(), After::Keep);
    }
    match (row.pushed, row.path.parent()) {
        (true, Some(folder)) => (folder.to_path_buf(), After::Keep),
        _ => (
            ctx.settings.root.clone(),
            ctx.settings.after_for(row.rule.as_deref()),
        ),
    }
}

fn identity(row: &FileRow) -> Identity {
    Identity {
        size: row.size,
        mtime_ns: row.mtime_ns,
        inode: row.inode,
    }
}

impl Attempt<'_> {
    /// The read pass over `parts` of the row's file, with the backend's digests;
    /// `in_parts`: for a multi-part upload (not one request).
    pub(super) fn read_plan(&self, parts: Vec<PartRow>, in_parts: bool) -> ReadPlan {
        let caps = &self.ctx.caps;
        ReadPlan {
            path: self.row.path.clone(),
            identity: identity(self.row),
            parts,
            part_digest: caps.part_digest,
            object_digest: self
                .ctx
                .check
                .whole_digest(caps)
                .filter(|_| !(in_parts && caps.object_digest_from_parts)),
            resume: self.row.hash_state.clone(),
        }
    }

    /// How the local file changed since it was queued, if it did (or vanished).
    pub(super) async fn local_change(&self) -> Option<String> {
        match tokio::fs::symlink_metadata(&self.row.path).await {
            Ok(meta) => Identity::of(&meta).change_from(&identity(self.row)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("it was removed".into()),
            Err(_) => None,
        }
    }

    async fn run(&self) -> Result<(), Stop> {
        let (ctx, row) = (self.ctx, self.row);
        let Some(key) = row.key.clone() else {
            return Err(Stop::Refused("the file has no remote name".into()));
        };
        let mut file = FileSpec {
            content_type: ctx.settings.content_type_for(row.rule.as_deref(), &key),
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
            // The completion was asked for: only its join is left to wait for, unless
            // the request never reached the service.
            _ if row.join_started.is_some() => match self.poll_join(&file).await? {
                Some(done) => done,
                None => self.in_parts(&file).await?,
            },
            _ => {
                self.check_local().await?;
                if let Some(why) = ctx.backend.name_problem(&file.key) {
                    return Err(Stop::Refused(why));
                }
                if row.session.is_none() && ctx.caps.asynchronous_join {
                    self.settle_older_joins(&file).await?;
                }
                // Whether the name check's outcome is still to be recorded.
                let mut checked = false;
                if row.session.is_none() && !row.clash_checked {
                    match self.check_name(&file).await? {
                        Name::Free { checked: c } => checked = c,
                        Name::Done => return Ok(()),
                        Name::Renamed(key) => file.key = key,
                    }
                }
                if row.session.is_none() && row.size < ctx.caps.single_request_below {
                    let (remote, digests, receipt) = self.single(&file, checked).await?;
                    return self
                        .verify_and_finish(&remote, &digests, Some(&[receipt]))
                        .await;
                }
                if checked {
                    ctx.journal.call(move |j| j.clash_checked(id)).await?;
                }
                self.in_parts(&file).await?
            }
        };
        self.verify_and_finish(&remote, &digests, None).await
    }

    /// What the service holds under the key, before the first request that could
    /// create the object. Identical content (same size, and the same digest where
    /// the service's stat has one) is delivered already: the file is done without
    /// sending a byte, whatever `upload.on_exists` says. Other content meets the
    /// policy: overwrite it, skip the file, fail it, or keep both (the file goes to
    /// the first free `<stem>.<n><ext>`, recorded before any byte is sent).
    async fn check_name(&self, file: &FileSpec) -> Result<Name, Stop> {
        let ctx = self.ctx;
        let id = self.row.id;
        let policy = ctx.settings.on_exists;
        let mut local: Option<Digest> = None;
        let st = match ctx.backend.stat(&file.key, None).await {
            Ok(st) => st,
            // Under "overwrite" the look is only a saving: a refusal of the moment
            // does not hold the upload back (it meets the same service, and its own
            // retries). Not recorded as checked: the next attempt looks again.
            Err(e @ BackendError::Retry { .. }) if policy == OnExists::Overwrite => {
                debug!(error = %e, "could not look for identical content; uploading");
                return Ok(Name::Free { checked: false });
            }
            Err(e) => return Err(e.into()),
        };
        let Some(st) = st else {
            return Ok(Name::Free { checked: true });
        };
        if self.identical(&st, &mut local).await? {
            self.finish_identical(&file.key).await?;
            return Ok(Name::Done);
        }
        let held = format!("the service already holds {} ({} bytes)", file.key, st.size);
        match policy {
            OnExists::Overwrite => Ok(Name::Free { checked: true }),
            OnExists::Fail => Err(Stop::Refused(format!(
                "{held}; upload.on_exists = \"fail\""
            ))),
            OnExists::Skip => {
                let note = format!("not uploaded: {held}; upload.on_exists = \"skip\"");
                info!("{note}");
                ctx.journal
                    .call(move |j| j.skip_existing(id, &note))
                    .await?;
                Ok(Name::Done)
            }
            OnExists::KeepBoth => {
                for n in 1..=KEEP_BOTH_TRIES {
                    let candidate = numbered(&file.key, n);
                    match ctx.backend.stat(&candidate, None).await? {
                        None => {
                            info!(key = %candidate, "{held}; the file goes beside it (upload.on_exists = \"keep-both\")");
                            let k = candidate.clone();
                            ctx.journal.call(move |j| j.name_chosen(id, &k)).await?;
                            return Ok(Name::Renamed(candidate));
                        }
                        // Kept before (a journal lost since, or pushed twice).
                        Some(st) if self.identical(&st, &mut local).await? => {
                            let k = candidate.clone();
                            ctx.journal.call(move |j| j.name_chosen(id, &k)).await?;
                            self.finish_identical(&candidate).await?;
                            return Ok(Name::Done);
                        }
                        Some(_) => {}
                    }
                }
                Err(Stop::Refused(format!(
                    "{held}, and so do the first {KEEP_BOTH_TRIES} numbered names beside it; upload.on_exists = \"keep-both\""
                )))
            }
        }
    }

    /// Whether the service's object is this file's content: the same size, and the
    /// same digest, computed from the local file once (`local` caches it) and only
    /// where sizes agree. Without a digest in the stat, content cannot be told
    /// apart, and it is not taken for identical.
    async fn identical(&self, st: &RemoteStat, local: &mut Option<Digest>) -> Result<bool, Stop> {
        let Some(remote) = st.digest.as_ref().filter(|_| st.size == self.row.size) else {
            return Ok(false);
        };
        let mine = match local.as_ref().filter(|d| d.kind == remote.kind) {
            Some(d) => d.clone(),
            None => {
                let d = hash_file(&self.row.path, remote.kind).await?;
                *local = Some(d.clone());
                d
            }
        };
        Ok(mine.matches(remote))
    }

    /// The service holds this content at `key` already: the file is delivered
    /// (its post-action runs) without a byte sent.
    async fn finish_identical(&self, key: &str) -> Result<(), Stop> {
        let ctx = self.ctx;
        let id = self.row.id;
        let remote = RemoteObject::at(key);
        let r = remote.clone();
        ctx.journal
            .call(move |j| j.to_verifying(id, &r, &FileDigests::default(), None))
            .await?;
        info!(%key, "the service already holds this content; nothing sent");
        self.post_action_and_done(
            &remote,
            Some("the service already held this content; nothing was sent"),
        )
        .await
    }

    /// Fails fast if the file changed while it waited in the queue, or is reached
    /// through a symbolic link (see `confine.rs`).
    async fn check_local(&self) -> Result<(), Stop> {
        let (root, _) = confinement(self.ctx, self.row);
        let path = self.row.path.clone();
        let expected = identity(self.row);
        tokio::task::spawn_blocking(move || match confine::inside(&root, &path) {
            Ok(Ok(meta)) => match Identity::of(&meta).change_from(&expected) {
                Some(why) => Err(Stop::Changed(why)),
                None => Ok(()),
            },
            Ok(Err(why)) => Err(Stop::Refused(why)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Stop::Vanished),
            Err(e) => Err(Stop::LocalIo(e)),
        })
        .await
        .map_err(|e| Stop::LocalIo(std::io::Error::other(e.to_string())))?
    }

    /// A small file in one request. Its digest is needed before the request goes
    /// out (some services take it in a header), so the bytes are read first, into
    /// the memory budget (or, bigger than it, hashed and then streamed), then sent.
    /// `checked`: the name check's outcome is recorded with the part's start.
    ///
    /// The plan (one part, the whole file) is recorded only after the read, together
    /// with the name check and the part's start: one commit before the bytes leave,
    /// where a small file's bookkeeping used to take five journal calls.
    async fn single(
        &self,
        file: &FileSpec,
        checked: bool,
    ) -> Result<(RemoteObject, FileDigests, Receipt), Stop> {
        let (ctx, row) = (self.ctx, self.row);
        let (id, size) = (row.id, row.size);
        let parts = vec![PartRow {
            index: 0,
            offset: 0,
            length: size,
            state: PartState::Pending,
            receipt: None,
        }];
        let mut rx = reader::spawn(
            self.read_plan(parts, false),
            Arc::new(Semaphore::new(1)),
            ctx.budget.clone(),
        );
        let mut body = None;
        let mut digests = None;
        let mut part_digest = None;
        while let Some(item) = rx.recv().await {
            match item? {
                ReadItem::Send {
                    source,
                    held,
                    digest,
                    ..
                } => {
                    body = Some((source, held));
                    part_digest = digest;
                }
                ReadItem::Held { .. } => {}
                ReadItem::Done(d) => digests = Some(d),
            }
        }
        let (Some((source, _held)), Some(mut digests)) = (body, digests) else {
            return Err(Stop::LocalIo(std::io::Error::other(
                "the read pass ended early",
            )));
        };
        digests.part = part_digest;
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        let receipt = Receipt::plain(0, 0, source.len());
        // A retry after a request whose answer was lost: the service may hold the file
        // already, and sending it again would make a duplicate (a new version).
        if row.attempts > 1
            && let Some(remote) = self
                .already_delivered(file, &digests, None, Some(&[]))
                .await?
        {
            let (r, d, c) = (remote.clone(), digests.clone(), receipt.clone());
            ctx.journal
                .call(move |j| {
                    j.start_single(id, size, checked, false)?;
                    j.to_verifying(id, &r, &d, Some(&c))
                })
                .await?;
            return Ok((remote, digests, receipt));
        }
        ctx.journal
            .call(move |j| j.start_single(id, size, checked, true))
            .await?;
        let meter = Meter::new(ctx.limiter());
        let len = source.len();
        let streamed = matches!(source, Source::File(_));
        let sent = ctx
            .backend
            .put_single(file, PartBody::from_source(source, meter.clone()), &digests)
            .await;
        ctx.metrics.part_sent(id, 0, meter.sent());
        match sent {
            Ok(remote) => {
                let (r, d, c) = (remote.clone(), digests.clone(), receipt.clone());
                ctx.journal
                    .call(move |j| j.to_verifying(id, &r, &d, Some(&c)))
                    .await?;
                Ok((remote, digests, receipt))
            }
            Err(e) => {
                let unsent = len.saturating_sub(meter.sent());
                ctx.journal
                    .call(move |j| j.part_failed(id, 0, unsent))
                    .await?;
                // Streamed from the file, the body fails if the file changes.
                if streamed && let Some(why) = self.local_change().await {
                    return Err(Stop::Changed(why));
                }
                if let Some(reason) = Reason::of(&e) {
                    ctx.metrics.part_retried(reason);
                }
                Err(e.into())
            }
        }
    }

    /// The stored object at the file's key, if it already is the file's content (the
    /// answer to an earlier completion or single request was lost). `session` is the
    /// upload whose completion may have happened.
    ///
    /// The service's word that it completed the session wins; otherwise only a digest
    /// proves it. Size alone proves nothing (an older object of the same size may
    /// be there): without a digest the file is sent again, which is harmless.
    /// `receipts`: the parts' receipts where the attempt knows them (a single
    /// request before its one part is recorded has none), else the journal's.
    async fn already_delivered(
        &self,
        file: &FileSpec,
        digests: &FileDigests,
        session: Option<&Session>,
        receipts: Option<&[Receipt]>,
    ) -> Result<Option<RemoteObject>, Stop> {
        let ctx = self.ctx;
        if let Some(s) = session
            && let Some(remote) = ctx.backend.completed(s, file).await?
        {
            info!("the service completed this upload before");
            return Ok(Some(remote));
        }
        if ctx.caps.object_digest.is_none() {
            return Ok(None);
        }
        let expected = self.expected_digest(digests, true, receipts).await?;
        match ctx.backend.stat(&file.key, None).await? {
            Some(st) if stat_matches(file.size, expected.as_ref(), &st, true).is_ok() => {
                info!("the service already holds this content");
                Ok(Some(RemoteObject::at(&file.key)))
            }
            _ => Ok(None),
        }
    }

    /// The digest the service must report for the object (see
    /// `Backend::expected_digest`), from the read pass and the parts' receipts
    /// (`known`, else the journal's); `None` where it is not compared (`wanted`
    /// false, or no digest to compare).
    async fn expected_digest(
        &self,
        digests: &FileDigests,
        wanted: bool,
        known: Option<&[Receipt]>,
    ) -> Result<Option<Digest>, Stop> {
        let ctx = self.ctx;
        if !wanted || ctx.caps.object_digest.is_none() {
            return Ok(None);
        }
        if let Some(receipts) = known {
            return Ok(ctx.backend.expected_digest(digests, receipts));
        }
        let id = self.row.id;
        let receipts: Vec<Receipt> = ctx
            .journal
            .call(move |j| j.parts(id))
            .await?
            .into_iter()
            .filter_map(|p| p.receipt)
            .collect();
        Ok(ctx.backend.expected_digest(digests, &receipts))
    }

    /// A file in parts through an upload session.
    async fn in_parts(&self, file: &FileSpec) -> Result<(RemoteObject, FileDigests), Stop> {
        let (ctx, row) = (self.ctx, self.row);
        let id = row.id;
        let session = match &row.session {
            Some(s) => {
                match (self.reconcile(s, file).await, &row.digests) {
                    // Every part was sent and completion was asked for before: a lost
                    // answer to a completion that happened closes the session too.
                    (Err(Stop::Backend(gone @ BackendError::SessionGone { .. })), Some(d)) => {
                        let Some(remote) = self.already_delivered(file, d, Some(s), None).await?
                        else {
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
            None => self.begin(file).await?,
        };
        let parts = ctx.journal.call(move |j| j.parts(id)).await?;
        let all_held = parts.iter().all(|p| p.state == PartState::Uploaded);
        let (digests, carried) = match (&row.digests, all_held) {
            // Everything was sent and hashed before a restart: no need to read again.
            (Some(d), true) => (d.clone(), None),
            _ => pump::send_parts(self, &session, file, parts).await?,
        };
        // The last part's bytes ride on the completion: it starts (with the hash
        // checkpoint past it) while the file is still `uploading`.
        let carried = match carried {
            Some(c) => {
                let (index, cp) = (c.spec.index, c.checkpoint.clone());
                ctx.journal
                    .call(move |j| j.part_start(id, index, cp.as_ref()))
                    .await?;
                Some(c)
            }
            None => None,
        };
        let d = digests.clone();
        ctx.journal.call(move |j| j.to_completing(id, &d)).await?;
        if ctx.caps.asynchronous_join {
            ctx.journal.call(move |j| j.note_completion(id)).await?;
        }
        let carried_index = carried.as_ref().map(|c| c.spec.index);
        let receipts: Vec<Receipt> = ctx
            .journal
            .call(move |j| j.parts(id))
            .await?
            .into_iter()
            .filter(|p| Some(p.index) != carried_index)
            .map(|p| {
                p.receipt
                    .ok_or_else(|| Stop::Mismatch(format!("part {} has no receipt", p.index)))
            })
            .collect::<Result<_, _>>()?;
        let last_receipt = carried.as_ref().map(|c| Receipt {
            digest: c.spec.digest.clone(),
            ..Receipt::of(&c.spec)
        });
        let completed = self
            .complete(&session, file, &receipts, carried.as_ref(), &digests)
            .await?;
        drop(carried);
        let remote = match completed {
            Ok(r) => r,
            // A completion whose answer was lost closes the session: if the object is
            // there with the right content, the completion did happen.
            Err(gone @ BackendError::SessionGone { .. }) => {
                match self
                    .already_delivered(file, &digests, Some(&session), None)
                    .await?
                {
                    Some(remote) => remote,
                    None => return Err(gone.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        if ctx.caps.asynchronous_join {
            // Accepted, not yet assembled: the file rests until its first poll.
            let at = now_ms() + join_poll_delay(Duration::ZERO).as_millis() as i64;
            ctx.journal
                .call(move |j| j.to_joining(id, at, last_receipt.as_ref()))
                .await?;
            info!("completion accepted; the service joins the parts");
            return Err(Stop::Joining);
        }
        let (r, d) = (remote.clone(), digests.clone());
        ctx.journal
            .call(move |j| j.to_verifying(id, &r, &d, last_receipt.as_ref()))
            .await?;
        Ok((remote, digests))
    }

    /// Asks the service to complete the session, carrying the last part where it
    /// rides on the completion. A temporary failure is tried again after a backoff,
    /// from the part's buffer, as `pump.rs` does for parts (up to [`PART_TRIES`]
    /// failures in a row): ending the attempt would read the part from disk again.
    /// If it still fails, the carried part goes back to `pending`.
    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        receipts: &[Receipt],
        carried: Option<&Carried>,
        digests: &FileDigests,
    ) -> Result<Result<RemoteObject, BackendError>, Stop> {
        let ctx = self.ctx;
        let id = self.row.id;
        let mut failures = 0;
        loop {
            let meter = Meter::new(ctx.limiter());
            let last = carried.map(|c| FinalPart {
                spec: c.spec.clone(),
                body: PartBody::from_source(c.source.clone(), meter.clone()),
            });
            let completed = ctx
                .backend
                .complete(session, file, receipts, last, digests)
                .await;
            if let Some(c) = carried {
                ctx.metrics.part_sent(id, c.spec.index, meter.sent());
            }
            let e = match completed {
                Ok(remote) => return Ok(Ok(remote)),
                Err(e) => e,
            };
            failures += 1;
            let again = matches!(e, BackendError::Retry { .. }) && failures < PART_TRIES;
            if let Some(c) = carried {
                if let Some(reason) = Reason::of(&e) {
                    ctx.metrics.part_retried(reason);
                }
                let index = c.spec.index;
                let (sent, unsent) = (meter.sent(), c.spec.length.saturating_sub(meter.sent()));
                // Counted once when the part started; a try sent again adds what
                // this one sent, a last failure takes back what never left.
                ctx.journal
                    .call(move |j| {
                        if again {
                            j.count_resent(id, sent)
                        } else {
                            j.part_failed(id, index, unsent)
                        }
                    })
                    .await?;
            }
            if !again {
                return Ok(Err(e));
            }
            let delay = ctx.backoff_delay(failures, e.retry_after());
            info!(failures, delay_ms = delay.as_millis() as u64, error = %e, "completion will be asked again");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.cancel.cancelled() => {
                    // The try it was counted for will not go.
                    if let Some(c) = carried {
                        let (index, length) = (c.spec.index, c.spec.length);
                        ctx.journal
                            .call(move |j| j.part_failed(id, index, length))
                            .await?;
                    }
                    return Err(Stop::Cancelled);
                }
            }
        }
    }

    /// Opens a session and records it, with the part plan, before any part is sent.
    /// The intent is recorded first: a session the service opened for a daemon that
    /// died before recording it is found and discarded at the next start. Both are
    /// synced (`Journal::sync`): a session the journal forgot in a power cut would be
    /// left open on the service for good, its parts stored and never used.
    async fn begin(&self, file: &FileSpec) -> Result<Session, Stop> {
        let ctx = self.ctx;
        let id = self.row.id;
        ctx.journal
            .call(move |j| {
                j.note_begin(id)?;
                j.sync()
            })
            .await?;
        let session = ctx.backend.begin(file).await?;
        let part_size =
            match plan::part_size(&ctx.caps, ctx.settings.part_size, file.size, Some(&session)) {
                Ok(ps) => ps,
                Err(why) => {
                    let _ = ctx.backend.abort(&session).await;
                    return Err(Stop::Backend(BackendError::Fatal {
                        op: Op::Begin,
                        status: None,
                        detail: why,
                    }));
                }
            };
        let cut = plan::cut(file.size, part_size);
        // Kept with the session: a backend that lists held parts by number alone
        // (Insights Hub) maps them back to byte ranges with it.
        let mut session = session;
        session.part_size.get_or_insert(part_size);
        let s = session.clone();
        let recorded = ctx
            .journal
            .call(move |j| {
                j.start_session(id, Some(&s), part_size, &cut)?;
                j.sync()
            })
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
    async fn reconcile(&self, session: &Session, file: &FileSpec) -> Result<(), Stop> {
        let ctx = self.ctx;
        if !ctx.caps.lists_held_parts {
            return Ok(());
        }
        let Some(held) = ctx.backend.held_parts(session, file).await? else {
            return Ok(());
        };
        let id = self.row.id;
        let parts = ctx.journal.call(move |j| j.parts(id)).await?;
        // A last part that rides on the completion is sent with it, whatever a
        // listing says.
        let carried = ctx
            .caps
            .last_part_on_complete
            .then(|| parts.last().map(|p| p.index))
            .flatten();
        let mut gained = 0;
        let mut lost = 0;
        for p in parts {
            let h = held
                .iter()
                .find(|r| r.index == p.index && r.offset == p.offset && r.length == p.length)
                .filter(|_| Some(p.index) != carried)
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

    /// `receipts`: the parts' receipts where the attempt holds them all (a single
    /// request's one), else they are read from the journal.
    async fn verify_and_finish(
        &self,
        remote: &RemoteObject,
        digests: &FileDigests,
        receipts: Option<&[Receipt]>,
    ) -> Result<(), Stop> {
        let (ctx, row) = (self.ctx, self.row);
        let stat = verify::retrying(|| ctx.backend.stat(&remote.key, Some(remote))).await?;
        let Some(stat) = stat else {
            return Err(Stop::Mismatch(format!(
                "the service has no object at {} after completion",
                remote.key
            )));
        };
        let use_digest = ctx.check.compares_digest(&ctx.caps);
        let expected = self.expected_digest(digests, use_digest, receipts).await?;
        stat_matches(row.size, expected.as_ref(), &stat, use_digest).map_err(Stop::Mismatch)?;
        let read_back = match ctx.check {
            Check::Sample(n) => {
                let ranges = {
                    let mut rng = ctx.rng.lock().unwrap_or_else(|p| p.into_inner());
                    verify::sample_ranges(row.size, n, &mut rng)
                };
                let backend = &*ctx.backend;
                verify::sample(backend, remote, &row.path, identity(row), &ranges).await?
            }
            Check::Full => {
                verify::full(&*ctx.backend, remote, row.size, digests.object.as_ref()).await?
            }
            Check::Size | Check::Digest => 0,
        };
        debug!(check = ?ctx.check, read_back, "verified");
        self.post_action_and_done(remote, None).await
    }

    /// The post-action, then `done`; `note` (if any) is kept in `status` when the
    /// post-action adds none of its own.
    async fn post_action_and_done(
        &self,
        remote: &RemoteObject,
        note: Option<&str>,
    ) -> Result<(), Stop> {
        let (ctx, row) = (self.ctx, self.source);
        let id: FileId = row.id;
        // The upload is verified; the post-action must not be cut in half by shutdown,
        // and it is quick: it runs to its end on a blocking thread.
        let (root, after) = confinement(ctx, row);
        // A file of the outbox kept in place is local retention's to remove later;
        // a pushed one is never touched.
        let keeps = after == After::Keep && !row.pushed;
        let path = row.path.clone();
        let key = remote.key.clone();
        let verified = identity(row);
        if after != After::Keep {
            // Deleting or moving the file cannot be undone: the verified row that
            // allows it must outlive a power cut first (see `Journal::sync`).
            ctx.journal.call(|j| j.sync()).await?;
        }
        let post = tokio::task::spawn_blocking(move || {
            super::post::run(&after, &root, &path, &key, &verified)
        })
        .await
        .map_err(|e| Stop::LocalIo(std::io::Error::other(e.to_string())))?;
        let (note, kept) = match post {
            // No note of its own: the file is in place, unchanged.
            Ok(Post::Done(own)) => (
                own.clone().or_else(|| note.map(str::to_string)),
                keeps && own.is_none(),
            ),
            Ok(Post::Postponed(why)) => return Err(Stop::Postponed(why)),
            Err(e) => {
                warn!(error = %e, "delivered, but the post-action failed");
                (
                    Some(format!(
                        "delivered and verified, but the post-action failed: {e}"
                    )),
                    false,
                )
            }
        };
        // The compressed copy has served: the journal's `done` no longer names it,
        // so a crash before this removal leaves it to the next start's sweep.
        if let Some(copy) = &self.row.spool {
            let _ = std::fs::remove_file(&copy.path);
        }
        ctx.journal
            .call(move |j| j.to_done(id, note.as_deref(), kept))
            .await?;
        Ok(())
    }
}

/// Compares what the service stores with what was read from disk: the size, and
/// with `digest` the service's digest of the object.
fn stat_matches(
    size: u64,
    expected: Option<&Digest>,
    st: &RemoteStat,
    digest: bool,
) -> Result<(), String> {
    if st.size != size {
        return Err(format!(
            "the service stores {} bytes, the file has {size}",
            st.size
        ));
    }
    if !digest {
        return Ok(()); // size only, or content compared by reading back
    }
    match (&st.digest, expected) {
        (Some(theirs), Some(ours)) if theirs.matches(ours) => Ok(()),
        (Some(theirs), Some(ours)) => Err(format!(
            "the service stores {theirs}, the file read as {ours}"
        )),
        (None, _) => Err("the service reported no digest".into()),
        (_, None) => Err("no local digest was computed".into()),
    }
}

/// What [`Attempt::check_name`] found.
enum Name {
    /// Upload under the key; `checked`: the check is to be recorded (with the
    /// upload's first step, so that later attempts do not look again).
    Free { checked: bool },
    /// Nothing to upload: delivered already, or skipped.
    Done,
    /// Upload under this key instead (`keep-both`).
    Renamed(String),
}

/// How many numbered names `keep-both` tries before it gives up on a file.
const KEEP_BOTH_TRIES: u32 = 1000;

/// `dir/stem.ext` → `dir/stem.n.ext` (`.bashrc` → `.bashrc.n`).
fn numbered(key: &str, n: u32) -> String {
    let (dir, name) = match key.rsplit_once('/') {
        Some((d, name)) => (format!("{d}/"), name),
        None => (String::new(), key),
    };
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{dir}{}.{n}{}", &name[..i], &name[i..]),
        _ => format!("{dir}{name}.{n}"),
    }
}

/// The `kind` digest of the whole file at `path`, read on a blocking thread.
async fn hash_file(path: &std::path::Path, kind: DigestKind) -> Result<Digest, Stop> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<Digest> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = crate::digest::Hasher::new(kind);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.update(&buf[..n]);
        }
    })
    .await
    .map_err(|e| Stop::LocalIo(std::io::Error::other(e.to_string())))?
    .map_err(Stop::LocalIo)
}

#[cfg(test)]
mod name_tests {
    use super::numbered;

    #[test]
    fn keep_both_numbers_the_stem() {
        assert_eq!(numbered("a/b/report.csv", 1), "a/b/report.1.csv");
        assert_eq!(numbered("x.tar.gz", 2), "x.tar.2.gz");
        assert_eq!(numbered("README", 3), "README.3");
        assert_eq!(numbered("d/.bashrc", 1), "d/.bashrc.1");
    }
}
