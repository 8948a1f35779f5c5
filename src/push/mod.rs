//! `dropship push FILE...`: uploads the given files once, through the same journal
//! and engine as the daemon, so a push gets the same guarantees (parts resumed, the
//! stored object verified) and leaves the same record (`status` shows it).
//!
//! How it goes:
//! 1. Each argument is checked and given a remote key (`targets.rs`); one that cannot
//!    be pushed (missing, a folder, unreadable) is reported, and the others go on.
//! 2. The files are recorded in the journal as rows marked `pushed`
//!    (`migrations/0007_pushed_files.sql`): the engine confines such a row to its own
//!    folder instead of the outbox, and never deletes or moves the file, whatever
//!    `upload.after` says. A file outside the outbox is never seen by the watcher,
//!    so nothing queues it again. A content the journal holds as still queued or
//!    in flight is waited for rather than queued twice: if the watcher recorded a
//!    file of the outbox first, push follows the watcher's row, to which
//!    `upload.after` applies as to any file of the outbox.
//! 3. Who uploads them:
//!    - no daemon holds the journal's lock: push takes the lock itself (so no daemon
//!      can start meanwhile) and runs the engine in-process, restricted to its own
//!      rows ([`Engine::claiming_only`]): other queued files of the outbox are left
//!      to the daemon;
//!    - a daemon runs: its engine picks the rows up (it looks at the journal every
//!      2 s), and push only follows them. Should the daemon stop meanwhile, push
//!      takes the lock and finishes the work itself.
//! 4. Push follows its rows every 200 ms until each is final (`done`, `failed`,
//!    `superseded`). Temporary failures are retried with the daemon's backoff, as
//!    long as it takes.
//!
//! Exit code 0 only when every file ended `done`; 1 when any did not (each reason is
//! printed); 130 on Ctrl-C or SIGTERM, after which the rows stay in the journal:
//! the daemon, or the next push of the same files, resumes them where they stopped.

mod progress;
mod targets;

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::progress::{Ending, Progress};
use self::targets::Target;
use crate::backend::{BackendError, BuildOptions};
use crate::config::Config;
use crate::daemon::{self, DaemonError};
use crate::engine::{Engine, EngineSettings};
use crate::journal::{Enqueued, FileId, FileState, JournalError, JournalHandle, NewFile};

/// How often push looks at its rows (and whether the daemon still runs).
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// The arguments of `dropship push` (besides `--config`).
#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// Files to upload. Each is stored under its name, or under its path below
    /// the watched folder when it lies inside it.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The remote key of the one FILE given (names joined by '/').
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("--key names one remote object: give exactly one FILE with it")]
    KeyNeedsOneFile,
    #[error(transparent)]
    Lock(DaemonError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    #[error("starting: {0}")]
    Start(std::io::Error),
}

impl PushError {
    /// The exit code: 2 for a usage error, 3 for a damaged journal (as `run`), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            PushError::KeyNeedsOneFile => 2,
            PushError::Journal(e) if e.is_damage() => 3,
            _ => 1,
        }
    }
}

/// How a push ended, file by file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Arguments given (after removing repeats of one file).
    pub files: usize,
    pub delivered: usize,
    /// Failed, superseded, or refused before being recorded.
    pub failed: usize,
    /// Still on their way when push was interrupted.
    pub unfinished: usize,
    pub interrupted: bool,
}

impl PushReport {
    /// 0 when every file was delivered and verified, 130 when interrupted, else 1.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.delivered == self.files {
            0
        } else {
            1
        }
    }

    /// One sentence for stderr when not everything was delivered.
    pub fn summary(&self) -> String {
        let mut s = format!("{} of {} file(s) delivered", self.delivered, self.files);
        if self.failed > 0 {
            s.push_str(&format!(", {} failed", self.failed));
        }
        if self.unfinished > 0 {
            s.push_str(&format!(
                ", {} unfinished (kept in the journal: `dropship run` or the next push resumes them)",
                self.unfinished
            ));
        }
        s
    }
}

/// Runs `dropship push` to its end on a runtime of its own; the first SIGINT or
/// SIGTERM interrupts it (a second one exits at once, see
/// [`daemon::termination_signal`]).
pub fn run_blocking(cfg: Config, args: PushArgs) -> Result<PushReport, PushError> {
    let stop = daemon::termination_signal().map_err(PushError::Start)?;
    // As the daemon's: two threads, and a bounded pool for SQLite, hashing and file I/O.
    let rt = daemon::runtime(&cfg, "dropship-push").map_err(PushError::Start)?;
    let report = rt.block_on(run(cfg, args, std::io::stdout().is_terminal(), stop));
    // A part write cut off by an interruption must not hold up the exit.
    rt.shutdown_background();
    report
}

