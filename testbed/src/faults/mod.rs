//! Fault injection: the knobs, and the dice that apply them.
//!
//! One `Settings` value is shared by every emulator. It is set at start (CLI flags or
//! `Options::settings`) and patched at run time (`PUT /_testbed/faults`,
//! `Testbed::update_settings`); every request reads the value current when it arrives.
//! `/_testbed/...` endpoints are never faulted.
//!
//! The generic faults (refusal, rate limit, reset, stall, latency, throttle) are applied by
//! [`layer`] in front of every emulator; the vendor-shaped ones (corrupt store, expiry,
//! Box's 202-on-commit and part size, Insights Hub's gateway timeout, Exosite's 502/504
//! bursts and the switches for both vendors' unconfirmed rules, Edgio's token expiry,
//! join, garbage collector and rate limit) are read by the emulators themselves.

pub(crate) mod body;
pub(crate) mod layer;
mod switches;
pub(crate) mod throttle;

use serde::{Deserialize, Serialize};

pub use switches::{ExositeRangeRule, ExositeReinitiate, ExositeResend};

/// Every fault knob and server-dictated limit. Serialized with these snake_case names
/// by `GET/PUT /_testbed/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Fraction (0..=1) of emulator requests answered 503 + `Retry-After: 1` before
    /// anything else happens.
    pub fail_rate: f64,
    /// Fraction (0..=1) of emulator requests answered 429 + `Retry-After: 1`
    /// (protocols/box.md rule 17). Rolled after `fail_rate`.
    pub rate_limit_rate: f64,
    /// Fraction (0..=1) of requests with a body whose connection is dropped part-way
    /// through reading the body. Nothing of such a request is stored.
    pub reset_rate: f64,
    /// Fraction (0..=1) of requests with a body whose reading stops part-way: the
    /// server reads nothing more and never answers, holding the connection open, so
    /// the client's writes block until it gives up. Nothing of such a request is
    /// stored. Rolled after `reset_rate`: a request is never both reset and stalled.
    pub stall_rate: f64,
    /// Delay before each emulator request is handled.
    pub latency_ms: u64,
    /// Request bodies are read no faster than this, summed over the whole server.
    /// 0 = unlimited.
    pub throttle_bps: u64,
    /// Upload sessions expire this long after creation. Applies to open sessions
    /// too, so lowering it expires them early.
    pub session_ttl_s: u64,
    /// Probability (0..=1) that a committed or directly uploaded object is stored with
    /// one byte flipped; metadata then describes the corrupted bytes.
    pub corrupt_rate: f64,
    /// Where `corrupt_rate` flips its byte: negative = a random position; otherwise the
    /// byte at `corrupt_offset % size`, so a test can put the damage inside or outside
    /// the ranges a client samples.
    pub corrupt_offset: i64,
    /// Fraction (0..=1) of emulator requests handled as usual whose answer body is
    /// then replaced by garbage (binary junk, or JSON of the wrong shape), status
    /// and headers kept: a proxy that mangles answers. The request took effect.
    pub answer_garbage_rate: f64,
    /// Fraction (0..=1) of handled requests whose answer is cut: the headers promise
    /// the whole body, half of it comes, then the connection is dropped.
    pub answer_truncate_rate: f64,
    /// Fraction (0..=1) of handled requests whose answer body is replaced by 64 MiB
    /// of junk, status kept: a client must not read (or hold) it all.
    pub answer_huge_rate: f64,
    /// Fraction (0..=1) of emulator requests, of any kind, never answered and never
    /// handled: the connection stays open and silent.
    pub hang_rate: f64,
    /// Injected refusals (`fail_rate`, `rate_limit_rate`) answer with a body that
    /// repeats every request header, credentials included, as a debugging proxy or
    /// server might: for tests that a client never logs what such a body echoes.
    pub echo_headers: bool,
    /// Part size Box dictates in new sessions.
    pub box_part_size: u64,
    /// Smallest `file_size` Box accepts for a session (protocols/box.md §Small files).
    pub box_min_session_size: u64,
    /// The first N commit attempts of each Box session are answered 202 + `Retry-After`.
    pub box_commit_202: u32,
    /// A Box part counts as "processing" this long after it is stored; a commit while
    /// any part is processing gets 202 (protocols/box.md rule 11, 13).
    pub box_part_processing_ms: u64,
    /// Insights Hub asset ids (`entityId`) that exist, comma-separated; any other
    /// well-formed id gets 404 (protocols/insights-hub.md rule 2).
    pub ih_assets: String,
    /// An Insights Hub request still being handled (body included) after this long is
    /// answered 502 and nothing of it is kept (rule 5; the real gateway: one minute).
    pub ih_gateway_timeout_ms: u64,
    /// An Insights Hub multi-part upload whose last start or part is this old is purged
    /// with its parts (rule 13; the service: 2 days). Applies to open uploads too.
    pub ih_part_ttl_s: u64,
    /// Overwriting an existing Insights Hub file without `If-Match` is refused with 409
    /// (rule 4; assumed). `false`: a missing `If-Match` overwrites unconditionally.
    pub ih_require_if_match: bool,
    /// Smallest Insights Hub part but the final one (rule 8: "5 MB", taken as 5 MiB).
    pub ih_min_part_size: u64,
    /// `false` (default): a part below `ih_min_part_size` is refused when it is uploaded.
    /// `true`: it is stored, and `upload=complete` refuses the upload (S3 style).
    pub ih_part_size_checked_at_complete: bool,
    /// The Exosite product id (protocols/exosite.md rule 2): the first label of the host
    /// a device calls, `<product>.m2.exosite.io`.
    pub exosite_product: String,
    /// Exosite: refuse (404) a request whose `Host` does not start with the label
    /// `exosite_product`. Off by default: a client on loopback reaches the testbed as
    /// `127.0.0.1:PORT` unless it sets the header itself.
    pub exosite_check_host: bool,
    /// Exosite: the `vendor` the older device API (`/provision/download`) wants.
    pub exosite_vendor: String,
    /// Exosite: the `model` the older device API wants.
    pub exosite_model: String,
    /// Largest Exosite single upload, bytes; a larger body gets 413 (rule 3: "100 MB",
    /// taken as 100 MiB).
    pub exosite_single_max: u64,
    /// Exosite range length (rule 9: "5 MB", taken as 5 MiB); see `exosite_range_rule`.
    pub exosite_part_size: u64,
    /// Exosite: every range but the final one exactly `exosite_part_size` (assumed
    /// default) or at least that.
    pub exosite_range_rule: ExositeRangeRule,
    /// Exosite: a re-send of the most recently accepted range is refused (409, assumed
    /// default) or accepted idempotently.
    pub exosite_resend_last: ExositeResend,
    /// Exosite: initiating an id whose upload is in progress resets it (assumed default)
    /// or is refused with 409.
    pub exosite_reinitiate: ExositeReinitiate,
    /// An Exosite upload not completed within this long of its initiate or its last
    /// accepted range is dropped (assumed: 1 day). Applies to open uploads too.
    pub exosite_upload_ttl_s: u64,
    /// Exosite content info of an id whose upload is in progress: `false` (default)
    /// 404 until the last byte arrives (rule 11); `true` one line whose size is the
    /// bytes received so far and whose meta is `uploading`.
    pub exosite_info_progress: bool,
    /// Fraction (0..=1) of Exosite requests answered 502 or 504 (alternately) before
    /// anything else of the emulator runs (rule 13; the seed retries on these).
    pub exosite_gateway_error_rate: f64,
    /// The Edgio account name (protocols/edgio.md §Hosts: `{account}.upload.llnw.net`):
    /// the first segment of every `X-Agile-Path` and of delivery URLs.
    pub edgio_account: String,
    /// Edgio tokens expire this long after login unless `X-Agile-Expiry` or
    /// `updateSession` said otherwise (protocols/edgio.md §Auth and sessions: 3600 s).
    /// Read on every use, so it applies to issued tokens too; 0 expires every token now,
    /// whatever its own expiry (forced expiry, rule 14).
    pub edgio_token_ttl_s: u64,
    /// An Edgio multipart join takes this long: JOIN(5) → SUCCESS(6) this long after
    /// the pieces were joined (rule 8: "after a settable delay"). Read on every look.
    pub edgio_join_delay_ms: u64,
    /// Probability (0..=1) that an Edgio join ends FAILED(12) instead of SUCCESS; rolled
    /// once per join (rule 8's fault knob).
    pub edgio_join_fail_rate: f64,
    /// Fraction (0..=1) of Edgio completes answered 500 `-13` (lock expired) with
    /// nothing changed (rule 14).
    pub edgio_complete_error_rate: f64,
    /// An accepted Edgio completion is answered this long after the upload became
    /// COMPLETE (its join goes on meanwhile): a test can kill the client between the
    /// service's acceptance and the client's record of it, the way a lost answer does.
    pub edgio_complete_answer_delay_ms: u64,
    /// Edgio upload-host requests per second per account above which the answer is 429
    /// (protocols/edgio.md §Conventions: 100/s; rule 13). 0 = no limit.
    pub edgio_rate_limit_rps: u64,
    /// Age at which Edgio's garbage collector expires NEW/FAILED uploads and the pieces
    /// of open ones (protocols/edgio.md §Multipart 6: 1 day; rule 11). Applies to open
    /// uploads too: 0 expires them all at the next request.
    pub edgio_upload_ttl_s: u64,
    /// Largest Edgio piece, bytes; larger → `-11` (protocols/edgio.md §Multipart 2: 100 GB).
    pub edgio_max_piece: u64,
    /// Largest Edgio multipart total, bytes; larger → `-25` (§Multipart 2: 20 TB).
    pub edgio_max_total: u64,
    /// S3 proxy: a CreateMultipartUpload the upstream accepted is answered this
    /// long late. A test can kill the client between the upload's creation and the
    /// client's record of its id, the way a crash or a lost answer does.
    pub s3_create_answer_delay_ms: u64,
}

