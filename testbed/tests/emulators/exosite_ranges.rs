//! Exosite rules 4–11: initiate, ranges in order with their MD5, the size rule, re-sends,
//! re-initiates, completion on the last byte, expiry; ranges of 1 KiB.

use dropship_testbed::{ExositeRangeRule, ExositeReinitiate, ExositeResend, SettingsPatch};
use reqwest::Method;

use crate::exosite_client::*;
use crate::support::*;

const K: usize = 1024;

fn with(patch: SettingsPatch) -> SettingsPatch {
    SettingsPatch {
        exosite_part_size: Some(K as u64),
        ..patch
    }
}

/// Entries left in the store's directory of Exosite ranges.
fn range_dirs(bed: &Bed) -> usize {
    std::fs::read_dir(bed.tb.store_dir().join("sessions/exosite")).map_or(0, |d| d.count())
}

#[tokio::test]
async fn rule4_initiate_refuses_bad_bodies_with_400() -> TestResult {
    let bed = start(ex_small()).await;
    for bad in [
        "",
        "id=a&length=1",
        "[1, 2]",
        r#"{"length": 10, "type": "text/plain"}"#,
        r#"{"id": "", "length": 10, "type": "text/plain"}"#,
        r#"{"id": "dir/a.txt", "length": 10, "type": "text/plain"}"#,
        r#"{"id": "a", "length": 0, "type": "text/plain"}"#,
        r#"{"id": "a", "length": -5, "type": "text/plain"}"#,
        r#"{"id": "a", "length": "10", "type": "text/plain"}"#,
        r#"{"id": "a", "length": 2.5, "type": "text/plain"}"#,
        r#"{"id": "a", "length": 10}"#,
        r#"{"id": "a", "length": 10, "type": ""}"#,
    ] {
        let a = bed
            .ex_send(
                bed.ex(Method::POST, "/onep:v1/content/")
                    .header("Content-Type", "application/json")
                    .body(bad),
            )
            .await;
        a.assert_error(400);
    }
    assert_eq!(bed.tb.stats().sessions_open, 0);

    // At most 100 MB is still accepted as an upload in parts; so is the URL without
    // the trailing slash. Success is 204 with an empty body.
    let a = bed.ex_initiate("small.txt", 10, "text/plain").await;
    assert_eq!((a.status, a.body.as_str()), (204, ""));
    let a = bed
        .ex_send(
            bed.ex(Method::POST, "/onep:v1/content")
                .body(r#"{"id": "b", "length": 157286400, "type": "video/mp4"}"#),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(bed.tb.stats().sessions_open, 2);
    Ok(())
}

#[tokio::test]
async fn rule4_reinitiate_resets_the_upload_by_default() -> TestResult {
    let bed = start(ex_small()).await;
    let old = content(3 * K);
    assert_eq!(
        bed.ex_initiate("a", old.len() as u64, "text/plain")
            .await
            .status,
        204
    );
    assert_eq!(
        bed.ex_patch("a", &old[..K], 0, old.len() as u64)
            .await
            .status,
        204
    );

    let new = content(2 * K + 7);
    let total = new.len() as u64;
    assert_eq!(
        bed.ex_initiate("a", total, "application/x-new")
            .await
            .status,
        204
    );
    assert_eq!(bed.tb.stats().sessions_open, 1);
    assert_eq!(range_dirs(&bed), 1, "the old upload's ranges are gone");
    // The old upload's next range no longer fits: wrong total, then wrong offset.
    bed.ex_patch("a", &old[K..2 * K], K as u64, old.len() as u64)
        .await
        .assert_error(400);
    bed.ex_patch("a", &new[K..2 * K], K as u64, total)
        .await
        .assert_error(409);
    for (i, chunk) in new.chunks(K).enumerate() {
        let a = bed.ex_patch("a", chunk, (i * K) as u64, total).await;
        assert_eq!(a.status, 204, "{}", a.body);
    }
    assert_eq!(bed.ex_stored("a"), new);
    assert!(
        bed.ex_info("a")
            .await
            .body
            .starts_with("application/x-new,2055,")
    );
    Ok(())
}

#[tokio::test]
async fn rule4_reinitiate_conflict_leaves_the_upload_going() -> TestResult {
    let bed = start(with(SettingsPatch {
        exosite_reinitiate: Some(ExositeReinitiate::Conflict),
        ..Default::default()
    }))
    .await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 2048).await.status, 204);
    bed.ex_initiate("a", 2048, "text/plain")
        .await
        .assert_error(409);
    assert_eq!(
        bed.ex_patch("a", &data[K..], K as u64, 2048).await.status,
        204
    );
    assert_eq!(bed.ex_stored("a"), data);
    // Once complete, the id can be initiated again.
    assert_eq!(bed.ex_initiate("a", 10, "text/plain").await.status, 204);
    Ok(())
}

