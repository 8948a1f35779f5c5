//! File rows: recording finished files, claiming them, and every file-level
//! transition of an upload (`queued → uploading → completing → verifying → done`,
//! with `retrying`, `failed` and `superseded`).

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use crate::backend::FileSpec;

use super::*;

/// The states of a row a worker holds.
const IN_PROGRESS: [FileState; 3] = [
    FileState::Uploading,
    FileState::Completing,
    FileState::Verifying,
];

/// Records, in `tx`, the receipt of a part whose bytes rode on the finishing
/// request (a single request's one part, a last part carried by `complete`).
fn record_carried(
    tx: &rusqlite::Transaction<'_>,
    id: FileId,
    carried: Option<&Receipt>,
) -> Result<()> {
    if let Some(r) = carried {
        tx.exec(
            "UPDATE parts SET state = 'uploaded', receipt = ?3 WHERE file_id = ?1 AND idx = ?2",
            params![id, r.index, to_json(r)?],
        )?;
    }
    Ok(())
}

/// [`Journal::start_session`] inside the caller's transaction; false if the row is
/// not `uploading` without a session.
fn plan_in(
    tx: &rusqlite::Transaction<'_>,
    id: FileId,
    session: Option<&Session>,
    part_size: u64,
    plan: &[(u64, u64)],
) -> Result<bool> {
    let session_json = session.map(to_json).transpose()?;
    let n = tx.exec(
        "UPDATE files SET session = ?2, part_size = ?3, updated_at = ?4, begin_intent = NULL
         WHERE id = ?1 AND state = 'uploading' AND session IS NULL",
        params![id, session_json, part_size as i64, now_ms()],
    )?;
    if n == 0 {
        return Ok(false);
    }
    // Parts without a session belong to no upload (a failed single request, say).
    tx.exec("DELETE FROM parts WHERE file_id = ?1", params![id])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO parts (file_id, idx, offset, length, state)
         VALUES (?1, ?2, ?3, ?4, 'pending')",
    )?;
    for (i, (offset, length)) in plan.iter().enumerate() {
        ins.execute(params![id, i as i64, *offset as i64, *length as i64])?;
    }
    Ok(true)
}

/// One file's enqueue, inside the caller's transaction.
fn enqueue_in(tx: &rusqlite::Transaction<'_>, f: &NewFile, pushed: bool) -> Result<Enqueued> {
    let path = f.path.as_os_str().as_bytes();
    let latest: Option<(FileId, String, i64, i64, i64)> = tx
        .row(
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
        if same && state != FileState::Superseded && (!pushed || state.is_active()) {
            return Ok(Enqueued::Unchanged(id));
        }
    }
    // Whatever row of this path is still in progress holds older content.
    let replaced: Option<FileId> = tx
        .row(
            &format!("SELECT id FROM files WHERE path = ?1 AND state IN ({ACTIVE_SQL})"),
            params![path],
            |r| r.get(0),
        )
        .optional()?;
    if replaced.is_some() {
        tx.exec(
            &format!(
                "UPDATE files SET state = 'superseded', updated_at = ?2,
                        last_error = 'the local file changed; newer content queued'
                 WHERE path = ?1 AND state IN ({ACTIVE_SQL})"
            ),
            params![path, now_ms()],
        )?;
    }
    let (state, key, err) = match &f.key {
        Ok(k) => (FileState::Queued, Some(k.as_str()), None),
        Err(why) => (FileState::Failed, None, Some(why.as_str())),
    };
    let now = now_ms();
    tx.exec(
        "INSERT INTO files (path, key, size, mtime_ns, inode, state, last_error,
                            created_at, updated_at, pushed, rule, priority, compress)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12)",
        params![
            path,
            key,
            f.size as i64,
            f.mtime_ns,
            f.inode as i64,
            state.as_str(),
            err,
            now,
            pushed,
            f.rule,
            f.priority,
            f.compress
        ],
    )?;
    let new = tx.last_insert_rowid();
    Ok(match replaced {
        Some(old) => Enqueued::Replaced { old, new },
        None => Enqueued::Added(new),
    })
}

