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
        match (file, env) {
            (Some(f), None) => Ok(SecretSource::File(f.clone())),
            (None, Some(v)) => Ok(SecretSource::Env(v.clone())),
            (Some(_), Some(_)) => Err((
                "backend.token_file",
                "give token_file or token_env, not both".into(),
            )),
            (None, None) => Err((
                "backend.token_file",
                format!("{service} needs an access token: set token_file or token_env"),
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
        match Self::choose(file, env, service).map(|s| s.load()) {
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(e)) => vec![(
                if file.is_some() {
                    "backend.token_file"
                } else {
                    "backend.token_env"
                },
                e,
            )],
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
