//! Housekeeping: pruning old finished rows, and `dropship forget`.
//!
//! A `done` row is the only memory that a file was delivered: the watcher skips a
//! file whose path, size, mtime and inode match the path's latest row. Pruning the
//! row of a file still in the outbox (`after = "keep"`) would send it again at the
//! next scan, so the caller checks each candidate against the disk before
//! [`Journal::prune`] removes it.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rusqlite::params;

use super::*;

/// A finished row old enough to prune, with the identity its file had.
#[derive(Debug, Clone)]
pub struct PruneCandidate {
    pub id: FileId,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

/// What `forget` did with one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forgot {
    Removed(FileId),
    /// No such row.
    Unknown(FileId),
    /// The row is still being worked on; only finished rows may be forgotten.
    Refused {
        id: FileId,
        state: String,
    },
}

impl Journal {
    /// `done` and `superseded` rows last changed before `before` (unix ms) with an
    /// id above `after`, in id order, at most `limit`.
    pub fn prune_candidates(
        &self,
        before: i64,
        after: FileId,
        limit: usize,
    ) -> Result<Vec<PruneCandidate>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, path, size, mtime_ns, inode FROM files
             WHERE state IN ('done', 'superseded') AND updated_at < ?1 AND id > ?2
             ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![before, after, limit as i64], |r| {
            Ok(PruneCandidate {
                id: r.get(0)?,
                path: PathBuf::from(std::ffi::OsString::from_vec(r.get::<_, Vec<u8>>(1)?)),
                size: r.get::<_, i64>(2)?.max(0) as u64,
                mtime_ns: r.get(3)?,
                inode: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes finished rows (and their parts) last changed before `before`; a row
    /// that changed since it was chosen is left. Returns how many went.
    pub fn prune(&mut self, ids: &[FileId], before: i64) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM files WHERE id = ?1
                 AND state IN ('done', 'superseded') AND updated_at < ?2",
            )?;
            for id in ids {
                n += stmt.execute(params![id, before])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// `dropship forget`: removes finished rows (`done`, `failed`, `superseded`) and
    /// their parts. A forgotten file still in the outbox is recorded again, as new,
    /// at the next scan; the service's copy (if any) is not touched.
    pub fn forget(&mut self, ids: &[FileId]) -> Result<Vec<Forgot>> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::new();
        for &id in ids {
            let state: Option<String> = rusqlite::OptionalExtension::optional(tx.row(
                "SELECT state FROM files WHERE id = ?1",
                params![id],
                |r| r.get(0),
            ))?;
            out.push(match state.as_deref() {
                None => Forgot::Unknown(id),
                Some("done" | "failed" | "superseded") => {
                    tx.exec("DELETE FROM files WHERE id = ?1", params![id])?;
                    Forgot::Removed(id)
                }
                Some(other) => Forgot::Refused {
                    id,
                    state: other.to_string(),
                },
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Ids of every `failed` row (`forget --all-failed`).
    pub fn failed_ids(&self) -> Result<Vec<FileId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM files WHERE state = 'failed' ORDER BY id")?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }
}

impl PruneCandidate {
    /// Whether the file the row recorded is still at its path, unchanged: its row
    /// must stay, or the next scan would send it again.
    pub fn still_on_disk(&self) -> bool {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) => {
                crate::identity::Identity::of(&m)
                    == crate::identity::Identity {
                        size: self.size,
                        mtime_ns: self.mtime_ns,
                        inode: self.inode,
                    }
            }
            // Only a clear "not there" lets the row go: a folder that cannot be
            // read now may be readable at the next scan, which would find the file.
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        }
    }
}
