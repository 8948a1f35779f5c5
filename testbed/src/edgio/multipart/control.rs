//! The JSON-RPC-only steps of an upload (rules 9, 10): abort, restart and status.

use serde_json::{Value, json};

use super::super::EdState;
use super::super::auth::Caller;
use super::super::paths::display;
use super::upload::UpState;

/// `abortMultipart`: NEW or READY → ABORT (pieces deleted, the upload stays listed);
/// `-17` if aborted already, `-18` from any other state.
pub(crate) fn abort(st: &mut EdState, caller: &Caller, mpid: &str) -> i64 {
    let Some(u) = st.uploads.find(mpid, &caller.root) else {
        return -2;
    };
    match u.state {
        UpState::New | UpState::Ready => {
            u.discard_pieces();
            u.enter(UpState::Abort);
            tracing::info!(mpid, "edgio multipart aborted");
            0
        }
        UpState::Abort => -17,
        _ => -18,
    }
}

/// `restartMultipart`: FAILED → JOIN, the join rolled again; else `-22`.
pub(crate) fn restart(st: &mut EdState, caller: &Caller, mpid: &str, fails: bool) -> i64 {
    match st.uploads.find(mpid, &caller.root) {
        None => -2,
        Some(u) => u.restart(fails).map_or_else(|c| c, |()| 0),
    }
}

/// `getMultipartStatus`.
pub(crate) fn status(st: &mut EdState, account: &str, caller: &Caller, mpid: &str) -> Value {
    let Some(u) = st.uploads.find(mpid, &caller.root) else {
        return json!({ "code": -2 });
    };
    json!({
        "code": 0,
        "path": display(account, &u.key),
        "content_type": u.content_type,
        "numpieces": u.live().count(),
        "created": u.created_s,
        "state": u.state.code(),
        "mtime": u.mtime,
        "error": 0,
    })
}
