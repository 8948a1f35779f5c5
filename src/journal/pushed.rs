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
        let mut stmt = self.conn.prepare_cached(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> NewFile {
        NewFile {
            path: PathBuf::from(path),
            key: Ok("k".into()),
            size: 10,
            mtime_ns: 1,
            inode: 7,
            rule: None,
            priority: 0,
            compress: None,
        }
    }

    #[test]
    fn a_push_reuses_an_active_row_and_sends_again_what_is_history() {
        let mut j = Journal::open_in_memory().expect("open");
        let f = file("/o/a");
        let Enqueued::Added(watched) = j.enqueue(&f).expect("watcher") else {
            panic!("added")
        };
        // Queued by the watcher: the push waits for that row, unmarked.
        assert_eq!(
            j.enqueue_pushed(&f).expect("push"),
            Enqueued::Unchanged(watched)
        );
        assert!(!j.file(watched).expect("row").expect("row").pushed);
        j.fail(watched, "refused").expect("fail");
        // Failed before: a push asks for a new upload.
        let Enqueued::Added(pushed) = j.enqueue_pushed(&f).expect("push again") else {
            panic!("a new row")
        };
        assert!(j.file(pushed).expect("row").expect("row").pushed);
        // The watcher finding the same content later queues nothing.
        assert_eq!(j.enqueue(&f).expect("watcher"), Enqueued::Unchanged(pushed));
    }

    #[test]
    fn claims_and_due_times_can_be_restricted_to_some_rows() {
        let mut j = Journal::open_in_memory().expect("open");
        let Enqueued::Added(other) = j.enqueue(&file("/o/other")).expect("other") else {
            panic!("added")
        };
        let Enqueued::Added(mine) = j.enqueue_pushed(&file("/x/mine")).expect("mine") else {
            panic!("added")
        };
        let now = now_ms();
        let row = j
            .claim_next_among(now, &[], Some(&[mine]))
            .expect("claim")
            .expect("mine is due");
        assert_eq!(row.id, mine);
        j.retry_later(mine, now + 60_000, 1, "later")
            .expect("retry");
        assert_eq!(
            j.claim_next_among(now, &[], Some(&[mine])).expect("claim"),
            None
        );
        j.claim_next(now, &[]).expect("claim").expect("other");
        j.retry_later(other, now + 1_000, 1, "sooner")
            .expect("retry");
        assert_eq!(
            j.next_due_among(Some(&[mine])).expect("due"),
            Some(now + 60_000)
        );
        assert_eq!(j.next_due().expect("due"), Some(now + 1_000));
        let rows = j.pushed_rows(&[mine]).expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, FileState::Retrying);
        assert_eq!(rows[0].last_error.as_deref(), Some("later"));
    }
}
