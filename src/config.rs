//! The configuration file: TOML → a typed, validated [`Config`].
//!
//! Two layers (ripgrep's low/high args): `Raw*` structs mirror the file and refuse
//! unknown keys, wrong types and bad units while parsing, so the TOML parser reports
//! the line and column; `Config` is what the rest of the daemon reads, with every
//! default applied, relative paths resolved against the config file's folder, and
//! cross-key rules checked. Code past [`load`] never re-checks its input.
//!
//! The key names are an interface: scripts outside the repository write these files.
//! Add keys freely; rename one only with a compatibility alias.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::backend::{BackendConfig, Timeouts};
use crate::compress::Compress;
use crate::keys::{KeyInput, KeyTemplate};
use crate::units::{ByteRate, ByteSize, HumanDuration};

/// Where a config file is looked for when `--config` is not given, in order.
pub const DEFAULT_LOCATIONS: [&str; 2] = ["./dropship.toml", "/etc/dropship/dropship.toml"];

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub source: PathBuf,
    pub watch: WatchConfig,
    pub journal: JournalConfig,
    pub upload: UploadConfig,
    pub daemon: DaemonConfig,
    pub backend: BackendConfig,
    pub metrics: MetricsConfig,
    /// `[[rule]]` sections, in file order: the first whose `match` fits a file's
    /// relative path decides its key, post-action and priority.
    pub rules: Vec<Rule>,
    /// This machine's host name, for `{host}` in key templates.
    pub host: String,
    /// `key → (line, column)` of the values whose validity depends on the machine
    /// (folders that must exist), so that `run` can point at the line.
    locations: BTreeMap<&'static str, (usize, usize)>,
}

#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The watched folder (recursive).
    pub path: PathBuf,
    /// Quiet time after which a file that was not closed counts as finished.
    pub settle: Duration,
    /// Glob patterns matched against a file's name (not its path).
    pub ignore: Vec<glob::Pattern>,
    /// Interval of the safety-net full scan (inotify can overflow); zero disables it.
    pub rescan: Duration,
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub path: PathBuf,
    /// How long `done` (and `superseded`) rows are kept before housekeeping prunes
    /// them; a row whose file is still in the outbox is kept whatever its age.
    pub keep_done: Duration,
}

#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Files in flight at once.
    pub workers: usize,
    /// Parts of one file in flight at once, where the backend allows parallel parts.
    pub parts_in_flight: usize,
    /// Part size where the backend lets the client choose.
    pub part_size: u64,
    /// Bytes per second over all uploads; `None` is unlimited.
    pub bandwidth_limit: Option<u64>,
    pub after: After,
    /// First backoff ceiling; doubles per consecutive failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Verification failures (remote digest ≠ local) tolerated before a file is
    /// marked failed: a corrupting store must not loop forever.
    pub verify_attempts: u32,
    /// How each request is timed: no body byte moving for `stall`, or no answer
    /// `answer` after the body was sent, fails it (and it is retried).
    pub timeouts: Timeouts,
    /// How a completed upload is checked before it counts as delivered.
    pub verify: VerifyMode,
    /// Random ranges read back by `verify = "sample"`, besides the first and last.
    pub verify_samples: u32,
    /// What to do when the service already holds an object of the file's name.
    pub on_exists: OnExists,
    /// `upload.key`: the remote key of a file no rule gives one.
    pub key: KeyTemplate,
    /// Delivered files kept in the outbox are removed this long after delivery.
    pub keep_for: Option<Duration>,
    /// Above this many bytes in the outbox, delivered kept files are removed, oldest
    /// first.
    pub outbox_max: Option<u64>,
    /// `upload.compress` (with `compress_level`): for files no rule sets one for.
    pub compress: Compress,
    /// `upload.content_type`: the MIME type stored with files no rule gives one;
    /// `None`: the backend's default.
    pub content_type: Option<ContentType>,
    /// Where compressed copies wait for their upload (default: `spool` beside the
    /// journal), and how many bytes they may take together.
    pub spool: PathBuf,
    pub spool_max: u64,
}

/// One `[[rule]]`: files whose relative path matches `pattern` get what it sets;
/// what it leaves out comes from `[upload]`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The `match` glob, on the path relative to the watched folder (`*` stays
    /// within a folder, `**` crosses folders).
    pub pattern: glob::Pattern,
    pub key: Option<KeyTemplate>,
    pub after: Option<After>,
    /// Higher is claimed first; `[upload]`'s files have 0.
    pub priority: i64,
    pub compress: Option<Compress>,
    pub content_type: Option<ContentType>,
}

/// `content_type`: a MIME type stored with the object, or one chosen per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentType {
    /// `"auto"`: from the remote key's extension (so a compressed copy is
    /// `application/gzip`).
    Auto,
    Fixed(String),
}

impl ContentType {
    fn parse(s: &str) -> Result<ContentType, String> {
        if s == "auto" {
            Ok(ContentType::Auto)
        } else if crate::backend::mime::is_valid(s) {
            Ok(ContentType::Fixed(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a MIME type (like \"text/csv\", without parameters) or \"auto\""
            ))
        }
    }

    /// The type for the object named `key`.
    pub fn for_key(&self, key: &str) -> String {
        match self {
            ContentType::Auto => crate::backend::mime::for_name(key).to_string(),
            ContentType::Fixed(t) => t.clone(),
        }
    }
}

/// Where a queued file goes and how it is treated, decided once, when it is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its remote key, or why it cannot have one (the row is failed with it).
    pub key: Result<String, String>,
    /// The `match` of the rule that applied; `None`: `[upload]`'s defaults.
    pub rule: Option<String>,
    pub priority: i64,
    pub compress: Compress,
}

/// `upload.verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// The strongest check the backend offers: its digest of the stored object;
    /// without one, `sample`; without ranged reads, `size`.
    Auto,
    /// The stored size only.
    Size,
    /// Size (and digest, where the service has one), and a few ranges of the stored
    /// object read back and compared byte for byte with the file.
    Sample,
    /// Size, and the whole object downloaded and hashed.
    Full,
}

