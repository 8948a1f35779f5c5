//! The backend seam: one small async trait, capabilities as data, errors that name
//! the engine's next action.
//!
//! A backend speaks one service's wire protocol and nothing else: it never sees the
//! journal, never counts retries and never sleeps for backoff. The engine plans from
//! [`Capabilities`] and never asks which vendor it talks to. `Session`, `Receipt` and
//! `RemoteObject` are plain serde data so that the journal can store them and a
//! restarted daemon can hand them back.

pub mod bearer;
mod body;
pub mod box_api;
pub mod edgio;
mod error;
pub mod exosite;
pub mod http;
pub mod insights_hub;
pub mod local;
pub mod mime;
mod progress;
pub mod s3;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use body::{FileRange, Meter, PartBody, Source};
pub use error::{BackendError, Op};
pub use progress::{Expired, Progress, Timeouts};

use crate::digest::{Digest, DigestKind};

/// How parts are named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `Content-Range: bytes a-b/total`.
    ByteOffset,
    /// A part number; the first part is `first`.
    PartNumber { first: u32 },
}

/// Who chooses the part size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartSizeRule {
    /// The client chooses within `[min, max]`; the last part may be shorter than `min`.
    Chosen { min: u64, max: u64 },
    /// The session answer dictates it ([`Session::part_size`]).
    SetByServer,
}

/// What a backend can do, declared once. Anything not claimed is off.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    pub addressing: Addressing,
    pub part_size: PartSizeRule,
    /// Most parts one session may hold.
    pub max_parts: Option<u32>,
    /// Parts of one file may be in flight together.
    pub parallel_parts: bool,
    /// `held_parts` can say what the server holds; otherwise resume trusts the journal.
    pub lists_held_parts: bool,
    /// Digest computed per part (sent with it, or compared with the server's answer).
    pub part_digest: Option<DigestKind>,
    /// Digest `stat` reports for the whole object; `None`: verify compares size only.
    pub object_digest: Option<DigestKind>,
    /// Files smaller than this go in one request (`put_single`) without a session.
    pub single_request_below: u64,
    /// The last part's bytes ride on `complete` (Insights Hub's `upload=complete`):
    /// it is never sent with `put_part` and never taken as held from a listing.
    pub last_part_on_complete: bool,
    /// `read_range` works: verification can sample or download the stored object.
    pub ranged_reads: bool,
    /// Longest one request may take before the service gives up on it (a gateway
    /// timeout); the engine warns when a part at the bandwidth limit would take
    /// longer.
    pub request_deadline: Option<Duration>,
    /// A completion the service accepted is assembled afterwards (Edgio's join):
    /// the engine polls [`Backend::join`] until the object is there, the file
    /// resting in `joining` between polls.
    pub asynchronous_join: bool,
    /// In parts, the digest the service reports for the object is made from the
    /// parts' digests (S3's multipart ETag, the MD5 of the parts' MD5s): the read
    /// pass then hashes each byte once, for its part, and not again for the file.
    pub object_digest_from_parts: bool,
}

/// The name's first control character (U+0000–U+001F, U+007F), as a reason.
pub fn control_character(key: &str) -> Option<String> {
    key.chars().find(|c| c.is_ascii_control()).map(|c| {
        format!(
            "the name contains the control character {:?}, which the service cannot store",
            c
        )
    })
}

/// Where an accepted completion stands under [`Capabilities::asynchronous_join`].
#[derive(Debug, Clone, PartialEq)]
pub enum Join {
    /// The object is stored: verify it.
    Done(RemoteObject),
    /// Still being assembled; `stage` names where, for logs and `status`.
    Pending { stage: String },
    /// The service gave up assembling it; [`Backend::restart_join`] may run it again.
    Failed(String),
    /// The service holds the upload but no completion of it: the request that the
    /// journal noted before sending it never arrived. Complete it (again).
    NotRequested,
}

