//! Insights Hub rules 1–4 and 15: auth, asset, headers, single upload with its etag
//! rules, download with Range, delete, the shaped faults and corruption.

use dropship_testbed::SettingsPatch;
use reqwest::Method;
use serde_json::json;

use crate::insights_hub_client::*;
use crate::support::*;

#[tokio::test]
async fn rule1_bearer_must_be_the_current_secret() -> TestResult {
    let bed = start(ih_small()).await;
    let url = bed.ih_url(&format!("files/{ASSET}/a.txt"));
    let anon = Answer::of(bed.http.put(&url).body("x").send().await?).await;
    anon.assert_error(401);
    let wrong = Answer::of(
        bed.http
            .put(&url)
            .bearer_auth("nope")
            .body("x")
            .send()
            .await?,
    )
    .await;
    wrong.assert_error(401);
    assert_eq!(bed.ih_put("a.txt", "", b"x", &[]).await.status, 201);

    // Token expiry: the secret changes, the old token gets 401, the body still read.
    bed.tb.set_secret("rotated");
    let old = bed.ih_put("b.txt", "", &content(300_000), &[]).await;
    old.assert_error(401);
    assert_eq!(bed.ih_get(&format!("files/{ASSET}")).await.status, 401);
    let new = Answer::of(
        bed.http
            .put(bed.ih_url(&format!("files/{ASSET}/b.txt")))
            .bearer_auth("rotated")
            .body("y")
            .send()
            .await?,
    )
    .await;
    assert_eq!(new.status, 201, "{}", new.body);
    assert_eq!(bed.tb.objects().len(), 2);
    Ok(())
}

#[tokio::test]
async fn rule2_entity_id_must_be_hex32_and_a_configured_asset() -> TestResult {
    let bed = start(ih_small()).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for bad in ["00189AB4C65243BB9D77F17332DD570A", "00189ab4", "x"] {
        for path in [
            format!("files/{bad}/a.txt"),
            format!("fileslist/{bad}/a.txt"),
            format!("files/{bad}"),
        ] {
            bed.ih_get(&path).await.assert_error(400);
        }
        let a = Answer::of(
            bed.ih(Method::PUT, &format!("files/{bad}/a.txt"))
                .body("x")
                .send()
                .await?,
        )
        .await;
        a.assert_error(400);
    }
    for path in [
        format!("files/{unknown}/a.txt"),
        format!("fileslist/{unknown}/a.txt"),
        format!("files/{unknown}"),
    ] {
        bed.ih_get(&path).await.assert_error(404);
    }
    let put = |asset: &str| {
        bed.ih(Method::PUT, &format!("files/{asset}/a.txt"))
            .body("x")
            .send()
    };
    Answer::of(put(unknown).await?).await.assert_error(404);
    assert_eq!(Answer::of(put(ASSET2).await?).await.status, 201);

    // The knob decides which assets exist.
    bed.tb.update_settings(SettingsPatch {
        ih_assets: Some(unknown.into()),
        ..Default::default()
    });
    assert_eq!(Answer::of(put(unknown).await?).await.status, 201);
    Answer::of(put(ASSET).await?).await.assert_error(404);
    Ok(())
}

#[tokio::test]
async fn rule2_file_path_needs_a_name() -> TestResult {
    let bed = start(ih_small()).await;
    for bad in ["a//b.txt", "dir/"] {
        bed.ih_put(bad, "", b"x", &[]).await.assert_error(400);
    }
    assert!(bed.tb.objects().is_empty());
    Ok(())
}

#[tokio::test]
async fn rule3_invalid_metadata_headers_are_400_and_store_nothing() -> TestResult {
    let bed = start(ih_small()).await;
    let long_desc = "d".repeat(101);
    let long_type = "t".repeat(192);
    for header in [
        ("description", long_desc.as_str()),
        ("type", long_type.as_str()),
        ("timestamp", "last tuesday"),
        ("timestamp", "2024-13-01T00:00:00Z"),
        ("If-Match", "abc"),
        ("If-Match", "\"0\""),
    ] {
        for query in ["", "?upload=start", "?part=1", "?upload=complete"] {
            bed.ih_put("h.txt", query, b"x", &[header])
                .await
                .assert_error(400);
        }
    }
    assert!(bed.tb.objects().is_empty());
    Ok(())
}

