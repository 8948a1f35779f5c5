//! The `s3` backend against a real S3 server: s3s-fs 0.14.1 on loopback, started
//! per test with a fresh root and its own key pair, driven through the `Backend`
//! trait directly (as `box_backend.rs` does for Box).
//!
//! The binary is `$DROPSHIP_S3S_FS` (`.ci/run` installs it), else `.ci/run`'s cache
//! under the target folder (`tests/common/s3s_fs.rs`). Without either, each test
//! prints why it did not run (a local `cargo test` without the server installed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dropship::backend::s3::multipart_etag;
use dropship::backend::{
    Backend, BackendConfig, BackendError, FileDigests, FileSpec, Meter, PartBody, PartSpec, Receipt,
};
use dropship::digest::{Digest, DigestKind, digest_of};

#[path = "common/mod.rs"]
mod common;

use common::s3s_fs::{self, S3sFs};
use dropship_testbed::{Options, S3Upstream, SettingsPatch, Testbed};

const MIB: usize = 1 << 20;
const SECRET_KEY: &str = "dropship-test-secret";

/// A running s3s-fs with a bucket `dropship`.
struct Server(S3sFs);

impl Server {
    /// `None` (after saying why) when no s3s-fs binary is at hand.
    fn start(test: &str) -> Option<Server> {
        let server = S3sFs::start(&["dropship"], SECRET_KEY).map(Server);
        if server.is_none() {
            eprintln!("{test}: skipped: {}", s3s_fs::MISSING);
        }
        server
    }

