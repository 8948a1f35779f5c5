//! The engine: claims files from the journal and runs up to `workers` of them at once.
//!
//! Scheduling is pull-based: a worker slot frees up, the engine claims the next due
//! row. When nothing is due it sleeps until the earliest `retrying` row is due, the
//! watcher rings `wake`, or a short poll interval passes (so that `dropship retry`,
//! run from another process, is picked up). While the service refuses the
//! credentials, the [`gate`] holds claims back (see there).
//!
//! At start, before the first claim: rows a crash left in flight go back to the
//! queue, and the backend sweeps what the journal does not account for (sessions
//! begun but never recorded).
//!
//! Rooms: `attempt` (one file's way), `pump` (its parts in flight), `join` (waiting
//! for a service that assembles the object after completion), `outcome` (what a
//! stop does to the row), `reader` (the read pass), `budget` (memory), `post` (the
//! post-action), `plan` (part sizes), `backoff`.

mod attempt;
mod backoff;
mod budget;
mod buffers;
mod gate;
mod join;
mod outcome;
mod plan;
pub(crate) mod post;
mod pump;
mod reader;
mod spool;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

pub use backoff::Backoff;
pub use budget::Budget;

use self::gate::{Cause, Change, Gate};
use crate::backend::{Backend, BackendError, Capabilities, PartSizeRule};
use crate::config::{After, Config, ContentType, OnExists, VerifyMode};
use crate::journal::{BACKEND_TOPIC, FileId, JournalError, JournalHandle, now_ms};
use crate::metrics::Metrics;
use crate::throttle::RateLimiter;

/// How often the idle engine looks at the journal without being woken.
const POLL: Duration = Duration::from_secs(2);

/// The engine's share of the configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub workers: usize,
    pub parts_in_flight: usize,
    pub part_size: u64,
    pub after: After,
    pub backoff: Backoff,
    pub verify_attempts: u32,
    pub bandwidth_limit: Option<u64>,
    /// The watched folder: files are sent and post-actioned only if reached from it
    /// without crossing a symbolic link.
    pub root: PathBuf,
    pub verify: VerifyMode,
    pub verify_samples: u32,
    pub on_exists: OnExists,
    /// The post-action of each `[[rule]]` that sets one, by its `match`.
    pub rule_after: Vec<(String, After)>,
    /// `upload.content_type`, and each rule's that sets one, by its `match`.
    pub content_type: Option<ContentType>,
    pub rule_content_type: Vec<(String, ContentType)>,
    /// Where compressed copies are written, and how many bytes they may take.
    pub spool: PathBuf,
    pub spool_max: u64,
}

impl EngineSettings {
    /// The post-action of a file queued under `rule`: the rule's while it is in the
    /// config and sets one, else `upload.after`.
    pub fn after_for(&self, rule: Option<&str>) -> After {
        rule.and_then(|m| self.rule_after.iter().find(|(r, _)| r == m))
            .map_or_else(|| self.after.clone(), |(_, a)| a.clone())
    }

    /// The MIME type to store with a file queued under `rule` as `key`: the rule's
    /// while it is in the config and sets one, else `upload.content_type`; `None`
    /// leaves it to the backend.
    pub fn content_type_for(&self, rule: Option<&str>, key: &str) -> Option<String> {
        rule.and_then(|m| self.rule_content_type.iter().find(|(r, _)| r == m))
            .map(|(_, t)| t)
            .or(self.content_type.as_ref())
            .map(|t| t.for_key(key))
    }

