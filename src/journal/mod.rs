//! The journal: the only code that speaks SQL.
//!
//! One SQLite file (WAL) with a row per file and a row per part.
//!
//! Durability: `synchronous = NORMAL`. A commit is written to the WAL but not
//! synced, so a crash of the process loses nothing, and a power cut may roll the
//! journal back by the commits since the last sync (a checkpoint, or
//! [`Journal::sync`]). Rolled back, a file is only done again: a row that goes back
//! to `queued` or `uploading` is found held by the service (the identical-content
//! check, resume's listing of held parts), and the outbox scan records a file whose
//! row was lost. What cannot be redone is the local side: deleting or moving the
//! delivered file, or removing a kept one. Those run only after [`Journal::sync`]
//! made the row that allows them durable. So do two records a lost row would leave
//! dangling elsewhere: the intent and the record of a remote session (a session the
//! journal forgot stays open on the service), and a pushed file's row (no scan finds
//! a file outside the outbox). Syncing every commit (`FULL`) cost seven
//! syncs per small file and bounded the local backend at about 290 files a second
//! on this machine's disk.
//!
//! Invariants, each tested below or in `tests/`:
//! 1. One state change = one transaction; a part is never `uploaded` without its
//!    receipt (a CHECK constraint backs this up).
//! 2. A file's remote session is committed before its first part is sent
//!    ([`Journal::start_session`] precedes [`Journal::part_start`]).
//! 3. Each transition names the states it leaves: `UPDATE .. WHERE id = ? AND state
//!    IN (..)`. Zero rows changed is [`JournalError::StaleState`], so a worker whose
//!    file was superseded under it finds out at its next step.
//! 4. Part transitions also require the file to be `uploading`.
//! 5. At most one row per path is active (a partial unique index).
//! 6. No connection, row or column name leaves this module.
//!
//! The schema lives in `migrations/NNNN_*.sql`, applied in order in one transaction;
//! the version is `PRAGMA user_version`. A journal from a newer dropship is refused.

mod files;
mod handle;
mod housekeeping;
mod parts;
mod pushed;
mod retention;
pub mod states;
mod status;

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;

pub use handle::JournalHandle;
pub use housekeeping::{Forgot, PruneCandidate};
pub use pushed::PushedRow;
pub use retention::KeptFile;
pub use states::{FileState, PartState};
pub use status::{
    BACKEND_TOPIC, BackendHealth, BackendPlan, Backlog, FileStatus, InFlight, LAST_ERRORS,
    LastError, Notice, StatusQuery, StatusReport,
};

use crate::backend::{FileDigests, Receipt, RemoteObject, Session};
use crate::digest::HashCheckpoint;

