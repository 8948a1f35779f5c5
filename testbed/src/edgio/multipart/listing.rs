//! `listMultipart` and `listMultipartPiece` (rule 10): cookie paging.
//!
//! The cookie is how many entries earlier pages returned. A page shorter than
//! `pagesize` is the last and returns cookie 0; a full page returns the next offset, so
//! when the entries end exactly on a page boundary one more call returns an empty page
//! and cookie 0 (the docs: "you must call the method a final time before the returned
//! cookie is zero"). A cookie < 0 or past the end is `-3`, a pagesize ≤ 0 `-14`.

use serde_json::{Value, json};

use super::super::EdState;
use super::super::auth::{Caller, GID, UID};
use super::super::paths::display;

/// The page `[start, end)` of `len` entries and the cookie to return.
pub(crate) fn page(len: usize, cookie: i64, pagesize: i64) -> Result<(usize, usize, usize), i64> {
    if pagesize <= 0 {
        return Err(-14);
    }
    let start = usize::try_from(cookie)
        .ok()
        .filter(|c| *c <= len)
        .ok_or(-3)?;
    let size = usize::try_from(pagesize).unwrap_or(usize::MAX);
    let end = start.saturating_add(size).min(len);
    let next = if end - start < size { 0 } else { end };
    Ok((start, end, next))
}

/// `listMultipart`: the caller's uploads in creation order.
pub(crate) fn uploads(
    st: &EdState,
    account: &str,
    caller: &Caller,
    cookie: i64,
    pagesize: i64,
) -> Value {
    let all: Vec<_> = st.uploads.visible(&caller.root).collect();
    match page(all.len(), cookie, pagesize) {
        Err(code) => json!({ "code": code }),
        Ok((start, end, next)) => {
            let multipart: Vec<Value> = all[start..end]
                .iter()
                .map(|u| {
                    json!({
                        "mpid": u.mpid,
                        "path": display(account, &u.key),
                        "state": u.state.code(),
                        "content_type": u.content_type,
                        "mtime": u.mtime,
                        "uid": UID,
                        "gid": GID,
                        "error": 0,
                    })
                })
                .collect();
            json!({ "code": 0, "cookie": next, "multipart": multipart })
        }
    }
}

/// `listMultipartPiece`: one upload's pieces in order of arrival, duplicates included.
pub(crate) fn pieces(
    st: &mut EdState,
    caller: &Caller,
    mpid: &str,
    cookie: i64,
    pagesize: i64,
) -> Value {
    let Some(u) = st.uploads.find(mpid, &caller.root) else {
        return json!({ "code": -2 });
    };
    match page(u.pieces.len(), cookie, pagesize) {
        Err(code) => json!({ "code": code }),
        Ok((start, end, next)) => {
            let pieces: Vec<Value> = u.pieces[start..end]
                .iter()
                .map(|p| json!({ "number": p.number, "size": p.size, "state": u.piece_state(p), "error": 0 }))
                .collect();
            json!({ "code": 0, "cookie": next, "pieces": pieces })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn paging() {
        assert_eq!(page(5, 0, 2), Ok((0, 2, 2)));
        assert_eq!(page(5, 4, 2), Ok((4, 5, 0)));
        assert_eq!(
            page(4, 2, 2),
            Ok((2, 4, 4)),
            "a full last page: one more call"
        );
        assert_eq!(page(4, 4, 2), Ok((4, 4, 0)));
        assert_eq!(page(3, 0, 100), Ok((0, 3, 0)));
        assert_eq!(page(3, 0, 0), Err(-14));
        assert_eq!(page(3, 0, -1), Err(-14));
        assert_eq!(page(3, -1, 1), Err(-3));
        assert_eq!(page(3, 4, 1), Err(-3));
    }
}
