//! `GET /fileslist/{entityId}/{filepath}`: the parts of the upload in progress
//! (protocols/insights-hub.md §Resume, rule 12).
//!
//! A JSON array ordered by `partNo` of `{"objectKey", "partNo", "created"}`, `created`
//! in epoch milliseconds as the vendor's sample shows (the v3.2.4 spec types it as a
//! date-time string instead). Only numbers and times: no size, no checksum. No upload
//! in progress (never started, completed, aborted or expired) → `[]`. The final part
//! that rides on `upload=complete` exists only at completion, so it is never listed.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::InsightsHub;
use super::error::IhError;
use super::target::Target;

pub(crate) async fn list(
    State(api): State<Arc<InsightsHub>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, IhError> {
    let Path((entity, filepath)) = path.map_err(|e| IhError::bad_request(e.body_text()))?;
    let s = api.shared.settings();
    let target = Target::parse(&s, &entity, &filepath)?;
    let key = target.object_key();
    let mut st = api.lock();
    let entries: Vec<Value> = match st.live_upload(&target, s.ih_part_ttl_s) {
        Ok(u) => u
            .parts
            .iter()
            .map(|(n, p)| json!({"objectKey": key, "partNo": n, "created": p.created_ms}))
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Json(entries).into_response())
}
