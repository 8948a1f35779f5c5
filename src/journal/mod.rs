//! The journal: the only code that speaks SQL.
//!
//! One SQLite file (WAL, `synchronous = FULL`: a power cut must not undo an
//! acknowledged part or a `done`) with a row per file and a row per part.
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

mod handle;
pub mod states;

use std::collections::BTreeMap;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;

pub use handle::JournalHandle;
pub use states::{FileState, PartState};

use crate::backend::{FileDigests, Receipt, RemoteObject, Session};

/// The schema, in order. `user_version` is the number of migrations applied.
const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_initial",
    include_str!("../../migrations/0001_initial.sql"),
)];

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
}

impl JournalError {
    /// Whether a worker's file changed state under it (superseded, retried...).
    pub fn is_stale(&self) -> bool {
        matches!(self, JournalError::StaleState { .. })
    }
}

type Result<T> = std::result::Result<T, JournalError>;

/// A file found finished by the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: PathBuf,
    /// `None` when the name cannot be sent; the row is then `failed` at once.
    pub key: Option<String>,
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

/// What `dropship status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub counts: BTreeMap<&'static str, u64>,
    pub files: Vec<FileStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub id: FileId,
    pub path: String,
    pub state: &'static str,
    pub size: u64,
    pub bytes_sent: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Unix milliseconds of the next attempt, for `retrying` files.
    pub next_attempt_at: Option<i64>,
    pub parts_total: u32,
    pub parts_uploaded: u32,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
}

