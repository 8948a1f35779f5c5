//! `POST /post/raw` (rule 5): the body is the file.
//!
//! Headers judged before the body: the token (401/403), `X-Agile-Encoding` (`-51`),
//! `X-Agile-Recursive` (`-39`; default false), `X-Agile-Content-Type` (`-33`),
//! `X-Agile-Basename` (default `post-<uuid hex>`; a `/`, `..` or a path over 4096 bytes:
//! `-8`), `X-Agile-Directory` (default `/`; `-8` likewise), and where the file would go
//! (`-3` a missing parent without recursive, or a parent that is a file; `-8` the name
//! is a directory). Then the body: empty → `-24` (rule 5; `/post/file` accepts empty
//! files, see there), cut short → `-49`; `corrupt_rate` may flip a byte; then
//! `X-Agile-Checksum`, if given, must be the SHA-256 hex of the bytes as stored, else
//! 400 `-26` and nothing is kept (the point of the header: a corrupted store is
//! caught). Success: 200 with `X-Agile-Path`, `X-Agile-Size`, `X-Agile-Checksum`. A
//! file already at the path is replaced; missing parents are created only on success.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;

use super::error::{Agile, AgileResult};
use super::headers::{self, flag, text};
use super::receive::{Received, receive};
use super::tree::Blocked;
use super::{Edgio, paths};
use crate::faults::Settings;
use crate::faults::body::drain;
use crate::hex::hex;
use crate::store::Staged;

/// Where and how a file is to be stored.
pub(crate) struct Target {
    pub(crate) key: String,
    pub(crate) recursive: bool,
    pub(crate) mimetype: Option<String>,
    pub(crate) mtime: Option<u64>,
    /// `X-Agile-Checksum`, lower-cased.
    pub(crate) checksum: Option<String>,
}

/// Whether the tree takes a file at `t` now, as the upload calls answer it.
pub(crate) fn placement(api: &Edgio, s: &Settings, t: &Target) -> Result<(), Agile> {
    match api.settled(s).tree.can_store(&t.key, t.recursive) {
        Ok(()) => Ok(()),
        Err(Blocked::NoParent) => Err(Agile::bad(-3)),
        Err(Blocked::IsDirectory | Blocked::FileInTheWay) => Err(Agile::bad(-8)),
    }
}

/// The checksum check, then the store: the end shared by `/post/raw` and `/post/file`.
pub(crate) async fn store_file(
    api: &Edgio,
    s: &Settings,
    t: Target,
    staged: Staged,
) -> AgileResult {
    let (staged, corrupted) = api.maybe_corrupt(s, staged).await?;
    let sha256 = staged.sha256_hex();
    if let Some(want) = &t.checksum
        && *want != sha256
    {
        api.count_digest_mismatch();
        tracing::debug!(file = %t.key, "edgio checksum mismatch: nothing stored");
        return Err(Agile::bad(-26));
    }
    let size = staged.len;
    let mut st = api.settled(s);
    match st.tree.can_store(&t.key, t.recursive) {
        Ok(()) => {}
        Err(Blocked::NoParent) => return Err(Agile::bad(-3)),
        Err(Blocked::IsDirectory | Blocked::FileInTheWay) => return Err(Agile::bad(-8)),
    }
    api.publish(&mut st.tree, &t.key, staged, t.mimetype, t.mtime, corrupted)
        .map_err(Agile::internal)?;
    tracing::info!(file = %t.key, size, "edgio file stored");
    Ok(Agile::ok()
        .header("x-agile-path", paths::display(&s.edgio_account, &t.key))
        .header("x-agile-size", size)
        .header("x-agile-checksum", sha256))
}

/// The headers of a raw post.
fn judge(api: &Edgio, s: &Settings, h: &HeaderMap) -> Result<Target, Agile> {
    let caller = api.http_caller(s, h, None)?;
    let enc = headers::encoding(h).map_err(|_| Agile::bad(-51))?;
    let recursive = text(h, "x-agile-recursive")
        .ok()
        .and_then(|v| flag(v, false).ok())
        .ok_or_else(|| Agile::bad(-39))?;
    let mimetype = headers::content_type(h).map_err(|_| Agile::bad(-33))?;
    let basename = headers::name(h, "x-agile-basename", enc)
        .map_err(|_| Agile::bad(-8))?
        .unwrap_or_else(|| format!("post-{}", hex(&crate::hex::uuid_v4_bytes())));
    let dir = headers::name(h, "x-agile-directory", enc).map_err(|_| Agile::bad(-8))?;
    if !paths::basename_ok(&basename) {
        return Err(Agile::bad(-8));
    }
    let dir =
        paths::resolve(&caller.root, dir.as_deref().unwrap_or("/")).map_err(|_| Agile::bad(-8))?;
    let key = paths::child(&dir, &basename).map_err(|_| Agile::bad(-8))?;
    let checksum = text(h, "x-agile-checksum")
        .map_err(|_| Agile::bad(-26))?
        .map(str::to_ascii_lowercase);
    // An unparseable mtime is ignored: the raw post documents no code for it.
    let mtime = headers::mtime(h).ok().flatten();
    let t = Target {
        key,
        recursive,
        mimetype,
        mtime,
        checksum,
    };
    placement(api, s, &t)?;
    Ok(t)
}

pub(crate) async fn post_raw(
    State(api): State<Arc<Edgio>>,
    h: HeaderMap,
    body: Body,
) -> AgileResult {
    let s = api.shared.settings();
    let t = match judge(&api, &s, &h) {
        Ok(t) => t,
        Err(answer) => {
            drain(body).await;
            return Err(answer);
        }
    };
    let staged = match receive(&api.shared.store, body, u64::MAX).await? {
        Received::Kept(staged) => staged,
        Received::TooLong => return Err(Agile::bad(-24)),
    };
    if staged.len == 0 {
        return Err(Agile::bad(-24));
    }
    store_file(&api, &s, t, staged).await
}
