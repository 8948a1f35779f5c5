//! The two state machines the journal stores, with every legal edge in one function.
//!
//! State names are stored as TEXT, so they are part of the journal format: renaming one
//! needs a migration. The same words appear in SQL, code, logs and `status`.

use std::fmt;
use std::str::FromStr;

/// Where one file stands.
///
/// ```text
/// queued ─► uploading ─► completing ─► verifying ─► done
///              │  ▲  │      │    ▲ │        │
///              │  │  │      │    │ ▼        │     uploading ─► done: the name
///              │  │  └──────┼─► joining     │     exists and is skipped
///              ▼  │         ▼   (rests until polled; a poll claims it as completing)
///           retrying ◄──────┴──────────────┘
///                                         failed, superseded ◄─ (any active)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileState {
    /// Found finished, waiting for a worker.
    Queued,
    /// A worker reads and sends its parts.
    Uploading,
    /// Every part is acknowledged; the session is being completed.
    Completing,
    /// The service accepted the completion and assembles the object on its own
    /// time (Edgio's join); the file waits for its next poll at `next_attempt_at`,
    /// holding no worker.
    Joining,
    /// Completed; the stored object's size and digest are being checked.
    Verifying,
    /// Waiting until `next_attempt_at` after a temporary failure.
    Retrying,
    /// Verified (and the post-action ran).
    Done,
    /// Needs a person; `last_error` says why; `dropship retry` re-queues.
    Failed,
    /// The local file changed; a newer row carries the new content.
    Superseded,
}

impl FileState {
    pub const ALL: [FileState; 9] = [
        FileState::Queued,
        FileState::Uploading,
        FileState::Completing,
        FileState::Joining,
        FileState::Verifying,
        FileState::Retrying,
        FileState::Done,
        FileState::Failed,
        FileState::Superseded,
    ];

    /// States a file leaves by itself (the engine will come back to it).
    pub const ACTIVE: [FileState; 6] = [
        FileState::Queued,
        FileState::Uploading,
        FileState::Completing,
        FileState::Joining,
        FileState::Verifying,
        FileState::Retrying,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Queued => "queued",
            FileState::Uploading => "uploading",
            FileState::Completing => "completing",
            FileState::Joining => "joining",
            FileState::Verifying => "verifying",
            FileState::Retrying => "retrying",
            FileState::Done => "done",
            FileState::Failed => "failed",
            FileState::Superseded => "superseded",
        }
    }

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// The only legal edges; the journal refuses any other.
    pub fn may_become(self, next: FileState) -> bool {
        use FileState::*;
        matches!(
            (self, next),
            (Queued | Retrying, Uploading)          // claimed by a worker
                | (Uploading, Completing)           // every part acknowledged
                | (Uploading, Verifying)            // a single-request upload finished
                | (Completing, Verifying)           // the service accepted completion
                | (Uploading | Completing, Joining) // accepted; the service joins (or still does)
                | (Joining, Completing)             // claimed to poll the join
                | (Verifying, Done)                 // sizes and digests agree
                | (Uploading, Done)                 // skipped: the name exists (upload.on_exists)
                | (Uploading | Completing | Verifying, Retrying) // temporary failure, or verify mismatch
                | (Uploading | Completing | Verifying, Queued)   // shutdown checkpoint, crash recovery
                | (Queued | Uploading | Completing | Joining | Verifying | Retrying, Failed)
                | (Queued | Uploading | Completing | Joining | Verifying | Retrying, Superseded)
                | (Failed, Queued)                  // `dropship retry`, asked for by a person
                | (Failed, Superseded) // retried while newer content is queued
        )
    }
}

/// Where one part stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartState {
    Pending,
    Uploading,
    Uploaded,
}

impl PartState {
    pub const ALL: [PartState; 3] = [
        PartState::Pending,
        PartState::Uploading,
        PartState::Uploaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Pending => "pending",
            PartState::Uploading => "uploading",
            PartState::Uploaded => "uploaded",
        }
    }

    /// The only legal edges. A superseded or restarted file drops its part rows
    /// instead of moving them, so there is no `aborted` state.
    pub fn may_become(self, next: PartState) -> bool {
        use PartState::*;
        matches!(
            (self, next),
            (Pending, Uploading)       // committed *before* the bytes leave
                | (Uploading, Uploaded) // acknowledged; the receipt is saved in the same UPDATE
                | (Uploading, Pending)  // failed, or found mid-flight after a crash
                | (Pending, Uploaded)   // the server's list says it holds it
                | (Uploaded, Pending) // the server's list says it lost it
        )
    }
}

macro_rules! text_enum {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} {s:?}", stringify!($t)))
            }
        }
    };
}
text_enum!(FileState);
text_enum!(PartState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_edges_exactly() {
        use PartState::*;
        let legal = [
            (Pending, Uploading),
            (Uploading, Uploaded),
            (Uploading, Pending),
            (Pending, Uploaded),
            (Uploaded, Pending),
        ];
        for a in PartState::ALL {
            for b in PartState::ALL {
                assert_eq!(a.may_become(b), legal.contains(&(a, b)), "{a} -> {b}");
            }
        }
    }

    #[test]
    fn file_edges_exactly() {
        use FileState::*;
        let mut legal = vec![
            (Queued, Uploading),
            (Retrying, Uploading),
            (Uploading, Completing),
            (Uploading, Verifying),
            (Completing, Verifying),
            (Verifying, Done),
            (Uploading, Done),
            (Failed, Queued),
            (Failed, Superseded),
            (Uploading, Joining),
            (Completing, Joining),
            (Joining, Completing),
        ];
        for s in [Uploading, Completing, Verifying] {
            legal.push((s, Retrying));
            legal.push((s, Queued));
        }
        for s in FileState::ACTIVE {
            legal.push((s, Failed));
            legal.push((s, Superseded));
        }
        for a in FileState::ALL {
            for b in FileState::ALL {
                assert_eq!(a.may_become(b), legal.contains(&(a, b)), "{a} -> {b}");
            }
        }
        // Terminal states stay terminal.
        for b in FileState::ALL {
            assert!(!Done.may_become(b));
            assert!(!Superseded.may_become(b));
        }
    }

    #[test]
    fn names_roundtrip() {
        for s in FileState::ALL {
            assert_eq!(s.as_str().parse::<FileState>(), Ok(s));
        }
        for s in PartState::ALL {
            assert_eq!(s.as_str().parse::<PartState>(), Ok(s));
        }
        assert!("lost".parse::<FileState>().is_err());
    }
}
