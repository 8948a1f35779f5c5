//! Insights Hub rules 6–13: the multi-part sequence, its checks, `fileslist`, abort,
//! update with `If-Match`, and expiry.

use std::time::{SystemTime, UNIX_EPOCH};

use dropship_testbed::SettingsPatch;

use crate::insights_hub_client::*;
use crate::support::*;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test]
async fn rule9_complete_carries_the_final_part_and_joins_the_parts() -> TestResult {
    let bed = start(ih_small()).await;
    let data = content(3 * 1024 + 100);
    let parts: Vec<&[u8]> = data[..3 * 1024].chunks(1024).collect();
    let done = bed
        .ih_multipart(
            "big/file.bin",
            &parts,
            &data[3 * 1024..],
            &[("type", "application/x-test")],
        )
        .await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.header("etag"), Some("0"));
    assert_eq!(
        done.header("location"),
        Some(bed.ih_url(&format!("files/{ASSET}/big/file.bin")).as_str())
    );
    assert_eq!(bed.ih_download("big/file.bin").await, data);
    let found = bed.ih_find("big/file.bin").await.ok_or("not found")?;
    assert_eq!(found["size"], data.len());
    assert_eq!(found["type"], "application/x-test");
    assert!(
        bed.ih_fileslist("big/file.bin").await.is_empty(),
        "upload ended"
    );
    assert_eq!(bed.tb.stats().sessions_open, 0);
    // The final part alone (no stored part) makes a file too.
    let solo = bed.ih_multipart("solo.bin", &[], b"tiny", &[]).await;
    assert_eq!(solo.status, 201, "{}", solo.body);
    assert_eq!(bed.ih_download("solo.bin").await, b"tiny");
    Ok(())
}

