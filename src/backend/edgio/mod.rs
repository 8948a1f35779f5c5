//! Edgio (Limelight) Agile Storage (protocols/edgio.md): one `/post/raw` up to
//! `multipart_above`, a multipart upload above it.
//!
//! The service's ways, and how they map onto the seam:
//! - One login serves every call (`client.rs`); an expired token logs in again once.
//! - A small file is one `/post/raw` carrying its SHA-256 in `X-Agile-Checksum`: the
//!   server discards a body that does not match (`-26`), so a corrupted request never
//!   becomes an object. Missing folders are created by the same request.
//! - A big file: the folder is created (`/post/directory`), then `/multipart/create`
//!   gives an upload id; pieces go in parallel, numbered from 1, and each answer's
//!   SHA-256 is compared with the piece's own; `/multipart/complete` starts the
//!   service's join, which runs after the answer (COMPLETE → JOIN → SUCCESS). The
//!   engine polls [`Backend::join`] (`getMultipartStatus`) with the file resting in
//!   `joining`; a FAILED join is restarted once (`restartMultipart`).
//! - Resume asks `listMultipartPiece` (paged by cookie): per part number the latest
//!   listed piece, if it is NEW and of the planned length, is held.
//! - Verification: `HEAD` on the delivery host (`origin_url`) answers the stored
//!   size and SHA-256; where it cannot (not configured, not replicated yet, no
//!   checksum header) the ingest host's `stat(token, path, true)` answers.

pub(crate) mod client;
pub(crate) mod codes;
mod config;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use self::config::EdgioConfig;

use self::client::{Agile, Payload, Reply};
use self::codes::{PIECE_NEW, rpc_code, rpc_refused, state};
use super::http::{self, check_base_url};
use super::{
    Addressing, Backend, BackendError, Capabilities, FileDigests, FileSpec, FinalPart, Join, Op,
    PartBody, PartSizeRule, PartSpec, Receipt, RemoteObject, RemoteStat, Session, Timeouts,
    part_range,
};
use crate::digest::{Digest, DigestKind};

/// edgio.md §Multipart: at most 1000 pieces, each at most 100 GB.
const MAX_PIECES: u32 = 1000;
const MAX_PIECE: u64 = 100_000_000_000;
/// Piece records per `listMultipartPiece` page.
const PAGE: i64 = 500;
/// Pages read before giving up on a listing that never ends (1000 pieces, each
/// listed at most a few times, fit in far fewer).
const MAX_PAGES: usize = 100;

#[derive(Debug)]
pub struct EdgioBackend {
    agile: Agile,
    /// `origin_url`, for `HEAD` and ranged `GET` of stored objects.
    origin: Option<Url>,
    /// The remote folder, without surrounding slashes.
    directory: String,
    multipart_above: u64,
}

/// What a session keeps besides the upload id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SessionExtra {
    /// The object's path under the account's root, for messages.
    #[serde(default)]
    path: String,
}

/// `getMultipartStatus`, the fields dropship reads.
#[derive(Debug, Deserialize)]
struct UploadStatus {
    code: i64,
    #[serde(default)]
    state: i64,
    #[serde(default)]
    error: Value,
}

/// One record of `listMultipartPiece`.
#[derive(Debug, Deserialize)]
struct Piece {
    number: u32,
    size: u64,
    state: i64,
}

/// One record of `listMultipart`.
#[derive(Debug, Deserialize)]
struct Upload {
    mpid: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    state: i64,
}

impl EdgioBackend {
    pub fn new(cfg: &EdgioConfig, timeouts: Timeouts) -> Result<EdgioBackend, BackendError> {
        cfg.validate()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        let base = check_base_url(&cfg.upload_url, cfg.allow_insecure_http)
            .map_err(BackendError::config)?;
        let origin = match &cfg.origin_url {
            Some(o) => {
                let o = check_base_url(o, cfg.allow_insecure_http).map_err(BackendError::config)?;
                Some(Url::parse(&o).map_err(|e| BackendError::config(e.to_string()))?)
            }
            None => None,
        };
        let source = cfg
            .secret_source()
            .map_err(|(k, e)| BackendError::config(format!("{k}: {e}")))?;
        Ok(EdgioBackend {
            agile: Agile::new(base, cfg.username.clone(), source, timeouts)?,
            origin,
            directory: cfg.directory().to_string(),
            multipart_above: cfg.multipart_above.0,
        })
    }

