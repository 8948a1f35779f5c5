//! What a request names: an asset (`entityId`) and a file path under it
//! (protocols/insights-hub.md §Hosts and auth, rule 2).
//!
//! Checked in this order, before anything else of the request: an `entityId` that is not
//! 32 lower-case hex characters is 400, one that is not a configured asset
//! (`ih_assets`) is 404, and a file path with an empty segment (a leading, doubled or
//! trailing `/`, so no file name) is 400.

use super::error::IhError;
use crate::faults::{Settings, is_asset_id};

/// The storage prefix `fileslist` puts in front of every object key; the service puts
/// the tenant's there (`iotteni` in the vendor's example).
pub(crate) const TENANT_PREFIX: &str = "testbed";

/// A checked (asset, file path) pair: the key of a file and of its multi-part upload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Target {
    pub(crate) entity: String,
    /// Directories and file name, `/`-separated, no leading slash.
    pub(crate) filepath: String,
}

/// Checks an `entityId` alone (search takes no file path).
pub(crate) fn asset(settings: &Settings, entity: &str) -> Result<(), IhError> {
    if !is_asset_id(entity) {
        return Err(IhError::bad_request(format!(
            "Invalid entityId {entity:?}: 32 lower-case hexadecimal characters expected."
        )));
    }
    if !settings.ih_asset_ids().any(|a| a == entity) {
        return Err(IhError::not_found(format!("Asset {entity} not found.")));
    }
    Ok(())
}

impl Target {
    pub(crate) fn parse(
        settings: &Settings,
        entity: &str,
        filepath: &str,
    ) -> Result<Target, IhError> {
        asset(settings, entity)?;
        if filepath.is_empty() || filepath.split('/').any(str::is_empty) {
            return Err(IhError::bad_request(format!(
                "Invalid filepath {filepath:?}: a path and a file name are expected."
            )));
        }
        Ok(Target {
            entity: entity.to_string(),
            filepath: filepath.to_string(),
        })
    }

    /// `<entityId>/<filepath>`: the object's path (and id) in the testbed's store.
    pub(crate) fn store_path(&self) -> String {
        format!("{}/{}", self.entity, self.filepath)
    }

    /// `objectKey` of `fileslist`: `<tenant prefix>/<entityId>/<filepath>`.
    pub(crate) fn object_key(&self) -> String {
        format!("{TENANT_PREFIX}/{}", self.store_path())
    }

    /// The file name: the last segment.
    pub(crate) fn name(&self) -> &str {
        self.filepath.rsplit('/').next().unwrap_or(&self.filepath)
    }

    /// The directory as search reports it: with a trailing `/`, and `/` for the root.
    pub(crate) fn dir(&self) -> String {
        match self.filepath.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => "/".to_string(),
        }
    }

    /// The URL path of the file under the API base, percent-encoded (for `Location`).
    pub(crate) fn url_path(&self) -> String {
        format!("files/{}/{}", self.entity, encode_path(&self.filepath))
    }
}

/// Percent-encodes what may not appear literally in a URL path; keeps `/`.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSET: &str = "00189ab4c65243bb9d77f17332dd570a";

    #[test]
    fn names_dirs_and_keys() -> Result<(), IhError> {
        let s = Settings::default();
        let t = Target::parse(&s, ASSET, "logs/2024/dev 1.log")?;
        assert_eq!(t.name(), "dev 1.log");
        assert_eq!(t.dir(), "logs/2024/");
        assert_eq!(
            t.object_key(),
            format!("testbed/{ASSET}/logs/2024/dev 1.log")
        );
        assert_eq!(t.url_path(), format!("files/{ASSET}/logs/2024/dev%201.log"));
        let root = Target::parse(&s, ASSET, "a.bin")?;
        assert_eq!((root.name(), root.dir().as_str()), ("a.bin", "/"));
        Ok(())
    }

    #[test]
    fn bad_targets_are_400_or_404() {
        let s = Settings::default();
        let status = |e: &str, p: &str| Target::parse(&s, e, p).err().map(|e| e.status().as_u16());
        assert_eq!(status("00189AB4C65243BB9D77F17332DD570A", "a"), Some(400));
        assert_eq!(status("00189ab4", "a"), Some(400));
        assert_eq!(status("0123456789abcdef0123456789abcdef", "a"), Some(404));
        for p in ["", "/a", "a/", "a//b"] {
            assert_eq!(status(ASSET, p), Some(400), "{p:?}");
        }
        assert_eq!(status(ASSET, "a/b"), None);
    }
}