#[tokio::test]
async fn rule3_valid_metadata_comes_back_in_search_and_download() -> TestResult {
    let bed = start(ih_small()).await;
    let desc = "d".repeat(100);
    let a = bed
        .ih_put(
            "logs/m.txt",
            "",
            b"hello",
            &[
                ("description", &desc),
                ("type", "text/plain"),
                ("timestamp", "2024-05-01T12:00:00.5+02:00"),
            ],
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let found = bed.ih_find("logs/m.txt").await.ok_or("not found")?;
    assert_eq!(found["description"], json!(desc));
    assert_eq!(found["type"], "text/plain");
    assert_eq!(
        found["timestamp"], "2024-05-01T10:00:00.500Z",
        "kept in UTC"
    );
    let resp = bed
        .ih(Method::GET, &format!("files/{ASSET}/logs/m.txt"))
        .send()
        .await?;
    let h = resp.headers();
    assert_eq!(
        h.get("description").and_then(|v| v.to_str().ok()),
        Some(desc.as_str())
    );
    assert_eq!(
        h.get("timestamp").and_then(|v| v.to_str().ok()),
        Some("2024-05-01T10:00:00.500Z")
    );
    assert_eq!(h.get("etag").and_then(|v| v.to_str().ok()), Some("0"));
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain")
    );
    assert_eq!(resp.bytes().await?.as_ref(), b"hello");
    Ok(())
}

#[tokio::test]
async fn rule4_single_put_creates_then_updates_with_the_current_etag() -> TestResult {
    let bed = start(ih_small()).await;
    let first = bed.ih_put("dir/f.bin", "", b"one", &[]).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("etag"), Some("0"));
    let location = first.header("location").ok_or("no Location")?.to_string();
    assert_eq!(location, bed.ih_url(&format!("files/{ASSET}/dir/f.bin")));
    let got = bed.http.get(&location).bearer_auth(TOKEN).send().await?;
    assert_eq!(got.bytes().await?.as_ref(), b"one");

    let second = bed
        .ih_put("dir/f.bin", "", b"two", &[("If-Match", "0")])
        .await;
    assert_eq!(second.status, 204);
    assert_eq!(second.header("etag"), Some("1"));
    assert_eq!(second.header("location"), Some(location.as_str()));

    // Stale and missing If-Match: 409, content unchanged.
    bed.ih_put("dir/f.bin", "", b"three", &[("If-Match", "0")])
        .await
        .assert_error(409);
    bed.ih_put("dir/f.bin", "", b"three", &[])
        .await
        .assert_error(409);
    assert_eq!(bed.ih_download("dir/f.bin").await, b"two");
    let found = bed.ih_find("dir/f.bin").await.ok_or("not found")?;
    assert_eq!(found["etag"], 1, "an integer etag");
    assert_eq!(found["size"], 3);

    let third = bed
        .ih_put("dir/f.bin", "", b"three", &[("If-Match", "1")])
        .await;
    assert_eq!((third.status, third.header("etag")), (204, Some("2")));
    // If-Match naming a file that does not exist.
    bed.ih_put("dir/new.bin", "", b"x", &[("If-Match", "0")])
        .await
        .assert_error(409);
    Ok(())
}

#[tokio::test]
async fn rule4_missing_if_match_overwrites_when_switched_off() -> TestResult {
    let mut patch = ih_small();
    patch.ih_require_if_match = Some(false);
    let bed = start(patch).await;
    assert_eq!(bed.ih_put("f.bin", "", b"one", &[]).await.status, 201);
    let a = bed.ih_put("f.bin", "", b"two", &[]).await;
    assert_eq!((a.status, a.header("etag")), (204, Some("1")));
    // A stale one is still refused.
    bed.ih_put("f.bin", "", b"x", &[("If-Match", "0")])
        .await
        .assert_error(409);
    assert_eq!(bed.ih_download("f.bin").await, b"two");
    Ok(())
}

#[tokio::test]
async fn rule15_range_gives_206_and_416() -> TestResult {
    let bed = start(ih_small()).await;
    let data = content(1000);
    assert_eq!(bed.ih_put("r.bin", "", &data, &[]).await.status, 201);
    let get = |range: &'static str| {
        bed.ih(Method::GET, &format!("files/{ASSET}/r.bin"))
            .header("Range", range)
            .send()
    };
    for (range, first, last) in [
        ("bytes=200-400", 200usize, 400usize),
        ("bytes=990-5000", 990, 999),
        ("bytes=900-", 900, 999),
        ("bytes=-10", 990, 999),
    ] {
        let resp = get(range).await?;
        assert_eq!(resp.status().as_u16(), 206, "{range}");
        let h = resp.headers().clone();
        let want_range = format!("bytes {first}-{last}/1000");
        assert_eq!(
            h.get("content-range").and_then(|v| v.to_str().ok()),
            Some(want_range.as_str())
        );
        assert_eq!(h.get("etag").and_then(|v| v.to_str().ok()), Some("0"));
        assert_eq!(resp.bytes().await?.as_ref(), &data[first..=last], "{range}");
    }
    for range in [
        "bytes=1000-",
        "bytes=1000-2000",
        "bytes=-0",
        "bytes=5-1",
        "bytes=0-1,5-6",
    ] {
        let a = Answer::of(get(range).await?).await;
        a.assert_error(416);
        assert_eq!(a.header("content-range"), Some("bytes */1000"), "{range}");
    }
    // HEAD: the same headers, no body.
    let head = bed
        .ih(Method::HEAD, &format!("files/{ASSET}/r.bin"))
        .send()
        .await?;
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("1000")
    );
    assert_eq!(
        head.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert!(head.bytes().await?.is_empty());
    bed.ih_get(&format!("files/{ASSET}/missing.bin"))
        .await
        .assert_error(404);
    Ok(())
}