/// Pushes `args.files` until each is final or `stop` resolves. `terminal` chooses
/// progress bars over plain lines.
pub async fn run(
    cfg: Config,
    args: PushArgs,
    terminal: bool,
    stop: impl Future<Output = ()>,
) -> Result<PushReport, PushError> {
    if args.key.is_some() && args.files.len() != 1 {
        return Err(PushError::KeyNeedsOneFile);
    }
    let (targets, refused) = targets::resolve(&cfg, &args.files, args.key.as_deref());
    let mut display = Progress::new(terminal);
    for r in &refused {
        display.refused(&r.given, &r.why);
    }
    let mut report = PushReport {
        files: targets.len() + refused.len(),
        failed: refused.len(),
        ..PushReport::default()
    };
    if targets.is_empty() {
        return Ok(report);
    }
    // Before recording anything: with the lock held, no daemon can start and take
    // the rows while this process also works on them.
    let mut lock = try_lock(&cfg)?;
    let journal = JournalHandle::open(&cfg.journal.path).await?;
    let ids = record(&journal, &targets).await?;
    display.started(&targets);
    let mut follow = Follow {
        journal: journal.clone(),
        ids: ids.clone(),
        started: Instant::now(),
        endings: vec![None; ids.len()],
    };
    tokio::pin!(stop);
    let interrupted = loop {
        if lock.is_some() {
            break run_engine(&cfg, &journal, &mut follow, &targets, &display, &mut stop).await?;
        }
        display.note("a daemon is running: it uploads these files; following them");
        match follow
            .until_final(&targets, &display, &mut stop, Some(&cfg))
            .await?
        {
            Followed::AllFinal => break false,
            Followed::Stopped => break true,
            Followed::DaemonGone => {
                lock = try_lock(&cfg)?;
                if lock.is_some() {
                    display.note("the daemon stopped; push uploads the rest itself");
                }
            }
        }
    };
    // Whether a daemon goes on with what is left (it held the lock to the end).
    let daemon_goes_on = lock.is_none();
    drop(lock);
    for ending in &follow.endings {
        match ending {
            Some(Ending::Done { .. }) => report.delivered += 1,
            Some(Ending::Failed(_)) => report.failed += 1,
            None => report.unfinished += 1,
        }
    }
    report.interrupted = interrupted;
    if interrupted {
        display.abandon();
        if report.unfinished > 0 && daemon_goes_on {
            display.note(&format!(
                "interrupted: the running daemon goes on with the {} unfinished file(s)",
                report.unfinished
            ));
        } else if report.unfinished > 0 {
            display.note(&format!(
                "interrupted: {} unfinished file(s) stay in the journal; the daemon (`dropship run`) or the next push of them resumes where they stopped",
                report.unfinished
            ));
        }
    }
    Ok(report)
}

/// The journal's lock if no daemon holds it, `None` if one does.
fn try_lock(cfg: &Config) -> Result<Option<std::fs::File>, PushError> {
    match daemon::take_lock(cfg) {
        Ok(f) => Ok(Some(f)),
        Err(DaemonError::AlreadyRunning { .. }) => Ok(None),
        Err(e) => Err(PushError::Lock(e)),
    }
}

