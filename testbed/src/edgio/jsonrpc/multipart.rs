//! The multipart methods (rules 6, 8–10): the JSON-RPC twins of create and complete,
//! and abort, restart, status, the state maps and the two listings.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::Edgio;
use super::super::headers::is_content_type;
use super::super::multipart::create::{NewUpload, key_of};
use super::super::multipart::upload::{PIECE_STATES, UPLOAD_STATES};
use super::super::multipart::{complete as mp_complete, control, create as mp_create, listing};
use super::params::Params;
use super::{RpcResult, Shape, caller};
use crate::faults::roll;

macro_rules! caller_or_answer {
    ($api:expr, $p:expr, $shape:expr) => {
        match caller($api, $p, $shape) {
            Ok(c) => c,
            Err(answer) => return answer,
        }
    };
}

/// `createMultipart(token, path, content_type?, mtime?)` → `{code, mpid}`.
pub(crate) fn create(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Object);
    let path = p.required_str(1, "path")?;
    let content_type = p.str(2, "content_type")?;
    let mtime = p.int(3, "mtime")?;
    let key = match key_of(&caller.root, path, None) {
        Ok(k) => k,
        Err(code) => return Ok(json!({ "code": code })),
    };
    if content_type.is_some_and(|t| !is_content_type(t)) {
        return Ok(json!({ "code": -21 }));
    }
    let mtime = match mtime {
        None => 0,
        Some(m) => match u64::try_from(m) {
            Ok(m) => m,
            Err(_) => return Ok(json!({ "code": -20 })),
        },
    };
    let s = api.shared.settings();
    let new = NewUpload {
        key,
        content_type: content_type.map(str::to_string),
        mtime,
    };
    Ok(match mp_create::create(&mut api.settled(&s), new) {
        Ok(mpid) => {
            api.counters.add_call("multipart/create");
            json!({ "code": 0, "mpid": mpid })
        }
        Err(code) => json!({ "code": code }),
    })
}

/// `completeMultipart(token, mpid)` → `{code, numpieces}`.
pub(crate) async fn complete(api: &Arc<Edgio>, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Object);
    let mpid = p.required_str(1, "mpid")?;
    let s = api.shared.settings();
    Ok(match mp_complete::complete(api, &s, &caller, mpid).await {
        Ok(n) => json!({ "code": 0, "numpieces": n }),
        Err(code) => json!({ "code": code }),
    })
}

/// `abortMultipart(token, mpid)` → bare code.
pub(crate) fn abort(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Bare);
    let mpid = p.required_str(1, "mpid")?;
    let s = api.shared.settings();
    Ok(json!(control::abort(&mut api.settled(&s), &caller, mpid)))
}

/// `restartMultipart(token, mpid)` → bare code.
pub(crate) fn restart(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Bare);
    let mpid = p.required_str(1, "mpid")?;
    let s = api.shared.settings();
    let fails = roll(s.edgio_join_fail_rate);
    let code = control::restart(&mut api.settled(&s), &caller, mpid, fails);
    if code == 0 {
        api.counters.add_call("restartMultipart");
    }
    Ok(json!(code))
}

/// `getMultipartStatus(token, mpid)`.
pub(crate) fn status(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Object);
    let mpid = p.required_str(1, "mpid")?;
    let s = api.shared.settings();
    Ok(control::status(
        &mut api.settled(&s),
        &s.edgio_account,
        &caller,
        mpid,
    ))
}

/// `getMultipartStatusMap(token, "upload" | "piece")` → `{code, map}`; `-19` another name.
pub(crate) fn status_map(api: &Edgio, p: &Params<'_>) -> RpcResult {
    caller_or_answer!(api, p, Shape::Object);
    let table: &[(i64, &str)] = match p.required_str(1, "name")? {
        "upload" => &UPLOAD_STATES,
        "piece" => &PIECE_STATES,
        _ => return Ok(json!({ "code": -19 })),
    };
    let map: serde_json::Map<String, Value> = table
        .iter()
        .map(|(code, name)| (code.to_string(), json!(name)))
        .collect();
    Ok(json!({ "code": 0, "map": map }))
}

/// `listMultipart(token, cookie=0, pagesize=100)`.
pub(crate) fn list(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Object);
    let cookie = p.int(1, "cookie")?.unwrap_or(0);
    let pagesize = p.int(2, "pagesize")?.unwrap_or(100);
    let s = api.shared.settings();
    Ok(listing::uploads(
        &api.settled(&s),
        &s.edgio_account,
        &caller,
        cookie,
        pagesize,
    ))
}

/// `listMultipartPiece(token, mpid, cookie=0, pagesize=100)`.
pub(crate) fn list_pieces(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = caller_or_answer!(api, p, Shape::Object);
    let mpid = p.required_str(1, "mpid")?;
    let cookie = p.int(2, "cookie")?.unwrap_or(0);
    let pagesize = p.int(3, "pagesize")?.unwrap_or(100);
    let s = api.shared.settings();
    Ok(listing::pieces(
        &mut api.settled(&s),
        &caller,
        mpid,
        cookie,
        pagesize,
    ))
}
