//! Knobs that pick between two readings of an unconfirmed vendor rule. Each is an enum,
//! not a bool, so the JSON value and the CLI flag say which reading is meant
//! (`"exact"`, not `true`). The spelling is the same in both: snake_case.

use serde::{Deserialize, Serialize};

/// Exosite: how long a range other than the final one must be
/// (protocols/exosite.md rule 9; the seed: parts "need to be" 5 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ExositeRangeRule {
    /// Exactly `exosite_part_size`; the final range at most that.
    Exact,
    /// At least `exosite_part_size`; the final range any length.
    AtLeast,
}

/// Exosite: what a re-send of the most recently accepted range meets
/// (rule 10; e.g. a client whose answer was lost sends it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ExositeResend {
    /// 409, like any range that does not start at the next expected offset.
    Conflict,
    /// 204 and nothing changes, if the bytes are the same (same MD5); else 409.
    Accept,
}

/// Exosite: what initiating an id whose upload is in progress does (rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ExositeReinitiate {
    /// The upload starts again from offset 0 with the new length and type.
    Reset,
    /// 409; the upload in progress goes on.
    Conflict,
}
