//! An upload in progress, its expiry, and what a range means for it
//! (protocols/exosite.md rules 5, 6 and 10).
//!
//! A range is either the next one (it starts where the accepted bytes end), or a
//! re-send of the most recently accepted one (same start and end), or refused: no live
//! upload → 404 (rule 5, assumed), a total that is not the declared length → 400
//! (rule 6), any other start → 409 (rule 10, assumed). Whether a re-send is accepted is
//! the caller's business (`exosite_resend_last`). The final range of a completed upload
//! stays "most recently accepted" until the id is initiated again, so a client whose
//! answer to its last range was lost can send it again.
//!
//! An upload whose initiate or last accepted range is `exosite_upload_ttl_s` old is
//! dropped with its ranges when next looked at (assumed: 1 day from the last activity).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::ExError;
use super::headers::ContentRange;
use super::{ExState, NAME};

/// One upload in progress.
#[derive(Debug)]
pub(crate) struct Upload {
    /// Random; names the ranges directory, and lets a request that awaited its body
    /// check that the upload is still the one it judged.
    pub(crate) serial: String,
    /// `length` of the initiate: the content's size once complete.
    pub(crate) length: u64,
    /// `type` of the initiate: the content's MIME type once complete.
    pub(crate) file_type: String,
    /// Bytes accepted so far, which is the offset the next range must start at.
    pub(crate) received: u64,
    /// `sessions/exosite/<serial>/`, one file per accepted range; removed with the upload.
    pub(crate) dir: PathBuf,
    /// The accepted ranges' files, in offset order.
    pub(crate) ranges: Vec<PathBuf>,
    /// The most recently accepted range.
    pub(crate) last: Option<Accepted>,
    /// The initiate or the last accepted range; the TTL counts from here.
    pub(crate) touched: Instant,
    /// The same instant in Unix seconds, for the info line.
    pub(crate) touched_s: u64,
}

/// An accepted range: what a re-send is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) md5: [u8; 16],
}

impl Accepted {
    fn is(&self, r: &ContentRange) -> bool {
        self.start == r.start && self.end == r.end
    }
}

/// What a well-formed range is to the upload it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next range of the upload with this serial.
    Next { serial: String },
    /// The most recently accepted range again; `same`: with the same MD5.
    Resend { same: bool },
}

impl Upload {
    pub(crate) fn expired(&self, ttl_s: u64, now: Instant) -> bool {
        now.saturating_duration_since(self.touched) >= Duration::from_secs(ttl_s)
    }

    /// Deletes the ranges directory. Called once the upload has left the map.
    pub(crate) fn discard(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove exosite ranges");
        }
    }
}

impl ExState {
    /// The upload of `id` if one is in progress; an expired one is dropped first.
    pub(crate) fn live_upload(&mut self, id: &str, ttl_s: u64) -> Option<&mut Upload> {
        if self
            .uploads
            .get(id)
            .is_some_and(|u| u.expired(ttl_s, Instant::now()))
            && let Some(old) = self.uploads.remove(id)
        {
            tracing::info!(
                emulator = NAME,
                id,
                received = old.received,
                "upload expired: ranges dropped"
            );
            old.discard();
        }
        self.uploads.get_mut(id)
    }

