//! Insights Hub's refusals → the engine's next action (insights-hub.md §Errors).

use crate::backend::bearer::Refusal;
use crate::backend::http::from_status;
use crate::backend::{BackendError, Op};

/// The service's own meanings first, then the shared mapping (401/403 → the
/// credentials gate, 429/5xx → retry; a 502 is the gateway's one-minute limit).
pub fn classify(op: Op, r: Refusal) -> BackendError {
    let status = r.status.as_u16();
    let detail = r.describe();
    match (op, status) {
        // No upload in progress for the path: expired (2 days), aborted, or
        // completed by an attempt whose answer was lost.
        (Op::PutPart | Op::Complete | Op::HeldParts, 404) => {
            BackendError::SessionGone { op, detail }
        }
        // A stale `If-Match` (409; 412 is the other answer the protocol leaves
        // open): somebody updated the file since this upload began. The session
        // starts over, with the ETag current then.
        (Op::PutPart | Op::Complete, 409 | 412) => BackendError::SessionGone {
            op,
            detail: format!("the file was updated by somebody else meanwhile: {detail}"),
        },
        // The same before any byte: look the ETag up again and retry.
        (Op::PutSingle | Op::Begin, 409 | 412) => BackendError::Retry {
            op,
            after: r.retry_after,
            cause: format!("the file was updated by somebody else meanwhile: {detail}"),
        },
        // An unknown asset or folder: configuration, not this file.
        (_, 404) => BackendError::Fatal {
            op,
            status: Some(404),
            detail,
        },
        _ => from_status(op, r.status, r.retry_after, r.body),
    }
}
