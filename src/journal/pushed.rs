//! Rows of `dropship push`: recording the files it is given, and what it shows of
//! them while they travel (see `crate::push`).

use rusqlite::params;

use super::*;

/// Where one pushed row stands, as `dropship push` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRow {
    pub id: FileId,
    pub state: FileState,
    pub size: u64,
    /// Bytes of the parts the service acknowledged: the progress a resume keeps.
    pub bytes_acked: u64,
    /// Why it failed, was superseded or waits (`retrying`); a note when `done`.
    pub last_error: Option<String>,
}

impl Journal {
    /// Records a file given to `dropship push` (see [`Journal::enqueue_as`]); the
    /// row is marked `pushed`. A row of the same content that is still active (the
    /// watcher's, or an interrupted push's) is reused, and left as it is.
    pub fn enqueue_pushed(&mut self, f: &NewFile) -> Result<Enqueued> {
        self.enqueue_as(f, true)
    }

    /// The rows `ids` names that exist, in no particular order.
    pub fn pushed_rows(&self, ids: &[FileId]) -> Result<Vec<PushedRow>> {
        let ids = to_json(&ids)?;
        let mut stmt = self.conn.prepare(
            "SELECT f.id, f.state, f.size, f.last_error,
                    COALESCE((SELECT SUM(p.length) FROM parts p
                              WHERE p.file_id = f.id AND p.state = 'uploaded'), 0)
             FROM files f WHERE f.id IN (SELECT value FROM json_each(?1))",
        )?;
        let rows: Vec<(FileId, String, i64, Option<String>, i64)> = stmt
            .query_map(params![ids], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(id, state, size, last_error, acked)| {
                Ok(PushedRow {
                    id,
                    state: state.parse().map_err(|detail| JournalError::BadRow {
                        file: id,
                        column: "state",
                        detail,
                    })?,
                    size: size.max(0) as u64,
                    bytes_acked: acked.max(0) as u64,
                    last_error,
                })
            })
            .collect()
    }

}
