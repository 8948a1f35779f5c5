//! Secrets (tokens, passwords, CIKs): kept out of logs, errors and `status`.
//!
//! `Secret` has no `Display`, its `Debug` prints `Secret(***)`, and only a backend's
//! auth code calls [`Secret::expose`]. Where a secret comes from is configuration
//! (a file, an environment variable or a systemd credential) and may be shown; its
//! value never is.

use std::fmt;
use std::path::{Path, PathBuf};
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

/// The config keys naming a secret's file, variable and systemd credential, and what
/// the secret is.
#[derive(Debug, Clone, Copy)]
pub struct SecretKeys {
    pub file: &'static str,
    pub env: &'static str,
    pub credential: &'static str,
    /// "an access token", "a password".
    pub what: &'static str,
}

/// The bearer-token backends' keys.
pub const TOKEN_KEYS: SecretKeys = SecretKeys {
    file: "backend.token_file",
    env: "backend.token_env",
    credential: "backend.token_credential",
    what: "an access token",
};

/// The variable systemd sets for a unit with `LoadCredential=` (systemd.exec(5),
/// "Credentials"): a private folder holding one file per credential.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// What a backend section sets of its secret's keys; exactly one must be set.
#[derive(Debug, Clone, Copy)]
pub struct SecretSetting<'a> {
    pub file: &'a Option<PathBuf>,
    pub env: &'a Option<String>,
    pub credential: &'a Option<String>,
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret (surrounding whitespace is ignored), so that an
    /// external agent can rotate it: the backend reads it again after a 401.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>`, looked up at each
    /// read (the variable too), so a re-read sees what systemd holds now. `key` is
    /// the config key that named it, for messages.
    Credential { name: String, key: &'static str },
}

/// A secret file that users other than its owner may read, or others may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// The config key naming the file.
    pub key: &'static str,
    pub path: PathBuf,
    /// The file's permission bits.
    pub mode: u32,
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut who = Vec::new();
        if self.mode & 0o004 != 0 {
            who.push("readable by every user");
        }
        if self.mode & 0o020 != 0 {
            who.push("writable by its group");
        }
        if self.mode & 0o002 != 0 {
            who.push("writable by every user");
        }
        write!(
            f,
            "the secret file {} is {} (mode {:04o}): chmod 0600 it, or use {} with systemd's LoadCredential=",
            self.path.display(),
            who.join(" and "),
            self.mode & 0o7777,
            self.key.replace("_file", "_credential")
        )
    }
}

impl SecretSource {
    /// The source configured by a bearer-token backend's `token_file` /
    /// `token_env` / `token_credential`: exactly one of them. `service` names who
    /// needs it, for the message.
    pub fn choose(
        set: SecretSetting<'_>,
        service: &str,
    ) -> Result<SecretSource, (&'static str, String)> {
        Self::choose_from(set, &TOKEN_KEYS, service)
    }

    /// The same for another set of keys (Edgio's `password_*`).
    pub fn choose_from(
        set: SecretSetting<'_>,
        keys: &SecretKeys,
        service: &str,
    ) -> Result<SecretSource, (&'static str, String)> {
        let short = |k: &'static str| k.trim_start_matches("backend.");
        let given: Vec<&'static str> = [
            (set.file.is_some(), keys.file),
            (set.env.is_some(), keys.env),
            (set.credential.is_some(), keys.credential),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
        .collect();
        let all = format!(
            "{}, {} or {}",
            short(keys.file),
            short(keys.env),
            short(keys.credential)
        );
        match (set.file, set.env, set.credential) {
            _ if given.len() > 1 => Err((
                given[1],
                format!(
                    "give only one of {all}; {} are set",
                    given
                        .iter()
                        .map(|k| short(k))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            )),
            (Some(p), _, _) => Ok(SecretSource::File(p.clone())),
            (_, Some(v), _) => Ok(SecretSource::Env(v.clone())),
            (_, _, Some(name)) => {
                credential_name_problem(name).map_or(Ok(()), |why| Err((keys.credential, why)))?;
                Ok(SecretSource::Credential {
                    name: name.clone(),
                    key: keys.credential,
                })
            }
            (None, None, None) => Err((
                keys.file,
                format!("{service} needs {}: set {all}", keys.what),
            )),
        }
    }

    /// Problems of the machine with the configured source: the file unreadable, the
    /// variable unset or empty, no `$CREDENTIALS_DIRECTORY` or no such credential in
    /// it. `(key, why)`.
    pub fn check(set: SecretSetting<'_>, service: &str) -> Vec<(&'static str, String)> {
        Self::check_from(set, &TOKEN_KEYS, service)
    }

    /// [`SecretSource::check`] for another set of keys.
    pub fn check_from(
        set: SecretSetting<'_>,
        keys: &SecretKeys,
        service: &str,
    ) -> Vec<(&'static str, String)> {
        match Self::choose_from(set, keys, service) {
            Ok(source) => match source.load() {
                Ok(_) => Vec::new(),
                Err(e) => vec![(source.key(keys), e)],
            },
            Err(e) => vec![e],
        }
    }

    /// The config key this source came from.
    fn key(&self, keys: &SecretKeys) -> &'static str {
        match self {
            SecretSource::File(_) => keys.file,
            SecretSource::Env(_) => keys.env,
            SecretSource::Credential { key, .. } => key,
        }
    }

