//! Tokens (protocols/edgio.md §Auth and sessions; rules 1–3).
//!
//! One user, `testbed`, whose password is the testbed's secret. `PUT /_testbed/secret`
//! is a password change: new logins need the new one, and every token issued
//! before it ends (as a password change revokes the sessions it opened). A
//! token is a UUID; its session remembers the root it is restricted to
//! (`X-Agile-Subdir`, else the account root) and when and how it expires:
//!
//! - by default `edgio_token_ttl_s` after login, the knob read on every use, so
//!   changing it moves the end of every such token;
//! - after `X-Agile-Expiry` seconds, or the `updateSession` value (0: never);
//! - and whatever the above, at once when `edgio_token_ttl_s` is 0 (forced expiry).
//!
//! Expired and logged-out tokens are forgotten when next presented. Passwords and
//! tokens are never logged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::error::Agile;
use crate::app::Shared;

/// The one user (the interface contract).
pub(crate) const USERNAME: &str = "testbed";
/// The user's ids, as the docs' examples show them.
pub(crate) const UID: u64 = 12020;
pub(crate) const GID: u64 = 100;

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// `edgio_token_ttl_s` after login.
    Default,
    /// This many seconds after login.
    After(u64),
    /// Never (`updateSession` with 0 or no value).
    Never,
}

#[derive(Debug)]
pub(crate) struct Session {
    /// The key the token is restricted to (`""`: the account root).
    pub(crate) root: String,
    pub(crate) login: Instant,
    pub(crate) expiry: Expiry,
    /// Set by `X-Agile-Expiry` or a first `updateSession`; a second is refused (`-1`).
    pub(crate) expiry_set: bool,
}

impl Session {
    fn expired(&self, ttl_s: u64, now: Instant) -> bool {
        let age = now.saturating_duration_since(self.login);
        match self.expiry {
            _ if ttl_s == 0 => true,
            Expiry::Default => age >= Duration::from_secs(ttl_s),
            Expiry::After(s) => age >= Duration::from_secs(s),
            Expiry::Never => false,
        }
    }
}

/// Who presented a valid token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The key every path of the caller is relative to.
    pub(crate) root: String,
}

/// Live sessions by token.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_token: HashMap<String, Session>,
    /// The secret generation the live tokens were issued under.
    password: u64,
}

impl Sessions {
    /// The password changed (`generation` is the testbed's secret generation):
    /// every token issued before ends.
    pub(crate) fn follow_password(&mut self, generation: u64) {
        if generation != self.password {
            self.password = generation;
            self.by_token.clear();
        }
    }

    /// A new token restricted to `root`.
    pub(crate) fn open(&mut self, root: String, expiry: Expiry) -> String {
        let token = crate::hex::uuid_v4();
        self.by_token.insert(
            token.clone(),
            Session {
                root,
                login: Instant::now(),
                expiry_set: expiry != Expiry::Default,
                expiry,
            },
        );
        token
    }

    /// The live session of `token`; an expired one is forgotten.
    pub(crate) fn live(&mut self, token: &str, ttl_s: u64) -> Option<&mut Session> {
        if self
            .by_token
            .get(token)
            .is_some_and(|s| s.expired(ttl_s, Instant::now()))
        {
            self.by_token.remove(token);
        }
        self.by_token.get_mut(token)
    }

    pub(crate) fn caller(&mut self, token: &str, ttl_s: u64) -> Option<Caller> {
        self.live(token, ttl_s).map(|s| Caller {
            root: s.root.clone(),
        })
    }

    /// Ends the session of `token`; false if it was not live.
    pub(crate) fn close(&mut self, token: &str, ttl_s: u64) -> bool {
        self.live(token, ttl_s).is_some() && self.by_token.remove(token).is_some()
    }
}

/// Whether `user`/`password` are the one user's, now.
pub(crate) fn credentials_ok(shared: &Shared, user: &str, password: &str) -> bool {
    user == USERNAME && shared.secret_matches(password)
}

/// The token of an HTTP call: `X-Agile-Authorization`, or for `/post/file` also
/// `?token=` (`query`). `Err` is the answer: 401 without any, 403 if it is not
/// live (rule 3).
pub(crate) fn http_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<&'a str, Agile> {
    match headers.get("x-agile-authorization") {
        Some(v) => v.to_str().map(str::trim).map_err(|_| Agile::bad_token()),
        None => query.ok_or_else(Agile::no_token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rules() {
        let now = Instant::now();
        let s = |expiry| Session {
            root: String::new(),
            login: now,
            expiry,
            expiry_set: false,
        };
        let later = now + Duration::from_secs(100);
        assert!(!s(Expiry::Default).expired(3600, later));
        assert!(
            s(Expiry::Default).expired(100, later),
            "the knob moves issued tokens"
        );
        assert!(s(Expiry::After(100)).expired(3600, later));
        assert!(!s(Expiry::After(101)).expired(3600, later));
        assert!(!s(Expiry::Never).expired(1, later));
        assert!(s(Expiry::Never).expired(0, now), "0 expires every token");
    }

    #[test]
    fn logout_forgets_the_token() {
        let mut all = Sessions::default();
        let t = all.open(String::new(), Expiry::Default);
        assert!(all.caller(&t, 3600).is_some());
        assert!(all.close(&t, 3600));
        assert!(!all.close(&t, 3600));
        assert!(all.caller(&t, 3600).is_none());
    }
}
