//! The `/s3` proxy's gate: it checks the client's presigned SigV4 signature
//! (computed for the testbed's URL, `/s3` prefix included) against the testbed's
//! secret, then signs the request again for the upstream's URL with the upstream's
//! own keys. A signature covers host and path, so a request cannot be forwarded
//! under another prefix as it is (s3-brief §0.9); and the gate being the proxy's,
//! the testbed's secret can change at run time (`PUT /_testbed/secret`), which
//! s3s-fs's keys, read at its start, cannot.
//!
//! Both directions use `rusty_s3::signing::sign`, the public SigV4 presigner the
//! daemon uses too: checking a signature is signing the same canonical request with
//! the same date and comparing. No crypto is written here.
//!
//! Only query-string (presigned) authentication is understood; a request signed in
//! an `Authorization` header is refused, as the testbed's client, dropship, never
//! sends one.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use jiff::Timestamp;
use url::Url;

/// A refusal in S3's words: code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn denied(code: &'static str, message: impl Into<String>) -> Denied {
    Denied {
        code,
        message: message.into(),
    }
}

/// What the client signed, from its query.
#[derive(Debug)]
pub(crate) struct Presigned {
    access_key: String,
    region: String,
    date: Timestamp,
    expires: u64,
    /// Lower-case names, as the client listed them.
    signed_headers: Vec<String>,
    signature: String,
    /// The query without the `X-Amz-*` pairs, decoded.
    pub(crate) rest: Vec<(String, String)>,
}

pub(crate) fn rusty_method(m: &Method) -> Option<rusty_s3::Method> {
    Some(match *m {
        Method::GET => rusty_s3::Method::Get,
        Method::HEAD => rusty_s3::Method::Head,
        Method::PUT => rusty_s3::Method::Put,
        Method::POST => rusty_s3::Method::Post,
        Method::DELETE => rusty_s3::Method::Delete,
        _ => return None,
    })
}

