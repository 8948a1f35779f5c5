//! The watcher: finds *finished* files in the watched folder and records them in the
//! journal, once per content.
//!
//! A file counts as finished when
//! - it was closed after writing (inotify `IN_CLOSE_WRITE`), or
//! - it was renamed into the folder (the producer wrote it elsewhere first), or
//! - its size and mtime stayed unchanged for `settle` (writers that keep the file
//!   open, or that write through mmap and raise no events).
//!
//! Events are only hints: every decision is taken on a fresh `stat`. A full scan runs
//! at start (files that arrived while dropship was down; those untouched for `settle`
//! count at once), whenever inotify reports an overflow, and every `rescan`. The
//! journal refuses a content it already knows, so scans may repeat freely.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::identity::Identity;
use crate::journal::{Enqueued, JournalHandle, NewFile};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
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
    /// Folders to scan again, and when. notify hands us a new folder's creation
    /// event *before* it adds the folder's watch, so a file landing in the folder in
    /// between raises no event and may miss the first scan too.
    follow_ups: Vec<(Instant, PathBuf)>,
}

/// When a new folder is scanned again: soon (the watch is normally in place within
/// milliseconds), and once more later for a loaded machine.
const FOLLOW_UPS: [Duration; 2] = [Duration::from_millis(300), Duration::from_secs(3)];

impl Watcher {
    pub fn new(cfg: Arc<Config>, journal: JournalHandle, wake: Arc<Notify>) -> Watcher {
        Watcher {
            cfg,
            journal,
            wake,
            candidates: HashMap::new(),
            follow_ups: Vec::new(),
        }
    }

