//! Box's JSON shapes; requests go through the shared bearer-token client.
//!
//! `protocols/box.md` is the source of every rule cited here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::backend::bearer::{Answer, BearerClient, Refusal};

/// `UploadSession` (box.md §Session lifecycle).
#[derive(Debug, Clone, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub part_size: u64,
    #[serde(default)]
    pub session_endpoints: Option<Endpoints>,
}

/// Absolute URLs of a session's calls; we keep them in the journal with the session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    #[serde(default)]
    pub upload_part: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub abort: Option<String>,
    #[serde(default)]
    pub list_parts: Option<String>,
}

/// `UploadPart`: what commit needs back, exactly as the server gave it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadPart {
    pub part_id: String,
    pub offset: u64,
    pub size: u64,
    /// Hex (not base64).
    pub sha1: String,
}

#[derive(Debug, Deserialize)]
pub struct PartAnswer {
    pub part: UploadPart,
}

#[derive(Debug, Deserialize)]
pub struct PartList {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub entries: Vec<UploadPart>,
}

/// A file object (subset).
#[derive(Debug, Clone, Deserialize)]
pub struct BoxFile {
    pub id: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha1: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Entries<T> {
    pub entries: Vec<T>,
}

/// An item in a folder listing or a conflict report.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// The conflicting item of a 409 `item_name_in_use` (an object for uploads, an
/// array for folder creation).
pub fn conflict(r: &Refusal) -> Option<Item> {
    let c = r.context.get("conflicts")?;
    let first = match c {
        Value::Array(a) => a.first()?.clone(),
        other => other.clone(),
    };
    serde_json::from_value(first).ok()
}
