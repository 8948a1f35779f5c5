//! The `s3` backend against a real S3 server: s3s-fs 0.14.1 on loopback, started
//! per test with a fresh root and its own key pair, driven through the `Backend`
//! trait directly (as `box_backend.rs` does for Box).
//!
//! The binary is `$DROPSHIP_S3S_FS`, else `/work/s3s-fs-install/bin/s3s-fs` (the
//! groundwork machine's install). Without either, each test prints why it did not
//! run and passes: CI does not install s3s-fs yet (issue 12).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dropship::backend::s3::multipart_etag;
use dropship::backend::{
    Backend, BackendConfig, BackendError, FileDigests, FileSpec, Meter, PartBody, PartSpec, Receipt,
};
use dropship::digest::{Digest, DigestKind, digest_of};

const MIB: usize = 1 << 20;
const ACCESS_KEY: &str = "AKIDDROPSHIPTEST";
const SECRET_KEY: &str = "dropship-test-secret";

fn binary() -> Option<PathBuf> {
    let env = std::env::var_os("DROPSHIP_S3S_FS").map(PathBuf::from);
    let fallback = PathBuf::from("/work/s3s-fs-install/bin/s3s-fs");
    env.into_iter().chain([fallback]).find(|p| p.is_file())
}

/// A running s3s-fs with a bucket `dropship`, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
    /// The store and the key files.
    dir: tempfile::TempDir,
}

