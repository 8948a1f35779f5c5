//! A multipart upload and its pieces, with the states the service reports
//! (protocols/edgio.md §Multipart: upload states 0–12, piece states 0–13).
//!
//! Pieces are kept in order of arrival, duplicates included (a repeated part number
//! replaces the earlier piece, "both still appear in listings"). A replaced piece is
//! *superseded*: its bytes are dropped at once, it still lists in state NEW while the
//! upload is open (the docs leave open whether it is marked; the resume rule "take the
//! latest listed piece" works either way), and as SKIPPED(10) once the join leaves it
//! out.

use std::path::PathBuf;
use std::time::Instant;

use crate::store::Staged;

/// Upload states (the `getMultipartStatusMap("upload")` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpState {
    New,
    Ready,
    Complete,
    Join,
    Success,
    Abort,
    Expired,
    Failed,
}

impl UpState {
    pub(crate) fn code(self) -> i64 {
        match self {
            UpState::New => 1,
            UpState::Ready => 2,
            UpState::Complete => 3,
            UpState::Join => 5,
            UpState::Success => 6,
            UpState::Abort => 10,
            UpState::Expired => 11,
            UpState::Failed => 12,
        }
    }

    /// Counted in `sessions_open`: pieces may still arrive or the join is running.
    pub(crate) fn is_open(self) -> bool {
        matches!(
            self,
            UpState::New | UpState::Ready | UpState::Complete | UpState::Join
        )
    }
}

/// `getMultipartStatusMap("upload")`.
pub(crate) const UPLOAD_STATES: [(i64, &str); 11] = [
    (0, "UNKNOWN"),
    (1, "NEW"),
    (2, "READY"),
    (3, "COMPLETE"),
    (5, "JOIN"),
    (6, "SUCCESS"),
    (8, "DELETED"),
    (9, "ERROR"),
    (10, "ABORT"),
    (11, "EXPIRED"),
    (12, "FAILED"),
];

/// `getMultipartStatusMap("piece")`.
pub(crate) const PIECE_STATES: [(i64, &str); 10] = [
    (0, "UNKNOWN"),
    (1, "NEW"),
    (5, "JOIN"),
    (6, "SUCCESS"),
    (8, "DELETED"),
    (9, "ERROR"),
    (10, "SKIPPED"),
    (11, "ABORT"),
    (12, "EXPIRED"),
    (13, "FAILED"),
];

#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) number: u32,
    pub(crate) size: u64,
    /// The piece's bytes in the upload's session directory; `None` once they are no
    /// longer needed (superseded, expired, joined, aborted).
    pub(crate) file: Option<PathBuf>,
    /// The garbage collector's age counts from here.
    pub(crate) arrived: Instant,
    /// A later piece with the same number replaced this one.
    pub(crate) superseded: bool,
    /// The garbage collector expired it.
    pub(crate) expired: bool,
}

impl Piece {
    /// Counts towards the join: neither replaced nor expired.
    pub(crate) fn live(&self) -> bool {
        !self.superseded && !self.expired
    }
}

#[derive(Debug)]
pub(crate) struct Upload {
    /// 32 lower-case hex digits.
    pub(crate) mpid: String,
    /// Where the file goes (a key; see `paths`).
    pub(crate) key: String,
    /// `X-Agile-Content-Type` / `content_type` at create.
    pub(crate) content_type: Option<String>,
    /// `X-Agile-MTime` / `mtime` at create; 0 when not given (the seed's `mtime=0`).
    pub(crate) mtime: u64,
    pub(crate) created: Instant,
    /// `created` in Unix seconds, for `getMultipartStatus`.
    pub(crate) created_s: u64,
    pub(crate) state: UpState,
    /// When `state` was entered: the join's start for JOIN, the failure for FAILED.
    pub(crate) since: Instant,
    /// In order of arrival, duplicates included.
    pub(crate) pieces: Vec<Piece>,
    /// `sessions/edgio/<mpid>/`, created with the first piece; removed once no piece
    /// bytes are needed.
    pub(crate) dir: Option<PathBuf>,
    /// The joined bytes, from COMPLETE until published at SUCCESS (kept through FAILED
    /// so `restartMultipart` can join again).
    pub(crate) joined: Option<Staged>,
    /// Whether the running join ends FAILED (`edgio_join_fail_rate`, rolled per join).
    pub(crate) join_fails: bool,
    /// Whether `joined` had a byte flipped (`corrupt_rate`), for the fault counter.
    pub(crate) corrupted: bool,
}

impl Upload {
    pub(crate) fn new(mpid: String, key: String, content_type: Option<String>, mtime: u64) -> Self {
        let now = Instant::now();
        Upload {
            mpid,
            key,
            content_type,
            mtime,
            created: now,
            created_s: crate::clock::unix_secs(std::time::SystemTime::now()),
            state: UpState::New,
            since: now,
            pieces: Vec::new(),
            dir: None,
            joined: None,
            join_fails: false,
            corrupted: false,
        }
    }

    pub(crate) fn enter(&mut self, state: UpState) {
        self.state = state;
        self.since = Instant::now();
    }

    /// The state a listed piece shows.
    pub(crate) fn piece_state(&self, p: &Piece) -> i64 {
        match self.state {
            UpState::Abort => 11,
            UpState::Expired => 12,
            _ if p.expired => 12,
            UpState::New | UpState::Ready => 1,
            _ if p.superseded => 10,
            UpState::Complete | UpState::Join => 5,
            UpState::Success => 6,
            UpState::Failed => 13,
        }
    }

    /// Pieces that count, in arrival order (at most one per number).
    pub(crate) fn live(&self) -> impl Iterator<Item = &Piece> {
        self.pieces.iter().filter(|p| p.live())
    }

    /// Adds a piece: an earlier live piece with its number is superseded and its bytes
    /// dropped; NEW becomes READY (rule 7).
    pub(crate) fn add_piece(&mut self, piece: Piece) {
        for old in self
            .pieces
            .iter_mut()
            .filter(|p| p.live() && p.number == piece.number)
        {
            old.superseded = true;
            drop_file(&mut old.file);
        }
        self.pieces.push(piece);
        if self.state == UpState::New {
            self.enter(UpState::Ready);
        }
    }

    /// Deletes every piece's bytes and the session directory; the listing stays.
    pub(crate) fn discard_pieces(&mut self) {
        for p in &mut self.pieces {
            p.file = None;
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove edgio pieces");
        }
    }
}

/// Deletes a piece's file, if it still has one.
pub(crate) fn drop_file(file: &mut Option<PathBuf>) {
    if let Some(f) = file.take() {
        let _ = std::fs::remove_file(f);
    }
}

#[cfg(test)]
pub(crate) fn piece(number: u32, size: u64) -> Piece {
    Piece {
        number,
        size,
        file: None,
        arrived: Instant::now(),
        superseded: false,
        expired: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_number_supersedes_and_both_list() {
        let mut u = Upload::new("m".into(), "k".into(), None, 0);
        assert_eq!(u.state, UpState::New);
        u.add_piece(piece(1, 10));
        assert_eq!(u.state, UpState::Ready);
        u.add_piece(piece(1, 20));
        assert_eq!(u.pieces.len(), 2);
        assert_eq!(u.live().map(|p| p.size).collect::<Vec<_>>(), [20]);
        assert_eq!(u.piece_state(&u.pieces[0]), 1, "listed as NEW while open");
        u.enter(UpState::Join);
        assert_eq!(
            u.piece_state(&u.pieces[0]),
            10,
            "SKIPPED once joined without it"
        );
        assert_eq!(u.piece_state(&u.pieces[1]), 5);
    }
}
