//! Fault injection: the knobs, and the dice that apply them.
//!
//! One `Settings` value is shared by every emulator. It is set at start (CLI flags or
//! `Options::settings`) and patched at run time (`PUT /_testbed/faults`,
//! `Testbed::update_settings`); every request reads the value current when it arrives.
//! `/_testbed/...` endpoints are never faulted.
//!
//! The generic faults (refusal, rate limit, reset, stall, latency, throttle) are applied by
//! [`layer`] in front of every emulator; the vendor-shaped ones (corrupt store, expiry,
//! Box's 202-on-commit and part size) are read by the emulators themselves.

pub(crate) mod body;
pub(crate) mod layer;
pub(crate) mod throttle;

use serde::{Deserialize, Serialize};

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
    /// Part size Box dictates in new sessions.
    pub box_part_size: u64,
    /// Smallest `file_size` Box accepts for a session (protocols/box.md §Small files).
    pub box_min_session_size: u64,
    /// The first N commit attempts of each Box session are answered 202 + `Retry-After`.
    pub box_commit_202: u32,
    /// A Box part counts as "processing" this long after it is stored; a commit while
    /// any part is processing gets 202 (protocols/box.md rule 11, 13).
    pub box_part_processing_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fail_rate: 0.0,
            rate_limit_rate: 0.0,
            reset_rate: 0.0,
            stall_rate: 0.0,
            latency_ms: 0,
            throttle_bps: 0,
            session_ttl_s: 7 * 24 * 3600, // protocols/box.md §Session lifecycle: 7 days
            corrupt_rate: 0.0,
            corrupt_offset: -1,
            box_part_size: 8 * 1024 * 1024, // protocols/box.md §Session lifecycle: 8 MiB
            box_min_session_size: 20_000_000, // protocols/box.md §Small files
            box_commit_202: 0,
            box_part_processing_ms: 0,
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
            &mut self.reset_rate,
            &mut self.stall_rate,
            &mut self.corrupt_rate,
        ] {
            *rate = if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            };
        }
        self.box_part_size = self.box_part_size.max(1);
    }

    /// Checks every knob's range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let rates = [
            ("fail_rate", self.fail_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("reset_rate", self.reset_rate),
            ("stall_rate", self.stall_rate),
            ("corrupt_rate", self.corrupt_rate),
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
        Ok(())
    }

    fn overwrite(&mut self, p: &SettingsPatch) {
        fn set<T: Copy>(dst: &mut T, src: Option<T>) {
            if let Some(v) = src {
                *dst = v;
            }
        }
        set(&mut self.fail_rate, p.fail_rate);
        set(&mut self.rate_limit_rate, p.rate_limit_rate);
        set(&mut self.reset_rate, p.reset_rate);
        set(&mut self.stall_rate, p.stall_rate);
        set(&mut self.latency_ms, p.latency_ms);
        set(&mut self.throttle_bps, p.throttle_bps);
        set(&mut self.session_ttl_s, p.session_ttl_s);
        set(&mut self.corrupt_rate, p.corrupt_rate);
        set(&mut self.corrupt_offset, p.corrupt_offset);
        set(&mut self.box_part_size, p.box_part_size);
        set(&mut self.box_min_session_size, p.box_min_session_size);
        set(&mut self.box_commit_202, p.box_commit_202);
        set(&mut self.box_part_processing_ms, p.box_part_processing_ms);
    }

    /// Where `corrupt_rate` flips its byte, if placed (`corrupt_offset` ≥ 0).
    pub(crate) fn corrupt_at(&self) -> Option<u64> {
        u64::try_from(self.corrupt_offset).ok()
    }
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
    fn corrupt_offset_is_placed_only_when_not_negative() {
        let mut s = Settings::default();
        assert_eq!(s.corrupt_at(), None);
        s.corrupt_offset = 7;
        assert_eq!(s.corrupt_at(), Some(7));
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
