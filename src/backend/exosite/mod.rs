//! Exosite device content upload (protocols/exosite.md): one request up to 100 MB
//! (`single_request_max`), ranges of exactly 5 MiB in order above it.
//!
//! The service's ways, and how they map onto the seam:
//! - Upload in parts: `POST /onep:v1/content/` with `{id, length, type}` opens it;
//!   each range is a `PATCH /onep:v1/content/<id>` with `Content-Range` and the
//!   base64 MD5 of its bytes in a header named `MD5`; the upload is complete when
//!   its last byte is accepted. Ranges go one at a time, in order: the service's
//!   only documented mode. Every range but the last is exactly 5 MiB, which both
//!   readings of the size rule ("exactly" and "at least") accept.
//! - The content id is chosen by the device: the file's key, with `/` (which an id
//!   may not hold) and `%` escaped, so that no two keys share an id.
//! - Nothing documents which ranges the service holds. Where the content info of an
//!   unfinished upload says how many bytes arrived (`…,uploading`), resume and
//!   refusals go by it: the server's word wins. Elsewhere resume trusts the
//!   journal's last acknowledged offset, and a 409 on a range is read the one way
//!   it can arise when ranges go one at a time: the range's answer was lost and the
//!   server holds it, so the next range goes. If that one is refused too, the server
//!   is elsewhere (expired, reset), and the upload starts again from byte 0
//!   (`SessionGone`), counted in `bytes_sent`. Any other refusal of a range starts
//!   again at once. Verification settles what was inferred.
//! - No checksum of stored content is exposed: `stat` reads the size from the
//!   content info, and verification reads ranges back (ranged download).
//! - A device cannot renew its own token: a refusal waits for an operator to
//!   provision a new one (the credentials gate), saying so.

mod config;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::CONTENT_RANGE;
use reqwest::{Method, Url};

pub use self::config::ExositeConfig;

use super::bearer::{Answer, BearerClient, Refusal, Service, TokenHeader};
use super::http::{check_base_url, from_status};
use super::{
    Addressing, Backend, BackendError, Capabilities, FileDigests, FileSpec, FinalPart, Op,
    PartBody, PartSizeRule, PartSpec, Receipt, RemoteObject, RemoteStat, Session, Timeouts,
    part_range,
};
use crate::digest::DigestKind;

/// exosite.md §Size rules: parts are 5 × 1024 × 1024 bytes.
pub const PART: u64 = 5 << 20;
/// The content info is one short CSV line.
const MAX_INFO_BODY: usize = 16 << 10;

/// exosite.md §Host and auth: the legacy header the vendor's example uses.
const SERVICE: Service = Service {
    name: "Exosite",
    header: TokenHeader::Named("X-Exosite-CIK"),
    renewal: "a device cannot renew its own token: an operator must provision a new one in",
};

#[derive(Debug)]
pub struct ExositeBackend {
    client: BearerClient,
    base: Url,
    /// `None`: the MIME type from each file's name.
    content_type: Option<String>,
    /// `(vendor, model)` of the older device API, where content info and download
    /// are read.
    provision: Option<(String, String)>,
    /// `single_request_max`.
    single_max: u64,
    /// `id_prefix`, before every content id.
    id_prefix: String,
    /// Per session (content id): the offset of the range last taken as held on a
    /// 409 alone. A second such range in a row means the inference was wrong.
    inferred: Mutex<HashMap<String, u64>>,
}

/// What the content info says of an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Info {
    /// Stored content of this size.
    Stored(u64),
    /// An upload in progress, with the bytes received so far.
    Uploading(u64),
}

impl ExositeBackend {
    pub fn new(cfg: &ExositeConfig, timeouts: Timeouts) -> Result<ExositeBackend, BackendError> {
        cfg.validate()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let base =
            check_base_url(&cfg.url, cfg.allow_insecure_http).map_err(BackendError::config)?;
        Ok(ExositeBackend {
            client: BearerClient::open(SERVICE, cfg.secret_source(), timeouts)?,
            base: Url::parse(&base)
                .map_err(|e| BackendError::config(format!("backend.url: {e}")))?,
            content_type: (cfg.content_type != "auto").then(|| cfg.content_type.clone()),
            provision: cfg.vendor.clone().zip(cfg.model.clone()),
            single_max: cfg.single_request_max.0,
            id_prefix: cfg.id_prefix.clone(),
            inferred: Mutex::new(HashMap::new()),
        })
    }