/// The Edgio account when none is configured.
pub const DEFAULT_EDGIO_ACCOUNT: &str = "testbed";

/// The asset of the example in the vendor's multi-part page (and dropship's example
/// configuration), then the one of the `fileslist` example in the v3.2.4 OpenAPI spec.
pub const DEFAULT_IH_ASSETS: &str =
    "00189ab4c65243bb9d77f17332dd570a,fdf4cc6a51e0411389020dcf8a9936c5";

/// The Exosite product (and the older API's vendor and model) when none is configured.
/// On Murano, vendor and model are both the product id too.
pub const DEFAULT_EXOSITE_PRODUCT: &str = "testbed";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fail_rate: 0.0,
            rate_limit_rate: 0.0,
            answer_garbage_rate: 0.0,
            answer_truncate_rate: 0.0,
            answer_huge_rate: 0.0,
            hang_rate: 0.0,
            reset_rate: 0.0,
            stall_rate: 0.0,
            latency_ms: 0,
            throttle_bps: 0,
            session_ttl_s: 7 * 24 * 3600, // protocols/box.md §Session lifecycle: 7 days
            corrupt_rate: 0.0,
            corrupt_offset: -1,
            echo_headers: false,
            box_part_size: 8 * 1024 * 1024, // protocols/box.md §Session lifecycle: 8 MiB
            box_min_session_size: 20_000_000, // protocols/box.md §Small files
            box_commit_202: 0,
            box_part_processing_ms: 0,
            ih_assets: DEFAULT_IH_ASSETS.to_string(),
            ih_gateway_timeout_ms: 60_000, // protocols/insights-hub.md §Single upload
            ih_part_ttl_s: 2 * 24 * 3600,  // protocols/insights-hub.md §Multi-part: 2 days
            ih_require_if_match: true,
            ih_min_part_size: 5 * 1024 * 1024, // protocols/insights-hub.md §Multi-part
            ih_part_size_checked_at_complete: false,
            exosite_product: DEFAULT_EXOSITE_PRODUCT.to_string(),
            exosite_check_host: false,
            exosite_vendor: DEFAULT_EXOSITE_PRODUCT.to_string(),
            exosite_model: DEFAULT_EXOSITE_PRODUCT.to_string(),
            exosite_single_max: 100 * 1024 * 1024, // protocols/exosite.md §Size rules
            exosite_part_size: 5 * 1024 * 1024,    // protocols/exosite.md §Size rules
            exosite_range_rule: ExositeRangeRule::Exact,
            exosite_resend_last: ExositeResend::Conflict,
            exosite_reinitiate: ExositeReinitiate::Reset,
            exosite_upload_ttl_s: 24 * 3600,
            exosite_info_progress: false,
            exosite_gateway_error_rate: 0.0,
            edgio_account: DEFAULT_EDGIO_ACCOUNT.to_string(),
            edgio_token_ttl_s: 3600, // protocols/edgio.md §Auth and sessions
            edgio_join_delay_ms: 1000,
            edgio_join_fail_rate: 0.0,
            edgio_complete_error_rate: 0.0,
            edgio_complete_answer_delay_ms: 0,
            edgio_rate_limit_rps: 100, // protocols/edgio.md §Conventions
            edgio_upload_ttl_s: 24 * 3600, // protocols/edgio.md §Multipart 6: 1 day
            edgio_max_piece: 100_000_000_000, // protocols/edgio.md §Multipart 2: 100 GB
            edgio_max_total: 20_000_000_000_000, // protocols/edgio.md §Multipart 2: 20 TB
            s3_create_answer_delay_ms: 0,
        }
    }
}

