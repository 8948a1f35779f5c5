//! Exosite behaviour the generic suite cannot stage: a range whose answer was lost
//! (under both readings of a re-sent range), progress learnt from the content info,
//! the older device API's info and download for verification, and a refused device
//! token. The real backend or the real binary against the testbed's emulator, on
//! loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dropship::backend::{
    Backend, BackendConfig, BackendError, FileSpec, Meter, PartBody, PartSpec, Session,
};
use dropship::digest::{DigestKind, digest_of};
use dropship_testbed::{DEFAULT_SECRET, ExositeResend, Settings, Testbed};

use common::{Env, random_bytes, runtime, start_testbed as start};

const PART: u64 = 5 << 20;

fn backend_config(tb: &Testbed, token_file: &str, extra: &str) -> String {
    format!(
        "type = \"exosite\"\nurl = \"{}\"\ntoken_file = \"{token_file}\"\n{extra}",
        tb.emulator_url("exosite")
    )
}

fn backend(tb: &Testbed, dir: &std::path::Path) -> Arc<dyn Backend> {
    let token = dir.join("token");
    std::fs::write(&token, DEFAULT_SECRET).expect("token");
    let cfg: BackendConfig =
        toml::from_str(&backend_config(tb, &token.display().to_string(), "")).expect("config");
    cfg.build(Default::default()).expect("backend")
}

/// Ranges of `data` as the engine cuts and hashes them.
fn parts(data: &[u8]) -> Vec<(PartSpec, Bytes)> {
    let total = data.len() as u64;
    (0..total.div_ceil(PART))
        .map(|i| {
            let offset = i * PART;
            let length = PART.min(total - offset);
            let bytes = Bytes::copy_from_slice(&data[offset as usize..(offset + length) as usize]);
            let spec = PartSpec {
                index: i as u32,
                offset,
                length,
                total,
                digest: Some(digest_of(DigestKind::Md5, &bytes)),
                last: offset + length == total,
            };
            (spec, bytes)
        })
        .collect()
}

async fn put(
    b: &dyn Backend,
    s: &Session,
    p: &(PartSpec, Bytes),
) -> Result<dropship::backend::Receipt, BackendError> {
    b.put_part(s, &p.0, PartBody::new(p.1.clone(), Meter::new(None)))
        .await
}

/// A range stored whose answer was lost is sent again: refused with 409 under one
/// reading, accepted under the other. Either way the upload goes on from the next
/// range and nothing is sent twice more. A 409 that was not a lost answer (the
/// server is behind) is found out at the next range and starts the upload over.
#[test]
fn a_range_whose_answer_was_lost_is_sent_again_under_either_reading() {
    let rt = runtime();
    for resend in [ExositeResend::Conflict, ExositeResend::Accept] {
        let dir = tempfile::tempdir().expect("dir");
        let tb = start(
            &rt,
            &dir.path().join("store"),
            Settings {
                exosite_resend_last: resend,
                ..Settings::default()
            },
        );
        let b = backend(&tb, dir.path());
        let data = random_bytes(3 * PART as usize - 1000, 81);
        let spec = FileSpec {
            key: "lost/answer.bin".into(),
            size: data.len() as u64,
            mtime: 0,
            content_type: None,
        };
        let ps = parts(&data);
        rt.block_on(async {
            let session = b.begin(&spec).await.expect("begin");
            put(&*b, &session, &ps[0]).await.expect("range 0");
            // The answer to range 0 was lost: it goes again.
            put(&*b, &session, &ps[0])
                .await
                .unwrap_or_else(|e| panic!("{resend:?}: a re-sent range: {e}"));
            put(&*b, &session, &ps[1]).await.expect("range 1");
            put(&*b, &session, &ps[2]).await.expect("range 2");
            // The answer to the last range was lost. Refused, it is never taken as
            // held (no next range could prove that wrong): the upload starts over.
            let again = put(&*b, &session, &ps[2]).await;
            match resend {
                ExositeResend::Accept => assert!(again.is_ok(), "{again:?}"),
                ExositeResend::Conflict => assert!(
                    matches!(again, Err(BackendError::SessionGone { .. })),
                    "{again:?}"
                ),
            }
        });
        assert_eq!(
            tb.object_bytes("exosite", "lost%2Fanswer.bin")
                .expect("stored"),
            data,
            "{resend:?}"
        );

        // The server is behind (it lost range 0): range 1 is refused, the
        // inference takes it as held once, range 2 is refused too, and the upload
        // must start over.
        rt.block_on(async {
            let session = b.begin(&spec).await.expect("begin again");
            let r1 = put(&*b, &session, &ps[1]).await;
            assert!(r1.is_ok(), "{resend:?}: first refusal taken as held");
            let r2 = put(&*b, &session, &ps[2]).await;
            assert!(
                matches!(r2, Err(BackendError::SessionGone { .. })),
                "{resend:?}: {r2:?}"
            );
        });
    }
}