    fn config(&self, secret_file: &str) -> String {
        format!(
            "type = \"s3\"\nendpoint = \"{}\"\nbucket = \"dropship\"\nprefix = \"site\"\n\
             access_key_id_file = \"{}\"\nsecret_access_key_file = \"{}\"\n",
            self.0.endpoint,
            self.0.access_key_file().display(),
            self.0.dir.path().join(secret_file).display(),
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
        self.0.bucket_dir("dropship").join("site").join(key)
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
        content_type: None,
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
    let leftovers: Vec<String> = std::fs::read_dir(server.0.dir.path().join("root"))
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
    std::fs::write(server.0.dir.path().join("wrong"), "not-the-secret-xyz").expect("file");
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

/// The key pair the proxy's upstream (s3s-fs) holds: only the proxy signs with it.
fn upstream(server: &Server) -> S3Upstream {
    S3Upstream {
        url: server.0.endpoint.clone(),
        access_key: s3s_fs::ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
    }
}

/// A testbed whose `/s3` proxy forwards to `server` (the store lives as long as
/// the returned folder).
fn proxy(rt: &tokio::runtime::Runtime, server: &Server) -> (Testbed, tempfile::TempDir) {
    let store = tempfile::tempdir().expect("store");
    let tb = rt
        .block_on(Testbed::start(
            Options::loopback(store.path()).with_s3_upstream(upstream(server)),
        ))
        .expect("testbed");
    (tb, store)
}

/// `[backend]` for the testbed's `/s3` proxy at `base`, the secret in `secret_file`.
fn proxied_config(server: &Server, base: &str, secret_file: &std::path::Path) -> String {
    format!(
        "type = \"s3\"\nendpoint = \"{base}/s3\"\nbucket = \"dropship\"\nprefix = \"site\"\n\
         access_key_id_file = \"{}\"\nsecret_access_key_file = \"{}\"\nmultipart_above = \"5MiB\"\n",
        server.0.access_key_file().display(),
        secret_file.display(),
    )
}

/// The sweep at start: ListMultipartUploads (answered by the proxy, s3s-fs having
/// none) under the key of each begin the journal never saw answered; uploads of
/// exactly that key the journal does not hold are aborted, the one it holds and
/// other keys' (a longer key under the same prefix, another writer's) are kept.
#[test]
fn s3_sweep_aborts_unrecorded_uploads_of_the_key_and_keeps_the_rest() {
    let Some(server) =
        Server::start("s3_sweep_aborts_unrecorded_uploads_of_the_key_and_keeps_the_rest")
    else {
        return;
    };
    let rt = runtime();
    let (tb, _store) = proxy(&rt, &server);
    let secret = server.0.dir.path().join("testbed-secret");
    std::fs::write(&secret, dropship_testbed::DEFAULT_SECRET).expect("secret");
    let cfg: BackendConfig =
        toml::from_str(&proxied_config(&server, &tb.url(), &secret)).expect("config");
    let backend = cfg.build(Default::default()).expect("backend");
    let bytes = data(MIB, 5);
    rt.block_on(async {
        let file = spec("cam/clip.bin", bytes.len());
        let lost = backend.begin(&file).await.expect("begin");
        let lost_too = backend.begin(&file).await.expect("begin");
        let mut known = backend.begin(&file).await.expect("begin");
        known.part_size = Some(MIB as u64);
        let longer = backend
            .begin(&spec("cam/clip.bin.1", 10))
            .await
            .expect("begin");
        assert_eq!(tb.stats().emulators["s3"].sessions_open, 4);
        let aborted = backend
            .sweep(std::slice::from_ref(&known), &["cam/clip.bin".into()])
            .await
            .expect("sweep");
        assert_eq!(aborted, 2, "the two unrecorded uploads of the key");
        assert_eq!(tb.stats().emulators["s3"].sessions_open, 2);
        for gone in [&lost, &lost_too] {
            let (p, b) = part(&bytes, MIB, 0);
            let e = backend.put_part(gone, &p, b).await.expect_err("aborted");
            assert!(matches!(e, BackendError::SessionGone { .. }), "{e}");
        }
        let (p, b) = part(&bytes, MIB, 0);
        backend
            .put_part(&known, &p, b)
            .await
            .expect("the known one lives");
        let (p, b) = part(&bytes, MIB, 0);
        backend
            .put_part(&longer, &p, b)
            .await
            .expect("the longer key's lives");
        // Nothing unrecorded: nothing listed, nothing aborted.
        assert_eq!(backend.sweep(&[], &[]).await.expect("sweep"), 0);
    });
}

/// Straight to s3s-fs, whose ListMultipartUploads is 501: the sweep warns and
/// carries on (nothing can be found), it does not keep the daemon from starting.
#[test]
fn s3_sweep_against_a_server_without_listing_finds_nothing_and_goes_on() {
    let Some(server) =
        Server::start("s3_sweep_against_a_server_without_listing_finds_nothing_and_goes_on")
    else {
        return;
    };
    let rt = runtime();
    let backend = server.backend();
    rt.block_on(async {
        backend.begin(&spec("x.bin", 10)).await.expect("begin");
        let n = backend
            .sweep(&[], &["x.bin".into()])
            .await
            .expect("a 501 is not an error");
        assert_eq!(n, 0);
    });
}

/// The proxy's own gate: the daemon's signature is checked against the testbed's
/// secret (which can change at run time), and s3s-fs checks the proxy's.
#[test]
fn s3_the_proxy_refuses_a_signature_made_with_another_secret() {
    let Some(server) = Server::start("s3_the_proxy_refuses_a_signature_made_with_another_secret")
    else {
        return;
    };
    let rt = runtime();
    let (tb, _store) = proxy(&rt, &server);
    let secret = server.0.dir.path().join("testbed-secret");
    std::fs::write(&secret, dropship_testbed::DEFAULT_SECRET).expect("secret");
    let cfg: BackendConfig =
        toml::from_str(&proxied_config(&server, &tb.url(), &secret)).expect("config");
    let backend = cfg.build(Default::default()).expect("backend");
    rt.block_on(async {
        assert_eq!(backend.stat("none.bin", None).await.expect("stat"), None);
        tb.set_secret("rotated");
        let e = backend.stat("none.bin", None).await.expect_err("refused");
        assert!(matches!(e, BackendError::AuthRefused { .. }), "{e}");
        let e = backend
            .begin(&spec("a.bin", 10))
            .await
            .expect_err("refused");
        assert!(format!("{e}").contains("SignatureDoesNotMatch"), "{e}");
        std::fs::write(&secret, "rotated").expect("secret");
        assert!(backend.reread_credentials().await.expect("reread"));
        backend
            .begin(&spec("a.bin", 10))
            .await
            .expect("accepted again");
    });
}

/// A crash between CreateMultipartUpload's acceptance and the journal's record of
/// the upload id (the proxy holds the answer back; the daemon is SIGKILLed while it
/// waits): the next start finds the intent, lists the uploads of that key, aborts
/// the orphan, and delivers the file in a new upload. No upload is left open.
#[test]
fn s3_an_upload_id_lost_to_a_crash_is_aborted_at_the_next_start() {
    let Some(server) =
        Server::start("s3_an_upload_id_lost_to_a_crash_is_aborted_at_the_next_start")
    else {
        return;
    };
    let rt = runtime();
    let (tb, _store) = proxy(&rt, &server);
    tb.update_settings(SettingsPatch {
        s3_create_answer_delay_ms: Some(60_000),
        ..Default::default()
    });
    let env = common::Env::new(
        "300ms",
        "part_size = \"5MiB\"",
        &proxied_config(&server, &tb.url(), std::path::Path::new("s3-secret")),
        "",
    );
    std::fs::write(
        env.dir.path().join("s3-secret"),
        dropship_testbed::DEFAULT_SECRET,
    )
    .expect("secret");
    let daemon = env.spawn_ready();
    let bytes = data(11 * MIB, 6);
    env.drop_file("cam/lost.bin", &bytes);
    common::wait_for(Duration::from_secs(30), "the upload to be created", || {
        (tb.stats().emulators["s3"].sessions_open == 1).then_some(())
    });
    daemon.kill9();
    tb.update_settings(SettingsPatch {
        s3_create_answer_delay_ms: Some(0),
        ..Default::default()
    });
    let _daemon = env.spawn_ready();
    env.wait_state("cam/lost.bin", "done", Duration::from_secs(60));
    assert!(
        env.log_text()
            .contains("aborted a multipart upload the journal never recorded"),
        "{}",
        env.log_text()
    );
    assert_eq!(
        tb.stats().emulators["s3"].sessions_open,
        0,
        "an upload left open"
    );
    assert_eq!(
        std::fs::read(server.stored("cam/lost.bin")).expect("stored"),
        bytes
    );
    let leftovers: Vec<String> = std::fs::read_dir(server.0.dir.path().join("root"))
        .expect("root")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect();
    assert!(leftovers.is_empty(), "s3s-fs still holds {leftovers:?}");
}