impl Presigned {
    /// The signing fields of a decoded query; a request without them, or signed
    /// another way, is refused.
    pub(crate) fn parse(query: &[(String, String)]) -> Result<Presigned, Denied> {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err(denied(
                "AccessDenied",
                "the testbed's /s3 proxy checks presigned (query string) SigV4 signatures only",
            ));
        }
        let missing = |k: &str| {
            denied(
                "AuthorizationQueryParametersError",
                format!("{k} is missing"),
            )
        };
        let credential = get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?;
        let mut scope = credential.split('/');
        let (Some(access_key), Some(_day), Some(region), Some("s3"), Some("aws4_request"), None) = (
            scope.next(),
            scope.next(),
            scope.next(),
            scope.next(),
            scope.next(),
            scope.next(),
        ) else {
            return Err(denied(
                "AuthorizationQueryParametersError",
                "X-Amz-Credential is not <key>/<date>/<region>/s3/aws4_request",
            ));
        };
        let date = get("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?;
        let date = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
            .ok_or_else(|| {
                denied(
                    "AuthorizationQueryParametersError",
                    "X-Amz-Date is not a date",
                )
            })?;
        let expires = get("X-Amz-Expires")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| missing("X-Amz-Expires"))?;
        let signed_headers = get("X-Amz-SignedHeaders")
            .ok_or_else(|| missing("X-Amz-SignedHeaders"))?
            .split(';')
            .map(str::to_string)
            .collect();
        let signature = get("X-Amz-Signature")
            .ok_or_else(|| missing("X-Amz-Signature"))?
            .to_string();
        let rest = query
            .iter()
            .filter(|(k, _)| !k.starts_with("X-Amz-"))
            .cloned()
            .collect();
        Ok(Presigned {
            access_key: access_key.to_string(),
            region: region.to_string(),
            date,
            expires,
            signed_headers,
            signature,
            rest,
        })
    }

    /// Checks the signature of a request for `url` (as the client addressed it:
    /// scheme, its `Host`, the path as sent) against `access_key` and `secret`.
    pub(crate) fn check(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        access_key: &str,
        secret: &str,
    ) -> Result<(), Denied> {
        if self.access_key != access_key {
            return Err(denied(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            ));
        }
        let age = Timestamp::now().duration_since(self.date);
        if age.as_secs() > i64::try_from(self.expires).unwrap_or(i64::MAX) {
            return Err(denied("AccessDenied", "Request has expired"));
        }
        let method = rusty_method(method)
            .ok_or_else(|| denied("MethodNotAllowed", "the method is not an S3 one"))?;
        let mut signed = Vec::new();
        for name in &self.signed_headers {
            let value = headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    denied(
                        "SignatureDoesNotMatch",
                        format!("signed header {name} is not in the request"),
                    )
                })?;
            signed.push((name.as_str(), value.trim()));
        }
        let expected = rusty_s3::signing::sign(
            &self.date,
            method,
            url.clone(),
            access_key,
            secret,
            None,
            &self.region,
            self.expires,
            self.rest.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signed.iter().copied(),
        );
        let ours = expected
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-Signature")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if ours == self.signature {
            Ok(())
        } else {
            Err(denied(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            ))
        }
    }

    /// The same request presigned for `url` (the upstream's) with its keys, now.
    /// Signed headers other than `host` are signed again with their values.
    pub(crate) fn resign(
        &self,
        method: &Method,
        url: Url,
        headers: &HeaderMap,
        keys: (&str, &str),
    ) -> Option<Url> {
        let method = rusty_method(method)?;
        let signed: Vec<(&str, &str)> = self
            .signed_headers
            .iter()
            .filter(|n| n.as_str() != "host")
            .filter_map(|n| {
                let v = headers.get(n.as_str())?.to_str().ok()?;
                Some((n.as_str(), v.trim()))
            })
            .collect();
        Some(rusty_s3::signing::sign(
            &Timestamp::now(),
            method,
            url,
            keys.0,
            keys.1,
            None,
            &self.region,
            // Long enough for a slow body through the throttle.
            Duration::from_secs(3600).as_secs(),
            self.rest.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signed.iter().copied(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &Url) -> Vec<(String, String)> {
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn presign(secret: &str, key: &str) -> (Url, HeaderMap) {
        let base = Url::parse("http://127.0.0.1:8900/s3/bucket/a%20b.txt").expect("url");
        let url = rusty_s3::signing::sign(
            &Timestamp::now(),
            rusty_s3::Method::Put,
            base,
            key,
            secret,
            None,
            "us-east-1",
            600,
            [("partNumber", "1"), ("uploadId", "u+1")].into_iter(),
            [("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")].into_iter(),
        );
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8900".parse().expect("value"));
        h.insert(
            "content-md5",
            "1B2M2Y8AsgTpgAmY7PhCfg==".parse().expect("value"),
        );
        (url, h)
    }

    #[test]
    fn a_presigned_request_passes_with_its_secret_and_no_other() {
        let (url, headers) = presign("s3cret", "AKID");
        let p = Presigned::parse(&query(&url)).expect("parse");
        assert_eq!(p.rest.len(), 2);
        let mut bare = url.clone();
        bare.set_query(None);
        assert_eq!(
            p.check(&Method::PUT, &bare, &headers, "AKID", "s3cret"),
            Ok(())
        );
        let wrong = p.check(&Method::PUT, &bare, &headers, "AKID", "other");
        assert_eq!(wrong.map_err(|d| d.code), Err("SignatureDoesNotMatch"));
        let key = p.check(&Method::PUT, &bare, &headers, "AKID2", "s3cret");
        assert_eq!(key.map_err(|d| d.code), Err("InvalidAccessKeyId"));
        let method = p.check(&Method::POST, &bare, &headers, "AKID", "s3cret");
        assert_eq!(method.map_err(|d| d.code), Err("SignatureDoesNotMatch"));
        let mut moved = bare.clone();
        moved.set_path("/bucket/a%20b.txt");
        let path = p.check(&Method::PUT, &moved, &headers, "AKID", "s3cret");
        assert_eq!(path.map_err(|d| d.code), Err("SignatureDoesNotMatch"));
        let mut other = headers.clone();
        other.insert(
            "content-md5",
            "AAAAAAAAAAAAAAAAAAAAAA==".parse().expect("value"),
        );
        let md5 = p.check(&Method::PUT, &bare, &other, "AKID", "s3cret");
        assert_eq!(md5.map_err(|d| d.code), Err("SignatureDoesNotMatch"));
    }

    #[test]
    fn a_resigned_request_checks_out_upstream() {
        let (url, headers) = presign("s3cret", "AKID");
        let p = Presigned::parse(&query(&url)).expect("parse");
        let up = Url::parse("http://127.0.0.1:9000/bucket/a%20b.txt").expect("url");
        let resigned = p
            .resign(&Method::PUT, up.clone(), &headers, ("UP", "upstream"))
            .expect("resign");
        let q = Presigned::parse(&query(&resigned)).expect("parse");
        let mut h = headers.clone();
        h.insert("host", "127.0.0.1:9000".parse().expect("value"));
        assert_eq!(q.check(&Method::PUT, &up, &h, "UP", "upstream"), Ok(()));
    }

    #[test]
    fn unsigned_and_malformed_queries_are_refused() {
        assert!(Presigned::parse(&[]).is_err());
        let q = vec![
            (
                "X-Amz-Algorithm".to_string(),
                "AWS4-HMAC-SHA256".to_string(),
            ),
            (
                "X-Amz-Credential".to_string(),
                "AKID/20260101/us-east-1/s3".to_string(),
            ),
        ];
        assert!(Presigned::parse(&q).is_err());
    }
}
