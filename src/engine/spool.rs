//! A claimed file that is to be compressed: its compressed copy is written to the
//! spool (once; the journal keeps it across restarts) and becomes what the attempt
//! sends and verifies. The file itself keeps its row, identity and post-action.

use tracing::{info, warn};

use super::Ctx;
use super::outcome::Stop;
use crate::compress::{self, Compress, Spooled};
use crate::confine;
use crate::identity::Identity;
use crate::journal::FileRow;

/// What the attempt on `row` sends: `row` itself, or (a file to compress) `row` with
/// its spool copy's path, size and identity, written now if it is not yet.
pub(super) async fn content(ctx: &Ctx, row: &FileRow) -> Result<FileRow, Stop> {
    let Some(how) = row.compress.filter(|c| *c != Compress::None) else {
        return Ok(row.clone());
    };
    if let Some(copy) = &row.spool {
        let c = copy.clone();
        let intact = tokio::task::spawn_blocking(move || {
            std::fs::symlink_metadata(&c.path).map(|m| Identity::of(&m).change_from(&c.identity()))
        })
        .await
        .map_err(|e| Stop::LocalIo(std::io::Error::other(e.to_string())))?;
        match intact {
            Ok(None) => return Ok(view(row, copy)),
            // Removed or altered by someone: compressed again, sent afresh.
            Ok(Some(why)) => warn!(%why, "the compressed copy changed; compressing again"),
            Err(e) => warn!(error = %e, "the compressed copy is gone; compressing again"),
        }
        let id = row.id;
        if let Some(old) = ctx.journal.call(move |j| j.drop_spool(id)).await? {
            let _ = ctx.backend.abort(&old).await;
        }
    }
    // Bounded by spool_max; a file bigger than the whole spool still goes, alone.
    let spool = ctx.settings.spool.clone();
    let used = {
        let s = spool.clone();
        tokio::task::spawn_blocking(move || compress::spool_bytes(&s))
            .await
            .unwrap_or(0)
    };
    if used > 0 && used.saturating_add(row.size) > ctx.settings.spool_max {
        return Err(Stop::Postponed(format!(
            "waiting for room in the spool to compress it ({used} of upload.spool_max {} bytes in use)",
            ctx.settings.spool_max
        )));
    }
    let (root, path) = (ctx.settings.root.clone(), row.path.clone());
    let expected = Identity {
        size: row.size,
        mtime_ns: row.mtime_ns,
        inode: row.inode,
    };
    let dest = compress::spool_path(&spool, row.id, how);
    let pushed = row.pushed;
    let started = std::time::Instant::now();
    let written = tokio::task::spawn_blocking(move || -> Result<Spooled, Stop> {
        // The file must be reached as the watcher found it (a pushed one was
        // resolved when it was pushed), and still be the content queued.
        let checked = if pushed {
            std::fs::symlink_metadata(&path)
        } else {
            match confine::inside(&root, &path) {
                Ok(Ok(meta)) => Ok(meta),
                Ok(Err(why)) => return Err(Stop::Refused(why)),
                Err(e) => Err(e),
            }
        };
        match checked {
            Ok(meta) => {
                if let Some(why) = Identity::of(&meta).change_from(&expected) {
                    return Err(Stop::Changed(why));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stop::Vanished),
            Err(e) => return Err(Stop::LocalIo(e)),
        }
        std::fs::create_dir_all(&spool).map_err(Stop::LocalIo)?;
        compress::compress_file(&path, &expected, &dest, how).map_err(|e| match e.to_string() {
            m if m.contains("changed while it was compressed") => Stop::Changed(m),
            _ => Stop::LocalIo(e),
        })
    })
    .await
    .map_err(|e| Stop::LocalIo(std::io::Error::other(e.to_string())))??;
    let (id, copy) = (row.id, written.clone());
    ctx.journal.call(move |j| j.spooled(id, &copy)).await?;
    info!(
        compression = %how,
        size = row.size,
        compressed = written.size,
        secs = started.elapsed().as_secs_f64(),
        "compressed into the spool"
    );
    Ok(view(row, &written))
}

/// `row` as its compressed copy.
fn view(row: &FileRow, copy: &Spooled) -> FileRow {
    FileRow {
        path: copy.path.clone(),
        size: copy.size,
        mtime_ns: copy.mtime_ns,
        inode: copy.inode,
        spool: Some(copy.clone()),
        ..row.clone()
    }
}