    pub fn from_config(cfg: &Config) -> EngineSettings {
        let u = &cfg.upload;
        EngineSettings {
            workers: u.workers,
            parts_in_flight: u.parts_in_flight,
            part_size: u.part_size,
            after: u.after.clone(),
            backoff: Backoff {
                base: u.retry_base,
                max: u.retry_max,
            },
            verify_attempts: u.verify_attempts,
            bandwidth_limit: u.bandwidth_limit,
            root: cfg.watch.path.clone(),
            verify: u.verify,
            verify_samples: u.verify_samples,
            on_exists: u.on_exists,
            spool: cfg.upload.spool.clone(),
            spool_max: cfg.upload.spool_max,
            rule_after: cfg
                .rules
                .iter()
                .filter_map(|r| Some((r.pattern.as_str().to_string(), r.after.clone()?)))
                .collect(),
            content_type: u.content_type.clone(),
            rule_content_type: cfg
                .rules
                .iter()
                .filter_map(|r| Some((r.pattern.as_str().to_string(), r.content_type.clone()?)))
                .collect(),
        }
    }

    /// Bytes of part buffers all workers together may hold (beside the small
    /// pool, see `budget.rs`): one file's parts in flight, so that two big files
    /// at once share them rather than double the daemon's memory. Parts are
    /// `part_size` within the backend's bounds (Insights Hub's and Exosite's are at
    /// least 5 MiB): a budget below one part would stream every part from the file,
    /// reading it twice.
    pub fn memory_budget(&self, caps: &Capabilities) -> u64 {
        let part = match caps.part_size {
            PartSizeRule::Chosen { min, max } => self.part_size.clamp(min, max.max(min)),
            PartSizeRule::SetByServer => self.part_size,
        };
        // Two at least: a backend that sends parts one at a time still reads the
        // next while one is sent (`pump.rs`).
        (self.parts_in_flight.max(2) as u64).saturating_mul(part)
    }
}

/// What every file's worker shares.
struct Ctx {
    journal: JournalHandle,
    backend: Arc<dyn Backend>,
    caps: Capabilities,
    /// What verification checks, resolved once from `upload.verify` and `caps`.
    check: crate::verify::Check,
    settings: EngineSettings,
    /// One budget for all uploads (`bandwidth_limit`; rate 0 while unlimited, so
    /// that a reload can set one).
    limiter: Arc<RateLimiter>,
    /// One pool for every part buffer of every worker.
    budget: Arc<Budget>,
    gate: Gate,
    /// Serializes the writes of the gate's state to the journal.
    notice_writer: tokio::sync::Mutex<()>,
    rng: Mutex<fastrand::Rng>,
    /// The counters of `/metrics`: bytes sent and re-sent, parts retried, verify
    /// failures. Fed where each happens (`pump`, `attempt`, `outcome`).
    metrics: Arc<Metrics>,
}

impl Ctx {
    /// The limiter a new request's body is metered by, if there is a limit.
    fn limiter(&self) -> Option<Arc<RateLimiter>> {
        (self.limiter.rate() > 0).then(|| self.limiter.clone())
    }

    /// The backoff before the `failures`-th try in a row, at least what the server
    /// asked for.
    fn backoff_delay(&self, failures: u32, server_asked: Option<Duration>) -> Duration {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        self.settings
            .backoff
            .delay(failures, server_asked, &mut rng)
    }
}

pub struct Engine {
    ctx: Arc<Ctx>,
    wake: Arc<Notify>,
    /// The only rows this engine may claim, if restricted (see
    /// [`Engine::claiming_only`]); `None` for the daemon's, which claims any.
    only: Option<Arc<[FileId]>>,
    /// One permit per worker (`upload.workers`, changed live by [`EngineControl`]).
    slots: Arc<Semaphore>,
    workers: Arc<std::sync::atomic::AtomicUsize>,
    /// Told once the rows a crash left in flight are queued again (READY waits).
    resumed: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What a reload (SIGHUP) changes in a running engine.
#[derive(Clone)]
pub struct EngineControl {
    limiter: Arc<RateLimiter>,
    slots: Arc<Semaphore>,
    workers: Arc<std::sync::atomic::AtomicUsize>,
}

impl EngineControl {
    /// From the next slice of every body on, bodies already in flight included
    /// (a body that began unlimited stays so until its request ends).
    pub fn set_bandwidth_limit(&self, bytes_per_sec: Option<u64>) {
        self.limiter.set_rate(bytes_per_sec.unwrap_or(0));
    }

