//! Box: direct upload for small files, upload sessions for the rest.
//!
//! Facts and error codes: `protocols/box.md`. In short:
//! - below 20,000,000 bytes a session is refused (`file_size_too_small`), so smaller
//!   files go in one `POST /files/content` carrying their SHA-1 (box.md §Small files);
//! - the server dictates the part size; parts are byte ranges with a `Digest:
//!   sha=<base64>` header, immutable once stored, and may go in parallel;
//! - `GET …/parts` lists what the session holds, so resume trusts the server;
//! - commit carries the whole-file SHA-1 and the exact list of parts; the answer and
//!   `GET /files/{id}` report the stored `sha1` and `size`, which verify compares.
//!
//! Keys with folders (`a/b/c.bin`) are mirrored as Box folders under `folder_id`.
//! A name that already exists gets a new version of that file.

pub(crate) mod classify;
pub(crate) mod client;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tracing::info;

use self::classify::classify;
use self::client::{
    Answer, BearerClient, BoxFile, Endpoints, Entries, Item, PartAnswer, PartList, UploadPart,
    UploadSession, conflict,
};
use super::bearer::{Service, TokenHeader};
use super::http::{check_base_url, same_origin};
use super::{
    Addressing, Backend, BackendError, Capabilities, FileDigests, FileSpec, FinalPart, Op,
    PartBody, PartSizeRule, PartSpec, Receipt, RemoteObject, RemoteStat, Session, Timeouts,
};
use crate::digest::{Digest, DigestKind};
use crate::secret::{Exposure, SecretSetting, SecretSource, TOKEN_KEYS};

/// How Box takes the token (box.md §Hosts and auth).
const SERVICE: Service = Service {
    name: "Box",
    header: TokenHeader::Bearer,
    renewal: "put a valid token in",
};

/// Box refuses sessions below this size (box.md §Small files: "at least 20 MB",
/// 20,000,000 in public client code).
const SESSION_MIN: u64 = 20_000_000;
/// box.md §Resume: `limit` is clamped to 1000.
const LIST_LIMIT: u64 = 1000;
/// box.md §Resume: "Offsets above 10000 are rejected with 400".
const LIST_MAX_OFFSET: u64 = 10_000;
/// Commit answered 202 ("parts not yet processed"): re-commit this many times,
/// honouring `Retry-After`, before handing the file back to the engine's backoff.
const COMMIT_POLLS: u32 = 20;
/// Longest wait honoured between commit polls.
const COMMIT_POLL_MAX: Duration = Duration::from_secs(10);

/// `[backend] type = "box"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxConfig {
    /// Metadata host (file info, folders).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Upload host (sessions, direct uploads).
    #[serde(default = "default_upload_url")]
    pub upload_url: String,
    /// File holding the OAuth2 access token; re-read after a 401.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the access token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A systemd credential holding it (`LoadCredential=NAME:/path` in the unit):
    /// read from `$CREDENTIALS_DIRECTORY/NAME` at every read.
    #[serde(default)]
    pub token_credential: Option<String>,
    /// Destination folder id ("0" is the root).
    #[serde(default = "default_folder")]
    pub folder_id: String,
    /// Allow plain http to a non-loopback host (a lab proxy). Off: tokens stay in TLS.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

fn default_api_url() -> String {
    "https://api.box.com".into()
}
fn default_upload_url() -> String {
    "https://upload.box.com/api".into()
}
fn default_folder() -> String {
    "0".into()
}

impl BoxConfig {
    pub fn resolved(mut self, resolve: &dyn Fn(&Path) -> PathBuf) -> BoxConfig {
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
        SecretSource::choose(self.secret_setting(), "Box")
    }

    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        check_base_url(&self.api_url, self.allow_insecure_http)
            .map_err(|e| ("backend.api_url", e))?;
        check_base_url(&self.upload_url, self.allow_insecure_http)
            .map_err(|e| ("backend.upload_url", e))?;
        if self.folder_id.is_empty() || !self.folder_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err((
                "backend.folder_id",
                format!("{:?} is not a Box folder id", self.folder_id),
            ));
        }
        self.secret_source().map(|_| ())
    }

    pub fn check_environment(&self) -> Vec<(&'static str, String)> {
        SecretSource::check(self.secret_setting(), "Box")
    }
}

