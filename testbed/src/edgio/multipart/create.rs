//! Creating an upload (rule 6): `POST /multipart/create` and `createMultipart`.
//!
//! The directory must exist (`-23`; the file's parents are never created), the path
//! must be valid (`-16`, also for a name that is a directory), the type `type/subtype`
//! (`-21`) and the mtime an integer ≥ 0 (`-20`). At most 1,000,000 open uploads (`-1`).
//! The answer is a 32-hex mpid in state NEW.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;

use super::super::auth::Caller;
use super::super::error::{Agile, AgileResult};
use super::super::headers;
use super::super::paths::{self, PathError};
use super::super::{EdState, Edgio};
use super::http_status;
use super::upload::Upload;
use crate::faults::body::drain;

/// Most open uploads per account (protocols/edgio.md §Multipart 1).
const MAX_OPEN: usize = 1_000_000;

/// What a new upload is.
pub(crate) struct NewUpload {
    pub(crate) key: String,
    pub(crate) content_type: Option<String>,
    pub(crate) mtime: u64,
}

/// Creates the upload; its mpid, or the code.
pub(crate) fn create(st: &mut EdState, new: NewUpload) -> Result<String, i64> {
    if st.tree.is_dir(&new.key) {
        return Err(-16);
    }
    if !st.tree.parent_exists(&new.key) {
        return Err(-23);
    }
    if st.uploads.open() >= MAX_OPEN {
        return Err(-1);
    }
    let mpid = crate::hex::hex(&crate::hex::uuid_v4_bytes());
    tracing::info!(mpid = %mpid, file = %new.key, "edgio multipart created");
    st.uploads.insert(Upload::new(
        mpid.clone(),
        new.key,
        new.content_type,
        new.mtime,
    ));
    Ok(mpid)
}

/// The key of a path the caller names, with create's codes.
pub(crate) fn key_of(root: &str, dir: &str, basename: Option<&str>) -> Result<String, i64> {
    let dir = paths::resolve(root, dir).map_err(|_: PathError| -16)?;
    match basename {
        Some(b) if !paths::basename_ok(b) => Err(-16),
        Some(b) => paths::child(&dir, b).map_err(|_| -16),
        None if dir == root => Err(-16),
        None => Ok(dir),
    }
}

/// The headers of `POST /multipart/create`.
fn judge(caller: &Caller, h: &HeaderMap) -> Result<NewUpload, i64> {
    let enc = headers::encoding(h).map_err(|_| -51)?;
    let basename = headers::name(h, "x-agile-basename", enc).map_err(|_| -16)?;
    let basename = basename
        .unwrap_or_else(|| format!("mpart-{}", crate::hex::hex(&crate::hex::uuid_v4_bytes())));
    let dir = headers::name(h, "x-agile-directory", enc).map_err(|_| -16)?;
    let key = key_of(&caller.root, dir.as_deref().unwrap_or("/"), Some(&basename))?;
    let content_type = headers::content_type(h).map_err(|_| -21)?;
    let mtime = headers::mtime(h).map_err(|_| -20)?.unwrap_or(0);
    Ok(NewUpload {
        key,
        content_type,
        mtime,
    })
}

pub(crate) async fn http(State(api): State<Arc<Edgio>>, h: HeaderMap, body: Body) -> AgileResult {
    drain(body).await;
    let s = api.shared.settings();
    let caller = api.http_caller(&s, &h, None)?;
    let new = judge(&caller, &h).map_err(|c| Agile::new(http_status(c), c))?;
    let meta = format!(
        "content_type={} mtime={}",
        new.content_type.as_deref().unwrap_or("None"),
        new.mtime
    );
    let key = new.key.clone();
    let mpid = create(&mut api.settled(&s), new).map_err(|c| Agile::new(http_status(c), c))?;
    api.counters.add_call("multipart/create");
    Ok(Agile::ok()
        .header("x-agile-multipart", mpid)
        .header("x-agile-path", paths::display(&s.edgio_account, &key))
        .header("x-agile-meta", meta))
}
