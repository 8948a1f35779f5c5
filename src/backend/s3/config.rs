//! `[backend] type = "s3"`: which endpoint and bucket, where objects go under it,
//! and where the access key pair is read from.
//!
//! `path_style` defaults to true when `endpoint` is set (MinIO, Garage, s3s-fs and
//! most self-hosted servers answer path-style on any host, while virtual-hosted
//! needs a wildcard DNS name the device may not have) and to false for AWS's own
//! endpoint (AWS deprecates path-style for new buckets).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::http::check_base_url;
use crate::secret::{Exposure, SecretKeys, SecretSetting, SecretSource};
use crate::units::ByteSize;

/// The access key id's keys. Not a secret by itself, but it names the account and
/// rotates with the secret, so it is read the same way.
pub const ACCESS_KEY_KEYS: SecretKeys = SecretKeys {
    file: "backend.access_key_id_file",
    env: "backend.access_key_id_env",
    credential: "backend.access_key_id_credential",
    what: "an access key id",
};

/// The secret access key's keys.
pub const SECRET_KEY_KEYS: SecretKeys = SecretKeys {
    file: "backend.secret_access_key_file",
    env: "backend.secret_access_key_env",
    credential: "backend.secret_access_key_credential",
    what: "a secret access key",
};

/// S3's single PutObject limit (AWS quick facts: 5 GiB per PUT).
pub const MAX_SINGLE: u64 = 5 << 30;
/// `multipart_above`'s default: one request up to 16 MiB.
const DEFAULT_MULTIPART_ABOVE: u64 = 16 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The service's URL without the bucket, e.g. `http://127.0.0.1:9000`; unset:
    /// AWS's regional endpoint `https://s3.<region>.amazonaws.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The SigV4 signing region; servers other than AWS mostly accept any.
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    /// Folder under the bucket; objects are `<prefix>/<key>`. Empty: the bucket's root.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    #[serde(default)]
    pub access_key_id_credential: Option<String>,
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    #[serde(default)]
    pub secret_access_key_credential: Option<String>,
    /// `https://host/bucket/key` (true) or `https://bucket.host/key` (false).
    /// Default: true with a custom `endpoint`, false for AWS (see the module doc).
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Files bigger than this go as a multipart upload; others in one PutObject.
    #[serde(default)]
    pub multipart_above: Option<ByteSize>,
    /// Allow plain http to a non-loopback host (a lab server). Off: presigned URLs
    /// stay in TLS.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

impl S3Config {
    pub fn resolved(mut self, resolve: &dyn Fn(&Path) -> PathBuf) -> S3Config {
        self.access_key_id_file = self.access_key_id_file.map(|p| resolve(&p));
        self.secret_access_key_file = self.secret_access_key_file.map(|p| resolve(&p));
        self
    }