/// A first range the service refuses outright (its size rule is neither reading)
/// fails the file with the service's reason, instead of starting over forever.
#[test]
fn a_refused_first_range_fails_instead_of_looping() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("dir");
    let tb = start(&rt, &dir.path().join("store"), Settings::default());
    let b = backend(&tb, dir.path());
    let data = random_bytes(3 * PART as usize, 84);
    let spec = FileSpec {
        key: "odd-cut.bin".into(),
        size: data.len() as u64,
        mtime: 0,
        content_type: None,
    };
    // A 1 MiB first range where the service wants exactly 5 MiB.
    let bytes = Bytes::copy_from_slice(&data[..1 << 20]);
    let part = PartSpec {
        index: 0,
        offset: 0,
        length: 1 << 20,
        total: data.len() as u64,
        digest: Some(digest_of(DigestKind::Md5, &bytes)),
        last: false,
    };
    let r = rt.block_on(async {
        let session = b.begin(&spec).await.expect("begin");
        put(&*b, &session, &(part, bytes)).await
    });
    match r {
        Err(BackendError::Fatal {
            status: Some(400),
            detail,
            ..
        }) => {
            assert!(detail.contains("first range"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

/// Where the content info reports an unfinished upload's progress, resume asks it
/// (the server's word wins over the journal); where it does not, the journal is
/// trusted.
#[test]
fn progress_is_learnt_from_the_content_info_where_it_is_reported() {
    let rt = runtime();
    for progress in [true, false] {
        let dir = tempfile::tempdir().expect("dir");
        let tb = start(
            &rt,
            &dir.path().join("store"),
            Settings {
                exosite_info_progress: progress,
                ..Settings::default()
            },
        );
        let b = backend(&tb, dir.path());
        let data = random_bytes(3 * PART as usize + 10, 82);
        let spec = FileSpec {
            key: "progress.bin".into(),
            size: data.len() as u64,
            mtime: 0,
            content_type: None,
        };
        let ps = parts(&data);
        let held = rt.block_on(async {
            let mut session = b.begin(&spec).await.expect("begin");
            session.part_size = Some(PART); // as the engine records it
            put(&*b, &session, &ps[0]).await.expect("range 0");
            put(&*b, &session, &ps[1]).await.expect("range 1");
            b.held_parts(&session, &spec).await.expect("held parts")
        });
        match (progress, held) {
            (true, Some(h)) => {
                let got: Vec<(u32, u64, u64)> =
                    h.iter().map(|r| (r.index, r.offset, r.length)).collect();
                assert_eq!(got, vec![(0, 0, PART), (1, PART, PART)]);
            }
            (false, None) => {}
            (p, h) => panic!("progress reported {p}: {h:?}"),
        }
    }
}

/// Verification through the older device API (`/provision/download` with vendor
/// and model): a file is delivered and verified there; a wrong vendor is refused by
/// the service and the file is not marked done.
#[test]
fn the_older_device_api_serves_verification() {
    let rt = runtime();
    for (vendor, want) in [("testbed", "done"), ("not-the-vendor", "failed")] {
        let dir = tempfile::tempdir().expect("dir");
        let tb = start(&rt, &dir.path().join("store"), Settings::default());
        let backend = backend_config(
            &tb,
            "exosite-token",
            &format!("vendor = \"{vendor}\"\nmodel = \"testbed\"\nsingle_request_max = \"1MiB\""),
        );
        let env = Env::new("300ms", "verify_attempts = 1", &backend, "");
        std::fs::write(env.dir.path().join("exosite-token"), DEFAULT_SECRET).expect("token");
        let _daemon = env.spawn_ready();
        let data = random_bytes(2 * PART as usize + 7, 83);
        env.drop_file("old-api.bin", &data);
        let row = env.wait_state("old-api.bin", want, Duration::from_secs(60));
        if want == "failed" {
            // The look for identical content before the upload goes through the
            // same download path: a refused vendor fails the file before a byte
            // of it is sent.
            let why = row["last_error"].as_str().unwrap_or_default();
            assert!(why.contains("400"), "{row}");
            assert!(tb.object_bytes("exosite", "old-api.bin").is_err());
        } else {
            assert_eq!(
                tb.object_bytes("exosite", "old-api.bin").expect("stored"),
                data
            );
        }
    }
}

/// A refused device token pauses uploads and says that an operator must provision
/// a new one (a device cannot renew it); a new token resumes them.
#[test]
fn a_refused_device_token_asks_for_an_operator() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("dir");
    let tb = start(&rt, &dir.path().join("store"), Settings::default());
    let env = Env::new(
        "300ms",
        "",
        &backend_config(&tb, "exosite-token", "id_prefix = \"dev1-\""),
        "",
    );
    let token = env.dir.path().join("exosite-token");
    std::fs::write(&token, "revoked-token").expect("token");
    let _daemon = env.spawn_ready();
    env.drop_file("waiting.csv", b"a,b\n1,2\n");
    let st = common::wait_for(Duration::from_secs(30), "auth_refused", || {
        let st = env.status();
        (st["backend"]["state"] == "auth_refused").then_some(st)
    });
    let why = st["backend"]["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("an operator must provision a new one") && why.contains("exosite-token"),
        "{st}"
    );
    assert!(
        !st.to_string().contains("revoked-token"),
        "the token leaked"
    );
    std::fs::write(&token, DEFAULT_SECRET).expect("token");
    env.wait_state("waiting.csv", "done", Duration::from_secs(30));
    assert_eq!(
        tb.object_bytes("exosite", "dev1-waiting.csv")
            .unwrap_or_else(|e| panic!("{e}: {:?}", tb.objects())),
        b"a,b\n1,2\n"
    );
}