    /// More workers start at once; fewer take effect as running uploads end (none
    /// is interrupted). The memory budget does not depend on them: it is shared
    /// by the workers there are.
    pub fn set_workers(&self, n: usize) {
        use std::sync::atomic::Ordering;
        let n = n.max(1);
        let before = self.workers.swap(n, Ordering::Relaxed);
        if n > before {
            self.slots.add_permits(n - before);
        } else if n < before {
            let slots = self.slots.clone();
            let fewer = (before - n) as u32;
            // Taken as uploads end, then dropped for good.
            tokio::spawn(async move {
                if let Ok(p) = slots.acquire_many_owned(fewer).await {
                    p.forget();
                }
            });
        }
    }
}

impl Engine {
    pub fn new(
        settings: EngineSettings,
        journal: JournalHandle,
        backend: Arc<dyn Backend>,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Engine {
        let caps = backend.capabilities();
        let check = crate::verify::Check::resolve(settings.verify, settings.verify_samples, &caps);
        if let Some(why) = plan::deadline_warning(&caps, &settings) {
            warn!("{why}");
        }
        let limiter = Arc::new(RateLimiter::new(settings.bandwidth_limit.unwrap_or(0)));
        let slots = Arc::new(Semaphore::new(settings.workers));
        let budget = Arc::new(
            Budget::new(settings.memory_budget(&caps))
                .keeping(settings.parts_in_flight + 1)
                .with_small_pool(),
        );
        let settings_workers = settings.workers;
        Engine {
            ctx: Arc::new(Ctx {
                journal,
                backend,
                caps,
                check,
                settings,
                limiter,
                budget,
                gate: Gate::default(),
                notice_writer: tokio::sync::Mutex::new(()),
                rng: Mutex::new(fastrand::Rng::new()),
                metrics,
            }),
            wake,
            only: None,
            slots,
            workers: Arc::new(std::sync::atomic::AtomicUsize::new(settings_workers)),
            resumed: None,
        }
    }

    /// `tx` is told once the rows a crash left in flight are queued again.
    pub fn on_resumed(mut self, tx: tokio::sync::oneshot::Sender<()>) -> Engine {
        self.resumed = Some(tx);
        self
    }

    /// The knobs a reload may turn while the engine runs.
    pub fn control(&self) -> EngineControl {
        EngineControl {
            limiter: self.ctx.limiter.clone(),
            slots: self.slots.clone(),
            workers: self.workers.clone(),
        }
    }

    /// Restricts claims to the rows `ids`: `dropship push`, running the engine
    /// without a daemon, sends the files it was given and leaves every other queued
    /// row of the journal to the daemon. (The start-up work is not restricted: rows
    /// a crash left in flight go back to the queue, sessions nobody recorded are
    /// swept and orphaned ones aborted, as the daemon would; none of it sends a file.)
    pub fn claiming_only(mut self, ids: Vec<FileId>) -> Engine {
        self.only = Some(ids.into());
        self
    }

    /// Runs until `cancel`, then lets the workers stop at their next step.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), JournalError> {
        // Nothing is scheduled further ahead than the backoff's cap or a join's
        // poll; a minute of slack for a clock that NTP slews.
        let horizon =
            self.ctx.settings.backoff.max.max(join::MAX_POLL_DELAY) + Duration::from_secs(60);
        self.ctx
            .journal
            .call(move |j| {
                j.set_horizon(horizon);
                Ok(())
            })
            .await?;
        let resumed = self.ctx.journal.call(|j| j.recover()).await?;
        if resumed > 0 {
            info!(files = resumed, "resuming unfinished uploads");
        }
        // Compressed copies the journal no longer names (delivered, or written by a
        // daemon that died before recording them) go; nothing else is in flight yet.
        match self.ctx.journal.call(|j| j.spool_paths()).await {
            Ok(keep) => {
                let spool = self.ctx.settings.spool.clone();
                let swept =
                    tokio::task::spawn_blocking(move || crate::compress::sweep(&spool, &keep))
                        .await;
                match swept {
                    Ok(Ok(n)) if n > 0 => {
                        info!(files = n, "removed compressed copies no file needs")
                    }
                    Ok(Err(e)) => warn!(error = %e, "cannot sweep the spool folder"),
                    _ => {}
                }
            }
            Err(e) => warn!(error = %e, "cannot list the spool files to keep"),
        }
        if let Some(tx) = self.resumed.take() {
            let _ = tx.send(());
        }
        // Whatever the last daemon reported of the service is re-learnt by this one,
        // except an unreachable service's backoff: resumed, so that a restart (a
        // power cut, a watchdog) does not try every file at once.
        match self.ctx.journal.call(|j| j.backend_plan()).await? {
            Some(plan) if plan.state == Cause::Unreachable.state() => {
                // Never longer than the backoff would wait now: a clock stepped back,
                // or a lower `retry_max` since, must not hold the files longer.
                let wait =
                    Duration::from_millis(plan.retry_at.saturating_sub(now_ms()).max(0) as u64)
                        .min(self.ctx.settings.backoff.ceiling(plan.tries));
                info!(
                    tries = plan.tries,
                    wait_ms = wait.as_millis() as u64,
                    "the service was unreachable; its next try is kept"
                );
                self.ctx.gate.resume(gate::Plan {
                    cause: Cause::Unreachable,
                    tries: plan.tries,
                    wait,
                });
            }
            _ => {
                self.ctx
                    .journal
                    .call(|j| j.clear_notice(BACKEND_TOPIC).map(|_| ()))
                    .await?;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            () = sweep(&self.ctx) => {}
        }
        let slots = self.slots.clone();
        let workers = TaskTracker::new();
        // In the background: with the network down, aborts wait for their timeouts.
        workers.spawn(abort_orphans(self.ctx.clone(), cancel.child_token()));
        // Paths a worker holds: another row of the same path waits for it, so that
        // an older content's upload can never land after a newer one's.
        let busy: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let mut claims_failing = false;
        loop {
            if !self.ctx.gate.wait_turn(&*self.ctx.backend, &cancel).await {
                break;
            }
            let permit = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break, // never closed; a closed pool would mean shutdown
                },
            };
            // The gate may have closed while this waited for a slot.
            if self.ctx.gate.is_closed()
                && !self.ctx.gate.wait_turn(&*self.ctx.backend, &cancel).await
            {
                break;
            }
            let held = busy.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let only = self.only.clone();
            match self
                .ctx
                .journal
                .call(move |j| j.claim_next_among(now_ms(), &held, only.as_deref()))
                .await
            {
                Ok(Some(row)) => {
                    if std::mem::take(&mut claims_failing) {
                        info!("the journal can be written again; work resumes");
                    }
                    busy.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(row.path.clone());
                    let ticket = self.ctx.gate.claimed();
                    let ctx = self.ctx.clone();
                    let cancel = cancel.child_token();
                    let busy = busy.clone();
                    let wake = self.wake.clone();
                    workers.spawn(async move {
                        let (id, path) = (row.id, row.path.clone());
                        // A panic in the worker must not leave its row held.
                        let busy_guard = crate::liveness::busy();
                        let stopping = cancel.clone();
                        let verdict =
                            tokio::spawn(attempt::run_file(ctx.clone(), row, cancel, ticket))
                                .await
                                .unwrap_or(gate::Verdict::Unknown);
                        drop(busy_guard);
                        // The gate first: once the path or the slot is free, the
                        // claim loop must already see the gate this attempt closed
                        // (else it claims the row again as if the gate were open,
                        // and that attempt cannot open it when it succeeds).
                        let change = ctx.gate.ended(ticket, &verdict, &ctx.settings.backoff);
                        // Delivered: `done` was recorded, so there is nothing to release.
                        if verdict != gate::Verdict::Delivered {
                            release(&ctx, id, &stopping).await;
                        }
                        busy.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .retain(|p| *p != path);
                        drop(permit);
                        report(&ctx, change).await;
                        // A row of the same path may have waited for this one.
                        wake.notify_one();
                    });
                }
                Ok(None) => {
                    drop(permit);
                    self.idle(&cancel).await;
                }
                // Damage does not heal: the daemon stops (exit 3) rather than go on
                // without a record it can trust.
                Err(e) if e.is_damage() => {
                    error!(error = %e, "the journal is damaged; stopping");
                    return Err(e);
                }
                Err(e) => {
                    drop(permit);
                    // A full or read-only disk lasts: said once, until a claim works.
                    if std::mem::replace(&mut claims_failing, true) {
                        debug!(error = %e, "cannot claim work from the journal yet");
                    } else {
                        error!(error = %e, "cannot claim work from the journal; no file is taken until it can be written");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        }
        workers.close();
        workers.wait().await;
        Ok(())
    }

    /// Sleeps until there may be work.
    async fn idle(&self, cancel: &CancellationToken) {
        // Nothing to claim: part buffers kept for the next part go back to the
        // system once they have been idle a while.
        self.ctx.budget.trim();
        let only = self.only.clone();
        let due = self
            .ctx
            .journal
            .call(move |j| j.next_due_among(only.as_deref()))
            .await
            .ok()
            .flatten();
        let wait = match due {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64).min(POLL),
            None => POLL,
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Logs and records a change of the gate: one line when uploads pause, one when
/// they resume, the plan of the next try after each failed one. Workers report
/// concurrently, so what is written is the gate's state at writing time, one writer
/// at a time: the notice can never end up saying the opposite of the gate.
async fn report(ctx: &Ctx, change: Change) {
    let try_failed = change == Change::TryFailed;
    let reason = match change {
        Change::None => return,
        Change::Closed(Cause::Credentials, reason) => {
            error!(%reason, "the service refuses the credentials; uploads are paused (nothing is failed) and resume once they are accepted");
            Some((Cause::Credentials, reason))
        }
        Change::Closed(Cause::Unreachable, reason) => {
            warn!(%reason, "the service cannot be reached; uploads are paused (nothing is failed), one file at a time tries again with backoff");
            Some((Cause::Unreachable, reason))
        }
        Change::TryFailed => None,
        Change::Opened => {
            info!("the service accepts uploads again; uploads resume");
            None
        }
    };
    let _one_writer = ctx.notice_writer.lock().await;
    let plan = ctx.gate.plan();
    if let (true, Some(p)) = (try_failed, &plan) {
        debug!(
            cause = p.cause.state(),
            tries = p.tries,
            wait_ms = p.wait.as_millis() as u64,
            "still paused; next try planned"
        );
    }
    let recorded = ctx
        .journal
        .call(move |j| {
            let Some(p) = plan else {
                return j.clear_notice(BACKEND_TOPIC).map(|_| ());
            };
            // A failed try changes only the plan: the reason that closed it stands;
            // so does one of another cause that closed it again since.
            if let Some((cause, reason)) = reason.filter(|(c, _)| *c == p.cause) {
                j.set_notice(BACKEND_TOPIC, cause.state(), &reason)?;
            }
            j.set_backend_plan(now_ms() + p.wait.as_millis() as i64, p.tries)
        })
        .await;
    if let Err(e) = recorded {
        warn!(error = %e, "cannot record the backend's state for status");
    }
}

/// Makes sure a finished worker left its row at rest. Normally a no-op; after a
/// journal write that failed (full disk, a lock held too long) or a panic, the row
/// goes to `retrying` instead of staying held until the next start.
///
/// A journal that cannot be written is asked again until it can (1 s, 5 s, then
/// every 30 s; said once): given up after three tries, as it was, a row outlived a
/// full disk as `uploading`, held by nobody, until the daemon restarted. Shutdown
/// ends the wait: the next start puts rows left in flight back in the queue.
async fn release(ctx: &Ctx, id: crate::journal::FileId, stopping: &CancellationToken) {
    let mut delay = 1u64;
    let mut said = false;
    loop {
        let at = now_ms() + ctx.settings.backoff.base.as_millis() as i64;
        match ctx.journal.call(move |j| j.release(id, at)).await {
            Ok(true) => {
                warn!(
                    file = id,
                    "the attempt ended without recording its outcome; retrying later"
                );
                return;
            }
            Ok(false) => return,
            // Damage does not heal: the slot goes back, and the next claim meets the
            // damage and stops the daemon (exit 3).
            Err(e) if e.is_damage() => {
                error!(file = id, error = %e, "cannot release the row: the journal is damaged");
                return;
            }
            Err(e) if !std::mem::replace(&mut said, true) => {
                error!(file = id, error = %e, "cannot release the row; trying again until the journal can be written");
            }
            Err(e) => debug!(file = id, error = %e, "cannot release the row yet"),
        }
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(delay)) => {}
        }
        delay = if delay < 5 { 5 } else { 30 };
    }
}

/// How many times the start-up sweep is tried when the service fails for the moment
/// (pauses of 1 and 2 s between).
const SWEEP_TRIES: u32 = 3;

/// Before the first claim: the backend discards sessions and staging the journal
/// does not account for (a daemon that died between `begin` and recording it).
/// Best effort: a failure is logged and the intents are kept for the next start.
async fn sweep(ctx: &Ctx) {
    let found = ctx
        .journal
        .call(|j| Ok((j.known_sessions()?, j.unrecorded_begins()?)))
        .await;
    let (known, unrecorded) = match found {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "cannot list the journal's sessions; nothing swept");
            return;
        }
    };
    // A refusal of the moment (a 503, a reset) is asked again a few times: the
    // sweep runs only here, before any claim (later, a live row's begin in flight
    // would look unrecorded), so a failed one leaves its orphans to the next start.
    let mut tries = 0;
    let swept = loop {
        tries += 1;
        match ctx.backend.sweep(&known, &unrecorded).await {
            Err(e @ (BackendError::Retry { .. } | BackendError::Unreachable { .. }))
                if tries < SWEEP_TRIES =>
            {
                info!(error = %e, tries, "the sweep will be tried again");
                tokio::time::sleep(Duration::from_millis(500 << tries)).await;
            }
            r => break r,
        }
    };
    match swept {
        Ok(n) => {
            if n > 0 {
                info!(discarded = n, "discarded sessions nobody recorded");
            }
            if !unrecorded.is_empty()
                && let Err(e) = ctx.journal.call(|j| j.clear_begin_intents()).await
            {
                warn!(error = %e, "cannot clear the swept intents");
            }
        }
        Err(e) => warn!(error = %e, "could not sweep unrecorded sessions"),
    }
}

/// Aborts the sessions of failed or superseded rows that a crash left open, and
/// settles the joins they left (where the service joins on its own).
async fn abort_orphans(ctx: Arc<Ctx>, cancel: CancellationToken) {
    if ctx.caps.asynchronous_join {
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = join::settle_left_joins(&ctx) => {}
        }
    }
    let orphans = match ctx.journal.call(|j| j.orphan_sessions()).await {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "cannot list orphaned sessions");
            return;
        }
    };
    for (id, session) in orphans {
        // The same remote upload as a live row's (a session id that is a path):
        // it is that row's now, not an orphan to abort.
        let sid = session.id.clone();
        match ctx.journal.call(move |j| j.session_in_use(&sid)).await {
            Ok(false) => {}
            Ok(true) => {
                let _ = ctx.journal.call(move |j| j.forget_session(id)).await;
                continue;
            }
            Err(e) => {
                warn!(error = %e, "cannot check an orphaned session");
                continue;
            }
        }
        let aborted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = ctx.backend.abort(&session) => r,
        };
        match aborted {
            Ok(()) => {
                let _ = ctx.journal.call(move |j| j.forget_session(id)).await;
            }
            Err(e) => warn!(file = id, error = %e, "could not abort an orphaned session"),
        }
    }
}