/// The claim's candidates in claim order, read from the partial index `files_claim`
/// in its order instead of sorting every claimable row. `INDEXED BY`, because the
/// planner, with no statistics, prefers the state index and a sort; the first term
/// repeats the index's condition word for word, as a partial index needs.
pub(crate) const CLAIM_SQL: &str = "SELECT id, path FROM files INDEXED BY files_claim
     WHERE state IN ('queued', 'retrying', 'joining')
       AND (state = 'queued'
            OR (state IN ('retrying', 'joining')
                AND (next_attempt_at <= ?1 OR next_attempt_at > ?2)))
       AND (?3 IS NULL OR id IN (SELECT value FROM json_each(?3)))
     ORDER BY priority DESC, next_attempt_at, id";

impl Journal {
    // ---- the watcher's side ---------------------------------------------------------

    /// Records a finished file, once per content: the same path with the same size,
    /// mtime and inode is never queued twice, whatever state its row is in.
    pub fn enqueue(&mut self, f: &NewFile) -> Result<Enqueued> {
        self.enqueue_as(f, false)
    }

    /// [`Journal::enqueue`], for the watcher (`pushed` false) or for `dropship push`
    /// (true). A push asks for an upload: a content the journal holds only as done,
    /// failed or superseded gets a new row rather than being answered from history.
    pub(super) fn enqueue_as(&mut self, f: &NewFile, pushed: bool) -> Result<Enqueued> {
        let tx = self.conn.transaction()?;
        let e = enqueue_in(&tx, f, pushed)?;
        tx.commit()?;
        Ok(e)
    }

    /// [`Journal::enqueue`] of many files in one transaction: one commit (one sync
    /// of the journal) for a whole folder of a start-up scan rather than one per
    /// file. All or none are recorded.
    pub fn enqueue_many(&mut self, files: &[NewFile]) -> Result<Vec<Enqueued>> {
        let tx = self.conn.transaction()?;
        let done = files
            .iter()
            .map(|f| enqueue_in(&tx, f, false))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(done)
    }

    // ---- the engine's side ----------------------------------------------------------

