//! The post-action: what happens to the local file once its upload is verified.
//!
//! It runs only after verification, and only if the local file is still the content
//! that was verified: a file rewritten meanwhile is new content, to be sent in its
//! turn, and must not be deleted or moved as if it had been delivered. Nor is a file
//! deleted or moved while a process still holds it open for writing (its later
//! writes would be lost), or when it is reached through a symbolic link.
//!
//! Idempotent by design: after a crash between this step and the journal's `done`,
//! the next start verifies again and finds the file already gone, which counts as
//! done. (A producer rewriting the file in the instant between the identity check and
//! the delete cannot be excluded without locking the producer out; the window is a
//! few microseconds.)

use std::io;
use std::path::{Path, PathBuf};

use crate::config::After;
use crate::confine;
use crate::identity::Identity;
use crate::writers;

/// How the post-action ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Post {
    /// Done; the note (if any) says why it did less than asked, for `status`.
    Done(Option<String>),
    /// Not now: a process still writes the file. Try again later.
    Postponed(String),
}

/// Runs the post-action on a blocking thread's behalf. `root` is the watched folder.
pub fn run(
    after: &After,
    root: &Path,
    path: &Path,
    key: &str,
    verified: &Identity,
) -> io::Result<Post> {
    let meta = match confine::inside(root, path) {
        Ok(Ok(meta)) => meta,
        // Reached through a link (swapped in since it was claimed): not ours to touch.
        Ok(Err(why)) => {
            return Ok(Post::Done(
                (*after != After::Keep).then(|| format!("delivered; left in place: {why}")),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Post::Done(
                (*after == After::Keep).then(|| "the local file is gone".to_string()),
            ));
        }
        Err(e) => return Err(e),
    };
    if let Some(why) = Identity::of(&meta).change_from(verified) {
        return Ok(Post::Done(Some(format!(
            "delivered the content read at upload; the local file changed since ({why}), so it was left in place"
        ))));
    }
    if *after == After::Keep {
        return Ok(Post::Done(None));
    }
    if let Some(who) = writers::holding(path)? {
        return Ok(Post::Postponed(format!(
            "delivered and verified; {who} still holds the file open for writing, so it is not {} yet",
            if matches!(after, After::Delete) {
                "deleted"
            } else {
                "moved"
            }
        )));
    }
    match after {
        After::Keep => Ok(Post::Done(None)),
        After::Delete => match std::fs::remove_file(path) {
            Ok(()) => Ok(Post::Done(None)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Post::Done(None)),
            Err(e) => Err(e),
        },
        After::Move(dir) => {
            let dest = dir.join(key);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::rename(path, &dest) {
                Ok(()) => Ok(Post::Done(None)),
                Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                    copy_across(path, &dest, verified)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Moves `path` to `dest` on another filesystem: copy to a temporary name beside
/// `dest`, sync, rename into place, then remove the original, so that a crash leaves
/// two copies rather than none. A copy takes time: the original is removed only if
/// it is still the verified content and no writer opened it meanwhile.
fn copy_across(path: &Path, dest: &Path, verified: &Identity) -> io::Result<Post> {
    let tmp = temp_beside(dest);
    let copied = std::fs::copy(path, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, dest));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let now = Identity::of(&std::fs::symlink_metadata(path)?);
    if let Some(why) = now.change_from(verified) {
        return Ok(Post::Done(Some(format!(
            "copied to {}; the local file changed during the copy ({why}), so it was left in place",
            dest.display()
        ))));
    }
    if let Some(who) = writers::holding(path)? {
        return Ok(Post::Done(Some(format!(
            "copied to {}; {who} opened the local file for writing during the copy, so it was left in place",
            dest.display()
        ))));
    }
    std::fs::remove_file(path)?;
    Ok(Post::Done(None))
}

/// A temporary name beside `dest` that no other move uses: it keeps the whole file
/// name (so `a.log` and `a.txt` never share one) and adds the process id and a
/// random number (so two workers moving the same name never do either).
fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(
        ".{name}.{}-{:016x}.dropship-tmp",
        std::process::id(),
        fastrand::u64(..)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Identity) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("out");
        let path = root.join("a.bin");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(&path, b"hello").expect("write");
        let id = Identity::of(&std::fs::metadata(&path).expect("meta"));
        (dir, root, path, id)
    }

    #[test]
    fn keep_delete_move() {
        let (d, root, path, id) = setup();
        let done = Post::Done(None);
        assert_eq!(
            run(&After::Keep, &root, &path, "a.bin", &id).expect("keep"),
            done
        );
        assert!(path.exists());

        let sent = d.path().join("sent");
        assert_eq!(
            run(&After::Move(sent.clone()), &root, &path, "x/a.bin", &id).expect("move"),
            done
        );
        assert!(!path.exists());
        assert_eq!(
            std::fs::read(sent.join("x/a.bin")).expect("moved"),
            b"hello"
        );

        let (_d2, root2, path2, id2) = setup();
        assert_eq!(
            run(&After::Delete, &root2, &path2, "a.bin", &id2).expect("delete"),
            done
        );
        assert!(!path2.exists());
        // Again (a crash before `done` was recorded): already gone is fine.
        assert_eq!(
            run(&After::Delete, &root2, &path2, "a.bin", &id2).expect("again"),
            done
        );
    }

    #[test]
    fn changed_file_is_left_alone() {
        let (_d, root, path, id) = setup();
        std::fs::write(&path, b"hello, world").expect("rewrite");
        let Post::Done(Some(note)) = run(&After::Delete, &root, &path, "a.bin", &id).expect("run")
        else {
            panic!("expected a note")
        };
        assert!(note.contains("changed"));
        assert_eq!(std::fs::read(&path).expect("still there"), b"hello, world");
    }

    #[test]
    fn a_file_open_for_writing_is_not_deleted_until_closed() {
        let (_d, root, path, id) = setup();
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for writing");
        let post = run(&After::Delete, &root, &path, "a.bin", &id).expect("run");
        assert!(
            matches!(post, Post::Postponed(ref why) if why.contains("open for writing")),
            "{post:?}"
        );
        assert!(path.exists());
        drop(writer);
        assert_eq!(
            run(&After::Delete, &root, &path, "a.bin", &id).expect("run"),
            Post::Done(None)
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_file_reached_through_a_link_is_left_in_place() {
        let (d, root, _path, _) = setup();
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::fs::write(elsewhere.join("b.bin"), b"not ours").expect("write");
        std::os::unix::fs::symlink(&elsewhere, root.join("link")).expect("symlink");
        let linked = root.join("link/b.bin");
        let id = Identity::of(&std::fs::metadata(&linked).expect("meta"));
        let post = run(&After::Delete, &root, &linked, "link/b.bin", &id).expect("run");
        assert!(
            matches!(post, Post::Done(Some(ref n)) if n.contains("symbolic link")),
            "{post:?}"
        );
        assert!(elsewhere.join("b.bin").exists());
    }

    #[test]
    fn cross_device_temp_names_never_collide() {
        let dest = Path::new("/sent/a.log");
        let a = temp_beside(dest);
        let b = temp_beside(Path::new("/sent/a.txt"));
        let again = temp_beside(dest);
        assert_ne!(a, b, "two files with the same stem");
        assert_ne!(a, again, "two moves of the same name");
        assert_eq!(a.parent(), Some(Path::new("/sent")));
    }

    #[test]
    fn copy_across_moves_the_bytes_and_leaves_no_temp() {
        let (d, _root, path, id) = setup();
        let dest = d.path().join("sent/a.bin");
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        assert_eq!(
            copy_across(&path, &dest, &id).expect("copy"),
            Post::Done(None)
        );
        assert!(!path.exists());
        assert_eq!(std::fs::read(&dest).expect("dest"), b"hello");
        let left: Vec<_> = std::fs::read_dir(dest.parent().expect("parent"))
            .expect("list")
            .collect();
        assert_eq!(left.len(), 1, "only the moved file");
    }

    #[test]
    fn copy_across_keeps_an_original_that_changed_during_the_copy() {
        let (d, _root, path, id) = setup();
        let dest = d.path().join("sent/a.bin");
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        // What a producer appending during a long copy looks like afterwards.
        std::fs::write(&path, b"hello, and more").expect("append");
        let post = copy_across(&path, &dest, &id).expect("copy");
        assert!(
            matches!(post, Post::Done(Some(ref n)) if n.contains("changed")),
            "{post:?}"
        );
        assert!(path.exists(), "the original stays");
    }
}
