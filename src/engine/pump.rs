//! The parts in flight: the read pass hands over parts, up to `parts_in_flight` go
//! out at once, and each one's end is committed to the journal.
//!
//! A part that fails is not the end of the attempt:
//! - a temporary failure (network, 5xx, 429, a stall) sends that part again after a
//!   backoff, from the buffer it already has, while the other parts go on;
//! - a conflict (the service says another request for the same range is in
//!   progress, e.g. one a crashed daemon left behind and the server is still
//!   reading) backs off, asks the service which parts it holds, and then either
//!   takes the held part (same digest), stops with a real mismatch (another digest),
//!   or sends the part again. A conflict never throws the session away.
//!
//! Where the backend takes parts one at a time, in order (Exosite), the next part
//! is read and hashed while the current one is on the wire, and goes when it is
//! acknowledged: the digest and the link overlap instead of taking turns.
//!
//! Under [`Capabilities::last_part_on_complete`](crate::backend::Capabilities) the
//! last part is not sent here: the read pass hands it over like any other, and it
//! is kept, with its buffer and its hash checkpoint, for the completion request to
//! carry once every other part is acknowledged.
//!
//! Only after [`PART_TRIES`] failures of one part in a row does the attempt give up,
//! and the file as a whole backs off (session, parts and hash kept). Errors that are
//! not about one part (session gone, credentials refused, a refusal) stop
//! dispatching at once; parts in flight are let finish so their receipts count.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info};

use super::attempt::Attempt;
use super::outcome::Stop;
use super::reader::{self, Held, ReadItem};
use crate::backend::{
    BackendError, FileDigests, FileSpec, Meter, Op, PartBody, PartSpec, Receipt, Session, Source,
};
use crate::digest::{Digest, HashCheckpoint};
use crate::journal::PartRow;
use crate::metrics::Reason;

/// Failures in a row of one part within one attempt before the attempt gives up.
pub(super) const PART_TRIES: u32 = 5;

/// A part on its way, with everything needed to send it again.
struct Part {
    spec: PartSpec,
    source: Source,
    /// Its slot and memory, given back when the part is acknowledged or dropped.
    _held: Held,
    failures: u32,
}

/// The last part, read and kept for the completion request to carry.
pub(super) struct Carried {
    pub spec: PartSpec,
    pub source: Source,
    /// Where the whole-file hash stands after it, saved when it is sent.
    pub checkpoint: Option<HashCheckpoint>,
    /// Its slot and memory, until the completion ends.
    pub _held: Held,
}

/// A part whose request ended.
struct Ended {
    part: Part,
    /// Bytes of the body handed to the wire.
    sent: u64,
    result: Result<Receipt, BackendError>,
}

/// A part waiting to go again.
struct Waiting {
    at: Instant,
    part: Part,
    /// After a conflict: ask the service which parts it holds first.
    check_held: bool,
}

struct Pump<'a> {
    at: &'a Attempt<'a>,
    session: &'a Session,
    file: &'a FileSpec,
    /// `(offset, length, digest of the stored part)` by index.
    plan: HashMap<u32, (u64, u64, Option<Digest>)>,
    last_index: u32,
    /// The last part rides on `complete` (kept in `carried`).
    carry_last: bool,
    carried: Option<Carried>,
    /// Parts go one at a time, in order (the backend has no parallel parts): the
    /// next one is read and hashed while the current one is on the wire, and waits
    /// here, with its hash checkpoint, for its turn.
    sequential: bool,
    queue: VecDeque<(Part, Option<HashCheckpoint>)>,
    tasks: JoinSet<Ended>,
    waiting: Vec<Waiting>,
}

