//! Paths in the account's name space (protocols/edgio.md §Hosts, §Conventions).
//!
//! API paths are relative to the caller's root (the account root, or the subtree an
//! `X-Agile-Subdir` login restricted the token to); a leading `/` is optional and
//! empty segments collapse, so `zz/file1.txt` and `/zz/file1.txt` (the seed writes
//! both) name the same file. Inside the emulator a path is a *key*: the path from the
//! account root without the leading slash (`""` is the root), which is also the store
//! key (`Testbed::object_bytes("edgio", "uploads/a.txt")`). Answers show the absolute
//! form with the account prefix, `/testbed/uploads/a.txt`.
//!
//! Refused: a `.` or `..` segment (no path may leave the caller's root), a control
//! character (it could not travel back in `X-Agile-Path`), and paths longer than 4096
//! bytes (§Conventions).

/// Longest path, bytes (protocols/edgio.md §Conventions).
pub(crate) const MAX_PATH: usize = 4096;

/// Why a path was refused; each call maps it to its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    Malformed,
    TooLong,
}

/// The key of `api_path` for a caller whose root is `root` (a key itself).
pub(crate) fn resolve(root: &str, api_path: &str) -> Result<String, PathError> {
    if api_path.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    let mut key = root.to_string();
    for seg in api_path.split('/').filter(|s| !s.is_empty()) {
        if seg == "." || seg == ".." || seg.chars().any(char::is_control) {
            return Err(PathError::Malformed);
        }
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(seg);
    }
    if key.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    Ok(key)
}

/// A file name on its own: not empty, no `/`, not `.` or `..` (protocols/edgio.md
/// §Conventions: "basenames may not contain `/` or `..`").
pub(crate) fn basename_ok(b: &str) -> bool {
    !b.is_empty()
        && !b.contains('/')
        && !b.contains("..")
        && b != "."
        && !b.chars().any(char::is_control)
}

/// `dir` (a key) joined with `name`.
pub(crate) fn child(dir: &str, name: &str) -> Result<String, PathError> {
    let key = if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    };
    if key.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    Ok(key)
}

/// The key of the directory holding `key` (`""` for a top-level name).
pub(crate) fn parent(key: &str) -> &str {
    key.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Every ancestor of `key`, root excluded, outermost first: `a`, `a/b` for `a/b/c`.
pub(crate) fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/').map(move |(i, _)| &key[..i])
}

/// The absolute form answers show: `/<account>/<key>`.
pub(crate) fn display(account: &str, key: &str) -> String {
    if key.is_empty() {
        format!("/{account}")
    } else {
        format!("/{account}/{key}")
    }
}

/// Whether `key` is `root` or inside it.
pub(crate) fn within(root: &str, key: &str) -> bool {
    root.is_empty()
        || key == root
        || key
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolving() {
        assert_eq!(resolve("", "/zz/file1.txt"), Ok("zz/file1.txt".into()));
        assert_eq!(resolve("", "zz//file1.txt/"), Ok("zz/file1.txt".into()));
        assert_eq!(resolve("", "/"), Ok(String::new()));
        assert_eq!(resolve("EMEA", "/a"), Ok("EMEA/a".into()));
        assert_eq!(resolve("", "/a/../b"), Err(PathError::Malformed));
        assert_eq!(resolve("", "/a/./b"), Err(PathError::Malformed));
        assert_eq!(
            resolve("", &"a".repeat(MAX_PATH + 1)),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn names_and_families() {
        assert!(basename_ok("file1.txt"));
        for bad in ["", "a/b", "..", "a..b", "."] {
            assert!(!basename_ok(bad), "{bad:?}");
        }
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("c"), "");
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(display("testbed", ""), "/testbed");
        assert_eq!(display("testbed", "a/b"), "/testbed/a/b");
        assert!(within("", "x"));
        assert!(within("a", "a/b"));
        assert!(within("a", "a"));
        assert!(!within("a", "ab/c"));
    }
}