#[tokio::test]
async fn rule4_a_new_upload_of_an_id_replaces_its_content_only_when_complete() -> TestResult {
    let bed = start(ex_small()).await;
    let v1 = content(1500);
    bed.ex_upload("doc", &v1, K, "text/plain").await;
    let v2: Vec<u8> = content(2500).iter().map(|b| b ^ 0x55).collect();
    assert_eq!(bed.ex_initiate("doc", 2500, "text/csv").await.status, 204);
    assert_eq!(bed.ex_patch("doc", &v2[..K], 0, 2500).await.status, 204);
    assert!(
        bed.ex_info("doc")
            .await
            .body
            .starts_with("text/plain,1500,")
    );
    assert_eq!(bed.ex_stored("doc"), v1, "the old content stays meanwhile");
    assert_eq!(
        bed.ex_patch("doc", &v2[K..2 * K], K as u64, 2500)
            .await
            .status,
        204
    );
    assert_eq!(
        bed.ex_patch("doc", &v2[2 * K..], 2 * K as u64, 2500)
            .await
            .status,
        204
    );
    assert!(bed.ex_info("doc").await.body.starts_with("text/csv,2500,"));
    assert_eq!(bed.ex_stored("doc"), v2);
    assert_eq!(bed.tb.objects().len(), 1);
    Ok(())
}

#[tokio::test]
async fn rule5_a_range_without_an_initiated_upload_is_404() -> TestResult {
    let bed = start(ex_small()).await;
    bed.ex_patch("never", b"abc", 0, 3).await.assert_error(404);
    bed.ex_upload("done", &content(100), K, "text/plain").await;
    // Completed: only a re-send of its final range is recognised (rule 10).
    bed.ex_patch("done", &content(100)[..50], 0, 100)
        .await
        .assert_error(404);
    assert!(bed.tb.objects().iter().all(|o| o.path == "done"));
    Ok(())
}

#[tokio::test]
async fn rule6_bad_content_ranges_are_400_and_change_nothing() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    let chunk = &data[..K];
    for range in [
        None,
        Some("items 0-1023/2048".to_string()),
        Some("bytes 0-1023".to_string()),
        Some("bytes 0-1023/*".to_string()),
        Some("bytes=0-1023/2048".to_string()),
        Some("bytes 1023-0/2048".to_string()),
        Some("bytes 0-2048/2048".to_string()),
        Some("bytes 0-1023/4096".to_string()),
    ] {
        let mut req = bed
            .ex(Method::PATCH, "/onep:v1/content/a")
            .header("MD5", md5_b64(chunk))
            .body(chunk.to_vec());
        if let Some(r) = &range {
            req = req.header("Content-Range", r);
        }
        bed.ex_send(req).await.assert_error(400);
    }
    assert_eq!(bed.ex_patch("a", chunk, 0, 2048).await.status, 204);
    Ok(())
}

#[tokio::test]
async fn rule7_a_body_of_another_length_is_400() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    for body in [&data[..K - 1], &data[..K + 1]] {
        let a = bed
            .ex_send(
                bed.ex(Method::PATCH, "/onep:v1/content/a")
                    .header("MD5", md5_b64(body))
                    .header("Content-Range", "bytes 0-1023/2048")
                    .body(body.to_vec()),
            )
            .await;
        a.assert_error(400);
    }
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 2048).await.status, 204);
    Ok(())
}

