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
    /// What is still to deliver.
    pub backlog: Backlog,
    /// Files a worker holds or the service is assembling, with their progress.
    pub in_flight: Vec<InFlight>,
    /// The most recent errors of files not delivered, newest first.
    pub last_errors: Vec<LastError>,
    /// The rows listed (see [`StatusQuery`]), by id.
    pub files: Vec<FileStatus>,
    /// Rows of the journal not in `files`.
    pub files_omitted: u64,
}

/// `status --json`'s `backlog` object: files not yet delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backlog {
    pub files: u64,
    pub bytes: u64,
    /// Unix milliseconds when the oldest of them was recorded; `null` when none.
    pub oldest_queued_at: Option<i64>,
    pub oldest_queued_age_s: Option<f64>,
}

/// One of `status --json`'s `in_flight` files.
#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    pub id: FileId,
    pub path: String,
    pub state: &'static str,
    pub size: u64,
    /// Bytes of parts the service acknowledged.
    pub bytes_acknowledged: u64,
    /// `bytes_acknowledged / size`, 0 to 1.
    pub progress: f64,
    /// Bytes acknowledged by the service per second since the current attempt
    /// began (parts acknowledged this attempt over its time so far); `null` until
    /// the attempt's first part is acknowledged.
    pub rate_bytes_per_s: Option<u64>,
    /// Unix milliseconds when the current attempt began.
    pub started_at: Option<i64>,
}

/// One of `status --json`'s `last_errors`.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub id: FileId,
    pub path: String,
    pub state: &'static str,
    pub error: String,
    /// Unix milliseconds of the row's last change.
    pub at: i64,
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
            backlog: Backlog::default(),
            in_flight: Vec::new(),
            last_errors: Vec::new(),
            files: Vec::new(),
            files_omitted: 0,
        }
    }
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
    /// The `match` of the `[[rule]]` the file was queued under; `null`: `[upload]`.
    pub rule: Option<String>,
    /// The remote key, decided when the file was queued; `null` for a file that
    /// cannot have one (its `last_error` says why).
    pub key: Option<String>,
}

impl Journal {
    /// Records that `topic` is in `state`; `since` keeps the time the state began
    /// when it is set again unchanged (a condition re-reported is not a new one).
    pub fn set_notice(&mut self, topic: &str, state: &str, reason: &str) -> Result<()> {
        self.conn.exec(
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
        self.conn.exec(
            "UPDATE notices SET retry_at = ?2, tries = ?3 WHERE topic = ?1",
            params![BACKEND_TOPIC, retry_at, tries],
        )?;
        Ok(())
    }

    /// The backend notice's plan, if it has one.
    pub fn backend_plan(&self) -> Result<Option<BackendPlan>> {
        let mut stmt = self.conn.prepare_cached(
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
            .exec("DELETE FROM notices WHERE topic = ?1", params![topic])?
            > 0)
    }

    /// Clears every notice whose topic starts with `prefix` (a fresh start: the
    /// daemon that left them is gone, and the new one reports what it finds).
    pub fn clear_notices(&mut self, prefix: &str) -> Result<()> {
        self.conn.exec(
            "DELETE FROM notices WHERE substr(topic, 1, length(?1)) = ?1",
            params![prefix],
        )?;
        Ok(())
    }

    pub fn notices(&self) -> Result<Vec<Notice>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT topic, state, since, reason FROM notices ORDER BY topic")?;
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
        let mut stmt = self.conn.prepare_cached(
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

    /// What is not yet delivered: its files, their bytes, and when the oldest was
    /// recorded. One aggregate (for `status` and the metrics' scrape) over the
    /// rows of unfinished states, found through the state index.
    pub fn backlog(&self) -> Result<Backlog> {
        let now = now_ms();
        Ok(self.conn.row(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created_at) FROM files
                 WHERE state IN ({UNFINISHED})"
            ),
            [],
            |r| {
                let oldest: Option<i64> = r.get(2)?;
                Ok(Backlog {
                    files: r.get::<_, i64>(0)?.max(0) as u64,
                    bytes: r.get::<_, i64>(1)?.max(0) as u64,
                    oldest_queued_at: oldest,
                    oldest_queued_age_s: oldest.map(|at| (now - at).max(0) as f64 / 1000.0),
                })
            },
        )?)
    }

    /// Every row: the report as it was before `status` had to stay fast on big
    /// journals (tests and `status --all`).
    pub fn status(&self) -> Result<StatusReport> {
        self.status_with(&StatusQuery::everything())
    }

