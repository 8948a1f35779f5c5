//! The daemon: wires the journal, the watcher and the engine together, and shuts
//! them down in order (decide, tell, wait; STYLE §2.6).
//!
//! Shutdown: the first SIGTERM/SIGINT stops claiming work and lets in-flight parts
//! finish for up to `shutdown_timeout`; then the process exits 0 whatever is still
//! running. That is safe because every state an upload leaves was committed first: a
//! part cut off mid-request is `uploading` in the journal and is sent again at the
//! next start. A second signal exits at once.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::backend::BackendError;
use crate::config::Config;
use crate::engine::{Engine, EngineSettings};
use crate::journal::{JournalError, JournalHandle};
use crate::metrics::Metrics;
use crate::metrics::server::{self as metrics_server, BindError};
use crate::watch::{WatchError, Watcher};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another dropship is already running with journal {} (lock {} is held)",
        journal.display(),
        lock.display()
    )]
    AlreadyRunning { journal: PathBuf, lock: PathBuf },
    #[error("cannot create the lock file {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    #[error("watcher: {0}")]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Metrics(#[from] BindError),
    #[error(
        "the journal {} was {what} while the daemon ran: stopping, since what it recorded since is lost and a fresh journal would send every file in the outbox again; check what removed it, then start dropship again (a missing journal is created anew)",
        path.display()
    )]
    JournalLost { path: PathBuf, what: &'static str },
}

impl DaemonError {
    /// Whether a person has to look before the daemon may run again (a journal that
    /// is damaged or was lost): the exit code tells systemd not to restart it.
    pub fn needs_a_person(&self) -> bool {
        match self {
            DaemonError::JournalLost { .. } => true,
            DaemonError::Journal(e) => e.is_damage(),
            _ => false,
        }
    }
}

/// How often the journal's file is looked at (see [`journal_lost`]).
const JOURNAL_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Resolves when the journal's file is no longer the one the daemon opened:
/// deleted (SQLite would go on writing to the unlinked inode, and the next start
/// would find nothing) or replaced by another file.
async fn journal_lost(path: PathBuf) -> DaemonError {
    use std::os::unix::fs::MetadataExt;
    let opened = std::fs::metadata(&path).map(|m| (m.dev(), m.ino())).ok();
    loop {
        tokio::time::sleep(JOURNAL_CHECK_EVERY).await;
        let what = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "deleted",
            Ok(m) if opened.is_some_and(|o| o != (m.dev(), m.ino())) => "replaced",
            // Unreadable for a moment (a permission being changed): looked at again.
            _ => continue,
        };
        return DaemonError::JournalLost { path, what };
    }
}

/// The lock next to the journal that keeps a second daemon away from it.
pub fn lock_path(cfg: &Config) -> PathBuf {
    let mut p = cfg.journal.path.clone().into_os_string();
    p.push(".lock");
    PathBuf::from(p)
}

