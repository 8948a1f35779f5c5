//! The watcher: finds *finished* files in the watched folder and records them in the
//! journal, once per content.
//!
//! A file counts as finished when
//! - it was closed after writing (inotify `IN_CLOSE_WRITE`), or
//! - it was renamed into the folder (the producer wrote it elsewhere first) and no
//!   process holds it open for writing (logrotate renames a log its service still
//!   writes; that one finishes when it is closed), or
//! - its size and mtime stayed unchanged for `settle` (writers that keep the file
//!   open, or that write through mmap and raise no events).
//!
//! Events are only hints: every decision is taken on a fresh `stat`. A full scan runs
//! at start (files that arrived while dropship was down; those untouched for `settle`
//! count at once), whenever inotify or our own event queue overflows, and every
//! `rescan`. The journal refuses a content it already knows, so scans may repeat
//! freely.
//!
//! What is never recorded: a path with a component matching an `ignore` pattern
//! (a hidden or `*.tmp` folder hides its contents), and anything reached through a
//! symbolic link (see `confine.rs`: links are not followed, not by notify's watches,
//! not by scans). A folder that cannot be read is reported once at WARN and in
//! `status` until it can be read again.
//!
//! Each folder gets its own (non-recursive) watch, added by the scan that lists it,
//! *before* listing it: a file landing in a new folder is either listed or raises an
//! event, never neither. A folder that cannot be watched (unreadable, or the inotify
//! watch limit reached) costs only its events: the rescans still find its files, and
//! folders left without a watch for the limit are listed more often (`unwatched.rs`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::confine;
use crate::identity::Identity;
use crate::journal::{Enqueued, JournalHandle, NewFile};

mod unwatched;

pub use unwatched::MAX_WATCHES_ENV;
use unwatched::{LIMIT_TOPIC, MAX_UNWATCHED, OVERFLOW_TOPIC, Unwatched};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("the file event source stopped")]
    Stopped,
    /// A blocking check panicked: the daemon stops, and the startup scan of its
    /// restart finds the files it was checking.
    #[error("watch task failed: {0}")]
    Task(String),
}

/// A file seen changing, not yet finished.
#[derive(Debug)]
struct Candidate {
    identity: Option<Identity>,
    /// When its identity last changed (or an event last touched it).
    since: Instant,
}

pub struct Watcher {
    cfg: Arc<Config>,
    journal: JournalHandle,
    wake: Arc<Notify>,
    candidates: HashMap<PathBuf, Candidate>,
    /// The folders' watches; lent to each blocking walk (`None` meanwhile, and
    /// before `run` starts).
    watches: Option<Watches>,
    /// Folders that could not be listed, with why: reported once, until readable.
    unreadable: HashMap<PathBuf, String>,
    /// Folders left without a watch by the watch limit: listed every quick scan.
    unwatched: Unwatched,
    /// File events lost since start (each cost a full rescan); the first is said at
    /// WARN.
    events_lost: u64,
    /// The journal refused to record a file (a full or read-only disk): reported
    /// once, until a file is recorded again.
    journal_refused: bool,
    /// The watched folder itself is gone (reported once, until it is back).
    root_gone: bool,
    /// New configs from reloads (see [`Watcher::with_updates`]).
    updates: Option<tokio::sync::watch::Receiver<Arc<Config>>>,
    /// Files closed after writing or renamed in, in event order, not yet checked
    /// and recorded: see [`Watcher::flush`].
    pending: Vec<(PathBuf, Arrived)>,
    /// The paths of `pending`, to tell an event on one of them at once.
    pending_paths: HashSet<PathBuf>,
}

/// How a pending file arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrived {
    /// Closed after writing: finished.
    Closed,
    /// Renamed in: finished unless a process still has it open for writing.
    Renamed,
}

/// Events handled before the pending files are recorded, at most: a burst of
/// files costs one journal transaction per this many, not one per file, and the
/// first of them waits no longer than these events take.
const EVENT_BATCH: usize = 512;

/// notify's watcher and the folders it watches.
struct Watches {
    notify: RecommendedWatcher,
    dirs: HashSet<PathBuf>,
    /// `DROPSHIP_MAX_WATCHES`: at most this many folders get a watch; the rest are
    /// treated as the kernel's limit would have them.
    cap: Option<usize>,
}