    /// The object's path under the account's root: `/<directory>/<key>`.
    fn path(&self, key: &str) -> String {
        if self.directory.is_empty() {
            format!("/{key}")
        } else {
            format!("/{}/{key}", self.directory)
        }
    }

    /// `(folder, basename)` of the object at `key`.
    fn split(&self, key: &str) -> (String, String) {
        let path = self.path(key);
        match path.rsplit_once('/') {
            Some(("", name)) => ("/".into(), name.into()),
            Some((dir, name)) => (dir.into(), name.into()),
            None => ("/".into(), path),
        }
    }

    fn extra(session: &Session) -> SessionExtra {
        serde_json::from_value(session.extra.clone()).unwrap_or_default()
    }

    /// Headers naming a file or folder. Names beyond plain ASCII go percent-encoded
    /// with `X-Agile-Encoding: UTF8` (edgio.md §Conventions: RFC 3986 quoting).
    fn named(req: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let plain = pairs
            .iter()
            .all(|(_, v)| v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%'));
        let mut req = req;
        for (name, value) in pairs {
            req = if plain {
                req.header(*name, *value)
            } else {
                req.header(*name, rfc3986(value))
            };
        }
        if plain {
            req
        } else {
            req.header("X-Agile-Encoding", "UTF8")
        }
    }

    /// An empty file: `/post/raw` refuses a request without a body (`-24`), so it
    /// goes as the seed's `/post/file` form, which stores a 0-byte file.
    async fn put_empty(
        &self,
        file: &FileSpec,
        dir: &str,
        name: &str,
        mtime: &str,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::PutSingle;
        let fields = [("basename", name), ("directory", dir), ("mtime", mtime)];
        let reply = self
            .agile
            .call(
                op,
                "/post/file",
                Payload::EmptyFileForm {
                    filename: name,
                    fields: &fields,
                },
                |r| with_type(r.header("X-Agile-Recursive", "true"), file),
            )
            .await?;
        if !reply.ok() {
            return Err(codes::classify(op, &reply));
        }
        Ok(self.object(&file.key))
    }

    /// `getMultipartStatus(token, mpid)`; `None` when the id is unknown (`-2`).
    async fn status(&self, op: Op, mpid: &str) -> Result<Option<UploadStatus>, BackendError> {
        let result = self
            .agile
            .rpc(op, "getMultipartStatus", &[json!(mpid)])
            .await?;
        if rpc_code(&result) == Some(-2) {
            return Ok(None);
        }
        let st: UploadStatus =
            serde_json::from_value(result.clone()).map_err(|e| BackendError::Retry {
                op,
                after: None,
                cause: format!("getMultipartStatus answered {result} ({e})"),
            })?;
        if st.code != 0 {
            return Err(rpc_refused(op, "getMultipartStatus", &result));
        }
        Ok(Some(st))
    }

    /// The upload is no longer one pieces can be added to or completed.
    fn gone(op: Op, mpid: &str, what: &str) -> BackendError {
        BackendError::SessionGone {
            op,
            detail: format!("multipart upload {mpid} {what}"),
        }
    }

    /// Every piece record of the upload, in order of arrival.
    async fn pieces(&self, op: Op, mpid: &str) -> Result<Vec<Piece>, BackendError> {
        self.paged(
            op,
            "listMultipartPiece",
            &[json!(mpid)],
            "pieces",
            |result| match rpc_code(result) {
                Some(-2) => Self::gone(op, mpid, "is unknown to the service"),
                _ => rpc_refused(op, "listMultipartPiece", result),
            },
        )
        .await
    }

    /// Every record of a JSON-RPC listing paged by cookie (`listMultipartPiece`,
    /// `listMultipart`): `lead` are the arguments before the cookie and the page
    /// size, the records are under `field`; a code other than 0 goes to `refused`.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        op: Op,
        method: &str,
        lead: &[Value],
        field: &str,
        refused: impl Fn(&Value) -> BackendError,
    ) -> Result<Vec<T>, BackendError> {
        let mut all = Vec::new();
        let mut cookie = 0i64;
        for _ in 0..MAX_PAGES {
            let mut args = lead.to_vec();
            args.extend([json!(cookie), json!(PAGE)]);
            let result = self.agile.rpc(op, method, &args).await?;
            if rpc_code(&result) != Some(0) {
                return Err(refused(&result));
            }
            let page: Vec<T> = result
                .get(field)
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| BackendError::Retry {
                    op,
                    after: None,
                    cause: format!("{method}: unexpected {field} ({e})"),
                })?
                .unwrap_or_default();
            let next = result.get("cookie").and_then(Value::as_i64).unwrap_or(0);
            let done = page.is_empty() || next == 0;
            all.extend(page);
            if done {
                return Ok(all);
            }
            cookie = next;
        }
        Err(BackendError::Retry {
            op,
            after: None,
            cause: format!("{method} did not end within {MAX_PAGES} pages"),
        })
    }

    /// `HEAD` of the object on the delivery host: `Ok(None)` when it is not there
    /// (yet) or says no checksum.
    async fn head(&self, key: &str) -> Result<Option<RemoteStat>, BackendError> {
        let Some(url) = self.origin_url(key) else {
            return Ok(None);
        };
        let req = self.agile.http.head(url);
        let progress = super::Progress::without_body();
        let resp = http::send(Op::Stat, req, &progress, self.agile.timeouts()).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(http::from_status(
                Op::Stat,
                status,
                http::retry_after(resp.headers()),
                format!("HEAD on the delivery host: HTTP {status}"),
            ));
        }
        let h = resp.headers();
        let size = h
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let sum = h
            .get("X-Agile-Checksum")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty());
        Ok(match (size, sum) {
            (Some(size), Some(sum)) => Some(RemoteStat {
                size,
                digest: Some(Digest::from_hex(DigestKind::Sha256, sum)),
            }),
            _ => None,
        })
    }

    /// JSON-RPC `stat(token, path, true)` on the ingest host.
    async fn rpc_stat(&self, key: &str) -> Result<Option<RemoteStat>, BackendError> {
        let result = self
            .agile
            .rpc(Op::Stat, "stat", &[json!(self.path(key)), json!(true)])
            .await?;
        match rpc_code(&result) {
            Some(0) => {}
            // edgio.md §Integrity: not found is `{"code": -1, ...}`.
            Some(-1) => return Ok(None),
            _ => return Err(rpc_refused(Op::Stat, "stat", &result)),
        }
        // type 1 is a folder: no object of ours.
        if result.get("type").and_then(Value::as_i64) == Some(1) {
            return Ok(None);
        }
        let size =
            result
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| BackendError::Retry {
                    op: Op::Stat,
                    after: None,
                    cause: format!("stat answered no size: {result}"),
                })?;
        let digest = result
            .get("checksum")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| Digest::from_hex(DigestKind::Sha256, s));
        Ok(Some(RemoteStat { size, digest }))
    }

    fn origin_url(&self, key: &str) -> Option<Url> {
        let mut url = self.origin.clone()?;
        {
            let mut segs = url.path_segments_mut().ok()?;
            segs.pop_if_empty();
            if !self.directory.is_empty() {
                segs.extend(self.directory.split('/'));
            }
            segs.extend(key.split('/'));
        }
        Some(url)
    }

    fn object(&self, key: &str) -> RemoteObject {
        RemoteObject {
            key: key.to_string(),
            id: None,
            extra: json!({"path": self.path(key)}),
        }
    }

    /// A refused piece or completion call: the upload is gone (`-2` unknown,
    /// `-8` completed/deleted/expired, `-17` aborted) or the default mapping.
    fn refused_upload(op: Op, mpid: &str, reply: &Reply) -> BackendError {
        match reply.agile {
            Some(-2) => Self::gone(op, mpid, "is unknown to the service"),
            Some(-17) => Self::gone(op, mpid, "was aborted"),
            Some(-8) => Self::gone(op, mpid, "is completed, deleted or expired"),
            _ => codes::classify(op, reply),
        }
    }
}

