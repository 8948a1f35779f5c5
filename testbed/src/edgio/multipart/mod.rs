//! Multipart uploads (protocols/edgio.md §Multipart; rules 6–11): create, pieces and
//! complete over HTTP (`create`, `piece`, `complete`), the same create and complete and
//! abort, restart, status and listings over JSON-RPC (`control`, `listing`).
//!
//! Uploads are never forgotten (aborted, expired and joined ones stay listed). An
//! upload belongs to the subtree it was created in: a token restricted to another
//! subtree (`X-Agile-Subdir`) gets `-2` for it, as for an unknown mpid ("mpids belong
//! to their creating user"; with one user, the subtree is what tells callers apart).

pub(crate) mod complete;
pub(crate) mod control;
pub(crate) mod create;
mod gc;
mod join;
pub(crate) mod listing;
pub(crate) mod piece;
pub(crate) mod upload;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::paths::within;
use super::tree::Tree;
use super::{EdState, Edgio};
use crate::faults::Settings;
use upload::{UpState, Upload};

/// Every upload, in creation order (the order `listMultipart` pages through).
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    list: Vec<Upload>,
    /// Index into `list` by mpid.
    by_mpid: HashMap<String, usize>,
}

impl Uploads {
    pub(crate) fn insert(&mut self, u: Upload) {
        self.by_mpid.insert(u.mpid.clone(), self.list.len());
        self.list.push(u);
    }

    /// The upload `mpid` if a caller rooted at `root` may see it.
    pub(crate) fn find(&mut self, mpid: &str, root: &str) -> Option<&mut Upload> {
        let i = *self.by_mpid.get(mpid)?;
        self.list.get_mut(i).filter(|u| within(root, &u.key))
    }

    pub(crate) fn visible<'a>(&'a self, root: &'a str) -> impl Iterator<Item = &'a Upload> {
        self.list.iter().filter(move |u| within(root, &u.key))
    }

    pub(crate) fn open(&self) -> usize {
        self.list.iter().filter(|u| u.state.is_open()).count()
    }
}

/// Brings every upload up to date with the clock and the knobs: garbage collection,
/// then joins that are due. Called under the lock by every request.
pub(crate) fn settle(st: &mut EdState, api: &Edgio, s: &Settings) {
    let now = Instant::now();
    let delay = Duration::from_millis(s.edgio_join_delay_ms);
    let EdState { uploads, tree, .. } = st;
    for u in &mut uploads.list {
        u.collect(s.edgio_upload_ttl_s, now);
        if u.join_due(delay, now) {
            finish_join(api, tree, u);
        }
    }
}

/// JOIN → SUCCESS (the file is stored, replacing any file of that name) or FAILED.
fn finish_join(api: &Edgio, tree: &mut Tree, u: &mut Upload) {
    if u.join_fails {
        tracing::info!(mpid = %u.mpid, "edgio join failed (edgio_join_fail_rate)");
        u.enter(UpState::Failed);
        return;
    }
    let Some(joined) = u.joined.take() else {
        u.enter(UpState::Failed);
        return;
    };
    if tree.can_store(&u.key, true).is_err() {
        // A directory took the name meanwhile; the joined bytes have nowhere to go.
        u.enter(UpState::Failed);
        return;
    }
    let mimetype = u.content_type.clone();
    let mtime = (u.mtime > 0).then_some(u.mtime);
    match api.publish(tree, &u.key, joined, mimetype, mtime, u.corrupted) {
        Ok(()) => {
            tracing::info!(mpid = %u.mpid, file = %u.key, "edgio join succeeded");
            u.discard_pieces();
            u.enter(UpState::Success);
        }
        Err(e) => {
            tracing::error!(mpid = %u.mpid, error = %e, "edgio join could not store the file");
            u.enter(UpState::Failed);
        }
    }
}

/// The HTTP status of a multipart code (protocols/edgio.md §Multipart 1–3): 500 for
/// the server's own failures, 503 for "unavailable" and "disk full", else 400 (`-5` is
/// complete's "gap", a request error, not the generic 500 `-5`).
pub(crate) fn http_status(code: i64) -> StatusCode {
    match code {
        -13 | -27 | -49 => StatusCode::INTERNAL_SERVER_ERROR,
        -22 | -26 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}
