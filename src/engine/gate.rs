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
struct State {
    refused: Option<Refused>,
    /// Bumped each time the gate closes: only an attempt claimed since then is
    /// evidence that the credentials work again (an older one may have had its
    /// parts acknowledged before the refusal).
    generation: u64,
    /// When an attempt last ended accepted (while the gate was open, or opening it).
    accepted_at: Option<Instant>,
}

/// What [`Gate::claimed`] hands out and [`Gate::ended`] takes back.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// This attempt tries the refused credentials.
    pub trying: bool,
    generation: u64,
    pub claimed_at: Instant,
}

#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    /// Rung when an attempt ends, so a waiting claimer looks again.
    changed: Notify,
}

impl Gate {
    pub fn is_closed(&self) -> bool {
        self.lock().refused.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the service accepted another attempt after `t`: then a refusal that
    /// came to an attempt claimed at `t` is about its file, not the credentials.
    pub fn accepted_since(&self, t: Instant) -> bool {
        self.lock().accepted_at.is_some_and(|at| at > t)
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
            let due = match &self.lock().refused {
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
                    if let Some(r) = self.lock().refused.as_mut()
                        && fresh
                    {
                        tracing::info!("the credential source changed; trying it");
                        r.next_try = Instant::now();
                    }
                }
            }
        }
    }

    /// A file was claimed.
    pub fn claimed(&self) -> Ticket {
        let mut st = self.lock();
        let generation = st.generation;
        let trying = match st.refused.as_mut() {
            Some(r) => {
                r.trying = true;
                true
            }
            None => false,
        };
        Ticket {
            trying,
            generation,
            claimed_at: Instant::now(),
        }
    }

    /// An attempt ended with `verdict`.
    pub fn ended(&self, ticket: Ticket, verdict: &Verdict, backoff: &Backoff) -> Change {
        let mut st = self.lock();
        let current = ticket.generation == st.generation;
        let change = match (st.refused.as_mut(), verdict) {
            (None, Verdict::Refused(reason)) => {
                st.refused = Some(Refused {
                    tries: 1,
                    next_try: Instant::now() + backoff.ceiling(1),
                    trying: false,
                });
                st.generation += 1;
                Change::Closed(reason.clone())
            }
            (None, Verdict::Accepted) => {
                st.accepted_at = Some(Instant::now());
                Change::None
            }
            (Some(_), Verdict::Accepted) if current => {
                st.refused = None;
                st.accepted_at = Some(Instant::now());
                Change::Opened
            }
            (Some(r), _) if ticket.trying => {
                r.tries = r.tries.saturating_add(1);
                r.next_try = Instant::now() + backoff.ceiling(r.tries);
                r.trying = false;
                Change::None
            }
            // An attempt begun before the gate closed: it tells nothing new.
            _ => Change::None,
        };
        drop(st);
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
        let before = g.claimed();
        assert!(!before.trying, "an open gate claims freely");
        let other = g.claimed();
        assert_eq!(
            g.ended(other, &Verdict::Refused("401".into()), &B),
            Change::Closed("401".into())
        );
        assert!(g.is_closed());
        // An attempt claimed before the refusal, whose parts were acknowledged
        // before it: no evidence that the credentials work now.
        assert_eq!(g.ended(before, &Verdict::Accepted, &B), Change::None);
        assert!(g.is_closed());
        let first_try = g.claimed();
        assert!(first_try.trying, "the next claim is a try");
        assert_eq!(g.ended(first_try, &Verdict::Unknown, &B), Change::None);
        assert!(g.is_closed());
        let second_try = g.claimed();
        assert_eq!(g.ended(second_try, &Verdict::Accepted, &B), Change::Opened);
        assert!(!g.is_closed());
    }

    #[test]
    fn a_refusal_after_another_file_was_accepted_is_about_its_file() {
        let g = Gate::default();
        let locked = g.claimed();
        assert!(!g.accepted_since(locked.claimed_at));
        std::thread::sleep(Duration::from_millis(2));
        let fine = g.claimed();
        g.ended(fine, &Verdict::Accepted, &B);
        assert!(g.accepted_since(locked.claimed_at));
        assert!(!g.accepted_since(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn tries_wait_longer_each_time_up_to_the_cap() {
        // A backend without credentials: reloading never finds a new one.
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = crate::backend::local::LocalBackend::new(dir.path()).expect("backend");
        let g = Gate::default();
        let cancel = CancellationToken::new();
        g.ended(g.claimed(), &Verdict::Refused("401".into()), &B);
        let mut waits = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            assert!(g.wait_turn(&backend, &cancel).await);
            waits.push(t0.elapsed().as_secs());
            let ticket = g.claimed();
            assert!(ticket.trying);
            g.ended(ticket, &Verdict::Refused("401".into()), &B);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 8]);
    }
}
