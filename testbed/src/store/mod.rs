//! The on-disk object store shared by every emulator.
//!
//! Layout under the store root:
//! - `objects/<emulator>/<n>` (or `<n>.0`, `<n>.1`, ... for content joined from
//!   parts, kept as its parts): committed object contents. Blob names are
//!   store-chosen and never reused, so replacing an object (a new version) never
//!   disturbs a download still reading the old blob.
//! - `sessions/<emulator>/<session>/`: parts of open upload sessions, owned by the
//!   emulator; removed when the session ends.
//! - `tmp/`: staging files of requests in flight; deleted when the request ends.
//!
//! Invariants: an object is in the index only once its blob is complete on disk
//! (persist is a rename), and its `size`/`sha1`/`sha256` describe the blob's real
//! bytes (after any injected corruption); a digest the emulator did not compute is
//! computed when the object is first listed. The index is in memory: a restarted
//! testbed starts empty.

pub(crate) mod staging;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::hex::hex;
pub(crate) use staging::{Hashes, Staged, Staging};

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
    /// Lower-case hex SHA-1 of the stored bytes. Computed when first listed unless
    /// the emulated service computes it itself (Box).
    pub sha1: String,
    /// Lower-case hex SHA-256 of the stored bytes. Computed when first listed unless
    /// the emulated service computes it itself (Edgio).
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
    /// `sha1`/`sha256` are empty until known (see [`Store::list`]).
    info: ObjectInfo,
    /// Unlinked when the object is replaced or removed.
    blob: Blob,
}

/// Where an object's bytes are: one file, or its parts' files in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob(Vec<PathBuf>);

/// A blob's files, opened: the handles keep the bytes even if the object is replaced
/// or removed meanwhile. One descriptor per part of a joined object for the length
/// of a download: fine for a testbed (a 4 GiB object of 8 MiB parts holds 512), not
/// for a service with many clients.
pub(crate) struct OpenBlob {
    /// Each file with its size, in order.
    pub(crate) files: Vec<(std::fs::File, u64)>,
}

impl Blob {
    pub(crate) fn open(&self) -> io::Result<OpenBlob> {
        let files = self
            .0
            .iter()
            .map(|p| {
                let f = std::fs::File::open(p)?;
                let len = f.metadata()?.len();
                Ok((f, len))
            })
            .collect::<io::Result<_>>()?;
        Ok(OpenBlob { files })
    }

    /// Every byte, in order (for tests: objects are small there).
    pub(crate) fn read(&self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        for p in &self.0 {
            all.extend(std::fs::read(p)?);
        }
        Ok(all)
    }