impl Server {
    /// `None` (after saying why) when no s3s-fs binary is at hand.
    fn start(test: &str) -> Option<Server> {
        let Some(bin) = binary() else {
            eprintln!(
                "{test}: skipped: no s3s-fs (set DROPSHIP_S3S_FS, or install it: \
                 cargo install s3s-fs --version 0.14.1 --features binary)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("dropship")).expect("bucket folder");
        std::fs::write(dir.path().join("access_key_id"), ACCESS_KEY).expect("key file");
        std::fs::write(dir.path().join("secret_access_key"), SECRET_KEY).expect("secret file");
        // Port 0: s3s-fs prints the port it got at info level (s3-brief §1).
        // Never RUST_LOG=debug: it logs presigned query strings. Even at info, an
        // UploadPart whose body breaks off (client killed) is logged as an ERROR
        // span trace holding the whole presigned URI, signature included: the
        // output is drained here and never printed.
        let mut child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(at) = line.find("server is running at ") {
                    let url = line[at + "server is running at ".len()..]
                        .trim()
                        .to_string();
                    let _ = tx.send(url);
                    sent = true;
                }
                // Keep draining, so that the server never blocks on a full pipe.
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("s3s-fs reports its address");
        Some(Server {
            child,
            endpoint,
            dir,
        })
    }

    fn config(&self, secret_file: &str) -> String {
        format!(
            "type = \"s3\"\nendpoint = \"{}\"\nbucket = \"dropship\"\nprefix = \"site\"\n\
             access_key_id_file = \"{}\"\nsecret_access_key_file = \"{}\"\n",
            self.endpoint,
            self.dir.path().join("access_key_id").display(),
            self.dir.path().join(secret_file).display(),
        )
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.backend_with("secret_access_key")
    }

    fn backend_with(&self, secret_file: &str) -> Arc<dyn Backend> {
        let cfg: BackendConfig = toml::from_str(&self.config(secret_file)).expect("config");
        cfg.build(Default::default()).expect("backend")
    }

    /// Where s3s-fs keeps the object of `key` (bucket folder, then the prefix).
    fn stored(&self, key: &str) -> PathBuf {
        self.dir.path().join("root/dropship/site").join(key)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Reproducible bytes that differ per `seed`.
fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn body(b: &[u8]) -> PartBody {
    PartBody::new(Bytes::copy_from_slice(b), Meter::default())
}

fn spec(key: &str, size: usize) -> FileSpec {
    FileSpec {
        key: key.into(),
        size: size as u64,
        mtime: 0,
    }
}

/// Part `index` of `file` cut at `part`, with its MD5 as the read pass gives it.
fn part(file: &[u8], part: usize, index: u32) -> (PartSpec, PartBody) {
    let offset = index as usize * part;
    let end = (offset + part).min(file.len());
    let bytes = &file[offset..end];
    (
        PartSpec {
            index,
            offset: offset as u64,
            length: bytes.len() as u64,
            total: file.len() as u64,
            digest: Some(digest_of(DigestKind::Md5, bytes)),
            last: end == file.len(),
        },
        body(bytes),
    )
}

#[test]
fn s3_single_put_object_then_head_object_verifies() {
    let Some(server) = Server::start("s3_single_put_object_then_head_object_verifies") else {
        return;
    };
    let rt = runtime();
    let backend = server.backend();
    let bytes = data(3000, 1);
    let md5 = digest_of(DigestKind::Md5, &bytes);
    let digests = FileDigests {
        object: Some(md5.clone()),
        part: Some(md5.clone()),
    };
    let file = spec("cam/one file.bin", bytes.len());
    rt.block_on(async {
        assert_eq!(backend.stat(&file.key, None).await.expect("stat"), None);
        let remote = backend
            .put_single(&file, body(&bytes), &digests)
            .await
            .expect("put_single");
        assert_eq!(remote.key, file.key);
        let st = backend
            .stat(&file.key, Some(&remote))
            .await
            .expect("stat")
            .expect("stored");
        assert_eq!(st.size, bytes.len() as u64);
        let expected = backend
            .expected_digest(&digests, &[Receipt::plain(0, 0, bytes.len() as u64)])
            .expect("expected digest");
        assert!(
            st.digest.as_ref().is_some_and(|d| d.matches(&expected)),
            "{:?} vs {expected}",
            st.digest
        );
    });
    assert_eq!(
        std::fs::read(server.stored("cam/one file.bin")).expect("stored file"),
        bytes
    );
}

#[test]
fn s3_multipart_resumes_from_the_listed_parts_and_verifies_by_md5_of_md5s() {
    let Some(server) =
        Server::start("s3_multipart_resumes_from_the_listed_parts_and_verifies_by_md5_of_md5s")
    else {
        return;
    };
    let rt = runtime();
    let ps = 5 * MIB;
    let bytes = data(2 * ps + 1234, 2);
    let file = spec("big.bin", bytes.len());
    let digests = FileDigests {
        object: Some(digest_of(DigestKind::Md5, &bytes)),
        part: None,
    };
    // The first daemon: begin, two parts, then it is gone.
    let (session, first_two) = rt.block_on(async {
        let backend = server.backend();
        let mut session = backend.begin(&file).await.expect("begin");
        session.part_size = Some(ps as u64); // the engine records it so
        let mut receipts = Vec::new();
        for i in 0..2 {
            let (p, b) = part(&bytes, ps, i);
            receipts.push(backend.put_part(&session, &p, b).await.expect("put_part"));
        }
        (session, receipts)
    });
    // A second daemon (a new backend) resumes from the server's list.
    let backend = server.backend();
    rt.block_on(async {
        let held = backend
            .held_parts(&session, &file)
            .await
            .expect("held_parts")
            .expect("s3 lists parts");
        let ranges: Vec<(u32, u64, u64)> =
            held.iter().map(|r| (r.index, r.offset, r.length)).collect();
        assert_eq!(ranges, [(0, 0, ps as u64), (1, ps as u64, ps as u64)]);
        let (p, b) = part(&bytes, ps, 2);
        assert!(p.last);
        let third = backend.put_part(&session, &p, b).await.expect("put_part 3");
        // The journal's receipts (s3s-fs's list carries no ETags).
        let mut receipts = first_two.clone();
        receipts.push(third);
        let remote = backend
            .complete(&session, &file, &receipts, None, &digests)
            .await
            .expect("complete");
        let local: Vec<Digest> = (0..3)
            .map(|i| part(&bytes, ps, i).0.digest.expect("md5"))
            .collect();
        let want = multipart_etag(&local).expect("md5 of md5s");
        assert!(want.hex.ends_with("-3"), "{want}");
        assert_eq!(
            remote.extra["etag"].as_str(),
            Some(want.hex.as_str()),
            "complete's ETag"
        );
        assert_eq!(
            backend.expected_digest(&digests, &receipts),
            Some(want.clone())
        );
        let st = backend
            .stat(&file.key, Some(&remote))
            .await
            .expect("stat")
            .expect("stored");
        assert_eq!(st.size, bytes.len() as u64);
        assert!(
            st.digest.as_ref().is_some_and(|d| d.matches(&want)),
            "{:?} vs {want}",
            st.digest
        );
    });
    assert_eq!(
        std::fs::read(server.stored("big.bin")).expect("stored"),
        bytes
    );
}

#[test]
fn s3_abort_discards_the_upload_and_a_later_part_finds_it_gone() {
    let Some(server) = Server::start("s3_abort_discards_the_upload_and_a_later_part_finds_it_gone")
    else {
        return;
    };
    let rt = runtime();
    let backend = server.backend();
    let bytes = data(MIB + 10, 3);
    let file = spec("aborted.bin", bytes.len());
    rt.block_on(async {
        let session = backend.begin(&file).await.expect("begin");
        let (p, b) = part(&bytes, MIB, 0);
        backend.put_part(&session, &p, b).await.expect("put_part");
        backend.abort(&session).await.expect("abort");
        // s3s-fs: 403 AccessDenied for the unknown id (AWS: 404 NoSuchUpload).
        let (p, b) = part(&bytes, MIB, 1);
        let e = backend
            .put_part(&session, &p, b)
            .await
            .expect_err("the upload is gone");
        assert!(matches!(e, BackendError::SessionGone { .. }), "{e}");
        // Aborting what is gone is what abort wanted.
        backend.abort(&session).await.expect("abort again");
        assert_eq!(backend.stat(&file.key, None).await.expect("stat"), None);
    });
    let leftovers: Vec<String> = std::fs::read_dir(server.dir.path().join("root"))
        .expect("root")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn s3_a_wrong_secret_is_refused_credentials_and_never_shown() {
    let Some(server) = Server::start("s3_a_wrong_secret_is_refused_credentials_and_never_shown")
    else {
        return;
    };
    std::fs::write(server.dir.path().join("wrong"), "not-the-secret-xyz").expect("file");
    let rt = runtime();
    let backend = server.backend_with("wrong");
    let started = Instant::now();
    // A HEAD refusal has no body: it is refused by status alone.
    let e = rt
        .block_on(backend.stat("x.bin", None))
        .expect_err("refused");
    assert!(matches!(e, BackendError::AuthRefused { .. }), "{e}");
    let bytes = data(100, 4);
    let md5 = digest_of(DigestKind::Md5, &bytes);
    let digests = FileDigests {
        object: Some(md5.clone()),
        part: Some(md5),
    };
    let e = rt
        .block_on(backend.put_single(&spec("x.bin", 100), body(&bytes), &digests))
        .expect_err("refused");
    assert!(matches!(e, BackendError::AuthRefused { .. }), "{e}");
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("SignatureDoesNotMatch"), "{shown}");
    for secret in ["not-the-secret-xyz", "X-Amz-Signature", "X-Amz-Credential"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}