#[tokio::test]
async fn rule9_complete_with_an_empty_body_uses_the_stored_parts() -> TestResult {
    let bed = start(ih_small()).await;
    let data = content(2048);
    let parts: Vec<&[u8]> = data.chunks(1024).collect();
    let done = bed.ih_multipart("e.bin", &parts, b"", &[]).await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(bed.ih_download("e.bin").await, data);
    // Nothing stored and nothing carried: 400, and the upload stays.
    assert_eq!(
        bed.ih_put("z.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    bed.ih_put("z.bin", "?upload=complete", b"", &[])
        .await
        .assert_error(400);
    assert_eq!(bed.tb.stats().sessions_open, 1);
    Ok(())
}

#[tokio::test]
async fn rule12_fileslist_lists_part_numbers_in_order_with_epoch_ms() -> TestResult {
    let bed = start(ih_small()).await;
    let file = "lists/parts.bin";
    assert!(
        bed.ih_fileslist(file).await.is_empty(),
        "nothing in progress"
    );
    let before = now_ms();
    assert_eq!(
        bed.ih_put(file, "?upload=start", b"", &[]).await.status,
        200
    );
    assert!(
        bed.ih_fileslist(file).await.is_empty(),
        "started, no part yet"
    );
    for n in [3, 1, 2] {
        let a = bed
            .ih_put(file, &format!("?part={n}"), &content(1024), &[])
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let after = now_ms();
    let list = bed.ih_fileslist(file).await;
    assert_eq!(list.len(), 3);
    for (i, entry) in list.iter().enumerate() {
        let fields: Vec<_> = entry.as_object().ok_or("object")?.keys().cloned().collect();
        assert_eq!(fields, ["created", "objectKey", "partNo"]);
        assert_eq!(entry["partNo"], i + 1);
        assert_eq!(entry["objectKey"], format!("testbed/{ASSET}/{file}"));
        let created = entry["created"].as_i64().ok_or("created is an integer")?;
        assert!(
            (before..=after).contains(&created),
            "{created} in {before}..={after}"
        );
    }
    assert_eq!(bed.tb.stats().emulators["insights-hub"].sessions_open, 1);
    Ok(())
}

#[tokio::test]
async fn rule8_resending_a_part_number_overwrites_it() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(
        bed.ih_put("o.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    assert_eq!(
        bed.ih_put("o.bin", "?part=1", &[1u8; 1024], &[])
            .await
            .status,
        200
    );
    assert_eq!(
        bed.ih_put("o.bin", "?part=1", &[2u8; 1500], &[])
            .await
            .status,
        200
    );
    assert_eq!(bed.ih_fileslist("o.bin").await.len(), 1);
    let done = bed.ih_put("o.bin", "?upload=complete", b"end", &[]).await;
    assert_eq!(done.status, 201, "{}", done.body);
    let mut want = vec![2u8; 1500];
    want.extend_from_slice(b"end");
    assert_eq!(bed.ih_download("o.bin").await, want);
    Ok(())
}

#[tokio::test]
async fn rule6_and_rule8_query_values_are_checked() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(
        bed.ih_put("q.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    for query in [
        "?part=0",
        "?part=1001",
        "?part=-1",
        "?part=one",
        "?part=",
        "?upload=begin",
        "?upload=",
        "?upload=start&part=1",
        "?part=1&upload=complete",
    ] {
        bed.ih_put("q.bin", query, &content(1024), &[])
            .await
            .assert_error(400);
    }
    assert!(bed.ih_fileslist("q.bin").await.is_empty(), "nothing stored");
    let edge = bed.ih_put("q.bin", "?part=1000", &content(1024), &[]).await;
    assert_eq!(edge.status, 200, "{}", edge.body);
    Ok(())
}

#[tokio::test]
async fn rule7_start_takes_no_body_and_restarts_an_upload() -> TestResult {
    let bed = start(ih_small()).await;
    bed.ih_put("s.bin", "?upload=start", b"data", &[])
        .await
        .assert_error(400);
    bed.ih_put("s.bin", "?part=1", &content(1024), &[])
        .await
        .assert_error(404);
    assert_eq!(
        bed.ih_put("s.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    for n in 1..=2 {
        let a = bed
            .ih_put("s.bin", &format!("?part={n}"), &content(1024), &[])
            .await;
        assert_eq!(a.status, 200);
    }
    // A second start resets the upload: the parts are gone.
    assert_eq!(
        bed.ih_put("s.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    assert!(bed.ih_fileslist("s.bin").await.is_empty());
    assert_eq!(bed.tb.stats().sessions_open, 1);
    Ok(())
}

#[tokio::test]
async fn rule8_and_rule9_need_an_upload_in_progress() -> TestResult {
    let bed = start(ih_small()).await;
    bed.ih_put("n.bin", "?part=1", &content(1024), &[])
        .await
        .assert_error(404);
    bed.ih_put("n.bin", "?upload=complete", b"x", &[])
        .await
        .assert_error(404);
    bed.ih_put("n.bin", "?upload=abort", b"", &[])
        .await
        .assert_error(404);
    assert!(bed.tb.objects().is_empty());
    Ok(())
}

#[tokio::test]
async fn rule8_min_part_size_is_5_mib_by_default() -> TestResult {
    let bed = start(SettingsPatch::default()).await;
    assert_eq!(bed.tb.settings().ih_min_part_size, 5 * 1024 * 1024);
    let data = content(5 * 1024 * 1024 + 10);
    let (part, last) = data.split_at(5 * 1024 * 1024);
    assert_eq!(
        bed.ih_put("m.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    bed.ih_put("m.bin", "?part=1", &part[1..], &[])
        .await
        .assert_error(400);
    assert!(
        bed.ih_fileslist("m.bin").await.is_empty(),
        "a refused part is not kept"
    );
    assert_eq!(bed.ih_put("m.bin", "?part=1", part, &[]).await.status, 200);
    // The final part may be smaller.
    let done = bed.ih_put("m.bin", "?upload=complete", last, &[]).await;
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(
        bed.tb
            .object_bytes("insights-hub", &format!("{ASSET}/m.bin"))?,
        data
    );
    Ok(())
}

#[tokio::test]
async fn rule9_part_size_checked_at_completion_when_switched() -> TestResult {
    let mut patch = ih_small();
    patch.ih_part_size_checked_at_complete = Some(true);
    let bed = start(patch).await;
    assert_eq!(
        bed.ih_put("c.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    assert_eq!(
        bed.ih_put("c.bin", "?part=1", &content(100), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        bed.ih_put("c.bin", "?part=2", &content(1024), &[])
            .await
            .status,
        200
    );
    assert_eq!(bed.ih_fileslist("c.bin").await.len(), 2);
    bed.ih_put("c.bin", "?upload=complete", b"end", &[])
        .await
        .assert_error(400);
    assert!(bed.tb.objects().is_empty());
    // The upload survives the refusal; fixing the part lets it complete.
    assert_eq!(
        bed.ih_put("c.bin", "?part=1", &content(1024), &[])
            .await
            .status,
        200
    );
    let done = bed.ih_put("c.bin", "?upload=complete", b"end", &[]).await;
    assert_eq!(done.status, 201, "{}", done.body);
    Ok(())
}

#[tokio::test]
async fn rule9_part_numbers_must_be_contiguous_from_1() -> TestResult {
    let bed = start(ih_small()).await;
    let p = |n: u8| vec![n; 1024];
    assert_eq!(
        bed.ih_put("g.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    for n in [1u8, 3] {
        let a = bed.ih_put("g.bin", &format!("?part={n}"), &p(n), &[]).await;
        assert_eq!(a.status, 200);
    }
    bed.ih_put("g.bin", "?upload=complete", b"end", &[])
        .await
        .assert_error(400);
    assert_eq!(bed.ih_put("g.bin", "?part=2", &p(2), &[]).await.status, 200);
    let done = bed.ih_put("g.bin", "?upload=complete", b"end", &[]).await;
    assert_eq!(done.status, 201, "{}", done.body);
    let want = [p(1), p(2), p(3), b"end".to_vec()].concat();
    assert_eq!(bed.ih_download("g.bin").await, want);

    // Starting at 2 is not contiguous from 1 either.
    assert_eq!(
        bed.ih_put("h.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    assert_eq!(bed.ih_put("h.bin", "?part=2", &p(2), &[]).await.status, 200);
    bed.ih_put("h.bin", "?upload=complete", b"end", &[])
        .await
        .assert_error(400);
    Ok(())
}

#[tokio::test]
async fn rule11_abort_deletes_every_part() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(
        bed.ih_put("a.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    for n in 1..=2 {
        let a = bed
            .ih_put("a.bin", &format!("?part={n}"), &content(1024), &[])
            .await;
        assert_eq!(a.status, 200);
    }
    let a = bed.ih_put("a.bin", "?upload=abort", b"", &[]).await;
    assert_eq!(a.status, 204);
    assert!(bed.ih_fileslist("a.bin").await.is_empty());
    bed.ih_put("a.bin", "?part=3", &content(1024), &[])
        .await
        .assert_error(404);
    bed.ih_put("a.bin", "?upload=complete", b"x", &[])
        .await
        .assert_error(404);
    assert!(bed.tb.objects().is_empty());
    assert_eq!(bed.tb.stats().sessions_open, 0);
    let sessions = bed.tb.store_dir().join("sessions").join("insights-hub");
    assert_eq!(
        std::fs::read_dir(sessions)?.count(),
        0,
        "part files deleted"
    );
    Ok(())
}

#[tokio::test]
async fn rule10_every_step_of_an_update_needs_the_current_etag() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(bed.ih_put("u.bin", "", b"old", &[]).await.status, 201);
    let part = content(1024);

    for stale in [&[][..], &[("If-Match", "7")][..]] {
        bed.ih_put("u.bin", "?upload=start", b"", stale)
            .await
            .assert_error(409);
    }
    let cur = [("If-Match", "0")];
    assert_eq!(
        bed.ih_put("u.bin", "?upload=start", b"", &cur).await.status,
        200
    );
    bed.ih_put("u.bin", "?part=1", &part, &[])
        .await
        .assert_error(409);
    bed.ih_put("u.bin", "?part=1", &part, &[("If-Match", "1")])
        .await
        .assert_error(409);
    assert!(
        bed.ih_fileslist("u.bin").await.is_empty(),
        "refused parts not kept"
    );
    assert_eq!(
        bed.ih_put("u.bin", "?part=1", &part, &cur).await.status,
        200
    );
    bed.ih_put("u.bin", "?upload=complete", b"new", &[])
        .await
        .assert_error(409);
    let done = bed.ih_put("u.bin", "?upload=complete", b"new", &cur).await;
    assert_eq!(done.status, 204, "{}", done.body);
    assert_eq!(done.header("etag"), Some("1"));
    assert_eq!(bed.ih_download("u.bin").await, [&part[..], b"new"].concat());

    // Another writer updates the file mid-upload: the old etag is stale at completion.
    let cur = [("If-Match", "1")];
    assert_eq!(
        bed.ih_put("u.bin", "?upload=start", b"", &cur).await.status,
        200
    );
    assert_eq!(
        bed.ih_put("u.bin", "?part=1", &part, &cur).await.status,
        200
    );
    assert_eq!(bed.ih_put("u.bin", "", b"other", &cur).await.status, 204);
    bed.ih_put("u.bin", "?upload=complete", b"x", &cur)
        .await
        .assert_error(409);
    assert_eq!(bed.ih_download("u.bin").await, b"other");
    Ok(())
}

#[tokio::test]
async fn rule10_a_new_file_needs_no_if_match_until_someone_creates_it() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(
        bed.ih_put("r.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    assert_eq!(
        bed.ih_put("r.bin", "?part=1", &content(1024), &[])
            .await
            .status,
        200
    );
    assert_eq!(bed.ih_put("r.bin", "", b"first", &[]).await.status, 201);
    bed.ih_put("r.bin", "?upload=complete", b"x", &[])
        .await
        .assert_error(409);
    let done = bed
        .ih_put("r.bin", "?upload=complete", b"x", &[("If-Match", "0")])
        .await;
    assert_eq!((done.status, done.header("etag")), (204, Some("1")));
    Ok(())
}

#[tokio::test]
async fn rule13_untouched_uploads_expire_with_their_parts() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(
        bed.ih_put("t.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    assert_eq!(
        bed.ih_put("t.bin", "?part=1", &content(1024), &[])
            .await
            .status,
        200
    );
    assert_eq!(bed.tb.stats().sessions_open, 1);
    // Lowering the TTL applies to uploads in progress: with 0 they are expired now.
    bed.tb.update_settings(SettingsPatch {
        ih_part_ttl_s: Some(0),
        ..Default::default()
    });
    assert_eq!(bed.tb.stats().sessions_open, 0);
    assert!(bed.ih_fileslist("t.bin").await.is_empty());
    bed.tb.update_settings(SettingsPatch {
        ih_part_ttl_s: Some(3600),
        ..Default::default()
    });
    assert!(
        bed.ih_fileslist("t.bin").await.is_empty(),
        "purged, not hidden"
    );
    bed.ih_put("t.bin", "?part=2", &content(1024), &[])
        .await
        .assert_error(404);
    bed.ih_put("t.bin", "?upload=complete", b"x", &[])
        .await
        .assert_error(404);
    let sessions = bed.tb.store_dir().join("sessions").join("insights-hub");
    assert_eq!(
        std::fs::read_dir(sessions)?.count(),
        0,
        "part files deleted"
    );
    assert_eq!(bed.tb.settings().ih_part_ttl_s, 3600);
    Ok(())
}