/// `upload.on_exists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnExists {
    /// Replace it the service's way: a new version (Box), an update with `If-Match`
    /// (Insights Hub), a replaced file (local).
    Overwrite,
    /// Leave both alone: the row is `done` with a note, the local file stays.
    Skip,
    /// The row is `failed` with the reason; the local file stays.
    Fail,
    /// The new content goes to `<stem>.<n><ext>` with the first free n, chosen
    /// before the upload and kept in the journal.
    #[serde(rename = "keep-both")]
    KeepBoth,
}

/// What happens to the local file once its upload is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Keep,
    Delete,
    /// Move into this folder, keeping the path relative to the watched folder.
    Move(PathBuf),
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// How long SIGTERM waits for in-flight parts before exiting anyway.
    pub shutdown_timeout: Duration,
    /// A `tracing` filter: `info`, `dropship=debug,warn`, ...
    pub log: String,
    /// Log lines for people (`text`) or one JSON object per line (`json`).
    pub log_format: LogFormat,
    /// Uploads in flight that do not move for this long mean the engine hangs
    /// beyond its own timeouts: the systemd watchdog is withheld (see
    /// `liveness`). By default twice the stall and answer timeouts plus a minute.
    pub stuck_after: Duration,
}

/// `daemon.log_format` / `run --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[metrics]`: the Prometheus endpoint (see `src/metrics/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics` and `/healthz` are served; `None` (the table or the key
    /// absent) serves nothing. Port 0 takes any free port (tests read the bound
    /// address from the `metrics listening` log line).
    pub listen: Option<SocketAddr>,
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {key}: {message}\n{snippet}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        /// Dotted key path, e.g. `upload.part_size`.
        key: String,
        message: String,
        /// The offending line, for people.
        snippet: String,
    },
    #[error(
        "no config file given and none found at {}; pass --config FILE",
        DEFAULT_LOCATIONS.join(" or ")
    )]
    NotFound,
}

/// A problem of the machine rather than of the file (a folder that does not exist).
/// `check-config` reports these as warnings; `run` refuses to start on them.
#[derive(Debug, Clone)]
pub struct EnvProblem {
    pub key: &'static str,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for EnvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.key, self.message
        )
    }
}

// ---- raw layer: mirrors the file --------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    watch: RawWatch,
    #[serde(default)]
    journal: RawJournal,
    #[serde(default)]
    upload: RawUpload,
    #[serde(default)]
    daemon: RawDaemon,
    backend: Spanned<BackendConfig>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: Spanned<String>,
    key: Option<Spanned<String>>,
    after: Option<Spanned<RawAfter>>,
    move_to: Option<Spanned<PathBuf>>,
    priority: Option<Spanned<i64>>,
    compress: Option<Spanned<String>>,
    compress_level: Option<Spanned<i64>>,
    content_type: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    path: Spanned<PathBuf>,
    #[serde(default = "default_settle")]
    settle: Spanned<HumanDuration>,
    #[serde(default = "default_ignore")]
    ignore: Vec<Spanned<String>>,
    #[serde(default = "default_rescan")]
    rescan: Spanned<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    #[serde(default = "default_journal_path")]
    path: Spanned<PathBuf>,
    #[serde(default = "default_keep_done")]
    keep_done: Spanned<HumanDuration>,
}

impl Default for RawJournal {
    fn default() -> Self {
        RawJournal {
            path: default_journal_path(),
            keep_done: default_keep_done(),
        }
    }
}

fn default_keep_done() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration(Duration::from_secs(7 * 86_400)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpload {
    workers: Spanned<usize>,
    parts_in_flight: Spanned<usize>,
    part_size: Spanned<ByteSize>,
    bandwidth_limit: ByteRate,
    after: Spanned<RawAfter>,
    move_to: Option<Spanned<PathBuf>>,
    retry_base: HumanDuration,
    retry_max: Spanned<HumanDuration>,
    verify_attempts: Spanned<u32>,
    stall_timeout: Spanned<HumanDuration>,
    answer_timeout: Spanned<HumanDuration>,
    verify: Spanned<VerifyMode>,
    verify_samples: Spanned<u32>,
    on_exists: OnExists,
    key: Option<Spanned<String>>,
    keep_for: Option<Spanned<HumanDuration>>,
    outbox_max: Option<Spanned<ByteSize>>,
    compress: Option<Spanned<String>>,
    compress_level: Option<Spanned<i64>>,
    content_type: Option<Spanned<String>>,
    spool: Option<Spanned<PathBuf>>,
    spool_max: Option<Spanned<ByteSize>>,
}

impl Default for RawUpload {
    fn default() -> Self {
        RawUpload {
            workers: Spanned::new(0..0, 2),
            parts_in_flight: Spanned::new(0..0, 4),
            part_size: Spanned::new(0..0, ByteSize(8 << 20)),
            bandwidth_limit: ByteRate(0),
            after: Spanned::new(0..0, RawAfter::Keep),
            move_to: None,
            retry_base: HumanDuration(Duration::from_secs(1)),
            retry_max: Spanned::new(0..0, HumanDuration(Duration::from_secs(300))),
            verify_attempts: Spanned::new(0..0, 3),
            stall_timeout: Spanned::new(0..0, HumanDuration(Timeouts::default().stall)),
            answer_timeout: Spanned::new(0..0, HumanDuration(Timeouts::default().answer)),
            verify: Spanned::new(0..0, VerifyMode::Auto),
            verify_samples: Spanned::new(0..0, 4),
            on_exists: OnExists::Overwrite,
            key: None,
            keep_for: None,
            outbox_max: None,
            compress: None,
            compress_level: None,
            content_type: None,
            spool: None,
            spool_max: None,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawAfter {
    Keep,
    Delete,
    Move,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDaemon {
    shutdown_timeout: HumanDuration,
    log: String,
    log_format: LogFormat,
    stuck_after: Option<Spanned<HumanDuration>>,
}

impl Default for RawDaemon {
    fn default() -> Self {
        RawDaemon {
            shutdown_timeout: HumanDuration(Duration::from_secs(10)),
            log: "info".into(),
            log_format: LogFormat::Text,
            stuck_after: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    /// Kept as text: an address `SocketAddr`'s parser refuses gets our message,
    /// with the key and the line, rather than serde's "invalid socket address".
    listen: Option<Spanned<String>>,
}

fn default_settle() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration(Duration::from_secs(2)))
}
fn default_rescan() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration(Duration::from_secs(300)))
}
fn default_ignore() -> Vec<Spanned<String>> {
    [".*", "*.tmp", "*.part", "*.swp"]
        .into_iter()
        .map(|s| Spanned::new(0..0, s.to_string()))
        .collect()
}
fn default_journal_path() -> Spanned<PathBuf> {
    Spanned::new(0..0, PathBuf::from("/var/lib/dropship/journal.db"))
}

// ---- loading ----------------------------------------------------------------------

/// Finds the config file: the given path, else the first of [`DEFAULT_LOCATIONS`].
pub fn locate(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    DEFAULT_LOCATIONS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(ConfigError::NotFound)
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates config text; `path` names the file in messages and anchors
/// relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        invalid(path, text, at, None, e.message().to_string())
    })?;
    validate(path, text, raw)
}

/// The folder relative paths in the file are resolved against.
fn base_dir(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    }
}

