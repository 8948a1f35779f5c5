//! Backend errors name what the engine does next, not who failed (STYLE §2.3).

use std::fmt;
use std::time::Duration;

/// The backend operation an error came from, for messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    PutSingle,
    Begin,
    PutPart,
    HeldParts,
    Complete,
    Abort,
    Stat,
    /// Reading the stored object back for verification.
    ReadBack,
    /// Listing and aborting what a dead daemon left on the service (at start).
    Sweep,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::PutSingle => "put_single",
            Op::Begin => "begin",
            Op::PutPart => "put_part",
            Op::HeldParts => "held_parts",
            Op::Complete => "complete",
            Op::Abort => "abort",
            Op::Stat => "stat",
            Op::ReadBack => "read_back",
            Op::Sweep => "sweep",
        })
    }
}

/// What the engine should do next.
///
/// Messages never carry credentials: backends build `cause`/`detail` from status
/// codes and response bodies with secrets masked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// Network failure, timeout, 408/429/5xx, a full disk: back off (at least
    /// `after`) and retry. Never exhausts: an edge device may be offline for days.
    #[error("{op}: temporary failure: {cause}")]
    Retry {
        op: Op,
        after: Option<Duration>,
        cause: String,
    },
    /// No connection to the service at all (refused, no route, name not resolved,
    /// connect timeout): it is away, not this file's request. The engine stops
    /// claiming files and probes with one at a time, backing off up to `retry_max`,
    /// until the service answers again (`engine/gate.rs`).
    #[error("{op}: service unreachable: {cause}")]
    Unreachable { op: Op, cause: String },
    /// The remote session expired or is unknown: begin again.
    #[error("{op}: upload session no longer exists: {detail}")]
    SessionGone { op: Op, detail: String },
    /// The service refused the credentials (or what the account may do) even after
    /// the backend re-read them once. Not the file's fault: the engine pauses all
    /// uploads, keeps sessions and parts, and tries again until they are accepted.
    #[error("{op}: credentials refused: {detail}")]
    AuthRefused { op: Op, detail: String },
    /// The server holds something else (digest, offset or size mismatch).
    #[error("{op}: conflict: {detail}")]
    Conflict { op: Op, detail: String },
    /// Needs a person: refused credentials, forbidden, too large, bad name.
    #[error("{op}: refused{}: {detail}", status.map(|s| format!(" with {s}")).unwrap_or_default())]
    Fatal {
        op: Op,
        status: Option<u16>,
        detail: String,
    },
}

impl BackendError {
    /// A configuration the backend cannot be built from (found when it is built;
    /// `check-config` reports the same with the file's line).
    pub fn config(detail: impl Into<String>) -> BackendError {
        BackendError::Fatal {
            op: Op::Begin,
            status: None,
            detail: detail.into(),
        }
    }

    pub fn op(&self) -> Op {
        match self {
            BackendError::Retry { op, .. }
            | BackendError::Unreachable { op, .. }
            | BackendError::SessionGone { op, .. }
            | BackendError::AuthRefused { op, .. }
            | BackendError::Conflict { op, .. }
            | BackendError::Fatal { op, .. } => *op,
        }
    }

    /// The least wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Retry { after, .. } => *after,
            _ => None,
        }
    }

    /// Classifies a local I/O error. A full disk or a busy resource can clear up by
    /// itself; a permission problem needs a person.
    pub fn from_io(op: Op, what: &str, err: &std::io::Error) -> BackendError {
        use std::io::ErrorKind::*;
        let cause = format!("{what}: {err}");
        match err.kind() {
            PermissionDenied | ReadOnlyFilesystem | InvalidInput | InvalidFilename => {
                BackendError::Fatal {
                    op,
                    status: None,
                    detail: cause,
                }
            }
            _ => BackendError::Retry {
                op,
                after: None,
                cause,
            },
        }
    }
}
