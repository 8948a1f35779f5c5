//! Digests: which ones a backend wants, and computing them in the one read pass.
//!
//! The engine reads each byte of a file once, in order, and feeds it to every hasher
//! the backend asked for (a per-part digest and the whole-file digest). Hashing runs
//! on blocking threads, never on the async workers: MD5 runs at ~0.6 GB/s on one core
//! here, long enough to stall a runtime thread.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use sha1::digest::common::hazmat::{SerializableState, SerializedState};

/// A digest algorithm a backend uses, per part or for the whole object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestKind {
    Md5,
    Sha1,
    Sha256,
}

impl fmt::Display for DigestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestKind::Md5 => "md5",
            DigestKind::Sha1 => "sha1",
            DigestKind::Sha256 => "sha256",
        })
    }
}

/// One computed digest. Stored in the journal as `{"kind": "sha256", "hex": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub kind: DigestKind,
    /// Lower-case hex: the form every vendor answers in, compared case-insensitively.
    pub hex: String,
}

impl Digest {
    pub fn from_bytes(kind: DigestKind, bytes: &[u8]) -> Digest {
        Digest {
            kind,
            hex: to_hex(bytes),
        }
    }

    /// Parses a hex digest a server reported (any case).
    pub fn from_hex(kind: DigestKind, hex: &str) -> Digest {
        Digest {
            kind,
            hex: hex.trim().to_ascii_lowercase(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        from_hex(&self.hex).unwrap_or_default()
    }

    /// Base64 of the raw digest, as Box's `Digest: sha=` and Exosite's `MD5:` want.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes())
    }

    /// Same algorithm and value.
    pub fn matches(&self, other: &Digest) -> bool {
        self.kind == other.kind && self.hex.eq_ignore_ascii_case(&other.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.hex)
    }
}

/// A running hash of one algorithm.
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(kind: DigestKind) -> Hasher {
        match kind {
            DigestKind::Md5 => Hasher::Md5(md5::Md5::new()),
            DigestKind::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            DigestKind::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Md5(h) => Digest::from_bytes(DigestKind::Md5, &h.finalize()),
            Hasher::Sha1(h) => Digest::from_bytes(DigestKind::Sha1, &h.finalize()),
            Hasher::Sha256(h) => Digest::from_bytes(DigestKind::Sha256, &h.finalize()),
        }
    }
}

/// Where a running whole-file hash stands: the hasher's state after the first
/// `offset` bytes of the file. Stored in the journal as the read pass advances, so
/// that a later attempt continues the hash instead of reading those bytes again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashCheckpoint {
    pub kind: DigestKind,
    /// Bytes of the file the state has consumed.
    pub offset: u64,
    /// Base64 of RustCrypto's serialized hasher state (a few dozen bytes).
    pub state: String,
    /// The file's ctime (ns) when those bytes were read. Size, mtime and inode can
    /// all be kept by an in-place rewrite (`cp -p`, `rsync --inplace -t`); ctime
    /// cannot be set from user space, so a changed ctime voids the checkpoint.
    #[serde(default)]
    pub ctime_ns: Option<i64>,
}

fn save<H: SerializableState>(h: &H) -> String {
    base64::engine::general_purpose::STANDARD.encode(h.serialize().as_slice())
}

fn load<H: SerializableState>(state: &str) -> Option<H> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(state)
        .ok()?;
    let array = SerializedState::<H>::try_from(bytes.as_slice()).ok()?;
    H::deserialize(&array).ok()
}

impl Hasher {
    pub fn kind(&self) -> DigestKind {
        match self {
            Hasher::Md5(_) => DigestKind::Md5,
            Hasher::Sha1(_) => DigestKind::Sha1,
            Hasher::Sha256(_) => DigestKind::Sha256,
        }
    }

    /// The state after `offset` bytes of a file whose ctime is `ctime_ns`, to be
    /// continued by [`Hasher::resume`].
    pub fn checkpoint(&self, offset: u64, ctime_ns: Option<i64>) -> HashCheckpoint {
        let state = match self {
            Hasher::Md5(h) => save(h),
            Hasher::Sha1(h) => save(h),
            Hasher::Sha256(h) => save(h),
        };
        HashCheckpoint {
            kind: self.kind(),
            offset,
            state,
            ctime_ns,
        }
    }

    /// The hasher a checkpoint saved; `None` if the state does not parse (a journal
    /// from another build, or damage): the caller then hashes from byte 0.
    pub fn resume(cp: &HashCheckpoint) -> Option<Hasher> {
        Some(match cp.kind {
            DigestKind::Md5 => Hasher::Md5(load(&cp.state)?),
            DigestKind::Sha1 => Hasher::Sha1(load(&cp.state)?),
            DigestKind::Sha256 => Hasher::Sha256(load(&cp.state)?),
        })
    }
}

/// Digest of a whole buffer in one call.
pub fn digest_of(kind: DigestKind, data: &[u8]) -> Digest {
    let mut h = Hasher::new(kind);
    h.update(data);
    h.finish()
}

pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            digest_of(DigestKind::Sha256, b"").hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest_of(DigestKind::Sha1, b"abc").hex,
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest_of(DigestKind::Md5, b"abc").hex,
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // Box's docs example: the base64 form is what goes into `Digest: sha=`.
        assert_eq!(
            digest_of(DigestKind::Sha1, b"abc").base64(),
            "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for kind in [DigestKind::Md5, DigestKind::Sha1, DigestKind::Sha256] {
            let mut h = Hasher::new(kind);
            for chunk in data.chunks(4093) {
                h.update(chunk);
            }
            assert_eq!(h.finish(), digest_of(kind, &data));
        }
    }

    #[test]
    fn a_checkpoint_continues_the_hash_exactly() {
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 13 % 253) as u8).collect();
        for kind in [DigestKind::Md5, DigestKind::Sha1, DigestKind::Sha256] {
            // Cut at odd offsets too: the hasher's partial block must travel with it.
            for cut in [0usize, 1, 63, 64, 65, 4097, 300_000] {
                let mut h = Hasher::new(kind);
                h.update(&data[..cut]);
                let cp = h.checkpoint(cut as u64, None);
                let text = serde_json::to_string(&cp).expect("json");
                let back: HashCheckpoint = serde_json::from_str(&text).expect("parse");
                let mut resumed = Hasher::resume(&back).expect("resume");
                resumed.update(&data[cut..]);
                assert_eq!(resumed.finish(), digest_of(kind, &data), "{kind} at {cut}");
            }
        }
        let bad = HashCheckpoint {
            kind: DigestKind::Sha1,
            offset: 5,
            state: "not base64!".into(),
            ctime_ns: None,
        };
        assert!(Hasher::resume(&bad).is_none());
        let short = HashCheckpoint {
            state: base64::engine::general_purpose::STANDARD.encode([1, 2, 3]),
            ..bad
        };
        assert!(Hasher::resume(&short).is_none());
    }

    #[test]
    fn hex_roundtrip_and_case() {
        let d = Digest::from_hex(DigestKind::Sha1, "A9993E364706816ABA3E25717850C26C9CD0D89D");
        assert!(d.matches(&digest_of(DigestKind::Sha1, b"abc")));
        assert_eq!(from_hex("0aff"), Some(vec![10, 255]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }
}