fn validate(path: &Path, text: &str, raw: RawConfig) -> Result<Config, ConfigError> {
    let base = base_dir(path);
    let resolve = |p: &Path| normalize(&base.join(p));
    let mut locations = BTreeMap::new();
    let err = |span: std::ops::Range<usize>, key: &str, msg: String| {
        invalid(path, text, span.start, Some(key), msg)
    };

    let watch_path = resolve(raw.watch.path.get_ref());
    locations.insert("watch.path", line_col(text, raw.watch.path.span().start));
    let mut ignore = Vec::new();
    for pat in &raw.watch.ignore {
        let compiled = glob::Pattern::new(pat.get_ref())
            .map_err(|e| err(pat.span(), "watch.ignore", format!("bad pattern: {e}")))?;
        ignore.push(compiled);
    }

    // Bounded so that no clock arithmetic can overflow; longer makes no sense.
    const DAY: Duration = Duration::from_secs(86_400);
    if raw.watch.settle.get_ref().0 > DAY {
        return Err(err(
            raw.watch.settle.span(),
            "watch.settle",
            "must be at most 1d".into(),
        ));
    }
    if raw.watch.rescan.get_ref().0 > 7 * DAY {
        return Err(err(
            raw.watch.rescan.span(),
            "watch.rescan",
            "must be at most 7d".into(),
        ));
    }
    if raw.journal.keep_done.get_ref().0 > 3650 * DAY {
        return Err(err(
            raw.journal.keep_done.span(),
            "journal.keep_done",
            "must be at most 3650d".into(),
        ));
    }
    let journal_path = resolve(raw.journal.path.get_ref());
    if journal_path.starts_with(&watch_path) {
        return Err(err(
            raw.journal.path.span(),
            "journal.path",
            format!(
                "{} is inside the watched folder {}; the journal would upload itself",
                journal_path.display(),
                watch_path.display()
            ),
        ));
    }

    let up = &raw.upload;
    if *up.workers.get_ref() == 0 {
        return Err(err(
            up.workers.span(),
            "upload.workers",
            "must be at least 1".into(),
        ));
    }
    if *up.parts_in_flight.get_ref() == 0 {
        return Err(err(
            up.parts_in_flight.span(),
            "upload.parts_in_flight",
            "must be at least 1".into(),
        ));
    }
    if up.part_size.get_ref().0 < 1024 {
        return Err(err(
            up.part_size.span(),
            "upload.part_size",
            "must be at least 1KiB".into(),
        ));
    }
    if up.retry_max.get_ref().0 < up.retry_base.0 {
        return Err(err(
            up.retry_max.span(),
            "upload.retry_max",
            "must not be shorter than upload.retry_base".into(),
        ));
    }
    if *up.verify_attempts.get_ref() == 0 {
        return Err(err(
            up.verify_attempts.span(),
            "upload.verify_attempts",
            "must be at least 1".into(),
        ));
    }
    for (value, key) in [
        (&up.stall_timeout, "upload.stall_timeout"),
        (&up.answer_timeout, "upload.answer_timeout"),
    ] {
        let d = value.get_ref().0;
        if d < Duration::from_millis(100) || d > DAY {
            return Err(err(
                value.span(),
                key,
                "must be between 100ms and 1d".into(),
            ));
        }
    }
    if *up.verify_samples.get_ref() > 100 {
        return Err(err(
            up.verify_samples.span(),
            "upload.verify_samples",
            "must be at most 100 (each is a 64 KiB read of the stored object, held in memory until compared)".into(),
        ));
    }
    let verify = *up.verify.get_ref();
    if matches!(verify, VerifyMode::Sample | VerifyMode::Full)
        && !raw.backend.get_ref().reads_back()
    {
        return Err(err(
            up.verify.span(),
            "upload.verify",
            format!(
                "the {} backend cannot read stored objects back; use \"auto\" or \"size\"",
                raw.backend.get_ref().kind()
            ),
        ));
    }
    let timeouts = up.stall_timeout.get_ref().0 + up.answer_timeout.get_ref().0;
    let stuck_after = match &raw.daemon.stuck_after {
        None => 2 * timeouts + Duration::from_secs(60),
        Some(d) if d.get_ref().0 < Duration::from_secs(1) || d.get_ref().0 > 7 * DAY => {
            return Err(err(
                d.span(),
                "daemon.stuck_after",
                "must be between 1s and 7d".into(),
            ));
        }
        Some(d) => d.get_ref().0,
    };
    // `table` is "upload" or "rule": the keys named in messages.
    let post_action = |after: &Spanned<RawAfter>,
                       move_to: &Option<Spanned<PathBuf>>,
                       table: &str|
     -> Result<After, ConfigError> {
        Ok(match (after.get_ref(), move_to) {
            (RawAfter::Keep, _) => After::Keep,
            (RawAfter::Delete, _) => After::Delete,
            (RawAfter::Move, None) => {
                return Err(err(
                    after.span(),
                    &format!("{table}.after"),
                    format!("after = \"move\" needs {table}.move_to"),
                ));
            }
            (RawAfter::Move, Some(to)) => {
                let dest = resolve(to.get_ref());
                // A moved file inside the watched folder would be found and sent again.
                if dest.starts_with(&watch_path) {
                    return Err(err(
                        to.span(),
                        &format!("{table}.move_to"),
                        format!(
                            "{} is inside the watched folder {}; sent files would be sent again",
                            dest.display(),
                            watch_path.display()
                        ),
                    ));
                }
                After::Move(dest)
            }
        })
    };
    let after = post_action(&up.after, &up.move_to, "upload")?;
    if let Some(to) = &up.move_to {
        locations.insert("upload.move_to", line_col(text, to.span().start));
    }
    if let Some(d) = &up.keep_for
        && (d.get_ref().0 < Duration::from_secs(1) || d.get_ref().0 > 3650 * DAY)
    {
        return Err(err(
            d.span(),
            "upload.keep_for",
            "must be between 1s and 3650d".into(),
        ));
    }
    if let Some(b) = &up.outbox_max
        && b.get_ref().0 == 0
    {
        return Err(err(
            b.span(),
            "upload.outbox_max",
            "must be more than 0 (leave it out for no limit)".into(),
        ));
    }
    // `table` is "upload" or "rule", for the keys named in messages.
    let compression = |name: &Option<Spanned<String>>,
                       level: &Option<Spanned<i64>>,
                       table: &str|
     -> Result<Option<Compress>, ConfigError> {
        match (name, level) {
            (None, None) => Ok(None),
            (None, Some(l)) => Err(err(
                l.span(),
                &format!("{table}.compress_level"),
                format!("{table}.compress_level needs {table}.compress"),
            )),
            (Some(n), l) => Compress::parse(n.get_ref(), l.as_ref().map(|l| *l.get_ref()))
                .map(Some)
                .map_err(|e| {
                    let (span, key) = match l {
                        Some(l) if !e.contains("not a compression") => {
                            (l.span(), format!("{table}.compress_level"))
                        }
                        _ => (n.span(), format!("{table}.compress")),
                    };
                    err(span, &key, e)
                }),
        }
    };
    let compress =
        compression(&up.compress, &up.compress_level, "upload")?.unwrap_or(Compress::None);
    let content_type = |t: &Option<Spanned<String>>, key: &str| {
        t.as_ref()
            .map(|t| ContentType::parse(t.get_ref()).map_err(|e| err(t.span(), key, e)))
            .transpose()
    };
    let upload_content_type = content_type(&up.content_type, "upload.content_type")?;
    // For the warning of a backend that stores no type: the first key that sets one.
    if let Some(t) = up
        .content_type
        .as_ref()
        .or_else(|| raw.rule.iter().find_map(|r| r.content_type.as_ref()))
    {
        locations.insert("content_type", line_col(text, t.span().start));
    }
    let spool = match &up.spool {
        Some(p) => {
            let dir = resolve(p.get_ref());
            if dir.starts_with(&watch_path) {
                return Err(err(
                    p.span(),
                    "upload.spool",
                    format!(
                        "{} is inside the watched folder {}; compressed copies would be sent as files",
                        dir.display(),
                        watch_path.display()
                    ),
                ));
            }
            dir
        }
        None => journal_path
            .parent()
            .map_or_else(|| PathBuf::from("spool"), |d| d.join("spool")),
    };
    let spool_max = up.spool_max.as_ref().map_or(1 << 30, |b| b.get_ref().0);
    let template = |t: &Spanned<String>, key: &str| {
        KeyTemplate::parse(t.get_ref()).map_err(|e| err(t.span(), key, e))
    };
    let key = match &up.key {
        Some(t) => template(t, "upload.key")?,
        None => KeyTemplate::path(),
    };
    let mut rules = Vec::new();
    for r in &raw.rule {
        let pattern = glob::Pattern::new(r.pattern.get_ref())
            .map_err(|e| err(r.pattern.span(), "rule.match", format!("bad pattern: {e}")))?;
        let after = match &r.after {
            Some(a) => Some(post_action(a, &r.move_to, "rule")?),
            None if r.move_to.is_some() => {
                let to = r.move_to.as_ref().map_or(0..0, Spanned::span);
                return Err(err(
                    to,
                    "rule.move_to",
                    "rule.move_to needs after = \"move\" in the same rule".into(),
                ));
            }
            None => None,
        };
        rules.push(Rule {
            pattern,
            compress: compression(&r.compress, &r.compress_level, "rule")?,
            content_type: content_type(&r.content_type, "rule.content_type")?,
            key: r
                .key
                .as_ref()
                .map(|t| template(t, "rule.key"))
                .transpose()?,
            after,
            priority: r.priority.as_ref().map_or(0, |p| *p.get_ref()),
        });
    }

    let backend = raw.backend.get_ref().clone().resolved(&resolve);
    if let Some(root) = backend.local_root()
        && (root.starts_with(&watch_path) || watch_path.starts_with(root))
    {
        return Err(err(
            raw.backend.span(),
            "backend.path",
            format!(
                "{} overlaps the watched folder {}; delivered files would be sent again",
                root.display(),
                watch_path.display()
            ),
        ));
    }
    if let Err((key, msg)) = backend.validate() {
        return Err(err(raw.backend.span(), key, msg));
    }
    locations.insert("backend", line_col(text, raw.backend.span().start));

    let metrics = MetricsConfig {
        listen: match &raw.metrics.listen {
            None => None,
            Some(listen) => Some(listen.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
                err(
                    listen.span(),
                    "metrics.listen",
                    format!(
                        "{:?} is not an IP address and port, e.g. \"127.0.0.1:9184\" or \"[::1]:9184\" (names are not resolved)",
                        listen.get_ref()
                    ),
                )
            })?),
        },
    };

    Ok(Config {
        source: path.to_path_buf(),
        watch: WatchConfig {
            path: watch_path,
            settle: raw.watch.settle.get_ref().0,
            ignore,
            rescan: raw.watch.rescan.get_ref().0,
        },
        journal: JournalConfig {
            path: journal_path,
            keep_done: raw.journal.keep_done.get_ref().0,
        },
        upload: UploadConfig {
            workers: *up.workers.get_ref(),
            parts_in_flight: *up.parts_in_flight.get_ref(),
            part_size: up.part_size.get_ref().0,
            bandwidth_limit: (up.bandwidth_limit.0 > 0).then_some(up.bandwidth_limit.0),
            after,
            retry_base: up.retry_base.0,
            retry_max: up.retry_max.get_ref().0,
            verify_attempts: *up.verify_attempts.get_ref(),
            timeouts: Timeouts {
                stall: up.stall_timeout.get_ref().0,
                answer: up.answer_timeout.get_ref().0,
            },
            verify,
            verify_samples: *up.verify_samples.get_ref(),
            on_exists: up.on_exists,
            key,
            keep_for: up.keep_for.as_ref().map(|d| d.get_ref().0),
            outbox_max: up.outbox_max.as_ref().map(|b| b.get_ref().0),
            compress,
            content_type: upload_content_type,
            spool,
            spool_max,
        },
        daemon: DaemonConfig {
            shutdown_timeout: raw.daemon.shutdown_timeout.0,
            log: raw.daemon.log,
            log_format: raw.daemon.log_format,
            stuck_after,
        },
        backend,
        metrics,
        rules,
        host: crate::keys::host_name(),
        locations,
    })
}