#[tokio::test]
async fn rule8_md5_missing_malformed_or_wrong_is_400_and_nothing_is_stored() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    let no_md5 = bed
        .ex_send(
            bed.ex(Method::PATCH, "/onep:v1/content/a")
                .header("Content-Range", "bytes 0-1023/2048")
                .body(data[..K].to_vec()),
        )
        .await;
    no_md5.assert_error(400);
    for malformed in [
        "",
        "not base64!",
        "AAAAAAAAAAAAAAAAAAAA",
        "d41d8cd98f00b204e9800998ecf8427e",
    ] {
        bed.ex_patch_with("a", &data[..K], 0, 2048, malformed)
            .await
            .assert_error(400);
    }
    assert_eq!(
        bed.tb.stats().digest_mismatches,
        0,
        "malformed is not a mismatch"
    );
    // Well-formed but of other bytes: refused after the body, and counted.
    bed.ex_patch_with("a", &data[..K], 0, 2048, &md5_b64(&data[1..=K]))
        .await
        .assert_error(400);
    let stats = bed.tb.stats();
    assert_eq!(stats.digest_mismatches, 1);
    assert_eq!(stats.emulators["exosite"].digest_mismatches, 1);
    // Nothing was kept: the same range is still the next one.
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 2048).await.status, 204);
    assert_eq!(
        bed.ex_patch("a", &data[K..], K as u64, 2048).await.status,
        204
    );
    assert_eq!(bed.ex_stored("a"), data);
    Ok(())
}

#[tokio::test]
async fn rule9_exact_ranges_by_default() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(3 * K + 100);
    let total = data.len() as u64;
    assert_eq!(bed.ex_initiate("a", total, "text/plain").await.status, 204);
    // Non-final: neither shorter nor longer.
    bed.ex_patch("a", &data[..K - 1], 0, total)
        .await
        .assert_error(400);
    bed.ex_patch("a", &data[..K + 1], 0, total)
        .await
        .assert_error(400);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, total).await.status, 204);
    assert_eq!(
        bed.ex_patch("a", &data[K..2 * K], K as u64, total)
            .await
            .status,
        204
    );
    // Final: at most one part; the rest of the file in one range is too long.
    bed.ex_patch("a", &data[2 * K..], 2 * K as u64, total)
        .await
        .assert_error(400);
    assert_eq!(
        bed.ex_patch("a", &data[2 * K..3 * K], 2 * K as u64, total)
            .await
            .status,
        204
    );
    assert_eq!(
        bed.ex_patch("a", &data[3 * K..], 3 * K as u64, total)
            .await
            .status,
        204
    );
    assert_eq!(bed.ex_stored("a"), data);
    Ok(())
}

#[tokio::test]
async fn rule9_at_least_ranges_when_switched() -> TestResult {
    let bed = start(with(SettingsPatch {
        exosite_range_rule: Some(ExositeRangeRule::AtLeast),
        ..Default::default()
    }))
    .await;
    let data = content(4 * K);
    let total = data.len() as u64;
    assert_eq!(bed.ex_initiate("a", total, "text/plain").await.status, 204);
    bed.ex_patch("a", &data[..K - 1], 0, total)
        .await
        .assert_error(400);
    assert_eq!(bed.ex_patch("a", &data[..1500], 0, total).await.status, 204);
    // The final range may be any length, here longer than a part.
    assert_eq!(
        bed.ex_patch("a", &data[1500..], 1500, total).await.status,
        204
    );
    assert_eq!(bed.ex_stored("a"), data);
    Ok(())
}

#[tokio::test]
async fn rule10_ranges_must_come_in_order() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(3 * K);
    assert_eq!(bed.ex_initiate("a", 3072, "text/plain").await.status, 204);
    bed.ex_patch("a", &data[K..2 * K], K as u64, 3072)
        .await
        .assert_error(409);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 3072).await.status, 204);
    bed.ex_patch("a", &data[2 * K..], 2 * K as u64, 3072)
        .await
        .assert_error(409);
    // Behind, but not the last range exactly: 409 in either mode.
    bed.ex_patch("a", &data[..512], 0, 3072)
        .await
        .assert_error(409);
    assert_eq!(
        bed.ex_patch("a", &data[K..2 * K], K as u64, 3072)
            .await
            .status,
        204
    );
    Ok(())
}

#[tokio::test]
async fn rule10_a_resend_is_409_by_default() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 2048).await.status, 204);
    bed.ex_patch("a", &data[..K], 0, 2048)
        .await
        .assert_error(409);
    assert_eq!(
        bed.ex_patch("a", &data[K..], K as u64, 2048).await.status,
        204
    );
    // The final range again, after completion: 409 too.
    bed.ex_patch("a", &data[K..], K as u64, 2048)
        .await
        .assert_error(409);
    assert_eq!(bed.ex_stored("a"), data);
    Ok(())
}

