//! The post-action: what happens to the local file once its upload is verified.
//!
//! It runs only after verification, and only if the local file is still the content
//! that was verified: a file rewritten meanwhile is new content, to be sent in its
//! turn, and must not be deleted or moved as if it had been delivered.
//!
//! Idempotent by design: after a crash between this step and the journal's `done`,
//! the next start verifies again and finds the file already gone, which counts as
//! done. (A producer rewriting the file in the instant between the identity check and
//! the delete cannot be excluded without locking the producer out; the window is a
//! few microseconds.)

use std::io;
use std::path::Path;

use crate::config::After;
use crate::identity::Identity;

/// Runs the post-action on a blocking thread's behalf. `Ok(Some(note))` when it was
/// skipped for a reason worth showing in `status`.
pub fn run(
    after: &After,
    path: &Path,
    key: &str,
    verified: &Identity,
) -> io::Result<Option<String>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((*after == After::Keep).then(|| "the local file is gone".to_string()));
        }
        Err(e) => return Err(e),
    };
    if let Some(why) = Identity::of(&meta).change_from(verified) {
        return Ok(Some(format!(
            "delivered the content read at upload; the local file changed since ({why}), so it was left in place"
        )));
    }
    match after {
        After::Keep => Ok(None),
        After::Delete => match std::fs::remove_file(path) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        },
        After::Move(dir) => {
            let dest = dir.join(key);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::rename(path, &dest) {
                Ok(()) => Ok(None),
                // Another filesystem: copy, sync, then remove the original, so that a
                // crash leaves two copies rather than none.
                Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                    let tmp = dest.with_extension("dropship-tmp");
                    std::fs::copy(path, &tmp)?;
                    std::fs::File::open(&tmp)?.sync_all()?;
                    std::fs::rename(&tmp, &dest)?;
                    std::fs::remove_file(path)?;
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, std::path::PathBuf, Identity) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out").join("a.bin");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, b"hello").expect("write");
        let id = Identity::of(&std::fs::metadata(&path).expect("meta"));
        (dir, path, id)
    }

    #[test]
    fn keep_delete_move() {
        let (_d, path, id) = setup();
        assert_eq!(run(&After::Keep, &path, "a.bin", &id).expect("keep"), None);
        assert!(path.exists());

        let sent = _d.path().join("sent");
        assert_eq!(
            run(&After::Move(sent.clone()), &path, "x/a.bin", &id).expect("move"),
            None
        );
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(sent.join("x/a.bin")).expect("moved"),
            b"hello"
        );

        let (_d2, path2, id2) = setup();
        assert_eq!(
            run(&After::Delete, &path2, "a.bin", &id2).expect("delete"),
            None
        );
        assert!(!path2.exists());
        // Again (a crash before `done` was recorded): already gone is fine.
        assert_eq!(
            run(&After::Delete, &path2, "a.bin", &id2).expect("again"),
            None
        );
    }

    #[test]
    fn changed_file_is_left_alone() {
        let (_d, path, id) = setup();
        std::fs::write(&path, b"hello, world").expect("rewrite");
        let note = run(&After::Delete, &path, "a.bin", &id).expect("run");
        assert!(note.expect("a note").contains("changed"));
        assert_eq!(std::fs::read(&path).expect("still there"), b"hello, world");
    }
}