/// The schema, in order. `user_version` is the number of migrations applied.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        "0002_resume_state_and_notices",
        include_str!("../../migrations/0002_resume_state_and_notices.sql"),
    ),
    (
        "0003_name_clash_check",
        include_str!("../../migrations/0003_name_clash_check.sql"),
    ),
    (
        "0004_asynchronous_join",
        include_str!("../../migrations/0004_asynchronous_join.sql"),
    ),
    (
        "0005_backend_retry_plan",
        include_str!("../../migrations/0005_backend_retry_plan.sql"),
    ),
    (
        "0006_status_and_housekeeping",
        include_str!("../../migrations/0006_status_and_housekeeping.sql"),
    ),
    (
        "0007_pushed_files",
        include_str!("../../migrations/0007_pushed_files.sql"),
    ),
    (
        "0008_delivered_rows_keep_no_resume_state",
        include_str!("../../migrations/0008_delivered_rows_keep_no_resume_state.sql"),
    ),
    (
        "0009_rules_and_priority",
        include_str!("../../migrations/0009_rules_and_priority.sql"),
    ),
    (
        "0010_local_retention",
        include_str!("../../migrations/0010_local_retention.sql"),
    ),
    (
        "0011_compression",
        include_str!("../../migrations/0011_compression.sql"),
    ),
    (
        "0012_claim_index",
        include_str!("../../migrations/0012_claim_index.sql"),
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub type FileId = i64;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "journal {} was written by a newer dropship (schema version {found}, this build knows up to {supported}); upgrade dropship or point [journal] path at another file",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "journal {} is damaged ({detail}); it was left untouched: move it aside to start afresh (files already delivered may then be sent again)",
        path.display()
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "journal {} is at schema version {found}, this build reads {supported}: start `dropship run` once to upgrade it",
        path.display()
    )]
    NeedsUpgrade {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("file {file}: expected state {expected}, found {found}")]
    StaleState {
        file: FileId,
        expected: String,
        found: String,
    },
    #[error("file {0} is not in the journal")]
    NoSuchFile(FileId),
    #[error("file {file}: {message}")]
    Refused { file: FileId, message: String },
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal row {file}: bad {column}: {detail}")]
    BadRow {
        file: FileId,
        column: &'static str,
        detail: String,
    },
    #[error("journal task failed: {0}")]
    Task(String),
    #[error("journal {}: syncing its log: {source}", path.display())]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl JournalError {
    /// Whether a worker's file changed state under it (superseded, retried...).
    pub fn is_stale(&self) -> bool {
        matches!(self, JournalError::StaleState { .. })
    }

    /// Whether the journal's filesystem is full.
    pub fn is_full(&self) -> bool {
        matches!(self, JournalError::Sql(e)
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }

    /// Whether SQLite found the journal damaged (a page that is not what it wrote).
    pub fn is_damage(&self) -> bool {
        match self {
            JournalError::Damaged { .. } => true,
            JournalError::Sql(e) => is_damage(e),
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, JournalError>;

/// A file found finished by the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: PathBuf,
    /// The remote key, or why the file cannot have one; the row is then `failed`
    /// at once, with that reason.
    pub key: std::result::Result<String, String>,
    /// The `match` of the `[[rule]]` it was queued under.
    pub rule: Option<String>,
    /// Higher is claimed first.
    pub priority: i64,
    /// How it is compressed before upload (`Compress::to_journal`); `None`: as is.
    pub compress: Option<String>,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

/// What [`Journal::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new row.
    Added(FileId),
    /// This content is already known (queued, in flight, done or failed).
    Unchanged(FileId),
    /// The path had an active row for older content; it is now `superseded`.
    Replaced { old: FileId, new: FileId },
}

/// One file's row.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: FileId,
    pub path: PathBuf,
    pub key: Option<String>,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub state: FileState,
    pub session: Option<Session>,
    pub part_size: Option<u64>,
    pub attempts: u32,
    pub failures: u32,
    pub verify_failures: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub bytes_sent: u64,
    pub digests: Option<FileDigests>,
    pub remote: Option<RemoteObject>,
    /// Where the whole-file hash of the read pass stands (see `HashCheckpoint`).
    pub hash_state: Option<HashCheckpoint>,
    /// The name clash check of `upload.on_exists` was done (see `clash_checked`).
    pub clash_checked: bool,
    /// Unix ms when the service accepted the completion and began assembling the
    /// object (an asynchronous join); `None` before. Never asked for twice.
    pub join_started: Option<i64>,
    /// Restarts of a failed join asked for this session.
    pub join_restarts: u32,
    /// Recorded by `dropship push`, not by the watcher: confined to its own folder,
    /// never deleted or moved (see `migrations/0007_pushed_files.sql`).
    pub pushed: bool,
    /// The `match` of the `[[rule]]` it was queued under (migration 0009).
    pub rule: Option<String>,
    pub priority: i64,
    /// How it is compressed before upload (migration 0011); `None`: as it is.
    pub compress: Option<crate::compress::Compress>,
    /// Its compressed copy, once written: what is uploaded and verified.
    pub spool: Option<crate::compress::Spooled>,
}

/// One part's row.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRow {
    pub index: u32,
    pub offset: u64,
    pub length: u64,
    pub state: PartState,
    pub receipt: Option<Receipt>,
}

#[derive(Debug, Clone, Copy)]
pub enum RetrySelector {
    One(FileId),
    AllFailed,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// The longest wait the engine ever schedules, in ms (see
    /// [`Journal::set_horizon`]); `i64::MAX` until it is told.
    horizon_ms: i64,
    /// When [`Journal::relieve_full`] last checkpointed.
    relieved_at: Option<std::time::Instant>,
    /// Whether [`Journal::sync`] synced the journal's folder yet (once per open).
    dir_synced: bool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// `file:` URI of `path` with `immutable=1`: no locks, no shared memory.
fn immutable_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Transactions committed by this process's journal connections, served as
/// `dropship_journal_commits_total`.
static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Durability barriers ([`Journal::sync`]) taken, served as
/// `dropship_journal_syncs_total`: what a file's bookkeeping costs the disk.
static SYNCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`COMMITS`].
pub fn commits() -> u64 {
    COMMITS.load(std::sync::atomic::Ordering::Relaxed)
}

