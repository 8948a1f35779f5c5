//! `PATCH /onep:v1/content/{id}`: one range of an upload in parts
//! (protocols/exosite.md §Upload in parts step 2, rules 5–11).
//!
//! Judged before the body, in this order (a refusal still reads the body): the id
//! (400); `Content-Range` (rule 6: 400); `MD5` present and well-formed (rule 8: 400);
//! then against the upload: none in progress → 404 (rule 5), total ≠ declared length
//! → 400 (rule 6), a start other than the next expected offset → 409 unless it is a
//! re-send of the most recently accepted range (rule 10, `exosite_resend_last`);
//! then the range's length (rule 9, `exosite_range_rule`): a non-final range exactly
//! (or at least) `exosite_part_size`, in `exact` mode the final one at most that →
//! 400. After the body: its length ≠ `end - start + 1` → 400 (rule 7); its MD5 ≠ the
//! header → 400, counted in `digest_mismatches` (rule 8). Nothing is kept on any
//! refusal.
//!
//! Accepted → 204, empty body (rule 11, assumed). The range is judged again under the
//! lock before it is kept, since another request may have moved the upload meanwhile
//! (a duplicate that won the race makes this one a re-send). The final range makes
//! the content: the ranges are joined without the lock, `corrupt_rate` applies, then,
//! if the upload is still the same and still waiting for this range, the content is
//! stored and the upload ends, in one step under the lock.
//!
//! A re-send with `exosite_resend_last` = accept and the same MD5 → 204, nothing
//! changes; with other bytes, or with = conflict (the assumed default) → 409.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::content::{check_id, now_s, store};
use super::error::ExError;
use super::headers::{self, ContentRange};
use super::upload::{Accepted, Step};
use super::{Exosite, NAME, Received};
use crate::faults::body::drain;
use crate::faults::{ExositeRangeRule, ExositeResend, Settings};
use crate::store::{Hashes, Staged};

/// A range whose headers passed every check.
struct Judged {
    id: String,
    range: ContentRange,
    md5: [u8; 16],
    step: Step,
}

