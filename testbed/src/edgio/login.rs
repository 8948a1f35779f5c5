//! `POST /account/login` (rule 1; protocols/edgio.md §Auth and sessions).
//!
//! `X-Agile-Username` and `X-Agile-Password` must be the one user's (missing or wrong:
//! 400 `-10001`; present but empty: `-40` / `-41`). Optional `X-Agile-Expiry` (seconds,
//! an integer ≥ 1, else `-34`) and `X-Agile-Subdir` (an existing directory the token
//! is then restricted to, else `-47`). 200 → `X-Agile-Token`, `X-Agile-Uid`,
//! `X-Agile-Gid`, `X-Agile-Path` (the token's root with the account prefix).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;

use super::Edgio;
use super::auth::{self, Expiry, GID, UID};
use super::error::{Agile, AgileResult, BAD_TOKEN};
use super::headers::text;
use super::paths;
use crate::faults::body::drain;

pub(crate) async fn login(State(api): State<Arc<Edgio>>, h: HeaderMap, body: Body) -> AgileResult {
    drain(body).await;
    let s = api.shared.settings();
    let user = text(&h, "x-agile-username").map_err(|_| Agile::bad(BAD_TOKEN))?;
    let password = text(&h, "x-agile-password").map_err(|_| Agile::bad(BAD_TOKEN))?;
    let (Some(user), Some(password)) = (user, password) else {
        return Err(Agile::bad(BAD_TOKEN));
    };
    if user.is_empty() {
        return Err(Agile::bad(-40));
    }
    if password.is_empty() {
        return Err(Agile::bad(-41));
    }
    if !auth::credentials_ok(&api.shared, user, password) {
        return Err(Agile::bad(BAD_TOKEN));
    }
    let expiry = match text(&h, "x-agile-expiry").map_err(|_| Agile::bad(-34))? {
        None => Expiry::Default,
        Some(t) => match t.parse::<u64>() {
            Ok(secs) if secs > 0 && t.bytes().all(|b| b.is_ascii_digit()) => Expiry::After(secs),
            _ => return Err(Agile::bad(-34)),
        },
    };
    let mut st = api.settled(&s);
    let root = match text(&h, "x-agile-subdir").map_err(|_| Agile::bad(-47))? {
        None => String::new(),
        Some(dir) => paths::resolve("", dir)
            .ok()
            .filter(|k| st.tree.is_dir(k))
            .ok_or_else(|| Agile::bad(-47))?,
    };
    let path = paths::display(&s.edgio_account, &root);
    let token = st.sessions.open(root, expiry);
    api.counters.add_call("login");
    tracing::info!(path = %path, "edgio login");
    Ok(Agile::ok()
        .header("x-agile-token", token)
        .header("x-agile-uid", UID)
        .header("x-agile-gid", GID)
        .header("x-agile-path", path))
}
