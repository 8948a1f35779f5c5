//! The credentials gate: while the service refuses the credentials, uploads pause.
//!
//! A token that a rotating agent renews late, a password changed on the server, a
//! folder whose permission was taken away: none of these is the fault of the files
//! waiting, and each is fixed for all of them at once. So when an attempt ends with
//! [`BackendError::AuthRefused`](crate::backend::BackendError) (the backend already
//! re-read its credential once), the gate closes:
//!
//! - no more files are claimed; the refused file waits in `retrying` with its
//!   session and parts (nothing is aborted, nothing marked failed);
//! - one ERROR line is logged and `status` shows `backend: auth_refused`;
//! - the credential source is re-read every [`RELOAD_EVERY`]; a changed credential is
//!   tried at once, otherwise one file is tried again after a growing wait (the
//!   upload backoff: `retry_base` doubling up to `retry_max`), since the fix may be
//!   on the server's side;
//! - the first attempt that the service accepts opens the gate, and work resumes.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Backoff;
use crate::backend::Backend;

/// How often the credential source is read while the service refuses it.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// How an attempt ended, as far as the credentials are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The service answered the attempt's requests (delivered, or parts acknowledged).
    Accepted,
    /// The service refused the credentials; the reason, for `status`.
    Refused(String),
    /// Nothing was learnt (a network failure, a file that changed...).
    Unknown,
}

/// What the gate's state did after an attempt, for the caller to log and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// The gate just closed.
    Closed(String),
    /// The gate just opened again.
    Opened,
}

#[derive(Debug)]
struct Refused {
    /// Tries since the gate closed; drives the wait before the next one.
    tries: u32,
    next_try: Instant,
    /// A claimed file is trying the credentials now: claim nothing more until it ends.
    trying: bool,
}

#[derive(Debug, Default)]
pub struct Gate {
    refused: Mutex<Option<Refused>>,
    /// Rung when an attempt ends, so a waiting claimer looks again.
    changed: Notify,
}

impl Gate {
    pub fn is_closed(&self) -> bool {
        self.lock().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Refused>> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a file may be claimed: at once while the credentials are accepted;
    /// while refused, until the next try is due or the credential source changed.
    /// `false` when cancelled.
    pub async fn wait_turn(&self, backend: &dyn Backend, cancel: &CancellationToken) -> bool {
        loop {
            // Registered before the state is read, so an attempt ending in between
            // is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = match &*self.lock() {
                None => return true,
                Some(r) if !r.trying && r.next_try <= Instant::now() => return true,
                Some(r) => (!r.trying).then_some(r.next_try),
            };
            let nap = due.map_or(RELOAD_EVERY, |at| {
                at.saturating_duration_since(Instant::now())
                    .min(RELOAD_EVERY)
            });
            tokio::select! {
                _ = cancel.cancelled() => return false,
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {
                    // A rotated credential is tried now, not after the backoff.
                    let fresh = backend.reload_credentials();
                    if let Some(r) = self.lock().as_mut()
                        && fresh
                    {
                        tracing::info!("the credential source changed; trying it");
                        r.next_try = Instant::now();
                    }
                }
            }
        }
    }

    /// A file was claimed. Returns whether it is the try of refused credentials.
    pub fn claimed(&self) -> bool {
        match self.lock().as_mut() {
            Some(r) => {
                r.trying = true;
                true
            }
            None => false,
        }
    }

    /// An attempt ended with `verdict`; `trying` is what [`Gate::claimed`] said.
    pub fn ended(&self, trying: bool, verdict: &Verdict, backoff: &Backoff) -> Change {
        let mut state = self.lock();
        let change = match (state.as_mut(), verdict) {
            (None, Verdict::Refused(reason)) => {
                *state = Some(Refused {
                    tries: 1,
                    next_try: Instant::now() + backoff.ceiling(1),
                    trying: false,
                });
                Change::Closed(reason.clone())
            }
            (Some(_), Verdict::Accepted) => {
                *state = None;
                Change::Opened
            }
            (Some(r), Verdict::Refused(_) | Verdict::Unknown) if trying => {
                r.tries = r.tries.saturating_add(1);
                r.next_try = Instant::now() + backoff.ceiling(r.tries);
                r.trying = false;
                Change::None
            }
            // An attempt begun before the gate closed: it tells nothing new.
            _ => Change::None,
        };
        drop(state);
        self.changed.notify_waiters();
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(8),
    };

    #[test]
    fn closes_on_refusal_tries_one_file_at_a_time_and_opens_on_acceptance() {
        let g = Gate::default();
        assert!(!g.claimed(), "an open gate claims freely");
        assert_eq!(
            g.ended(false, &Verdict::Refused("401".into()), &B),
            Change::Closed("401".into())
        );
        assert!(g.is_closed());
        // Other attempts in flight end refused too: still closed, no new change.
        assert_eq!(
            g.ended(false, &Verdict::Refused("401".into()), &B),
            Change::None
        );
        assert!(g.claimed(), "the next claim is a try");
        assert_eq!(g.ended(true, &Verdict::Unknown, &B), Change::None);
        assert!(g.is_closed());
        assert!(g.claimed());
        assert_eq!(g.ended(true, &Verdict::Accepted, &B), Change::Opened);
        assert!(!g.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn tries_wait_longer_each_time_up_to_the_cap() {
        // A backend without credentials: reloading never finds a new one.
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = crate::backend::local::LocalBackend::new(dir.path()).expect("backend");
        let g = Gate::default();
        let cancel = CancellationToken::new();
        g.ended(false, &Verdict::Refused("401".into()), &B);
        let mut waits = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            assert!(g.wait_turn(&backend, &cancel).await);
            waits.push(t0.elapsed().as_secs());
            assert!(g.claimed());
            g.ended(true, &Verdict::Refused("401".into()), &B);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 8]);
    }
}