fn judge(
    api: &Exosite,
    s: &Settings,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<Judged, ExError> {
    let Path(id) = path.map_err(|e| ExError::bad_request(e.body_text()))?;
    check_id(&id)?;
    let range = headers::content_range(headers)?;
    let md5 = headers::md5(headers)?.ok_or_else(|| ExError::bad_request("MD5 is required"))?;
    let step = api.lock().step(&id, s.exosite_upload_ttl_s, &range, &md5)?;
    match step {
        Step::Next { .. } => size_rule(s, &range)?,
        Step::Resend { same } => resend_allowed(s, same)?,
    }
    Ok(Judged {
        id,
        range,
        md5,
        step,
    })
}

/// Rule 9.
fn size_rule(s: &Settings, r: &ContentRange) -> Result<(), ExError> {
    let part = s.exosite_part_size;
    let (ok, want) = match (s.exosite_range_rule, r.is_final()) {
        (ExositeRangeRule::Exact, false) => (r.len() == part, "exactly"),
        (ExositeRangeRule::Exact, true) => (r.len() <= part, "at most"),
        (ExositeRangeRule::AtLeast, false) => (r.len() >= part, "at least"),
        (ExositeRangeRule::AtLeast, true) => (true, ""),
    };
    if ok {
        return Ok(());
    }
    let which = if r.is_final() { "the final" } else { "a" };
    Err(ExError::bad_request(format!(
        "{which} range must be {want} {part} bytes long, not {}",
        r.len()
    )))
}

/// Rule 10's switch: whether a re-send may be answered 204.
fn resend_allowed(s: &Settings, same: bool) -> Result<(), ExError> {
    match (s.exosite_resend_last, same) {
        (ExositeResend::Accept, true) => Ok(()),
        (ExositeResend::Accept, false) => Err(ExError::conflict(
            "Conflict: this range was already accepted with other bytes",
        )),
        (ExositeResend::Conflict, _) => Err(ExError::conflict(
            "Conflict: this range was already accepted; the next range must follow it",
        )),
    }
}

pub(crate) async fn patch(
    State(api): State<Arc<Exosite>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ExError> {
    let s = api.shared.settings();
    let j = match judge(&api, &s, path, &headers) {
        Ok(j) => j,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let want = j.range.len();
    let staged = match api.receive(body, want).await? {
        Received::Kept { staged, md5 } if staged.len == want => {
            if md5 != j.md5 {
                api.count_digest_mismatch();
                return Err(ExError::bad_request(
                    "MD5 does not match the body: range not stored",
                ));
            }
            staged
        }
        Received::Kept { staged, .. } => return Err(wrong_length(want, Some(staged.len))),
        Received::TooLong => return Err(wrong_length(want, None)),
    };
    if let Step::Resend { .. } = j.step {
        tracing::info!(emulator = NAME, id = %j.id, start = j.range.start, "range re-sent: accepted, nothing changes");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if j.range.is_final() {
        complete(&api, &s, &j, staged).await
    } else {
        keep(&api, &s, &j, staged)
    }
}

fn wrong_length(want: u64, got: Option<u64>) -> ExError {
    let got = got.map_or_else(|| "more".to_string(), |n| n.to_string());
    ExError::bad_request(format!(
        "the body must hold the {want} bytes Content-Range names, not {got}"
    ))
}

/// Judges the range again under the lock: `Ok(true)` if it is still the next range of
/// the upload with `serial` (or of any upload when `serial` is `None`), `Ok(false)` if
/// it became an accepted re-send meanwhile.
fn still_next(
    st: &mut super::ExState,
    s: &Settings,
    j: &Judged,
    serial: Option<&str>,
) -> Result<bool, ExError> {
    match st.step(&j.id, s.exosite_upload_ttl_s, &j.range, &j.md5)? {
        Step::Next { serial: now } if serial.is_none_or(|want| want == now) => Ok(true),
        Step::Next { .. } => Err(ExError::not_found(
            "Not Found: the upload was initiated again while this range arrived",
        )),
        Step::Resend { same } => resend_allowed(s, same).map(|()| false),
    }
}

/// A non-final range: kept as the upload's next range file.
fn keep(api: &Exosite, s: &Settings, j: &Judged, staged: Staged) -> Result<Response, ExError> {
    let mut st = api.lock();
    // Whichever upload of the id is there now: a range that is its next one fits it
    // (same total, sizes judged under the same settings).
    if !still_next(&mut st, s, j, None)? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let u = st
        .uploads
        .get_mut(&j.id)
        .ok_or_else(|| ExError::internal("upload vanished under the lock"))?;
    let path = u.dir.join(j.range.start.to_string());
    staged.persist(&path).map_err(ExError::internal)?;
    u.ranges.push(path);
    u.received = j.range.end + 1;
    u.last = Some(Accepted {
        start: j.range.start,
        end: j.range.end,
        md5: j.md5,
    });
    u.touched = Instant::now();
    u.touched_s = now_s();
    tracing::info!(emulator = NAME, id = %j.id, start = j.range.start, end = j.range.end, "range accepted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The final range: the ranges become the content.
async fn complete(
    api: &Exosite,
    s: &Settings,
    j: &Judged,
    staged: Staged,
) -> Result<Response, ExError> {
    let (serial, mut files) = {
        let mut st = api.lock();
        if !still_next(&mut st, s, j, None)? {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let u = st
            .uploads
            .get(&j.id)
            .ok_or_else(|| ExError::internal("upload vanished under the lock"))?;
        (u.serial.clone(), u.ranges.clone())
    };
    files.extend(staged.paths().map(std::path::Path::to_path_buf));
    // `staged` must live until the join has linked it: dropping it deletes its file.
    let joined = Staged::join(api.shared.store.tmp_dir(), files, Hashes::NONE).await;
    drop(staged);
    let whole = match joined {
        Ok(whole) => whole,
        // A reset, an expiry or a duplicate of this range that completed the upload
        // first removes the range files under the join: judge the range again.
        Err(e) => {
            return match still_next(&mut api.lock(), s, j, Some(&serial))? {
                true => Err(ExError::internal(e)),
                false => Ok(StatusCode::NO_CONTENT.into_response()),
            };
        }
    };
    let (whole, corrupted) = api.maybe_corrupt(s, whole).await?;
    let mut st = api.lock();
    if !still_next(&mut st, s, j, Some(&serial))? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let Some(u) = st.uploads.remove(&j.id) else {
        return Err(ExError::internal("upload vanished under the lock"));
    };
    let last = Accepted {
        start: j.range.start,
        end: j.range.end,
        md5: j.md5,
    };
    if let Err(e) = store(api, &mut st, &j.id, &u.file_type, whole, Some(last)) {
        // Keep the upload so the client's retry of this range meets it again.
        st.uploads.insert(j.id.clone(), u);
        return Err(e);
    }
    drop(st);
    api.count_corrupted(corrupted);
    tracing::info!(emulator = NAME, id = %j.id, ranges = u.ranges.len() + 1, "upload completed");
    u.discard();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rule: ExositeRangeRule) -> Settings {
        Settings {
            exosite_part_size: 10,
            exosite_range_rule: rule,
            ..Settings::default()
        }
    }

    fn sized(rule: ExositeRangeRule, start: u64, end: u64, total: u64) -> bool {
        size_rule(&settings(rule), &ContentRange { start, end, total }).is_ok()
    }

    #[test]
    fn exact_ranges() {
        use ExositeRangeRule::Exact;
        assert!(sized(Exact, 0, 9, 25));
        assert!(!sized(Exact, 0, 8, 25), "short");
        assert!(!sized(Exact, 0, 10, 25), "long");
        assert!(sized(Exact, 20, 24, 25), "a short final range");
        assert!(
            sized(Exact, 15, 24, 25),
            "a final range of exactly the size"
        );
        assert!(!sized(Exact, 10, 24, 25), "a final range over the size");
        assert!(sized(Exact, 0, 0, 1), "a one-byte content");
    }

    #[test]
    fn at_least_ranges() {
        use ExositeRangeRule::AtLeast;
        assert!(sized(AtLeast, 0, 9, 25));
        assert!(sized(AtLeast, 0, 14, 25), "longer is fine");
        assert!(!sized(AtLeast, 0, 8, 25), "short");
        assert!(sized(AtLeast, 15, 24, 25));
        assert!(sized(AtLeast, 0, 24, 25), "one long final range");
        assert!(sized(AtLeast, 24, 24, 25), "a one-byte final range");
    }

    #[test]
    fn resends() {
        let mut s = Settings::default();
        assert!(resend_allowed(&s, true).is_err(), "conflict by default");
        s.exosite_resend_last = ExositeResend::Accept;
        assert!(resend_allowed(&s, true).is_ok());
        assert!(resend_allowed(&s, false).is_err(), "other bytes");
    }
}