    /// The content info of `id`; `None` if the service has none to give (unknown
    /// id, or an unfinished upload it does not report).
    async fn info(&self, op: Op, id: &str) -> Result<Option<Info>, BackendError> {
        let url = self.read_url(id, true)?;
        match self.send(op, Method::GET, &url, None, &[]).await? {
            Answer::Ok(resp) => {
                let body = self.client.body(op, resp, MAX_INFO_BODY).await?;
                let text = String::from_utf8_lossy(&body);
                let info = parse_info(&text).ok_or_else(|| BackendError::Retry {
                    op,
                    after: None,
                    cause: format!("content info without a size: {:?}", text.trim()),
                })?;
                Ok(Some(info))
            }
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(None),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    fn inferred(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // Poisoning cannot leave the map half-updated: each call inserts or removes
        // one entry.
        self.inferred.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A 409 on a range: the server is not at its offset. Decides whether it holds
    /// the range already (`Ok(true)`), from the progress it reports, else by the
    /// inference in the module comment.
    async fn held_after_conflict(
        &self,
        session: &Session,
        part: &PartSpec,
    ) -> Result<bool, BackendError> {
        let end = part.offset + part.length;
        // Stored content says nothing here: it may be an older version of the id.
        if let Some(Info::Uploading(received)) = self.info(Op::Stat, &session.id).await? {
            return Ok(received >= end);
        }
        // The last range has no next one to prove a guess wrong, and a wrong guess
        // would leave an older version of the id standing: start over instead.
        if part.last {
            return Ok(false);
        }
        let mut inferred = self.inferred();
        let previous = inferred.get(&session.id).copied();
        if previous.is_some_and(|o| o + PART == part.offset) {
            inferred.remove(&session.id);
            return Ok(false);
        }
        inferred.insert(session.id.clone(), part.offset);
        Ok(true)
    }

    /// The content id of a key, under this device's prefix.
    fn id_of(&self, key: &str) -> String {
        format!("{}{}", self.id_prefix, content_id(key))
    }

    /// The file's own type (a rule's, `upload.content_type`), else
    /// `backend.content_type`.
    fn mime(&self, file: &FileSpec) -> String {
        file.content_type
            .clone()
            .or_else(|| self.content_type.clone())
            .unwrap_or_else(|| super::mime::for_name(&file.key).to_string())
    }

    /// `{base}/onep:v1/content/` followed by `id` (if any), the id one segment.
    fn content_url(&self, id: Option<&str>) -> Result<Url, BackendError> {
        let mut url = self.base.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|()| BackendError::Fatal {
                op: Op::Begin,
                status: None,
                detail: format!("{} cannot take a path", self.base),
            })?;
            segs.pop_if_empty()
                .extend(["onep:v1", "content", id.unwrap_or("")]);
        }
        Ok(url)
    }

    /// Where content info (`info`) or the content itself is read.
    fn read_url(&self, id: &str, info: bool) -> Result<Url, BackendError> {
        match &self.provision {
            Some((vendor, model)) => {
                // Under the configured URL's path (the testbed's `/exosite`).
                let mut url = self.base.clone();
                url.path_segments_mut()
                    .map_err(|()| BackendError::Fatal {
                        op: Op::Stat,
                        status: None,
                        detail: format!("{} cannot take a path", self.base),
                    })?
                    .pop_if_empty()
                    .extend(["provision", "download"]);
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("vendor", vendor)
                        .append_pair("model", model)
                        .append_pair("id", id);
                    if info {
                        q.append_pair("info", "true");
                    }
                }
                Ok(url)
            }
            None => {
                let mut url = self.content_url(Some(id))?;
                if info {
                    url.query_pairs_mut().append_pair("info", "true");
                }
                Ok(url)
            }
        }
    }

