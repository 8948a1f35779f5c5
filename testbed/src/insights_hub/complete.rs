//! `?upload=complete`: turns an upload's parts into the file (protocols/insights-hub.md
//! §Multi-part sequence step 3, rule 9).
//!
//! The body is the final part: it may be smaller than the minimum and takes the next
//! number, k+1, without ever being listed by `fileslist`. Refusals: no upload → 404;
//! the stored part numbers not exactly 1..k → 400; a stored part below
//! `ih_min_part_size` → 400 (in both modes of `ih_part_size_checked_at_complete`); no
//! stored part and an empty body → 400; k = 1000 and a body (part 1001) → 400. The new
//! file's etag is 0, or old+1 for an update; 201/204 with `ETag` and `Location`.
//!
//! Four steps, so the lock is never held while the parts are copied:
//! 1. under the lock: upload alive, `If-Match` (refusals read the body first);
//! 2. without it: the body to a staging file;
//! 3. under the lock: the same upload still there, the part checks; collect the part
//!    files;
//! 4. without it: join parts and final part (hard links, no copy), apply `corrupt_rate`; then under
//!    the lock: the same upload still there, `If-Match` against the file as it is now,
//!    store, and end the upload — one step.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};

use super::InsightsHub;
use super::catalog::write;
use super::error::IhError;
use super::headers::Meta;
use super::multipart::{Upload, admit, too_small};
use super::put::MAX_PART;
use super::target::Target;
use crate::faults::Settings;
use crate::store::{Hashes, Staged};

pub(crate) async fn complete(
    api: &Arc<InsightsHub>,
    s: &Settings,
    target: Target,
    meta: Meta,
    body: Body,
) -> Result<Response, IhError> {
    let (id, body) = admit(api, s, &target, &meta, body).await?;
    let last = api.receive(body).await?;

    let parts = {
        let mut st = api.lock();
        let u = st.same_upload(&target, &id, s.ih_part_ttl_s)?;
        assemble_list(u, s.ih_min_part_size, last.len)?
    };
    let mut files = parts;
    if last.len > 0 {
        files.extend(last.paths().map(std::path::Path::to_path_buf));
    }
    // `last` must live until the join has linked it: dropping it deletes its file.
    let joined = Staged::join(api.shared.store.tmp_dir(), files, Hashes::NONE).await;
    drop(last);
    let staged = match joined {
        Ok(staged) => staged,
        // An abort or restart meanwhile removes the part files under the join.
        Err(e) => {
            api.lock().same_upload(&target, &id, s.ih_part_ttl_s)?;
            return Err(IhError::internal(e));
        }
    };
    let (staged, corrupted) = api.maybe_corrupt(staged).await?;

    let mut st = api.lock();
    st.same_upload(&target, &id, s.ih_part_ttl_s)?;
    let written = write(api, &mut st, &target, &meta, s.ih_require_if_match, staged)?;
    let done = st.uploads.remove(&target);
    drop(st);
    api.count_corrupted(corrupted);
    if let Some(u) = done {
        tracing::info!(file = %target.store_path(), parts = u.parts.len(), "insights-hub upload completed");
        u.discard();
    }
    Ok(written.into_response())
}

/// The part files to join, in order, if the stored parts may be completed with a final
/// part of `last_len` bytes.
fn assemble_list(u: &Upload, min_part: u64, last_len: u64) -> Result<Vec<PathBuf>, IhError> {
    let k = u.parts.len();
    // Keys are ascending and distinct: they are 1..=k exactly when the last one is k.
    if let Some(&highest) = u.parts.keys().next_back()
        && usize::try_from(highest).ok() != Some(k)
    {
        let missing = (1..highest).find(|n| !u.parts.contains_key(n)).unwrap_or(1);
        return Err(IhError::bad_request(format!(
            "Part numbers must be sequential from 1: part {missing} is missing (highest {highest})."
        )));
    }
    if let Some((n, p)) = u.parts.iter().find(|(_, p)| p.size < min_part) {
        return Err(too_small(*n, p.size, min_part));
    }
    if k == 0 && last_len == 0 {
        return Err(IhError::bad_request(
            "No part uploaded and no final part in the complete request.",
        ));
    }
    if last_len > 0 && k >= MAX_PART as usize {
        return Err(IhError::bad_request(format!(
            "The final part would be part {}; at most {MAX_PART} parts are accepted.",
            k + 1
        )));
    }
    Ok(u.parts.values().map(|p| p.path.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insights_hub::multipart::Part;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn upload(parts: &[(u32, u64)]) -> Upload {
        let parts: BTreeMap<u32, Part> = parts
            .iter()
            .map(|&(n, size)| {
                let path = PathBuf::from(n.to_string());
                (
                    n,
                    Part {
                        path,
                        size,
                        created_ms: 0,
                    },
                )
            })
            .collect();
        Upload {
            id: "x".into(),
            dir: PathBuf::new(),
            parts,
            touched: Instant::now(),
        }
    }

    fn status(parts: &[(u32, u64)], last: u64) -> Option<u16> {
        assemble_list(&upload(parts), 10, last)
            .err()
            .map(|e| e.status().as_u16())
    }

    #[test]
    fn parts_must_run_from_one_without_gaps() {
        assert_eq!(status(&[(1, 10), (2, 10)], 3), None);
        assert_eq!(status(&[(1, 10), (2, 10)], 0), None);
        assert_eq!(status(&[(2, 10)], 3), Some(400));
        assert_eq!(status(&[(1, 10), (3, 10)], 3), Some(400));
        assert_eq!(
            assemble_list(&upload(&[(2, 10), (1, 10)]), 10, 0).ok(),
            Some(vec![PathBuf::from("1"), PathBuf::from("2")])
        );
    }

    #[test]
    fn sizes_and_the_final_part() {
        assert_eq!(status(&[(1, 9), (2, 10)], 3), Some(400), "small part");
        assert_eq!(status(&[], 0), Some(400), "nothing at all");
        assert_eq!(status(&[], 1), None, "only a final part");
        let full: Vec<(u32, u64)> = (1..=MAX_PART).map(|n| (n, 10)).collect();
        assert_eq!(status(&full, 0), None);
        assert_eq!(status(&full, 1), Some(400), "part 1001");
    }
}
