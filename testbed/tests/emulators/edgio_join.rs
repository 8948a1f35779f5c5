//! The join: COMPLETE → JOIN → SUCCESS after `edgio_join_delay_ms`, or FAILED and
//! restart (protocols/edgio.md rules 8, 9, 12, 14); and the garbage collector (rule 11).

use dropship_testbed::SettingsPatch;
use serde_json::json;

use crate::edgio_support::{Ed, quiet, sha256_hex};
use crate::support::{TestResult, content};

fn delay(ms: u64) -> SettingsPatch {
    SettingsPatch {
        edgio_join_delay_ms: Some(ms),
        ..Default::default()
    }
}

#[tokio::test]
async fn rule8_join_then_success_after_the_delay_and_404_until_then() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_join_delay_ms: Some(60_000),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    ed.mkdir(&t, "/mp").await;
    let data = content(3000);
    let mpid = ed.create(&t, "/mp", "f.bin").await;
    for (i, chunk) in data.chunks(1000).enumerate() {
        let a = ed.piece(&t, &mpid, &(i + 1).to_string(), chunk).await;
        assert_eq!(a.header("x-agile-checksum"), sha256_hex(chunk));
    }
    assert_eq!(ed.complete(&t, &mpid).await.pair(), (200, 0));
    assert_eq!(ed.state(&t, &mpid).await, 5, "JOIN");
    assert_eq!(ed.head("mp/f.bin").await.status, 404, "HEAD too early");
    let st = ed.rpc("stat", json!([t, "/mp/f.bin", true])).await;
    assert_eq!(st, json!({"code": -1, "uid": 0, "gid": 0, "checksum": ""}));
    assert!(ed.objects().is_empty());
    assert_eq!(ed.bed.tb.stats().emulators["edgio"].sessions_open, 1);

    ed.set(delay(0)); // the delay has passed
    assert_eq!(ed.state(&t, &mpid).await, 6, "SUCCESS");
    let head = ed.head("mp/f.bin").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-agile-checksum"), sha256_hex(&data));
    assert_eq!(head.header("content-length"), "3000");
    let st = ed.rpc("stat", json!([t, "/mp/f.bin", true])).await;
    assert_eq!(
        (st["code"].clone(), st["size"].clone()),
        (json!(0), json!(3000))
    );
    assert_eq!(st["checksum"], sha256_hex(&data));
    assert_eq!(ed.bed.tb.object_bytes("edgio", "mp/f.bin")?, data);
    assert_eq!(ed.bed.tb.stats().emulators["edgio"].sessions_open, 0);
    Ok(())
}

#[tokio::test]
async fn rule8_9_a_failed_join_restarts_only_from_failed() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_join_delay_ms: Some(0),
        edgio_join_fail_rate: Some(1.0),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "f.bin").await;
    assert_eq!(ed.piece(&t, &mpid, "1", b"hello").await.code, 0);
    assert_eq!(
        ed.rpc("restartMultipart", json!([t, mpid])).await,
        json!(-22),
        "READY"
    );
    assert_eq!(ed.complete(&t, &mpid).await.pair(), (200, 0));
    assert_eq!(ed.state(&t, &mpid).await, 12, "FAILED");
    assert_eq!(ed.head("f.bin").await.status, 404);
    let pieces = ed.rpc("listMultipartPiece", json!([t, mpid])).await;
    assert_eq!(pieces["pieces"][0]["state"], 13, "piece FAILED");
    ed.set(SettingsPatch {
        edgio_join_fail_rate: Some(0.0),
        ..Default::default()
    });
    assert_eq!(ed.rpc("restartMultipart", json!([t, mpid])).await, json!(0));
    assert_eq!(ed.state(&t, &mpid).await, 6);
    assert_eq!(
        ed.head("f.bin").await.header("x-agile-checksum"),
        sha256_hex(b"hello")
    );
    assert_eq!(
        ed.rpc("restartMultipart", json!([t, mpid])).await,
        json!(-22),
        "SUCCESS"
    );
    // Accepted calls are counted by name, refused ones not.
    let calls = &ed.bed.tb.stats().emulators["edgio"].calls;
    assert_eq!(calls.get("login"), Some(&1));
    assert_eq!(calls.get("multipart/create"), Some(&1));
    assert_eq!(calls.get("multipart/complete"), Some(&1));
    assert_eq!(calls.get("restartMultipart"), Some(&1));
    Ok(())
}