    /// Watches until `cancel`. `ready` fires once the startup scan is recorded.
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        ready: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), WatchError> {
        let root = self.cfg.watch.path.clone();
        let (tx, mut events) = mpsc::unbounded_channel();
        // notify calls this on its own thread; an unbounded send never blocks it.
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            let _ = tx.send(res);
        })
        .map_err(|source| WatchError::Watch {
            path: root.clone(),
            source,
        })?;
        // Watch first, then scan: a file arriving in between is seen by both, and the
        // journal keeps one.
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch {
                path: root.clone(),
                source,
            })?;
        let found = self.scan(&root, Arrival::Startup).await?;
        info!(folder = %root.display(), files = found, "watching");
        let _ = ready.send(());

        let settle = self.cfg.watch.settle;
        let tick = (settle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rescan_every = self.cfg.watch.rescan;
        let mut next_rescan = (!rescan_every.is_zero()).then(|| Instant::now() + rescan_every);
        // (The config bounds `rescan`, so these additions cannot overflow.)
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = events.recv() => match ev {
                    Some(Ok(ev)) => self.on_event(ev).await?,
                    Some(Err(e)) => {
                        warn!(error = %e, "watch error; rescanning");
                        self.scan(&root, Arrival::Rescan).await?;
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    self.settle_candidates().await?;
                    self.follow_up().await?;
                    if let Some(at) = next_rescan
                        && Instant::now() >= at
                    {
                        self.scan(&root, Arrival::Rescan).await?;
                        next_rescan = Some(Instant::now() + rescan_every);
                    }
                }
            }
        }
        drop(watcher);
        Ok(())
    }

    async fn on_event(&mut self, ev: Event) -> Result<(), WatchError> {
        if ev.need_rescan() {
            warn!("the kernel dropped file events; rescanning");
            let root = self.cfg.watch.path.clone();
            self.scan(&root, Arrival::Rescan).await?;
            return Ok(());
        }
        match ev.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &ev.paths {
                    self.finished(p).await?;
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                // With `Both`, the last path is the new name.
                if let Some(p) = ev.paths.last() {
                    // Not `is_dir`: a symlink to a folder elsewhere must not pull that
                    // folder's files in (and, with after = delete, delete them).
                    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                        self.scan(p, Arrival::MovedIn).await?;
                        self.schedule_follow_ups(p);
                    } else {
                        self.finished(p).await?;
                    }
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for p in &ev.paths {
                    self.candidates.remove(p);
                }
            }
            EventKind::Create(CreateKind::Folder) => {
                // Files created before the new folder's watch was in place.
                for p in &ev.paths {
                    self.scan(p, Arrival::Rescan).await?;
                    self.schedule_follow_ups(p);
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

    fn schedule_follow_ups(&mut self, dir: &Path) {
        let now = Instant::now();
        for after in FOLLOW_UPS {
            self.follow_ups.push((now + after, dir.to_path_buf()));
        }
    }

    /// Scans the new folders whose follow-up is due.
    async fn follow_up(&mut self) -> Result<(), WatchError> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.follow_ups.drain(..).partition(|(at, _)| *at <= now);
        self.follow_ups = later;
        for (_, dir) in due {
            self.scan(&dir, Arrival::Rescan).await?;
        }
        Ok(())
    }

    fn wanted(&self, path: &Path) -> bool {
        match path.file_name().and_then(|n| n.to_str()) {
            Some(name) => !self.cfg.ignored(name),
            // Not UTF-8: no pattern can match it; it is recorded (as failed).
            None => path.file_name().is_some(),
        }
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
            let fresh = regular_file(&path);
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

    /// `path` is finished now (closed after writing, or renamed in).
    async fn finished(&mut self, path: &Path) -> Result<(), WatchError> {
        self.candidates.remove(path);
        if !self.wanted(path) {
            return Ok(());
        }
        if let Some(id) = regular_file(path) {
            self.record(path, id).await?;
        }
        Ok(())
    }

    /// Walks `dir`; returns how many files it recorded at once.
    async fn scan(&mut self, dir: &Path, arrival: Arrival) -> Result<usize, WatchError> {
        let dir = dir.to_path_buf();
        let files = tokio::task::spawn_blocking(move || walk(&dir))
            .await
            .unwrap_or_default();
        let settle = self.cfg.watch.settle;
        let mut recorded = 0;
        for (path, id, age) in files {
            if !self.wanted(&path) {
                continue;
            }
            // Startup and rescans: a file untouched for `settle` is finished; a younger
            // one may still be being written and has to settle first.
            if arrival == Arrival::MovedIn || age >= settle {
                self.candidates.remove(&path);
                self.record(&path, id).await?;
                recorded += 1;
            } else {
                self.candidates.entry(path).or_insert(Candidate {
                    identity: Some(id),
                    since: Instant::now(),
                });
            }
        }
        Ok(recorded)
    }

    async fn record(&self, path: &Path, id: Identity) -> Result<(), WatchError> {
        let f = NewFile {
            path: path.to_path_buf(),
            key: self.cfg.remote_key(path),
            size: id.size,
            mtime_ns: id.mtime_ns,
            inode: id.inode,
        };
        let shown = path.display().to_string();
        let recorded = match self.journal.call(move |j| j.enqueue(&f)).await {
            Ok(r) => r,
            // A full disk or a long lock: the file stays where it is, and the next
            // scan (or its next event) records it.
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot record the file in the journal");
                return Ok(());
            }
        };
        match recorded {
            Enqueued::Added(file) => {
                info!(file, path = %shown, size = id.size, "queued");
                self.wake.notify_one();
            }
            Enqueued::Replaced { old, new } => {
                info!(file = new, superseded = old, path = %shown, size = id.size, "queued new content");
                self.wake.notify_one();
            }
            Enqueued::Unchanged(file) => debug!(file, path = %shown, "already known"),
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Startup,
    Rescan,
    /// A folder renamed into the watched one: its files are finished.
    MovedIn,
}

/// The identity of a regular file (symlinks are not followed: a link's target can
/// change under it without any event here).
fn regular_file(path: &Path) -> Option<Identity> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| Identity::of(&meta))
}

/// Every regular file under `dir` with its identity and the time since its mtime.
fn walk(dir: &Path) -> Vec<(PathBuf, Identity, Duration)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let now = SystemTime::now();
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                debug!(dir = %d.display(), error = %e, "cannot list");
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                // An mtime in the future (clock skew) counts as just written.
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                out.push((path, Identity::of(&meta), age));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