    async fn send(
        &self,
        op: Op,
        method: Method,
        url: &Url,
        body: Option<&PartBody>,
        headers: &[(&'static str, String)],
    ) -> Result<Answer, BackendError> {
        self.client
            .send(op, method, url.as_str(), body, |r, stream| {
                let mut r = r;
                for (k, v) in headers {
                    r = r.header(*k, v);
                }
                match (stream, body) {
                    (Some(s), Some(b)) => r.header("content-length", b.len()).body(s),
                    _ => r,
                }
            })
            .await
    }
}

/// The content id of a key. An id may not hold `/` (exosite.md rule 4): `%` and `/`
/// are escaped as `%25` and `%2F`, so the mapping is reversible and no two keys
/// share an id.
pub fn content_id(key: &str) -> String {
    key.replace('%', "%25").replace('/', "%2F")
}

/// A content info line, `<type>,<size>,<updated>,<meta>`. The type holds no comma
/// (a MIME type), so the second field is the size; a meta of `uploading` marks an
/// unfinished upload and its bytes received (the emulator's reading; the service's
/// is unknown).
pub(crate) fn parse_info(text: &str) -> Option<Info> {
    let mut fields = text.lines().next()?.split(',');
    let size = fields.nth(1)?.trim().parse().ok()?;
    let meta = fields.nth(1).unwrap_or_default().trim();
    Some(if meta == "uploading" {
        Info::Uploading(size)
    } else {
        Info::Stored(size)
    })
}

/// Whether a 400 says the body did not match its MD5 (damaged in transit), rather
/// than that the header is missing or malformed (a client bug).
fn digest_refused(r: &Refusal) -> bool {
    let body = r.body.to_ascii_lowercase();
    body.contains("md5") && (body.contains("does not match") || body.contains("mismatch"))
}

/// Exosite's refusals → the engine's next action (exosite.md §Errors).
pub(crate) fn classify(op: Op, r: Refusal) -> BackendError {
    let status = r.status.as_u16();
    let detail = r.describe();
    match (op, status) {
        // The range's bytes did not match their MD5 on arrival: damaged in transit,
        // nothing stored; sending it again is the cure.
        (Op::PutPart | Op::PutSingle, 400) if digest_refused(&r) => BackendError::Retry {
            op,
            after: r.retry_after,
            cause: detail,
        },
        // Any other refusal of a range: the server is not where the journal is (an
        // answer lost, the upload expired or reset). Start again from byte 0.
        (Op::PutPart, 400 | 404 | 409 | 412 | 416) => BackendError::SessionGone { op, detail },
        // The single-request limit is lower than this client assumes.
        (Op::PutSingle, 413) => BackendError::Fatal {
            op,
            status: Some(413),
            detail: format!("the service refused the file as too big for one request: {detail}"),
        },
        // An upload of this id in progress that the service will not reset: it
        // expires by itself; come back later.
        (Op::Begin, 409) => BackendError::Retry {
            op,
            after: r.retry_after,
            cause: format!(
                "the service keeps an unfinished upload of this id and will not start it \
                 again until it expires: {detail}"
            ),
        },
        _ => from_status(op, r.status, r.retry_after, r.body),
    }
}

#[async_trait]
impl Backend for ExositeBackend {
    fn name(&self) -> &'static str {
        "exosite"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            addressing: Addressing::ByteOffset,
            part_size: PartSizeRule::Chosen {
                min: PART,
                max: PART,
            },
            max_parts: None,
            // exosite.md §Upload in parts: strictly in order, one at a time.
            parallel_parts: false,
            // Where the content info reports an unfinished upload's progress.
            lists_held_parts: true,
            part_digest: Some(DigestKind::Md5),
            object_digest: None,
            single_request_below: self.single_max + 1,
            last_part_on_complete: false,
            ranged_reads: true,
            request_deadline: None,
            asynchronous_join: false,
            object_digest_from_parts: false,
        }
    }

