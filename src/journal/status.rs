//! What `dropship status` reads: counts, one line per file, and the notices the
//! daemon leaves for conditions that outlast one file (credentials refused, a folder
//! that cannot be read).

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use super::*;

/// What `dropship status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub counts: BTreeMap<&'static str, u64>,
    /// Whether the backend accepts work: `ok`, or `auth_refused` while the service
    /// refuses the credentials (uploads are paused, nothing is failed for it).
    pub backend: BackendHealth,
    /// Every condition the daemon reports, the backend's included.
    pub notices: Vec<Notice>,
    pub files: Vec<FileStatus>,
}

/// `status --json`'s `backend` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendHealth {
    /// `ok`, `auth_refused` or `unreachable`.
    pub state: String,
    /// Unix milliseconds when the state began; `null` when `ok`.
    pub since: Option<i64>,
    pub reason: Option<String>,
    /// Unix milliseconds of the next try while paused; `null` when `ok`.
    pub retry_at: Option<i64>,
    /// Tries since the state began; `null` when `ok`.
    pub tries: Option<u32>,
}

/// The backend notice's plan of its next try (see [`Journal::set_backend_plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendPlan {
    pub state: String,
    pub retry_at: i64,
    pub tries: u32,
}

/// A condition that outlasts one file. Topics: `backend` (state `auth_refused`),
/// `watch:<folder>` (state `unreadable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub topic: String,
    pub state: String,
    /// Unix milliseconds when the condition began.
    pub since: i64,
    pub reason: Option<String>,
}

impl BackendHealth {
    pub fn ok() -> BackendHealth {
        BackendHealth {
            state: "ok".into(),
            since: None,
            reason: None,
            retry_at: None,
            tries: None,
        }
    }
}

impl StatusReport {
    /// The report of a journal that does not exist yet.
    pub fn empty() -> StatusReport {
        StatusReport {
            counts: FileState::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
            backend: BackendHealth::ok(),
            notices: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// See [`Journal::backlog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Sum of the sizes of the files not yet delivered.
    pub bytes: u64,
    /// Unix milliseconds when the oldest of them was recorded.
    pub oldest_created_at: Option<i64>,
}

/// The topic of the backend's notice.
pub const BACKEND_TOPIC: &str = "backend";

#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    pub id: FileId,
    pub path: String,
    pub state: &'static str,
    pub size: u64,
    pub bytes_sent: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Unix milliseconds of the next attempt, for `retrying` files, and of the next
    /// poll of the service's join, for `joining` ones.
    pub next_attempt_at: Option<i64>,
    /// Unix milliseconds when the service accepted the completion and began joining
    /// the parts; `null` where it has not (or the service has no join).
    pub join_started: Option<i64>,
    pub parts_total: u32,
    pub parts_uploaded: u32,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
}

impl Journal {
    /// Records that `topic` is in `state`; `since` keeps the time the state began
    /// when it is set again unchanged (a condition re-reported is not a new one).
    pub fn set_notice(&mut self, topic: &str, state: &str, reason: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO notices (topic, state, since, reason) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (topic) DO UPDATE SET
                since = CASE WHEN notices.state = excluded.state THEN notices.since
                             ELSE excluded.since END,
                state = excluded.state, reason = excluded.reason",
            params![topic, state, now_ms(), reason],
        )?;
        Ok(())
    }

    /// The plan of the backend's next try while it is paused: `retry_at` (Unix
    /// milliseconds) and the tries so far. A no-op without a backend notice.
    pub fn set_backend_plan(&mut self, retry_at: i64, tries: u32) -> Result<()> {
        self.conn.execute(
            "UPDATE notices SET retry_at = ?2, tries = ?3 WHERE topic = ?1",
            params![BACKEND_TOPIC, retry_at, tries],
        )?;
        Ok(())
    }