    /// After a crash or restart: rows a worker held go back to `queued` (their
    /// session, parts and digests are kept, so the work resumes), and parts that were
    /// in flight become `pending`. Returns the number of files resumed.
    pub fn recover(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let n = tx.exec(
            "UPDATE files SET state = 'queued', updated_at = ?1
             WHERE state IN ('uploading', 'completing', 'verifying')",
            params![now_ms()],
        )?;
        tx.exec(
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
        self.claim_next_among(now, busy, None)
    }

    /// [`Journal::claim_next`], among the rows `only` names when it is given (the
    /// engine `dropship push` runs claims its own files and nothing else).
    pub fn claim_next_among(
        &mut self,
        now: i64,
        busy: &[PathBuf],
        only: Option<&[FileId]>,
    ) -> Result<Option<FileRow>> {
        let only = only.map(|ids| to_json(&ids)).transpose()?;
        let tx = self.conn.transaction()?;
        let mut stmt = tx.prepare_cached(CLAIM_SQL)?;
        // Beyond the horizon: scheduled before the clock jumped backwards.
        let mut rows = stmt.query(params![now, now.saturating_add(self.horizon_ms), only])?;
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
        tx.exec(
            // A joining row is claimed to poll its join: no part is sent again.
            "UPDATE files SET attempts = attempts + 1, updated_at = ?2,
                    claimed_at = ?2,
                    acked_at_claim = (SELECT COALESCE(SUM(length), 0) FROM parts
                                      WHERE file_id = ?1 AND state = 'uploaded'),
                    state = CASE state WHEN 'joining' THEN 'completing' ELSE 'uploading' END
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        // A row being claimed has no request in flight: a part still `uploading` was
        // left by an attempt whose part task died (a panic) without recording its end.
        tx.exec(
            "UPDATE parts SET state = 'pending' WHERE file_id = ?1 AND state = 'uploading'",
            params![id],
        )?;
        match file_row(&tx, id) {
            Ok(Some(row)) => {
                tx.commit()?;
                Ok(Some(row))
            }
            Ok(None) => Err(JournalError::NoSuchFile(id)),
            Err(e @ JournalError::BadRow { .. }) => {
                // Never claimable again as it is; a person must look at it.
                tx.exec(
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

    /// When the earliest `retrying` or `joining` file becomes due (unix ms).
    pub fn next_due(&self) -> Result<Option<i64>> {
        self.next_due_among(None)
    }

    /// [`Journal::next_due`] among the rows `only` names, when it is given (an
    /// engine that may not claim the others must not wake up for them).
    pub fn next_due_among(&self, only: Option<&[FileId]>) -> Result<Option<i64>> {
        let only = only.map(|ids| to_json(&ids)).transpose()?;
        Ok(self.conn.row(
            "SELECT MIN(next_attempt_at) FROM files WHERE state IN ('retrying', 'joining')
               AND (?1 IS NULL OR id IN (SELECT value FROM json_each(?1)))",
            params![only],
            |r| r.get(0),
        )?)
    }

    pub fn file(&self, id: FileId) -> Result<Option<FileRow>> {
        file_row(&self.conn, id)
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
        let tx = self.conn.transaction()?;
        if !plan_in(&tx, id, session, part_size, plan)? {
            drop(tx);
            return Err(self.stale(id, "uploading without a session"));
        }
        tx.commit()?;
        Ok(())
    }

    /// A single-request upload's bookkeeping before its bytes leave, in one
    /// transaction rather than three (a small file's cost is its bookkeeping):
    /// `clash_checked` records the name check's outcome; the plan of one part
    /// `(0, size)` is recorded unless the row holds exactly that, still pending; and
    /// with `start`, that part goes `uploading` ([`Journal::part_start`]).
    pub fn start_single(
        &mut self,
        id: FileId,
        size: u64,
        clash_checked: bool,
        start: bool,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        if clash_checked {
            tx.exec(
                "UPDATE files SET clash_checked = 1 WHERE id = ?1",
                params![id],
            )?;
        }
        let planned: bool = tx.row(
            "SELECT COUNT(*) = 1 AND MIN(state) = 'pending' AND MIN(offset) = 0
                    AND MIN(length) = ?2
             FROM parts WHERE file_id = ?1",
            params![id, size as i64],
            |r| r.get(0),
        )?;
        if !planned && !plan_in(&tx, id, None, size, &[(0, size)])? {
            drop(tx);
            return Err(self.stale(id, "uploading without a session"));
        }
        if start && !super::parts::start_in(&tx, id, 0, None)? {
            drop(tx);
            return Err(self.stale_part(id, 0, PartState::Pending));
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a file's session, part plan, digests and remote object so that the
    /// next attempt begins again. Returns the session it held (to abort remotely).
    pub fn discard_session(&mut self, id: FileId) -> Result<Option<Session>> {
        let row = self.file(id)?.ok_or(JournalError::NoSuchFile(id))?;
        let tx = self.conn.transaction()?;
        tx.exec("DELETE FROM parts WHERE file_id = ?1", params![id])?;
        tx.exec(
            "UPDATE files SET session = NULL, part_size = NULL, digests = NULL, remote = NULL,
                    hash_state = NULL, join_started = NULL, join_restarts = 0, updated_at = ?2
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        tx.commit()?;
        Ok(row.session)
    }

    /// Clears the session of a `failed` or `superseded` row once it was aborted.
    /// A session whose completion the service accepted is kept until its join
    /// settles (see `unsettled_joins`).
    pub fn forget_session(&mut self, id: FileId) -> Result<()> {
        self.conn.exec(
            "UPDATE files SET session = NULL WHERE id = ?1
             AND state IN ('failed', 'superseded') AND join_started IS NULL",
            params![id],
        )?;
        Ok(())
    }

    /// Older rows of `path` that were superseded while the service joined their
    /// upload: until that join settles, the older content could still land over a
    /// newer one, so the path's next upload waits for it.
    pub fn unsettled_joins(&self, path: &Path) -> Result<Vec<(FileId, Session)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, session FROM files
             WHERE path = ?1 AND state IN ('superseded', 'failed')
               AND join_started IS NOT NULL AND session IS NOT NULL",
        )?;
        let rows: Vec<(FileId, String)> = stmt
            .query_map(params![path.as_os_str().as_bytes()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, s)| Ok((id, parse_json(id, "session", &s)?)))
            .collect()
    }

    /// Every superseded or failed row whose join has not settled, with what the
    /// backend needs to ask about it.
    pub fn all_unsettled_joins(&self) -> Result<Vec<(FileId, Session, FileSpec)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, session, key, size, mtime_ns FROM files
             WHERE state IN ('superseded', 'failed')
               AND join_started IS NOT NULL AND session IS NOT NULL AND key IS NOT NULL
             ORDER BY id",
        )?;
        let rows: Vec<(FileId, String, String, i64, i64)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, s, key, size, mtime_ns)| {
                let file = FileSpec {
                    key,
                    size: size.max(0) as u64,
                    mtime: mtime_ns.div_euclid(1_000_000_000),
                    content_type: None,
                };
                Ok((id, parse_json(id, "session", &s)?, file))
            })
            .collect()
    }

    /// The join of a superseded row settled (landed, failed or gone): its session
    /// is forgotten.
    pub fn join_settled(&mut self, id: FileId) -> Result<()> {
        self.conn.exec(
            "UPDATE files SET join_started = NULL, session = NULL
             WHERE id = ?1 AND state IN ('superseded', 'failed')",
            params![id],
        )?;
        Ok(())
    }

    /// Notes that `begin` is about to be called for an `uploading` row without a
    /// session, before the request goes out: if the daemon dies before the answer
    /// is recorded, the next start knows a session may exist that nobody recorded.
    pub fn note_begin(&mut self, id: FileId) -> Result<()> {
        let n = self.conn.exec(
            "UPDATE files SET begin_intent = ?2
             WHERE id = ?1 AND state = 'uploading' AND session IS NULL",
            params![id, now_ms()],
        )?;
        if n == 0 {
            return Err(self.stale(id, "uploading without a session"));
        }
        Ok(())
    }

    /// Keys of the rows whose `begin` may have opened a session that was never
    /// recorded (see [`Journal::note_begin`]).
    pub fn unrecorded_begins(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM files
             WHERE begin_intent IS NOT NULL AND session IS NULL AND key IS NOT NULL
             ORDER BY id",
        )?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets every begin intent: the backend has swept what they may have left.
    pub fn clear_begin_intents(&mut self) -> Result<()> {
        self.conn.exec(
            "UPDATE files SET begin_intent = NULL WHERE begin_intent IS NOT NULL AND session IS NULL",
            [],
        )?;
        Ok(())
    }

    /// Every session the journal holds, whatever its row's state: what a backend's
    /// sweep must keep.
    pub fn known_sessions(&self) -> Result<Vec<Session>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, session FROM files WHERE session IS NOT NULL")?;
        let rows: Vec<(FileId, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, s)| parse_json(id, "session", &s))
            .collect()
    }

    /// Sessions left open by rows that will never resume them.
    pub fn orphan_sessions(&self) -> Result<Vec<(FileId, Session)>> {
        let mut stmt = self.conn.prepare_cached(
            // A completion the service accepted cannot be aborted: its join is
            // settled by the path's next upload first (`unsettled_joins`).
            "SELECT id, session FROM files
             WHERE state IN ('failed', 'superseded') AND session IS NOT NULL
               AND join_started IS NULL",
        )?;
        let rows: Vec<(FileId, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, s)| Ok((id, parse_json(id, "session", &s)?)))
            .collect()
    }

