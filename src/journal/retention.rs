//! The journal's side of local retention (`upload.keep_for`, `upload.outbox_max`):
//! which delivered files are still kept in the outbox, and how big the outbox is.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rusqlite::params;

use super::*;

/// A delivered file left in the outbox by `after = "keep"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    pub id: FileId,
    pub path: PathBuf,
    pub key: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    /// Unix ms when it was delivered.
    pub delivered_at: i64,
}

impl Journal {
    /// Kept files delivered before `before` (unix ms), oldest first, at most
    /// `limit`, after id `after` in that order's ties (for paging).
    pub fn kept_files(&self, before: i64, limit: usize) -> Result<Vec<KeptFile>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, path, key, size, mtime_ns, inode, updated_at FROM files
             WHERE kept = 1 AND updated_at < ?1
             ORDER BY updated_at, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before, limit as i64], |r| {
            Ok(KeptFile {
                id: r.get(0)?,
                path: PathBuf::from(std::ffi::OsString::from_vec(r.get::<_, Vec<u8>>(1)?)),
                key: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                size: r.get::<_, i64>(3)?.max(0) as u64,
                mtime_ns: r.get(4)?,
                inode: r.get::<_, i64>(5)? as u64,
                delivered_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The file of row `id` is no longer kept: removed by retention, or found gone
    /// or changed (then it is new content, the watcher's to queue, never removed).
    pub fn unkeep(&mut self, id: FileId) -> Result<()> {
        self.conn
            .exec("UPDATE files SET kept = 0 WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// Bytes the outbox holds as the journal sees it: files not yet delivered
    /// (failed ones too: they stay until a person acts) and delivered files kept.
    /// Files `dropship push` was given lie elsewhere and do not count.
    pub fn outbox_bytes(&self) -> Result<u64> {
        Ok(self
            .conn
            .row(
                &format!(
                    "SELECT COALESCE(SUM(size), 0) FROM files
                 WHERE pushed = 0 AND (state IN ({ACTIVE_SQL}, 'failed') OR kept = 1)"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )?
            .max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_files_and_the_outbox_size() {
        let mut j = Journal::open_in_memory().expect("open");
        let f = |path: &str, size: u64| NewFile {
            path: PathBuf::from(path),
            key: Ok(path.trim_start_matches('/').to_string()),
            size,
            mtime_ns: 1,
            inode: 7,
            rule: None,
            priority: 0,
            compress: None,
        };
        let Enqueued::Added(a) = j.enqueue(&f("/o/a", 100)).expect("a") else {
            panic!("added")
        };
        let Enqueued::Added(_) = j.enqueue(&f("/o/b", 30)).expect("b") else {
            panic!("added")
        };
        assert_eq!(j.outbox_bytes().expect("bytes"), 130);
        j.claim_next(now_ms(), &[]).expect("claim").expect("a");
        j.to_verifying(
            a,
            &crate::backend::RemoteObject::at("a"),
            &Default::default(),
            None,
        )
        .expect("verifying");
        j.to_done(a, None, true).expect("done");
        assert_eq!(j.outbox_bytes().expect("bytes"), 130, "kept counts");
        let kept = j.kept_files(now_ms() + 1, 10).expect("kept");
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].id, kept[0].size), (a, 100));
        assert!(j.kept_files(0, 10).expect("kept").is_empty(), "not older");
        j.unkeep(a).expect("unkeep");
        assert_eq!(j.outbox_bytes().expect("bytes"), 30);
        assert!(j.kept_files(now_ms() + 1, 10).expect("kept").is_empty());
    }
}
