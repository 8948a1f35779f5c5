//! The service's status codes (`X-Agile-Status`, JSON-RPC `code`) and the engine's
//! next action for each (edgio.md §Errors, client policy).

use serde_json::Value;

use super::client::{Agile, Reply};
use crate::backend::{BackendError, Op};

/// Invalid, expired or missing token.
pub const AUTH: i64 = -10001;

/// Multipart upload states (edgio.md §Multipart).
pub mod state {
    pub const NEW: i64 = 1;
    pub const READY: i64 = 2;
    pub const COMPLETE: i64 = 3;
    pub const JOIN: i64 = 5;
    pub const SUCCESS: i64 = 6;
    pub const DELETED: i64 = 8;
    pub const ERROR: i64 = 9;
    pub const ABORT: i64 = 10;
    pub const EXPIRED: i64 = 11;
    pub const FAILED: i64 = 12;

    pub fn name(s: i64) -> &'static str {
        match s {
            NEW => "NEW",
            READY => "READY",
            COMPLETE => "COMPLETE",
            JOIN => "JOIN",
            SUCCESS => "SUCCESS",
            DELETED => "DELETED",
            ERROR => "ERROR",
            ABORT => "ABORT",
            EXPIRED => "EXPIRED",
            FAILED => "FAILED",
            _ => "UNKNOWN",
        }
    }
}

/// Piece state NEW: a stored piece the join will use.
pub const PIECE_NEW: i64 = 1;

/// A short reading of a code, for messages. The same number means different
/// things per call; these are the meanings of the calls dropship makes.
pub fn meaning(code: i64) -> &'static str {
    match code {
        0 => "success",
        -1 => "not found, or too many open uploads",
        -2 => "unknown upload id, or a file has that name",
        -3 => "parent folder missing, or bad part number",
        -4 => "no pieces",
        -5 => "gap in the part numbers, or a server error",
        -6 => "invalid checksum",
        -8 => "bad path, or the upload is already completed, deleted or expired",
        -10 => "more than 1000 pieces",
        -11 => "piece too large",
        -13 => "lock expired",
        -16 => "path too long",
        -17 => "upload aborted",
        -18 => "the upload's state does not allow this",
        -22 => "disk full, or the join cannot be restarted",
        -23 => "parent folder missing",
        -24 => "no body, or bad content type",
        -25 => "too large",
        -26 => "checksum mismatch, or the service is unavailable",
        -27 => "server error",
        -49 => "the stored size differs from Content-Length",
        AUTH => "invalid or expired token",
        _ => "undocumented",
    }
}

/// The default action for a refused HTTP call: 429 and 5xx wait and try again
/// (`-26`, `-22`, `-27`, `-13`, `-49`, `-5`); any other refusal needs a person.
pub fn classify(op: Op, reply: &Reply) -> BackendError {
    let status = reply.status.as_u16();
    if status == 429 || status == 408 || status >= 500 {
        return BackendError::Retry {
            op,
            after: Agile::retry_after(reply),
            cause: reply.describe(),
        };
    }
    BackendError::Fatal {
        op,
        status: Some(status),
        detail: reply.describe(),
    }
}

/// The code of a JSON-RPC result: a bare integer, or an object's `code`.
pub fn rpc_code(result: &Value) -> Option<i64> {
    result
        .as_i64()
        .or_else(|| result.get("code").and_then(Value::as_i64))
}

/// A JSON-RPC result whose code is not 0 and not handled by the caller.
pub fn rpc_refused(op: Op, method: &str, result: &Value) -> BackendError {
    // No code at all is not the service's verdict but an answer mangled on the way
    // (a hostile-answers run saw a stat "refused with code 0" fail a file): asked
    // again, like any answer that cannot be read.
    let Some(code) = rpc_code(result) else {
        let text = result.to_string();
        let end = text.char_indices().nth(200).map_or(text.len(), |(i, _)| i);
        return BackendError::Retry {
            op,
            after: None,
            cause: format!("{method} answered no code: {}", &text[..end]),
        };
    };
    let detail = format!("{method} answered code {code} ({})", meaning(code));
    match code {
        // Unavailable, disk full, lock expired, server errors: they pass.
        -26 | -22 | -13 | -27 | -5 | -32099..=-32000 => BackendError::Retry {
            op,
            after: None,
            cause: detail,
        },
        _ => BackendError::Fatal {
            op,
            status: None,
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_without_a_code_is_asked_again_not_refused() {
        for mangled in [
            serde_json::json!([null, null]),
            serde_json::json!("garbage"),
            serde_json::json!({"size": 3}),
        ] {
            let e = rpc_refused(Op::Stat, "stat", &mangled);
            assert!(matches!(e, BackendError::Retry { .. }), "{mangled}: {e}");
        }
    }

    #[test]
    fn rpc_codes_bare_or_in_an_object() {
        assert_eq!(rpc_code(&serde_json::json!(-17)), Some(-17));
        assert_eq!(
            rpc_code(&serde_json::json!({"code": 0, "mpid": "x"})),
            Some(0)
        );
        assert_eq!(rpc_code(&serde_json::json!([null, null])), None);
    }

    #[test]
    fn passing_codes_retry_others_need_a_person() {
        let r = |c| rpc_refused(Op::Complete, "m", &serde_json::json!(c));
        assert!(matches!(r(-26), BackendError::Retry { .. }));
        assert!(matches!(r(-13), BackendError::Retry { .. }));
        assert!(matches!(r(-19), BackendError::Fatal { .. }));
    }
}
