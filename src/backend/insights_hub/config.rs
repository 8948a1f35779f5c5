//! `[backend] type = "insights-hub"`: where the IoT File Service is, which asset the
//! files belong to, and where the token is read from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::http::check_base_url;
use crate::secret::{Exposure, SecretSetting, SecretSource, TOKEN_KEYS};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightsHubConfig {
    /// The region's gateway, e.g. `https://gateway.eu1.mindsphere.io`; the API is
    /// under `/api/iotfile/v3` of it.
    pub gateway_url: String,
    /// The asset the files belong to: 32 lowercase hex characters.
    pub entity_id: String,
    /// File holding the bearer token (a technical-user or agent token with scope
    /// `iot.fil.w`, and `iot.fil.r` for verification); re-read after a 401.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A systemd credential holding it (`LoadCredential=NAME:/path` in the unit):
    /// read from `$CREDENTIALS_DIRECTORY/NAME` at every read.
    #[serde(default)]
    pub token_credential: Option<String>,
    /// Remote folder under the asset; empty: the asset's root.
    #[serde(default)]
    pub directory: String,
    /// Allow plain http to a non-loopback host (a lab proxy). Off: tokens stay in TLS.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

impl InsightsHubConfig {
    pub fn resolved(mut self, resolve: &dyn Fn(&Path) -> PathBuf) -> InsightsHubConfig {
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
        SecretSource::choose(self.secret_setting(), "Insights Hub")
    }

    /// The remote folder without surrounding slashes ("" for the asset's root).
    pub fn directory(&self) -> &str {
        self.directory.trim_matches('/')
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_base_url(&self.gateway_url, self.allow_insecure_http)
            .map_err(|e| ("backend.gateway_url", e))?;
        // insights-hub.md §Hosts and auth: `[a-f0-9]{32}`.
        if self.entity_id.len() != 32
            || !self
                .entity_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err((
                "backend.entity_id",
                format!(
                    "{:?} is not an asset id (32 lowercase hex characters)",
                    self.entity_id
                ),
            ));
        }
        if self
            .directory()
            .split('/')
            .any(|s| s == "." || s == ".." || (s.is_empty() && !self.directory().is_empty()))
        {
            return Err((
                "backend.directory",
                format!("{:?} is not a plain folder path", self.directory),
            ));
        }
        self.secret_source().map(|_| ())
    }

    pub fn check_environment(&self) -> Vec<(&'static str, String)> {
        SecretSource::check(self.secret_setting(), "Insights Hub")
    }
}
