//! Insights Hub IoT File Service v3 (protocols/insights-hub.md): single PUTs for
//! files up to one part, multi-part uploads for bigger ones.
//!
//! The service's ways, and how they map onto the seam:
//! - A multi-part upload has no id: it is the file path. `begin` is
//!   `?upload=start`; parts are `?part=N` (N = index + 1) in parallel; the last part
//!   rides on `?upload=complete` ([`Capabilities::last_part_on_complete`]).
//! - Resume asks `fileslist` which part numbers the server holds. It lists numbers
//!   only, so the byte ranges come from the part size and file size kept with the
//!   session. An empty list means the upload expired or was aborted: `SessionGone`.
//! - Every file has an integer ETag; writing over an existing file needs
//!   `If-Match: <etag>` on every call of the sequence. The current ETag is looked up
//!   (search) when an upload begins and kept with the session; a 409 means somebody
//!   else updated the file since, and the session starts over with the new ETag.
//! - No checksum of any kind is exposed: `stat` reports the size, and verification
//!   reads ranges back (`read_range`, `Range` → 206).
//! - Every request must finish within the gateway's 60 s or it gets 502
//!   ([`Capabilities::request_deadline`]).

pub(crate) mod classify;
mod config;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::{Deserialize, Serialize};

pub use self::config::InsightsHubConfig;

use self::classify::classify;
use super::bearer::{Answer, BearerClient, Service, TokenHeader};
use super::http::check_base_url;
use super::{
    Addressing, Backend, BackendError, Capabilities, FileDigests, FileSpec, FinalPart, Op,
    PartBody, PartSizeRule, PartSpec, Receipt, RemoteObject, RemoteStat, Session, Timeouts,
    part_range,
};

/// insights-hub.md §Multi-part: "Every part must be ≥ 5 MB" (MiB taken: the larger
/// reading is safe against either).
pub const MIN_PART: u64 = 5 << 20;
/// insights-hub.md §Multi-part: part numbers 1..1000.
const MAX_PARTS: u32 = 1000;
/// insights-hub.md §Single upload: the gateway answers 502 after one minute.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(60);
/// A part may be as big as a 1000-part file of this size needs; 5 GiB parts keep
/// a 5 TB file possible (the service states no maximum).
const MAX_PART: u64 = 5 << 30;
/// insights-hub.md §Hosts and auth: `Authorization: Bearer <JWT>`.
const SERVICE: Service = Service {
    name: "Insights Hub",
    header: TokenHeader::Bearer,
    renewal: "put a valid token in",
};
/// The path of the API under the gateway.
const API: &str = "api/iotfile/v3";

#[derive(Debug)]
pub struct InsightsHubBackend {
    client: BearerClient,
    /// `{gateway}/api/iotfile/v3`.
    base: Url,
    entity: String,
    /// Remote folder under the asset, without surrounding slashes.
    directory: String,
    /// Files up to this size go in one PUT (up to one part).
    single_up_to: u64,
}

/// What a multi-part session keeps besides its path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SessionExtra {
    /// The file's ETag when the upload began (`None`: a new file); sent as
    /// `If-Match` on every call.
    #[serde(default)]
    etag: Option<u64>,
    /// The file's MIME type, sent as `type` on every call as the protocol asks
    /// (the completion's is the one stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_type: Option<String>,
}

/// One search result (insights-hub.md §Whole-file verification), the fields used.
#[derive(Debug, Deserialize)]
struct Found {
    name: String,
    #[serde(default)]
    path: String,
    size: u64,
    etag: u64,
}

/// One `fileslist` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedPart {
    part_no: u32,
}

impl InsightsHubBackend {
    /// `part_size` is `upload.part_size`: files up to one part go in one request.
    pub fn new(
        cfg: &InsightsHubConfig,
        timeouts: Timeouts,
        part_size: u64,
    ) -> Result<InsightsHubBackend, BackendError> {
        cfg.validate()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let gateway = check_base_url(&cfg.gateway_url, cfg.allow_insecure_http)
            .map_err(BackendError::config)?;
        let base = Url::parse(&format!("{gateway}/{API}"))
            .map_err(|e| BackendError::config(format!("backend.gateway_url: {e}")))?;
        Ok(InsightsHubBackend {
            client: BearerClient::open(SERVICE, cfg.secret_source(), timeouts)?,
            base,
            entity: cfg.entity_id.clone(),
            directory: cfg.directory().to_string(),
            single_up_to: part_size.clamp(MIN_PART, MAX_PART),
        })
    }

