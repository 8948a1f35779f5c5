//! Amazon S3 and the servers that speak its API (MinIO, Garage, s3s-fs): single
//! PutObject for files up to `multipart_above`, multipart uploads above it.
//!
//! The service's ways, and how they map onto the seam:
//! - Every request goes to a presigned URL (SigV4 in the query, `UNSIGNED-PAYLOAD`,
//!   see `sign.rs`); integrity rests on `Content-MD5`, which AWS checks on both
//!   PutObject and UploadPart. s3s-fs checks it on PutObject only (s3-brief §0.4),
//!   so a part's answered ETag (its MD5) is compared here as well.
//! - `begin` is CreateMultipartUpload; the session id is the upload id and the
//!   object key rides in `Session::extra`, since abort and resume need it.
//! - Parts are numbered from 1, 5 MiB to 5 GiB, at most 10,000 per upload (AWS
//!   quick facts); the engine grows the part size of bigger files.
//! - Resume lists the parts (ListParts, paged at 1000 on AWS): the server's list
//!   wins. s3s-fs lists them unsorted, without ETags and without paging, and answers
//!   an unknown upload id with an empty list (s3-brief §0.2): an empty list is not
//!   proof that the upload exists; the next UploadPart finds out.
//! - Verify: HeadObject's size and ETag. A single PutObject's ETag is the MD5 of the
//!   body; a multipart object's is `hex(MD5(md5₁‖…‖md5ₙ))-N` (s3-brief §4), computed
//!   from the parts' receipts by [`Backend::expected_digest`]. Objects encrypted
//!   with SSE-KMS/SSE-C have other ETags: not handled yet.
//! - Refusals are read by `<Code>` before status: 403 is credentials for
//!   SignatureDoesNotMatch/InvalidAccessKeyId/NotSignedUp, but a lost upload on
//!   s3s-fs, which answers AccessDenied where AWS answers 404 NoSuchUpload.

mod config;
mod sign;
mod xml;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use md5::Digest as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

pub use self::config::S3Config;
pub use self::sign::redacted;

use self::sign::{Keys, Signer};
use super::http::{self, check_base_url, from_status, retry_after};
use super::{
    Addressing, Backend, BackendError, Capabilities, FileDigests, FileSpec, FinalPart, Op,
    PartBody, PartSizeRule, PartSpec, Progress, Receipt, RemoteObject, RemoteStat, Session,
    Timeouts, part_range,
};
use crate::digest::{Digest, DigestKind};
use crate::secret::{SecretSource, redact};

/// AWS quick facts: parts are at least 5 MiB (all but the last; s3s-fs enforces it
/// at completion, s3-brief §0.6) and at most 5 GiB.
pub const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;
/// AWS quick facts: part numbers 1..=10,000.
const MAX_PARTS: u32 = 10_000;
/// Error documents are a few hundred bytes.
const MAX_ERROR_BODY: usize = 16 << 10;
/// A ListParts page of 1000 parts is about 250 KB.
const MAX_XML_BODY: usize = 2 << 20;
/// ListParts pages one upload may take: 10,000 parts at 1000 a page, and a margin.
const MAX_PAGES: usize = 20;

#[derive(Debug)]
pub struct S3Backend {
    http: reqwest::Client,
    signer: Signer,
    key_source: SecretSource,
    secret_source: SecretSource,
    timeouts: Timeouts,
    /// Files up to this size go in one PutObject.
    single_up_to: u64,
    /// The uplink's rate (bytes/s) as the last long body measured it.
    link_rate: AtomicU64,
}

/// What a multipart session keeps besides its upload id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SessionExtra {
    /// The object key (with the prefix) the upload was created for.
    key: String,
}

/// A request's body.
enum Body<'a> {
    Empty,
    Part(&'a PartBody),
    Xml(String),
}

/// A refusal: status, the `<Error>` document's code and message (redacted).
#[derive(Debug, Clone)]
struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
    retry_after: Option<Duration>,
}