#[tokio::test]
async fn rule10_a_resend_is_accepted_idempotently_when_switched() -> TestResult {
    let bed = start(with(SettingsPatch {
        exosite_resend_last: Some(ExositeResend::Accept),
        ..Default::default()
    }))
    .await;
    let data = content(3 * K);
    assert_eq!(bed.ex_initiate("a", 3072, "text/plain").await.status, 204);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 3072).await.status, 204);
    let again = bed.ex_patch("a", &data[..K], 0, 3072).await;
    assert_eq!((again.status, again.body.as_str()), (204, ""));
    // Other bytes for the same range (their MD5 says so): 409, judged on the header.
    let other = content(K + 1);
    bed.ex_patch("a", &other[1..], 0, 3072)
        .await
        .assert_error(409);
    // The accepted range's MD5 over other bytes: the body is checked, 400.
    bed.ex_patch_with("a", &other[1..], 0, 3072, &md5_b64(&data[..K]))
        .await
        .assert_error(400);
    assert_eq!(bed.tb.stats().digest_mismatches, 1);
    // Only the most recent range: the next one moves it on.
    assert_eq!(
        bed.ex_patch("a", &data[K..2 * K], K as u64, 3072)
            .await
            .status,
        204
    );
    bed.ex_patch("a", &data[..K], 0, 3072)
        .await
        .assert_error(409);
    assert_eq!(
        bed.ex_patch("a", &data[2 * K..], 2 * K as u64, 3072)
            .await
            .status,
        204
    );
    // The final range again after completion (its answer was lost): 204, no change.
    let before = bed.tb.objects();
    assert_eq!(
        bed.ex_patch("a", &data[2 * K..], 2 * K as u64, 3072)
            .await
            .status,
        204
    );
    assert_eq!(bed.tb.objects(), before);
    assert_eq!(bed.ex_stored("a"), data);
    // A new initiate of the id ends that: the old final range is not "the last" any more.
    assert_eq!(bed.ex_initiate("a", 3072, "text/plain").await.status, 204);
    bed.ex_patch("a", &data[2 * K..], 2 * K as u64, 3072)
        .await
        .assert_error(409);
    Ok(())
}

#[tokio::test]
async fn rule10_duplicate_ranges_racing_each_other() -> TestResult {
    for (resend, want) in [
        (ExositeResend::Accept, [204, 204]),
        (ExositeResend::Conflict, [204, 409]),
    ] {
        let bed = start(with(SettingsPatch {
            exosite_resend_last: Some(resend),
            ..Default::default()
        }))
        .await;
        let data = content(3 * K);
        assert_eq!(bed.ex_initiate("a", 3072, "text/plain").await.status, 204);
        let (x, y) = tokio::join!(
            bed.ex_patch("a", &data[..K], 0, 3072),
            bed.ex_patch("a", &data[..K], 0, 3072)
        );
        let mut got = [x.status, y.status];
        got.sort_unstable();
        assert_eq!(got, want, "{resend:?}: {} / {}", x.body, y.body);
        // The last range too, which makes the content.
        assert_eq!(
            bed.ex_patch("a", &data[K..2 * K], K as u64, 3072)
                .await
                .status,
            204
        );
        let (x, y) = tokio::join!(
            bed.ex_patch("a", &data[2 * K..], 2 * K as u64, 3072),
            bed.ex_patch("a", &data[2 * K..], 2 * K as u64, 3072)
        );
        let mut got = [x.status, y.status];
        got.sort_unstable();
        assert_eq!(got, want, "{resend:?} final: {} / {}", x.body, y.body);
        assert_eq!(bed.ex_stored("a"), data);
        assert_eq!(bed.tb.stats().sessions_open, 0);
    }
    Ok(())
}

