//! `login`, `logout`, `checkToken`, `updateSession` (rules 1, 2; protocols/edgio.md
//! §Auth and sessions).

use std::time::Instant;

use serde_json::{Value, json};

use super::super::Edgio;
use super::super::auth::{self, Expiry, GID, UID, USERNAME};
use super::super::error::BAD_TOKEN;
use super::super::paths::display;
use super::params::Params;
use super::{RpcError, RpcResult};

/// `login(username, password, detail?)` → `[token, {uid, gid[, path]}]`; wrong
/// credentials `[null, null]`; empty username `-40`, empty password `-41`; a missing
/// argument `-32603` (all documented).
pub(crate) fn login(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let missing = || RpcError::new(-32603, "username and password are required");
    let user = p.str(0, "username")?.ok_or_else(missing)?;
    let password = p.str(1, "password")?.ok_or_else(missing)?;
    let detail = p.bool(2, "detail")?.unwrap_or(false);
    if user.is_empty() {
        return Ok(json!(-40));
    }
    if password.is_empty() {
        return Ok(json!(-41));
    }
    if !auth::credentials_ok(&api.shared, user, password) {
        return Ok(json!([null, null]));
    }
    let s = api.shared.settings();
    let token = api
        .settled(&s)
        .sessions
        .open(String::new(), Expiry::Default);
    tracing::info!("edgio json-rpc login");
    api.counters.add_call("login");
    let mut who = json!({ "uid": UID, "gid": GID });
    if detail {
        who["path"] = json!(display(&s.edgio_account, ""));
    }
    Ok(json!([token, who]))
}

/// `logout(token)` → `0`, or `-1` for a token that is not live.
pub(crate) fn logout(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let token = p.required_str(0, "token")?;
    let s = api.shared.settings();
    let closed = api.settled(&s).sessions.close(token, s.edgio_token_ttl_s);
    if closed {
        api.counters.add_call("logout");
    }
    Ok(json!(if closed { 0 } else { -1 }))
}

/// `checkToken(token)` → `{code, age, uid, gid, path, username}`.
pub(crate) fn check_token(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let token = p.required_str(0, "token")?;
    let s = api.shared.settings();
    let mut st = api.settled(&s);
    let Some(session) = st.sessions.live(token, s.edgio_token_ttl_s) else {
        return Ok(json!({ "code": BAD_TOKEN }));
    };
    let age = Instant::now()
        .saturating_duration_since(session.login)
        .as_secs_f64();
    Ok(json!({
        "code": 0,
        "age": age,
        "uid": UID,
        "gid": GID,
        "path": display(&s.edgio_account, &session.root),
        "username": USERNAME,
    }))
}

/// `updateSession(token, expire?)`: sets the lifetime once per session (`-1` after,
/// including after an `X-Agile-Expiry` login); `expire` 0 or absent: never expires;
/// negative or not an integer: `-34`.
pub(crate) fn update_session(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let token = p.required_str(0, "token")?;
    let expiry = match p.raw(1, "expire") {
        None => Expiry::Never,
        Some(v) => match v.as_i64() {
            Some(0) => Expiry::Never,
            Some(n) if n > 0 => Expiry::After(n as u64),
            _ => return Ok(json!(-34)),
        },
    };
    let s = api.shared.settings();
    let mut st = api.settled(&s);
    let Some(session) = st.sessions.live(token, s.edgio_token_ttl_s) else {
        return Ok(json!(BAD_TOKEN));
    };
    if session.expiry_set {
        return Ok(json!(-1));
    }
    session.expiry = expiry;
    session.expiry_set = true;
    Ok(Value::from(0))
}