    /// Whether an active row holds a session with this id. Where the session id is
    /// the remote path (Insights Hub), an old row's orphaned session and a newer
    /// row's live upload of the same file are one and the same.
    pub fn session_in_use(&self, session_id: &str) -> Result<bool> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM files
             WHERE state IN ({ACTIVE_SQL}) AND json_extract(session, '$.id') = ?1)"
        );
        Ok(self.conn.row(&sql, params![session_id], |r| r.get(0))?)
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
    /// A part whose bytes rode on the finishing request (a single-request upload's
    /// one part, a last part carried by `complete`) passes its receipt, recorded in
    /// the same transaction (a crash between the two would strand the row).
    pub fn to_verifying(
        &mut self,
        id: FileId,
        remote: &RemoteObject,
        digests: &FileDigests,
        carried: Option<&Receipt>,
    ) -> Result<()> {
        let remote = to_json(remote)?;
        let digests = to_json(digests)?;
        let tx = self.conn.transaction()?;
        record_carried(&tx, id, carried)?;
        let n = tx.exec(
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

    /// `uploading | completing → joining`: the service accepted the completion (or
    /// its join still runs); the row rests, holding no worker, until `poll_at` (unix
    /// ms). The first call records when the join began; a carried last part's
    /// receipt is recorded in the same transaction (see `to_verifying`).
    pub fn to_joining(
        &mut self,
        id: FileId,
        poll_at: i64,
        carried: Option<&Receipt>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        record_carried(&tx, id, carried)?;
        let now = now_ms();
        let n = tx.exec(
            "UPDATE files SET state = 'joining', next_attempt_at = ?2, updated_at = ?3,
                    join_started = COALESCE(join_started, ?3), failures = 0
             WHERE id = ?1 AND state IN ('uploading', 'completing')",
            params![id, poll_at, now],
        )?;
        if n == 0 {
            drop(tx);
            return Err(self.stale(id, "uploading|completing"));
        }
        tx.commit()?;
        Ok(())
    }

    /// Notes, before the completion request goes out, that the service may accept
    /// it and join the parts on its own (`asynchronous_join`): if the daemon dies
    /// before the answer is recorded, the row still counts as joining. Superseded
    /// then, its join is waited for (`unsettled_joins`), never taken for an orphan
    /// to abort: an accepted join cannot be aborted and would land over the newer
    /// content.
    pub fn note_completion(&mut self, id: FileId) -> Result<()> {
        self.update_while(id, "'completing'", "join_started = ?2", &[&now_ms()])
    }

    /// The service never received the completion noted by
    /// [`Journal::note_completion`]: the row is an upload to complete again.
    pub fn completion_unrequested(&mut self, id: FileId) -> Result<()> {
        self.update_while(id, "'uploading', 'completing'", "join_started = NULL", &[])
    }

    /// The service ran a failed join again: counted, and its clock restarts.
    pub fn join_restarted(&mut self, id: FileId) -> Result<()> {
        self.update_while(
            id,
            "'uploading', 'completing'",
            "join_restarts = join_restarts + 1, join_started = ?2, updated_at = ?2",
            &[&now_ms()],
        )
    }

    /// Sets `set` (whose parameters start at `?2`) on row `id` while it is in one of
    /// `states` (SQL literals), its state unchanged; stale when it is in none.
    fn update_while(
        &mut self,
        id: FileId,
        states: &str,
        set: &str,
        extra: &[&dyn rusqlite::ToSql],
    ) -> Result<()> {
        let sql = format!("UPDATE files SET {set} WHERE id = ?1 AND state IN ({states})");
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id];
        args.extend_from_slice(extra);
        if self.conn.exec(&sql, args.as_slice())? == 0 {
            return Err(self.stale(id, &states.replace('\'', "").replace(", ", "|")));
        }
        Ok(())
    }

    /// `uploading → verifying` for a claimed file whose upload was already completed
    /// (a verification cut short by a failure or a restart).
    pub fn resume_verifying(&mut self, id: FileId) -> Result<()> {
        self.transition(id, &[FileState::Uploading], FileState::Verifying, "", &[])
    }

    /// The name clash check of `upload.on_exists` found the name free (or the
    /// policy lets the upload go on): later attempts do not check again.
    pub fn clash_checked(&mut self, id: FileId) -> Result<()> {
        self.conn.exec(
            "UPDATE files SET clash_checked = 1, updated_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// The compressed copy of row `id` is written: it is what is sent from now on.
    pub fn spooled(&mut self, id: FileId, copy: &crate::compress::Spooled) -> Result<()> {
        let json = to_json(copy)?;
        self.conn.exec(
            "UPDATE files SET spool = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, json, now_ms()],
        )?;
        Ok(())
    }

    /// The compressed copy is gone or changed: compressed again, and sent afresh
    /// (its session and parts were of the old copy).
    pub fn drop_spool(&mut self, id: FileId) -> Result<Option<Session>> {
        let session = self.discard_session(id)?;
        self.conn
            .exec("UPDATE files SET spool = NULL WHERE id = ?1", params![id])?;
        Ok(session)
    }

    /// The spool files of rows still in progress: the rest of the spool folder is
    /// a crash's leftovers.
    pub fn spool_paths(&self) -> Result<Vec<PathBuf>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT spool FROM files WHERE spool IS NOT NULL AND state IN ({ACTIVE_SQL})"
        ))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            if let Ok(s) = serde_json::from_str::<crate::compress::Spooled>(&json?) {
                out.push(s.path);
            }
        }
        Ok(out)
    }

    /// `upload.on_exists = "keep-both"` chose `key` beside the name the service holds:
    /// the file goes there, after a restart too.
    pub fn name_chosen(&mut self, id: FileId, key: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE files SET key = ?2, clash_checked = 1, updated_at = ?3 WHERE id = ?1",
            params![id, key, now_ms()],
        )?;
        Ok(())
    }

    /// `uploading → done` without an upload: the service already holds the name and
    /// `upload.on_exists = "skip"`. `note` says so in `status`.
    pub fn skip_existing(&mut self, id: FileId, note: &str) -> Result<()> {
        self.transition(
            id,
            &[FileState::Uploading],
            FileState::Done,
            "last_error = ?4, failures = 0, clash_checked = 1",
            &[&note],
        )
    }

    /// `verifying → done`. `note` is kept in `last_error` (e.g. why the post-action
    /// was skipped); `None` clears it. `kept`: the delivered file stays in the
    /// outbox (`after = "keep"`), for local retention to remove in its time.
    pub fn to_done(&mut self, id: FileId, note: Option<&str>, kept: bool) -> Result<()> {
        self.transition(
            id,
            &[FileState::Verifying],
            FileState::Done,
            "last_error = ?4, failures = 0, kept = ?5",
            &[&note, &kept],
        )
    }

    /// A temporary failure: wait until `at` (unix ms). `failures` is the new length
    /// of the failure streak, from which the engine computed `at`.
    pub fn retry_later(&mut self, id: FileId, at: i64, failures: u32, why: &str) -> Result<()> {
        self.transition(
            id,
            &IN_PROGRESS,
            FileState::Retrying,
            "next_attempt_at = ?4, failures = ?5, last_error = ?6",
            &[&at, &failures, &why],
        )
    }

    /// The service refused the credentials: the row waits, with its session and parts,
    /// until the engine tries again. Not a failure of the file, so the failure streak
    /// (and the backoff it drives) is left alone; `at` orders it behind rows that
    /// were waiting already, so that each try after a refusal starts with another file.
    pub fn wait_credentials(&mut self, id: FileId, at: i64, why: &str) -> Result<()> {
        self.transition(
            id,
            &IN_PROGRESS,
            FileState::Retrying,
            "next_attempt_at = ?4, last_error = ?5",
            &[&at, &why],
        )
    }

    /// The service could not be reached: the row goes back to the queue in its
    /// place (oldest first once the service answers), with its session and parts,
    /// its failure streak untouched.
    pub fn wait_service(&mut self, id: FileId, why: &str) -> Result<()> {
        self.transition(
            id,
            &IN_PROGRESS,
            FileState::Queued,
            // 0, as when it was first queued: claimed by age among the others.
            "next_attempt_at = 0, last_error = ?4",
            &[&why],
        )
    }

    /// Counts a verification mismatch; returns the new count.
    pub fn count_verify_failure(&mut self, id: FileId) -> Result<u32> {
        Ok(self.conn.row(
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
        self.transition(id, &IN_PROGRESS, FileState::Queued, "", &[])
    }

    /// A worker ended without a resting state (its last journal write failed, or a
    /// part task panicked): the row goes to `retrying` at `at` and its in-flight parts
    /// back to `pending`. A no-op for a row already at rest. Returns whether it acted.
    pub fn release(&mut self, id: FileId, at: i64) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.exec(
            "UPDATE files SET state = 'retrying', next_attempt_at = ?2, updated_at = ?3,
                    failures = failures + 1,
                    last_error = COALESCE(last_error, 'the attempt was interrupted')
             WHERE id = ?1 AND state IN ('uploading', 'completing', 'verifying')",
            params![id, at, now_ms()],
        )?;
        tx.exec(
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
                        self.conn.exec(
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
                    .prepare_cached("SELECT id FROM files WHERE state = 'failed' ORDER BY id")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            }
        };
        let tx = self.conn.transaction()?;
        let mut requeued = Vec::new();
        for id in ids {
            // Only the newest row of a path holds the current content; an older
            // failed row is history.
            let newer: bool = tx.row(
                "SELECT EXISTS (SELECT 1 FROM files o, files f WHERE f.id = ?1
                   AND o.path = f.path AND o.id > f.id)",
                params![id],
                |r| r.get(0),
            )?;
            if newer {
                tx.exec(
                    "UPDATE files SET state = 'superseded', updated_at = ?2 WHERE id = ?1",
                    params![id, now_ms()],
                )?;
                continue;
            }
            // From scratch: its session was aborted when it failed, and a failure at
            // verification means the stored object is not to be trusted.
            tx.exec("DELETE FROM parts WHERE file_id = ?1", params![id])?;
            tx.exec(
                "UPDATE files SET state = 'queued', failures = 0, verify_failures = 0,
                        next_attempt_at = 0, session = NULL, part_size = NULL,
                        digests = NULL, remote = NULL, hash_state = NULL, updated_at = ?2
                 WHERE id = ?1 AND state = 'failed'",
                params![id, now_ms()],
            )?;
            requeued.push(id);
        }
        tx.commit()?;
        Ok(requeued)
    }
}
