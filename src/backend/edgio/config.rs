//! `[backend] type = "edgio"`: the ingest host, the delivery host verification reads
//! from, the account's user and where its password is read from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::http::check_base_url;
use crate::secret::{Exposure, SecretKeys, SecretSetting, SecretSource};
use crate::units::ByteSize;

/// The default: files up to 64 MiB go in one `/post/raw`.
pub const MULTIPART_ABOVE: u64 = 64 << 20;

const PASSWORD_KEYS: SecretKeys = SecretKeys {
    file: "backend.password_file",
    env: "backend.password_env",
    credential: "backend.password_credential",
    what: "the account's password",
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgioConfig {
    /// The ingest host, `https://<account>.upload.llnw.net`.
    pub upload_url: String,
    /// Where stored objects are read (`HEAD` for verification, `GET` with `Range` for
    /// sampling): `https://<account>.mt.lldns.net/<account>`; the object's path is
    /// appended. Unset: verification asks the ingest host's JSON-RPC `stat`.
    #[serde(default)]
    pub origin_url: Option<String>,
    pub username: String,
    /// File holding the password, re-read when the service refuses a login.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A systemd credential holding it (`LoadCredential=NAME:/path` in the unit):
    /// read from `$CREDENTIALS_DIRECTORY/NAME` at every read.
    #[serde(default)]
    pub password_credential: Option<String>,
    /// Remote folder under the account's root; empty: the root. Created when
    /// missing.
    #[serde(default)]
    pub directory: String,
    /// Files above this size go as a multipart upload; smaller ones in one
    /// `/post/raw`, checked by the server against their SHA-256.
    #[serde(default = "default_multipart_above")]
    pub multipart_above: ByteSize,
    /// Allow plain http to a non-loopback host (a lab proxy). Off: the password
    /// and tokens stay in TLS.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_multipart_above() -> ByteSize {
    ByteSize(MULTIPART_ABOVE)
}

impl EdgioConfig {
    pub fn resolved(mut self, resolve: &dyn Fn(&Path) -> PathBuf) -> EdgioConfig {
        self.password_file = self.password_file.map(|p| resolve(&p));
        self
    }

    fn secret_setting(&self) -> SecretSetting<'_> {
        SecretSetting {
            file: &self.password_file,
            env: &self.password_env,
            credential: &self.password_credential,
        }
    }

    /// The secret file, when others may read or write it.
    pub fn exposure(&self) -> Option<Exposure> {
        self.secret_source().ok()?.exposure(PASSWORD_KEYS.file)
    }

    pub fn secret_source(&self) -> Result<SecretSource, (&'static str, String)> {
        SecretSource::choose_from(self.secret_setting(), &PASSWORD_KEYS, "Edgio")
    }

    /// The remote folder without surrounding slashes ("" for the root).
    pub fn directory(&self) -> &str {
        self.directory.trim_matches('/')
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_base_url(&self.upload_url, self.allow_insecure_http)
            .map_err(|e| ("backend.upload_url", e))?;
        if let Some(origin) = &self.origin_url {
            check_base_url(origin, self.allow_insecure_http)
                .map_err(|e| ("backend.origin_url", e))?;
        }
        if self.username.trim().is_empty() {
            return Err(("backend.username", "must not be empty".into()));
        }
        let dir = self.directory();
        // edgio.md §Conventions: no `..` segments; paths at most 4096 bytes.
        if dir
            .split('/')
            .any(|s| s == "." || s == ".." || (s.is_empty() && !dir.is_empty()))
            || dir.len() > 4000
        {
            return Err((
                "backend.directory",
                format!("{:?} is not a plain folder path", self.directory),
            ));
        }
        if self.multipart_above.0 == 0 {
            return Err(("backend.multipart_above", "must be at least 1 byte".into()));
        }
        self.secret_source().map(|_| ())
    }

    pub fn check_environment(&self) -> Vec<(&'static str, String)> {
        SecretSource::check_from(self.secret_setting(), &PASSWORD_KEYS, "Edgio")
    }
}