    fn remove(&self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl OpenBlob {
    pub(crate) fn len(&self) -> u64 {
        self.files.iter().map(|(_, n)| n).sum()
    }
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

    /// A new staging file for an incoming body, computing `hashes` of it.
    pub(crate) fn staging(&self, hashes: Hashes) -> io::Result<Staging> {
        Staging::new_in(&self.root.join("tmp"), hashes)
    }

    /// The staging directory, for [`Staged::join`].
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
    /// that id. A rename per file of the stage (one, or one per part of a join):
    /// cheap enough to call under an emulator's lock,
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
        let n = self.next_blob.fetch_add(1, Ordering::Relaxed);
        let info = ObjectInfo {
            emulator: emulator.to_string(),
            path: path.to_string(),
            size: staged.len,
            sha1: staged.sha1_hex(),
            sha256: staged.sha256_hex(),
            id: id.to_string(),
            content_type: content_type.map(str::to_string),
        };
        let one = staged.paths().count() == 1;
        let blob = Blob(staged.persist_segments(|i| match one {
            true => dir.join(n.to_string()),
            false => dir.join(format!("{n}.{i}")),
        })?);
        let old = self.lock().insert(
            (emulator.to_string(), id.to_string()),
            Entry {
                info: info.clone(),
                blob,
            },
        );
        if let Some(old) = old {
            // An open download keeps its handles; unlinking only frees the names.
            old.blob.remove();
        }
        Ok(info)
    }

    /// Removes object `id` of `emulator`, if stored.
    pub(crate) fn remove(&self, emulator: &str, id: &str) {
        if let Some(old) = self.lock().remove(&(emulator.to_string(), id.to_string())) {
            old.blob.remove();
        }
    }

    /// Where the content of object `id` is, if stored.
    pub(crate) fn blob(&self, emulator: &str, id: &str) -> Option<Blob> {
        self.lock()
            .get(&(emulator.to_string(), id.to_string()))
            .map(|e| e.blob.clone())
    }

    /// Every stored object, by emulator then id. Digests no emulator computed are
    /// computed here, outside the lock, and kept: listing is the test harness's
    /// question, so the hashing is paid by it, not by an upload being measured.
    pub(crate) fn list(&self) -> Vec<ObjectInfo> {
        // A few rounds: an object stored or replaced while others were hashed is
        // hashed on the next one. (A blob that cannot be read stays without digests
        // rather than looping.)
        for _ in 0..4 {
            let unknown: Vec<_> = self
                .lock()
                .iter()
                .filter(|(_, e)| e.info.sha1.is_empty() || e.info.sha256.is_empty())
                .map(|(k, e)| {
                    let missing = Hashes {
                        sha1: e.info.sha1.is_empty(),
                        sha256: e.info.sha256.is_empty(),
                        md5: false,
                    };
                    (k.clone(), e.blob.clone(), missing)
                })
                .collect();
            if unknown.is_empty() {
                break;
            }
            self.hash_unknown(unknown);
        }
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    /// Computes and keeps the `missing` digests of `unknown` objects, outside the
    /// lock; the ones an emulator computed are not computed again.
    fn hash_unknown(&self, unknown: Vec<((String, String), Blob, Hashes)>) {
        for (key, blob, missing) in unknown {
            // Gone meanwhile (replaced, removed): its successor is hashed next round.
            let Ok(d) = staging::digest_files(blob.0.iter().map(|p| &**p), missing) else {
                continue;
            };
            let mut index = self.lock();
            if let Some(e) = index.get_mut(&key).filter(|e| e.blob == blob) {
                if let Some(sha1) = d.sha1 {
                    e.info.sha1 = hex(&sha1);
                }
                if let Some(sha256) = d.sha256 {
                    e.info.sha256 = hex(&sha256);
                }
            }
        }
    }

    pub(crate) fn count(&self, emulator: &str) -> u64 {
        self.lock().keys().filter(|(e, _)| e == emulator).count() as u64
    }

    /// Where the content stored at `path` is.
    pub(crate) fn blob_by_path(&self, emulator: &str, path: &str) -> Option<Blob> {
        self.lock()
            .values()
            .find(|e| e.info.emulator == emulator && e.info.path == path)
            .map(|e| e.blob.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listing_computes_the_digests_no_emulator_did() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut s = store.staging(Hashes::NONE)?;
        s.write(b"hello world").await?;
        let info = store.put("exosite", "c1", "c1", None, s.finish().await?)?;
        assert_eq!((info.sha1.as_str(), info.sha256.as_str()), ("", ""));
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(
            listed[0].sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_joined_object_reads_as_its_parts_in_order_and_is_removed_whole() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let parts: Vec<PathBuf> = ["ab", "cd", "e"]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let f = dir.path().join(format!("p{i}"));
                std::fs::write(&f, p).map(|()| f)
            })
            .collect::<io::Result<_>>()?;
        let joined = Staged::join(store.tmp_dir(), parts, Hashes::NONE).await?;
        store.put("box", "f1", "a/b.bin", None, joined)?;
        let blob = store
            .blob("box", "f1")
            .ok_or_else(|| io::Error::other("not stored"))?;
        assert_eq!(blob.read()?, b"abcde");
        assert_eq!(blob.open()?.len(), 5);
        store.remove("box", "f1");
        assert_eq!(
            std::fs::read_dir(dir.path().join("objects/box"))?.count(),
            0
        );
        Ok(())
    }
}
