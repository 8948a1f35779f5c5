//! `POST /post/directory` (the directory page of the HTTP interface): creates
//! `X-Agile-Directory`, with its missing parents unless `X-Agile-Recursive` is false
//! (default true). 200 also if it exists already; 400 `-2` if a file has the name,
//! `-3` a parent is missing (not recursive) or is a file, `-8` a bad or too long path,
//! `-39` a bad `X-Agile-Recursive`. The one HTTP call with a body:
//! `{"message": ..., "code": ...}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;

use super::Edgio;
use super::error::{Agile, AgileResult};
use super::headers::{self, flag, text};
use super::paths;
use super::tree::Blocked;
use crate::faults::body::drain;

fn refuse(code: i64, message: &str) -> Agile {
    Agile::bad(code).with_message(message)
}

pub(crate) async fn post_directory(
    State(api): State<Arc<Edgio>>,
    h: HeaderMap,
    body: Body,
) -> AgileResult {
    drain(body).await;
    let s = api.shared.settings();
    let caller = api.http_caller(&s, &h, None)?;
    let bad_path = || refuse(-8, "invalid path");
    let enc = headers::encoding(&h).map_err(|_| refuse(-51, "invalid encoding"))?;
    let dir = headers::name(&h, "x-agile-directory", enc)
        .map_err(|_| bad_path())?
        .ok_or_else(bad_path)?;
    let recursive_header =
        text(&h, "x-agile-recursive").map_err(|_| refuse(-39, "invalid recursive value"))?;
    let recursive =
        flag(recursive_header, true).map_err(|_| refuse(-39, "invalid recursive value"))?;
    let key = paths::resolve(&caller.root, &dir).map_err(|_| bad_path())?;
    let mut st = api.settled(&s);
    match st.tree.mkdir(&key, recursive) {
        Ok(()) => {
            tracing::debug!(dir = %key, "edgio directory");
            Ok(Agile::ok().with_message("success"))
        }
        Err(Blocked::FileInTheWay | Blocked::IsDirectory) => Err(refuse(-2, "path exists")),
        Err(Blocked::NoParent) => Err(refuse(-3, "parent directory does not exist")),
    }
}