/// A partial update of [`Settings`]: only the fields given change. Also the CLI's
/// flags (`--fail-rate`, ...), so the two can never list different knobs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)] // a misspelt knob must not be silently ignored
pub struct SettingsPatch {
    /// Fraction (0..1) of requests answered 503 + Retry-After.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_rate: Option<f64>,
    /// Fraction (0..1) of requests answered 429 + Retry-After.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_rate: Option<f64>,
    /// Fraction (0..1) of handled requests whose answer body is replaced by garbage.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_garbage_rate: Option<f64>,
    /// Fraction (0..1) of handled requests whose answer is cut half-way.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_truncate_rate: Option<f64>,
    /// Fraction (0..1) of handled requests answered with 64 MiB of junk.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_huge_rate: Option<f64>,
    /// Fraction (0..1) of requests never answered.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hang_rate: Option<f64>,
    /// Fraction (0..1) of requests with a body whose connection is reset mid-body.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_rate: Option<f64>,
    /// Fraction (0..1) of requests with a body that stop being read mid-body and are
    /// never answered (the connection is held open until the client gives up).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_rate: Option<f64>,
    /// Delay before each emulator request, in milliseconds.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Server-wide cap on request-body read speed, bytes/s (0 = unlimited).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_bps: Option<u64>,
    /// Upload sessions expire this many seconds after creation (default 604800).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ttl_s: Option<u64>,
    /// Probability (0..1) that a stored object gets one byte flipped.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt_rate: Option<f64>,
    /// Byte the corruption flips: offset % size; negative = random (default -1).
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt_offset: Option<i64>,
    /// Injected refusals repeat the request's headers in their body (default false).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_headers: Option<bool>,
    /// Part size Box dictates in new sessions (default 8388608).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_part_size: Option<u64>,
    /// Smallest file size Box accepts for a session (default 20000000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_min_session_size: Option<u64>,
    /// The first N commit attempts of each Box session get 202 + Retry-After.
    #[arg(long = "box-commit-202")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_commit_202: Option<u32>,
    /// A Box part is "processing" this long after upload (commit meanwhile gets 202).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub box_part_processing_ms: Option<u64>,
    /// Insights Hub asset ids that exist, comma-separated (default: two example ids).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ih_assets: Option<String>,
    /// An Insights Hub request still running after this many ms gets 502 (default 60000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ih_gateway_timeout_ms: Option<u64>,
    /// Insights Hub multi-part uploads untouched this many seconds are purged
    /// (default 172800).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ih_part_ttl_s: Option<u64>,
    /// Insights Hub: overwriting without If-Match gets 409 (default true).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ih_require_if_match: Option<bool>,
    /// Insights Hub: smallest part but the final one (default 5242880).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ih_min_part_size: Option<u64>,
    /// Insights Hub: check the part size at completion instead of at upload (default false).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ih_part_size_checked_at_complete: Option<bool>,
    /// Exosite product id, the first label of the device host (default "testbed").
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_product: Option<String>,
    /// Exosite: 404 unless the Host header starts with the product (default false).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_check_host: Option<bool>,
    /// Exosite: vendor of /provision/download (default "testbed").
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_vendor: Option<String>,
    /// Exosite: model of /provision/download (default "testbed").
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_model: Option<String>,
    /// Exosite: largest single upload in bytes, else 413 (default 104857600).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_single_max: Option<u64>,
    /// Exosite: range length of a multi-part upload (default 5242880).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_part_size: Option<u64>,
    /// Exosite: non-final ranges exactly or at least the part size (default exact).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_range_rule: Option<ExositeRangeRule>,
    /// Exosite: a re-send of the last accepted range gets 409 or 204 (default conflict).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_resend_last: Option<ExositeResend>,
    /// Exosite: initiating an id being uploaded resets it or gets 409 (default reset).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_reinitiate: Option<ExositeReinitiate>,
    /// Exosite: unfinished uploads idle this many seconds are dropped (default 86400).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_upload_ttl_s: Option<u64>,
    /// Exosite: content info shows an upload in progress (default false: 404).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_info_progress: Option<bool>,
    /// Fraction (0..1) of Exosite requests answered 502 or 504, alternately.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exosite_gateway_error_rate: Option<f64>,
    /// Edgio account name, first segment of X-Agile-Path (default "testbed").
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_account: Option<String>,
    /// Edgio token lifetime in seconds; 0 expires every token now (default 3600).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_token_ttl_s: Option<u64>,
    /// Edgio multipart JOIN lasts this many ms before SUCCESS (default 1000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_join_delay_ms: Option<u64>,
    /// Probability (0..1) that an Edgio join ends FAILED.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_join_fail_rate: Option<f64>,
    /// Fraction (0..1) of Edgio completes answered 500 -13.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_complete_error_rate: Option<f64>,
    /// Edgio: an accepted completion is answered this many ms late (default 0).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_complete_answer_delay_ms: Option<u64>,
    /// Edgio upload-host requests per second before 429; 0 = off (default 100).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_rate_limit_rps: Option<u64>,
    /// Edgio garbage collector age in seconds; 0 expires at once (default 86400).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_upload_ttl_s: Option<u64>,
    /// Largest Edgio piece in bytes, else -11 (default 100000000000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_max_piece: Option<u64>,
    /// Largest Edgio multipart total in bytes, else -25 (default 20000000000000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edgio_max_total: Option<u64>,
    /// S3 proxy: an accepted CreateMultipartUpload is answered this many ms late
    /// (default 0).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_create_answer_delay_ms: Option<u64>,
}

