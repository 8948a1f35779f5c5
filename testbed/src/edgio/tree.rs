//! The account's name space: the set of directories and the files' metadata (the
//! bytes are in the shared store, under the same key).
//!
//! Invariants: the root `""` is always a directory; every directory's parent is a
//! directory; no key is both a file and a directory (protocols/edgio.md; the directory
//! pages: "a directory cannot contain a file and a sub-directory with the same name").

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::paths::{ancestors, parent};

/// One stored file; `size` and `sha256` describe the stored bytes (an injected
/// corruption included).
#[derive(Debug, Clone)]
pub(crate) struct FileMeta {
    pub(crate) size: u64,
    /// Lower-case hex SHA-256: what `stat`, `HEAD` and upload answers report.
    pub(crate) sha256: String,
    /// The type given at upload (`X-Agile-Content-Type`, the form part's type, or the
    /// multipart's), else `application/octet-stream`.
    pub(crate) mimetype: String,
    /// When the file was (last) stored.
    pub(crate) stored: SystemTime,
    /// `X-Agile-MTime` if given, else the storing time, in Unix seconds.
    pub(crate) mtime: u64,
}

/// Why a name cannot be made a directory or hold a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// A missing ancestor, and creating ancestors was not asked for; or an ancestor's
    /// name is a file's, so it can never be a directory.
    NoParent,
    /// A file holds the name itself.
    FileInTheWay,
    /// The name is a directory (a file cannot replace it).
    IsDirectory,
}

#[derive(Debug)]
pub(crate) struct Tree {
    /// Directory keys, with their creation time in Unix seconds; `""` (the root)
    /// always present.
    dirs: BTreeMap<String, u64>,
    /// Files by key.
    pub(crate) files: BTreeMap<String, FileMeta>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            dirs: BTreeMap::from([(String::new(), 0)]),
            files: BTreeMap::new(),
        }
    }
}

impl Tree {
    pub(crate) fn is_dir(&self, key: &str) -> bool {
        self.dirs.contains_key(key)
    }

    /// When directory `key` was created (Unix seconds), if it is one.
    pub(crate) fn dir_created(&self, key: &str) -> Option<u64> {
        self.dirs.get(key).copied()
    }

    fn add_dir(&mut self, key: &str) {
        let now = crate::clock::unix_secs(SystemTime::now());
        self.dirs.entry(key.to_string()).or_insert(now);
    }

    /// Whether `key`'s ancestors allow it: each one a directory, or (with `create`)
    /// missing and creatable.
    fn ancestors_allow(&self, key: &str, create: bool) -> Result<(), Blocked> {
        for a in ancestors(key) {
            if self.files.contains_key(a) || (!self.dirs.contains_key(a) && !create) {
                return Err(Blocked::NoParent);
            }
        }
        Ok(())
    }

    /// Creates directory `key`, and its missing ancestors if `recursive`. An existing
    /// directory is fine (`/post/directory`: "200 if it already exists").
    pub(crate) fn mkdir(&mut self, key: &str, recursive: bool) -> Result<(), Blocked> {
        if self.files.contains_key(key) {
            return Err(Blocked::FileInTheWay);
        }
        self.ancestors_allow(key, recursive)?;
        for a in ancestors(key) {
            self.add_dir(a);
        }
        self.add_dir(key);
        Ok(())
    }

    /// Whether a file may be stored at `key` now (ancestors created only if
    /// `recursive`); nothing changes. An existing file there is replaced.
    pub(crate) fn can_store(&self, key: &str, recursive: bool) -> Result<(), Blocked> {
        if self.dirs.contains_key(key) {
            return Err(Blocked::IsDirectory);
        }
        self.ancestors_allow(key, recursive)
    }

    /// Records a file at `key`, creating its missing ancestors; the caller checked
    /// [`Tree::can_store`] under the same lock.
    pub(crate) fn store(&mut self, key: &str, meta: FileMeta) {
        for a in ancestors(key) {
            self.add_dir(a);
        }
        self.files.insert(key.to_string(), meta);
    }

    /// Whether the directory that would hold `key` exists.
    pub(crate) fn parent_exists(&self, key: &str) -> bool {
        self.dirs.contains_key(parent(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FileMeta {
        FileMeta {
            size: 0,
            sha256: String::new(),
            mimetype: String::new(),
            stored: SystemTime::UNIX_EPOCH,
            mtime: 0,
        }
    }

    #[test]
    fn directories() {
        let mut t = Tree::default();
        assert!(t.is_dir(""));
        assert_eq!(t.mkdir("a/b", false), Err(Blocked::NoParent));
        assert_eq!(t.mkdir("a/b", true), Ok(()));
        assert!(t.is_dir("a") && t.is_dir("a/b"));
        assert_eq!(
            t.mkdir("a/b", false),
            Ok(()),
            "an existing directory is fine"
        );
        t.store("a/f", meta());
        assert_eq!(t.mkdir("a/f", true), Err(Blocked::FileInTheWay));
        assert_eq!(t.mkdir("a/f/g", true), Err(Blocked::NoParent));
    }

    #[test]
    fn where_files_may_go() {
        let mut t = Tree::default();
        assert_eq!(t.can_store("x/y", false), Err(Blocked::NoParent));
        assert_eq!(t.can_store("x/y", true), Ok(()));
        assert_eq!(t.can_store("", true), Err(Blocked::IsDirectory));
        t.store("x/y", meta());
        assert!(t.is_dir("x"));
        assert_eq!(t.can_store("x", true), Err(Blocked::IsDirectory));
        assert_eq!(t.can_store("x/y", false), Ok(()), "a file is replaced");
        assert_eq!(t.can_store("x/y/z", true), Err(Blocked::NoParent));
    }
}
