//! Box's preflight check: `OPTIONS /2.0/files/content` with a JSON body
//! `{"name": "...", "parent": {"id": "..."}, "size": N}` (`size` optional).
//!
//! It answers what a direct upload of that name into that folder would meet, without
//! any content (Box's OpenAPI spec lists 200 `UploadUrl` and 409 `ConflictError`;
//! Box's guide says it runs the same checks as a real upload):
//! - 200 `{"upload_url": "<this emulator's /2.0/files/content>", "upload_token": null}`
//!   when the name is free (real Box gives an upload-host URL and, in practice, a
//!   null token);
//! - 409 `item_name_in_use` when the name is taken, case-insensitively, by a file or
//!   a folder: `context_info.conflicts` is that item as one mini object, as for
//!   uploads (rclone's Box backend reads it that way, and treats a non-file as a
//!   directory). Clients use this to find an item by name without listing the folder;
//! - 404 `not_found` for a missing folder, 400 `item_name_invalid` for a bad name,
//!   400 `bad_request` for a missing or malformed body.
//!
//! Nothing is reserved: the name can be taken before the upload comes. The emulator
//! has no quotas, so `size` is only checked to be a non-negative integer.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::BoxError;
use super::tree::check_name;
use super::{BoxApi, read_json};

/// `OPTIONS /2.0/files/content`.
pub(crate) async fn check(
    State(api): State<Arc<BoxApi>>,
    body: Body,
) -> Result<Response, BoxError> {
    // The whole body is read before any answer, so the client reads the answer.
    let v = read_json(body).await?;
    // Checked in the order of a direct upload's attributes: name, parent, then the
    // folder and the name's use.
    let name = match v.get("name") {
        None | Some(Value::Null) => return Err(BoxError::bad_request("Missing parameter: name")),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(BoxError::item_name_invalid(format!(
                "Item name invalid: {other}"
            )));
        }
    };
    check_name(&name)?;
    let parent = match v.get("parent").and_then(|p| p.get("id")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(BoxError::bad_request("Missing parameter: parent.id")),
    };
    match v.get("size") {
        None | Some(Value::Null) => {}
        Some(size) if size.as_u64().is_some() => {}
        Some(other) => {
            return Err(BoxError::bad_request(format!(
                "Invalid value for size: {other}"
            )));
        }
    }
    let st = api.lock();
    if st.tree.folder(&parent).is_none() {
        return Err(BoxError::not_found(format!(
            "Could not find the specified resource: folder {parent}"
        )));
    }
    st.tree.check_free(&parent, &name, None)?;
    Ok(Json(json!({
        "upload_url": format!("{}/files/content", api.api_base()),
        "upload_token": null,
    }))
    .into_response())
}