/// A knob value out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} must be {want}, got {got}")]
pub struct SettingsError {
    /// The snake_case knob name.
    pub field: &'static str,
    /// The accepted range, in words.
    pub want: &'static str,
    /// The refused value.
    pub got: String,
}

impl Settings {
    /// Applies `patch` if every value in it is valid; otherwise changes nothing.
    pub fn apply(&mut self, patch: &SettingsPatch) -> Result<(), SettingsError> {
        let mut next = self.clone();
        next.overwrite(patch);
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Applies `patch`, clamping rates into 0..=1 and the part size to at least 1.
    pub fn apply_clamped(&mut self, patch: &SettingsPatch) {
        self.overwrite(patch);
        for rate in [
            &mut self.fail_rate,
            &mut self.rate_limit_rate,
            &mut self.answer_garbage_rate,
            &mut self.answer_truncate_rate,
            &mut self.answer_huge_rate,
            &mut self.hang_rate,
            &mut self.reset_rate,
            &mut self.stall_rate,
            &mut self.corrupt_rate,
            &mut self.exosite_gateway_error_rate,
            &mut self.edgio_join_fail_rate,
            &mut self.edgio_complete_error_rate,
        ] {
            *rate = if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            };
        }
        self.box_part_size = self.box_part_size.max(1);
        self.ih_gateway_timeout_ms = self.ih_gateway_timeout_ms.max(1);
        self.exosite_part_size = self.exosite_part_size.max(1);
    }

