//! Direct (single-request) upload: `POST /2.0/files/content` and
//! `POST /2.0/files/{id}/content` (protocols/box.md §Small files, rule 16).
//!
//! multipart/form-data with an `attributes` JSON part before the `file` part. The
//! whole body is always read (the file part streamed to a staging file, hashed as it
//! comes) before anything is judged, so the client reads our answer; then: part
//! order (400 `metadata_after_file_contents`), attributes (400), `content-md5` (the
//! file's SHA-1 hex; 400 `bad_digest` on mismatch), folder/file (404), `If-Match`
//! (412), name (409 `item_name_in_use` with the conflicting item). No size limit:
//! Box recommends direct upload up to 50 MB but does not refuse more.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::commit::{store_new_file, store_new_version};
use super::error::BoxError;
use super::headers::parse_sha1_hex;
use super::tree::check_name;
use super::{BoxApi, header};
use crate::faults::body::drain;
use crate::store::{Hashes, Staged};

/// What the form carried.
struct Form {
    /// The `attributes` part, parsed, if it came before the `file` part.
    attributes: Option<Value>,
    file: Option<Staged>,
    /// An `attributes` part came after the `file` part. (No attributes at all is
    /// fine for a new version; a new file then lacks its name: 400.)
    file_first: bool,
}

async fn read_form(api: &BoxApi, req: Request) -> Result<Form, BoxError> {
    let is_form = header(req.headers(), CONTENT_TYPE.as_str())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_form {
        drain(req.into_body()).await;
        return Err(BoxError::bad_request("Expected a multipart/form-data body"));
    }
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| BoxError::bad_request(e.body_text()))?;
    let bad = |e: axum::extract::multipart::MultipartError| BoxError::bad_request(e.body_text());
    let mut out = Form {
        attributes: None,
        file: None,
        file_first: false,
    };
    let mut attributes_text = None;
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("attributes") => {
                if out.file.is_some() {
                    out.file_first = true;
                }
                attributes_text = Some(field.text().await.map_err(bad)?);
            }
            Some("file") => {
                let mut staging = api
                    .shared
                    .store
                    .staging(Hashes::SHA1)
                    .map_err(BoxError::internal)?;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    staging.write(&chunk).await.map_err(BoxError::internal)?;
                }
                out.file = Some(staging.finish().await.map_err(BoxError::internal)?);
            }
            _ => while field.chunk().await.map_err(bad)?.is_some() {},
        }
    }
    if out.file_first {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "metadata_after_file_contents",
            "Metadata must be sent before file contents",
        ));
    }
    if let Some(text) = attributes_text {
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| BoxError::bad_request(format!("Invalid JSON in attributes: {e}")))?;
        out.attributes = Some(v);
    }
    Ok(out)
}

/// Checks `content-md5` (SHA-1 hex of the file) if given.
fn check_sha1(headers: &HeaderMap, file: &Staged) -> Result<(), BoxError> {
    let Some(v) = header(headers, "content-md5") else {
        return Ok(());
    };
    let want = parse_sha1_hex(v).map_err(BoxError::bad_request)?;
    if Some(want) != file.digests.sha1 {
        return Err(BoxError::new(
            StatusCode::BAD_REQUEST,
            "bad_digest",
            "The specified content-md5 did not match what we received",
        ));
    }
    Ok(())
}

fn name_of(attrs: &Value) -> Result<Option<String>, BoxError> {
    match attrs.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_name(s)?;
            Ok(Some(s.clone()))
        }
        Some(other) => Err(BoxError::item_name_invalid(format!(
            "Item name invalid: {other}"
        ))),
    }
}

fn created(file: Value) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({"total_count": 1, "entries": [file]})),
    )
        .into_response()
}

/// `POST /2.0/files/content`: a new file.
pub(crate) async fn upload_new(
    State(api): State<Arc<BoxApi>>,
    req: Request,
) -> Result<Response, BoxError> {
    let headers = req.headers().clone();
    let form = read_form(&api, req).await?;
    let attrs = form
        .attributes
        .ok_or_else(|| BoxError::bad_request("Missing attributes"))?;
    let name = name_of(&attrs)?
        .ok_or_else(|| BoxError::bad_request("Missing parameter: attributes.name"))?;
    let parent = match attrs.get("parent").and_then(|p| p.get("id")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(BoxError::bad_request(
                "Missing parameter: attributes.parent.id",
            ));
        }
    };
    let file = form
        .file
        .ok_or_else(|| BoxError::bad_request("Missing the file part"))?;
    check_sha1(&headers, &file)?;
    let (file, corrupted) = api.maybe_corrupt(file).await?;
    let mut st = api.lock();
    if st.tree.folder(&parent).is_none() {
        return Err(BoxError::not_found(format!(
            "Could not find the specified resource: folder {parent}"
        )));
    }
    st.tree.check_free(&parent, &name, None)?;
    let file = store_new_file(&api, &mut st, &parent, &name, file)?;
    api.count_corrupted(corrupted);
    tracing::info!(file = %file["id"], %name, "box direct upload: stored");
    Ok(created(file))
}

/// `POST /2.0/files/{id}/content`: a new version, optionally renamed.
pub(crate) async fn upload_version(
    State(api): State<Arc<BoxApi>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, BoxError> {
    let headers = req.headers().clone();
    let form = read_form(&api, req).await?;
    let rename = match &form.attributes {
        Some(attrs) => name_of(attrs)?,
        None => None,
    };
    let file = form
        .file
        .ok_or_else(|| BoxError::bad_request("Missing the file part"))?;
    check_sha1(&headers, &file)?;
    let (file, corrupted) = api.maybe_corrupt(file).await?;
    let mut st = api.lock();
    let file = store_new_version(&api, &mut st, &headers, &id, rename.as_deref(), file)?;
    api.count_corrupted(corrupted);
    tracing::info!(file = %id, "box direct upload: new version stored");
    Ok(created(file))
}
