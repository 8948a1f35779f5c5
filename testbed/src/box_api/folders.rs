//! Folders, enough for a client to mirror a tree: create, info, items, delete.
//!
//! A name clash on create is 409 `item_name_in_use` with `context_info.conflicts`
//! an array holding the existing item (file or folder, with id and type), which is
//! how Box shapes it for folders (uploads get a single object instead).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::BoxError;
use super::tree::{ROOT, check_name};
use super::{BoxApi, NAME, check_if_match, read_json};

fn no_folder(id: &str) -> BoxError {
    BoxError::not_found(format!(
        "Could not find the specified resource: folder {id}"
    ))
}

/// `POST /2.0/folders` `{"name", "parent": {"id"}}` → 201 folder.
pub(crate) async fn create(
    State(api): State<Arc<BoxApi>>,
    body: Body,
) -> Result<Response, BoxError> {
    let v = read_json(body).await?;
    let name = match v.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(BoxError::bad_request("Missing parameter: name")),
        Some(other) => {
            return Err(BoxError::item_name_invalid(format!(
                "Item name invalid: {other}"
            )));
        }
    };
    let parent = match v.get("parent").and_then(|p| p.get("id")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(BoxError::bad_request("Missing parameter: parent.id")),
    };
    check_name(&name)?;
    let mut st = api.lock();
    if st.tree.folder(&parent).is_none() {
        return Err(no_folder(&parent));
    }
    if let Some(existing) = st.tree.child(&parent, &name) {
        let conflict = st.tree.conflict_json(existing);
        return Err(BoxError::name_in_use(Value::Array(vec![conflict])));
    }
    let id = st.tree.add_folder(&parent, &name);
    let folder = st
        .tree
        .folder(&id)
        .map_or(Value::Null, |f| st.tree.folder_json(f));
    Ok((StatusCode::CREATED, Json(folder)).into_response())
}

/// `GET /2.0/folders/{id}`, with the first 100 items in `item_collection`.
pub(crate) async fn info(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
) -> Result<Response, BoxError> {
    let st = api.lock();
    let folder = st.tree.folder(&id).ok_or_else(|| no_folder(&id))?;
    Ok(Json(st.tree.folder_json(folder)).into_response())
}

/// `GET /2.0/folders/{id}/items?offset=&limit=`: limit defaults to 100, caps at 1000.
pub(crate) async fn items(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, BoxError> {
    let Query(q) = query.map_err(|e| BoxError::bad_request(e.body_text()))?;
    let number = |name: &str, default: usize| -> Result<usize, BoxError> {
        q.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| BoxError::bad_request(format!("Invalid value for {name}: {v:?}")))
        })
    };
    let offset = number("offset", 0)?;
    let limit = number("limit", 100)?.min(1000);
    let st = api.lock();
    st.tree.folder(&id).ok_or_else(|| no_folder(&id))?;
    Ok(Json(st.tree.items_page(&id, offset, limit)).into_response())
}

/// `DELETE /2.0/folders/{id}?recursive=true` → 204. A non-empty folder needs
/// `recursive=true` (else 400 `folder_not_empty`); the root cannot be deleted.
pub(crate) async fn delete(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, BoxError> {
    let Query(q) = query.map_err(|e| BoxError::bad_request(e.body_text()))?;
    let recursive = q.get("recursive").is_some_and(|v| v == "true");
    let mut st = api.lock();
    st.tree.folder(&id).ok_or_else(|| no_folder(&id))?;
    if id == ROOT {
        return Err(BoxError::new(
            StatusCode::FORBIDDEN,
            "access_denied_insufficient_permissions",
            "The root folder cannot be deleted",
        ));
    }
    check_if_match(&headers, Some(0))?;
    if !recursive && !st.tree.list(&id).is_empty() {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "folder_not_empty",
            "Cannot delete – folder not empty",
        ));
    }
    for gone in st.tree.remove(&id) {
        api.shared.store.remove(NAME, &gone);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