    /// Checks every knob's range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let rates = [
            ("fail_rate", self.fail_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("answer_garbage_rate", self.answer_garbage_rate),
            ("answer_truncate_rate", self.answer_truncate_rate),
            ("answer_huge_rate", self.answer_huge_rate),
            ("hang_rate", self.hang_rate),
            ("reset_rate", self.reset_rate),
            ("stall_rate", self.stall_rate),
            ("corrupt_rate", self.corrupt_rate),
            (
                "exosite_gateway_error_rate",
                self.exosite_gateway_error_rate,
            ),
            ("edgio_join_fail_rate", self.edgio_join_fail_rate),
            ("edgio_complete_error_rate", self.edgio_complete_error_rate),
        ];
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SettingsError {
                    field,
                    want: "between 0 and 1",
                    got: rate.to_string(),
                });
            }
        }
        if self.box_part_size == 0 {
            return Err(SettingsError {
                field: "box_part_size",
                want: "at least 1",
                got: "0".into(),
            });
        }
        if self.ih_gateway_timeout_ms == 0 {
            return Err(SettingsError {
                field: "ih_gateway_timeout_ms",
                want: "at least 1",
                got: "0".into(),
            });
        }
        if self.exosite_part_size == 0 {
            return Err(SettingsError {
                field: "exosite_part_size",
                want: "at least 1",
                got: "0".into(),
            });
        }
        if !is_host_label(&self.exosite_product) {
            return Err(SettingsError {
                field: "exosite_product",
                want: "one host name label (letters, digits, '-')",
                got: self.exosite_product.clone(),
            });
        }
        for (field, value) in [
            ("exosite_vendor", &self.exosite_vendor),
            ("exosite_model", &self.exosite_model),
        ] {
            if value.is_empty() {
                return Err(SettingsError {
                    field,
                    want: "not empty",
                    got: String::new(),
                });
            }
        }
        if !is_host_label(&self.edgio_account) {
            return Err(SettingsError {
                field: "edgio_account",
                want: "one host name label (letters, digits, '-')",
                got: self.edgio_account.clone(),
            });
        }
        if !valid_asset_list(&self.ih_assets) {
            return Err(SettingsError {
                field: "ih_assets",
                want: "a comma-separated list of 32-character lower-case hex ids",
                got: self.ih_assets.clone(),
            });
        }
        Ok(())
    }

    /// The configured Insights Hub asset ids, blanks around commas ignored.
    pub fn ih_asset_ids(&self) -> impl Iterator<Item = &str> {
        self.ih_assets
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }

    fn overwrite(&mut self, p: &SettingsPatch) {
        fn set<T: Copy>(dst: &mut T, src: Option<T>) {
            if let Some(v) = src {
                *dst = v;
            }
        }
        set(&mut self.fail_rate, p.fail_rate);
        set(&mut self.rate_limit_rate, p.rate_limit_rate);
        set(&mut self.answer_garbage_rate, p.answer_garbage_rate);
        set(&mut self.answer_truncate_rate, p.answer_truncate_rate);
        set(&mut self.answer_huge_rate, p.answer_huge_rate);
        set(&mut self.hang_rate, p.hang_rate);
        set(&mut self.reset_rate, p.reset_rate);
        set(&mut self.stall_rate, p.stall_rate);
        set(&mut self.latency_ms, p.latency_ms);
        set(&mut self.throttle_bps, p.throttle_bps);
        set(&mut self.session_ttl_s, p.session_ttl_s);
        set(&mut self.corrupt_rate, p.corrupt_rate);
        set(&mut self.corrupt_offset, p.corrupt_offset);
        set(&mut self.echo_headers, p.echo_headers);
        set(&mut self.box_part_size, p.box_part_size);
        set(&mut self.box_min_session_size, p.box_min_session_size);
        set(&mut self.box_commit_202, p.box_commit_202);
        set(&mut self.box_part_processing_ms, p.box_part_processing_ms);
        if let Some(assets) = &p.ih_assets {
            self.ih_assets.clone_from(assets);
        }
        set(&mut self.ih_gateway_timeout_ms, p.ih_gateway_timeout_ms);
        set(&mut self.ih_part_ttl_s, p.ih_part_ttl_s);
        set(&mut self.ih_require_if_match, p.ih_require_if_match);
        set(&mut self.ih_min_part_size, p.ih_min_part_size);
        set(
            &mut self.ih_part_size_checked_at_complete,
            p.ih_part_size_checked_at_complete,
        );
        for (dst, src) in [
            (&mut self.exosite_product, &p.exosite_product),
            (&mut self.exosite_vendor, &p.exosite_vendor),
            (&mut self.exosite_model, &p.exosite_model),
        ] {
            if let Some(v) = src {
                dst.clone_from(v);
            }
        }
        set(&mut self.exosite_check_host, p.exosite_check_host);
        set(&mut self.exosite_single_max, p.exosite_single_max);
        set(&mut self.exosite_part_size, p.exosite_part_size);
        set(&mut self.exosite_range_rule, p.exosite_range_rule);
        set(&mut self.exosite_resend_last, p.exosite_resend_last);
        set(&mut self.exosite_reinitiate, p.exosite_reinitiate);
        set(&mut self.exosite_upload_ttl_s, p.exosite_upload_ttl_s);
        set(&mut self.exosite_info_progress, p.exosite_info_progress);
        set(
            &mut self.exosite_gateway_error_rate,
            p.exosite_gateway_error_rate,
        );
        if let Some(account) = &p.edgio_account {
            self.edgio_account.clone_from(account);
        }
        set(&mut self.edgio_token_ttl_s, p.edgio_token_ttl_s);
        set(&mut self.edgio_join_delay_ms, p.edgio_join_delay_ms);
        set(&mut self.edgio_join_fail_rate, p.edgio_join_fail_rate);
        set(
            &mut self.edgio_complete_error_rate,
            p.edgio_complete_error_rate,
        );
        set(
            &mut self.edgio_complete_answer_delay_ms,
            p.edgio_complete_answer_delay_ms,
        );
        set(&mut self.edgio_rate_limit_rps, p.edgio_rate_limit_rps);
        set(&mut self.edgio_upload_ttl_s, p.edgio_upload_ttl_s);
        set(&mut self.edgio_max_piece, p.edgio_max_piece);
        set(&mut self.edgio_max_total, p.edgio_max_total);
        set(
            &mut self.s3_create_answer_delay_ms,
            p.s3_create_answer_delay_ms,
        );
    }

    /// Where `corrupt_rate` flips its byte, if placed (`corrupt_offset` ≥ 0).
    pub(crate) fn corrupt_at(&self) -> Option<u64> {
        u64::try_from(self.corrupt_offset).ok()
    }
}

