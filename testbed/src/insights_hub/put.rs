//! `PUT /files/{entityId}/{filepath}`: the query picks the operation
//! (protocols/insights-hub.md rule 6).
//!
//! No query: a single upload. `?upload=start|complete|abort`: a multi-part step.
//! `?part=N`: one part. `upload=` with another value, or both `upload=` and `part=`,
//! is 400; so is a `part=` that is not an integer in 1..=1000 (rule 8). The query, the
//! target (rule 2) and the metadata headers (rule 3) are judged before the body is
//! read; a refusal then reads the body before answering, so the client sees it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::error::IhError;
use super::headers::{self, Meta};
use super::target::Target;
use super::{InsightsHub, complete, multipart, single};
use crate::faults::Settings;
use crate::faults::body::drain;

/// Highest part number (rule 8).
pub(crate) const MAX_PART: u32 = 1000;

/// What a PUT asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Single,
    Start,
    Part(u32),
    Complete,
    Abort,
}

fn op(q: &HashMap<String, String>) -> Result<Op, IhError> {
    match (q.get("upload"), q.get("part")) {
        (Some(_), Some(_)) => Err(IhError::bad_request(
            "Query parameters upload and part cannot be combined.",
        )),
        (None, None) => Ok(Op::Single),
        (Some(u), None) => match u.as_str() {
            "start" => Ok(Op::Start),
            "complete" => Ok(Op::Complete),
            "abort" => Ok(Op::Abort),
            other => Err(IhError::bad_request(format!(
                "Invalid value for upload: {other:?} (start, complete or abort)."
            ))),
        },
        (None, Some(p)) => match p.parse::<u32>() {
            Ok(n) if (1..=MAX_PART).contains(&n) => Ok(Op::Part(n)),
            _ => Err(IhError::bad_request(format!(
                "Invalid value for part: {p:?} (an integer from 1 to {MAX_PART})."
            ))),
        },
    }
}

/// The parts of a PUT judged before its body.
fn judge(
    api: &InsightsHub,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: &HeaderMap,
) -> Result<(Op, Target, Meta, Settings), IhError> {
    let Query(q) = query.map_err(|e| IhError::bad_request(e.body_text()))?;
    let Path((entity, filepath)) = path.map_err(|e| IhError::bad_request(e.body_text()))?;
    let op = op(&q)?;
    let settings = api.shared.settings();
    let target = Target::parse(&settings, &entity, &filepath)?;
    let meta = headers::parse(headers)?;
    Ok((op, target, meta, settings))
}

pub(crate) async fn put(
    State(api): State<Arc<InsightsHub>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IhError> {
    let (op, target, meta, s) = match judge(&api, path, query, &headers) {
        Ok(judged) => judged,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    match op {
        Op::Single => single::put(&api, &s, target, meta, body).await,
        Op::Start => multipart::start(&api, &s, target, meta, body).await,
        Op::Part(n) => multipart::put_part(&api, &s, target, meta, n, body).await,
        Op::Complete => complete::complete(&api, &s, target, meta, body).await,
        Op::Abort => multipart::abort(&api, &s, &target, body).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn query_picks_the_operation() {
        assert_eq!(op(&q(&[])).ok(), Some(Op::Single));
        assert_eq!(op(&q(&[("upload", "start")])).ok(), Some(Op::Start));
        assert_eq!(op(&q(&[("upload", "complete")])).ok(), Some(Op::Complete));
        assert_eq!(op(&q(&[("upload", "abort")])).ok(), Some(Op::Abort));
        assert_eq!(op(&q(&[("part", "1")])).ok(), Some(Op::Part(1)));
        assert_eq!(op(&q(&[("part", "1000")])).ok(), Some(Op::Part(1000)));
        assert_eq!(op(&q(&[("other", "x")])).ok(), Some(Op::Single));
        for bad in [
            q(&[("upload", "begin")]),
            q(&[("upload", "")]),
            q(&[("upload", "START")]),
            q(&[("upload", "start"), ("part", "1")]),
            q(&[("part", "0")]),
            q(&[("part", "1001")]),
            q(&[("part", "-1")]),
            q(&[("part", "1.0")]),
            q(&[("part", "")]),
        ] {
            assert!(op(&bad).is_err(), "{bad:?}");
        }
    }
}