#[tokio::test]
async fn completing_over_a_file_replaces_it_at_success() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_join_delay_ms: Some(60_000),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    assert_eq!(ed.post_raw(&t, "/", "f.bin", b"old").await.code, 0);
    let mpid = ed.create(&t, "/", "f.bin").await;
    assert_eq!(ed.piece(&t, &mpid, "1", b"new!").await.code, 0);
    assert_eq!(ed.complete(&t, &mpid).await.code, 0);
    assert_eq!(
        ed.head("f.bin").await.header("x-agile-checksum"),
        sha256_hex(b"old")
    );
    ed.set(delay(0));
    assert_eq!(
        ed.head("f.bin").await.header("x-agile-checksum"),
        sha256_hex(b"new!")
    );
    Ok(())
}

#[tokio::test]
async fn corruption_lands_in_the_joined_file_and_every_checksum_says_so() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        corrupt_rate: Some(1.0),
        corrupt_offset: Some(0),
        edgio_join_delay_ms: Some(0),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "c.bin").await;
    let data = content(100);
    let a = ed.piece(&t, &mpid, "1", &data).await;
    assert_eq!(
        a.header("x-agile-checksum"),
        sha256_hex(&data),
        "pieces are intact"
    );
    assert_eq!(ed.complete(&t, &mpid).await.code, 0);
    let mut bad = data.clone();
    bad[0] ^= 0xff;
    let head = ed.head("c.bin").await;
    assert_eq!(head.header("x-agile-checksum"), sha256_hex(&bad));
    let st = ed.rpc("stat", json!([t, "c.bin", true])).await;
    assert_eq!(st["checksum"], sha256_hex(&bad));
    assert_eq!(ed.bed.tb.stats().emulators["edgio"].faults.corrupted, 1);
    Ok(())
}

#[tokio::test]
async fn rule11_the_garbage_collector_expires_new_uploads_and_open_pieces() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let fresh = ed.create(&t, "/", "new.bin").await;
    let ready = ed.create(&t, "/", "ready.bin").await;
    assert_eq!(ed.piece(&t, &ready, "1", b"abc").await.code, 0);
    assert_eq!(ed.bed.tb.stats().emulators["edgio"].sessions_open, 2);
    ed.set(SettingsPatch {
        edgio_upload_ttl_s: Some(0),
        ..Default::default()
    });
    assert_eq!(ed.state(&t, &fresh).await, 11, "EXPIRED");
    assert_eq!(ed.piece(&t, &fresh, "1", b"x").await.pair(), (400, -8));
    assert_eq!(ed.complete(&t, &fresh).await.pair(), (400, -8));
    assert_eq!(
        ed.state(&t, &ready).await,
        2,
        "READY uploads keep their state"
    );
    let pieces = ed.rpc("listMultipartPiece", json!([t, ready])).await;
    assert_eq!(pieces["pieces"][0]["state"], 12, "its piece EXPIRED");
    assert_eq!(
        ed.complete(&t, &ready).await.pair(),
        (400, -4),
        "no live piece left"
    );
    assert_eq!(ed.bed.tb.stats().emulators["edgio"].sessions_open, 1);
    Ok(())
}

#[tokio::test]
async fn a_late_answer_to_a_completion_leaves_the_join_going_on_meanwhile() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_join_delay_ms: Some(60_000),
        edgio_complete_answer_delay_ms: Some(1500),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    ed.mkdir(&t, "/mp").await;
    let mpid = ed.create(&t, "/mp", "f.bin").await;
    ed.piece(&t, &mpid, "1", &content(1000)).await;
    let t0 = std::time::Instant::now();
    let (answer, state) = tokio::join!(ed.complete(&t, &mpid), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        ed.state(&t, &mpid).await
    });
    assert_eq!(state, 5, "JOINing while the answer is held back");
    assert_eq!(answer.pair(), (200, 0));
    assert!(t0.elapsed() >= std::time::Duration::from_millis(1500));
    Ok(())
}