    /// What range `r` with digest `md5` is for content `id` now.
    pub(crate) fn step(
        &mut self,
        id: &str,
        ttl_s: u64,
        r: &ContentRange,
        md5: &[u8; 16],
    ) -> Result<Step, ExError> {
        if let Some(u) = self.live_upload(id, ttl_s) {
            if r.total != u.length {
                return Err(ExError::bad_request(format!(
                    "Content-Range total {} is not the length {} the upload was initiated with",
                    r.total, u.length
                )));
            }
            if r.start == u.received {
                return Ok(Step::Next {
                    serial: u.serial.clone(),
                });
            }
            if let Some(last) = u.last.filter(|l| l.is(r)) {
                return Ok(Step::Resend {
                    same: last.md5 == *md5,
                });
            }
            return Err(ExError::conflict(format!(
                "Conflict: the next range must start at byte {}, not {}",
                u.received, r.start
            )));
        }
        if let Some(c) = self.contents.get(id)
            && c.size == r.total
            && let Some(last) = c.last.filter(|l| l.is(r))
        {
            return Ok(Step::Resend {
                same: last.md5 == *md5,
            });
        }
        Err(ExError::not_found(format!(
            "Not Found: no upload in progress for content {id:?}; initiate it first"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exosite::content::Content;

    fn upload(length: u64, received: u64, last: Option<Accepted>) -> Upload {
        Upload {
            serial: "s".into(),
            length,
            file_type: "text/plain".into(),
            received,
            dir: PathBuf::new(),
            ranges: Vec::new(),
            last,
            touched: Instant::now(),
            touched_s: 0,
        }
    }

    fn range(start: u64, end: u64, total: u64) -> ContentRange {
        ContentRange { start, end, total }
    }

    fn state() -> ExState {
        ExState {
            contents: Default::default(),
            uploads: Default::default(),
        }
    }

    fn status(st: &mut ExState, r: ContentRange, md5: u8) -> Result<Step, u16> {
        st.step("a", 60, &r, &[md5; 16])
            .map_err(|e| e.status().as_u16())
    }

    #[test]
    fn next_resend_or_refused() {
        let mut st = state();
        assert_eq!(status(&mut st, range(0, 9, 20), 1), Err(404), "no upload");
        let last = Accepted {
            start: 0,
            end: 9,
            md5: [1; 16],
        };
        st.uploads.insert("a".into(), upload(20, 10, Some(last)));
        let next = Ok(Step::Next { serial: "s".into() });
        assert_eq!(status(&mut st, range(10, 19, 20), 1), next);
        assert_eq!(
            status(&mut st, range(10, 14, 20), 1),
            next,
            "sizes are not judged here"
        );
        assert_eq!(
            status(&mut st, range(0, 9, 20), 1),
            Ok(Step::Resend { same: true })
        );
        assert_eq!(
            status(&mut st, range(0, 9, 20), 2),
            Ok(Step::Resend { same: false })
        );
        assert_eq!(
            status(&mut st, range(0, 4, 20), 1),
            Err(409),
            "not the same range"
        );
        assert_eq!(status(&mut st, range(15, 19, 20), 1), Err(409), "a gap");
        assert_eq!(
            status(&mut st, range(10, 19, 21), 1),
            Err(400),
            "another total"
        );
    }

    #[test]
    fn the_final_range_of_completed_content_can_be_resent() {
        let mut st = state();
        let last = Accepted {
            start: 10,
            end: 19,
            md5: [1; 16],
        };
        st.contents.insert(
            "a".into(),
            Content {
                file_type: "text/plain".into(),
                size: 20,
                updated_s: 0,
                last: Some(last),
            },
        );
        assert_eq!(
            status(&mut st, range(10, 19, 20), 1),
            Ok(Step::Resend { same: true })
        );
        assert_eq!(status(&mut st, range(0, 9, 20), 1), Err(404));
        assert_eq!(status(&mut st, range(10, 19, 21), 1), Err(404));
    }

    #[test]
    fn expired_uploads_are_dropped_when_looked_at() {
        let mut st = state();
        st.uploads.insert("a".into(), upload(20, 0, None));
        assert!(st.live_upload("a", 60).is_some());
        assert!(
            st.live_upload("a", 0).is_none(),
            "a TTL of 0 expires at once"
        );
        assert!(st.uploads.is_empty());
    }

    #[test]
    fn expiry_counts_from_the_last_touch() {
        let t0 = Instant::now();
        let mut u = upload(20, 0, None);
        u.touched = t0;
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!u.expired(10, at(9)));
        assert!(u.expired(10, at(10)));
        u.touched = at(8); // a range arrived
        assert!(!u.expired(10, at(17)));
        assert!(u.expired(10, at(18)));
    }
}