    /// The backend notice's plan, if it has one.
    pub fn backend_plan(&self) -> Result<Option<BackendPlan>> {
        let mut stmt = self.conn.prepare(
            "SELECT state, retry_at, tries FROM notices
             WHERE topic = ?1 AND retry_at IS NOT NULL AND tries IS NOT NULL",
        )?;
        let mut rows = stmt.query_map(params![BACKEND_TOPIC], |r| {
            Ok(BackendPlan {
                state: r.get(0)?,
                retry_at: r.get(1)?,
                tries: r.get(2)?,
            })
        })?;
        Ok(rows.next().transpose()?)
    }

    /// The condition of `topic` is over. Returns whether there was one.
    pub fn clear_notice(&mut self, topic: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM notices WHERE topic = ?1", params![topic])?
            > 0)
    }

    /// Clears every notice whose topic starts with `prefix` (a fresh start: the
    /// daemon that left them is gone, and the new one reports what it finds).
    pub fn clear_notices(&mut self, prefix: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM notices WHERE substr(topic, 1, length(?1)) = ?1",
            params![prefix],
        )?;
        Ok(())
    }

    pub fn notices(&self) -> Result<Vec<Notice>> {
        let mut stmt = self
            .conn
            .prepare("SELECT topic, state, since, reason FROM notices ORDER BY topic")?;
        let rows = stmt.query_map([], |r| {
            Ok(Notice {
                topic: r.get(0)?,
                state: r.get(1)?,
                since: r.get(2)?,
                reason: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Files by state and the bytes put on the wire so far, summed: one cheap query
    /// for the daemon's one-line `STATUS=` to systemd.
    pub fn summary(&self) -> Result<(BTreeMap<String, u64>, u64)> {
        let mut stmt = self.conn.prepare(
            "SELECT state, COUNT(*), COALESCE(SUM(bytes_sent), 0) FROM files GROUP BY state",
        )?;
        let mut counts = BTreeMap::new();
        let mut sent = 0u64;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, n, bytes) = row?;
            counts.insert(state, n.max(0) as u64);
            sent = sent.saturating_add(bytes.max(0) as u64);
        }
        Ok((counts, sent))
    }

    /// What is not yet delivered (every state that is not `done`, `failed` or
    /// `superseded`): its bytes summed, and when the oldest of it was recorded (Unix
    /// milliseconds; `None` when nothing waits). One aggregate for the metrics'
    /// scrape; the rows it reads are those of the partial index of active paths.
    pub fn backlog(&self) -> Result<Backlog> {
        let (bytes, oldest) = self.conn.query_row(
            "SELECT COALESCE(SUM(size), 0), MIN(created_at) FROM files
             WHERE state NOT IN ('done', 'failed', 'superseded')",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
        )?;
        Ok(Backlog {
            bytes: bytes.max(0) as u64,
            oldest_created_at: oldest,
        })
    }

    /// Whether SQLite answers: reads the schema version from the database header.
    /// For `/healthz`, cheap enough for every probe; the probe also shows that the
    /// journal's lock can be had (a call stuck behind a long one is a timeout).
    pub fn ping(&self) -> Result<()> {
        self.user_version().map(|_| ())
    }

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
                    (SELECT COUNT(*) FROM parts p WHERE p.file_id = f.id AND p.state = 'uploaded'),
                    f.join_started
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
                next_attempt_at: matches!(state, "retrying" | "joining").then_some(next),
                updated_at: r.get(8)?,
                parts_total: r.get(9)?,
                parts_uploaded: r.get(10)?,
                join_started: r.get(11)?,
            })
        })?;
        let files = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        let notices = self.notices()?;
        let plan = self.backend_plan()?;
        let backend = match notices.iter().find(|n| n.topic == BACKEND_TOPIC) {
            Some(n) => BackendHealth {
                state: n.state.clone(),
                since: Some(n.since),
                reason: n.reason.clone(),
                retry_at: plan.as_ref().map(|p| p.retry_at),
                tries: plan.as_ref().map(|p| p.tries),
            },
            None => BackendHealth::ok(),
        };
        Ok(StatusReport {
            counts,
            backend,
            notices,
            files,
        })
    }
}