#[tokio::test]
async fn delete_removes_the_file_and_a_new_one_starts_at_etag_0() -> TestResult {
    let bed = start(ih_small()).await;
    assert_eq!(bed.ih_put("d.bin", "", b"one", &[]).await.status, 201);
    let del = |file: &'static str| {
        bed.ih(Method::DELETE, &format!("files/{ASSET}/{file}"))
            .send()
    };
    assert_eq!(del("d.bin").await?.status().as_u16(), 204);
    Answer::of(del("d.bin").await?).await.assert_error(404);
    bed.ih_get(&format!("files/{ASSET}/d.bin"))
        .await
        .assert_error(404);
    assert!(bed.tb.objects().is_empty());
    let again = bed.ih_put("d.bin", "", b"two", &[]).await;
    assert_eq!((again.status, again.header("etag")), (201, Some("0")));
    Ok(())
}

#[tokio::test]
async fn objects_and_stats_name_the_emulator_and_the_asset_path() -> TestResult {
    let bed = start(ih_small()).await;
    let data = content(500);
    assert_eq!(bed.ih_put("logs/o.bin", "", &data, &[]).await.status, 201);
    let path = format!("{ASSET}/logs/o.bin");
    let objects = bed.tb.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].emulator, "insights-hub");
    assert_eq!(objects[0].path, path);
    assert_eq!(objects[0].size, 500);
    assert_eq!(bed.tb.object_bytes("insights-hub", &path)?, data);
    let stats = bed.tb.stats();
    let ih = &stats.emulators["insights-hub"];
    assert_eq!((ih.requests, ih.objects), (1, 1));
    assert!(ih.bytes_received >= 500);
    Ok(())
}

#[tokio::test]
async fn rule16_injected_refusals_have_the_service_error_shape() -> TestResult {
    let mut patch = ih_small();
    patch.fail_rate = Some(1.0);
    let bed = start(patch).await;
    let a = bed.ih_put("f.bin", "", &content(10_000), &[]).await;
    a.assert_error(503);
    assert_eq!(a.header("retry-after"), Some("1"));
    bed.tb.update_settings(SettingsPatch {
        fail_rate: Some(0.0),
        rate_limit_rate: Some(1.0),
        ..Default::default()
    });
    let a = bed.ih_get(&format!("fileslist/{ASSET}/f.bin")).await;
    a.assert_error(429);
    assert_eq!(a.header("retry-after"), Some("1"));
    assert!(bed.tb.objects().is_empty());
    let f = &bed.tb.stats().emulators["insights-hub"].faults;
    assert_eq!((f.failed, f.rate_limited), (1, 1));
    Ok(())
}

#[tokio::test]
async fn rule16_corruption_flips_the_byte_at_corrupt_offset() -> TestResult {
    let mut patch = ih_small();
    patch.corrupt_rate = Some(1.0);
    patch.corrupt_offset = Some(1500);
    let bed = start(patch).await;
    let data = content(2000);
    assert_eq!(bed.ih_put("single.bin", "", &data, &[]).await.status, 201);
    let parts = [&data[..1024], &data[1024..]];
    let done = bed
        .ih_multipart("multi.bin", &parts[..1], parts[1], &[])
        .await;
    assert_eq!(done.status, 201, "{}", done.body);
    let short = &data[..1000];
    assert_eq!(bed.ih_put("short.bin", "", short, &[]).await.status, 201);
    for (file, whole, at) in [
        ("single.bin", &data[..], 1500usize),
        ("multi.bin", &data[..], 1500),
        ("short.bin", short, 500),
    ] {
        let mut want = whole.to_vec();
        want[at] = !want[at];
        assert_eq!(bed.ih_download(file).await, want, "{file}");
        let found = bed.ih_find(file).await.ok_or("not found")?;
        assert_eq!(found["size"], whole.len(), "size is the stored size");
    }
    assert_eq!(bed.tb.stats().emulators["insights-hub"].faults.corrupted, 3);
    Ok(())
}
