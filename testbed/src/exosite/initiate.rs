//! `POST /onep:v1/content/`: initiate an upload in parts (protocols/exosite.md §Upload
//! in parts step 1, rule 4).
//!
//! Body: a JSON object `{"id": "<content id>", "length": <total bytes>, "type":
//! "<MIME type>"}`; other members are ignored. Refused with 400 (assumed): not a JSON
//! object; `id` not a string, empty, or holding `/` or a control character; `length`
//! not a JSON integer ≥ 1; `type` not a non-empty string that can be a header value
//! (it is the download's `Content-Type`). A length of 100 MB or less is accepted too.
//! The request's `Content-Type` is not checked (the seed sends `application/json`).
//!
//! An upload of the same id in progress is reset (`exosite_reinitiate` = reset, the
//! assumed default) or the initiate is refused with 409 (= conflict). Completed content
//! of the id stays visible until the new upload completes. Success: 204, empty body
//! (assumed).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;

use super::content::{check_id, now_s};
use super::error::ExError;
use super::upload::Upload;
use super::{Exosite, NAME};
use crate::faults::ExositeReinitiate;

/// Largest initiate body read; anything longer is not the three-member object.
const MAX_BODY: usize = 64 * 1024;

/// What a valid initiate asks for.
#[derive(Debug, PartialEq, Eq)]
struct Initiate {
    id: String,
    length: u64,
    file_type: String,
}

pub(crate) async fn initiate(
    State(api): State<Arc<Exosite>>,
    body: Body,
) -> Result<Response, ExError> {
    let req = parse(read_small(body).await.as_deref())?;
    let s = api.shared.settings();
    let serial = crate::hex::hex(&fastrand::u128(..).to_le_bytes());
    let dir = api
        .shared
        .store
        .session_dir(NAME, &serial)
        .map_err(ExError::internal)?;
    let now = Instant::now();
    let upload = Upload {
        serial,
        length: req.length,
        file_type: req.file_type,
        received: 0,
        dir,
        ranges: Vec::new(),
        last: None,
        touched: now,
        touched_s: now_s(),
    };
    let mut st = api.lock();
    if st.live_upload(&req.id, s.exosite_upload_ttl_s).is_some()
        && s.exosite_reinitiate == ExositeReinitiate::Conflict
    {
        drop(st);
        upload.discard();
        return Err(ExError::conflict(format!(
            "Conflict: an upload of content {:?} is in progress",
            req.id
        )));
    }
    // A re-send of the old upload's final range is no longer "the last one accepted".
    if let Some(c) = st.contents.get_mut(&req.id) {
        c.last = None;
    }
    let length = upload.length;
    if let Some(old) = st.uploads.insert(req.id.clone(), upload) {
        drop(st);
        tracing::info!(emulator = NAME, id = %req.id, length, dropped = old.received, "upload reset by a new initiate");
        old.discard();
    } else {
        tracing::info!(emulator = NAME, id = %req.id, length, "upload initiated");
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body if it is at most [`MAX_BODY`] bytes; the rest of a longer one is read and
/// dropped, so the client sees the 400.
async fn read_small(body: Body) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut fits = true;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return None;
        };
        if fits && buf.len() + chunk.len() <= MAX_BODY {
            buf.extend_from_slice(&chunk);
        } else {
            fits = false;
        }
    }
    fits.then_some(buf)
}

fn parse(body: Option<&[u8]>) -> Result<Initiate, ExError> {
    let bad = |why: &str| ExError::bad_request(format!("invalid initiate body: {why}"));
    let v: Value = body
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| bad("not JSON"))?;
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("\"id\" must be a string"))?;
    check_id(id)?;
    let length = obj
        .get("length")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .ok_or_else(|| bad("\"length\" must be a positive integer"))?;
    let file_type = obj
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty() && HeaderValue::from_str(t).is_ok())
        .ok_or_else(|| bad("\"type\" must be a MIME type"))?;
    Ok(Initiate {
        id: id.to_string(),
        length,
        file_type: file_type.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: &str) -> Result<Initiate, u16> {
        parse(Some(body.as_bytes())).map_err(|e| e.status().as_u16())
    }

    #[test]
    fn the_seed_body_is_accepted() {
        let want = Initiate {
            id: "bigfile.txt".into(),
            length: 157_286_400,
            file_type: "text/plain".into(),
        };
        // json.dumps(info) of the seed, extra members ignored.
        let body = r#"{"id": "bigfile.txt", "length": 157286400, "type": "text/plain"}"#;
        assert_eq!(parsed(body), Ok(want));
        assert!(parsed(r#"{"id":"a","length":1,"type":"x/y","extra":true}"#).is_ok());
    }

    #[test]
    fn bad_bodies_are_400() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"length": 1, "type": "x/y"}"#,
            r#"{"id": "", "length": 1, "type": "x/y"}"#,
            r#"{"id": "a/b", "length": 1, "type": "x/y"}"#,
            r#"{"id": 7, "length": 1, "type": "x/y"}"#,
            r#"{"id": "a", "type": "x/y"}"#,
            r#"{"id": "a", "length": 0, "type": "x/y"}"#,
            r#"{"id": "a", "length": -1, "type": "x/y"}"#,
            r#"{"id": "a", "length": 1.5, "type": "x/y"}"#,
            r#"{"id": "a", "length": "10", "type": "x/y"}"#,
            r#"{"id": "a", "length": 1}"#,
            r#"{"id": "a", "length": 1, "type": ""}"#,
            r#"{"id": "a", "length": 1, "type": "a\nb"}"#,
        ] {
            assert_eq!(parsed(bad).err(), Some(400), "{bad}");
        }
        assert!(parse(None).is_err(), "a body too long");
    }
}