impl Config {
    /// Checks what the file cannot promise: that the folders it names exist.
    pub fn check_environment(&self) -> Vec<EnvProblem> {
        let mut problems = Vec::new();
        let at = |key: &'static str| self.locations.get(key).copied().unwrap_or((0, 0));
        if !self.watch.path.is_dir() {
            let (line, column) = at("watch.path");
            problems.push(EnvProblem {
                key: "watch.path",
                line,
                column,
                message: format!(
                    "the watched folder {} does not exist or is not a folder",
                    self.watch.path.display()
                ),
            });
        }
        for (key, message) in self.backend.check_environment() {
            let (line, column) = at("backend");
            problems.push(EnvProblem {
                key,
                line,
                column,
                message,
            });
        }
        problems
    }

    /// What deserves a warning but never stops a start: a secret file others may
    /// read or write. `check-config` prints these with the environment's problems.
    pub fn warnings(&self) -> Vec<EnvProblem> {
        let (line, column) = self.locations.get("backend").copied().unwrap_or((0, 0));
        let mut warnings: Vec<EnvProblem> = self
            .backend
            .exposure()
            .map(|e| EnvProblem {
                key: e.key,
                line,
                column,
                message: e.to_string(),
            })
            .into_iter()
            .collect();
        if let Some(&(line, column)) = self.locations.get("content_type")
            && matches!(self.backend.kind(), "box" | "local")
        {
            warnings.push(EnvProblem {
                key: "content_type",
                line,
                column,
                message: format!(
                    "the {} backend stores no content type; content_type is ignored",
                    self.backend.kind()
                ),
            });
        }
        warnings
    }

