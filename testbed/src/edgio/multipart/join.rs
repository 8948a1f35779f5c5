//! The join (rule 8): completing moves an upload to COMPLETE while its pieces are
//! concatenated, then to JOIN, and `edgio_join_delay_ms` later to SUCCESS (the file
//! appears; HEAD and `stat` find it) or, if the join was rolled to fail
//! (`edgio_join_fail_rate`), to FAILED(12). `restartMultipart` runs the join again from
//! FAILED only (rule 9).
//!
//! No timer decides the outcome: every request looks at the clock first (the
//! `settle` step in `multipart/mod.rs`), so a changed knob applies at once. A nudge
//! task only makes sure the file also appears for a client that never asks (e.g. a test
//! reading the store directly).

use std::time::{Duration, Instant};

use super::upload::{UpState, Upload};
use crate::store::Staged;

impl Upload {
    /// COMPLETE → JOIN with the joined (maybe corrupted) bytes.
    pub(crate) fn start_join(&mut self, joined: Staged, corrupted: bool, fails: bool) {
        self.joined = Some(joined);
        self.corrupted = corrupted;
        self.join_fails = fails;
        self.enter(UpState::Join);
    }

    /// Whether the running join has lasted `delay` by `now`.
    pub(crate) fn join_due(&self, delay: Duration, now: Instant) -> bool {
        self.state == UpState::Join && now.saturating_duration_since(self.since) >= delay
    }

    /// FAILED → JOIN again, with a new roll; `-22` from any other state or if the
    /// joined bytes are gone (rule 9).
    pub(crate) fn restart(&mut self, fails: bool) -> Result<(), i64> {
        if self.state != UpState::Failed || self.joined.is_none() {
            return Err(-22);
        }
        self.join_fails = fails;
        self.enter(UpState::Join);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::upload::piece;
    use super::*;

    #[test]
    fn only_a_failed_join_restarts() {
        let mut u = Upload::new("m".into(), "k".into(), None, 0);
        u.add_piece(piece(1, 1));
        assert_eq!(u.restart(false), Err(-22), "READY");
        u.enter(UpState::Join);
        assert!(!u.join_due(Duration::from_secs(60), Instant::now()));
        assert!(u.join_due(Duration::ZERO, Instant::now()));
        u.enter(UpState::Failed);
        assert_eq!(u.restart(false), Err(-22), "no joined bytes kept");
    }
}
