//! Files under the watched folder, reached without crossing a symbolic link.
//!
//! dropship never follows a symlink: a link in the outbox could lead to any folder
//! of the machine, whose files would then be uploaded under the link's name and,
//! with `after = "delete"`, deleted where they really live. So
//! - notify is told not to follow links when it adds its watches;
//! - scans and events look at entries with `lstat`: a link (to a file or a folder)
//!   is neither a file to send nor a folder to enter;
//! - before a file is claimed, and again before its post-action, the engine checks
//!   here, component by component, that no folder between the outbox and the file
//!   is a link and that the file itself is a regular file: a folder swapped for a
//!   link after the file was queued is caught too.
//!
//! The outbox folder itself may be a link (`/var/spool/outbox → /data/outbox`): it
//! is what the configuration names.

use std::fs::Metadata;
use std::io;
use std::path::{Component, Path};

/// The metadata of `path` if it is a regular file under `root` reached through real
/// folders only, else why it may not be touched. `NotFound` if a component is gone.
/// (The file's own `lstat` is the last step, so callers need no other.)
pub fn inside(root: &Path, path: &Path) -> io::Result<Result<Metadata, String>> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(Err(format!(
            "{} is not under {}",
            path.display(),
            root.display()
        )));
    };
    let mut at = root.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(c) = components.next() {
        let Component::Normal(name) = c else {
            return Ok(Err(format!("{} is not a plain path", path.display())));
        };
        at.push(name);
        let meta = std::fs::symlink_metadata(&at)?;
        if meta.file_type().is_symlink() {
            return Ok(Err(format!(
                "{} is a symbolic link; dropship never follows links out of the watched folder",
                at.display()
            )));
        }
        if components.peek().is_some() {
            if !meta.is_dir() {
                return Ok(Err(format!("{} is not a folder", at.display())));
            }
        } else if meta.is_file() {
            return Ok(Ok(meta));
        } else {
            return Ok(Err(format!("{} is not a regular file", at.display())));
        }
    }
    Ok(Err(format!(
        "{} is the watched folder itself",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_anywhere_below_the_root_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("outbox");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(root.join("real")).expect("mkdir");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::fs::write(root.join("real/a.txt"), b"a").expect("write");
        std::fs::write(elsewhere.join("b.txt"), b"b").expect("write");
        std::os::unix::fs::symlink(&elsewhere, root.join("link")).expect("symlink");
        std::os::unix::fs::symlink(root.join("real/a.txt"), root.join("a-link.txt"))
            .expect("symlink");

        let meta = inside(&root, &root.join("real/a.txt")).expect("stat");
        assert_eq!(meta.map(|m| m.len()), Ok(1));
        let why = inside(&root, &root.join("link/b.txt")).expect("stat");
        assert!(why.is_err_and(|w| w.contains("symbolic link")));
        let why = inside(&root, &root.join("a-link.txt")).expect("stat");
        assert!(why.is_err_and(|w| w.contains("symbolic link")));
        assert!(inside(&root, &root.join("real")).expect("stat").is_err());
        assert!(inside(&root, &root).expect("stat").is_err());
        assert!(
            inside(&root, &elsewhere.join("b.txt"))
                .expect("stat")
                .is_err()
        );
        let gone = inside(&root, &root.join("real/gone.txt")).expect_err("gone");
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_root_itself_may_be_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("data");
        std::fs::create_dir_all(&real).expect("mkdir");
        std::fs::write(real.join("x"), b"x").expect("write");
        let root = dir.path().join("outbox");
        std::os::unix::fs::symlink(&real, &root).expect("symlink");
        assert!(inside(&root, &root.join("x")).expect("stat").is_ok());
    }
}