    /// The route of a local file about to be queued: the first rule whose `match`
    /// fits its relative path, and its key rendered from that rule's template or
    /// `upload.key`. `mtime_ns` is the file's modification time.
    pub fn route(&self, local: &Path, mtime_ns: i64) -> Route {
        let Some(rel) = self.relative_path(local) else {
            return Route {
                key: Err("the file name is not valid UTF-8; no backend can name it".into()),
                rule: None,
                priority: 0,
                compress: Compress::None,
            };
        };
        let rule = self.rule_of(&rel);
        let template = rule
            .and_then(|r| r.key.as_ref())
            .unwrap_or(&self.upload.key);
        let compress = rule
            .and_then(|r| r.compress)
            .unwrap_or(self.upload.compress);
        let key = template
            .render(&KeyInput {
                rel: &rel,
                mtime_ns,
                now: jiff::Timestamp::now(),
                host: &self.host,
            })
            // The compressed object's key says so, unless the template already did.
            .map(|k| match compress.ext() {
                Some(ext) if !k.ends_with(ext) => format!("{k}{ext}"),
                _ => k,
            });
        Route {
            key,
            rule: rule.map(|r| r.pattern.as_str().to_string()),
            priority: rule.map_or(0, |r| r.priority),
            compress,
        }
    }

    /// The first rule whose `match` fits `rel` (a relative, `/`-separated path).
    pub fn rule_of(&self, rel: &str) -> Option<&Rule> {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.rules
            .iter()
            .find(|r| r.pattern.matches_with(rel, opts))
    }

    /// A local file's path relative to the watched folder, with `/` separators.
    /// `None` if the file is not under the folder or its name is not UTF-8 (every
    /// vendor API takes UTF-8 names).
    pub fn relative_path(&self, local: &Path) -> Option<String> {
        let rel = local.strip_prefix(&self.watch.path).ok()?;
        let parts: Option<Vec<&str>> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        let parts = parts?;
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Whether a path under the watched folder is ignored: any of its components
    /// below the folder matches an `ignore` pattern, so that a hidden or `*.tmp`
    /// folder hides everything in it (a producer staging in `.incoming/` and then
    /// renaming into place must not have its file sent twice). Names that are not
    /// UTF-8 match no pattern.
    pub fn ignored_path(&self, path: &Path) -> bool {
        let rel = path.strip_prefix(&self.watch.path).unwrap_or(path);
        rel.components().any(|c| match c {
            Component::Normal(s) => s.to_str().is_some_and(|name| self.ignored(name)),
            _ => false,
        })
    }

    /// Whether a file name matches one of the `ignore` patterns.
    pub fn ignored(&self, name: &str) -> bool {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.watch.ignore.iter().any(|p| p.matches_with(name, opts))
    }
}

/// Lexically removes `.` and `..` so that containment checks compare like with like.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if p.is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        return normalize(&cwd.join(out));
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

/// The dotted key of the value at `offset`: the last `[table]` header above it plus
/// the key on its line (toml's error keeps its key path private).
fn key_at(text: &str, offset: usize) -> String {
    let (line_no, _) = line_col(text, offset);
    let mut table = String::new();
    let mut key = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if i + 1 > line_no {
            break;
        }
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            key.clear();
        } else if i + 1 == line_no
            && let Some((k, _)) = t.split_once('=')
        {
            key = k.trim().trim_matches('"').to_string();
        }
    }
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".into(),
        (false, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}

