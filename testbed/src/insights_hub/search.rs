//! `GET /files/{entityId}?filter=&limit=&offset=&count=`: search an asset's files
//! (protocols/insights-hub.md §Whole-file verification, rule 14).
//!
//! - `filter`: see `filter.rs`; an invalid filter is ignored, as the vendor documents.
//! - `limit`: 1..=200 (else 400, v3.2.4 spec); default 500, the filtering page's "by
//!   default ... only the first up to 500 files" (more than an explicit limit may ask).
//! - `offset`: 0..=10000 (else 400; the filtering page says it "is limited to 10,000",
//!   the refusal status is assumed).
//! - `count`: `true` adds `X-Total-Count` (files matching, before offset and limit).
//! - `order` is accepted and ignored: results come in file-path order.
//!
//! Each result has `name`, `path`, `type`, `size`, `timestamp`, `created`, `updated`,
//! `createdBy`, `updatedBy`, `description` and `etag` (an integer).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::InsightsHub;
use super::error::IhError;
use super::filter;
use super::target;

/// Most results one page holds when `limit` is given.
const MAX_LIMIT: u64 = 200;
/// Page size without `limit`.
const DEFAULT_LIMIT: u64 = 500;
/// Largest `offset`.
const MAX_OFFSET: u64 = 10_000;

fn number(
    q: &HashMap<String, String>,
    name: &str,
    range: (u64, u64),
    default: u64,
) -> Result<u64, IhError> {
    let Some(v) = q.get(name) else {
        return Ok(default);
    };
    match v.parse::<u64>() {
        Ok(n) if (range.0..=range.1).contains(&n) => Ok(n),
        _ => Err(IhError::bad_request(format!(
            "Invalid value for {name}: {v:?} (an integer from {} to {}).",
            range.0, range.1
        ))),
    }
}

pub(crate) async fn search(
    State(api): State<Arc<InsightsHub>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, IhError> {
    let Path(entity) = path.map_err(|e| IhError::bad_request(e.body_text()))?;
    let Query(q) = query.map_err(|e| IhError::bad_request(e.body_text()))?;
    target::asset(&api.shared.settings(), &entity)?;
    let limit = number(&q, "limit", (1, MAX_LIMIT), DEFAULT_LIMIT)?;
    let offset = number(&q, "offset", (0, MAX_OFFSET), 0)?;
    let count = match q.get("count").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(IhError::bad_request(format!(
                "Invalid value for count: {other:?} (true or false)."
            )));
        }
    };
    let filter = q.get("filter").and_then(|f| {
        let parsed = filter::parse(f);
        if parsed.is_none() {
            tracing::info!(filter = %f, "insights-hub search: invalid filter ignored");
        }
        parsed
    });

    let (total, page) = {
        let st = api.lock();
        let hits: Vec<_> = st
            .files
            .iter()
            .filter(|(t, f)| t.entity == entity && filter.as_ref().is_none_or(|p| p.matches(t, f)))
            .collect();
        let page: Vec<Value> = hits
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(t, f)| f.json(t))
            .collect();
        (hits.len(), page)
    };
    let mut resp = Json(page).into_response();
    if count {
        resp.headers_mut()
            .insert("x-total-count", HeaderValue::from(total));
    }
    Ok(resp)
}