/// Whether a daemon holds the journal's lock right now.
pub fn is_running(cfg: &Config) -> bool {
    match File::open(lock_path(cfg)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Takes the journal's lock, held until the file is dropped: the daemon for as
/// long as it runs, `dropship push` while it uploads without a daemon.
pub fn take_lock(cfg: &Config) -> Result<File, DaemonError> {
    let path = lock_path(cfg);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::Lock {
            path: path.clone(),
            source,
        })?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DaemonError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DaemonError::AlreadyRunning {
            journal: cfg.journal.path.clone(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(DaemonError::Lock { path, source }),
    }
}

/// Runs until `stop` resolves, then drains. `main` passes the first termination
/// signal; tests can pass any future.
pub async fn run(
    cfg: Config,
    stop: impl Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> Result<(), DaemonError> {
    let _lock = take_lock(&cfg)?;
    let journal = JournalHandle::open(&cfg.journal.path).await?;
    let backend = cfg.backend.build(crate::backend::BuildOptions {
        timeouts: cfg.upload.timeouts,
        part_size: cfg.upload.part_size,
    })?;
    // Bound before anything runs: a taken port stops the start, named.
    let metrics_listener = match cfg.metrics.listen {
        Some(addr) => Some(metrics_server::bind(addr).await?),
        None => None,
    };
    let cfg = Arc::new(cfg);
    let wake = Arc::new(Notify::new());
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let metrics = Arc::new(Metrics::new());
    if let Some(listener) = metrics_listener {
        tasks.spawn(metrics_server::serve(
            listener,
            metrics.clone(),
            journal.clone(),
            cancel.child_token(),
        ));
    }

    // READY waits for both: the watcher armed with its start-up scan recorded, and
    // the rows a crash left in flight queued again.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (resumed_tx, resumed_rx) = tokio::sync::oneshot::channel();
    // The watcher's config changes with a reload (`watch.ignore`).
    let (watch_cfg, watch_cfg_rx) = tokio::sync::watch::channel(cfg.clone());
    let watcher =
        Watcher::new(cfg.clone(), journal.clone(), wake.clone()).with_updates(watch_cfg_rx);
    let mut watch_task = tasks.spawn(watcher.run(cancel.child_token(), ready_tx));
    let engine = Engine::new(
        EngineSettings::from_config(&cfg),
        journal.clone(),
        backend.clone(),
        wake,
        metrics,
    )
    .on_resumed(resumed_tx);
    let reload_targets = crate::reload::Targets {
        engine: engine.control(),
        watcher: watch_cfg,
        backend: backend.clone(),
    };
    let mut engine_task = tasks.spawn(engine.run(cancel.child_token()));
    tasks.spawn(crate::housekeeping::run(
        journal.clone(),
        cfg.journal.keep_done,
        cancel.child_token(),
    ));
    // DROPSHIP_RETENTION_EVERY_MS: a shorter pass interval, for tests.
    let every = std::env::var("DROPSHIP_RETENTION_EVERY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    tasks.spawn(crate::retention::run(
        journal.clone(),
        crate::retention::Retention {
            root: cfg.watch.path.clone(),
            keep_for: cfg.upload.keep_for,
            outbox_max: cfg.upload.outbox_max,
        },
        every,
        cancel.child_token(),
    ));
    tasks.close();
    let lost = journal_lost(cfg.journal.path.clone());
    tokio::pin!(lost);
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let (journal, cancel) = (journal.clone(), cancel.child_token());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                () = report_status(journal) => {}
            }
        });
    }

    if let Some(every) = watchdog_interval() {
        let (journal, cancel) = (journal.clone(), cancel.child_token());
        let stuck_after = cfg.daemon.stuck_after;
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                () = watchdog(journal, every, stuck_after) => {}
            }
        });
    }

    let mut failure: Option<DaemonError> = None;
    tokio::pin!(stop);
    // `stop` completes once; polling it again would panic, so a signal that came
    // before READY skips the second wait.
    let stopped_early = tokio::select! {
        ready = async { ready_rx.await.is_ok() && resumed_rx.await.is_ok() } => {
            if ready {
                sd_notify("READY=1\nSTATUS=watching");
                info!(backend = backend.name(), folder = %cfg.watch.path.display(), "dropship is running");
            }
            false
        }
        _ = &mut stop => {
            info!("termination signal during start-up: stopping");
            true
        }
    };
    // Both tasks run until cancelled; either ending early is a failure.
    let mut running = cfg.clone();
    // Reloads come and go; anything else ends the loop.
    loop {
        if stopped_early {
            break;
        }
        tokio::select! {
            Some(()) = reloads.recv() => {
                info!("SIGHUP: reading the configuration again");
                sd_notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                running = crate::reload::reload(running, &reload_targets).await;
                sd_notify("READY=1");
                continue;
            }
            _ = &mut stop => info!("termination signal: stopping"),
            e = &mut lost => {
                error!(error = %e, "the journal is gone");
                failure = Some(e);
            }
            r = &mut watch_task => {
                let e = r.map_err(|e| JournalError::Task(e.to_string())).and_then(|r| r.map_err(|e| match e {
                    WatchError::Journal(j) => j,
                    other => JournalError::Task(other.to_string()),
                }));
                if let Err(e) = e {
                    error!(error = %e, "the watcher stopped");
                    failure = Some(e.into());
                }
            }
            r = &mut engine_task => {
                let e = r.map_err(|e| JournalError::Task(e.to_string())).and_then(|r| r);
                if let Err(e) = e {
                    error!(error = %e, "the engine stopped");
                    failure = Some(e.into());
                }
            }
        }
        break;
    }
    sd_notify("STOPPING=1");
    cancel.cancel();
    let grace = cfg.daemon.shutdown_timeout;
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        warn!(
            grace_ms = grace.as_millis() as u64,
            "uploads still busy at the deadline; the journal is consistent, exiting"
        );
    } else {
        info!("stopped cleanly");
    }
    // Every upload has stopped: what the backend holds open on the service (a login
    // token) can go. Bounded: an unreachable service must not hold up the exit.
    if tokio::time::timeout(Duration::from_secs(5), backend.close())
        .await
        .is_err()
    {
        warn!("the backend did not close within 5 s");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The runtime `dropship run` and `dropship push` work on. Small devices: two
/// runtime threads are plenty; blocking work (SQLite, hashing, file I/O) has its
/// own pool.
///
/// tokio's default for that pool is 512 threads, and it grows by a thread whenever
/// work arrives while none is idle: a burst of small files beside a big one grew
/// the daemon to 53-55 threads, 1-2 MiB of stacks and heaps. Nothing waits on
/// another task while holding a blocking thread (the read pass and journal calls
/// wait as tasks; a folder walk, one at a time, is the one exception), so a bound
/// only queues work, never deadlocks it; it grows with the workers, whose long jobs
/// (compressing, hashing a stored copy) must not keep the journal waiting.
pub fn runtime(cfg: &Config, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .max_blocking_threads(blocking_threads(cfg))
        .thread_name(name)
        .build()
}

/// Threads in the runtime's blocking pool at most: 16 with the defaults. Each
/// worker may have its parts in flight (a local write each), its read step and a
/// long job (compressing, hashing a stored copy); the rest is for the journal, the
/// walk and post-actions.
fn blocking_threads(cfg: &Config) -> usize {
    let per_worker = cfg.upload.parts_in_flight.saturating_add(2);
    cfg.upload
        .workers
        .saturating_mul(per_worker)
        .saturating_add(4)
        .max(16)
}

/// Resolves at the first SIGTERM or SIGINT; a second one exits the process at once.
pub fn termination_signal() -> std::io::Result<impl Future<Output = ()>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first = Some(tx);
            for _ in signals.forever() {
                match first.take() {
                    Some(tx) => {
                        let _ = tx.send(());
                    }
                    None => {
                        eprintln!("dropship: second termination signal, exiting now");
                        std::process::exit(130);
                    }
                }
            }
        })?;
    Ok(async move {
        let _ = rx.await;
    })
}