fn invalid(
    path: &Path,
    text: &str,
    offset: usize,
    key: Option<&str>,
    message: String,
) -> ConfigError {
    let (line, column) = line_col(text, offset);
    let snippet = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        key: key.map_or_else(|| key_at(text, offset), str::to_string),
        message,
        snippet: format!("  {line} | {snippet}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[watch]
path = "/tmp/outbox"
[backend]
type = "local"
path = "/tmp/remote"
"#;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/etc/dropship/test.toml"), text)
    }

    fn invalid_parts(e: ConfigError) -> (usize, String, String) {
        match e {
            ConfigError::Invalid {
                line, key, message, ..
            } => (line, key, message),
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn defaults_apply() {
        let c = parse_str(MINIMAL).expect("minimal config");
        assert_eq!(c.watch.settle, Duration::from_secs(2));
        assert_eq!(c.upload.workers, 2);
        assert_eq!(c.upload.parts_in_flight, 4);
        assert_eq!(c.upload.part_size, 8 << 20);
        assert_eq!(c.upload.bandwidth_limit, None);
        assert_eq!(c.upload.after, After::Keep);
        assert_eq!(c.daemon.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(
            c.journal.path,
            PathBuf::from("/var/lib/dropship/journal.db")
        );
        assert!(c.ignored(".hidden"));
        assert!(c.ignored("x.tmp"));
        assert!(!c.ignored("data.bin"));
        assert_eq!(c.upload.timeouts, Timeouts::default());
    }

    #[test]
    fn ignore_patterns_apply_to_every_folder_below_the_outbox() {
        let c = parse_str(MINIMAL).expect("minimal config");
        let root = &c.watch.path;
        assert!(c.ignored_path(&root.join(".incoming/report.csv")));
        assert!(c.ignored_path(&root.join("a/b.tmp/c/data.bin")));
        assert!(c.ignored_path(&root.join("a/.x")));
        assert!(!c.ignored_path(&root.join("a/b/data.bin")));
        // Only components below the outbox count: the outbox itself may be hidden.
        let hidden_root =
            parse_str(&MINIMAL.replace("/tmp/outbox", "/tmp/.outbox")).expect("hidden outbox");
        assert!(!hidden_root.ignored_path(&hidden_root.watch.path.join("data.bin")));
    }

    #[test]
    fn timeouts_are_read_and_bounded() {
        let text = MINIMAL.replace(
            "[backend]",
            "[upload]\nstall_timeout = \"5s\"\nanswer_timeout = \"30s\"\n\n[backend]",
        );
        let c = parse_str(&text).expect("config");
        assert_eq!(
            c.upload.timeouts,
            Timeouts {
                stall: Duration::from_secs(5),
                answer: Duration::from_secs(30)
            }
        );
        let bad = MINIMAL.replace(
            "[backend]",
            "[upload]\nstall_timeout = \"1ms\"\n\n[backend]",
        );
        let (_, key, _) = invalid_parts(parse_str(&bad).unwrap_err());
        assert_eq!(key, "upload.stall_timeout");
    }

    #[test]
    fn verification_and_name_clash_settings() {
        let c = parse_str(MINIMAL).expect("minimal config");
        assert_eq!(c.upload.verify, VerifyMode::Auto);
        assert_eq!(c.upload.verify_samples, 4);
        assert_eq!(c.upload.on_exists, OnExists::Overwrite);
        let text = format!(
            "{MINIMAL}[upload]\nverify = \"full\"\nverify_samples = 9\non_exists = \"skip\"\n"
        );
        let c = parse_str(&text).expect("config");
        assert_eq!(c.upload.verify, VerifyMode::Full);
        assert_eq!(c.upload.verify_samples, 9);
        assert_eq!(c.upload.on_exists, OnExists::Skip);
        let (line, key, msg) = invalid_parts(
            parse_str(&format!("{MINIMAL}[upload]\non_exists = \"clobber\"\n")).unwrap_err(),
        );
        assert_eq!((line, key.as_str()), (8, "upload.on_exists"));
        assert!(msg.contains("clobber"), "{msg}");
    }

    #[test]
    fn key_templates_and_rules_are_checked_with_their_line() {
        let c = parse_str(&format!(
            "{MINIMAL}[upload]\nkey = \"{{host}}/{{mtime:%Y/%m}}/{{path}}\"\n\
             [[rule]]\nmatch = \"alarms/**\"\npriority = 9\nafter = \"delete\"\n\
             [[rule]]\nmatch = \"**/*.log\"\nkey = \"logs/{{name}}\"\n"
        ))
        .expect("config");
        assert_eq!(c.upload.key.source(), "{host}/{mtime:%Y/%m}/{path}");
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].priority, 9);
        assert_eq!(c.rules[0].after, Some(After::Delete));
        assert_eq!(c.rules[1].after, None);
        let at = |rel: &str| c.route(&Path::new("/tmp/outbox").join(rel), 0);
        let r = at("alarms/x/y.json");
        assert_eq!(r.rule.as_deref(), Some("alarms/**"));
        assert_eq!(r.priority, 9);
        assert_eq!(
            r.key,
            Ok(format!("{}/1970/01/alarms/x/y.json", c.host)),
            "the rule sets no key: upload.key"
        );
        let r = at("app/deep/z.log");
        assert_eq!(r.key.as_deref(), Ok("logs/z.log"));
        assert_eq!(r.priority, 0);
        let r = at("top.bin");
        assert_eq!(r.rule, None);

        let (line, key, msg) = invalid_parts(
            parse_str(&format!("{MINIMAL}[upload]\nkey = \"{{size}}/{{name}}\"\n")).unwrap_err(),
        );
        assert_eq!((line, key.as_str()), (8, "upload.key"));
        assert!(msg.contains("unknown placeholder `{size}`"), "{msg}");
        let (line, key, msg) = invalid_parts(
            parse_str(&format!(
                "{MINIMAL}[[rule]]\nmatch = \"a/**\"\nkey = \"{{mtime:%J}}\"\n"
            ))
            .unwrap_err(),
        );
        assert_eq!((line, key.as_str()), (9, "rule.key"));
        assert!(msg.contains("strftime"), "{msg}");
        let (line, key, _) =
            invalid_parts(parse_str(&format!("{MINIMAL}[[rule]]\nmatch = \"a/[\"\n")).unwrap_err());
        assert_eq!((line, key.as_str()), (8, "rule.match"));
        let (line, key, _) = invalid_parts(
            parse_str(&format!(
                "{MINIMAL}[[rule]]\nmatch = \"a/*\"\nmove_to = \"/tmp/sent\"\n"
            ))
            .unwrap_err(),
        );
        assert_eq!((line, key.as_str()), (9, "rule.move_to"));
        let (_, key, _) = invalid_parts(
            parse_str(&format!(
                "{MINIMAL}[[rule]]\nmatch = \"a/*\"\nafter = \"move\"\nmove_to = \"/tmp/outbox/x\"\n"
            ))
            .unwrap_err(),
        );
        assert_eq!(key, "rule.move_to");
    }

    #[test]
    fn content_types_are_checked_with_their_line_and_warned_where_unkept() {
        let c = parse_str(&format!(
            "{MINIMAL}[upload]\ncontent_type = \"application/x-ndjson\"\n\
             [[rule]]\nmatch = \"*.mp4\"\ncontent_type = \"auto\"\n"
        ))
        .expect("config");
        assert_eq!(
            c.upload.content_type,
            Some(ContentType::Fixed("application/x-ndjson".into()))
        );
        assert_eq!(c.rules[0].content_type, Some(ContentType::Auto));
        assert_eq!(ContentType::Auto.for_key("a/clip.mp4"), "video/mp4");
        // The local backend keeps no type: a warning names the key and its line.
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].key, w[0].line), ("content_type", 8));
        assert!(w[0].message.contains("ignored"), "{}", w[0].message);

        for (text, line, want_key) in [
            (
                "[upload]\ncontent_type = \"text/csv; charset=utf-8\"\n",
                8,
                "upload.content_type",
            ),
            (
                "[[rule]]\nmatch = \"a\"\ncontent_type = \"csv\"\n",
                9,
                "rule.content_type",
            ),
        ] {
            let (l, key, msg) = invalid_parts(parse_str(&format!("{MINIMAL}{text}")).unwrap_err());
            assert_eq!((l, key.as_str()), (line, want_key), "{msg}");
            assert!(msg.contains("not a MIME type"), "{msg}");
        }
    }

    #[test]
    fn reading_back_needs_a_backend_that_can() {
        let boxed = r#"
[watch]
path = "/tmp/outbox"
[upload]
verify = "sample"
[backend]
type = "box"
token_env = "BOX_TOKEN"
"#;
        let (line, key, msg) = invalid_parts(parse_str(boxed).unwrap_err());
        assert_eq!((line, key.as_str()), (5, "upload.verify"));
        assert!(msg.contains("box backend cannot read"), "{msg}");
        assert!(parse_str(&boxed.replace("\"sample\"", "\"size\"")).is_ok());
    }

    #[test]
    fn insights_hub_settings_are_checked() {
        let ih = r#"
[watch]
path = "/tmp/outbox"
[backend]
type = "insights-hub"
gateway_url = "https://gateway.eu1.mindsphere.io"
entity_id = "00189ab4c65243bb9d77f17332dd570a"
token_env = "IH_TOKEN"
directory = "/uploads/"
"#;
        let c = parse_str(ih).expect("config");
        assert_eq!(c.backend.kind(), "insights-hub");
        let (_, key, _) = invalid_parts(
            parse_str(&ih.replace(
                "00189ab4c65243bb9d77f17332dd570a",
                "00189AB4C65243BB9D77F17332DD570A",
            ))
            .unwrap_err(),
        );
        assert_eq!(key, "backend.entity_id");
        let (_, key, _) =
            invalid_parts(parse_str(&ih.replace("/uploads/", "up/../x")).unwrap_err());
        assert_eq!(key, "backend.directory");
        let (_, key, msg) =
            invalid_parts(parse_str(&ih.replace("https://gateway", "http://gateway")).unwrap_err());
        assert_eq!(key, "backend.gateway_url");
        assert!(msg.contains("plain http"), "{msg}");
    }

    #[test]
    fn exosite_settings_are_checked() {
        let ex = r#"
[watch]
path = "/tmp/outbox"
[backend]
type = "exosite"
url = "https://p1234.m2.exosite.io"
token_env = "EXOSITE_TOKEN"
content_type = "auto"
"#;
        let c = parse_str(ex).expect("config");
        assert_eq!(c.backend.kind(), "exosite");
        assert!(parse_str(&ex.replace("\"auto\"", "\"text/csv\"")).is_ok());
        let (_, key, _) = invalid_parts(parse_str(&ex.replace("\"auto\"", "\"csv\"")).unwrap_err());
        assert_eq!(key, "backend.content_type");
        let (_, key, _) = invalid_parts(parse_str(&format!("{ex}vendor = \"v\"\n")).unwrap_err());
        assert_eq!(key, "backend.model");
        assert!(parse_str(&format!("{ex}vendor = \"v\"\nmodel = \"m\"\n")).is_ok());
        let (_, key, _) = invalid_parts(
            parse_str(&format!("{ex}single_request_max = \"100MiB\"\n")).unwrap_err(),
        );
        assert_eq!(key, "backend.single_request_max");
        assert!(parse_str(&format!("{ex}single_request_max = \"10MiB\"\n")).is_ok());
        let (_, key, _) =
            invalid_parts(parse_str(&format!("{ex}id_prefix = \"a/b\"\n")).unwrap_err());
        assert_eq!(key, "backend.id_prefix");
        let (_, key, _) = invalid_parts(
            parse_str(&ex.replace("token_env = \"EXOSITE_TOKEN\"\n", "")).unwrap_err(),
        );
        assert_eq!(key, "backend.token_file");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = MINIMAL.replace("path = \"/tmp/outbox\"", "paht = \"/tmp/outbox\"");
        let (line, key, msg) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!(line, 3);
        assert_eq!(key, "watch.paht");
        assert!(msg.contains("unknown field `paht`"), "{msg}");
    }

    #[test]
    fn unknown_backend_key_is_refused() {
        let text = format!("{MINIMAL}colour = \"red\"\n");
        let (_, _, msg) = invalid_parts(parse_str(&text).unwrap_err());
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key() {
        let text = format!("{MINIMAL}[upload]\nworkers = \"two\"\n");
        let (line, key, msg) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!((line, key.as_str()), (8, "upload.workers"));
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn bad_unit_names_key() {
        let text = format!("{MINIMAL}[upload]\npart_size = \"8 parsecs\"\n");
        let (line, key, msg) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!((line, key.as_str()), (8, "upload.part_size"));
        assert!(msg.contains("unknown size unit"), "{msg}");
    }

    #[test]
    fn move_needs_destination_outside_watch() {
        let text = format!("{MINIMAL}[upload]\nafter = \"move\"\n");
        let (_, key, _) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!(key, "upload.after");
        let text = format!("{MINIMAL}[upload]\nafter = \"move\"\nmove_to = \"/tmp/outbox/sent\"\n");
        let (line, key, _) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!((line, key.as_str()), (9, "upload.move_to"));
    }

    #[test]
    fn journal_inside_the_watched_folder_is_refused() {
        let text = format!("{MINIMAL}[journal]\npath = \"/tmp/outbox/j.db\"\n");
        let (line, key, msg) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!((line, key.as_str()), (8, "journal.path"), "{msg}");
        let text = MINIMAL.replace("[backend]", "rescan = \"30d\"\n[backend]");
        let (_, key, _) = invalid_parts(parse_str(&text).unwrap_err());
        assert_eq!(key, "watch.rescan");
    }

    #[test]
    fn box_refuses_plain_http_off_loopback_and_needs_one_token_source() {
        let boxed = |extra: &str| {
            format!("[watch]\npath = \"/tmp/outbox\"\n[backend]\ntype = \"box\"\n{extra}\n")
        };
        let ok = boxed(
            "api_url = \"http://127.0.0.1:8900/box\"\nupload_url = \"http://127.0.0.1:8900/box\"\ntoken_env = \"BOX_TOKEN\"",
        );
        parse_str(&ok).expect("loopback http is fine");
        let far = boxed("api_url = \"http://box.example/box\"\ntoken_env = \"BOX_TOKEN\"");
        let (line, key, msg) = invalid_parts(parse_str(&far).unwrap_err());
        assert_eq!((line, key.as_str()), (3, "backend.api_url"), "{msg}");
        assert!(msg.contains("allow_insecure_http"), "{msg}");
        let allowed = boxed(
            "api_url = \"http://box.example/box\"\ntoken_env = \"BOX_TOKEN\"\nallow_insecure_http = true",
        );
        parse_str(&allowed).expect("allowed explicitly");
        let (_, key, _) = invalid_parts(parse_str(&boxed("")).unwrap_err());
        assert_eq!(key, "backend.token_file");
        let both = boxed("token_env = \"A\"\ntoken_file = \"/x\"");
        let (_, _, msg) = invalid_parts(parse_str(&both).unwrap_err());
        assert!(msg.contains("only one of"), "{msg}");
        let cred = boxed("token_credential = \"box-token\"");
        parse_str(&cred).expect("a systemd credential is a source");
        let (line, key, msg) =
            invalid_parts(parse_str(&boxed("token_credential = \"a/b\"")).unwrap_err());
        assert_eq!(
            (line, key.as_str()),
            (3, "backend.token_credential"),
            "{msg}"
        );
        let typo = boxed("token_env = \"A\"\nfolder = \"0\"");
        let (_, _, msg) = invalid_parts(parse_str(&typo).unwrap_err());
        assert!(msg.contains("unknown field `folder`"), "{msg}");
    }

    #[test]
    fn relative_paths_resolve_against_config_folder() {
        let text = MINIMAL.replace("/tmp/outbox", "../spool/outbox");
        let c = parse(Path::new("/srv/app/config/local.toml"), &text).expect("valid");
        assert_eq!(c.watch.path, PathBuf::from("/srv/app/spool/outbox"));
        assert_eq!(
            c.relative_path(Path::new("/srv/app/spool/outbox/a/b c.bin"))
                .as_deref(),
            Some("a/b c.bin")
        );
    }

    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut files = vec![root.join("dropship.toml"), root.join("local.toml")];
        let mut dirs = vec![root.join("examples")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).expect("examples") {
                let p = entry.expect("entry").path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|e| e == "toml") {
                    files.push(p);
                }
            }
        }
        assert!(
            files.iter().any(|f| f.ends_with("logrotate/dropship.toml")),
            "{files:?}"
        );
        for f in files {
            if let Err(e) = load(&f) {
                panic!("{} does not load: {e}", f.display());
            }
        }
    }

    #[test]
    fn metrics_listen_is_optional_and_checked() {
        assert_eq!(parse_str(MINIMAL).expect("minimal").metrics.listen, None);
        let with = |listen: &str| format!("{MINIMAL}[metrics]\nlisten = \"{listen}\"\n");
        let c = parse_str(&with("127.0.0.1:9184")).expect("loopback");
        assert_eq!(
            c.metrics.listen,
            Some("127.0.0.1:9184".parse().expect("addr"))
        );
        let c = parse_str(&with("[::1]:0")).expect("v6, any port");
        assert_eq!(c.metrics.listen, Some("[::1]:0".parse().expect("addr")));
        for bad in ["localhost:9184", "127.0.0.1", "127.0.0.1:99999", ""] {
            let (line, key, msg) = invalid_parts(parse_str(&with(bad)).unwrap_err());
            assert_eq!((line, key.as_str()), (8, "metrics.listen"), "{bad}: {msg}");
            assert!(msg.contains("not an IP address and port"), "{msg}");
        }
        let typo = format!("{MINIMAL}[metrics]\nlisten_on = \"127.0.0.1:1\"\n");
        let (line, key, msg) = invalid_parts(parse_str(&typo).unwrap_err());
        assert_eq!((line, key.as_str()), (8, "metrics.listen_on"), "{msg}");
    }

    #[test]
    fn missing_watch_folder_is_an_environment_problem() {
        let text = MINIMAL.replace("/tmp/outbox", "/nonexistent/dropship/outbox");
        let c = parse_str(&text).expect("the file itself is fine");
        let problems = c.check_environment();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "watch.path");
        assert_eq!(problems[0].line, 3);
    }
}
