//! `[backend] type = "exosite"`: the product's host, the device token, and the MIME
//! type stored with each content.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::http::check_base_url;
use crate::secret::{Exposure, SecretSetting, SecretSource, TOKEN_KEYS};
use crate::units::ByteSize;

/// exosite.md §Size rules: files up to "100 MB" go in one request. The smaller
/// reading (100,000,000 rather than 104,857,600) is safe against both.
pub const SINGLE_MAX: u64 = 100_000_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExositeConfig {
    /// The product's host, `https://<product_id>.m2.exosite.io`.
    pub url: String,
    /// File holding the device token, sent as `X-Exosite-CIK`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the device token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A systemd credential holding it (`LoadCredential=NAME:/path` in the unit):
    /// read from `$CREDENTIALS_DIRECTORY/NAME` at every read.
    #[serde(default)]
    pub token_credential: Option<String>,
    /// `"auto"`: the MIME type from the file name; anything else is used for every
    /// file.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The older device API's `vendor` and `model` (`/provision/download`): where
    /// both are set, content info and ranged download go there; else to
    /// `/onep:v1/content/<id>`.
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Put before every content id. Ids are shared by every device of a product:
    /// a fleet whose devices upload the same names gives each its own prefix (its
    /// serial number, say), or they overwrite each other's content.
    #[serde(default)]
    pub id_prefix: String,
    /// Largest file sent in one request; bigger ones go in 5 MiB ranges. The
    /// service's limit is "100 MB" in an unstated unit.
    #[serde(default = "default_single_max")]
    pub single_request_max: ByteSize,
    /// Allow plain http to a non-loopback host (a lab proxy). Off: tokens stay in TLS.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_content_type() -> String {
    "auto".into()
}

fn default_single_max() -> ByteSize {
    ByteSize(SINGLE_MAX)
}

impl ExositeConfig {
    pub fn resolved(mut self, resolve: &dyn Fn(&Path) -> PathBuf) -> ExositeConfig {
        self.token_file = self.token_file.map(|p| resolve(&p));
        self
    }

    fn secret_setting(&self) -> SecretSetting<'_> {
        SecretSetting {
            file: &self.token_file,
            env: &self.token_env,
            credential: &self.token_credential,
        }
    }

    /// The secret file, when others may read or write it.
    pub fn exposure(&self) -> Option<Exposure> {
        self.secret_source().ok()?.exposure(TOKEN_KEYS.file)
    }

    pub fn secret_source(&self) -> Result<SecretSource, (&'static str, String)> {
        SecretSource::choose(self.secret_setting(), "Exosite")
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_base_url(&self.url, self.allow_insecure_http).map_err(|e| ("backend.url", e))?;
        let t = &self.content_type;
        if t != "auto" && (t.is_empty() || !t.contains('/') || t.contains(char::is_whitespace)) {
            return Err((
                "backend.content_type",
                format!("{t:?} is not a MIME type (like \"text/csv\") or \"auto\""),
            ));
        }
        // A 413 cannot switch a file to parts (the plan is fixed before it is sent),
        // so the limit must hold under both readings of "100 MB".
        if self.single_request_max.0 > SINGLE_MAX {
            return Err((
                "backend.single_request_max",
                format!("must be at most {SINGLE_MAX} (\"100 MB\" in the smaller reading)"),
            ));
        }
        if self.id_prefix.contains('/') || self.id_prefix.chars().any(char::is_control) {
            return Err((
                "backend.id_prefix",
                format!(
                    "{:?}: a content id may hold no '/' or control character",
                    self.id_prefix
                ),
            ));
        }
        match (&self.vendor, &self.model) {
            (Some(_), None) => {
                return Err(("backend.model", "vendor is set, model is not".into()));
            }
            (None, Some(_)) => {
                return Err(("backend.vendor", "model is set, vendor is not".into()));
            }
            _ => {}
        }
        self.secret_source().map(|_| ())
    }

    pub fn check_environment(&self) -> Vec<(&'static str, String)> {
        SecretSource::check(self.secret_setting(), "Exosite")
    }
}
