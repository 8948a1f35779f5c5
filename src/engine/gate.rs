//! The gate: while the service refuses the credentials, or cannot be reached at
//! all, uploads pause.
//!
//! A token that a rotating agent renews late, a password changed on the server, a
//! folder whose permission was taken away, an uplink that is down for days: none of
//! these is the fault of the files waiting, and each is fixed for all of them at
//! once. So when an attempt ends with
//! [`BackendError::AuthRefused`](crate::backend::BackendError) (the backend already
//! re-read its credential once) or `Unreachable` (no connection at all), the gate
//! closes:
//!
//! - no more files are claimed; the stopped file waits with its session and parts
//!   (nothing is aborted, nothing marked failed, no failure counted);
//! - one line is logged and `status` shows `backend: auth_refused` or `unreachable`;
//! - one file at a time tries again after a growing wait (the upload backoff:
//!   `retry_base` doubling up to `retry_max`; for an unreachable service with equal
//!   jitter, so that devices cut off together do not all return in one second).
//!   While the credentials are refused, their source is also re-read every
//!   [`RELOAD_EVERY`], and a changed credential is tried at once;
//! - the first attempt that the service accepts opens the gate, and work resumes.
//!
//! With the service unreachable, one connection attempt per wait is all the daemon
//! makes, however many files queue up; the plan of the next one is kept in the
//! journal (`status` shows it), so that a restart resumes the backoff instead of
//! trying every file at once.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Backoff;
use crate::backend::Backend;

/// How often the credential source is read while the service refuses it.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// How an attempt ended, as far as the gate is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The file was delivered and verified: its last requests, made just now, were
    /// accepted, whenever the attempt was claimed.
    Delivered,
    /// The service answered the attempt's requests (parts acknowledged, a join
    /// accepted), perhaps before the gate closed.
    Accepted,
    /// The service refused the credentials; the reason, for `status`.
    Refused(String),
    /// No connection to the service; the reason, for `status`.
    Unreachable(String),
    /// The service was reached but did not take the attempt (a 503, a reset after
    /// the connection was made, a lost session...): evidence that it is reachable,
    /// none about the credentials.
    Reached,
    /// Nothing was learnt about the service (the file changed or vanished before a
    /// request went out, shutdown...): a try that did not happen.
    Unknown,
}

/// Why the gate is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Credentials,
    Unreachable,
}

impl Cause {
    /// The `backend` state `status` shows.
    pub fn state(self) -> &'static str {
        match self {
            Cause::Credentials => "auth_refused",
            Cause::Unreachable => "unreachable",
        }
    }
}

/// What the gate's state did after an attempt, for the caller to log and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// The gate just closed, or is closed now for another cause.
    Closed(Cause, String),
    /// A try failed; the gate stays closed until the next one.
    TryFailed,
    /// The gate just opened again.
    Opened,
}

/// The next try while the gate is closed, as kept in the journal across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub cause: Cause,
    pub tries: u32,
    /// From now until the next try.
    pub wait: Duration,
}

#[derive(Debug)]
struct Closed {
    cause: Cause,
    /// Tries since the gate closed; drives the wait before the next one.
    tries: u32,
    next_try: Instant,
    /// A claimed file is trying the service now: claim nothing more until it ends.
    trying: bool,
}

impl Closed {
    fn new(cause: Cause, backoff: &Backoff) -> Closed {
        Closed {
            cause,
            tries: 1,
            next_try: Instant::now() + wait(cause, 1, backoff),
            trying: false,
        }
    }
}

/// The wait before try `tries + 1`: the backoff's ceiling; for an unreachable
/// service between half of it and all of it (equal jitter: spread, yet never
/// much sooner than the backoff means).
fn wait(cause: Cause, tries: u32, backoff: &Backoff) -> Duration {
    let ceiling = backoff.ceiling(tries);
    match cause {
        Cause::Credentials => ceiling,
        Cause::Unreachable => ceiling.mul_f64(0.5 + fastrand::f64() / 2.0),
    }
}

