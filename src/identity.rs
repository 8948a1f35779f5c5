//! A local file's identity: size, modification time and inode.
//!
//! Two observations with the same identity are taken to be the same content. That is
//! how the watcher never queues a file twice, and how the engine notices a file that
//! changed under an upload (appended, rewritten, or replaced by a rename).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub size: u64,
    /// Nanoseconds since the epoch: a rewrite within the same second still differs.
    pub mtime_ns: i64,
    pub inode: u64,
}

impl Identity {
    pub fn of(meta: &Metadata) -> Identity {
        Identity {
            size: meta.len(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            inode: meta.ino(),
        }
    }

    /// What changed, for messages; `None` if nothing did.
    pub fn change_from(&self, before: &Identity) -> Option<String> {
        if self.inode != before.inode {
            Some("the file was replaced".into())
        } else if self.size != before.size {
            Some(format!(
                "its size changed from {} to {} bytes",
                before.size, self.size
            ))
        } else if self.mtime_ns != before.mtime_ns {
            Some("it was modified".into())
        } else {
            None
        }
    }
}
