//! Stored content: what list and info report, and the one way content is written
//! (protocols/exosite.md rules 3 and 11).
//!
//! Content appears whole or not at all: the bytes are stored (a rename) and the entry
//! inserted in one step under the emulator's lock, replacing any earlier content of
//! the id (assumed: a new upload of an existing id replaces it when it completes; the
//! old content stays visible until then). The bytes are in the store under the id.

use std::time::{SystemTime, UNIX_EPOCH};

use super::error::ExError;
use super::upload::Accepted;
use super::{ExState, Exosite, NAME};
use crate::store::Staged;

/// One stored content's metadata.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    /// The MIME type: the initiate's `type`, or a single upload's `Content-Type`.
    pub(crate) file_type: String,
    /// Bytes really stored (a corruption keeps the size).
    pub(crate) size: u64,
    /// When it was stored, Unix seconds (the info line's `<updated-timestamp>`).
    pub(crate) updated_s: u64,
    /// The final range of the upload that completed it, so a re-send of that range
    /// can be recognised; `None` after a single upload, and once the id is initiated
    /// again.
    pub(crate) last: Option<Accepted>,
}

/// Stores `staged` as content `id`, replacing what was there.
pub(crate) fn store(
    api: &Exosite,
    st: &mut ExState,
    id: &str,
    file_type: &str,
    staged: Staged,
    last: Option<Accepted>,
) -> Result<(), ExError> {
    let info = api
        .shared
        .store
        .put(NAME, id, id, Some(file_type), staged)
        .map_err(ExError::internal)?;
    st.contents.insert(
        id.to_string(),
        Content {
            file_type: file_type.to_string(),
            size: info.size,
            updated_s: now_s(),
            last,
        },
    );
    tracing::info!(emulator = NAME, id, size = info.size, "content stored");
    Ok(())
}

/// Now, in Unix seconds.
pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A content id as a path segment names it (rules 3, 4): not empty, no `/`, and no
/// control character, since list answers one id per line (assumed).
pub(crate) fn check_id(id: &str) -> Result<(), ExError> {
    if id.is_empty() || id.contains('/') || id.chars().any(char::is_control) {
        return Err(ExError::bad_request(format!(
            "invalid content id {id:?}: it must be non-empty, without '/' or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn ids() {
        assert!(check_id("bigfile.txt").is_ok());
        assert!(check_id("with space, comma").is_ok());
        for bad in ["", "a/b", "/", "a\nb", "a\u{0}"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
