//! Presigned URLs (SigV4 in the query string, `UNSIGNED-PAYLOAD`) through
//! rusty-s3's `signing::sign`, and the object keys they name.
//!
//! Invariants:
//! - A presigned URL carries the access key id and a signature that is a bearer
//!   credential until it expires: it is never logged, never put in an error (use
//!   [`redacted`]), and is made just before its request is sent (a part queued
//!   longer than [`EXPIRES`] would get 403 "Request has expired", s3-brief §3).
//! - Every header sent that the server must check (`content-md5`) is signed.

use std::sync::RwLock;

use reqwest::Url;
use rusty_s3::{Bucket, UrlStyle};

use crate::secret::Secret;

/// How long a presigned URL is valid. A request is signed just before it is sent,
/// so this only needs to cover the request's start; 15 minutes leaves room for a
/// clock a little behind.
pub const EXPIRES: u64 = 15 * 60;

/// The key pair in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
}

/// Builds presigned URLs for one bucket.
pub struct Signer {
    bucket: Bucket,
    /// Objects go under `prefix/`; empty: the bucket's root.
    prefix: String,
    keys: RwLock<Keys>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("bucket", &self.bucket.name())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(
        endpoint: &str,
        path_style: bool,
        bucket: &str,
        region: &str,
        prefix: &str,
        keys: Keys,
    ) -> Result<Signer, String> {
        let url = Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
        let style = if path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(url, style, bucket.to_string(), region.to_string())
            .map_err(|e| format!("bucket {bucket:?} at {endpoint}: {e}"))?;
        Ok(Signer {
            bucket,
            prefix: prefix.trim_matches('/').to_string(),
            keys: RwLock::new(keys),
        })
    }

    /// The object key of a file key: `prefix/key`.
    pub fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// The object's URL, unsigned (the path percent-encoded by rusty-s3).
    pub fn object_url(&self, object_key: &str) -> Url {
        self.bucket.object_url(object_key)
    }

    pub fn keys(&self) -> Keys {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `keys` in use; `true` when they differ from those in use.
    pub fn replace_keys(&self, keys: Keys) -> bool {
        let mut slot = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if *slot == keys {
            return false;
        }
        *slot = keys;
        true
    }

    /// A presigned URL for `method` on `object_key` with `query` (unsorted) and the
    /// `headers` the request will carry (names lowercase), signed with `keys`.
    pub fn presign(
        &self,
        keys: &Keys,
        method: rusty_s3::Method,
        object_key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Url {
        let mut q = query.to_vec();
        q.sort_unstable();
        let mut h = headers.to_vec();
        h.sort_unstable();
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            self.object_url(object_key),
            keys.access_key_id.expose(),
            keys.secret_access_key.expose(),
            None,
            self.bucket.region(),
            EXPIRES,
            q.into_iter(),
            h.into_iter(),
        )
    }
}

/// A URL fit for a message: scheme, host and path, the query (credential and
/// signature) dropped.
pub fn redacted(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            access_key_id: Secret::new("AKIDTEST"),
            secret_access_key: Secret::new("SECRETTEST"),
        }
    }

    #[test]
    fn s3_urls_path_style_and_virtual_hosted() {
        let path = Signer::new(
            "http://127.0.0.1:9000",
            true,
            "dropship",
            "us-east-1",
            "/site/",
            keys(),
        )
        .expect("signer");
        assert_eq!(path.object_key("cam/a b.jpg"), "site/cam/a b.jpg");
        assert_eq!(
            path.object_url(&path.object_key("cam/a b.jpg")).as_str(),
            "http://127.0.0.1:9000/dropship/site/cam/a%20b.jpg"
        );
        let vhost = Signer::new(
            "https://s3.eu-west-1.amazonaws.com",
            false,
            "dropship",
            "eu-west-1",
            "",
            keys(),
        )
        .expect("signer");
        assert_eq!(vhost.object_key("x/y.bin"), "x/y.bin");
        assert_eq!(
            vhost.object_url("x/y.bin").as_str(),
            "https://dropship.s3.eu-west-1.amazonaws.com/x/y.bin"
        );
        // rusty-s3 refuses a virtual-hosted bucket on an IP address.
        assert!(
            Signer::new(
                "http://127.0.0.1:9000",
                false,
                "dropship",
                "us-east-1",
                "",
                keys()
            )
            .is_err()
        );
    }

    #[test]
    fn s3_presigned_urls_carry_query_and_signed_headers_and_redact() {
        let s = Signer::new(
            "http://127.0.0.1:9000",
            true,
            "dropship",
            "us-east-1",
            "",
            keys(),
        )
        .expect("signer");
        let url = s.presign(
            &s.keys(),
            rusty_s3::Method::Put,
            "k",
            &[("uploadId", "abc"), ("partNumber", "2")],
            &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
        );
        let q = url.query().expect("query");
        assert!(q.starts_with("X-Amz-Algorithm=AWS4-HMAC-SHA256"), "{q}");
        assert!(q.contains("partNumber=2") && q.contains("uploadId=abc"));
        assert!(q.contains("X-Amz-SignedHeaders=content-md5%3Bhost"), "{q}");
        assert!(q.contains("X-Amz-Signature="));
        let shown = redacted(&url);
        assert_eq!(shown, "http://127.0.0.1:9000/dropship/k");
        assert!(!shown.contains("AKIDTEST") && !shown.contains("Signature"));
        assert!(!format!("{s:?}").contains("SECRETTEST"));
    }
}
