//! Part rows: `pending → uploading → uploaded`, each edge committed before the step
//! it guards (a part is `uploading` before its bytes leave, `uploaded` only with the
//! server's receipt).

use rusqlite::{OptionalExtension, params};

use super::*;

impl Journal {
    pub fn parts(&self, id: FileId) -> Result<Vec<PartRow>> {
        let mut stmt = self.conn.prepare_cached(
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

    /// `pending → uploading`, committed before the bytes leave. The part's length
    /// is added to `bytes_sent` now; [`Journal::part_failed`] takes back what did
    /// not leave. A crash in between over-counts by at most the parts in flight.
    ///
    /// `hash` is where the read pass's whole-file hash stands after reading this part;
    /// it is saved in the same transaction, so that a later attempt continues from
    /// there instead of reading the file again from byte 0.
    pub fn part_start(
        &mut self,
        id: FileId,
        index: u32,
        hash: Option<&HashCheckpoint>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        if !start_in(&tx, id, index, hash)? {
            drop(tx);
            return Err(self.stale_part(id, index, PartState::Pending));
        }
        tx.commit()?;
        Ok(())
    }

    /// `uploading → uploaded` with the server's receipt. Progress resets the
    /// file's failure streak (and so its backoff).
    pub fn part_uploaded(&mut self, id: FileId, index: u32, receipt: &Receipt) -> Result<()> {
        let json = to_json(receipt)?;
        let tx = self.conn.transaction()?;
        let n = tx.exec(
            "UPDATE parts SET state = 'uploaded', receipt = ?3
             WHERE file_id = ?1 AND idx = ?2 AND state = 'uploading'
               AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND state = 'uploading')",
            params![id, index, json],
        )?;
        if n == 0 {
            drop(tx);
            return Err(self.stale_part(id, index, PartState::Uploading));
        }
        tx.exec(
            "UPDATE files SET failures = 0, updated_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Bytes of a part sent by a request that failed and is sent again without
    /// leaving its state (the last part a completion carries): they left all the same.
    pub fn count_resent(&mut self, id: FileId, bytes: u64) -> Result<()> {
        self.conn.exec(
            "UPDATE files SET bytes_sent = bytes_sent + ?2, updated_at = ?3 WHERE id = ?1",
            params![id, bytes as i64, now_ms()],
        )?;
        Ok(())
    }

    /// `uploading → pending` after a failed attempt; `unsent` bytes never left.
    pub fn part_failed(&mut self, id: FileId, index: u32, unsent: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        let n = tx.exec(
            "UPDATE parts SET state = 'pending'
             WHERE file_id = ?1 AND idx = ?2 AND state = 'uploading'",
            params![id, index],
        )?;
        if n == 1 {
            tx.exec(
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
        let n = self.conn.exec(
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
        let n = self.conn.exec(
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
}

/// [`Journal::part_start`] inside the caller's transaction; false if the part is
/// not `pending` or its file not `uploading`.
pub(super) fn start_in(
    tx: &rusqlite::Transaction<'_>,
    id: FileId,
    index: u32,
    hash: Option<&HashCheckpoint>,
) -> Result<bool> {
    let hash = hash.map(to_json).transpose()?;
    let length: Option<i64> = tx
        .row(
            "UPDATE parts SET state = 'uploading'
             WHERE file_id = ?1 AND idx = ?2 AND state = 'pending'
               AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND state = 'uploading')
             RETURNING length",
            params![id, index],
            |r| r.get(0),
        )
        .optional()?;
    let Some(length) = length else {
        return Ok(false);
    };
    tx.exec(
        "UPDATE files SET bytes_sent = bytes_sent + ?2, updated_at = ?3,
                hash_state = COALESCE(?4, hash_state)
         WHERE id = ?1",
        params![id, length, now_ms(), hash],
    )?;
    Ok(true)
}