impl Refusal {
    /// The error document's code and message. A HEAD answer has no body, so no
    /// code: its refusals go by status alone.
    fn document(&self) -> String {
        match (self.code.is_empty(), self.message.is_empty()) {
            (true, _) => "(no error document)".into(),
            (false, true) => self.code.clone(),
            (false, false) => format!("{}: {}", self.code, self.message),
        }
    }

    fn describe(&self) -> String {
        format!("HTTP {} {}", self.status, self.document())
    }

    /// The server refused the key pair itself (not what it may do).
    fn credentials(&self) -> bool {
        matches!(
            self.code.as_str(),
            "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "NotSignedUp" | "ExpiredToken"
        )
    }
}

/// The refusal → the engine's next action; the S3 codes first, then the status.
fn classify(op: Op, r: Refusal) -> BackendError {
    let detail = r.describe();
    let upload_op = matches!(op, Op::PutPart | Op::HeldParts | Op::Complete | Op::Abort);
    match r.code.as_str() {
        _ if r.credentials() => BackendError::AuthRefused {
            op,
            detail: format!("the S3 server refused the access key pair: {detail}"),
        },
        // The signature carries the device's time: a person (or NTP) fixes the clock.
        "RequestTimeTooSkewed" => BackendError::AuthRefused {
            op,
            detail: format!("the device's clock is too far from the server's: {detail}"),
        },
        "NoSuchUpload" => BackendError::SessionGone { op, detail },
        // s3s-fs answers an unknown upload id with 403 AccessDenied (s3-brief §0.3).
        // On AWS a policy refusal reads the same; `begin` then meets it too and the
        // engine's credentials gate takes over.
        "AccessDenied" if upload_op => BackendError::SessionGone {
            op,
            detail: format!("the upload id is not known (or not ours): {detail}"),
        },
        // The server holds other parts than the receipts say, or (s3s-fs) dropped
        // the upload id before it refused to assemble it (s3-brief §0.6): start over.
        "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" if op == Op::Complete => {
            BackendError::SessionGone { op, detail }
        }
        // The body arrived other than it left: send it again.
        "BadDigest" | "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout" => {
            BackendError::Retry {
                op,
                after: r.retry_after,
                cause: detail,
            }
        }
        // A refused HEAD carries no error document (the file's first request, the
        // look for identical content, is one): by status alone, 403 is the key pair
        // (or a policy), as AWS documents for HeadObject.
        "" if r.status == StatusCode::FORBIDDEN => BackendError::AuthRefused {
            op,
            detail: format!(
                "the S3 server refused the access key pair (or a bucket policy forbids this): {detail}"
            ),
        },
        "NoSuchBucket" => BackendError::Fatal {
            op,
            status: Some(r.status.as_u16()),
            detail: format!("the bucket does not exist: {detail}"),
        },
        _ => from_status(op, r.status, r.retry_after, r.document()),
    }
}

/// `Content-Type` for the object when the file has one (PutObject and
/// CreateMultipartUpload carry it; S3 answers `binary/octet-stream` otherwise).
fn typed(file: &FileSpec) -> Vec<(&'static str, String)> {
    file.content_type
        .iter()
        .map(|t| ("content-type", t.clone()))
        .collect()
}