    /// What `status` shows. Every query reads an index or a bounded set of rows, so
    /// the answer takes milliseconds on a journal of 100,000 files; only
    /// `query.all` lists every row.
    pub fn status_with(&self, query: &StatusQuery) -> Result<StatusReport> {
        let now = now_ms();
        let mut counts: BTreeMap<&'static str, u64> =
            FileState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT state, COUNT(*) FROM files GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                if let Ok(s) = state.parse::<FileState>() {
                    counts.insert(s.as_str(), n as u64);
                }
            }
        }
        let total: u64 = counts.values().sum();
        let backlog = self.backlog()?;
        let in_flight = {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT f.id, f.path, f.state, f.size, f.claimed_at, f.acked_at_claim,
                        (SELECT COALESCE(SUM(p.length), 0) FROM parts p
                         WHERE p.file_id = f.id AND p.state = 'uploaded')
                 FROM files f WHERE f.state IN ({IN_FLIGHT}) ORDER BY f.id"
            ))?;
            let rows = stmt.query_map([], |r| {
                let size = r.get::<_, i64>(3)?.max(0) as u64;
                let claimed_at: Option<i64> = r.get(4)?;
                let acked_at_claim: Option<i64> = r.get(5)?;
                let acked = (r.get::<_, i64>(6)?.max(0) as u64).min(size);
                // Known once a part of this attempt has been acknowledged.
                let rate = match (claimed_at, acked_at_claim) {
                    (Some(at), Some(before)) if now > at && acked as i64 > before => {
                        Some((acked as i64 - before) as f64 * 1000.0 / (now - at) as f64)
                    }
                    _ => None,
                };
                Ok(InFlight {
                    id: r.get(0)?,
                    path: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)?).into_owned(),
                    state: state_name(&r.get::<_, String>(2)?),
                    size,
                    bytes_acknowledged: acked,
                    progress: if size == 0 {
                        1.0
                    } else {
                        acked as f64 / size as f64
                    },
                    rate_bytes_per_s: rate.map(|r| r.round() as u64),
                    started_at: claimed_at,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        let last_errors = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, path, state, last_error, updated_at FROM files
                 WHERE state IN ('failed', 'retrying') AND last_error IS NOT NULL
                 ORDER BY updated_at DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![LAST_ERRORS as i64], |r| {
                Ok(LastError {
                    id: r.get(0)?,
                    path: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)?).into_owned(),
                    state: state_name(&r.get::<_, String>(2)?),
                    error: r.get(3)?,
                    at: r.get(4)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut files = if query.all {
            self.file_rows("1 ORDER BY f.id", params![])?
        } else {
            // Unfinished and failed rows, oldest first, up to the limit; then the
            // most recent finished ones.
            let mut files = self.file_rows(
                "f.state NOT IN ('done', 'superseded') ORDER BY f.id LIMIT ?1",
                params![query.limit as i64],
            )?;
            let mut recent = self.file_rows(
                "f.state IN ('done', 'superseded') ORDER BY f.updated_at DESC, f.id DESC
                 LIMIT ?1",
                params![query.recent_done as i64],
            )?;
            recent.reverse();
            files.append(&mut recent);
            files
        };
        files.sort_by_key(|f| f.id);
        let files_omitted = total.saturating_sub(files.len() as u64);
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
            backlog,
            in_flight,
            last_errors,
            files,
            files_omitted,
        })
    }

    /// `FileStatus` rows of `files f` matching `tail` (a WHERE condition and its
    /// ORDER BY / LIMIT).
    fn file_rows(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<FileStatus>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT f.id, f.path, f.state, f.size, f.bytes_sent, f.attempts, f.last_error,
                    f.next_attempt_at, f.updated_at,
                    COALESCE(f.parts_count,
                             (SELECT COUNT(*) FROM parts p WHERE p.file_id = f.id)),
                    COALESCE(f.parts_count,
                             (SELECT COUNT(*) FROM parts p
                              WHERE p.file_id = f.id AND p.state = 'uploaded')),
                    f.join_started, f.rule, f.key
             FROM files f WHERE {tail}"
        ))?;
        let rows = stmt.query_map(args, |r| {
            let state = state_name(&r.get::<_, String>(2)?);
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
                rule: r.get(12)?,
                key: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

/// A state read from the journal, as its static name (`unknown` for a value this
/// build does not know).
fn state_name(s: &str) -> &'static str {
    s.parse::<FileState>()
        .map(FileState::as_str)
        .unwrap_or("unknown")
}

/// States of a file not yet delivered (the backlog).
const UNFINISHED: &str = "'queued', 'retrying', 'uploading', 'completing', 'joining', 'verifying'";

/// States of a file a worker holds or the service is assembling.
const IN_FLIGHT: &str = "'uploading', 'completing', 'joining', 'verifying'";

/// How many of the most recent errors `status` shows.
pub const LAST_ERRORS: usize = 10;

/// Which rows `status` lists in `files`.
#[derive(Debug, Clone, Copy)]
pub struct StatusQuery {
    /// Every row (`status --all`); otherwise the two bounds below.
    pub all: bool,
    /// Unfinished and failed rows listed, oldest first.
    pub limit: usize,
    /// The most recent finished (`done`, `superseded`) rows listed.
    pub recent_done: usize,
}

impl StatusQuery {
    pub fn everything() -> StatusQuery {
        StatusQuery {
            all: true,
            limit: usize::MAX,
            recent_done: usize::MAX,
        }
    }
}