/// An Insights Hub `entityId`: exactly 32 lower-case hex characters
/// (protocols/insights-hub.md §Hosts and auth).
pub(crate) fn is_asset_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A host name label: what can stand before the first `.` of `<product>.m2.exosite.io`.
fn is_host_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Every entry well-formed; an empty list is allowed (every asset then gets 404).
fn valid_asset_list(list: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .all(is_asset_id)
}

/// True with probability `rate`; never true for 0, always for 1.
pub(crate) fn roll(rate: f64) -> bool {
    rate > 0.0 && (rate >= 1.0 || fastrand::f64() < rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_patch_changes_nothing() {
        let mut s = Settings::default();
        let patch = SettingsPatch {
            latency_ms: Some(5),
            fail_rate: Some(1.5),
            ..Default::default()
        };
        assert_eq!(s.apply(&patch).map_err(|e| e.field), Err("fail_rate"));
        assert_eq!(s, Settings::default());
        let patch = SettingsPatch {
            stall_rate: Some(f64::NAN),
            ..Default::default()
        };
        assert_eq!(s.apply(&patch).map_err(|e| e.field), Err("stall_rate"));
    }

    #[test]
    fn clamping_keeps_rates_in_range() {
        let mut s = Settings::default();
        s.apply_clamped(&SettingsPatch {
            reset_rate: Some(7.0),
            stall_rate: Some(-2.0),
            box_part_size: Some(0),
            ..Default::default()
        });
        assert_eq!(s.reset_rate, 1.0);
        assert_eq!(s.stall_rate, 0.0);
        assert_eq!(s.box_part_size, 1);
    }

    #[test]
    fn asset_lists_must_hold_asset_ids() {
        let mut s = Settings::default();
        assert_eq!(
            s.ih_asset_ids().next(),
            Some("00189ab4c65243bb9d77f17332dd570a")
        );
        for bad in ["00189AB4C65243BB9D77F17332DD570A", "abc", "0018,x"] {
            let patch = SettingsPatch {
                ih_assets: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(s.apply(&patch).map_err(|e| e.field), Err("ih_assets"));
        }
        let patch = SettingsPatch {
            ih_assets: Some(" 0123456789abcdef0123456789abcdef , ".into()),
            ..Default::default()
        };
        assert!(s.apply(&patch).is_ok());
        assert_eq!(
            s.ih_asset_ids().collect::<Vec<_>>(),
            ["0123456789abcdef0123456789abcdef"]
        );
    }

    #[test]
    fn corrupt_offset_is_placed_only_when_not_negative() {
        let mut s = Settings::default();
        assert_eq!(s.corrupt_at(), None);
        s.corrupt_offset = 7;
        assert_eq!(s.corrupt_at(), Some(7));
    }

    #[test]
    fn exosite_knobs_are_checked_and_spelt_alike_in_json_and_flags() {
        let mut s = Settings::default();
        for (patch, field) in [
            (
                SettingsPatch {
                    exosite_part_size: Some(0),
                    ..Default::default()
                },
                "exosite_part_size",
            ),
            (
                SettingsPatch {
                    exosite_product: Some("a.b".into()),
                    ..Default::default()
                },
                "exosite_product",
            ),
            (
                SettingsPatch {
                    exosite_model: Some(String::new()),
                    ..Default::default()
                },
                "exosite_model",
            ),
            (
                SettingsPatch {
                    exosite_gateway_error_rate: Some(1.5),
                    ..Default::default()
                },
                "exosite_gateway_error_rate",
            ),
        ] {
            assert_eq!(s.apply(&patch).map_err(|e| e.field), Err(field));
        }
        let p: SettingsPatch = serde_json::from_str(
            r#"{"exosite_range_rule": "at_least", "exosite_resend_last": "accept",
                "exosite_reinitiate": "conflict"}"#,
        )
        .expect("valid patch");
        assert!(s.apply(&p).is_ok());
        assert_eq!(s.exosite_range_rule, ExositeRangeRule::AtLeast);
        assert_eq!(s.exosite_resend_last, ExositeResend::Accept);
        assert_eq!(s.exosite_reinitiate, ExositeReinitiate::Conflict);
        let json = serde_json::to_value(&s).expect("settings serialize");
        assert_eq!(json["exosite_range_rule"], "at_least");
        use clap::ValueEnum;
        let flag = ExositeRangeRule::AtLeast.to_possible_value();
        assert_eq!(flag.as_ref().map(|v| v.get_name()), Some("at_least"));
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"exosite_range_rule": "any"}"#).is_err());
    }

    #[test]
    fn edgio_knobs_are_checked_and_clamped() {
        let mut s = Settings::default();
        for (patch, field) in [
            (
                SettingsPatch {
                    edgio_join_fail_rate: Some(2.0),
                    ..Default::default()
                },
                "edgio_join_fail_rate",
            ),
            (
                SettingsPatch {
                    edgio_complete_error_rate: Some(-0.1),
                    ..Default::default()
                },
                "edgio_complete_error_rate",
            ),
            (
                SettingsPatch {
                    edgio_account: Some("a/b".into()),
                    ..Default::default()
                },
                "edgio_account",
            ),
        ] {
            assert_eq!(s.apply(&patch).map_err(|e| e.field), Err(field));
        }
        s.apply_clamped(&SettingsPatch {
            edgio_join_fail_rate: Some(3.0),
            ..Default::default()
        });
        assert_eq!(s.edgio_join_fail_rate, 1.0);
        let p: SettingsPatch =
            serde_json::from_str(r#"{"edgio_token_ttl_s": 0}"#).expect("valid patch");
        assert_eq!(p.edgio_token_ttl_s, Some(0));
    }

    #[test]
    fn unknown_knobs_are_refused() {
        let r: Result<SettingsPatch, _> = serde_json::from_str(r#"{"fail_rat": 1}"#);
        assert!(r.is_err());
    }

    #[test]
    fn roll_extremes_are_certain() {
        assert!((0..100).all(|_| roll(1.0)));
        assert!((0..100).all(|_| !roll(0.0)));
    }
}