/// A channel that receives one message per SIGHUP (a reload). Without it, SIGHUP
/// would end the process: it is installed before the daemon says READY.
pub fn reload_signal() -> std::io::Result<tokio::sync::mpsc::UnboundedReceiver<()>> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in signals.forever() {
                if tx.send(()).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

/// CLOCK_MONOTONIC in microseconds, which systemd wants beside `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; no other precondition.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec.max(0) as u64 * 1_000_000 + ts.tv_nsec.max(0) as u64 / 1000
}

/// How often the one-line summary goes to systemd (`systemctl status` shows it).
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Sends `STATUS=` every [`STATUS_EVERY`]: files queued, in progress and failed,
/// and the upload rate over the last interval.
async fn report_status(journal: JournalHandle) {
    let mut last: Option<(tokio::time::Instant, u64)> = None;
    loop {
        tokio::time::sleep(STATUS_EVERY).await;
        let Ok((counts, sent)) = journal.call(|j| j.summary()).await else {
            continue;
        };
        let n = |states: &[&str]| -> u64 { states.iter().filter_map(|s| counts.get(*s)).sum() };
        let now = tokio::time::Instant::now();
        let rate = last.map_or(0.0, |(at, before)| {
            sent.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64().max(0.001)
        });
        last = Some((now, sent));
        sd_notify(&format!(
            "STATUS={} queued, {} uploading, {} failed, {}/s",
            n(&["queued", "retrying"]),
            n(&["uploading", "completing", "joining", "verifying"]),
            n(&["failed"]),
            crate::units::human_bytes(rate as u64)
        ));
    }
}

/// systemd's watchdog interval (`WatchdogSec=`, passed as `WATCHDOG_USEC`), when
/// it is meant for this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Sends `WATCHDOG=1` twice per interval while the journal answers and the engine
/// is not stuck (see [`crate::liveness`]); withholds it otherwise, so that systemd
/// restarts the daemon. Says so once per spell, and again when it recovers.
async fn watchdog(journal: JournalHandle, every: Duration, stuck_after: Duration) {
    let half = every / 2;
    let mut withheld = false;
    loop {
        let answered = tokio::time::timeout(half, journal.call(|j| j.ping()))
            .await
            .is_ok_and(|r| r.is_ok());
        let stuck = crate::liveness::stuck(stuck_after);
        match (answered, stuck) {
            (true, None) => {
                if std::mem::take(&mut withheld) {
                    info!("the engine moves again; the watchdog is fed again");
                }
                sd_notify("WATCHDOG=1");
            }
            (false, _) if !withheld => {
                withheld = true;
                error!(
                    waited_ms = half.as_millis() as u64,
                    "the journal does not answer: withholding the watchdog so that systemd restarts dropship"
                );
            }
            (true, Some(still)) if !withheld => {
                withheld = true;
                error!(
                    still_s = still.as_secs(),
                    stuck_after_s = stuck_after.as_secs(),
                    "uploads in flight have not moved beyond every timeout (daemon.stuck_after): withholding the watchdog so that systemd restarts dropship"
                );
            }
            _ => {}
        }
        tokio::time::sleep(half).await;
    }
}

fn sd_notify(msg: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    // Never block a runtime thread on a full queue: systemd reads it promptly, and a
    // message it could not take is not worth stalling the daemon for.
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(msg.as_bytes(), &addr))
    } else {
        sock.send_to(msg.as_bytes(), &path)
    };
    if let Err(e) = sent {
        warn!(error = %e, "cannot notify systemd");
    }
}
