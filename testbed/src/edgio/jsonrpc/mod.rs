//! The JSON-RPC interface at `/jsonrpc` and `/jsonrpc2` (rule 4): both accept JSON-RPC
//! 1.0 and 2.0 (the seed calls both), positional or named parameters, and batches.
//!
//! Envelope: malformed JSON → `-32700`; not a request object → `-32600`; unknown
//! method → `-32601`; bad params → `-32602`; `login` without its arguments → `-32603`
//! (documented); these come back as JSON-RPC error objects with id null where none
//! was readable. Everything else is a *result*: a bare integer code for operation calls,
//! an object with `code` for the rest, `-10001` for a bad token in the method's own
//! shape. A 2.0 request (`"jsonrpc": "2.0"`) gets a 2.0 answer; otherwise a 1.0 answer
//! (`result`, `error`, `id`). Transport status is always 200 with `X-Agile-Status: 0`.
//!
//! Method files: `session` (login, logout, checkToken, updateSession), `files` (stat,
//! makeDir, makeDir2, deleteFile), `multipart` (create ... listMultipartPiece).

mod files;
mod multipart;
mod params;
mod session;

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Edgio;
use super::auth::Caller;
use super::error::STATUS_HEADER;
use params::Params;

/// Largest request read (calls carry tokens and paths, never file bytes).
const MAX_REQUEST: usize = 1 << 20;

/// A JSON-RPC error object.
#[derive(Debug)]
pub(crate) struct RpcError {
    code: i64,
    message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }
}

/// A method's result, or why there is none.
pub(crate) type RpcResult = Result<Value, RpcError>;

pub(crate) async fn handle(State(api): State<Arc<Edgio>>, body: Body) -> Response {
    let reply = match to_bytes(body, MAX_REQUEST).await {
        Err(_) => error_reply(
            &Value::Null,
            false,
            RpcError::new(-32600, "request too large"),
        ),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Err(e) => error_reply(
                &Value::Null,
                false,
                RpcError::new(-32700, format!("parse error: {e}")),
            ),
            Ok(Value::Array(batch)) if !batch.is_empty() => {
                let mut replies = Vec::with_capacity(batch.len());
                for req in &batch {
                    replies.push(one(&api, req).await);
                }
                Value::Array(replies)
            }
            Ok(req) => one(&api, &req).await,
        },
    };
    let mut resp = (StatusCode::OK, reply.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(STATUS_HEADER, HeaderValue::from(0));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/json;charset=utf-8"),
    );
    resp
}

/// One request object's reply.
async fn one(api: &Arc<Edgio>, req: &Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let v2 = req.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return error_reply(&id, v2, RpcError::new(-32600, "invalid request"));
    };
    let result = match Params::new(req.get("params")) {
        Ok(p) => call(api, method, &p).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(result) if v2 => json!({ "jsonrpc": "2.0", "result": result, "id": id }),
        Ok(result) => json!({ "result": result, "error": null, "id": id }),
        Err(e) => error_reply(&id, v2, e),
    }
}

fn error_reply(id: &Value, v2: bool, e: RpcError) -> Value {
    tracing::debug!(code = e.code, message = %e.message, "edgio json-rpc error");
    let error = json!({ "code": e.code, "message": e.message });
    if v2 {
        json!({ "jsonrpc": "2.0", "error": error, "id": id })
    } else {
        json!({ "result": null, "error": error, "id": id })
    }
}

async fn call(api: &Arc<Edgio>, method: &str, p: &Params<'_>) -> RpcResult {
    match method {
        "login" => session::login(api, p),
        "logout" => session::logout(api, p),
        "checkToken" => session::check_token(api, p),
        "updateSession" => session::update_session(api, p),
        "stat" => files::stat(api, p),
        "makeDir" => files::make_dir(api, p, false),
        "makeDir2" => files::make_dir(api, p, true),
        "deleteFile" => files::delete_file(api, p),
        "createMultipart" => multipart::create(api, p),
        "completeMultipart" => multipart::complete(api, p).await,
        "abortMultipart" => multipart::abort(api, p),
        "restartMultipart" => multipart::restart(api, p),
        "getMultipartStatus" => multipart::status(api, p),
        "getMultipartStatusMap" => multipart::status_map(api, p),
        "listMultipart" => multipart::list(api, p),
        "listMultipartPiece" => multipart::list_pieces(api, p),
        _ => Err(RpcError::new(-32601, format!("method not found: {method}"))),
    }
}

/// How a method answers a bad token (rule 3: "object or bare int as per method").
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// `-10001`.
    Bare,
    /// `{"code": -10001}`.
    Object,
}

/// The caller of a method whose first parameter is the token; `Err(Ok(..))` is the
/// method's own bad-token answer.
pub(crate) fn caller(api: &Edgio, p: &Params<'_>, shape: Shape) -> Result<Caller, RpcResult> {
    let token = p.required_str(0, "token").map_err(Err)?;
    let s = api.shared.settings();
    api.settled(&s)
        .sessions
        .caller(token, s.edgio_token_ttl_s)
        .ok_or(Ok(match shape {
            Shape::Bare => json!(super::error::BAD_TOKEN),
            Shape::Object => json!({ "code": super::error::BAD_TOKEN }),
        }))
}
