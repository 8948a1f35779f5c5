//! Box's refusals → the engine's next action (box.md §Error classes).

use super::client::Refusal;
use crate::backend::http::from_status;
use crate::backend::{BackendError, Op};

/// Box's own quirks first, then the shared mapping.
pub fn classify(op: Op, r: Refusal) -> BackendError {
    let status = r.status.as_u16();
    let detail = r.describe();
    match (op, status, r.code.as_str()) {
        // Calls on an expired, aborted or committed session (box.md rule 4).
        (Op::PutPart | Op::HeldParts | Op::Complete | Op::Abort, 404, _) => {
            BackendError::SessionGone { op, detail }
        }
        // The session holds other content than the file we hashed: start over.
        (Op::Complete, 400, "digest_mismatch") => BackendError::Conflict { op, detail },
        // Still not settled after the commit's own polls: back off and come again;
        // the session's list of parts is read afresh then. Never a reason to throw
        // the uploaded parts away.
        (Op::Complete, 400, "parts_mismatch") => BackendError::Retry {
            op,
            after: r.retry_after,
            cause: detail,
        },
        // The part's bytes did not match its digest on arrival: damaged in transit,
        // nothing stored (rule 9); sending again is the cure.
        (Op::PutPart, 412, _) => BackendError::Retry {
            op,
            after: r.retry_after,
            cause: detail,
        },
        // Refusals about this item alone (Box's error reference): the file needs a
        // person, the credentials are fine. Every other 403 (permissions on the
        // folder, a full account) pauses all uploads instead (`AuthRefused`).
        (_, 403, "access_denied_item_locked" | "file_size_limit_exceeded") => BackendError::Fatal {
            op,
            status: Some(403),
            detail,
        },
        // Box's real 401 has an empty body; the client already tried a fresh token.
        _ => from_status(op, r.status, r.retry_after, r.body),
    }
}