/// The file being uploaded, as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path relative to the watched folder, `/`-separated, UTF-8.
    pub key: String,
    pub size: u64,
    /// Modification time, seconds since the epoch (some services store it).
    pub mtime: i64,
    /// The MIME type to store with the object (a rule's or `upload.content_type`,
    /// `auto` already resolved); `None`: the backend's own default. Services without
    /// a stored type (Box, a local folder) ignore it.
    pub content_type: Option<String>,
}

/// An open upload session. Committed to the journal before any part is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The service's id of the session (or a path where the path is the key).
    pub id: String,
    /// Part size dictated by the server ([`PartSizeRule::SetByServer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// Anything else the backend needs to continue the session after a restart.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// One part to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// 0-based position in the file's part plan.
    pub index: u32,
    pub offset: u64,
    pub length: u64,
    /// Size of the whole file (for `Content-Range`'s total).
    pub total: u64,
    /// The part's digest of the backend's `part_digest` kind, computed while reading.
    pub digest: Option<Digest>,
    /// Whether this is the file's last part.
    pub last: bool,
}

/// `(offset, length)` of part `index` when a file of `size` bytes is cut into parts
/// of `part_size`; `None` past its end. The one cut every plan uses.
pub fn part_range(size: u64, part_size: u64, index: u32) -> Option<(u64, u64)> {
    let ps = part_size.max(1);
    let offset = u64::from(index).checked_mul(ps)?;
    (offset < size).then(|| (offset, ps.min(size - offset)))
}

impl PartSpec {
    /// The wire part number under [`Addressing::PartNumber`].
    pub fn number(&self, first: u32) -> u32 {
        first + self.index
    }
}

/// The server's acknowledgement of one part: what `complete` needs and what resume
/// compares. Stored in the journal with the part's `uploaded` state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub index: u32,
    pub offset: u64,
    pub length: u64,
    /// The digest the server reported for the part, if it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Service-specific data (part id, ETag...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

/// A delivered object, as the service names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteObject {
    pub key: String,
    /// The service's id for it, where it has one (Box file id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

impl Receipt {
    /// A receipt of a service that reports nothing about a part but its arrival.
    pub fn plain(index: u32, offset: u64, length: u64) -> Receipt {
        Receipt {
            index,
            offset,
            length,
            digest: None,
            extra: serde_json::Value::Null,
        }
    }

    /// A plain receipt of `part`.
    pub fn of(part: &PartSpec) -> Receipt {
        Receipt::plain(part.index, part.offset, part.length)
    }
}

impl RemoteObject {
    /// An object known by its key alone (no service id).
    pub fn at(key: &str) -> RemoteObject {
        RemoteObject {
            key: key.to_string(),
            id: None,
            extra: serde_json::Value::Null,
        }
    }
}

/// The last part, handed to `complete` under [`Capabilities::last_part_on_complete`].
#[derive(Debug)]
pub struct FinalPart {
    pub spec: PartSpec,
    pub body: PartBody,
}

/// What the service says it stores, for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStat {
    pub size: u64,
    pub digest: Option<Digest>,
}

/// The whole-file digests computed during the read pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigests {
    /// Of [`Capabilities::object_digest`]'s kind, when the backend has one.
    pub object: Option<Digest>,
    /// A single-request upload's one part, of [`Capabilities::part_digest`]'s kind:
    /// for a service that checks each request's body (Exosite's `MD5` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Digest>,
}