/// Which failed files `dropship retry` re-queues.
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
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

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
        };
        j.configure(true)?;
        j.quick_check()?;
        j.migrate()?;
        Ok(j)
    }

    /// Opens an existing journal read-only, for `status` while the daemon runs.
    pub fn open_read_only(path: &Path) -> Result<Journal> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let j = Journal {
            conn,
            path: path.to_path_buf(),
        };
        j.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| j.damage_or(e))?;
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

    /// A private journal in memory, for tests.
    pub fn open_in_memory() -> Result<Journal> {
        let mut j = Journal {
            conn: Connection::open_in_memory()?,
            path: PathBuf::from(":memory:"),
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
        if wal {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| self.damage_or(e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(JournalError::Damaged {
                    path: self.path.clone(),
                    detail: format!("cannot switch to WAL mode (got {mode})"),
                });
            }
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.damage_or(e))?;
        Ok(())
    }

    fn quick_check(&self) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check")
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
            .query_row("PRAGMA user_version", [], |r| r.get(0))
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

    // ---- the watcher's side ---------------------------------------------------------

    /// Records a finished file, once per content: the same path with the same size,
    /// mtime and inode is never queued twice, whatever state its row is in.
    pub fn enqueue(&mut self, f: &NewFile) -> Result<Enqueued> {
        let tx = self.conn.transaction()?;
        let path = f.path.as_os_str().as_bytes();
        let latest: Option<(FileId, String, i64, i64, i64)> = tx
            .query_row(
                "SELECT id, state, size, mtime_ns, inode FROM files
                 WHERE path = ?1 ORDER BY id DESC LIMIT 1",
                params![path],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        if let Some((id, state, size, mtime, inode)) = latest {
            let state: FileState = state.parse().map_err(|detail| JournalError::BadRow {
                file: id,
                column: "state",
                detail,
            })?;
            let same = size == f.size as i64 && mtime == f.mtime_ns && inode == f.inode as i64;
            if same && state != FileState::Superseded {
                return Ok(Enqueued::Unchanged(id));
            }
        }
        // Whatever row of this path is still in progress holds older content.
        let replaced: Option<FileId> = tx
            .query_row(
                &format!("SELECT id FROM files WHERE path = ?1 AND state IN ({ACTIVE_SQL})"),
                params![path],
                |r| r.get(0),
            )
            .optional()?;
        if replaced.is_some() {
            tx.execute(
                &format!(
                    "UPDATE files SET state = 'superseded', updated_at = ?2,
                            last_error = 'the local file changed; newer content queued'
                     WHERE path = ?1 AND state IN ({ACTIVE_SQL})"
                ),
                params![path, now_ms()],
            )?;
        }
        let (state, err) = match &f.key {
            Some(_) => (FileState::Queued, None),
            None => (
                FileState::Failed,
                Some("the file name is not valid UTF-8; no backend can name it"),
            ),
        };
        let now = now_ms();
        tx.execute(
            "INSERT INTO files (path, key, size, mtime_ns, inode, state, last_error,
                                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![
                path,
                f.key,
                f.size as i64,
                f.mtime_ns,
                f.inode as i64,
                state.as_str(),
                err,
                now
            ],
        )?;
        let new = tx.last_insert_rowid();
        tx.commit()?;
        Ok(match replaced {
            Some(old) => Enqueued::Replaced { old, new },
            None => Enqueued::Added(new),
        })
    }

    // ---- the engine's side ----------------------------------------------------------

    /// After a crash or restart: rows a worker held go back to `queued` (their
    /// session, parts and digests are kept, so the work resumes), and parts that were
    /// in flight become `pending`. Returns the number of files resumed.
    pub fn recover(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE files SET state = 'queued', updated_at = ?1
             WHERE state IN ('uploading', 'completing', 'verifying')",
            params![now_ms()],
        )?;
        tx.execute(
            "UPDATE parts SET state = 'pending' WHERE state = 'uploading'",
            [],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// Claims the next file to work on (`queued`, or `retrying` and due) and moves
    /// it to `uploading`. Rows whose path is in `busy` are skipped: a worker still
    /// holds an older row of that path, and two uploads of one name must not race.
    /// A row that cannot be read is marked `failed` with the reason.
    pub fn claim_next(&mut self, now: i64, busy: &[PathBuf]) -> Result<Option<FileRow>> {
        let tx = self.conn.transaction()?;
        let mut stmt = tx.prepare(
            "SELECT id, path FROM files
             WHERE state = 'queued' OR (state = 'retrying' AND next_attempt_at <= ?1)
             ORDER BY next_attempt_at, id",
        )?;
        let mut rows = stmt.query(params![now])?;
        let mut chosen = None;
        while let Some(r) = rows.next()? {
            let path = PathBuf::from(std::ffi::OsString::from_vec(r.get::<_, Vec<u8>>(1)?));
            if !busy.contains(&path) {
                chosen = Some(r.get::<_, FileId>(0)?);
                break;
            }
        }
        drop(rows);
        drop(stmt);
        let Some(id) = chosen else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE files SET state = 'uploading', attempts = attempts + 1, updated_at = ?2
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        match file_row(&tx, id) {
            Ok(Some(row)) => {
                tx.commit()?;
                Ok(Some(row))
            }
            Ok(None) => Err(JournalError::NoSuchFile(id)),
            Err(e @ JournalError::BadRow { .. }) => {
                // Never claimable again as it is; a person must look at it.
                tx.execute(
                    "UPDATE files SET state = 'failed', last_error = ?2, updated_at = ?3
                     WHERE id = ?1",
                    params![id, format!("unreadable journal row: {e}"), now_ms()],
                )?;
                tx.commit()?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// When the earliest `retrying` file becomes due (unix ms).
    pub fn next_due(&self) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_attempt_at) FROM files WHERE state = 'retrying'",
            [],
            |r| r.get(0),
        )?)
    }

    pub fn file(&self, id: FileId) -> Result<Option<FileRow>> {
        file_row(&self.conn, id)
    }

    pub fn parts(&self, id: FileId) -> Result<Vec<PartRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT idx, offset, length, state, receipt FROM parts
             WHERE file_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (idx, offset, length, state, receipt) = row?;
            out.push(PartRow {
                index: idx as u32,
                offset: offset as u64,
                length: length as u64,
                state: state.parse().map_err(|detail| JournalError::BadRow {
                    file: id,
                    column: "parts.state",
                    detail,
                })?,
                receipt: receipt
                    .map(|t| parse_json(id, "parts.receipt", &t))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    /// Records the session (or `None` for a single-request upload) and the part plan
    /// `(offset, length)` of an `uploading` file that has none yet.
    pub fn start_session(
        &mut self,
        id: FileId,
        session: Option<&Session>,
        part_size: u64,
        plan: &[(u64, u64)],
    ) -> Result<()> {
        let session_json = session.map(to_json).transpose()?;
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE files SET session = ?2, part_size = ?3, updated_at = ?4
             WHERE id = ?1 AND state = 'uploading' AND session IS NULL",
            params![id, session_json, part_size as i64, now_ms()],
        )?;
        if n == 0 {
            drop(tx);
            return Err(self.stale(id, "uploading without a session"));
        }
        // Parts without a session belong to no upload (a failed single request, say).
        tx.execute("DELETE FROM parts WHERE file_id = ?1", params![id])?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO parts (file_id, idx, offset, length, state)
                 VALUES (?1, ?2, ?3, ?4, 'pending')",
            )?;
            for (i, (offset, length)) in plan.iter().enumerate() {
                ins.execute(params![id, i as i64, *offset as i64, *length as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a file's session, part plan, digests and remote object so that the
    /// next attempt begins again. Returns the session it held (to abort remotely).
    pub fn discard_session(&mut self, id: FileId) -> Result<Option<Session>> {
        let row = self.file(id)?.ok_or(JournalError::NoSuchFile(id))?;
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM parts WHERE file_id = ?1", params![id])?;
        tx.execute(
            "UPDATE files SET session = NULL, part_size = NULL, digests = NULL, remote = NULL,
                    updated_at = ?2
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        tx.commit()?;
        Ok(row.session)
    }

    /// Clears the session of a `failed` or `superseded` row once it was aborted.
    pub fn forget_session(&mut self, id: FileId) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET session = NULL WHERE id = ?1
             AND state IN ('failed', 'superseded')",
            params![id],
        )?;
        Ok(())
    }

    /// Sessions left open by rows that will never resume them.
    pub fn orphan_sessions(&self) -> Result<Vec<(FileId, Session)>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, session FROM files
             WHERE state IN ('failed', 'superseded') AND session IS NOT NULL",
        )?;
        let rows: Vec<(FileId, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, s)| Ok((id, parse_json(id, "session", &s)?)))
            .collect()
    }

    /// `pending → uploading`, committed before the bytes leave. The part's length
    /// is added to `bytes_sent` now; [`Journal::part_failed`] takes back what did
    /// not leave. A crash in between over-counts by at most the parts in flight.
    pub fn part_start(&mut self, id: FileId, index: u32) -> Result<()> {
        let tx = self.conn.transaction()?;
        let length: Option<i64> = tx
            .query_row(
                "UPDATE parts SET state = 'uploading'
                 WHERE file_id = ?1 AND idx = ?2 AND state = 'pending'
                   AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND state = 'uploading')
                 RETURNING length",
                params![id, index],
                |r| r.get(0),
            )
            .optional()?;
        let Some(length) = length else {
            drop(tx);
            return Err(self.stale_part(id, index, PartState::Pending));
        };
        tx.execute(
            "UPDATE files SET bytes_sent = bytes_sent + ?2, updated_at = ?3 WHERE id = ?1",
            params![id, length, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// `uploading → uploaded` with the server's receipt. Progress resets the
    /// file's failure streak (and so its backoff).
    pub fn part_uploaded(&mut self, id: FileId, index: u32, receipt: &Receipt) -> Result<()> {
        let json = to_json(receipt)?;
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE parts SET state = 'uploaded', receipt = ?3
             WHERE file_id = ?1 AND idx = ?2 AND state = 'uploading'
               AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND state = 'uploading')",
            params![id, index, json],
        )?;
        if n == 0 {
            drop(tx);
            return Err(self.stale_part(id, index, PartState::Uploading));
        }
        tx.execute(
            "UPDATE files SET failures = 0, updated_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// `uploading → pending` after a failed attempt; `unsent` bytes never left.
    pub fn part_failed(&mut self, id: FileId, index: u32, unsent: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE parts SET state = 'pending'
             WHERE file_id = ?1 AND idx = ?2 AND state = 'uploading'",
            params![id, index],
        )?;
        if n == 1 {
            tx.execute(
                "UPDATE files SET bytes_sent = MAX(0, bytes_sent - ?2) WHERE id = ?1",
                params![id, unsent as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// `pending → uploaded`: the server's list says it holds this part.
    pub fn part_held(&mut self, id: FileId, index: u32, receipt: &Receipt) -> Result<()> {
        let json = to_json(receipt)?;
        let n = self.conn.execute(
            "UPDATE parts SET state = 'uploaded', receipt = ?3
             WHERE file_id = ?1 AND idx = ?2 AND state = 'pending'
               AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND state = 'uploading')",
            params![id, index, json],
        )?;
        if n == 0 {
            return Err(self.stale_part(id, index, PartState::Pending));
        }
        Ok(())
    }

    /// `uploaded → pending`: the server's list says it lost this part.
    pub fn part_lost(&mut self, id: FileId, index: u32) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE parts SET state = 'pending', receipt = NULL
             WHERE file_id = ?1 AND idx = ?2 AND state = 'uploaded'
               AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND state = 'uploading')",
            params![id, index],
        )?;
        if n == 0 {
            return Err(self.stale_part(id, index, PartState::Uploaded));
        }
        Ok(())
    }

    /// `uploading → completing`, with the whole-file digests of the read pass.
    pub fn to_completing(&mut self, id: FileId, digests: &FileDigests) -> Result<()> {
        let json = to_json(digests)?;
        self.transition(
            id,
            &[FileState::Uploading],
            FileState::Completing,
            "digests = ?4",
            &[&json],
        )
    }

    /// `uploading | completing → verifying`, with the object the service returned.
    /// A single-request upload passes the receipt of its one part, recorded in the
    /// same transaction (a crash between the two would strand the row).
    pub fn to_verifying(
        &mut self,
        id: FileId,
        remote: &RemoteObject,
        digests: &FileDigests,
        single: Option<&Receipt>,
    ) -> Result<()> {
        let remote = to_json(remote)?;
        let digests = to_json(digests)?;
        let receipt = single.map(to_json).transpose()?;
        let tx = self.conn.transaction()?;
        if let Some(receipt) = receipt {
            tx.execute(
                "UPDATE parts SET state = 'uploaded', receipt = ?2 WHERE file_id = ?1 AND idx = 0",
                params![id, receipt],
            )?;
        }
        let n = tx.execute(
            "UPDATE files SET state = 'verifying', updated_at = ?2, remote = ?3, digests = ?4
             WHERE id = ?1 AND state IN ('uploading', 'completing')",
            params![id, now_ms(), remote, digests],
        )?;
        if n == 0 {
            drop(tx);
            return Err(self.stale(id, "uploading|completing"));
        }
        tx.commit()?;
        Ok(())
    }

    /// `uploading → verifying` for a claimed file whose upload was already completed
    /// (a verification cut short by a failure or a restart).
    pub fn resume_verifying(&mut self, id: FileId) -> Result<()> {
        self.transition(id, &[FileState::Uploading], FileState::Verifying, "", &[])
    }

    /// `verifying → done`. `note` is kept in `last_error` (e.g. why the post-action
    /// was skipped); `None` clears it.
    pub fn to_done(&mut self, id: FileId, note: Option<&str>) -> Result<()> {
        self.transition(
            id,
            &[FileState::Verifying],
            FileState::Done,
            "last_error = ?4, failures = 0",
            &[&note],
        )
    }

    /// A temporary failure: wait until `at` (unix ms). `failures` is the new length
    /// of the failure streak, from which the engine computed `at`.
    pub fn retry_later(&mut self, id: FileId, at: i64, failures: u32, why: &str) -> Result<()> {
        self.transition(
            id,
            &[
                FileState::Uploading,
                FileState::Completing,
                FileState::Verifying,
            ],
            FileState::Retrying,
            "next_attempt_at = ?4, failures = ?5, last_error = ?6",
            &[&at, &failures, &why],
        )
    }

    /// Counts a verification mismatch; returns the new count.
    pub fn count_verify_failure(&mut self, id: FileId) -> Result<u32> {
        Ok(self.conn.query_row(
            "UPDATE files SET verify_failures = verify_failures + 1 WHERE id = ?1
             RETURNING verify_failures",
            params![id],
            |r| r.get(0),
        )?)
    }

    /// A permanent failure: the file needs a person.
    pub fn fail(&mut self, id: FileId, why: &str) -> Result<()> {
        self.transition(
            id,
            &FileState::ACTIVE,
            FileState::Failed,
            "last_error = ?4",
            &[&why],
        )
    }

    /// The local file changed under an active row. Returns the session to abort.
    pub fn supersede(&mut self, id: FileId, why: &str) -> Result<Option<Session>> {
        let row = self.file(id)?.ok_or(JournalError::NoSuchFile(id))?;
        self.transition(
            id,
            &FileState::ACTIVE,
            FileState::Superseded,
            "last_error = ?4",
            &[&why],
        )?;
        Ok(row.session)
    }

    /// Shutdown: hand a file back to the queue; its session and parts stay.
    pub fn checkpoint(&mut self, id: FileId) -> Result<()> {
        self.transition(
            id,
            &[
                FileState::Uploading,
                FileState::Completing,
                FileState::Verifying,
            ],
            FileState::Queued,
            "",
            &[],
        )
    }

    /// A worker ended without a resting state (its last journal write failed, or a
    /// part task panicked): the row goes to `retrying` at `at` and its in-flight parts
    /// back to `pending`. A no-op for a row already at rest. Returns whether it acted.
    pub fn release(&mut self, id: FileId, at: i64) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE files SET state = 'retrying', next_attempt_at = ?2, updated_at = ?3,
                    failures = failures + 1,
                    last_error = COALESCE(last_error, 'the attempt was interrupted')
             WHERE id = ?1 AND state IN ('uploading', 'completing', 'verifying')",
            params![id, at, now_ms()],
        )?;
        tx.execute(
            "UPDATE parts SET state = 'pending' WHERE file_id = ?1 AND state = 'uploading'",
            params![id],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Re-queues failed files (`dropship retry`), or makes a `retrying` one due now.
    /// A failed row whose path has newer content queued is superseded instead.
    pub fn retry(&mut self, which: RetrySelector) -> Result<Vec<FileId>> {
        let ids: Vec<FileId> = match which {
            RetrySelector::One(id) => {
                let row = self.file(id)?.ok_or(JournalError::NoSuchFile(id))?;
                match row.state {
                    FileState::Failed => vec![id],
                    FileState::Retrying => {
                        self.conn.execute(
                            "UPDATE files SET next_attempt_at = 0, failures = 0 WHERE id = ?1",
                            params![id],
                        )?;
                        return Ok(vec![id]);
                    }
                    other => {
                        return Err(JournalError::Refused {
                            file: id,
                            message: format!("is {other}, not failed or retrying"),
                        });
                    }
                }
            }
            RetrySelector::AllFailed => {
                let mut stmt = self
                    .conn
                    .prepare("SELECT id FROM files WHERE state = 'failed' ORDER BY id")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            }
        };
        let tx = self.conn.transaction()?;
        let mut requeued = Vec::new();
        for id in ids {
            // Only the newest row of a path holds the current content; an older
            // failed row is history.
            let newer: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM files o, files f WHERE f.id = ?1
                   AND o.path = f.path AND o.id > f.id)",
                params![id],
                |r| r.get(0),
            )?;
            if newer {
                tx.execute(
                    "UPDATE files SET state = 'superseded', updated_at = ?2 WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                continue;
            }
            // From scratch: its session was aborted when it failed, and a failure at
            // verification means the stored object is not to be trusted.
            tx.execute("DELETE FROM parts WHERE file_id = ?1", params![id])?;
            tx.execute(
                "UPDATE files SET state = 'queued', failures = 0, verify_failures = 0,
                        next_attempt_at = 0, session = NULL, part_size = NULL,
                        digests = NULL, remote = NULL, updated_at = ?2
                 WHERE id = ?1 AND state = 'failed'",
                params![id, now_ms()],
            )?;
            requeued.push(id);
        }
        tx.commit()?;
        Ok(requeued)
    }

    // ---- status ---------------------------------------------------------------------

    pub fn status(&self) -> Result<StatusReport> {
        let mut counts: BTreeMap<&'static str, u64> =
            FileState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT state, COUNT(*) FROM files GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                if let Ok(s) = state.parse::<FileState>() {
                    counts.insert(s.as_str(), n as u64);
                }
            }
        }
        let mut stmt = self.conn.prepare(
            "SELECT f.id, f.path, f.state, f.size, f.bytes_sent, f.attempts, f.last_error,
                    f.next_attempt_at, f.updated_at,
                    (SELECT COUNT(*) FROM parts p WHERE p.file_id = f.id),
                    (SELECT COUNT(*) FROM parts p WHERE p.file_id = f.id AND p.state = 'uploaded')
             FROM files f ORDER BY f.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let state: String = r.get(2)?;
            let state = state
                .parse::<FileState>()
                .map(FileState::as_str)
                .unwrap_or("unknown");
            let next: i64 = r.get(7)?;
            Ok(FileStatus {
                id: r.get(0)?,
                path: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)?).into_owned(),
                state,
                size: r.get::<_, i64>(3)? as u64,
                bytes_sent: r.get::<_, i64>(4)? as u64,
                attempts: r.get(5)?,
                last_error: r.get(6)?,
                next_attempt_at: (state == "retrying").then_some(next),
                updated_at: r.get(8)?,
                parts_total: r.get(9)?,
                parts_uploaded: r.get(10)?,
            })
        })?;
        let files = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(StatusReport { counts, files })
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
        let n = self.conn.execute(&sql, args.as_slice())?;
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
            .query_row("SELECT state FROM files WHERE id = ?1", params![id], |r| {
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
    conn.query_row(
        &format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"),
        params![id],
        |r| Ok(read_file_row(r)),
    )
    .optional()?
    .transpose()
}

/// The active states, as an SQL list.
const ACTIVE_SQL: &str = "'queued','uploading','completing','verifying','retrying'";

const FILE_COLUMNS: &str = "id, path, key, size, mtime_ns, inode, state, session, part_size,
    attempts, failures, verify_failures, next_attempt_at, last_error, bytes_sent, digests, remote";

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