    /// The file path under the asset: the remote folder, then the key.
    fn filepath(&self, key: &str) -> String {
        if self.directory.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.directory)
        }
    }

    /// `{base}/{root}/{entity}/{filepath}`, each segment percent-encoded.
    fn url(&self, root: &str, filepath: &str) -> Result<Url, BackendError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| BackendError::Fatal {
                op: Op::Begin,
                status: None,
                detail: format!("{} cannot take a path", self.base),
            })?
            .extend([root, self.entity.as_str()])
            .extend(filepath.split('/'));
        Ok(url)
    }

    fn file_url(&self, key: &str, query: Option<(&str, &str)>) -> Result<Url, BackendError> {
        let mut url = self.url("files", &self.filepath(key))?;
        if let Some((k, v)) = query {
            url.query_pairs_mut().append_pair(k, v);
        }
        Ok(url)
    }

    fn extra(session: &Session) -> SessionExtra {
        serde_json::from_value(session.extra.clone()).unwrap_or_default()
    }

    /// Sends a PUT of the file at `key`; `If-Match` when the file exists, `type`
    /// when it has one.
    async fn put(
        &self,
        op: Op,
        key: &str,
        query: Option<(&str, &str)>,
        meta: &SessionExtra,
        body: Option<&PartBody>,
    ) -> Result<Answer, BackendError> {
        let url = self.file_url(key, query)?;
        self.client
            .send(op, Method::PUT, url.as_str(), body, |r, stream| {
                let r = with_etag(r, meta.etag).header(CONTENT_TYPE, "application/octet-stream");
                let r = match &meta.file_type {
                    Some(t) => r.header("type", t),
                    None => r,
                };
                match (stream, body) {
                    (Some(s), Some(b)) => r.header("content-length", b.len()).body(s),
                    _ => r.header("content-length", 0).body(Vec::new()),
                }
            })
            .await
    }

    /// The stored file at `key`: its size and ETag, found by the search endpoint
    /// (`name eq … and path eq …/`, insights-hub.md §Whole-file verification).
    async fn find(&self, op: Op, key: &str) -> Result<Option<Found>, BackendError> {
        let filepath = self.filepath(key);
        let (dir, name) = match filepath.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n.to_string()),
            None => ("/".to_string(), filepath.clone()),
        };
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| BackendError::Fatal {
                op,
                status: None,
                detail: format!("{} cannot take a path", self.base),
            })?
            .extend(["files", self.entity.as_str()]);
        url.query_pairs_mut().append_pair(
            "filter",
            &format!("name eq {} and path eq {}", quoted(&name), quoted(&dir)),
        );
        match self
            .client
            .send(op, Method::GET, url.as_str(), None, |r, _| r)
            .await?
        {
            Answer::Ok(resp) => {
                let found: Vec<Found> = self.client.json(op, resp).await?;
                // The filter is exact; checking again costs nothing and guards
                // against a service that matches more loosely.
                Ok(found.into_iter().find(|f| {
                    f.name == name && f.path.trim_start_matches('/') == dir.trim_start_matches('/')
                }))
            }
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(None),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    fn remote(key: &str, etag: Option<u64>) -> RemoteObject {
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

/// A filter value: bare where the service's examples use it so, quoted when it
/// holds whitespace (which would end it) or a quote.
fn quoted(v: &str) -> String {
    if !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
        v.to_string()
    } else if v.contains('\'') {
        format!("\"{v}\"")
    } else {
        format!("'{v}'")
    }
}

fn with_etag(r: RequestBuilder, etag: Option<u64>) -> RequestBuilder {
    match etag {
        Some(e) => r.header(IF_MATCH, e.to_string()),
        None => r,
    }
}

/// The integer ETag of an answer (insights-hub.md §Updating: integer, possibly
/// quoted).
fn etag_of(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(ETAG)?
        .to_str()
        .ok()?
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .ok()
}

#[async_trait]
impl Backend for InsightsHubBackend {
    fn name(&self) -> &'static str {
        "insights-hub"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            addressing: Addressing::PartNumber { first: 1 },
            part_size: PartSizeRule::Chosen {
                min: MIN_PART,
                max: MAX_PART,
            },
            max_parts: Some(MAX_PARTS),
            // insights-hub.md §Multi-part 2: "may be sent in parallel and in any order".
            parallel_parts: true,
            lists_held_parts: true,
            part_digest: None,
            object_digest: None,
            single_request_below: self.single_up_to + 1,
            last_part_on_complete: true,
            ranged_reads: true,
            request_deadline: Some(GATEWAY_TIMEOUT),
            asynchronous_join: false,
            object_digest_from_parts: false,
        }
    }

    async fn put_single(
        &self,
        file: &FileSpec,
        body: PartBody,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::PutSingle;
        let meta = SessionExtra {
            etag: self.find(op, &file.key).await?.map(|f| f.etag),
            file_type: file.content_type.clone(),
        };
        match self.put(op, &file.key, None, &meta, Some(&body)).await? {
            Answer::Ok(resp) => Ok(Self::remote(&file.key, etag_of(&resp))),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError> {
        let op = Op::Begin;
        let meta = SessionExtra {
            etag: self.find(op, &file.key).await?.map(|f| f.etag),
            file_type: file.content_type.clone(),
        };
        match self
            .put(op, &file.key, Some(("upload", "start")), &meta, None)
            .await?
        {
            Answer::Ok(_) => Ok(Session {
                id: self.filepath(&file.key),
                part_size: None,
                extra: serde_json::to_value(&meta).unwrap_or_default(),
            }),
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
        // The last part rides on `upload=complete`; sent as `part=N` it would make
        // the completion's body a part too many.
        if part.last {
            return Err(BackendError::Fatal {
                op,
                status: None,
                detail: format!(
                    "part {} is the last one: it goes with the completion",
                    part.index
                ),
            });
        }
        let key = key_of(session, &self.directory);
        let number = part.number(1).to_string();
        let meta = Self::extra(session);
        match self
            .put(op, &key, Some(("part", &number)), &meta, Some(&body))
            .await?
        {
            Answer::Ok(_) => Ok(Receipt::of(part)),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn held_parts(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError> {
        let op = Op::HeldParts;
        let Some(ps) = session.part_size.filter(|&p| p > 0) else {
            // Recorded by an engine that did not keep the part size: no way to map
            // numbers to ranges, so trust the journal.
            return Ok(None);
        };
        let url = self.url("fileslist", &session.id)?;
        let listed: Vec<ListedPart> = match self
            .client
            .send(op, Method::GET, url.as_str(), None, |r, _| r)
            .await?
        {
            Answer::Ok(resp) => self.client.json(op, resp).await?,
            Answer::Refused(r) if r.status.as_u16() == 404 => Vec::new(),
            Answer::Refused(r) => return Err(classify(op, r)),
        };
        // insights-hub.md §Resume: "If the list is empty (or 404), the upload has
        // expired or was aborted: start over."
        if listed.is_empty() {
            return Err(BackendError::SessionGone {
                op,
                detail: "the service holds no parts of this upload (expired or aborted)".into(),
            });
        }
        Ok(Some(
            listed
                .into_iter()
                .filter_map(|p| {
                    let index = p.part_no.checked_sub(1)?;
                    let (offset, length) = part_range(file.size, ps, index)?;
                    Some(Receipt::plain(index, offset, length))
                })
                .collect(),
        ))
    }

    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        _parts: &[Receipt],
        last: Option<FinalPart>,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::Complete;
        if let Some(l) = last.as_ref().filter(|l| !l.spec.last) {
            return Err(BackendError::Fatal {
                op,
                status: None,
                detail: format!(
                    "part {} is not the last one; the completion carries the last",
                    l.spec.index
                ),
            });
        }
        // The type is the file's now: a session begun before an upgrade has none.
        let meta = SessionExtra {
            file_type: file.content_type.clone(),
            ..Self::extra(session)
        };
        let body = last.map(|l| l.body);
        match self
            .put(
                op,
                &file.key,
                Some(("upload", "complete")),
                &meta,
                body.as_ref(),
            )
            .await?
        {
            // insights-hub.md §Updating: in 2019 completion answered without an
            // ETag; the search in `stat` reads it then.
            Answer::Ok(resp) => Ok(Self::remote(&file.key, etag_of(&resp))),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn abort(&self, session: &Session) -> Result<(), BackendError> {
        let op = Op::Abort;
        let key = key_of(session, &self.directory);
        let meta = Self::extra(session);
        match self
            .put(op, &key, Some(("upload", "abort")), &meta, None)
            .await?
        {
            Answer::Ok(_) => Ok(()),
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(()),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    /// The file's ETag moved past the one the upload began over (or the file
    /// appeared, for a new one): a completion happened since `begin`. Whose, the
    /// read-back verification that follows settles.
    async fn completed(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<RemoteObject>, BackendError> {
        let prior = Self::extra(session).etag;
        Ok(self
            .find(Op::Complete, &file.key)
            .await?
            .filter(|f| prior.is_none_or(|p| f.etag > p))
            .map(|f| Self::remote(&file.key, Some(f.etag))))
    }

    async fn stat(
        &self,
        key: &str,
        _known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError> {
        Ok(self.find(Op::Stat, key).await?.map(|f| RemoteStat {
            size: f.size,
            digest: None,
        }))
    }

    async fn read_range(
        &self,
        remote: &RemoteObject,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let url = self.file_url(&remote.key, None)?;
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

/// The key of a session (its id is the file path under the asset).
fn key_of(session: &Session, directory: &str) -> String {
    if directory.is_empty() {
        session.id.clone()
    } else {
        session
            .id
            .strip_prefix(directory)
            .and_then(|k| k.strip_prefix('/'))
            .unwrap_or(&session.id)
            .to_string()
    }
}