/// One service's wire protocol.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Short name for logs and `status`: "local", "box"...
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities;

    /// Why the service cannot store a file under `key` exactly (it would keep it
    /// under another name, or refuse it whatever the retries); `None` when it can.
    /// Asked before the first request; such a file is failed with the reason.
    /// By default a name with a control character is refused: it cannot travel in
    /// an HTTP header or a form's file name, and no vendor documents it.
    fn name_problem(&self, key: &str) -> Option<String> {
        control_character(key)
    }

    /// Uploads a small file in one request.
    /// # Behavior
    /// - Only called for files below [`Capabilities::single_request_below`].
    /// - `digests` holds the whole-file digest, computed before sending.
    async fn put_single(
        &self,
        file: &FileSpec,
        body: PartBody,
        digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError>;

    /// Opens an upload session.
    /// # Behavior
    /// - The engine commits the returned `Session` before sending any part.
    /// - With [`PartSizeRule::SetByServer`], `Session::part_size` is set.
    async fn begin(&self, file: &FileSpec) -> Result<Session, BackendError>;

    /// Sends one part.
    /// # Behavior
    /// - Re-sending a part the server already holds succeeds with its receipt: after a
    ///   timeout the engine cannot know whether the first attempt landed.
    async fn put_part(
        &self,
        session: &Session,
        part: &PartSpec,
        body: PartBody,
    ) -> Result<Receipt, BackendError>;

    /// The parts the server holds, or `Ok(None)` when the service cannot say.
    /// # Behavior
    /// - A service that names parts by number or progress alone maps them to byte
    ///   ranges with [`part_range`], from the file's size and `Session::part_size`
    ///   (which the engine records).
    async fn held_parts(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<Vec<Receipt>>, BackendError>;

    /// Finishes the session.
    /// # Behavior
    /// - `parts` are ordered by index; with `last` they cover the file.
    /// - `last` is `Some` exactly under [`Capabilities::last_part_on_complete`]: the
    ///   last part's bytes, which this request carries.
    /// - May be called again for a session it already completed, or whose completion
    ///   the service still works on (an answer lost, a crash, a `Retry`): a service
    ///   with an asynchronous join finds out where the join stands and polls it
    ///   (bounded), rather than starting it over. A completed session may answer
    ///   `SessionGone`: the engine then checks whether the object is there.
    async fn complete(
        &self,
        session: &Session,
        file: &FileSpec,
        parts: &[Receipt],
        last: Option<FinalPart>,
        digests: &FileDigests,
    ) -> Result<RemoteObject, BackendError>;

    /// Where the join of an accepted completion stands (only under
    /// [`Capabilities::asynchronous_join`]).
    /// # Behavior
    /// - Never asks for the completion again: it only looks.
    /// - A session the service no longer knows answers `SessionGone`.
    async fn join(&self, session: &Session, file: &FileSpec) -> Result<Join, BackendError> {
        let _ = session;
        Ok(Join::Done(RemoteObject::at(&file.key)))
    }

    /// Runs a failed join again. The engine asks once per session; a join that
    /// fails again begins a new upload.
    async fn restart_join(&self, session: &Session) -> Result<(), BackendError> {
        Err(BackendError::SessionGone {
            op: Op::Complete,
            detail: format!("{} cannot restart a join of {}", self.name(), session.id),
        })
    }

    /// Ends what the backend holds open on the service (Edgio: logs out). Called
    /// once at shutdown, after the last upload stopped. Best effort.
    async fn close(&self) {}

    /// Discards a session. Best effort: a killed daemon never calls it.
    async fn abort(&self, session: &Session) -> Result<(), BackendError>;

    /// Size and digest of the stored object at `key`; `Ok(None)` if there is none.
    /// `known` is the object `complete` returned, where the engine has it.
    async fn stat(
        &self,
        key: &str,
        known: Option<&RemoteObject>,
    ) -> Result<Option<RemoteStat>, BackendError>;

    /// The object this session's completion made, if the service holds it: the
    /// answer to a completion was lost, or the session is gone and the engine asks
    /// whether it was completed before.
    /// # Behavior
    /// - A service that can tell its own completion from an older object at the key
    ///   (Insights Hub: an ETag newer than the one the upload began over) answers.
    /// - The default, `None`, leaves it to the engine, which accepts an object whose
    ///   digest is the file's and otherwise sends the file again.
    async fn completed(
        &self,
        session: &Session,
        file: &FileSpec,
    ) -> Result<Option<RemoteObject>, BackendError> {
        let _ = (session, file);
        Ok(None)
    }

    /// The digest `stat` must report for the object: by default the whole-file
    /// digest of the read pass. A service whose object checksum is built from its
    /// parts' (S3's checksum of checksums) computes it from the receipts.
    fn expected_digest(&self, digests: &FileDigests, parts: &[Receipt]) -> Option<Digest> {
        let _ = parts;
        digests.object.clone()
    }

    /// `len` bytes of the stored object from `offset`, for verification that reads
    /// the object back.
    /// # Behavior
    /// - Only called under [`Capabilities::ranged_reads`].
    /// - Fewer bytes than asked (the object is shorter) is not an error here: the
    ///   caller compares.
    async fn read_range(
        &self,
        remote: &RemoteObject,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        let _ = (remote, offset, len);
        Err(BackendError::Fatal {
            op: Op::ReadBack,
            status: None,
            detail: format!("{} cannot read stored objects back", self.name()),
        })
    }

    /// Re-reads the credential from its source; `true` when it differs from the one
    /// in use (which it then replaces).
    /// # Behavior
    /// - Called by the engine while the service refuses the credentials, every few
    ///   seconds; on `true` the engine tries again at once instead of backing off.
    /// - A backend without credentials keeps the default.
    fn reload_credentials(&self) -> bool {
        false
    }

    /// Reads the credential from its source now, on demand (SIGHUP), so that the
    /// next request carries it without first meeting a refusal; `Ok(true)` when it
    /// changed. Unlike [`Backend::reload_credentials`], a source that cannot be read
    /// is an error (naming the source, never a value), and the credential in use
    /// stays.
    /// # Behavior
    /// - Requests already sent keep the credential they were sent with.
    /// - A backend that logs in (Edgio) forgets its login when the password
    ///   changed: the next request logs in with the new one.
    /// - A backend without credentials keeps the default, `Ok(false)`.
    async fn reread_credentials(&self) -> Result<bool, BackendError> {
        Ok(false)
    }

    /// Discards what the journal does not account for: sessions and staging begun by
    /// a daemon that died before it recorded them. Returns how many it discarded.
    /// # Behavior
    /// - Called once at start, before any upload: nothing else is in flight.
    /// - `known`: every session the journal holds (keep these).
    /// - `unrecorded`: keys for which `begin` was called without its answer being
    ///   recorded; a service that can list open sessions by key aborts those.
    /// - A service that can list nothing keeps the default and relies on its own
    ///   expiry of abandoned sessions.
    async fn sweep(&self, known: &[Session], unrecorded: &[String]) -> Result<u64, BackendError> {
        let _ = (known, unrecorded);
        Ok(0)
    }
}

/// `[backend]`: which service, and its settings. The `type` key picks the variant;
/// each variant's struct refuses unknown keys (newtype variants keep serde's
/// `deny_unknown_fields` working inside an internally tagged enum).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BackendConfig {
    Local(local::LocalConfig),
    Box(box_api::BoxConfig),
    InsightsHub(insights_hub::InsightsHubConfig),
    Exosite(exosite::ExositeConfig),
    Edgio(edgio::EdgioConfig),
    S3(s3::S3Config),
}

