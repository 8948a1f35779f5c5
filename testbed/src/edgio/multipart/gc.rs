//! The garbage collector (rule 11; protocols/edgio.md §Multipart 6): NEW uploads
//! older than `edgio_upload_ttl_s` (from creation), FAILED ones (from the failure) and
//! the pieces of open uploads (from arrival) become EXPIRED, and their bytes are
//! deleted. Run on every request (`settle`), so lowering the knob to 0 expires them all
//! at the next request.
//!
//! A READY upload itself does not expire (READY → EXPIRED is not an allowed transition),
//! but its pieces do; completing it then meets `-4`/`-5` and the client re-sends them.

use std::time::{Duration, Instant};

use super::upload::{UpState, Upload, drop_file};

impl Upload {
    pub(crate) fn collect(&mut self, ttl_s: u64, now: Instant) {
        let ttl = Duration::from_secs(ttl_s);
        let old = |t: Instant| now.saturating_duration_since(t) >= ttl;
        match self.state {
            UpState::New if old(self.created) => self.expire(),
            UpState::Failed if old(self.since) => self.expire(),
            UpState::New | UpState::Ready => {
                for p in self
                    .pieces
                    .iter_mut()
                    .filter(|p| !p.expired && old(p.arrived))
                {
                    p.expired = true;
                    drop_file(&mut p.file);
                }
            }
            _ => {}
        }
    }

    fn expire(&mut self) {
        tracing::info!(mpid = %self.mpid, "edgio upload expired");
        self.joined = None;
        self.discard_pieces();
        self.enter(UpState::Expired);
    }
}

#[cfg(test)]
mod tests {
    use super::super::upload::piece;
    use super::*;

    #[test]
    fn new_and_failed_expire_ready_keeps_its_state() {
        let mut new = Upload::new("a".into(), "k".into(), None, 0);
        let mut ready = Upload::new("b".into(), "k".into(), None, 0);
        ready.add_piece(piece(1, 1));
        let mut failed = Upload::new("c".into(), "k".into(), None, 0);
        failed.enter(UpState::Failed);
        let mut joining = Upload::new("d".into(), "k".into(), None, 0);
        joining.enter(UpState::Join);
        // Ten seconds after all of them were made.
        let later = Instant::now() + Duration::from_secs(10);

        new.collect(60, later);
        assert_eq!(new.state, UpState::New);
        new.collect(10, later);
        assert_eq!(new.state, UpState::Expired);

        ready.collect(10, later);
        assert_eq!(ready.state, UpState::Ready);
        assert!(ready.pieces[0].expired);
        assert_eq!(ready.piece_state(&ready.pieces[0]), 12);

        failed.collect(10, later);
        assert_eq!(failed.state, UpState::Expired);

        joining.collect(0, later);
        assert_eq!(joining.state, UpState::Join, "a running join is left alone");
    }
}