#[derive(Debug)]
pub struct BoxBackend {
    client: BearerClient,
    api: String,
    upload: String,
    root_folder: String,
    /// Folder path under the root → Box folder id, so each folder is looked up once.
    folders: Mutex<HashMap<String, String>>,
}

/// What a session keeps in the journal besides its id.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
struct SessionExtra {
    #[serde(default)]
    endpoints: Endpoints,
}

impl BoxBackend {
    pub fn new(cfg: &BoxConfig, timeouts: Timeouts) -> Result<BoxBackend, BackendError> {
        cfg.validate()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        Ok(BoxBackend {
            client: BearerClient::open(SERVICE, cfg.secret_source(), timeouts)?,
            api: check_base_url(&cfg.api_url, cfg.allow_insecure_http)
                .map_err(BackendError::config)?,
            upload: check_base_url(&cfg.upload_url, cfg.allow_insecure_http)
                .map_err(BackendError::config)?,
            root_folder: cfg.folder_id.clone(),
            folders: Mutex::new(HashMap::new()),
        })
    }

    /// A session URL from the server's `session_endpoints` if it points back at the
    /// upload host, else built from the upload base: the bearer token must never be
    /// sent to a host the configuration did not name.
    fn session_url(&self, given: Option<&String>, session_id: &str, suffix: &str) -> String {
        match given {
            Some(u) if same_origin(u, &self.upload) => u.clone(),
            _ => format!(
                "{}/2.0/files/upload_sessions/{session_id}{suffix}",
                self.upload
            ),
        }
    }

    fn endpoints(session: &Session) -> Endpoints {
        serde_json::from_value::<SessionExtra>(session.extra.clone())
            .map(|e| e.endpoints)
            .unwrap_or_default()
    }

    /// Splits `a/b/c.bin` into its folders and name.
    fn split(key: &str) -> (Vec<&str>, &str) {
        let mut parts: Vec<&str> = key.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        (parts, name)
    }