/// Records the targets as pushed rows; returns their ids, in order.
async fn record(journal: &JournalHandle, targets: &[Target]) -> Result<Vec<FileId>, PushError> {
    let files: Vec<NewFile> = targets
        .iter()
        .map(|t| NewFile {
            path: t.path.clone(),
            key: Ok(t.key.clone()),
            size: t.identity.size,
            mtime_ns: t.identity.mtime_ns,
            inode: t.identity.inode,
            rule: t.rule.clone(),
            priority: t.priority,
            compress: t.compress.to_journal(),
        })
        .collect();
    // Synced: a pushed file is outside the outbox, so no scan would find it again
    // if a power cut undid its row, and push has promised the daemon resumes it.
    let ids = journal
        .call(move |j| {
            let ids = files
                .iter()
                .map(|f| {
                    j.enqueue_pushed(f).map(|e| match e {
                        Enqueued::Added(id) | Enqueued::Unchanged(id) => id,
                        Enqueued::Replaced { new, .. } => new,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            j.sync()?;
            Ok(ids)
        })
        .await?;
    Ok(ids)
}

/// Runs the engine in this process, claiming only the pushed rows, until they are
/// final or `stop`; returns whether it was stopped. On `stop` the engine hands the
/// rows it holds back to the queue (`upload.shutdown_timeout` at most, as the
/// daemon), with their sessions and acknowledged parts.
async fn run_engine(
    cfg: &Config,
    journal: &JournalHandle,
    follow: &mut Follow,
    targets: &[Target],
    display: &Progress,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<bool, PushError> {
    let backend = cfg.backend.build(BuildOptions {
        timeouts: cfg.upload.timeouts,
        part_size: cfg.upload.part_size,
    })?;
    let engine = Engine::new(
        EngineSettings::from_config(cfg),
        journal.clone(),
        backend.clone(),
        Arc::new(Notify::new()),
        // Counted but not served: push runs no metrics server.
        Arc::new(crate::metrics::Metrics::new()),
    )
    .claiming_only(follow.ids.clone());
    let cancel = CancellationToken::new();
    let mut task = tokio::spawn(engine.run(cancel.child_token()));
    let outcome = tokio::select! {
        f = follow.until_final(targets, display, stop, None) => f.map(|f| f == Followed::Stopped),
        r = &mut task => Err(match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => JournalError::Task("the engine stopped by itself".into()),
            Err(e) => JournalError::Task(e.to_string()),
        }),
    };
    cancel.cancel();
    if !task.is_finished()
        && tokio::time::timeout(cfg.daemon.shutdown_timeout, &mut task)
            .await
            .is_err()
    {
        display.note("uploads still busy at the deadline; the journal is consistent, exiting");
    }
    // What the backend holds open at the service (a login token); bounded, as the
    // daemon's.
    let _ = tokio::time::timeout(Duration::from_secs(5), backend.close()).await;
    let stopped = outcome?;
    if stopped {
        // The engine's last word on each row (handed back to the queue, or final).
        follow.look(targets, display).await?;
    }
    Ok(stopped)
}

/// Follows the pushed rows in the journal.
struct Follow {
    journal: JournalHandle,
    /// The rows, in the order of the targets.
    ids: Vec<FileId>,
    started: Instant,
    /// How each target ended, once it has.
    endings: Vec<Option<Ending>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Followed {
    AllFinal,
    Stopped,
    /// The daemon that was uploading the rows no longer runs.
    DaemonGone,
}

impl Follow {
    /// Every [`FOLLOW_EVERY`] until every row is final, `stop` resolves, or (when
    /// following a daemon, `daemon` given) the daemon stops.
    async fn until_final(
        &mut self,
        targets: &[Target],
        display: &Progress,
        stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        daemon: Option<&Config>,
    ) -> Result<Followed, JournalError> {
        loop {
            if self.look(targets, display).await? {
                return Ok(Followed::AllFinal);
            }
            if daemon.is_some_and(|cfg| !daemon::is_running(cfg)) {
                // Looked at once more: the daemon may have finished them on its way out.
                return Ok(if self.look(targets, display).await? {
                    Followed::AllFinal
                } else {
                    Followed::DaemonGone
                });
            }
            tokio::select! {
                () = stop.as_mut() => return Ok(Followed::Stopped),
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        }
    }

    /// Reads the rows once, shows them, and records the endings; returns whether
    /// every row is final.
    async fn look(&mut self, targets: &[Target], display: &Progress) -> Result<bool, JournalError> {
        let ids = self.ids.clone();
        let rows = self.journal.call(move |j| j.pushed_rows(&ids)).await?;
        for (i, id) in self.ids.iter().enumerate() {
            if self.endings[i].is_some() {
                continue;
            }
            let ending = match rows.iter().find(|r| r.id == *id) {
                // Only a person deleting rows by hand gets here.
                None => Some(Ending::Failed("its journal row is gone".into())),
                Some(row) => {
                    display.advanced(i, row);
                    let why = || {
                        row.last_error
                            .clone()
                            .unwrap_or_else(|| row.state.to_string())
                    };
                    match row.state {
                        FileState::Done => Some(Ending::Done {
                            took: self.started.elapsed(),
                            note: row.last_error.clone(),
                        }),
                        FileState::Failed => Some(Ending::Failed(why())),
                        FileState::Superseded => Some(Ending::Failed(format!(
                            "{}; push it again to send the new content",
                            why()
                        ))),
                        _ => None,
                    }
                }
            };
            if let Some(e) = ending {
                display.finished(i, &targets[i], &e);
                self.endings[i] = Some(e);
            }
        }
        Ok(self.endings.iter().all(Option::is_some))
    }
}
