//! Secrets (tokens, passwords, CIKs): kept out of logs, errors and `status`.
//!
//! `Secret` has no `Display`, its `Debug` prints `Secret(***)`, and only a backend's
//! auth code calls [`Secret::expose`]. Where a secret comes from is configuration
//! (a file or an environment variable) and may be shown; its value never is.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one header or form field that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The config keys naming a secret's file and variable, and what the secret is.
#[derive(Debug, Clone, Copy)]
pub struct SecretKeys {
    pub file: &'static str,
    pub env: &'static str,
    /// "an access token", "a password".
    pub what: &'static str,
}

/// The bearer-token backends' pair.
pub const TOKEN_KEYS: SecretKeys = SecretKeys {
    file: "backend.token_file",
    env: "backend.token_env",
    what: "an access token",
};

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret (surrounding whitespace is ignored), so that an
    /// external agent can rotate it: the backend reads it again after a 401.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl SecretSource {
    /// The source configured by a backend's `token_file` / `token_env` pair:
    /// exactly one of them. `service` names who needs it, for the message.
    pub fn choose(
        file: &Option<PathBuf>,
        env: &Option<String>,
        service: &str,
    ) -> Result<SecretSource, (&'static str, String)> {
        Self::choose_from(file, env, &TOKEN_KEYS, service)
    }

    /// The same for another pair of keys (Edgio's `password_file` /
    /// `password_env`).
    pub fn choose_from(
        file: &Option<PathBuf>,
        env: &Option<String>,
        keys: &SecretKeys,
        service: &str,
    ) -> Result<SecretSource, (&'static str, String)> {
        let (f, e) = (keys.file, keys.env);
        let short = |k: &'static str| k.trim_start_matches("backend.");
        match (file, env) {
            (Some(p), None) => Ok(SecretSource::File(p.clone())),
            (None, Some(v)) => Ok(SecretSource::Env(v.clone())),
            (Some(_), Some(_)) => Err((f, format!("give {} or {}, not both", short(f), short(e)))),
            (None, None) => Err((
                f,
                format!(
                    "{service} needs {}: set {} or {}",
                    keys.what,
                    short(f),
                    short(e)
                ),
            )),
        }
    }

    /// Problems of the machine with that pair: the file unreadable, the variable
    /// unset or empty. `(key, why)`.
    pub fn check(
        file: &Option<PathBuf>,
        env: &Option<String>,
        service: &str,
    ) -> Vec<(&'static str, String)> {
        Self::check_from(file, env, &TOKEN_KEYS, service)
    }

    /// [`SecretSource::check`] for another pair of keys.
    pub fn check_from(
        file: &Option<PathBuf>,
        env: &Option<String>,
        keys: &SecretKeys,
        service: &str,
    ) -> Vec<(&'static str, String)> {
        match Self::choose_from(file, env, keys, service).map(|s| s.load()) {
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(e)) => vec![(if file.is_some() { keys.file } else { keys.env }, e)],
            Err(e) => vec![e],
        }
    }

    /// Reads the secret. The error names the source, never the value.
    pub fn load(&self) -> Result<Secret, String> {
        let raw = match self {
            SecretSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the secret file {}: {e}", p.display()))?,
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set"))?,
        };
        let value = raw.trim();
        if value.is_empty() {
            return Err(format!("{} is empty", self.describe()));
        }
        Ok(Secret::new(value))
    }

    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(p) => format!("the secret file {}", p.display()),
            SecretSource::Env(var) => format!("the environment variable {var}"),
        }
    }
}

/// Replaces every occurrence of the secrets in `text` (a server's error body may
/// echo a request) and truncates it to a size fit for a log line.
pub fn redact(text: &str, secrets: &[&Secret]) -> String {
    const MAX: usize = 400;
    let mut out = text.to_string();
    for s in secrets {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "***");
        }
    }
    let out = out.trim();
    if out.len() > MAX {
        let mut end = MAX;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &out[..end])
    } else {
        out.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redact_masks_and_truncates() {
        let s = Secret::new("tok123");
        assert_eq!(redact("bad token tok123!", &[&s]), "bad token ***!");
        let long = "é".repeat(500);
        let r = redact(&long, &[]);
        assert!(r.chars().count() <= 401 && r.ends_with('…'));
    }

    #[test]
    fn sources_name_themselves_not_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("token");
        std::fs::write(&p, "  abc\n").expect("write");
        assert_eq!(
            SecretSource::File(p.clone())
                .load()
                .map(|s| s.expose().to_string()),
            Ok("abc".into())
        );
        std::fs::write(&p, "\n").expect("write");
        let e = SecretSource::File(p).load().expect_err("empty");
        assert!(e.contains("is empty"));
        let e = SecretSource::Env("DROPSHIP_SURELY_UNSET_VAR".into())
            .load()
            .expect_err("unset");
        assert!(e.contains("DROPSHIP_SURELY_UNSET_VAR"));
    }
}