/// `X-Agile-Content-Type` when the file has a type; without it the server detects one
/// from the name.
fn with_type(r: reqwest::RequestBuilder, file: &FileSpec) -> reqwest::RequestBuilder {
    match &file.content_type {
        Some(t) => r.header("X-Agile-Content-Type", t),
        None => r,
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters and `/`.
fn rfc3986(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl Backend for EdgioBackend {
    fn name(&self) -> &'static str {
        "edgio"
    }

    /// Names travel in HTTP headers (`X-Agile-Basename`, `X-Agile-Path`), whose
    /// values lose leading and trailing spaces (RFC 9110 §5.5): " a.txt" would be
    /// stored as "a.txt", perhaps over another file.
    fn name_problem(&self, key: &str) -> Option<String> {
        crate::backend::control_character(key).or_else(|| {
            key.split('/')
                .find(|seg| seg.trim_matches(' ') != *seg)
                .map(|seg| format!("{seg:?} begins or ends with a space, which Edgio's headers drop (the file would be stored under another name)"))
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            addressing: Addressing::PartNumber { first: 1 },
            // edgio.md: no minimum piece size.
            part_size: PartSizeRule::Chosen {
                min: 1,
                max: MAX_PIECE,
            },
            max_parts: Some(MAX_PIECES),
            parallel_parts: true,
            lists_held_parts: true,
            part_digest: Some(DigestKind::Sha256),
            object_digest: Some(DigestKind::Sha256),
            single_request_below: self.multipart_above.saturating_add(1),
            last_part_on_complete: false,
            ranged_reads: self.origin.is_some(),
            request_deadline: None,
            asynchronous_join: true,
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
        let (dir, name) = self.split(&file.key);
        let sum = digests
            .object
            .as_ref()
            .filter(|d| d.kind == DigestKind::Sha256)
            .map(|d| d.hex.clone());
        let mtime = file.mtime.to_string();
        if file.size == 0 {
            return self.put_empty(file, &dir, &name, &mtime).await;
        }
        let reply = self
            .agile
            .call(op, "/post/raw", Payload::Part(&body), |r| {
                let r = Self::named(
                    r,
                    &[("X-Agile-Basename", &name), ("X-Agile-Directory", &dir)],
                )
                .header("X-Agile-Recursive", "true")
                .header("X-Agile-MTime", &mtime)
                .header("content-type", "application/octet-stream");
                let r = with_type(r, file);
                match &sum {
                    Some(s) => r.header("X-Agile-Checksum", s),
                    None => r,
                }
            })
            .await?;
        if !reply.ok() {
            return Err(match reply.agile {
                // The body arrived other than it left: the server discarded it.
                Some(-26) if reply.status == StatusCode::BAD_REQUEST => BackendError::Conflict {
                    op,
                    detail: format!(
                        "the server discarded the upload: its SHA-256 differs from the file's ({})",
                        reply.describe()
                    ),
                },
                _ => codes::classify(op, &reply),
            });
        }
        // Belt and braces where no checksum went with the request.
        if let (Some(ours), Some(theirs)) = (&sum, reply.header("X-Agile-Checksum"))
            && !ours.eq_ignore_ascii_case(theirs.trim())
        {
            return Err(BackendError::Conflict {
                op,
                detail: format!("the server stored SHA-256 {theirs}, the file has {ours}"),
            });
        }
        Ok(self.object(&file.key))
    }

    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError> {
        let op = Op::Begin;
        let (dir, name) = self.split(&file.key);
        // `/multipart/create` wants the folder to exist (`-23`).
        if dir != "/" {
            let reply = self
                .agile
                .call(op, "/post/directory", Payload::Empty, |r| {
                    Self::named(r, &[("X-Agile-Directory", &dir)])
                        .header("X-Agile-Recursive", "true")
                })
                .await?;
            if !reply.ok() {
                return Err(match reply.agile {
                    Some(-2) => BackendError::Fatal {
                        op,
                        status: Some(reply.status.as_u16()),
                        detail: format!(
                            "a file on the service has the name of the folder {dir}: {}",
                            reply.describe()
                        ),
                    },
                    _ => codes::classify(op, &reply),
                });
            }
        }
        let mtime = file.mtime.to_string();
        let reply = self
            .agile
            .call(op, "/multipart/create", Payload::Empty, |r| {
                let r = Self::named(
                    r,
                    &[("X-Agile-Basename", &name), ("X-Agile-Directory", &dir)],
                );
                with_type(r.header("X-Agile-MTime", &mtime), file)
            })
            .await?;
        if !reply.ok() {
            return Err(match reply.agile {
                // The folder went between the two calls: make it again.
                Some(-23) => BackendError::Retry {
                    op,
                    after: None,
                    cause: reply.describe(),
                },
                // More than a million open uploads: they expire within a day.
                Some(-1) => BackendError::Retry {
                    op,
                    after: Some(std::time::Duration::from_secs(600)),
                    cause: reply.describe(),
                },
                _ => codes::classify(op, &reply),
            });
        }
        let mpid = reply
            .header("X-Agile-Multipart")
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| BackendError::Retry {
                op,
                after: None,
                cause: "the create answer carries no X-Agile-Multipart".into(),
            })?;
        Ok(Session {
            id: mpid.to_string(),
            part_size: None,
            extra: serde_json::to_value(SessionExtra {
                path: self.path(&file.key),
            })
            .unwrap_or(Value::Null),
        })
    }

    async fn put_part(
        &self,
        session: &Session,
        part: &PartSpec,
        body: PartBody,
    ) -> Result<Receipt, BackendError> {
        let op = Op::PutPart;
        let number = part.number(1).to_string();
        let reply = self
            .agile
            .call(op, "/multipart/piece", Payload::Part(&body), |r| {
                r.header("X-Agile-Multipart", &session.id)
                    .header("X-Agile-Part", &number)
                    .header("content-type", "application/octet-stream")
            })
            .await?;
        if !reply.ok() {
            return Err(Self::refused_upload(op, &session.id, &reply));
        }
        let theirs = reply
            .header("X-Agile-Checksum")
            .map(|s| Digest::from_hex(DigestKind::Sha256, s));
        // The seed's check: the piece's SHA-256 as stored against the one read.
        // A piece damaged on the way is sent again; the same number replaces it.
        if let (Some(theirs), Some(ours)) = (&theirs, &part.digest)
            && !theirs.matches(ours)
        {
            return Err(BackendError::Retry {
                op,
                after: None,
                cause: format!(
                    "piece {number} was stored as {theirs}, it was read as {ours}; sending it again"
                ),
            });
        }
        Ok(Receipt {
            digest: theirs,
            ..Receipt::of(part)
        })
    }

    async fn held_parts(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError> {
        let op = Op::HeldParts;
        let mpid = &session.id;
        let Some(st) = self.status(op, mpid).await? else {
            return Err(Self::gone(op, mpid, "is unknown to the service"));
        };
        let Some(ps) = session.part_size else {
            return Ok(None);
        };
        let plan = |n: u32| part_range(file.size, ps, n.checked_sub(1)?);
        match st.state {
            state::NEW | state::READY => {}
            // Completed before (an answer lost, a crash before it was recorded):
            // the service holds every piece; `complete` finds the join running.
            state::COMPLETE | state::JOIN | state::SUCCESS | state::FAILED => {
                let all = (1..)
                    .map_while(|n| plan(n).map(|(o, l)| Receipt::plain(n - 1, o, l)))
                    .collect();
                return Ok(Some(all));
            }
            s => return Err(Self::gone(op, mpid, &format!("is {}", state::name(s)))),
        }
        // Per number, the latest listed piece wins (a re-sent piece replaces the
        // earlier one; both are listed, in order of arrival).
        let mut latest = std::collections::BTreeMap::new();
        for p in self.pieces(op, mpid).await? {
            latest.insert(p.number, p);
        }
        let held = latest
            .into_values()
            .filter(|p| p.state == PIECE_NEW)
            .filter_map(|p| {
                let (offset, length) = plan(p.number)?;
                (length == p.size).then(|| Receipt::plain(p.number - 1, offset, length))
            })
            .collect();
        Ok(Some(held))
    }

    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        _parts: &[Receipt],
        _last: Option<FinalPart>,
        _digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError> {
        let op = Op::Complete;
        let mpid = &session.id;
        // Asked first, so that a completion is never sent twice: after a lost
        // answer the service is already joining.
        match self.status(op, mpid).await? {
            None => return Err(Self::gone(op, mpid, "is unknown to the service")),
            Some(st) => match st.state {
                state::NEW | state::READY => {}
                state::COMPLETE | state::JOIN | state::SUCCESS | state::FAILED => {
                    return Ok(self.object(&file.key));
                }
                s => return Err(Self::gone(op, mpid, &format!("is {}", state::name(s)))),
            },
        }
        let reply = self
            .agile
            .call(op, "/multipart/complete", Payload::Empty, |r| {
                r.header("X-Agile-Multipart", mpid)
            })
            .await?;
        if reply.ok() {
            return Ok(self.object(&file.key));
        }
        Err(match reply.agile {
            // Completed by a request whose answer was lost.
            Some(-8) => return Ok(self.object(&file.key)),
            // Pieces missing: the next attempt lists them again and sends them.
            Some(-4 | -5) => BackendError::Retry {
                op,
                after: None,
                cause: format!(
                    "the service lacks pieces of {} ({}); they are listed again and sent",
                    Self::extra(session).path,
                    reply.describe()
                ),
            },
            _ => Self::refused_upload(op, mpid, &reply),
        })
    }

    async fn join(&self, session: &Session, file: &FileSpec) -> Result<Join, BackendError> {
        let op = Op::Complete;
        let mpid = &session.id;
        let Some(st) = self.status(op, mpid).await? else {
            return Err(Self::gone(op, mpid, "is unknown to the service"));
        };
        Ok(match st.state {
            state::COMPLETE | state::JOIN => Join::Pending {
                stage: state::name(st.state).to_string(),
            },
            state::SUCCESS => Join::Done(self.object(&file.key)),
            state::FAILED => Join::Failed(format!("the join of {mpid} FAILED: {}", st.error)),
            // The completion noted before it was sent never arrived.
            state::NEW | state::READY => Join::NotRequested,
            s => return Err(Self::gone(op, mpid, &format!("is {}", state::name(s)))),
        })
    }

    async fn restart_join(&self, session: &Session) -> Result<(), BackendError> {
        let op = Op::Complete;
        let result = self
            .agile
            .rpc(op, "restartMultipart", &[json!(session.id)])
            .await?;
        match rpc_code(&result) {
            Some(0) => Ok(()),
            // Not FAILED any more, or collected since: begin again.
            Some(-22 | -2) => Err(Self::gone(op, &session.id, "cannot be restarted")),
            _ => Err(rpc_refused(op, "restartMultipart", &result)),
        }
    }

    async fn completed(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<RemoteObject>, BackendError> {
        Ok(match self.status(Op::Complete, &session.id).await? {
            Some(st) if st.state == state::SUCCESS => Some(self.object(&file.key)),
            _ => None,
        })
    }

    async fn abort(&self, session: &Session) -> Result<(), BackendError> {
        let result = self
            .agile
            .rpc(Op::Abort, "abortMultipart", &[json!(session.id)])
            .await?;
        match rpc_code(&result) {
            // Aborted now or before; unknown; or completed (nothing left to abort).
            Some(0 | -17 | -2 | -18) => Ok(()),
            _ => Err(rpc_refused(Op::Abort, "abortMultipart", &result)),
        }
    }

    async fn stat(
        &self,
        key: &str,
        _known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError> {
        // The delivery host first (edgio.md: verify where objects are served); it
        // lags the ingest host after a write, so "not there" is asked again there.
        match self.head(key).await {
            Ok(Some(st)) => return Ok(Some(st)),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "HEAD on the delivery host failed; asking stat"),
        }
        self.rpc_stat(key).await
    }

    async fn read_range(
        &self,
        remote: &RemoteObject,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let op = Op::ReadBack;
        let Some(url) = self.origin_url(&remote.key) else {
            return Err(BackendError::Fatal {
                op,
                status: None,
                detail: "reading objects back needs backend.origin_url".into(),
            });
        };
        if len == 0 {
            return Ok(Bytes::new());
        }
        let req = self.agile.http.get(url).header(
            reqwest::header::RANGE,
            format!("bytes={offset}-{}", offset + len - 1),
        );
        let progress = super::Progress::without_body();
        let resp = http::send(op, req, &progress, self.agile.timeouts()).await?;
        let status = resp.status();
        if matches!(status.as_u16(), 404 | 416) {
            return Ok(Bytes::new());
        }
        if status == StatusCode::OK && offset > 0 {
            return Err(BackendError::Fatal {
                op,
                status: Some(200),
                detail: "the delivery host answered a ranged read with the whole object; \
                         set upload.verify = \"auto\" or \"size\""
                    .into(),
            });
        }
        if !status.is_success() {
            return Err(http::from_status(
                op,
                status,
                http::retry_after(resp.headers()),
                format!("GET on the delivery host: HTTP {status}"),
            ));
        }
        let limit = usize::try_from(len.saturating_add(1)).unwrap_or(usize::MAX);
        let mut bytes =
            Bytes::from(http::read_body(op, resp, limit, self.agile.timeouts().answer).await?);
        bytes.truncate(len as usize);
        Ok(bytes)
    }

    fn reload_credentials(&self) -> bool {
        self.agile.reload()
    }

    async fn reread_credentials(&self) -> Result<bool, BackendError> {
        self.agile.reread().await
    }

    async fn close(&self) {
        self.agile.logout().await;
    }

    async fn sweep(&self, known: &[Session], unrecorded: &[String]) -> Result<u64, BackendError> {
        if unrecorded.is_empty() {
            return Ok(0);
        }
        let op = Op::Abort;
        let wanted: Vec<String> = unrecorded.iter().map(|k| self.path(k)).collect();
        let uploads: Vec<Upload> = self
            .paged(op, "listMultipart", &[], "multipart", |result| {
                rpc_refused(op, "listMultipart", result)
            })
            .await?;
        let mut aborted = 0;
        for u in &uploads {
            // Listed paths carry the account prefix (`/<account>/...`).
            let unprefixed = u
                .path
                .strip_prefix('/')
                .and_then(|p| p.split_once('/'))
                .map(|(_, rest)| format!("/{rest}"));
            let ours = wanted
                .iter()
                .any(|w| u.path == *w || unprefixed.as_deref() == Some(w.as_str()));
            let open = matches!(u.state, state::NEW | state::READY);
            if ours && open && !known.iter().any(|s| s.id == u.mpid) {
                let s = Session {
                    id: u.mpid.clone(),
                    part_size: None,
                    extra: Value::Null,
                };
                self.abort(&s).await?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_unreserved_and_slashes() {
        assert_eq!(rfc3986("a b/ü.txt"), "a%20b/%C3%BC.txt");
        assert_eq!(rfc3986("plain-name_1.log"), "plain-name_1.log");
    }
}
