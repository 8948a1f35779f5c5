//! The on-disk object store shared by every emulator.
//!
//! Layout under the store root:
//! - `objects/<emulator>/<n>`: committed object contents. Blob names are store-chosen
//!   and never reused, so replacing an object (a new version) never disturbs a
//!   download still reading the old blob.
//! - `sessions/<emulator>/<session>/`: parts of open upload sessions, owned by the
//!   emulator; removed when the session ends.
//! - `tmp/`: staging files of requests in flight; deleted when the request ends.
//!
//! Invariants: an object is in the index only once its blob is complete on disk
//! (persist is a rename), and its `size`/`sha1`/`sha256` describe the blob's real
//! bytes (after any injected corruption). The index is in memory: a restarted testbed
//! starts empty.

pub(crate) mod staging;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::hex::hex;
pub(crate) use staging::{Staged, Staging};

/// One stored object, as `GET /_testbed/objects` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The emulator's path prefix, e.g. "box".
    pub emulator: String,
    /// Full path in the vendor's name space; for Box: folder names from the root
    /// joined with `/`, then the file name; for Insights Hub: `<entityId>/<filepath>`;
    /// for Exosite: the content id.
    pub path: String,
    /// Bytes really stored.
    pub size: u64,
    /// Lower-case hex SHA-1 of the stored bytes.
    pub sha1: String,
    /// Lower-case hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// The vendor's id of the object (Box: the file id; Insights Hub, which has none:
    /// the path again; Exosite: the content id).
    pub id: String,
    /// The MIME type the service keeps with the object (Exosite, Insights Hub,
    /// Edgio); absent where it keeps none (Box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// One indexed object: what is reported, and where the bytes are.
struct Entry {
    info: ObjectInfo,
    /// `objects/<emulator>/<n>`; unlinked when the object is replaced or removed.
    blob: PathBuf,
}

pub(crate) struct Store {
    /// The `--store` directory.
    root: PathBuf,
    /// Keyed by (emulator, vendor id).
    index: Mutex<BTreeMap<(String, String), Entry>>,
    /// Next blob name.
    next_blob: AtomicU64,
}

impl Store {
    /// Opens (creates) the layout under `root`. Leftover staging files of an earlier
    /// run are not reused.
    pub(crate) fn open(root: &Path) -> io::Result<Store> {
        for sub in ["objects", "sessions", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            index: Mutex::new(BTreeMap::new()),
            next_blob: AtomicU64::new(1),
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Entry>> {
        // Poisoning means a panic elsewhere mid-update of a map entry; every update
        // is a single insert or remove, so the map is still consistent.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new staging file for an incoming body.
    pub(crate) fn staging(&self) -> io::Result<Staging> {
        Staging::new_in(&self.root.join("tmp"))
    }

    /// The staging directory, for [`Staged::concat`].
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Creates and returns the directory for one upload session's parts.
    pub(crate) fn session_dir(&self, emulator: &str, session: &str) -> io::Result<PathBuf> {
        let dir = self.root.join("sessions").join(emulator).join(session);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Stores `staged` as object `id` of `emulator` at `path` (of MIME type
    /// `content_type`, where the service keeps one), replacing any earlier content of
    /// that id. A rename: cheap enough to call under an emulator's lock,
    /// which keeps "name checked free" and "object stored" one step.
    pub(crate) fn put(
        &self,
        emulator: &str,
        id: &str,
        path: &str,
        content_type: Option<&str>,
        staged: Staged,
    ) -> io::Result<ObjectInfo> {
        let dir = self.root.join("objects").join(emulator);
        std::fs::create_dir_all(&dir)?;
        let blob = dir.join(self.next_blob.fetch_add(1, Ordering::Relaxed).to_string());
        let info = ObjectInfo {
            emulator: emulator.to_string(),
            path: path.to_string(),
            size: staged.len,
            sha1: hex(&staged.sha1),
            sha256: hex(&staged.sha256),
            id: id.to_string(),
            content_type: content_type.map(str::to_string),
        };
        staged.persist(&blob)?;
        let old = self.lock().insert(
            (emulator.to_string(), id.to_string()),
            Entry {
                info: info.clone(),
                blob,
            },
        );
        if let Some(old) = old {
            // An open download keeps its handle; unlinking only frees the name.
            let _ = std::fs::remove_file(old.blob);
        }
        Ok(info)
    }

    /// Removes object `id` of `emulator`, if stored.
    pub(crate) fn remove(&self, emulator: &str, id: &str) {
        if let Some(old) = self.lock().remove(&(emulator.to_string(), id.to_string())) {
            let _ = std::fs::remove_file(old.blob);
        }
    }

    /// Where the content of object `id` is, if stored.
    pub(crate) fn blob(&self, emulator: &str, id: &str) -> Option<PathBuf> {
        self.lock()
            .get(&(emulator.to_string(), id.to_string()))
            .map(|e| e.blob.clone())
    }

    /// Every stored object, by emulator then id.
    pub(crate) fn list(&self) -> Vec<ObjectInfo> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    pub(crate) fn count(&self, emulator: &str) -> u64 {
        self.lock().keys().filter(|(e, _)| e == emulator).count() as u64
    }

    /// Where the content stored at `path` is.
    pub(crate) fn blob_by_path(&self, emulator: &str, path: &str) -> Option<PathBuf> {
        self.lock()
            .values()
            .find(|e| e.info.emulator == emulator && e.info.path == path)
            .map(|e| e.blob.clone())
    }
}
