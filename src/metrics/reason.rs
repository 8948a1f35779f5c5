//! Why a part's request failed and the part is to be sent again: the `reason`
//! label of `dropship_parts_retried_total`.
//!
//! The engine acts on [`BackendError`]'s variant; a `Retry` says *that* the
//! request may go again, and its `cause` text says why. The HTTP backends all write
//! a refusal's status the same way (`HTTP 503 Service Unavailable: ...`, from
//! `http::from_status` and each vendor's `Refusal::describe`), and the request
//! timers write the config key they enforce, so the reason is read from there. The
//! tests below build those texts with the real producers: a change of wording
//! breaks them, not the label silently.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use crate::backend::BackendError;

/// The closed set of `reason` label values (bounded cardinality, no free text:
/// nothing from a server's answer, and no secret, can become a label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No HTTP answer, or one that could not be read: a reset, a body cut off, an
    /// unreadable answer; and temporary failures that carry no status.
    Network,
    /// `upload.stall_timeout` or `upload.answer_timeout` ran out, or HTTP 408.
    Timeout,
    /// HTTP 429.
    RateLimited,
    /// HTTP 5xx.
    ServerError,
    /// The service holds something else for the part or the object (409/412, or a
    /// backend's `Conflict`, e.g. "this range is being uploaded").
    Conflict,
    /// The bytes did not arrive as sent: the service refused a part for its digest,
    /// or acknowledged it with another one.
    Checksum,
    /// The upload session expired or is unknown: its parts go again in a new one.
    SessionGone,
    /// The service could not be reached at all (the engine pauses and probes).
    Unreachable,
    /// The credentials were refused (uploads pause until they are accepted).
    AuthRefused,
    /// Another status the backend chose to retry.
    Refused,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Network,
        Reason::Timeout,
        Reason::RateLimited,
        Reason::ServerError,
        Reason::Conflict,
        Reason::Checksum,
        Reason::SessionGone,
        Reason::Unreachable,
        Reason::AuthRefused,
        Reason::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Network => "network",
            Reason::Timeout => "timeout",
            Reason::RateLimited => "rate_limited",
            Reason::ServerError => "server_error",
            Reason::Conflict => "conflict",
            Reason::Checksum => "checksum",
            Reason::SessionGone => "session_gone",
            Reason::Unreachable => "unreachable",
            Reason::AuthRefused => "auth_refused",
            Reason::Refused => "refused",
        }
    }

    /// Why a part's request failed, if the part is to be sent again; `None` for a
    /// refusal that fails the file (`Fatal`): that part is never sent again.
    pub fn of(e: &BackendError) -> Option<Reason> {
        Some(match e {
            BackendError::Fatal { .. } => return None,
            BackendError::Conflict { .. } => Reason::Conflict,
            BackendError::SessionGone { .. } => Reason::SessionGone,
            BackendError::Unreachable { .. } => Reason::Unreachable,
            BackendError::AuthRefused { .. } => Reason::AuthRefused,
            BackendError::Retry { cause, .. } => Reason::of_cause(cause),
        })
    }

    fn of_cause(cause: &str) -> Reason {
        // The timers name the key they enforce (`Expired`, `http::read_body`).
        if cause.contains("(upload.stall_timeout)") || cause.contains("(upload.answer_timeout)") {
            return Reason::Timeout;
        }
        let digest_words = ["digest", "checksum", "md5", "sha"];
        let lower = cause.to_ascii_lowercase();
        match http_status(cause) {
            None => Reason::Network,
            Some(408) => Reason::Timeout,
            Some(429) => Reason::RateLimited,
            Some(500..=599) => Reason::ServerError,
            // Box's 412 and Exosite's 400 for a part whose digest did not match on
            // arrival (box.md rule 9, exosite.md §Errors).
            Some(400 | 412) if digest_words.iter().any(|w| lower.contains(w)) => Reason::Checksum,
            Some(409 | 412) => Reason::Conflict,
            Some(_) => Reason::Refused,
        }
    }
}

/// The status of the first `HTTP NNN` in `cause`.
fn http_status(cause: &str) -> Option<u16> {
    let at = cause.find("HTTP ")?;
    let digits = cause.get(at + 5..at + 8)?;
    digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())
        .flatten()
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::StatusCode;

    use super::*;
    use crate::backend::Op;
    use crate::backend::http::from_status;

    fn retry(cause: String) -> BackendError {
        BackendError::Retry {
            op: Op::PutPart,
            after: None,
            cause,
        }
    }

    #[test]
    fn statuses_from_the_shared_mapping() {
        let of = |code: u16| {
            let status = StatusCode::from_u16(code).expect("status");
            Reason::of(&from_status(Op::PutPart, status, None, "{}".into()))
        };
        assert_eq!(of(429), Some(Reason::RateLimited));
        assert_eq!(of(503), Some(Reason::ServerError));
        assert_eq!(of(500), Some(Reason::ServerError));
        assert_eq!(of(408), Some(Reason::Timeout));
        assert_eq!(of(409), Some(Reason::Conflict));
        assert_eq!(of(401), Some(Reason::AuthRefused));
        assert_eq!(
            of(400),
            None,
            "a refusal that fails the file is not retried"
        );
    }

    #[test]
    fn timers_and_transport() {
        use crate::backend::Expired;
        let stalled = Expired::Stalled(Duration::from_secs(60)).to_string();
        assert_eq!(Reason::of(&retry(stalled)), Some(Reason::Timeout));
        let unanswered = Expired::NoAnswer(Duration::from_secs(120)).to_string();
        assert_eq!(Reason::of(&retry(unanswered)), Some(Reason::Timeout));
        let reset = "error sending request: connection reset by peer".to_string();
        assert_eq!(Reason::of(&retry(reset)), Some(Reason::Network));
        let unreachable = BackendError::Unreachable {
            op: Op::PutPart,
            cause: "connection refused".into(),
        };
        assert_eq!(Reason::of(&unreachable), Some(Reason::Unreachable));
    }

    #[test]
    fn digest_refusals_and_wrapped_statuses() {
        let box_412 = "HTTP 412 Precondition Failed: sha1 mismatch".to_string();
        assert_eq!(Reason::of(&retry(box_412)), Some(Reason::Checksum));
        let stale =
            "the file was updated by somebody else meanwhile: HTTP 412 Precondition Failed: {}";
        assert_eq!(Reason::of(&retry(stale.into())), Some(Reason::Conflict));
        assert_eq!(
            Reason::of(&retry("HTTP 418 I'm a teapot".into())),
            Some(Reason::Refused)
        );
        assert_eq!(http_status("HTTP 5"), None);
        assert_eq!(http_status("HTTP abc"), None);
    }

    #[test]
    fn label_values_are_distinct_snake_case() {
        let names: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