    async fn put_single(
        &self,
        file: &FileSpec,
        body: PartBody,
        digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::PutSingle;
        let id = self.id_of(&file.key);
        let url = self.content_url(Some(&id))?;
        let mut headers = vec![("content-type", self.mime(file))];
        if let Some(md5) = digests.part.as_ref().filter(|d| d.kind == DigestKind::Md5) {
            headers.push(("md5", md5.base64()));
        }
        match self
            .send(op, Method::POST, &url, Some(&body), &headers)
            .await?
        {
            Answer::Ok(_) => Ok(remote(&file.key, &id)),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError> {
        let op = Op::Begin;
        let id = self.id_of(&file.key);
        let url = self.content_url(None)?;
        let json = serde_json::json!({
            "id": id,
            "length": file.size,
            "type": self.mime(file),
        });
        let answer = self
            .client
            .send(op, Method::POST, url.as_str(), None, |r, _| r.json(&json))
            .await?;
        match answer {
            Answer::Ok(_) => {
                self.inferred().remove(&id);
                Ok(Session {
                    id,
                    part_size: None,
                    extra: serde_json::Value::Null,
                })
            }
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn put_part(
        &self,
        session: &Session,
        part: &PartSpec,
        body: PartBody,
    ) -> Result<Receipt, BackendError> {
        let op = Op::PutPart;
        let Some(md5) = part.digest.as_ref().filter(|d| d.kind == DigestKind::Md5) else {
            return Err(BackendError::Fatal {
                op,
                status: None,
                detail: "no MD5 of the range was computed".into(),
            });
        };
        let url = self.content_url(Some(&session.id))?;
        let last = part.offset + part.length.max(1) - 1;
        let headers = [
            ("content-type", "application/octet-stream".to_string()),
            (
                CONTENT_RANGE.as_str(),
                format!("bytes {}-{last}/{}", part.offset, part.total),
            ),
            ("md5", md5.base64()),
        ];
        let receipt = Receipt::of(part);
        match self
            .send(op, Method::PATCH, &url, Some(&body), &headers)
            .await?
        {
            Answer::Ok(_) => {
                self.inferred().remove(&session.id);
                Ok(receipt)
            }
            // The first range of an upload just begun refused outright: the service
            // does not take ranges as this client cuts them (a size rule other
            // than both readings). Starting over would refuse it again, forever.
            Answer::Refused(r)
                if r.status.as_u16() == 400 && part.offset == 0 && !digest_refused(&r) =>
            {
                Err(BackendError::Fatal {
                    op,
                    status: Some(400),
                    detail: format!("the service refused the first range: {}", r.describe()),
                })
            }
            Answer::Refused(r) if r.status.as_u16() == 409 => {
                if self.held_after_conflict(session, part).await? {
                    tracing::info!(
                        part = part.index,
                        "the service holds this range already (its answer was lost)"
                    );
                    return Ok(receipt);
                }
                Err(classify(op, r))
            }
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    /// The ranges an unfinished upload holds, where the content info reports its
    /// progress; `None` (trust the journal) where it does not.
    async fn held_parts(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError> {
        let Some(ps) = session.part_size.filter(|&p| p > 0) else {
            return Ok(None);
        };
        let Some(Info::Uploading(received)) = self.info(Op::HeldParts, &session.id).await? else {
            return Ok(None);
        };
        // The ranges wholly received, in the engine's cut of the file.
        Ok(Some(
            (0..)
                .map_while(|i| part_range(file.size, ps, i).map(|(o, l)| (i, o, l)))
                .take_while(|&(_, offset, length)| offset + length <= received)
                .map(|(i, offset, length)| Receipt::plain(i, offset, length))
                .collect(),
        ))
    }

    /// The upload completes with its last byte: nothing to call.
    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        _parts: &[Receipt],
        _last: Option<FinalPart>,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        Ok(remote(&file.key, &session.id))
    }

    /// No abort is documented; initiating the id again resets the upload, and an
    /// incomplete one expires by itself.
    async fn abort(&self, _session: &Session) -> Result<(), BackendError> {
        Ok(())
    }

    async fn stat(
        &self,
        key: &str,
        _known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError> {
        Ok(match self.info(Op::Stat, &self.id_of(key)).await? {
            Some(Info::Stored(size)) => Some(RemoteStat { size, digest: None }),
            Some(Info::Uploading(_)) | None => None,
        })
    }

    async fn read_range(
        &self,
        remote: &RemoteObject,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let id = remote.id.clone().unwrap_or_else(|| self.id_of(&remote.key));
        let url = self.read_url(&id, false)?;
        self.client
            .read_range(Op::ReadBack, url.as_str(), offset, len, classify)
            .await
    }

    fn reload_credentials(&self) -> bool {
        self.client.reload_current()
    }

    async fn reread_credentials(&self) -> Result<bool, BackendError> {
        self.client.reread()
    }
}

fn remote(key: &str, id: &str) -> RemoteObject {
    RemoteObject {
        key: key.to_string(),
        id: Some(id.to_string()),
        extra: serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_hold_no_slash_and_never_collide() {
        assert_eq!(content_id("a/b.bin"), "a%2Fb.bin");
        assert_eq!(content_id("a%2Fb.bin"), "a%252Fb.bin");
        assert_ne!(content_id("a/b"), content_id("a%2Fb"));
        assert!(!content_id("x/y/z").contains('/'));
    }

    #[test]
    fn info_lines_give_the_size_and_progress() {
        assert_eq!(
            parse_info("text/csv,1234,1700000000,\n"),
            Some(Info::Stored(1234))
        );
        assert_eq!(
            parse_info("application/octet-stream,0,1,meta"),
            Some(Info::Stored(0))
        );
        assert_eq!(
            parse_info("text/plain,5242880,1700000000,uploading"),
            Some(Info::Uploading(5_242_880))
        );
        assert_eq!(parse_info("garbage"), None);
    }
}