/// See [`SYNCS`].
pub fn syncs() -> u64 {
    SYNCS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Statements through the connection's statement cache. Parsing and planning a
/// statement cost more CPU than running it on these small rows; a file's bookkeeping
/// runs the same few dozen statements for every file.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// SQLite's page size (the default; the journal never sets another).
const PAGE: u64 = 4096;

/// WAL pages between checkpoints on a filesystem of `size` bytes: SQLite's 1000,
/// or a sixteenth of a small filesystem, at least 100 (see `configure`).
fn checkpoint_pages(size: Option<u64>) -> u64 {
    const MOST: u64 = 1000;
    size.map_or(MOST, |s| (s / 16 / PAGE).clamp(100, MOST))
}

/// `journal_size_limit` for `pages` between checkpoints: the WAL file is kept at
/// that size (not cut and grown again), and at least at 1 MiB.
fn wal_size_limit(pages: u64) -> u64 {
    (pages * PAGE).max(1 << 20)
}

/// Statements the cache keeps (rusqlite's default is 16; the journal has about 60).
const STATEMENT_CACHE: usize = 96;

/// SQLite's "this is not a usable database" codes: reported as damage, never
/// "fixed" by recreating the file.
fn is_damage(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(e.sqlite_error_code(), Some(DatabaseCorrupt | NotADatabase))
}

impl Journal {
    /// Opens (creating if needed) the journal for the daemon: WAL, foreign keys,
    /// `quick_check`, then pending migrations in one transaction.
    pub fn open(path: &Path) -> Result<Journal> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| JournalError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(format!(
                    "{}: {e}",
                    dir.display()
                ))),
            })?;
        }
        let conn = Connection::open(path).map_err(|source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut j = Journal {
            conn,
            path: path.to_path_buf(),
            horizon_ms: i64::MAX,
            relieved_at: None,
            dir_synced: false,
        };
        j.configure(true)?;
        j.quick_check()?;
        j.migrate()?;
        Ok(j)
    }

    /// After a write failed on a full filesystem: moves what the WAL holds into the
    /// database and truncates the WAL. SQLite checkpoints by itself only once the
    /// WAL reaches its threshold (`checkpoint_pages`); on a full filesystem it may
    /// never get there, and every retried write would grow the WAL into the space
    /// freed meanwhile, so the journal stayed full for good (seen on a 2 MiB tmpfs).
    /// At most once a second: the watcher retries its writes faster than that.
    pub fn relieve_full(&mut self) {
        if self
            .relieved_at
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
        {
            return;
        }
        self.relieved_at = Some(std::time::Instant::now());
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::debug!(error = %e, "checkpoint on a full disk failed; tried again later");
        }
    }

    /// Whether the journal answers at all (the watchdog's question).
    pub fn ping(&self) -> Result<()> {
        self.conn.row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    /// Opens an existing journal read-only, for `status` while the daemon runs.
    ///
    /// On a filesystem mounted read-only (an ext4 that remounted itself after an
    /// error), SQLite cannot create the WAL's shared-memory file a reader needs;
    /// nobody can write there either, so the file is opened as immutable instead.
    pub fn open_read_only(path: &Path) -> Result<Journal> {
        match Journal::read_only(path, false) {
            Err(JournalError::Open { .. })
                if crate::disk::Disk::of(path).is_some_and(|d| d.read_only) =>
            {
                Journal::read_only(path, true)
            }
            other => other,
        }
    }

    fn read_only(path: &Path, immutable: bool) -> Result<Journal> {
        let open_error = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(open_error)?;
        let j = Journal {
            conn,
            path: path.to_path_buf(),
            horizon_ms: i64::MAX,
            relieved_at: None,
            dir_synced: false,
        };
        j.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| j.damage_or(e))?;
        // The first read is where SQLite finds it cannot open the WAL's files
        // (`Open`, not damage).
        let found = j.user_version()?;
        if found > SCHEMA_VERSION {
            return Err(JournalError::TooNew {
                path: j.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(JournalError::NeedsUpgrade {
                path: j.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(j)
    }

    /// The longest wait the engine ever schedules (`retry_max`, a join's poll). A
    /// row due further ahead than that was scheduled by a clock that has since
    /// jumped backwards (a device that booted without a real-time clock, then NTP):
    /// it is due now, rather than in however long the jump was.
    pub fn set_horizon(&mut self, longest_wait: Duration) {
        self.horizon_ms = i64::try_from(longest_wait.as_millis()).unwrap_or(i64::MAX);
    }

    /// A private journal in memory, for tests.
    pub fn open_in_memory() -> Result<Journal> {
        let mut j = Journal {
            conn: Connection::open_in_memory()?,
            path: PathBuf::from(":memory:"),
            horizon_ms: i64::MAX,
            relieved_at: None,
            dir_synced: false,
        };
        j.configure(false)?;
        j.migrate()?;
        Ok(j)
    }

    fn damage_or(&self, e: rusqlite::Error) -> JournalError {
        if is_damage(&e) {
            JournalError::Damaged {
                path: self.path.clone(),
                detail: e.to_string(),
            }
        } else {
            JournalError::Open {
                path: self.path.clone(),
                source: e,
            }
        }
    }

    fn configure(&mut self, wal: bool) -> Result<()> {
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| self.damage_or(e))?;
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        self.conn.commit_hook(Some(|| {
            COMMITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false // never turn a commit into a rollback
        }))?;
        if wal {
            let mode: String = self
                .conn
                .row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| self.damage_or(e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(JournalError::Damaged {
                    path: self.path.clone(),
                    detail: format!("cannot switch to WAL mode (got {mode})"),
                });
            }
        }
        // NORMAL: see the module doc for what a power cut may undo and why that is
        // safe; `sync` is the barrier before what cannot be undone.
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.damage_or(e))?;
        if wal {
            // A checkpoint every 1000 pages (4 MiB, SQLite's default), and the WAL
            // file kept at that size between them rather than cut and grown again.
            // Every 100 pages, as before, the checkpoints (a copy and two fsyncs, in
            // the commit that crosses the threshold, with the journal's lock held)
            // took a third of a small file's journal time: 640 files a second
            // against 720, with 8 workers 890 against 1,070 to 1,220.
            //
            // On a small filesystem the WAL must never be what fills it: a
            // checkpoint needs room in the database file, so a WAL that took the
            // last of it can never be moved out (a 2 MiB tmpfs, with 1000 pages,
            // stayed full for good). There the threshold is a sixteenth of the
            // filesystem, at least the 100 pages (and 1 MiB WAL file) that the
            // full-disk test (`tests/device.rs`) has always passed with.
            let pages = checkpoint_pages(crate::disk::Disk::of(&self.path).map(|d| d.size_bytes));
            self.conn
                .execute_batch(&format!(
                    "PRAGMA wal_autocheckpoint = {pages}; PRAGMA journal_size_limit = {};",
                    wal_size_limit(pages)
                ))
                .map_err(|e| self.damage_or(e))?;
        }
        Ok(())
    }

    /// Makes every transaction committed so far durable: a power cut after this
    /// returns cannot undo them. Taken before a step that cannot be undone (removing
    /// or moving a delivered file, beginning a remote session), never per commit (see
    /// the module doc).
    ///
    /// SQLite has written each commit's pages to the WAL file already (into the page
    /// cache); syncing that file is the same sync a `FULL` commit ends with, and it
    /// covers every commit before. The names are the ones SQLite resolved (a journal
    /// path that is a symbolic link has its WAL beside the link's target). No WAL file
    /// means every commit is in the database file itself, which is synced instead.
    /// The WAL file is created anew by each start, so its folder is synced too, once.
    pub fn sync(&mut self) -> Result<()> {
        let db = match self.conn.path() {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Ok(()), // in memory
        };
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        let synced = (|| -> std::io::Result<()> {
            match std::fs::File::open(&wal) {
                Ok(f) => f.sync_data()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::File::open(&db)?.sync_data()?
                }
                Err(e) => return Err(e),
            }
            if !self.dir_synced {
                if let Some(dir) = db.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                self.dir_synced = true;
            }
            Ok(())
        })();
        synced.map_err(|source| JournalError::Sync {
            path: self.path.clone(),
            source,
        })?;
        SYNCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn quick_check(&self) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("PRAGMA quick_check")
            .map_err(|e| self.damage_or(e))?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.damage_or(e))?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(JournalError::Damaged {
                path: self.path.clone(),
                detail: format!("quick_check: {}", rows.join("; ")),
            })
        }
    }

    fn user_version(&self) -> Result<i64> {
        self.conn
            .row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.damage_or(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let found = self.user_version()?;
        if found > SCHEMA_VERSION {
            return Err(JournalError::TooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        // All pending steps and the version bump commit together, or not at all.
        let tx = self.conn.transaction()?;
        for (name, sql) in &MIGRATIONS[found as usize..] {
            tx.execute_batch(sql).map_err(|e| JournalError::Damaged {
                path: self.path.clone(),
                detail: format!("migration {name} failed: {e}"),
            })?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    // ---- internals ------------------------------------------------------------------

    /// Moves a file from one of `from` to `to`, setting `set` (which numbers its
    /// parameters from ?4; may be empty) in the same statement.
    fn transition(
        &mut self,
        id: FileId,
        from: &[FileState],
        to: FileState,
        set: &str,
        extra: &[&dyn rusqlite::ToSql],
    ) -> Result<()> {
        debug_assert!(from.iter().all(|f| f.may_become(to)), "{from:?} -> {to}");
        let from_list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let set = if set.is_empty() {
            String::new()
        } else {
            format!(", {set}")
        };
        let sql = format!(
            "UPDATE files SET state = ?2, updated_at = ?3{set}
             WHERE id = ?1 AND state IN ({from_list})"
        );
        let now = now_ms();
        let to_name = to.as_str();
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id, &to_name, &now];
        args.extend_from_slice(extra);
        let n = self.conn.exec(&sql, args.as_slice())?;
        if n == 0 {
            let expected = from
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("|");
            return Err(self.stale(id, &expected));
        }
        Ok(())
    }

    fn stale(&self, id: FileId, expected: &str) -> JournalError {
        let found = self
            .conn
            .row("SELECT state FROM files WHERE id = ?1", params![id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .ok()
            .flatten()
            .unwrap_or_else(|| "no row".into());
        JournalError::StaleState {
            file: id,
            expected: expected.into(),
            found,
        }
    }

    fn stale_part(&self, id: FileId, index: u32, expected: PartState) -> JournalError {
        let file_state = self
            .file(id)
            .ok()
            .flatten()
            .map_or("no row".to_string(), |f| f.state.to_string());
        JournalError::StaleState {
            file: id,
            expected: format!("file uploading, part {index} {expected}"),
            found: format!("file {file_state}"),
        }
    }
}

fn file_row(conn: &Connection, id: FileId) -> Result<Option<FileRow>> {
    conn.row(
        &format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"),
        params![id],
        |r| Ok(read_file_row(r)),
    )
    .optional()?
    .transpose()
}

/// The active states, as an SQL list.
const ACTIVE_SQL: &str = "'queued','uploading','completing','joining','verifying','retrying'";

const FILE_COLUMNS: &str = "id, path, key, size, mtime_ns, inode, state, session, part_size,
    attempts, failures, verify_failures, next_attempt_at, last_error, bytes_sent, digests, remote,
    hash_state, clash_checked, join_started, join_restarts, pushed, rule, priority, compress, spool";

fn read_file_row(r: &Row<'_>) -> Result<FileRow> {
    let id: FileId = r.get(0)?;
    let state: String = r.get(6)?;
    let json = |i: usize| r.get::<_, Option<String>>(i);
    Ok(FileRow {
        id,
        path: PathBuf::from(std::ffi::OsString::from_vec(r.get::<_, Vec<u8>>(1)?)),
        key: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        mtime_ns: r.get(4)?,
        inode: r.get::<_, i64>(5)? as u64,
        state: state.parse().map_err(|detail| JournalError::BadRow {
            file: id,
            column: "state",
            detail,
        })?,
        session: json(7)?
            .map(|t| parse_json(id, "session", &t))
            .transpose()?,
        part_size: r.get::<_, Option<i64>>(8)?.map(|n| n as u64),
        attempts: r.get(9)?,
        failures: r.get(10)?,
        verify_failures: r.get(11)?,
        next_attempt_at: r.get(12)?,
        last_error: r.get(13)?,
        bytes_sent: r.get::<_, i64>(14)? as u64,
        digests: json(15)?
            .map(|t| parse_json(id, "digests", &t))
            .transpose()?,
        remote: json(16)?
            .map(|t| parse_json(id, "remote", &t))
            .transpose()?,
        // A checkpoint that does not parse only costs a re-read: drop it, never fail
        // the row for it.
        hash_state: json(17)?.and_then(|t| serde_json::from_str(&t).ok()),
        clash_checked: r.get(18)?,
        join_started: r.get(19)?,
        join_restarts: r.get(20)?,
        pushed: r.get(21)?,
        rule: r.get(22)?,
        priority: r.get(23)?,
        compress: r
            .get::<_, Option<String>>(24)?
            .and_then(|c| crate::compress::Compress::from_journal(&c)),
        // A record that does not parse only costs a new compression.
        spool: json(25)?.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| JournalError::Task(format!("encoding JSON: {e}")))
}

fn parse_json<T: serde::de::DeserializeOwned>(
    file: FileId,
    column: &'static str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| JournalError::BadRow {
        file,
        column,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