/// The read pass and the parts in flight, until every part is acknowledged.
/// Returns the whole-file digests of the pass, and the last part when the
/// completion request is to carry it.
pub(super) async fn send_parts(
    at: &Attempt<'_>,
    session: &Session,
    file: &FileSpec,
    parts: Vec<PartRow>,
) -> Result<(FileDigests, Option<Carried>), Stop> {
    let ctx = at.ctx;
    let in_flight = if ctx.caps.parallel_parts {
        ctx.settings.parts_in_flight
    } else {
        1
    };
    let plan = parts
        .iter()
        .map(|p| {
            let digest = p.receipt.as_ref().and_then(|r| r.digest.clone());
            (p.index, (p.offset, p.length, digest))
        })
        .collect();
    let last_index = parts.len().saturating_sub(1) as u32;
    let sequential = !ctx.caps.parallel_parts;
    // One part read ahead of the one in flight where parts go one at a time.
    let slots = Arc::new(Semaphore::new(in_flight + usize::from(sequential)));
    let mut rx = reader::spawn(at.read_plan(parts, true), slots.clone(), ctx.budget.clone());
    let mut pump = Pump {
        at,
        session,
        file,
        plan,
        last_index,
        carry_last: ctx.caps.last_part_on_complete,
        carried: None,
        sequential,
        queue: VecDeque::new(),
        tasks: JoinSet::new(),
        waiting: Vec::new(),
    };
    let mut stop: Option<Stop> = None;
    let mut digests = None;
    let mut reading = true;
    loop {
        if stop.is_some() {
            // Their slots and buffers go; they are `pending` in the journal already.
            pump.waiting.clear();
            pump.queue.clear();
        }
        if pump.tasks.is_empty()
            && pump.waiting.is_empty()
            && pump.queue.is_empty()
            && (stop.is_some() || !reading)
        {
            break;
        }
        let next_due = pump.waiting.iter().map(|w| w.at).min();
        tokio::select! {
            biased;
            Some(joined) = pump.tasks.join_next(), if !pump.tasks.is_empty() => {
                let outcome = match joined {
                    Ok(ended) => match pump.ended(ended).await {
                        Ok(()) => pump.dispatch().await,
                        Err(s) => Err(s),
                    },
                    Err(e) => Err(Stop::LocalIo(std::io::Error::other(format!("part task failed: {e}")))),
                };
                if let Err(s) = outcome {
                    stop.get_or_insert(s);
                    slots.close();
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() && stop.is_none() => {
                if let Err(s) = pump.send_due().await {
                    stop = Some(s);
                    slots.close();
                }
            }
            item = rx.recv(), if reading && stop.is_none() => {
                let Some(item) = item else {
                    reading = false;
                    continue;
                };
                let outcome = match item {
                    Ok(ReadItem::Send { index, source, digest, checkpoint, held })
                        if pump.carry_last && index == pump.last_index =>
                    {
                        let Part { spec, source, _held, .. } = pump.part(index, source, digest, held);
                        debug_assert!(spec.last, "the carried part is the last");
                        pump.carried = Some(Carried { spec, source, checkpoint, _held });
                        Ok(())
                    }
                    Ok(ReadItem::Send { index, source, digest, checkpoint, held }) if pump.sequential => {
                        let part = pump.part(index, source, digest, held);
                        pump.queue.push_back((part, checkpoint));
                        pump.dispatch().await
                    }
                    Ok(ReadItem::Send { index, source, digest, checkpoint, held }) => {
                        let id = at.row.id;
                        match ctx.journal.call(move |j| j.part_start(id, index, checkpoint.as_ref())).await {
                            Ok(()) => {
                                let part = pump.part(index, source, digest, held);
                                pump.spawn(part);
                                Ok(())
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                    Ok(ReadItem::Held { index, digest }) => pump.check_held(index, digest.as_ref()),
                    Ok(ReadItem::Done(d)) => {
                        digests = Some(d);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                if let Err(s) = outcome {
                    stop = Some(s);
                    slots.close();
                }
            }
            _ = at.cancel.cancelled(), if stop.is_none() => {
                stop = Some(Stop::Cancelled);
                slots.close();
            }
        }
    }
    if let Some(s) = stop {
        return Err(s);
    }
    let digests =
        digests.ok_or_else(|| Stop::LocalIo(std::io::Error::other("the read pass ended early")))?;
    Ok((digests, pump.carried))
}

impl Pump<'_> {
    fn part(&self, index: u32, source: Source, digest: Option<Digest>, held: Held) -> Part {
        let (offset, length, _) = self.plan.get(&index).cloned().unwrap_or_default();
        Part {
            spec: PartSpec {
                index,
                offset,
                length,
                total: self.at.row.size,
                digest,
                last: index == self.last_index,
            },
            source,
            _held: held,
            failures: 0,
        }
    }

    /// Where parts go one at a time: the next queued part goes once nothing is on
    /// the wire or waiting to be sent again (a failed part keeps its place).
    async fn dispatch(&mut self) -> Result<(), Stop> {
        if !(self.sequential && self.tasks.is_empty() && self.waiting.is_empty()) {
            return Ok(());
        }
        let Some((part, checkpoint)) = self.queue.pop_front() else {
            return Ok(());
        };
        let (id, index) = (self.at.row.id, part.spec.index);
        self.at
            .ctx
            .journal
            .call(move |j| j.part_start(id, index, checkpoint.as_ref()))
            .await?;
        self.spawn(part);
        Ok(())
    }

    fn spawn(&mut self, part: Part) {
        let ctx = self.at.ctx;
        let backend = ctx.backend.clone();
        let session = self.session.clone();
        let meter = Meter::new(ctx.limiter());
        let body = PartBody::from_source(part.source.clone(), meter.clone());
        self.tasks.spawn(async move {
            let result = backend.put_part(&session, &part.spec, body).await;
            Ended {
                sent: meter.sent(),
                part,
                result,
            }
        });
    }

    /// A part the journal holds as uploaded, read again for a hash: its digest must
    /// be the one the service reported when it stored it.
    fn check_held(&self, index: u32, ours: Option<&Digest>) -> Result<(), Stop> {
        let stored = self.plan.get(&index).and_then(|k| k.2.as_ref());
        match (ours, stored) {
            (Some(ours), Some(theirs)) if !ours.matches(theirs) => Err(Stop::Mismatch(format!(
                "the server holds other bytes for part {index} ({theirs}) than the file has ({ours})"
            ))),
            _ => Ok(()),
        }
    }

    /// Commits a finished request: its receipt, or the part goes back to `pending`
    /// and waits for its next try.
    async fn ended(&mut self, ended: Ended) -> Result<(), Stop> {
        crate::liveness::touch();
        let ctx = self.at.ctx;
        let id = self.at.row.id;
        let Ended {
            mut part,
            sent,
            result,
        } = ended;
        let index = part.spec.index;
        ctx.metrics.part_sent(id, index, sent);
        match result {
            Ok(receipt) => {
                if let (Some(ours), Some(theirs)) = (&part.spec.digest, &receipt.digest)
                    && !ours.matches(theirs)
                {
                    ctx.journal
                        .call(move |j| j.part_failed(id, index, 0))
                        .await?;
                    // The file begins again (`outcome::mismatch`), this part with it.
                    ctx.metrics.part_retried(Reason::Checksum);
                    return Err(Stop::Mismatch(format!(
                        "the server stored other bytes for part {index} ({theirs}) than were sent ({ours})"
                    )));
                }
                debug!(part = index, "part acknowledged");
                ctx.journal
                    .call(move |j| j.part_uploaded(id, index, &receipt))
                    .await?;
                self.at.answered.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let unsent = part.spec.length.saturating_sub(sent);
                ctx.journal
                    .call(move |j| j.part_failed(id, index, unsent))
                    .await?;
                // A part streamed from the file fails when the file changes under
                // it: that is a new content to queue, not a network error to retry.
                if matches!(part.source, Source::File(_))
                    && let Some(why) = self.at.local_change().await
                {
                    return Err(Stop::Changed(why));
                }
                // Counted whoever sends it again: this pump after a backoff, or a
                // later attempt of the file (the part stays `pending`).
                if let Some(reason) = Reason::of(&e) {
                    ctx.metrics.part_retried(reason);
                }
                let conflict = matches!(
                    e,
                    BackendError::Conflict {
                        op: Op::PutPart,
                        ..
                    }
                );
                if !(conflict || matches!(e, BackendError::Retry { .. })) {
                    return Err(e.into());
                }
                part.failures += 1;
                if part.failures >= PART_TRIES {
                    // The file backs off as a whole; a conflict still never counts
                    // as a mismatch.
                    return Err(Stop::Backend(BackendError::Retry {
                        op: Op::PutPart,
                        after: e.retry_after(),
                        cause: format!(
                            "part {index} failed {} times in a row; last: {e}",
                            part.failures
                        ),
                    }));
                }
                let delay = ctx.backoff_delay(part.failures, e.retry_after());
                info!(part = index, failures = part.failures, delay_ms = delay.as_millis() as u64, error = %e, "part will be sent again");
                self.waiting.push(Waiting {
                    at: Instant::now() + delay,
                    part,
                    check_held: conflict,
                });
                Ok(())
            }
        }
    }

    /// Sends again the waiting parts whose time has come.
    async fn send_due(&mut self) -> Result<(), Stop> {
        let now = Instant::now();
        let (due, later): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.at <= now);
        self.waiting = later;
        // One listing for every contested part due now.
        let held = if due.iter().any(|w| w.check_held) {
            self.held_parts().await?
        } else {
            Vec::new()
        };
        for w in due {
            if w.check_held && self.taken_as_held(&w.part, &held).await? {
                continue;
            }
            let (id, index) = (self.at.row.id, w.part.spec.index);
            self.at
                .ctx
                .journal
                .call(move |j| j.part_start(id, index, None))
                .await?;
            self.spawn(w.part);
        }
        // A contested part taken as held leaves the wire free for the next one.
        self.dispatch().await
    }

    /// What the service says it holds; empty where it cannot say.
    async fn held_parts(&self) -> Result<Vec<Receipt>, Stop> {
        let ctx = self.at.ctx;
        if !ctx.caps.lists_held_parts {
            return Ok(Vec::new());
        }
        Ok(ctx
            .backend
            .held_parts(self.session, self.file)
            .await?
            .unwrap_or_default())
    }

    /// After a conflict: if the service holds the part now, with our digest, it is
    /// recorded as uploaded (`true`). Another digest is a real mismatch.
    async fn taken_as_held(&self, part: &Part, held: &[Receipt]) -> Result<bool, Stop> {
        let ctx = self.at.ctx;
        let spec = &part.spec;
        let Some(receipt) = held
            .iter()
            .find(|r| r.index == spec.index && r.offset == spec.offset && r.length == spec.length)
            .cloned()
        else {
            return Ok(false);
        };
        if let (Some(ours), Some(theirs)) = (&spec.digest, &receipt.digest)
            && !ours.matches(theirs)
        {
            return Err(Stop::Mismatch(format!(
                "the server holds other bytes for part {} ({theirs}) than the file has ({ours})",
                spec.index
            )));
        }
        let (id, index) = (self.at.row.id, spec.index);
        ctx.journal
            .call(move |j| j.part_held(id, index, &receipt))
            .await?;
        info!(part = index, "the contested part is held by the service");
        self.at.answered.store(true, Ordering::Relaxed);
        Ok(true)
    }
}