/// An ETag header's value without quotes (or `W/`).
fn etag_of(headers: &HeaderMap) -> Option<String> {
    let e = headers.get(ETAG)?.to_str().ok()?.trim();
    let e = e.trim_start_matches("W/").trim_matches('"');
    (!e.is_empty()).then(|| e.to_string())
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest an ETag stands for: an MD5, or (multipart) an MD5 of MD5s with its
/// `-N`. Anything else (SSE-KMS, other servers' schemes) says nothing.
fn etag_digest(etag: &str) -> Option<Digest> {
    let (md5, parts) = match etag.split_once('-') {
        Some((m, n)) => (m, Some(n)),
        None => (etag, None),
    };
    let parts_ok = parts.is_none_or(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
    (is_md5_hex(md5) && parts_ok).then(|| Digest::from_hex(DigestKind::Md5, etag))
}

/// `hex(MD5(md5₁‖…‖md5ₙ))-N`: the ETag S3 gives a multipart object (s3-brief §4).
pub fn multipart_etag(part_md5s: &[Digest]) -> Option<Digest> {
    let mut h = md5::Md5::new();
    for d in part_md5s {
        if d.kind != DigestKind::Md5 || !is_md5_hex(&d.hex) {
            return None;
        }
        h.update(d.bytes());
    }
    let hex = Digest::from_bytes(DigestKind::Md5, &h.finalize()).hex;
    Some(Digest::from_hex(
        DigestKind::Md5,
        &format!("{hex}-{}", part_md5s.len()),
    ))
}

fn rusty_method(m: &Method) -> rusty_s3::Method {
    match *m {
        Method::PUT => rusty_s3::Method::Put,
        Method::POST => rusty_s3::Method::Post,
        Method::DELETE => rusty_s3::Method::Delete,
        Method::HEAD => rusty_s3::Method::Head,
        _ => rusty_s3::Method::Get,
    }
}

impl S3Backend {
    pub fn new(cfg: &S3Config, timeouts: Timeouts) -> Result<S3Backend, BackendError> {
        cfg.validate()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let endpoint = check_base_url(&cfg.endpoint(), cfg.allow_insecure_http)
            .map_err(BackendError::config)?;
        let key_source = cfg
            .key_source()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let secret_source = cfg
            .secret_source()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let keys = load_keys(&key_source, &secret_source).map_err(BackendError::config)?;
        let signer = Signer::new(
            &endpoint,
            cfg.path_style(),
            &cfg.bucket,
            &cfg.region,
            cfg.prefix(),
            keys,
        )
        .map_err(BackendError::config)?;
        Ok(S3Backend {
            http: http::client(timeouts)?,
            signer,
            key_source,
            secret_source,
            timeouts,
            single_up_to: cfg.multipart_above(),
            link_rate: AtomicU64::new(0),
        })
    }

    /// Signs and sends one request; on a refusal of the key pair, re-reads it once
    /// and sends again if it changed. `headers` are signed too.
    async fn send(
        &self,
        op: Op,
        method: Method,
        object_key: &str,
        query: &[(&str, &str)],
        headers: &[(&'static str, String)],
        body: Body<'_>,
    ) -> Result<Result<Response, Refusal>, BackendError> {
        let mut reloaded = false;
        loop {
            let keys = self.signer.keys();
            let signed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            // The URL carries the signature: it goes to reqwest and nowhere else.
            let url = self
                .signer
                .presign(&keys, rusty_method(&method), object_key, query, &signed);
            let progress = match body {
                Body::Part(_) => Progress::with_rate_hint(self.link_rate.load(Ordering::Relaxed)),
                _ => Progress::without_body(),
            };
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            req = match &body {
                Body::Empty if method == Method::GET || method == Method::HEAD => req,
                Body::Empty => req.header(CONTENT_LENGTH, 0).body(Vec::new()),
                Body::Part(b) => {
                    req.header(CONTENT_LENGTH, b.len())
                        .body(reqwest::Body::wrap_stream(
                            (*b).clone().into_stream(progress.clone()),
                        ))
                }
                Body::Xml(x) => req.header(CONTENT_TYPE, "application/xml").body(x.clone()),
            };
            let resp = http::send(op, req, &progress, self.timeouts).await;
            if let Some(rate) = progress.measured_rate() {
                self.link_rate.store(rate, Ordering::Relaxed);
            }
            let resp = resp?;
            if resp.status().is_success() {
                return Ok(Ok(resp));
            }
            let refusal = self.refusal(op, resp, &keys).await?;
            if refusal.credentials() && !reloaded && self.reload_credentials() {
                reloaded = true;
                continue;
            }
            return Ok(Err(refusal));
        }
    }

    async fn refusal(&self, op: Op, resp: Response, keys: &Keys) -> Result<Refusal, BackendError> {
        let status = resp.status();
        let after = retry_after(resp.headers());
        let bytes = http::read_body(op, resp, MAX_ERROR_BODY, self.timeouts.answer).await?;
        let text = String::from_utf8_lossy(&bytes);
        let e = xml::error(&text).unwrap_or_default();
        let secrets = [&keys.secret_access_key];
        Ok(Refusal {
            status,
            code: redact(&e.code, &secrets),
            message: redact(&e.message, &secrets),
            retry_after: after,
        })
    }

    /// A 2xx answer's XML body.
    async fn xml(&self, op: Op, resp: Response) -> Result<String, BackendError> {
        let bytes = http::read_body(op, resp, MAX_XML_BODY, self.timeouts.answer).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn extra(session: &Session) -> Result<SessionExtra, BackendError> {
        serde_json::from_value::<SessionExtra>(session.extra.clone())
            .ok()
            .filter(|e| !e.key.is_empty())
            .ok_or_else(|| BackendError::SessionGone {
                op: Op::PutPart,
                detail: "the recorded session names no object key".into(),
            })
    }

    fn remote(key: &str, etag: Option<String>) -> RemoteObject {
        RemoteObject {
            key: key.to_string(),
            id: None,
            extra: etag.map_or(
                serde_json::Value::Null,
                |e| serde_json::json!({ "etag": e }),
            ),
        }
    }
}

/// The key pair from its two sources; the error names a source, never a value.
fn load_keys(key: &SecretSource, secret: &SecretSource) -> Result<Keys, String> {
    Ok(Keys {
        access_key_id: key.load()?,
        secret_access_key: secret.load()?,
    })
}

/// A part's ETag as a receipt keeps it: the digest when it is an MD5.
fn receipt(index: u32, offset: u64, length: u64, etag: Option<String>) -> Receipt {
    Receipt {
        index,
        offset,
        length,
        digest: etag
            .as_deref()
            .filter(|e| is_md5_hex(e))
            .map(|e| Digest::from_hex(DigestKind::Md5, e)),
        extra: etag.map_or(
            serde_json::Value::Null,
            |e| serde_json::json!({ "etag": e }),
        ),
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            addressing: Addressing::PartNumber { first: 1 },
            part_size: PartSizeRule::Chosen {
                min: MIN_PART,
                max: MAX_PART,
            },
            max_parts: Some(MAX_PARTS),
            parallel_parts: true,
            lists_held_parts: true,
            // The part's MD5: its Content-MD5 and, on AWS and s3s-fs, its ETag.
            part_digest: Some(DigestKind::Md5),
            // A single PutObject's ETag; a multipart one's is built from the parts'.
            object_digest: Some(DigestKind::Md5),
            single_request_below: self.single_up_to.saturating_add(1),
            last_part_on_complete: false,
            ranged_reads: false,
            request_deadline: None,
            asynchronous_join: false,
            object_digest_from_parts: true,
        }
    }

    async fn put_single(
        &self,
        file: &FileSpec,
        body: PartBody,
        digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::PutSingle;
        let md5 = [&digests.part, &digests.object]
            .into_iter()
            .flatten()
            .find(|d| d.kind == DigestKind::Md5);
        let mut headers = typed(file);
        if let Some(d) = md5 {
            headers.push(("content-md5", d.base64()));
        }
        let key = self.signer.object_key(&file.key);
        match self
            .send(op, Method::PUT, &key, &[], &headers, Body::Part(&body))
            .await?
        {
            Ok(resp) => Ok(Self::remote(&file.key, etag_of(resp.headers()))),
            Err(r) => Err(classify(op, r)),
        }
    }

    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError> {
        let op = Op::Begin;
        let key = self.signer.object_key(&file.key);
        let resp = match self
            .send(
                op,
                Method::POST,
                &key,
                &[("uploads", "")],
                &typed(file),
                Body::Empty,
            )
            .await?
        {
            Ok(resp) => resp,
            Err(r) => return Err(classify(op, r)),
        };
        let doc = self.xml(op, resp).await?;
        let id = xml::upload_id(&doc).map_err(|cause| BackendError::Retry {
            // A 2xx that is not the documented XML: a proxy or a truncated answer.
            op,
            after: None,
            cause,
        })?;
        Ok(Session {
            id,
            part_size: None,
            extra: serde_json::to_value(SessionExtra { key }).unwrap_or_default(),
        })
    }

    async fn put_part(
        &self,
        session: &Session,
        part: &PartSpec,
        body: PartBody,
    ) -> Result<Receipt, BackendError> {
        let op = Op::PutPart;
        let key = Self::extra(session)?.key;
        let number = part.number(1).to_string();
        let md5 = part.digest.as_ref().filter(|d| d.kind == DigestKind::Md5);
        let headers: Vec<(&'static str, String)> = md5
            .map(|d| vec![("content-md5", d.base64())])
            .unwrap_or_default();
        let resp = match self
            .send(
                op,
                Method::PUT,
                &key,
                &[("partNumber", &number), ("uploadId", &session.id)],
                &headers,
                Body::Part(&body),
            )
            .await?
        {
            Ok(resp) => resp,
            Err(r) => return Err(classify(op, r)),
        };
        let etag = etag_of(resp.headers());
        // s3s-fs ignores Content-MD5 on UploadPart (s3-brief §0.4); its ETag is the
        // MD5 it stored, so a part that arrived other than it left shows here.
        if let (Some(sent), Some(got)) = (md5, etag.as_deref().filter(|e| is_md5_hex(e)))
            && !sent.hex.eq_ignore_ascii_case(got)
        {
            return Err(BackendError::Retry {
                op,
                after: None,
                cause: format!(
                    "part {number} arrived with MD5 {got}, it left with {}",
                    sent.hex
                ),
            });
        }
        Ok(receipt(part.index, part.offset, part.length, etag))
    }

    async fn held_parts(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError> {
        let op = Op::HeldParts;
        let Some(ps) = session.part_size.filter(|&p| p > 0) else {
            // No part size recorded: numbers cannot be mapped to ranges.
            return Ok(None);
        };
        let key = Self::extra(session)?.key;
        let mut held = Vec::new();
        let mut marker: Option<u32> = None;
        for _ in 0..MAX_PAGES {
            let m = marker.map(|m| m.to_string());
            let mut query = vec![("uploadId", session.id.as_str())];
            if let Some(m) = m.as_deref() {
                query.push(("part-number-marker", m));
            }
            let resp = match self
                .send(op, Method::GET, &key, &query, &[], Body::Empty)
                .await?
            {
                Ok(resp) => resp,
                Err(r) => return Err(classify(op, r)),
            };
            let doc = self.xml(op, resp).await?;
            let page = xml::list_parts(&doc).map_err(|cause| BackendError::Retry {
                op,
                after: None,
                cause,
            })?;
            for p in page.parts {
                // Part 0 is taken by s3s-fs (s3-brief §2) but never sent by us.
                let Some(index) = p.number.checked_sub(1) else {
                    continue;
                };
                let Some((offset, length)) = part_range(file.size, ps, index) else {
                    continue;
                };
                // A part of another size is not ours: it is sent again (and replaced).
                if p.size == length {
                    held.push(receipt(index, offset, length, p.etag));
                }
            }
            match page.next_marker {
                // A marker that does not advance would loop forever.
                Some(next) if marker.is_none_or(|m| next > m) => marker = Some(next),
                _ => return Ok(Some(held)),
            }
        }
        Err(BackendError::Retry {
            op,
            after: None,
            cause: format!("ListParts gave more than {MAX_PAGES} pages"),
        })
    }

    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        parts: &[Receipt],
        _last: Option<FinalPart>,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::Complete;
        let key = Self::extra(session)?.key;
        let listed: Vec<(u32, String)> = parts
            .iter()
            .map(|p| {
                let etag = p
                    .extra
                    .get("etag")
                    .and_then(|e| e.as_str())
                    .map(str::to_string)
                    .or_else(|| p.digest.as_ref().map(|d| d.hex.clone()))
                    .unwrap_or_default();
                (p.index + 1, etag)
            })
            .collect();
        let resp = match self
            .send(
                op,
                Method::POST,
                &key,
                &[("uploadId", &session.id)],
                &[],
                Body::Xml(xml::complete_body(&listed)),
            )
            .await?
        {
            Ok(resp) => resp,
            Err(r) => return Err(classify(op, r)),
        };
        let status = resp.status();
        let doc = self.xml(op, resp).await?;
        match xml::completed(&doc) {
            Ok(etag) => Ok(Self::remote(&file.key, etag)),
            // AWS may answer 200 and then an `<Error>` (s3 docs, CompleteMultipartUpload).
            Err(e) => Err(classify(
                op,
                Refusal {
                    status: if e.code.is_empty() {
                        StatusCode::BAD_GATEWAY
                    } else {
                        status
                    },
                    code: e.code,
                    message: e.message,
                    retry_after: None,
                },
            )),
        }
    }

    async fn abort(&self, session: &Session) -> Result<(), BackendError> {
        let op = Op::Abort;
        let Ok(extra) = Self::extra(session) else {
            return Ok(());
        };
        match self
            .send(
                op,
                Method::DELETE,
                &extra.key,
                &[("uploadId", &session.id)],
                &[],
                Body::Empty,
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(r) if r.status == StatusCode::NOT_FOUND => Ok(()),
            Err(r) => match classify(op, r) {
                // Gone already: what abort wanted.
                BackendError::SessionGone { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn stat(
        &self,
        key: &str,
        _known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError> {
        let op = Op::Stat;
        let object = self.signer.object_key(key);
        let resp = match self
            .send(op, Method::HEAD, &object, &[], &[], Body::Empty)
            .await?
        {
            Ok(resp) => resp,
            Err(r) if r.status == StatusCode::NOT_FOUND => return Ok(None),
            Err(r) => return Err(classify(op, r)),
        };
        // The header, not `content_length()`: a HEAD answer has no body to size.
        let size = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| BackendError::Retry {
                op,
                after: None,
                cause: "HeadObject answered without a Content-Length".into(),
            })?;
        Ok(Some(RemoteStat {
            size,
            digest: etag_of(resp.headers()).as_deref().and_then(etag_digest),
        }))
    }

    /// A multipart object's ETag is the MD5 of its parts' MD5s; a single
    /// PutObject's (whose receipt holds no digest) is the file's MD5.
    fn expected_digest(&self, digests: &FileDigests, parts: &[Receipt]) -> Option<Digest> {
        let md5s: Option<Vec<Digest>> = parts.iter().map(|p| p.digest.clone()).collect();
        match md5s {
            Some(m) if !m.is_empty() => multipart_etag(&m),
            _ => digests.object.clone(),
        }
    }

    /// ListMultipartUploads under each unrecorded key; every upload of exactly that
    /// key that the journal does not hold is aborted. Only keys this daemon was
    /// beginning are looked at: other writers' uploads under the same prefix (other
    /// devices sharing a bucket) are none of its business.
    async fn sweep(&self, known: &[Session], unrecorded: &[String]) -> Result<u64, BackendError> {
        let op = Op::Sweep;
        let mut aborted = 0;
        for file_key in unrecorded {
            let key = self.signer.object_key(file_key);
            let mut marker: Option<(String, String)> = None;
            for _ in 0..MAX_PAGES {
                let mut query = vec![("uploads", ""), ("prefix", key.as_str())];
                if let Some((k, id)) = &marker {
                    query.push(("key-marker", k.as_str()));
                    query.push(("upload-id-marker", id.as_str()));
                }
                let resp = match self
                    .send(op, Method::GET, "", &query, &[], Body::Empty)
                    .await?
                {
                    Ok(resp) => resp,
                    // s3s-fs (s3-brief §0.1): nothing can be found, so nothing is
                    // kept to look for again; a lifecycle rule is the remedy.
                    Err(r)
                        if r.code == "NotImplemented"
                            || r.status == StatusCode::NOT_IMPLEMENTED =>
                    {
                        tracing::warn!(
                            refusal = %r.describe(),
                            "the S3 server cannot list multipart uploads: an upload begun \
                             just before a crash stays until a lifecycle rule \
                             (AbortIncompleteMultipartUpload) removes it"
                        );
                        return Ok(aborted);
                    }
                    Err(r) => return Err(classify(op, r)),
                };
                let doc = self.xml(op, resp).await?;
                let page = xml::list_uploads(&doc).map_err(|cause| BackendError::Retry {
                    op,
                    after: None,
                    cause,
                })?;
                for (listed, id) in page.uploads {
                    // The prefix matches longer keys too (`a.log` lists `a.log.1`).
                    if listed != key || known.iter().any(|s| s.id == id) {
                        continue;
                    }
                    let orphan = Session {
                        id,
                        part_size: None,
                        extra: serde_json::to_value(SessionExtra { key: key.clone() })
                            .unwrap_or_default(),
                    };
                    self.abort(&orphan).await?;
                    tracing::info!(key = %file_key, "aborted a multipart upload the journal never recorded");
                    aborted += 1;
                }
                match page.next {
                    Some(next) if marker.as_ref() != Some(&next) => marker = Some(next),
                    _ => break,
                }
            }
        }
        Ok(aborted)
    }

    fn reload_credentials(&self) -> bool {
        match load_keys(&self.key_source, &self.secret_source) {
            Ok(keys) => self.signer.replace_keys(keys),
            Err(_) => false,
        }
    }

    async fn reread_credentials(&self) -> Result<bool, BackendError> {
        let keys =
            load_keys(&self.key_source, &self.secret_source).map_err(BackendError::config)?;
        Ok(self.signer.replace_keys(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, code: &str) -> Refusal {
        Refusal {
            status: StatusCode::from_u16(status).expect("status"),
            code: code.into(),
            message: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn s3_refusals_map_by_code_then_status() {
        let c = |op, s, code| classify(op, refusal(s, code));
        for code in ["SignatureDoesNotMatch", "InvalidAccessKeyId", "NotSignedUp"] {
            assert!(
                matches!(c(Op::PutPart, 403, code), BackendError::AuthRefused { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            c(Op::PutPart, 404, "NoSuchUpload"),
            BackendError::SessionGone { .. }
        ));
        assert!(matches!(
            c(Op::PutPart, 403, "AccessDenied"),
            BackendError::SessionGone { .. }
        ));
        assert!(matches!(
            c(Op::Complete, 403, "AccessDenied"),
            BackendError::SessionGone { .. }
        ));
        assert!(matches!(
            c(Op::Begin, 403, "AccessDenied"),
            BackendError::AuthRefused { .. }
        ));
        assert!(matches!(
            c(Op::PutPart, 503, "SlowDown"),
            BackendError::Retry { .. }
        ));
        assert!(matches!(c(Op::Stat, 500, ""), BackendError::Retry { .. }));
        assert!(matches!(
            c(Op::PutSingle, 400, "BadDigest"),
            BackendError::Retry { .. }
        ));
        assert!(matches!(
            c(Op::Complete, 400, "EntityTooSmall"),
            BackendError::SessionGone { .. }
        ));
        assert!(matches!(
            c(Op::Begin, 404, "NoSuchBucket"),
            BackendError::Fatal { .. }
        ));
        assert!(matches!(
            c(Op::Begin, 400, "InvalidArgument"),
            BackendError::Fatal { .. }
        ));
    }

    #[test]
    fn s3_multipart_etag_is_md5_of_md5s() {
        // s3-brief §0.6: parts of 5 MiB and 1 MiB+7 gave this ETag; here a
        // self-contained case checked against the definition.
        let p1 = vec![1u8; 10];
        let p2 = vec![2u8; 3];
        let d = |b: &[u8]| Digest::from_bytes(DigestKind::Md5, &md5::Md5::digest(b));
        let mut cat = Vec::new();
        cat.extend_from_slice(&md5::Md5::digest(&p1));
        cat.extend_from_slice(&md5::Md5::digest(&p2));
        let want = format!("{}-2", d(&cat).hex);
        assert_eq!(multipart_etag(&[d(&p1), d(&p2)]).map(|x| x.hex), Some(want));
        assert_eq!(
            etag_digest("ea62d57755f34c46eea7035b29d5fc46-1")
                .map(|x| x.hex)
                .as_deref(),
            Some("ea62d57755f34c46eea7035b29d5fc46-1")
        );
        assert!(etag_digest("ea62d57755f34c46eea7035b29d5fc46-x").is_none());
        assert!(etag_digest("not-an-md5").is_none());
    }
}
