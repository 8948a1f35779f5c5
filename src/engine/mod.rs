//! The engine: claims files from the journal and runs up to `workers` of them at once.
//!
//! Scheduling is pull-based: a worker slot frees up, the engine claims the next due
//! row. When nothing is due it sleeps until the earliest `retrying` row is due, the
//! watcher rings `wake`, or a short poll interval passes (so that `dropship retry`,
//! run from another process, is picked up).

mod backoff;
mod plan;
mod post;
mod reader;
mod upload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use backoff::Backoff;

use crate::backend::{Backend, Capabilities};
use crate::config::{After, Config};
use crate::journal::{JournalError, JournalHandle, now_ms};
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
}

impl EngineSettings {
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
        }
    }
}

/// What every file's worker shares.
struct Ctx {
    journal: JournalHandle,
    backend: Arc<dyn Backend>,
    caps: Capabilities,
    settings: EngineSettings,
    /// One budget for all uploads (`bandwidth_limit`).
    limiter: Option<Arc<RateLimiter>>,
    rng: Mutex<fastrand::Rng>,
}

pub struct Engine {
    ctx: Arc<Ctx>,
    wake: Arc<Notify>,
}

impl Engine {
    pub fn new(
        settings: EngineSettings,
        journal: JournalHandle,
        backend: Arc<dyn Backend>,
        wake: Arc<Notify>,
    ) -> Engine {
        let caps = backend.capabilities();
        let limiter = settings
            .bandwidth_limit
            .map(|bps| Arc::new(RateLimiter::new(bps)));
        Engine {
            ctx: Arc::new(Ctx {
                journal,
                backend,
                caps,
                settings,
                limiter,
                rng: Mutex::new(fastrand::Rng::new()),
            }),
            wake,
        }
    }

    /// Runs until `cancel`, then lets the workers stop at their next step.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), JournalError> {
        let resumed = self.ctx.journal.call(|j| j.recover()).await?;
        if resumed > 0 {
            info!(files = resumed, "resuming unfinished uploads");
        }
        let slots = Arc::new(Semaphore::new(self.ctx.settings.workers));
        let workers = TaskTracker::new();
        // In the background: with the network down, aborts wait for their timeouts.
        workers.spawn(abort_orphans(self.ctx.clone(), cancel.child_token()));
        // Paths a worker holds: another row of the same path waits for it, so that
        // an older content's upload can never land after a newer one's.
        let busy: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        loop {
            let permit = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break, // never closed; a closed pool would mean shutdown
                },
            };
            let held = busy.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match self
                .ctx
                .journal
                .call(move |j| j.claim_next(now_ms(), &held))
                .await
            {
                Ok(Some(row)) => {
                    busy.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(row.path.clone());
                    let ctx = self.ctx.clone();
                    let cancel = cancel.child_token();
                    let busy = busy.clone();
                    let wake = self.wake.clone();
                    workers.spawn(async move {
                        let (id, path) = (row.id, row.path.clone());
                        // A panic in the worker must not leave its row held.
                        let _ = tokio::spawn(upload::run_file(ctx.clone(), row, cancel)).await;
                        release(&ctx, id).await;
                        busy.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .retain(|p| *p != path);
                        drop(permit);
                        // A row of the same path may have waited for this one.
                        wake.notify_one();
                    });
                }
                Ok(None) => {
                    drop(permit);
                    self.idle(&cancel).await;
                }
                Err(e) => {
                    drop(permit);
                    error!(error = %e, "cannot claim work from the journal");
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
        let due = self.ctx.journal.call(|j| j.next_due()).await.ok().flatten();
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

/// Makes sure a finished worker left its row at rest. Normally a no-op; after a
/// journal write that failed (full disk, a lock held too long) or a panic, the row
/// goes to `retrying` instead of staying held until the next start.
async fn release(ctx: &Ctx, id: crate::journal::FileId) {
    for delay in [1u64, 5, 30] {
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
            Err(e) => {
                error!(file = id, error = %e, "cannot release the row; trying again");
                tokio::time::sleep(Duration::from_secs(delay)).await;
            }
        }
    }
}

/// Aborts the sessions of failed or superseded rows that a crash left open.
async fn abort_orphans(ctx: Arc<Ctx>, cancel: CancellationToken) {
    let orphans = match ctx.journal.call(|j| j.orphan_sessions()).await {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "cannot list orphaned sessions");
            return;
        }
    };
    for (id, session) in orphans {
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