    /// The id of the folder `dirs` under the root, creating what is missing. Cached
    /// ids can go stale (a folder deleted remotely): when Box says a cached parent is
    /// gone, the cache is forgotten and the folders are found or created afresh.
    async fn ensure_folders(&self, op: Op, dirs: &[&str]) -> Result<String, BackendError> {
        let mut retried = false;
        'again: loop {
            let mut parent = self.root_folder.clone();
            let mut path = String::new();
            for dir in dirs {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(dir);
                let cached = self
                    .folders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&path)
                    .cloned();
                let id = match cached {
                    Some(id) => id,
                    None => match self.create_folder(op, &parent, dir).await? {
                        Some(id) => {
                            self.folders
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(path.clone(), id.clone());
                            id
                        }
                        None if parent == self.root_folder => return Err(self.root_gone(op)),
                        None if !retried => {
                            retried = true;
                            self.forget_folders();
                            continue 'again;
                        }
                        None => {
                            return Err(BackendError::Retry {
                                op,
                                after: None,
                                cause: format!("the Box folder holding {dir:?} vanished twice"),
                            });
                        }
                    },
                };
                parent = id;
            }
            return Ok(parent);
        }
    }

    /// Drops every cached folder id (one went stale; the rest may have too).
    fn forget_folders(&self) {
        self.folders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The configured root folder does not exist or is hidden from this account: no
    /// file can go anywhere until a person fixes it, so the engine pauses.
    fn root_gone(&self, op: Op) -> BackendError {
        BackendError::AuthRefused {
            op,
            detail: format!(
                "Box has no folder {} (backend.folder_id), or this account cannot see it",
                self.root_folder
            ),
        }
    }

    /// Creates a folder, or finds the existing one of that name (409 with conflicts);
    /// `None` if the parent is gone.
    async fn create_folder(
        &self,
        op: Op,
        parent: &str,
        name: &str,
    ) -> Result<Option<String>, BackendError> {
        let url = format!("{}/2.0/folders", self.api);
        let body = json!({"name": name, "parent": {"id": parent}});
        match self
            .client
            .send(op, Method::POST, &url, None, |r, _| r.json(&body))
            .await?
        {
            Answer::Ok(resp) => Ok(Some(self.client.json::<Item>(op, resp).await?.id)),
            Answer::Refused(r) if r.status.as_u16() == 409 => match conflict(&r) {
                Some(item) if item.kind == "folder" => Ok(Some(item.id)),
                Some(item) => Err(BackendError::Fatal {
                    op,
                    status: Some(409),
                    detail: format!("a {} named {name:?} is in the way of a folder", item.kind),
                }),
                None => Err(classify(op, r)),
            },
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(None),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    /// Finds `name` in folder `parent` with Box's preflight check (`OPTIONS
    /// /files/content`): a free name answers 200, a taken one 409 naming the item in
    /// the way. One request, however many items the folder holds.
    async fn find(&self, parent: &str, name: &str) -> Result<Option<Item>, BackendError> {
        let op = Op::Stat;
        let url = format!("{}/2.0/files/content", self.api);
        let body = json!({"name": name, "parent": {"id": parent}});
        match self
            .client
            .send(op, Method::OPTIONS, &url, None, |r, _| r.json(&body))
            .await?
        {
            Answer::Ok(_) => Ok(None),
            Answer::Refused(r) if r.status.as_u16() == 409 => match conflict(&r) {
                Some(item) => Ok(Some(item)),
                None => Err(classify(op, r)),
            },
            // The folder itself is gone: nothing in it either.
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(None),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    /// Resolves a key to a file id by walking its folders (no creation).
    async fn lookup(&self, key: &str) -> Result<Option<String>, BackendError> {
        let (dirs, name) = Self::split(key);
        let mut parent = self.root_folder.clone();
        for dir in dirs {
            match self.find(&parent, dir).await? {
                Some(item) if item.kind == "folder" => parent = item.id,
                _ => return Ok(None),
            }
        }
        Ok(self
            .find(&parent, name)
            .await?
            .filter(|i| i.kind == "file")
            .map(|i| i.id))
    }

    async fn file_info(&self, id: &str) -> Result<Option<RemoteStat>, BackendError> {
        let op = Op::Stat;
        let url = format!("{}/2.0/files/{id}?fields=sha1,size", self.api);
        match self
            .client
            .send(op, Method::GET, &url, None, |r, _| r)
            .await?
        {
            Answer::Ok(resp) => {
                let f: BoxFile = self.client.json(op, resp).await?;
                Ok(Some(RemoteStat {
                    size: f.size.unwrap_or(0),
                    digest: f.sha1.map(|h| Digest::from_hex(DigestKind::Sha1, &h)),
                }))
            }
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(None),
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    fn remote(key: &str, file: &BoxFile) -> RemoteObject {
        RemoteObject {
            key: key.to_string(),
            id: Some(file.id.clone()),
            extra: json!({"size": file.size, "sha1": file.sha1}),
        }
    }

    fn receipt(index: u32, p: UploadPart) -> Receipt {
        Receipt {
            index,
            offset: p.offset,
            length: p.size,
            digest: Some(Digest::from_hex(DigestKind::Sha1, &p.sha1)),
            extra: json!({"part_id": p.part_id}),
        }
    }

    /// The commit's part record from a receipt.
    fn part_record(r: &Receipt) -> Result<UploadPart, BackendError> {
        let part_id = r.extra.get("part_id").and_then(|v| v.as_str());
        match (part_id, &r.digest) {
            (Some(id), Some(d)) => Ok(UploadPart {
                part_id: id.to_string(),
                offset: r.offset,
                size: r.length,
                sha1: d.hex.clone(),
            }),
            _ => Err(BackendError::SessionGone {
                op: Op::Complete,
                detail: format!(
                    "the journal's receipt of part {} lacks Box's part id",
                    r.index
                ),
            }),
        }
    }

    /// One direct upload: `attributes` first, then the file (box.md rule 16).
    async fn direct(
        &self,
        url: &str,
        attributes: &serde_json::Value,
        name: &str,
        body: &PartBody,
        sha1: &str,
    ) -> Result<Answer, BackendError> {
        let attrs = attributes.to_string();
        let len = body.len();
        self.client
            .send(Op::PutSingle, Method::POST, url, Some(body), |r, stream| {
                // `send` passes the stream of the body it was given.
                let stream = stream.unwrap_or_else(|| reqwest::Body::from(Vec::new()));
                let file = reqwest::multipart::Part::stream_with_length(stream, len)
                    .file_name(name.to_string());
                let form = reqwest::multipart::Form::new()
                    .text("attributes", attrs.clone())
                    .part("file", file);
                // Historical name; it carries the SHA-1 hex (box.md §Small files).
                r.header("content-md5", sha1).multipart(form)
            })
            .await
    }

    /// Sends `request(parent)` with the id of the key's folder. A 404 from it means
    /// the folder is gone (deleted remotely since its id was cached): the cache is
    /// forgotten and the request sent once more into folders found or made afresh.
    async fn in_folder<F, Fut>(
        &self,
        op: Op,
        dirs: &[&str],
        request: F,
    ) -> Result<Answer, BackendError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Answer, BackendError>>,
    {
        let mut retried = false;
        loop {
            let parent = self.ensure_folders(op, dirs).await?;
            match request(parent.clone()).await? {
                Answer::Refused(r) if r.status.as_u16() == 404 => {
                    if parent == self.root_folder {
                        return Err(self.root_gone(op));
                    }
                    if retried {
                        return Err(BackendError::Retry {
                            op,
                            after: None,
                            cause: format!(
                                "the destination folder vanished again: {}",
                                r.describe()
                            ),
                        });
                    }
                    retried = true;
                    info!(
                        folder = dirs.join("/"),
                        "a Box folder was gone; finding it again"
                    );
                    self.forget_folders();
                }
                other => return Ok(other),
            }
        }
    }
}

/// A 404 from a new version of a file Box just named as in the way: the file was
/// deleted in between. Not the folder's 404 (which `in_folder` handles): try again,
/// and the name will be free.
fn vanished_is_retried(op: Op, answer: Answer) -> Result<Answer, BackendError> {
    match answer {
        Answer::Refused(r) if r.status.as_u16() == 404 => Err(BackendError::Retry {
            op,
            after: None,
            cause: format!(
                "the file in the way vanished; trying again: {}",
                r.describe()
            ),
        }),
        other => Ok(other),
    }
}

fn sha1_of(digests: &FileDigests, op: Op) -> Result<&Digest, BackendError> {
    match &digests.object {
        Some(d) if d.kind == DigestKind::Sha1 => Ok(d),
        _ => Err(BackendError::Fatal {
            op,
            status: None,
            detail: "no SHA-1 of the file was computed".into(),
        }),
    }
}

#[async_trait]
impl Backend for BoxBackend {
    fn name(&self) -> &'static str {
        "box"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            addressing: Addressing::ByteOffset,
            // box.md §Session lifecycle 2: "Part size is dictated by the server".
            part_size: PartSizeRule::SetByServer,
            max_parts: None,
            // box.md §Uploading a part: parallelism allowed, 3–5 recommended.
            parallel_parts: true,
            lists_held_parts: true,
            part_digest: Some(DigestKind::Sha1),
            object_digest: Some(DigestKind::Sha1),
            single_request_below: SESSION_MIN,
            last_part_on_complete: false,
            // The download does not take `Range` here yet; the SHA-1 Box reports is
            // the stronger check anyway.
            ranged_reads: false,
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
        let sha1 = sha1_of(digests, op)?.hex.clone();
        let (dirs, name) = Self::split(&file.key);
        let url = format!("{}/2.0/files/content", self.upload);
        let answer = self
            .in_folder(op, &dirs, |parent| {
                let (url, sha1, body) = (&url, &sha1, &body);
                async move {
                    let attrs = json!({"name": name, "parent": {"id": parent}});
                    Ok(match self.direct(url, &attrs, name, body, sha1).await? {
                        // The name exists: upload a new version of that file.
                        Answer::Refused(r) if r.status.as_u16() == 409 => match conflict(&r) {
                            Some(item) if item.kind == "file" => {
                                let url = format!("{}/2.0/files/{}/content", self.upload, item.id);
                                let answer = self
                                    .direct(&url, &json!({"name": name}), name, body, sha1)
                                    .await?;
                                vanished_is_retried(op, answer)?
                            }
                            _ => Answer::Refused(r),
                        },
                        other => other,
                    })
                }
            })
            .await?;
        match answer {
            Answer::Ok(resp) => {
                let entries: Entries<BoxFile> = self.client.json(op, resp).await?;
                let f = entries
                    .entries
                    .into_iter()
                    .next()
                    .ok_or_else(|| BackendError::Retry {
                        op,
                        after: None,
                        cause: "Box answered the upload without the file".into(),
                    })?;
                Ok(Self::remote(&file.key, &f))
            }
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError> {
        let op = Op::Begin;
        let (dirs, name) = Self::split(&file.key);
        let url = format!("{}/2.0/files/upload_sessions", self.upload);
        let answer = self
            .in_folder(op, &dirs, |parent| {
                let url = &url;
                async move {
                    let body =
                        json!({"folder_id": parent, "file_size": file.size, "file_name": name});
                    Ok(
                        match self
                            .client
                            .send(op, Method::POST, url, None, |r, _| r.json(&body))
                            .await?
                        {
                            // The name exists: a session for a new version (box.md §Session
                            // lifecycle 1).
                            Answer::Refused(r) if r.status.as_u16() == 409 => match conflict(&r) {
                                Some(item) if item.kind == "file" => {
                                    let url = format!(
                                        "{}/2.0/files/{}/upload_sessions",
                                        self.upload, item.id
                                    );
                                    let body = json!({"file_size": file.size, "file_name": name});
                                    let answer = self
                                        .client
                                        .send(op, Method::POST, &url, None, |r, _| r.json(&body))
                                        .await?;
                                    vanished_is_retried(op, answer)?
                                }
                                _ => Answer::Refused(r),
                            },
                            other => other,
                        },
                    )
                }
            })
            .await?;
        let s: UploadSession = match answer {
            Answer::Ok(resp) => self.client.json(op, resp).await?,
            Answer::Refused(r) => return Err(classify(op, r)),
        };
        let extra = SessionExtra {
            endpoints: s.session_endpoints.unwrap_or_default(),
        };
        Ok(Session {
            id: s.id,
            part_size: Some(s.part_size),
            extra: serde_json::to_value(extra).unwrap_or_default(),
        })
    }

    async fn put_part(
        &self,
        session: &Session,
        part: &PartSpec,
        body: PartBody,
    ) -> Result<Receipt, BackendError> {
        let op = Op::PutPart;
        let Some(digest) = part.digest.as_ref().filter(|d| d.kind == DigestKind::Sha1) else {
            return Err(BackendError::Fatal {
                op,
                status: None,
                detail: "no SHA-1 of the part was computed".into(),
            });
        };
        let url = self.session_url(
            Self::endpoints(session).upload_part.as_ref(),
            &session.id,
            "",
        );
        let last = part.offset + part.length.max(1) - 1;
        let range = format!("bytes {}-{last}/{}", part.offset, part.total);
        let header = format!("sha={}", digest.base64());
        let answer = self
            .client
            .send(op, Method::PUT, &url, Some(&body), |r, stream| {
                let r = r
                    .header("content-range", &range)
                    .header("digest", &header)
                    .header("content-type", "application/octet-stream");
                match stream {
                    Some(s) => r.body(s),
                    None => r,
                }
            })
            .await?;
        match answer {
            Answer::Ok(resp) => {
                let a: PartAnswer = self.client.json(op, resp).await?;
                Ok(Self::receipt(part.index, a.part))
            }
            // A retry of a part whose first attempt landed: parts are immutable, and
            // the server shows the stored one (box.md §Uploading a part, rule 10).
            Answer::Refused(r) if r.code == "range_overlaps_existing_part" => {
                let stored = r
                    .context
                    .get("conflicting_part")
                    .cloned()
                    .and_then(|v| serde_json::from_value::<UploadPart>(v).ok());
                match stored {
                    Some(p)
                        if p.offset == part.offset
                            && p.size == part.length
                            && digest.matches(&Digest::from_hex(DigestKind::Sha1, &p.sha1)) =>
                    {
                        Ok(Self::receipt(part.index, p))
                    }
                    _ => Err(BackendError::Conflict {
                        op,
                        detail: format!(
                            "the session holds other bytes at offset {}: {}",
                            part.offset,
                            r.describe()
                        ),
                    }),
                }
            }
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn held_parts(
        &self,
        session: &Session,
        _file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError> {
        let op = Op::HeldParts;
        let Some(part_size) = session.part_size.filter(|n| *n > 0) else {
            return Ok(None);
        };
        let base = self.session_url(
            Self::endpoints(session).list_parts.as_ref(),
            &session.id,
            "/parts",
        );
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}offset={offset}&limit={LIST_LIMIT}");
            let page: PartList = match self
                .client
                .send(op, Method::GET, &url, None, |r, _| r)
                .await?
            {
                Answer::Ok(resp) => self.client.json(op, resp).await?,
                Answer::Refused(r) => return Err(classify(op, r)),
            };
            let n = page.entries.len() as u64;
            for p in page.entries {
                let index = (p.offset / part_size) as u32;
                out.push(Self::receipt(index, p));
            }
            offset += n;
            // box.md §Resume: offsets above 10000 are refused. Parts beyond are taken
            // as missing; sending one again meets `range_overlaps_existing_part`,
            // which `put_part` accepts as the stored part.
            if n == 0 || offset >= page.total_count || offset > LIST_MAX_OFFSET {
                break;
            }
        }
        Ok(Some(out))
    }

    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        parts: &[Receipt],
        _last: Option<FinalPart>,
        digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::Complete;
        let sha1 = sha1_of(digests, op)?;
        let records: Vec<UploadPart> = parts
            .iter()
            .map(Self::part_record)
            .collect::<Result<_, _>>()?;
        let url = self.session_url(
            Self::endpoints(session).commit.as_ref(),
            &session.id,
            "/commit",
        );
        let body = json!({"parts": records, "attributes": {}});
        let header = format!("sha={}", sha1.base64());
        for poll in 0..COMMIT_POLLS {
            let answer = self
                .client
                .send(op, Method::POST, &url, None, |r, _| {
                    r.header("digest", &header).json(&body)
                })
                .await?;
            let wait =
                match answer {
                    // 202: parts received but not processed yet; commit again later.
                    Answer::Ok(resp) if resp.status().as_u16() == 202 => {
                        super::http::retry_after(resp.headers()).unwrap_or(Duration::from_secs(1))
                    }
                    Answer::Ok(resp) => {
                        let entries: Entries<BoxFile> = self.client.json(op, resp).await?;
                        let f = entries.entries.into_iter().next().ok_or_else(|| {
                            BackendError::Retry {
                                op,
                                after: None,
                                cause: "Box answered the commit without the file".into(),
                            }
                        })?;
                        return Ok(Self::remote(&file.key, &f));
                    }
                    // Seen right after the last part: the server's list is not settled
                    // yet (box.md §Commit; rclone waits and commits again).
                    Answer::Refused(r) if r.code == "parts_mismatch" && poll + 1 < COMMIT_POLLS => {
                        r.retry_after.unwrap_or(Duration::from_secs(1))
                    }
                    Answer::Refused(r) => return Err(classify(op, r)),
                };
            tokio::time::sleep(wait.min(COMMIT_POLL_MAX)).await;
        }
        Err(BackendError::Retry {
            op,
            after: None,
            cause: format!("the commit was still being processed after {COMMIT_POLLS} polls"),
        })
    }

    async fn abort(&self, session: &Session) -> Result<(), BackendError> {
        let op = Op::Abort;
        let url = self.session_url(Self::endpoints(session).abort.as_ref(), &session.id, "");
        match self
            .client
            .send(op, Method::DELETE, &url, None, |r, _| r)
            .await?
        {
            Answer::Ok(_) => Ok(()),
            Answer::Refused(r) if r.status.as_u16() == 404 => Ok(()), // already gone
            Answer::Refused(r) => Err(classify(op, r)),
        }
    }

    async fn stat(
        &self,
        key: &str,
        known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError> {
        let id = match known.and_then(|k| k.id.clone()) {
            Some(id) => Some(id),
            None => self.lookup(key).await?,
        };
        match id {
            Some(id) => self.file_info(&id).await,
            None => Ok(None),
        }
    }

    fn reload_credentials(&self) -> bool {
        self.client.reload_current()
    }

    async fn reread_credentials(&self) -> Result<bool, BackendError> {
        self.client.reread()
    }

    // `sweep` keeps the default: Box has no call that lists open upload sessions, and
    // expires abandoned ones after 7 days by itself (box.md §Session lifecycle 3).
}