/// What building a backend needs besides its own section.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// How its requests are timed.
    pub timeouts: Timeouts,
    /// `upload.part_size`: a backend that sends files up to one part in one request
    /// sets its single-request threshold from it.
    pub part_size: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            timeouts: Timeouts::default(),
            part_size: 8 << 20,
        }
    }
}

impl BackendConfig {
    /// Resolves relative paths (against the config file's folder).
    pub fn resolved(self, resolve: &dyn Fn(&Path) -> PathBuf) -> BackendConfig {
        match self {
            BackendConfig::Local(c) => BackendConfig::Local(local::LocalConfig {
                path: resolve(&c.path),
            }),
            BackendConfig::Box(c) => BackendConfig::Box(c.resolved(resolve)),
            BackendConfig::InsightsHub(c) => BackendConfig::InsightsHub(c.resolved(resolve)),
            BackendConfig::Exosite(c) => BackendConfig::Exosite(c.resolved(resolve)),
            BackendConfig::Edgio(c) => BackendConfig::Edgio(c.resolved(resolve)),
            BackendConfig::S3(c) => BackendConfig::S3(c.resolved(resolve)),
        }
    }

    /// The destination folder of a backend that writes to this machine.
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            BackendConfig::Local(c) => Some(&c.path),
            BackendConfig::Box(_)
            | BackendConfig::InsightsHub(_)
            | BackendConfig::Exosite(_)
            | BackendConfig::Edgio(_)
            | BackendConfig::S3(_) => None,
        }
    }

    /// Cross-key checks of the file itself: `Err((key, why))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self {
            BackendConfig::Local(_) => Ok(()),
            BackendConfig::Box(c) => c.validate(),
            BackendConfig::InsightsHub(c) => c.validate(),
            BackendConfig::Exosite(c) => c.validate(),
            BackendConfig::Edgio(c) => c.validate(),
            BackendConfig::S3(c) => c.validate(),
        }
    }

    /// Problems of the machine (missing credential files...): `(key, why)`.
    pub fn check_environment(&self) -> Vec<(&'static str, String)> {
        match self {
            // The destination folder is created on start.
            BackendConfig::Local(_) => Vec::new(),
            BackendConfig::Box(c) => c.check_environment(),
            BackendConfig::InsightsHub(c) => c.check_environment(),
            BackendConfig::Exosite(c) => c.check_environment(),
            BackendConfig::Edgio(c) => c.check_environment(),
            BackendConfig::S3(c) => c.check_environment(),
        }
    }

    /// A secret file that others may read or write (never its content): warned
    /// about at start and by `check-config`, never refused (a device image may ship
    /// it so, and the daemon works).
    pub fn exposure(&self) -> Option<crate::secret::Exposure> {
        match self {
            BackendConfig::Local(_) => None,
            BackendConfig::Box(c) => c.exposure(),
            BackendConfig::InsightsHub(c) => c.exposure(),
            BackendConfig::Exosite(c) => c.exposure(),
            BackendConfig::Edgio(c) => c.exposure(),
            BackendConfig::S3(c) => c.exposure(),
        }
    }

    /// Builds the backend. A secret file others can read is warned about here, as
    /// the daemon (and `push`) starts: the one place every start passes.
    pub fn build(&self, opts: BuildOptions) -> Result<Arc<dyn Backend>, BackendError> {
        if let Some(e) = self.exposure() {
            tracing::warn!(
                key = e.key,
                path = %e.path.display(),
                mode = %format!("{:04o}", e.mode & 0o7777),
                "{e}"
            );
        }
        match self {
            BackendConfig::Local(c) => Ok(Arc::new(local::LocalBackend::new(&c.path)?)),
            BackendConfig::Box(c) => Ok(Arc::new(box_api::BoxBackend::new(c, opts.timeouts)?)),
            BackendConfig::InsightsHub(c) => Ok(Arc::new(insights_hub::InsightsHubBackend::new(
                c,
                opts.timeouts,
                opts.part_size,
            )?)),
            BackendConfig::Exosite(c) => {
                Ok(Arc::new(exosite::ExositeBackend::new(c, opts.timeouts)?))
            }
            BackendConfig::Edgio(c) => Ok(Arc::new(edgio::EdgioBackend::new(c, opts.timeouts)?)),
            BackendConfig::S3(c) => Ok(Arc::new(s3::S3Backend::new(c, opts.timeouts)?)),
        }
    }

    /// Whether the backend can read stored objects back (`upload.verify = "sample"`
    /// and `"full"` need it); the same as its [`Capabilities::ranged_reads`].
    pub fn reads_back(&self) -> bool {
        match self {
            BackendConfig::Local(_) | BackendConfig::InsightsHub(_) | BackendConfig::Exosite(_) => {
                true
            }
            BackendConfig::Edgio(c) => c.origin_url.is_some(),
            // GetObject with Range is not wired yet (issue 12).
            BackendConfig::Box(_) | BackendConfig::S3(_) => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Local(_) => "local",
            BackendConfig::Box(_) => "box",
            BackendConfig::InsightsHub(_) => "insights-hub",
            BackendConfig::Exosite(_) => "exosite",
            BackendConfig::Edgio(_) => "edgio",
            BackendConfig::S3(_) => "s3",
        }
    }
}