#[derive(Debug, Default)]
struct State {
    closed: Option<Closed>,
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
    /// This attempt is the one try while the gate is closed.
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
        self.lock().closed.is_some()
    }

    /// While closed: why, how many tries so far, and how long until the next.
    pub fn plan(&self) -> Option<Plan> {
        self.lock().closed.as_ref().map(|c| Plan {
            cause: c.cause,
            tries: c.tries,
            wait: c.next_try.saturating_duration_since(Instant::now()),
        })
    }

    /// At start: the last daemon found the service unreachable and planned its next
    /// try; this one keeps to that plan instead of trying every file at once.
    pub fn resume(&self, plan: Plan) {
        let mut st = self.lock();
        st.closed = Some(Closed {
            cause: plan.cause,
            tries: plan.tries.max(1),
            next_try: Instant::now() + plan.wait,
            trying: false,
        });
        st.generation += 1;
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
    /// while closed, until the next try is due (or, for refused credentials, their
    /// source changed).
    /// `false` when cancelled.
    pub async fn wait_turn(&self, backend: &dyn Backend, cancel: &CancellationToken) -> bool {
        loop {
            // Registered before the state is read, so an attempt ending in between
            // is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = match &self.lock().closed {
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
                    if let Some(r) = self.lock().closed.as_mut()
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
        let trying = match st.closed.as_mut() {
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
        let closing = match verdict {
            Verdict::Refused(reason) => Some((Cause::Credentials, reason)),
            Verdict::Unreachable(reason) => Some((Cause::Unreachable, reason)),
            _ => None,
        };
        let change = match (st.closed.as_mut(), verdict) {
            (None, _) if let Some((cause, reason)) = closing => {
                st.closed = Some(Closed::new(cause, backoff));
                st.generation += 1;
                Change::Closed(cause, reason.clone())
            }
            (None, Verdict::Accepted | Verdict::Delivered) => {
                st.accepted_at = Some(Instant::now());
                Change::None
            }
            // A delivery is evidence now, even from an attempt claimed before the
            // gate closed (it may have been the last file, with none left to try).
            (Some(_), Verdict::Delivered) => {
                st.closed = None;
                st.accepted_at = Some(Instant::now());
                Change::Opened
            }
            (Some(_), Verdict::Accepted) if current => {
                st.closed = None;
                st.accepted_at = Some(Instant::now());
                Change::Opened
            }
            // An unreachable service that answered: the uplink is back.
            (Some(r), Verdict::Reached) if current && r.cause == Cause::Unreachable => {
                st.closed = None;
                Change::Opened
            }
            // The probe never asked the service: the next file tries at once.
            (Some(r), Verdict::Unknown) if ticket.trying => {
                r.trying = false;
                Change::None
            }
            (Some(r), _) if ticket.trying => {
                r.tries = r.tries.saturating_add(1);
                r.trying = false;
                let change = match closing {
                    Some((cause, reason)) if cause != r.cause => {
                        r.cause = cause;
                        Change::Closed(cause, reason.clone())
                    }
                    _ => Change::TryFailed,
                };
                r.next_try = Instant::now() + wait(r.cause, r.tries, backoff);
                change
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
            Change::Closed(Cause::Credentials, "401".into())
        );
        assert!(g.is_closed());
        // An attempt claimed before the refusal, whose parts were acknowledged
        // before it: no evidence that the credentials work now.
        assert_eq!(g.ended(before, &Verdict::Accepted, &B), Change::None);
        assert!(g.is_closed());
        // One that delivered its file is: its last requests came after the refusal.
        let stale = Ticket {
            trying: false,
            generation: 0,
            claimed_at: Instant::now(),
        };
        assert_eq!(g.ended(stale, &Verdict::Delivered, &B), Change::Opened);
        assert!(!g.is_closed());
        let other = g.claimed();
        assert_eq!(
            g.ended(other, &Verdict::Refused("401".into()), &B),
            Change::Closed(Cause::Credentials, "401".into())
        );
        let first_try = g.claimed();
        assert!(first_try.trying, "the next claim is a try");
        // A try that never reached the service does not count.
        let due = g.plan().expect("closed").wait;
        assert_eq!(g.ended(first_try, &Verdict::Unknown, &B), Change::None);
        assert!(g.plan().expect("closed").wait <= due);
        let next_try = g.claimed();
        assert!(next_try.trying);
        assert_eq!(g.ended(next_try, &Verdict::Reached, &B), Change::TryFailed);
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

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_service_is_tried_by_one_file_with_jittered_backoff_to_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = crate::backend::local::LocalBackend::new(dir.path()).expect("backend");
        let g = Gate::default();
        let cancel = CancellationToken::new();
        let first = g.claimed();
        let down = Verdict::Unreachable("connection refused".into());
        assert_eq!(
            g.ended(first, &down, &B),
            Change::Closed(Cause::Unreachable, "connection refused".into())
        );
        let mut waits = Vec::new();
        for _ in 0..8 {
            let t0 = Instant::now();
            assert!(g.wait_turn(&backend, &cancel).await);
            waits.push(t0.elapsed());
            let probe = g.claimed();
            assert!(probe.trying, "one file tries at a time");
            assert_eq!(g.ended(probe, &down, &B), Change::TryFailed);
        }
        // Equal jitter: between half the ceiling and all of it; the ceiling doubles
        // from 1 s to the 8 s cap.
        let ceilings = [1u64, 2, 4, 8, 8, 8, 8, 8];
        for (w, c) in waits.iter().zip(ceilings) {
            let c = Duration::from_secs(c);
            assert!(*w >= c / 2 && *w <= c, "{waits:?}");
        }
        assert!(
            waits[3..].windows(2).any(|p| p[0] != p[1]),
            "no jitter: {waits:?}"
        );
        assert_eq!(
            g.plan().map(|p| (p.cause, p.tries)),
            Some((Cause::Unreachable, 9))
        );
        // The credentials refused once the service is back: the cause changes.
        let probe = g.claimed();
        assert_eq!(
            g.ended(probe, &Verdict::Refused("401".into()), &B),
            Change::Closed(Cause::Credentials, "401".into())
        );
        let probe = g.claimed();
        assert_eq!(g.ended(probe, &Verdict::Accepted, &B), Change::Opened);
        assert_eq!(g.plan(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_plan_waits_out_its_time_before_the_first_try() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = crate::backend::local::LocalBackend::new(dir.path()).expect("backend");
        let g = Gate::default();
        g.resume(Plan {
            cause: Cause::Unreachable,
            tries: 6,
            wait: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        assert!(g.wait_turn(&backend, &CancellationToken::new()).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        let probe = g.claimed();
        assert!(probe.trying);
        g.ended(probe, &Verdict::Unreachable("refused".into()), &B);
        let p = g.plan().expect("still closed");
        // The backoff goes on from the kept tries: at the cap, not back at the base.
        assert_eq!(p.tries, 7);
        assert!(p.wait >= Duration::from_secs(4), "{p:?}");
    }
}
