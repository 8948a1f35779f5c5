//! `stat`, `makeDir`, `makeDir2`, `deleteFile` (rule 12; the files and directories
//! pages of the JSON-RPC interface).

use serde_json::json;

use super::super::Edgio;
use super::super::NAME;
use super::super::auth::{GID, UID};
use super::super::paths::{self, PathError};
use super::super::tree::Blocked;
use super::params::Params;
use super::{RpcResult, Shape, caller};

/// `stat(token, path, detail?)`: `{code, size, ctime, mtime, type}` (type 1 directory,
/// 2 file), with `detail` also `checksum` (SHA-256 hex of the stored bytes; empty for
/// a directory), `mimetype` (files), `uid`, `gid`. Not found (a multipart upload
/// before SUCCESS included): `{"code": -1, "uid": 0, "gid": 0, "checksum": ""}`.
pub(crate) fn stat(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = match caller(api, p, Shape::Object) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let path = p.required_str(1, "path")?;
    let detail = p.bool(2, "detail")?.unwrap_or(false);
    let not_found = json!({ "code": -1, "uid": 0, "gid": 0, "checksum": "" });
    let Ok(key) = paths::resolve(&caller.root, path) else {
        return Ok(not_found);
    };
    let s = api.shared.settings();
    let st = api.settled(&s);
    let mut out = if let Some(f) = st.tree.files.get(&key) {
        let ctime = crate::clock::unix_secs(f.stored);
        let mut o =
            json!({ "code": 0, "size": f.size, "ctime": ctime, "mtime": f.mtime, "type": 2 });
        if detail {
            o["checksum"] = json!(f.sha256);
            o["mimetype"] = json!(f.mimetype);
        }
        o
    } else if let Some(created) = st.tree.dir_created(&key) {
        let mut o = json!({ "code": 0, "ctime": created, "mtime": created, "type": 1 });
        if detail {
            o["checksum"] = json!("");
        }
        o
    } else {
        return Ok(not_found);
    };
    if detail {
        out["uid"] = json!(UID);
        out["gid"] = json!(GID);
    }
    Ok(out)
}

/// `makeDir(token, path)` (parents must exist) and `makeDir2` (parents created): `0`;
/// `-1` malformed path, `-2` a file has the name, `-3` no parent, `-8` too long.
/// An existing directory is `0`, as `/post/directory` answers it (the JSON-RPC page
/// does not say).
pub(crate) fn make_dir(api: &Edgio, p: &Params<'_>, parents: bool) -> RpcResult {
    let caller = match caller(api, p, Shape::Bare) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let path = p.required_str(1, "path")?;
    let key = match paths::resolve(&caller.root, path) {
        Ok(k) => k,
        Err(PathError::Malformed) => return Ok(json!(-1)),
        Err(PathError::TooLong) => return Ok(json!(-8)),
    };
    let s = api.shared.settings();
    let code = match api.settled(&s).tree.mkdir(&key, parents) {
        Ok(()) => 0,
        Err(Blocked::FileInTheWay | Blocked::IsDirectory) => -2,
        Err(Blocked::NoParent) => -3,
    };
    Ok(json!(code))
}

/// `deleteFile(token, path)`: `0`, or `-1` if no file is there.
pub(crate) fn delete_file(api: &Edgio, p: &Params<'_>) -> RpcResult {
    let caller = match caller(api, p, Shape::Bare) {
        Ok(c) => c,
        Err(answer) => return answer,
    };
    let path = p.required_str(1, "path")?;
    let Ok(key) = paths::resolve(&caller.root, path) else {
        return Ok(json!(-1));
    };
    let s = api.shared.settings();
    let mut st = api.settled(&s);
    if st.tree.files.remove(&key).is_none() {
        return Ok(json!(-1));
    }
    api.shared.store.remove(NAME, &key);
    tracing::info!(file = %key, "edgio file deleted");
    Ok(json!(0))
}
