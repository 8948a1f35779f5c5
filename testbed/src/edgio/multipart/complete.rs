//! Completing an upload (rule 8): `POST /multipart/complete` and `completeMultipart`.
//!
//! Refused: `-2` unknown mpid, `-17` aborted, `-8` already completed (COMPLETE, JOIN,
//! SUCCESS, FAILED) or expired, `-4` no live piece, `-5` live part numbers other than
//! exactly 1..n. An accepted completion is answered `edgio_complete_answer_delay_ms`
//! late. `edgio_complete_error_rate` answers 500 `-13` (lock expired) after
//! those checks, with nothing changed. Otherwise the upload becomes COMPLETE, its live
//! pieces are concatenated in number order (on the blocking pool, outside the lock;
//! pieces cannot change meanwhile, as COMPLETE refuses them), `corrupt_rate` may flip
//! a byte of the result, and the upload enters JOIN (see `join`). A second complete
//! after a lost answer meets `-8`; the first one's join goes on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;

use super::super::auth::Caller;
use super::super::error::{Agile, AgileResult};
use super::super::headers::text;
use super::super::{EdState, Edgio};
use super::http_status;
use super::upload::UpState;
use crate::faults::body::drain;
use crate::faults::{Settings, roll};
use crate::store::{Hashes, Staged};

/// The piece files to join, checked; the upload is COMPLETE when this returns.
fn begin(
    st: &mut EdState,
    s: &Settings,
    caller: &Caller,
    mpid: &str,
) -> Result<Vec<std::path::PathBuf>, i64> {
    let u = st.uploads.find(mpid, &caller.root).ok_or(-2)?;
    match u.state {
        UpState::New | UpState::Ready => {}
        UpState::Abort => return Err(-17),
        _ => return Err(-8),
    }
    let mut live: Vec<_> = u.live().map(|p| (p.number, p.file.clone())).collect();
    if live.is_empty() {
        return Err(-4);
    }
    live.sort_by_key(|(n, _)| *n);
    // At most one live piece per number, so 1..n without gaps is "the i-th is i+1".
    if live
        .iter()
        .enumerate()
        .any(|(i, (n, _))| *n as usize != i + 1)
    {
        return Err(-5);
    }
    if roll(s.edgio_complete_error_rate) {
        tracing::info!(mpid, "edgio complete refused (edgio_complete_error_rate)");
        return Err(-13);
    }
    let files = live
        .into_iter()
        .map(|(_, f)| f.ok_or(-5))
        .collect::<Result<Vec<_>, i64>>()?;
    u.enter(UpState::Complete);
    Ok(files)
}

/// Completes `mpid`; the number of pieces joined, or the code.
pub(crate) async fn complete(
    api: &Arc<Edgio>,
    s: &Settings,
    caller: &Caller,
    mpid: &str,
) -> Result<usize, i64> {
    let files = begin(&mut api.settled(s), s, caller, mpid)?;
    let n = files.len();
    let answer_delay = Duration::from_millis(s.edgio_complete_answer_delay_ms);
    api.counters.add_call("multipart/complete");
    // The service's join goes on whatever becomes of the request: a client that
    // disconnects (killed, reset) drops this handler, never the join. Run in a task
    // of its own, an upload could otherwise stay COMPLETE for ever.
    let (api, s, root, mpid) = (
        api.clone(),
        s.clone(),
        caller.root.clone(),
        mpid.to_string(),
    );
    let join = tokio::spawn(async move {
        let joined = join_files(&api, &s, files).await;
        let mut st = api.settled(&s);
        if let Some(u) = st.uploads.find(&mpid, &root) {
            match joined {
                Ok((staged, corrupted)) => {
                    u.start_join(staged, corrupted, roll(s.edgio_join_fail_rate))
                }
                Err(e) => {
                    tracing::error!(mpid, error = %e, "edgio join could not read the pieces");
                    u.enter(UpState::Failed);
                }
            }
        }
        drop(st);
        nudge(&api, &s);
    });
    // The answer waits for the join to have started, as before; a failed task is
    // the emulator's own bug, logged, and the upload then stays COMPLETE.
    if let Err(e) = join.await {
        tracing::error!(error = %e, "edgio join task failed");
    }
    tokio::time::sleep(answer_delay).await;
    Ok(n)
}

async fn join_files(
    api: &Edgio,
    s: &Settings,
    files: Vec<std::path::PathBuf>,
) -> std::io::Result<(Staged, bool)> {
    let staged = Staged::join(api.shared.store.tmp_dir(), files, Hashes::SHA256).await?;
    if roll(s.corrupt_rate) {
        Ok((staged.corrupt(s.corrupt_at()).await?, true))
    } else {
        Ok((staged, false))
    }
}

/// Settles once the join delay has passed, so the file appears even if nobody asks.
fn nudge(api: &Arc<Edgio>, s: &Settings) {
    let api = api.clone();
    let delay = Duration::from_millis(s.edgio_join_delay_ms);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let s = api.shared.settings();
        drop(api.settled(&s));
    });
}

pub(crate) async fn http(State(api): State<Arc<Edgio>>, h: HeaderMap, body: Body) -> AgileResult {
    drain(body).await;
    let s = api.shared.settings();
    let caller = api.http_caller(&s, &h, None)?;
    let mpid = text(&h, "x-agile-multipart")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_string();
    let n = complete(&api, &s, &caller, &mpid)
        .await
        .map_err(|c| Agile::new(http_status(c), c))?;
    Ok(Agile::ok()
        .header("x-agile-parts", n)
        .header("x-agile-multipart", mpid))
}