    /// A secret file others may read (or write): `key` names the file's config key.
    /// Only plain files are checked: systemd makes a credential readable by the
    /// service alone, and a variable has no mode. `None` when it cannot be read
    /// (the environment check says so).
    pub fn exposure(&self, key: &'static str) -> Option<Exposure> {
        use std::os::unix::fs::PermissionsExt;
        let SecretSource::File(path) = self else {
            return None;
        };
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        // Group-readable is left alone: a `root:dropship 0640` file is the usual way
        // to hand the daemon a secret without LoadCredential=.
        (mode & 0o026 != 0).then(|| Exposure {
            key,
            path: path.clone(),
            mode,
        })
    }

    /// Reads the secret. The error names the source, never the value.
    pub fn load(&self) -> Result<Secret, String> {
        let raw = match self {
            SecretSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the secret file {}: {e}", p.display()))?,
            SecretSource::Env(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} is not set"))?,
            SecretSource::Credential { name, key } => {
                let Some(dir) = std::env::var_os(CREDENTIALS_DIRECTORY) else {
                    return Err(format!(
                        "{key} = {name:?} needs systemd's credentials, but ${CREDENTIALS_DIRECTORY} \
                         is not set: set LoadCredential={name}:/path/to/the/secret in the unit \
                         (or run under systemd-run -p LoadCredential=...)"
                    ));
                };
                let path = Path::new(&dir).join(name);
                std::fs::read_to_string(&path).map_err(|e| {
                    format!(
                        "cannot read the credential {name} ({}): {e}; is LoadCredential={name}:... \
                         in the unit?",
                        path.display()
                    )
                })?
            }
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
            SecretSource::Credential { name, .. } => {
                format!("the systemd credential {name} (LoadCredential=)")
            }
        }
    }
}

/// Why `name` cannot be a credential's name: systemd takes a plain file name
/// (systemd.exec(5): "The credential name must be a valid file name").
fn credential_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        Some(format!(
            "{name:?} is not a credential name (a plain file name)"
        ))
    } else if name.len() > 255 {
        Some("a credential name is at most 255 bytes".into())
    } else {
        None
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

    fn setting<'a>(
        file: &'a Option<PathBuf>,
        env: &'a Option<String>,
        credential: &'a Option<String>,
    ) -> SecretSetting<'a> {
        SecretSetting {
            file,
            env,
            credential,
        }
    }

    #[test]
    fn exactly_one_source_is_chosen_and_the_error_names_a_key() {
        let (f, e, c) = (
            Some(PathBuf::from("/etc/dropship/box-token")),
            Some("BOX_TOKEN".to_string()),
            Some("box-token".to_string()),
        );
        assert_eq!(
            SecretSource::choose(setting(&None, &None, &c), "Box"),
            Ok(SecretSource::Credential {
                name: "box-token".into(),
                key: "backend.token_credential"
            })
        );
        let (key, why) = SecretSource::choose(setting(&None, &e, &c), "Box").expect_err("two");
        assert_eq!(key, "backend.token_credential");
        assert!(
            why.contains("only one of") && why.contains("token_env and token_credential"),
            "{why}"
        );
        let (key, why) = SecretSource::choose(setting(&f, &e, &c), "Box").expect_err("three");
        assert_eq!(key, "backend.token_env");
        assert!(
            why.contains("token_file and token_env and token_credential"),
            "{why}"
        );
        let (key, why) =
            SecretSource::choose(setting(&None, &None, &None), "Box").expect_err("none");
        assert_eq!(key, "backend.token_file");
        assert!(
            why.contains("token_file, token_env or token_credential"),
            "{why}"
        );
        for bad in ["", "..", "a/b", "x\0y"] {
            let (key, _) = SecretSource::choose(setting(&None, &None, &Some(bad.into())), "Box")
                .expect_err(bad);
            assert_eq!(key, "backend.token_credential");
        }
    }

    #[test]
    fn a_file_others_can_read_or_write_is_an_exposure_a_credential_never() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("token");
        std::fs::write(&p, "s3cr3t-value").expect("write");
        let src = SecretSource::File(p.clone());
        for (mode, exposed, says) in [
            (0o600, false, ""),
            (0o640, false, ""),
            (0o644, true, "readable by every user"),
            (0o660, true, "writable by its group"),
            (0o602, true, "writable by every user"),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = src.exposure("backend.token_file");
            assert_eq!(e.is_some(), exposed, "{mode:o}");
            if let Some(e) = e {
                let text = e.to_string();
                assert!(
                    text.contains(says) && text.contains(&p.display().to_string()),
                    "{text}"
                );
                assert!(text.contains(&format!("{mode:04o}")), "{text}");
                assert!(text.contains("backend.token_credential"), "{text}");
                assert!(!text.contains("s3cr3t"), "{text}");
            }
        }
        let cred = SecretSource::Credential {
            name: "box-token".into(),
            key: "backend.token_credential",
        };
        assert_eq!(cred.exposure("backend.token_file"), None);
    }
}
