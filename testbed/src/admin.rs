//! `/_testbed/...`: the control endpoints for tests and benchmarks.
//!
//! Never faulted, never authenticated, never counted in `requests`.
//! - `GET /stats` → [`Stats`](crate::Stats)
//! - `GET /faults` → [`Settings`](crate::Settings); `PUT /faults` with a JSON
//!   [`SettingsPatch`](crate::SettingsPatch) → the full new settings (400 if a value is
//!   out of range or a knob is unknown; nothing changes then)
//! - `PUT /secret` with the new secret as a plain-text body → 204; the credential
//!   every emulator accepts from then on (Box: the bearer token). Surrounding
//!   whitespace is trimmed; 400 `{"error"}` and no change if nothing is left or it
//!   holds a character an HTTP header cannot carry. Never logged, never read back.
//! - `GET /objects` → `[ObjectInfo]`
//! - `GET /objects/{emulator}/{*path}` → the stored bytes of one object

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::json;

use crate::app::Shared;
use crate::emulator::Emulator;
use crate::faults::SettingsPatch;

#[derive(Clone)]
struct Admin {
    shared: Arc<Shared>,
    emulators: Vec<Arc<dyn Emulator>>,
}

pub(crate) fn routes(shared: Arc<Shared>, emulators: Vec<Arc<dyn Emulator>>) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/secret", put(put_secret))
        .route("/objects", get(objects))
        .route("/objects/{emulator}/{*path}", get(object_content))
        .with_state(Admin { shared, emulators })
}

async fn stats(State(a): State<Admin>) -> Response {
    Json(crate::app::stats(&a.shared, &a.emulators)).into_response()
}

async fn get_faults(State(a): State<Admin>) -> Response {
    Json(a.shared.settings()).into_response()
}

async fn put_faults(State(a): State<Admin>, body: Bytes) -> Response {
    let patch: SettingsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e.to_string()),
    };
    match a.shared.try_update(&patch) {
        Ok(settings) => {
            tracing::info!(?patch, "fault settings changed");
            Json(settings).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn put_secret(State(a): State<Admin>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request("the secret must be UTF-8 text".into());
    };
    match crate::app::parse_secret(text) {
        Ok(secret) => {
            a.shared.set_secret(secret.to_string());
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn objects(State(a): State<Admin>) -> Response {
    // The listing may hash objects whose digests no emulator computed.
    match tokio::task::spawn_blocking(move || a.shared.store.list()).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn object_content(
    State(a): State<Admin>,
    Path((emulator, path)): Path<(String, String)>,
) -> Response {
    let Some(blob) = a.shared.store.blob_by_path(&emulator, &path) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such object"})),
        )
            .into_response();
    };
    let body = blob.open().and_then(|b| {
        let len = b.len();
        crate::byte_range::slice_body(b, 0, len)
    });
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}