#[tokio::test]
async fn rule11_content_appears_only_with_its_last_byte() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K + 10);
    let total = data.len() as u64;
    assert_eq!(
        bed.ex_initiate("late.bin", total, "image/png").await.status,
        204
    );
    assert_eq!(
        bed.ex_patch("late.bin", &data[..K], 0, total).await.status,
        204
    );
    assert_eq!(
        bed.ex_patch("late.bin", &data[K..2 * K], K as u64, total)
            .await
            .status,
        204
    );
    let list = bed.ex_send(bed.ex(Method::GET, "/onep:v1/content/")).await;
    assert_eq!((list.status, list.body.as_str()), (200, ""));
    bed.ex_info("late.bin").await.assert_error(404);
    bed.ex_send(bed.ex(Method::GET, "/onep:v1/content/late.bin"))
        .await
        .assert_error(404);
    assert!(bed.tb.objects().is_empty());
    assert_eq!(bed.tb.stats().sessions_open, 1);

    assert_eq!(
        bed.ex_patch("late.bin", &data[2 * K..], 2 * K as u64, total)
            .await
            .status,
        204
    );
    let list = bed.ex_send(bed.ex(Method::GET, "/onep:v1/content/")).await;
    assert_eq!(list.body, "late.bin");
    let info = bed.ex_info("late.bin").await;
    assert!(info.body.starts_with("image/png,2058,"), "{}", info.body);
    assert_eq!(bed.tb.stats().sessions_open, 0);
    assert_eq!(range_dirs(&bed), 0, "the ranges went with the upload");
    Ok(())
}

#[tokio::test]
async fn unfinished_uploads_expire_after_the_ttl() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 2048).await.status, 204);
    assert_eq!(bed.tb.settings().exosite_upload_ttl_s, 86_400);
    // Lowering the TTL applies to the upload in progress; 0 expires it at once.
    bed.tb.update_settings(SettingsPatch {
        exosite_upload_ttl_s: Some(0),
        ..Default::default()
    });
    assert_eq!(bed.tb.stats().sessions_open, 0);
    bed.ex_patch("a", &data[K..], K as u64, 2048)
        .await
        .assert_error(404);
    assert_eq!(range_dirs(&bed), 0, "its ranges were dropped");
    bed.tb.update_settings(SettingsPatch {
        exosite_upload_ttl_s: Some(3600),
        ..Default::default()
    });
    bed.ex_upload("a", &data, K, "text/plain").await;
    assert_eq!(bed.ex_stored("a"), data);
    Ok(())
}

#[tokio::test]
async fn corrupt_offset_flips_that_byte_of_the_assembled_content() -> TestResult {
    let bed = start(with(SettingsPatch {
        corrupt_rate: Some(1.0),
        corrupt_offset: Some(1500),
        ..Default::default()
    }))
    .await;
    let data = content(2 * K + 3);
    bed.ex_upload("c.bin", &data, K, "application/octet-stream")
        .await;
    let stored = bed.ex_stored("c.bin");
    let mut want = data.clone();
    want[1500] ^= 0xff;
    assert_eq!(stored, want, "byte 1500, in the second range, flipped");
    let o = &bed.tb.objects()[0];
    assert_eq!(
        (o.size, o.sha1.clone()),
        (data.len() as u64, sha1_hex(&want))
    );
    assert_eq!(bed.tb.stats().faults.corrupted, 1);
    // The device API serves the corrupted bytes, with the size unchanged.
    let a = bed
        .ex_send(
            bed.ex(Method::GET, "/onep:v1/content/c.bin")
                .header("Range", "bytes=1499-1501"),
        )
        .await;
    assert_eq!(a.status, 206);
    assert_eq!(a.bytes, &want[1499..=1501]);
    Ok(())
}

#[tokio::test]
async fn a_range_cut_by_a_reset_is_not_kept_and_its_retry_goes_on() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(2 * K);
    assert_eq!(bed.ex_initiate("a", 2048, "text/plain").await.status, 204);
    bed.tb.update_settings(SettingsPatch {
        reset_rate: Some(1.0),
        ..Default::default()
    });
    let cut = bed
        .ex(Method::PATCH, "/onep:v1/content/a")
        .header("MD5", md5_b64(&data[..K]))
        .header("Content-Range", "bytes 0-1023/2048")
        .body(data[..K].to_vec())
        .send()
        .await;
    assert!(cut.is_err(), "the connection was reset: {cut:?}");
    bed.tb.update_settings(SettingsPatch {
        reset_rate: Some(0.0),
        ..Default::default()
    });
    assert_eq!(bed.tb.stats().faults.resets, 1);
    assert_eq!(bed.ex_patch("a", &data[..K], 0, 2048).await.status, 204);
    assert_eq!(
        bed.ex_patch("a", &data[K..], K as u64, 2048).await.status,
        204
    );
    assert_eq!(bed.ex_stored("a"), data);
    Ok(())
}