/// Events waiting for the watcher. notify's thread never blocks on a full queue: it
/// drops the event and flags an overflow, which a rescan makes good.
const EVENT_QUEUE: usize = 4096;

/// The next config a reload sends; pending forever without a sender.
async fn next_config(
    updates: &mut Option<tokio::sync::watch::Receiver<Arc<Config>>>,
) -> Option<Arc<Config>> {
    match updates {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => {
                *updates = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// The `status` notice topic of an unreadable folder.
fn notice_topic(dir: &Path) -> String {
    format!("watch:{}", dir.display())
}

impl Watcher {
    pub fn new(cfg: Arc<Config>, journal: JournalHandle, wake: Arc<Notify>) -> Watcher {
        Watcher {
            cfg,
            journal,
            wake,
            candidates: HashMap::new(),
            watches: None,
            unreadable: HashMap::new(),
            unwatched: Unwatched::default(),
            events_lost: 0,
            journal_refused: false,
            root_gone: false,
            updates: None,
            pending: Vec::new(),
            pending_paths: HashSet::new(),
        }
    }

    /// Takes a new config from `updates` while running (a reload changes
    /// `watch.ignore`); the other settings it reads do not change live.
    pub fn with_updates(mut self, updates: tokio::sync::watch::Receiver<Arc<Config>>) -> Watcher {
        self.updates = Some(updates);
        self
    }

    /// Watches until `cancel`. `ready` fires once the startup scan is recorded.
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        ready: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), WatchError> {
        let root = self.cfg.watch.path.clone();
        let (tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        // notify calls this on its own thread, which must never block: a full queue
        // drops the event and flags a rescan instead of growing without bound.
        let handler = move |res: notify::Result<Event>| {
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(res) {
                flag.store(true, Ordering::Relaxed);
            }
        };
        // Links are not followed: a link in the outbox must not pull another folder's
        // files in (and, with after = delete, delete them there).
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut notify =
            RecommendedWatcher::new(handler, config).map_err(|source| WatchError::Watch {
                path: root.clone(),
                source,
            })?;
        // The outbox itself must be watchable; its folders are watched as they are
        // listed (see `walk`).
        notify
            .watch(&root, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: root.clone(),
                source,
            })?;
        self.watches = Some(Watches {
            notify,
            dirs: HashSet::from([root.clone()]),
            cap: unwatched::watch_cap(),
        });
        // Whatever a previous daemon reported of the folders is found afresh.
        self.journal.call(|j| j.clear_notices("watch:")).await?;
        // A large outbox takes a while to record: a shutdown meanwhile must not wait.
        let found = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            found = self.scan(&root, Arrival::Startup) => found?,
        };
        info!(folder = %root.display(), files = found, "watching");
        let _ = ready.send(());

        let settle = self.cfg.watch.settle;
        let tick = (settle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rescan_every = self.cfg.watch.rescan;
        let mut next_rescan = (!rescan_every.is_zero()).then(|| Instant::now() + rescan_every);
        // Folders without a watch: listed every `quick`, or (too many to list one by
        // one) the whole outbox every `fallback`.
        let quick = unwatched::quick_interval(settle);
        let fallback = unwatched::fallback_interval(rescan_every);
        let mut next_quick = Instant::now() + quick;
        let mut next_fallback = Instant::now() + fallback;
        // (The config bounds `rescan`, so these additions cannot overflow.)
        let mut updates = self.updates.take();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(cfg) = next_config(&mut updates) => {
                    self.cfg = cfg;
                    // Files a pattern no longer ignores are found by a scan.
                    self.scan(&root, Arrival::Rescan).await?;
                }
                ev = events.recv() => match ev {
                    Some(Ok(ev)) => {
                        self.on_event(ev).await?;
                        // A burst (a producer dropping many files at once): take what
                        // else is queued before recording, so that its files share
                        // journal transactions and the queue does not overflow.
                        for _ in 1..EVENT_BATCH {
                            match events.try_recv() {
                                Ok(Ok(ev)) => self.on_event(ev).await?,
                                Ok(Err(e)) => {
                                    warn!(error = %e, "watch error; rescanning");
                                    self.flush().await?;
                                    self.scan(&root, Arrival::Rescan).await?;
                                }
                                Err(_) => break,
                            }
                        }
                        self.flush().await?;
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "watch error; rescanning");
                        self.scan(&root, Arrival::Rescan).await?;
                    }
                    // notify's thread is gone: without events only rescans would
                    // be left, so the daemon stops (and systemd restarts it).
                    None => return Err(WatchError::Stopped),
                },
                _ = ticker.tick() => {
                    if overflowed.swap(false, Ordering::Relaxed) {
                        self.events_lost("file events came faster than they were handled").await;
                        self.rescan_all().await?;
                    }
                    self.settle_candidates().await?;
                    self.check_root(&root).await?;
                    if let Some(at) = next_rescan
                        && Instant::now() >= at
                    {
                        self.scan(&root, Arrival::Rescan).await?;
                        next_rescan = Some(Instant::now() + rescan_every);
                    }
                    let now = Instant::now();
                    if self.unwatched.too_many() && now >= next_fallback {
                        self.scan(&root, Arrival::Rescan).await?;
                        next_fallback = Instant::now() + fallback;
                    } else if !self.unwatched.too_many() && now >= next_quick {
                        for top in self.unwatched.tops() {
                            self.scan_with(&top, Arrival::Rescan, Depth::Unwatched).await?;
                        }
                        next_quick = Instant::now() + quick;
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles one event. A file closed or renamed in joins `pending`; every other
    /// event that concerns a pending file (or may: a folder's, a rescan) first has
    /// the pending ones recorded, so each file sees its events in order.
    async fn on_event(&mut self, ev: Event) -> Result<(), WatchError> {
        if ev.need_rescan() {
            self.flush().await?;
            self.events_lost("the kernel dropped file events (its inotify queue overflowed, fs.inotify.max_queued_events)").await;
            self.rescan_all().await?;
            return Ok(());
        }
        let folder_event = matches!(
            ev.kind,
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder)
        );
        if folder_event || ev.paths.iter().any(|p| self.pending_paths.contains(p)) {
            self.flush().await?;
        }
        match ev.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &ev.paths {
                    self.pend(p, Arrived::Closed);
                }
            }
            // A rename inside the outbox also comes as `Both` (both names): `To`
            // alone covers it, and renames from outside.
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                if let Some(p) = ev.paths.last() {
                    // Not `is_dir`: a symlink to a folder elsewhere must not pull that
                    // folder's files in (and, with after = delete, delete them).
                    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                        self.flush().await?;
                        self.forget_watch(p);
                        self.scan(p, Arrival::MovedIn).await?;
                    } else {
                        self.pend(p, Arrived::Renamed);
                    }
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for p in &ev.paths {
                    self.candidates.remove(p);
                    // A folder's watch goes with it; a new folder of that name
                    // needs its own.
                    self.forget_watch(p);
                }
            }
            EventKind::Create(CreateKind::Folder) => {
                // Watched, then listed: files created before the watch are listed.
                for p in &ev.paths {
                    self.forget_watch(p);
                    self.scan(p, Arrival::Rescan).await?;
                }
            }
            EventKind::Create(_) | EventKind::Modify(_) => {
                for p in &ev.paths {
                    self.touched(p);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A full scan after lost events: the events that would have told which
    /// folders lost their watches (moved, deleted, recreated) are among the lost, so
    /// every folder is watched again (adding an existing watch changes nothing).
    async fn rescan_all(&mut self) -> Result<usize, WatchError> {
        let root = self.cfg.watch.path.clone();
        if let Some(w) = self.watches.as_mut() {
            w.dirs.retain(|d| *d == root);
        }
        self.scan(&root, Arrival::Rescan).await
    }

    /// The watched folder itself removed (a careless cleanup) loses its watch with
    /// it: once a folder of that name is back, it is watched and listed again.
    async fn check_root(&mut self, root: &Path) -> Result<(), WatchError> {
        let watched = self.watches.as_ref().is_none_or(|w| w.dirs.contains(root));
        if watched {
            return Ok(());
        }
        if !std::fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
            if !self.root_gone {
                warn!(folder = %root.display(), "the watched folder is gone; files are found again once it is back");
                self.root_gone = true;
            }
            return Ok(());
        }
        info!(folder = %root.display(), "the watched folder is back; watching it again");
        self.root_gone = false;
        self.scan(root, Arrival::Rescan).await?;
        Ok(())
    }

    /// Forgets that `path` (and what is below it) is watched.
    fn forget_watch(&mut self, path: &Path) {
        // Most events name files: only a watched folder costs a pass over the set.
        if let Some(w) = self.watches.as_mut()
            && w.dirs.contains(path)
        {
            w.dirs.retain(|d| !d.starts_with(path));
        }
    }

    /// Whether `path` may be recorded at all: not ignored by any of its components
    /// below the outbox. (A name that is not UTF-8 matches no pattern; it is
    /// recorded, as failed.)
    fn wanted(&self, path: &Path) -> bool {
        path.file_name().is_some() && !self.cfg.ignored_path(path)
    }

    /// Something happened to `path`: restart its settle clock.
    fn touched(&mut self, path: &Path) {
        if !self.wanted(path) {
            return;
        }
        let identity = regular_file(path);
        if identity.is_none() && !self.candidates.contains_key(path) {
            return; // a folder, a symlink, or already gone
        }
        let now = Instant::now();
        let c = self
            .candidates
            .entry(path.to_path_buf())
            .or_insert(Candidate {
                identity: None,
                since: now,
            });
        c.identity = identity;
        c.since = now;
    }

    /// Candidates quiet for `settle`: finished if a fresh stat agrees.
    async fn settle_candidates(&mut self) -> Result<(), WatchError> {
        let settle = self.cfg.watch.settle;
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .candidates
            .iter()
            .filter(|(_, c)| now.duration_since(c.since) >= settle)
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            let fresh = self.confined_file(&path);
            let Some(c) = self.candidates.get_mut(&path) else {
                continue;
            };
            match fresh {
                None => {
                    self.candidates.remove(&path);
                }
                Some(id) if Some(id) == c.identity => {
                    self.candidates.remove(&path);
                    self.record(&path, id).await?;
                }
                Some(id) => {
                    // Changed without an event (mmap writes): wait another `settle`.
                    c.identity = Some(id);
                    c.since = now;
                }
            }
        }
        Ok(())
    }

    fn pend(&mut self, path: &Path, how: Arrived) {
        self.pending_paths.insert(path.to_path_buf());
        self.pending.push((path.to_path_buf(), how));
    }

    /// Records the pending files that are finished, in one journal transaction.
    /// The checks that touch the disk (a file's identity, its writers) run together
    /// on one blocking thread.
    async fn flush(&mut self) -> Result<(), WatchError> {
        self.pending_paths.clear();
        let pending: Vec<(PathBuf, Arrived)> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|(p, _)| {
                // A file's candidacy ends with its close or arrival, wanted or not.
                self.candidates.remove(p);
                self.wanted(p)
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let root = self.cfg.watch.path.clone();
        let checked = tokio::task::spawn_blocking(move || {
            pending
                .into_iter()
                .map(|(path, how)| {
                    // logrotate's olddir: the service logs into the renamed file
                    // until its postrotate reopen. Its close (or `settle` without a
                    // change) finishes it. Who holds it is asked of a read lease,
                    // else `/proc` (which may take a while: off the async threads);
                    // a file that cannot be checked counts as finished.
                    let writer = match how {
                        Arrived::Renamed => crate::writers::holding(&path).ok().flatten(),
                        Arrived::Closed => None,
                    };
                    let id = match writer {
                        Some(_) => None,
                        None => confined_file(&root, &path),
                    };
                    (path, writer, id)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| WatchError::Task(e.to_string()))?;
        let mut finished = Vec::new();
        for (path, writer, id) in checked {
            match (writer, id) {
                (Some(who), _) => {
                    debug!(path = %path.display(), writer = %who, "renamed in while open for writing; waiting for it to close");
                    self.touched(&path);
                }
                (None, Some(id)) => finished.push((path, id)),
                (None, None) => {}
            }
        }
        // Moved out in batches, not cloned: a burst is up to 512 paths.
        while !finished.is_empty() {
            let rest = finished.split_off(finished.len().min(RECORD_BATCH));
            self.record_all(std::mem::replace(&mut finished, rest))
                .await?;
        }
        Ok(())
    }

    /// File events were lost (`why`): said at WARN the first time, counted in the
    /// `watch:overflow` notice every time. The caller rescans.
    async fn events_lost(&mut self, why: &str) {
        self.events_lost += 1;
        if self.events_lost == 1 {
            warn!("{why}; rescanning (said once; status counts them)");
        } else {
            debug!(times = self.events_lost, "{why}; rescanning");
        }
        let reason = format!(
            "file events were lost {} time(s) since start, last: {why}; each time a full rescan found the files",
            self.events_lost
        );
        if let Err(e) = self
            .journal
            .call(move |j| j.set_notice(OVERFLOW_TOPIC, "events_lost", &reason))
            .await
        {
            warn!(error = %e, "cannot record lost file events for status");
        }
    }

    /// Walks `dir`; returns how many files it recorded at once.
    async fn scan(&mut self, dir: &Path, arrival: Arrival) -> Result<usize, WatchError> {
        self.scan_with(dir, arrival, Depth::All).await
    }

    /// [`Watcher::scan`], walking down through `depth`'s folders.
    async fn scan_with(
        &mut self,
        dir: &Path,
        arrival: Arrival,
        depth: Depth,
    ) -> Result<usize, WatchError> {
        // A folder created or moved in under an ignored name: not watched, not listed.
        if dir != self.cfg.watch.path && self.cfg.ignored_path(dir) {
            return Ok(0);
        }
        let cfg = self.cfg.clone();
        let start = dir.to_path_buf();
        let mut watches = self.watches.take();
        // Two batches in the channel at most: the walk waits for the journal rather
        // than listing ahead into memory.
        let (tx, mut found) = mpsc::channel::<Vec<Found>>(2);
        let walking = tokio::task::spawn_blocking(move || {
            let walked = walk(&start, &cfg, watches.as_mut(), depth, |batch| {
                tx.blocking_send(batch).is_ok()
            });
            (walked, watches)
        });
        let settle = self.cfg.watch.settle;
        let mut recorded = 0;
        while let Some(files) = found.recv().await {
            let mut batch = Vec::with_capacity(files.len());
            for (path, id, age) in files {
                if !self.wanted(&path) {
                    continue;
                }
                // Startup and rescans: a file untouched for `settle` is finished; a
                // younger one may still be being written and has to settle first.
                if arrival == Arrival::MovedIn || age >= settle {
                    self.candidates.remove(&path);
                    batch.push((path, id));
                    recorded += 1;
                } else {
                    self.candidates.entry(path).or_insert(Candidate {
                        identity: Some(id),
                        since: Instant::now(),
                    });
                }
            }
            self.record_all(batch).await?;
        }
        let walked = match walking.await {
            Ok((walked, watches)) => {
                self.watches = watches;
                walked
            }
            // Only a panic in the walk gets here; the next rescan walks again, and
            // with no watches left, rescans are all there is.
            Err(e) => {
                warn!(error = %e, "a scan failed");
                Walked::default()
            }
        };
        let full = dir == self.cfg.watch.path;
        self.unwatched
            .update(dir, walked.unwatched, walked.unwatched_too_many, full);
        self.report_watch_limit().await;
        self.report_unreadable(dir, walked.unreadable).await;
        Ok(recorded)
    }

    /// Says once at WARN that folders lack a watch, keeps the `watch:limit` notice up
    /// to date, and clears it once every folder has a watch again.
    async fn report_watch_limit(&mut self) {
        let cap = self.watches.as_ref().and_then(|w| w.cap);
        let reason = self.unwatched.reason(
            cap,
            unwatched::quick_interval(self.cfg.watch.settle),
            unwatched::fallback_interval(self.cfg.watch.rescan),
        );
        let was_reported = self.unwatched.reported();
        if !self.unwatched.changed(reason.as_deref()) {
            return;
        }
        let result = match reason {
            Some(reason) => {
                if !was_reported {
                    warn!(
                        limit = cap.map_or("fs.inotify.max_user_watches".to_string(), |n| format!(
                            "{MAX_WATCHES_ENV}={n}"
                        )),
                        "the inotify watch limit is reached: {reason}"
                    );
                }
                self.journal
                    .call(move |j| j.set_notice(LIMIT_TOPIC, "degraded", &reason))
                    .await
            }
            None => {
                info!("every folder of the outbox has an inotify watch again");
                self.journal
                    .call(|j| j.clear_notice(LIMIT_TOPIC).map(|_| ()))
                    .await
            }
        };
        if let Err(e) = result {
            warn!(error = %e, "cannot record the watch limit's state for status");
        }
    }

    /// Reports folders under `scanned` that could not be listed (once each), and
    /// those that can be listed again.
    async fn report_unreadable(&mut self, scanned: &Path, now: Vec<(PathBuf, String)>) {
        let healed: Vec<PathBuf> = self
            .unreadable
            .keys()
            .filter(|d| d.starts_with(scanned) && !now.iter().any(|(n, _)| n == *d))
            .cloned()
            .collect();
        for dir in healed {
            self.unreadable.remove(&dir);
            info!(folder = %dir.display(), "the folder can be read again");
            let topic = notice_topic(&dir);
            if let Err(e) = self.journal.call(move |j| j.clear_notice(&topic)).await {
                warn!(error = %e, "cannot record the folder's state for status");
            }
        }
        for (dir, why) in now {
            if self.unreadable.get(&dir) == Some(&why) {
                continue;
            }
            warn!(folder = %dir.display(), error = %why, "cannot read a folder of the outbox; its files wait until it can be read");
            let (topic, reason) = (notice_topic(&dir), why.clone());
            match self
                .journal
                .call(move |j| j.set_notice(&topic, "unreadable", &reason))
                .await
            {
                Ok(()) => {
                    self.unreadable.insert(dir, why);
                }
                // Not remembered as reported: the next scan records it again.
                Err(e) => warn!(error = %e, "cannot record the folder's state for status"),
            }
        }
    }

    /// See [`confined_file`].
    fn confined_file(&self, path: &Path) -> Option<Identity> {
        confined_file(&self.cfg.watch.path, path)
    }

    /// Records a file found finished. Callers have checked that it is a regular file
    /// reached without crossing a link (`confined_file`, or a walk, which never
    /// enters one).
    async fn record(&mut self, path: &Path, id: Identity) -> Result<(), WatchError> {
        self.record_all(vec![(path.to_path_buf(), id)]).await
    }

    /// [`Watcher::record`] of many files in one journal transaction (a scan's, a
    /// burst of events'): one commit for them all.
    async fn record_all(&mut self, files: Vec<(PathBuf, Identity)>) -> Result<(), WatchError> {
        if files.is_empty() {
            return Ok(());
        }
        // The key is decided now, once: a restart, a reload or a clock change never
        // moves a queued file to another key.
        let new: Vec<NewFile> = files
            .iter()
            .map(|(path, id)| {
                let route = self.cfg.route(path, id.mtime_ns);
                NewFile {
                    path: path.clone(),
                    key: route.key,
                    size: id.size,
                    mtime_ns: id.mtime_ns,
                    inode: id.inode,
                    rule: route.rule,
                    priority: route.priority,
                    compress: route.compress.to_journal(),
                }
            })
            .collect();
        let results = match self.journal.call(move |j| j.enqueue_many(&new)).await {
            Ok(r) => r,
            // A full or read-only disk, a long lock: the files stay where they are,
            // candidates again, tried once more after `settle`. Said once per spell,
            // not once per file and try.
            Err(e) => {
                if self.journal_refused {
                    debug!(files = files.len(), error = %e, "cannot record files in the journal yet");
                } else {
                    error!(path = %files[0].0.display(), files = files.len(), error = %e, "cannot record files in the journal; they stay where they are and are recorded once it can be written");
                    self.journal_refused = true;
                }
                let since = Instant::now();
                for (path, id) in files {
                    self.candidates.insert(
                        path,
                        Candidate {
                            identity: Some(id),
                            since,
                        },
                    );
                }
                return Ok(());
            }
        };
        // Only a row written proves the journal writable again (a file already
        // known is only read).
        if results.iter().any(|r| !matches!(r, Enqueued::Unchanged(_)))
            && std::mem::take(&mut self.journal_refused)
        {
            info!("the journal can be written again; files are recorded");
        }
        let mut woke = false;
        for ((path, id), recorded) in files.iter().zip(results) {
            let shown = path.display();
            match recorded {
                Enqueued::Added(file) => {
                    info!(file, path = %shown, size = id.size, "queued");
                    woke = true;
                }
                Enqueued::Replaced { old, new } => {
                    info!(file = new, superseded = old, path = %shown, size = id.size, "queued new content");
                    woke = true;
                }
                Enqueued::Unchanged(file) => debug!(file, path = %shown, "already known"),
            }
        }
        if woke {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Files a scan records per journal transaction: a start-up scan of 100,000
/// files commits 200 times rather than 100,000, and a crash loses at most one
/// batch's worth of recording (the next scan records it again).
const RECORD_BATCH: usize = 500;

/// How far a walk goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Every folder below.
    All,
    /// Not into folders with a watch: their events cover them (the quick scan of
    /// unwatched folders).
    Unwatched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Startup,
    Rescan,
    /// A folder renamed into the watched one: its files are finished.
    MovedIn,
}

/// The identity of `path` if it is a regular file reached from the outbox `root`
/// without crossing a link: an event may name a path through a link swapped in since.
fn confined_file(root: &Path, path: &Path) -> Option<Identity> {
    match confine::inside(root, path) {
        Ok(Ok(meta)) => Some(Identity::of(&meta)),
        Ok(Err(why)) => {
            debug!(path = %path.display(), %why, "not recorded");
            None
        }
        Err(_) => None, // gone
    }
}

/// The identity of a regular file (symlinks are not followed: a link's target can
/// change under it without any event here).
fn regular_file(path: &Path) -> Option<Identity> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| Identity::of(&meta))
}

/// A regular file a walk found, with its identity and the time since its mtime.
type Found = (PathBuf, Identity, Duration);

/// What a walk found besides its files, which it hands on as it goes.
#[derive(Debug, Default)]
struct Walked {
    /// Folders that could not be listed, with why.
    unreadable: Vec<(PathBuf, String)>,
    /// Folders left without a watch by the watch limit (at most [`MAX_UNWATCHED`]).
    unwatched: Vec<PathBuf>,
    /// More folders than that were left without one.
    unwatched_too_many: bool,
}

/// Every regular file under `dir`, not entering ignored folders and not following
/// links (`lstat` only: a link is neither a file nor a folder here). Each folder not
/// watched yet is watched before it is listed.
///
/// Files go to `emit` in batches of [`RECORD_BATCH`] as they are found, each folder's
/// in name order, a folder's files before its subfolders': a walk holds one folder's
/// names and one batch, never the whole tree (100,000 waiting files at start). The
/// walk stops early when `emit` says no one takes batches any more.
fn walk(
    dir: &Path,
    cfg: &Config,
    mut watches: Option<&mut Watches>,
    depth: Depth,
    mut emit: impl FnMut(Vec<Found>) -> bool,
) -> Walked {
    let mut out = Walked::default();
    let mut stack = vec![dir.to_path_buf()];
    let now = SystemTime::now();
    let mut batch = Vec::new();
    while let Some(d) = stack.pop() {
        if let Some(w) = watches.as_deref_mut()
            && !w.dirs.contains(&d)
        {
            // Our own cap counts as the kernel's ENOSPC: the same path follows.
            let limited = if w.cap.is_some_and(|cap| w.dirs.len() >= cap) {
                true
            } else {
                match w.notify.watch(&d, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        w.dirs.insert(d.clone());
                        false
                    }
                    Err(e) => matches!(e.kind, notify::ErrorKind::MaxFilesWatch),
                }
            };
            // (Unreadable or gone: the listing below says which.)
            if limited {
                if out.unwatched.len() < MAX_UNWATCHED {
                    out.unwatched.push(d.clone());
                } else {
                    out.unwatched_too_many = true;
                }
            }
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // Gone meanwhile: nothing to report.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.unreadable.push((d, e.to_string()));
                continue;
            }
        };
        let mut names: Vec<std::ffi::OsString> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort_unstable();
        let mut subfolders = Vec::new();
        for name in names {
            let path = d.join(name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                let covered = depth == Depth::Unwatched
                    && watches.as_deref().is_some_and(|w| w.dirs.contains(&path));
                if !cfg.ignored_path(&path) && !covered {
                    subfolders.push(path);
                }
            } else if meta.is_file() {
                // An mtime in the future (clock skew) counts as just written.
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                batch.push((path, Identity::of(&meta), age));
                if batch.len() == RECORD_BATCH && !emit(std::mem::take(&mut batch)) {
                    return out;
                }
            }
        }
        // Popped in name order.
        stack.extend(subfolders.into_iter().rev());
    }
    if !batch.is_empty() {
        emit(batch);
    }
    out
}