    /// The endpoint in use (without a trailing `/`).
    pub fn endpoint(&self) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }

    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }

    pub fn multipart_above(&self) -> u64 {
        self.multipart_above
            .map_or(DEFAULT_MULTIPART_ABOVE, |b| b.0)
            .min(MAX_SINGLE)
    }

    /// The prefix without surrounding slashes ("" for the bucket's root).
    pub fn prefix(&self) -> &str {
        self.prefix.trim_matches('/')
    }

    fn key_setting(&self) -> SecretSetting<'_> {
        SecretSetting {
            file: &self.access_key_id_file,
            env: &self.access_key_id_env,
            credential: &self.access_key_id_credential,
        }
    }

    fn secret_setting(&self) -> SecretSetting<'_> {
        SecretSetting {
            file: &self.secret_access_key_file,
            env: &self.secret_access_key_env,
            credential: &self.secret_access_key_credential,
        }
    }

    pub fn key_source(&self) -> Result<SecretSource, (&'static str, String)> {
        SecretSource::choose_from(self.key_setting(), &ACCESS_KEY_KEYS, "S3")
    }

    pub fn secret_source(&self) -> Result<SecretSource, (&'static str, String)> {
        SecretSource::choose_from(self.secret_setting(), &SECRET_KEY_KEYS, "S3")
    }

    /// The secret key's file, when others may read or write it.
    pub fn exposure(&self) -> Option<Exposure> {
        self.secret_source().ok()?.exposure(SECRET_KEY_KEYS.file)
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_base_url(&self.endpoint(), self.allow_insecure_http)
            .map_err(|e| ("backend.endpoint", e))?;
        // AWS bucket naming rules, the part every S3 server shares: 3..63 of
        // lowercase letters, digits, `.` and `-`.
        let b = &self.bucket;
        if b.len() < 3
            || b.len() > 63
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        {
            return Err((
                "backend.bucket",
                format!("{b:?} is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')"),
            ));
        }
        if !self.path_style() && b.contains('.') && self.endpoint().starts_with("https") {
            return Err((
                "backend.path_style",
                format!(
                    "the bucket {b:?} holds a '.', which breaks TLS for virtual-hosted names: set path_style = true"
                ),
            ));
        }
        if self
            .prefix()
            .split('/')
            .any(|s| s == "." || s == ".." || (s.is_empty() && !self.prefix().is_empty()))
        {
            return Err((
                "backend.prefix",
                format!("{:?} is not a plain folder path", self.prefix),
            ));
        }
        if self.multipart_above.is_some_and(|b| b.0 > MAX_SINGLE) {
            return Err((
                "backend.multipart_above",
                "at most 5GiB: S3 takes no bigger PutObject".into(),
            ));
        }
        self.key_source()?;
        self.secret_source().map(|_| ())
    }

    pub fn check_environment(&self) -> Vec<(&'static str, String)> {
        let mut v = SecretSource::check_from(self.key_setting(), &ACCESS_KEY_KEYS, "S3");
        v.extend(SecretSource::check_from(
            self.secret_setting(),
            &SECRET_KEY_KEYS,
            "S3",
        ));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> S3Config {
        toml::from_str(&format!(
            "bucket = \"dropship\"\naccess_key_id_env = \"AK\"\nsecret_access_key_file = \"sk\"\n{extra}"
        ))
        .expect("config")
    }

    #[test]
    fn s3_config_defaults() {
        let c = parse("endpoint = \"http://127.0.0.1:9000/\"");
        assert!(c.path_style());
        assert_eq!(c.endpoint(), "http://127.0.0.1:9000");
        assert_eq!(c.multipart_above(), 16 << 20);
        assert_eq!(c.region, "us-east-1");
        assert!(c.validate().is_ok());
        let aws = parse("region = \"eu-west-1\"");
        assert!(!aws.path_style());
        assert_eq!(aws.endpoint(), "https://s3.eu-west-1.amazonaws.com");
    }

    #[test]
    fn s3_config_refusals() {
        let bad = |extra: &str| parse(extra).validate().expect_err(extra).0;
        assert_eq!(bad("endpoint = \"http://example.org\""), "backend.endpoint");
        assert_eq!(
            bad("endpoint = \"http://127.0.0.1:9\"\nprefix = \"a/../b\""),
            "backend.prefix"
        );
        assert_eq!(
            bad("endpoint = \"http://127.0.0.1:9\"\nmultipart_above = \"6GiB\""),
            "backend.multipart_above"
        );
        assert_eq!(
            bad("endpoint = \"http://127.0.0.1:9\"\naccess_key_id_file = \"x\""),
            "backend.access_key_id_env"
        );
        let e = toml::from_str::<S3Config>("bucket = \"b\"\nbuket = \"x\"").expect_err("typo");
        assert!(e.to_string().contains("buket"), "{e}");
        let named: S3Config = toml::from_str(
            "bucket = \"Bad_Name\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id_env = \"A\"\nsecret_access_key_env = \"S\"",
        )
        .expect("parse");
        assert_eq!(named.validate().expect_err("name").0, "backend.bucket");
    }
}
