//! Fault injection (protocols/box.md rule 17 and the testbed's knobs).

use std::time::{Duration, Instant};

use dropship_testbed::SettingsPatch;
use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn reset_aborts_the_connection_mid_body_and_stores_nothing() -> TestResult {
    let mut patch = small();
    patch.box_part_size = Some(256 * 1024);
    let bed = start(patch).await;
    let data = content(200_000);
    let s = bed.session("r.bin", data.len() as u64).await;
    let id = s["id"].as_str().unwrap_or_default();
    bed.tb.update_settings(SettingsPatch {
        reset_rate: Some(1.0),
        ..Default::default()
    });
    let before = bed.tb.stats();

    let result = bed
        .req(Method::PUT, &format!("/files/upload_sessions/{id}"))
        .header(
            "Content-Range",
            format!("bytes 0-{}/{}", data.len() - 1, data.len()),
        )
        .header("Digest", format!("sha={}", sha1_b64(&data)))
        .body(data.clone())
        .send()
        .await;
    let err = match result {
        Ok(resp) => panic!("expected a broken connection, got HTTP {}", resp.status()),
        Err(e) => e,
    };
    eprintln!("client saw: {err:?}");

    let after = bed.tb.stats();
    assert!(
        after.bytes_received > before.bytes_received,
        "the server read part of the body"
    );
    assert_eq!(after.faults.resets, 1);

    bed.tb.update_settings(SettingsPatch {
        reset_rate: Some(0.0),
        ..Default::default()
    });
    let (_, _, list) = answer(bed.get(&format!("/files/upload_sessions/{id}/parts")).await).await;
    assert_eq!(
        list["total_count"], 0,
        "nothing of the interrupted part is stored"
    );
    assert_eq!(
        std::fs::read_dir(bed.tb.store_dir().join("tmp"))?.count(),
        0,
        "staging file removed"
    );
    // The range is free again: the retry succeeds.
    let (status, _, body) = answer(bed.put_part(id, &data, 0, data.len() as u64).await).await;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn reset_of_a_direct_upload_stores_nothing() -> TestResult {
    let mut patch = small();
    patch.reset_rate = Some(1.0);
    let bed = start(patch).await;
    let attrs = json!({"name": "x", "parent": {"id": "0"}})
        .to_string()
        .into_bytes();
    let result = bed
        .http
        .post(bed.url("/files/content"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body(
            [
                b"--b\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n".to_vec(),
                attrs,
                b"\r\n--b--\r\n".to_vec(),
            ]
            .concat(),
        )
        .send()
        .await;
    assert!(result.is_err(), "expected a broken connection");
    assert!(bed.tb.objects().is_empty());
    assert!(bed.tb.stats().bytes_received > 0);
    // Requests without a body are never reset.
    assert_eq!(answer(bed.get("/folders/0").await).await.0, 200);
    Ok(())
}

#[tokio::test]
async fn fail_rate_one_answers_503_with_retry_after_before_anything() -> TestResult {
    let mut patch = small();
    patch.fail_rate = Some(1.0);
    let bed = start(patch).await;
    let responses = [
        bed.get("/folders/0").await,
        bed.put_part("NOSUCHSESSION", &content(5000), 0, 5000).await,
        // Even without a token: the refusal comes first.
        bed.http.get(bed.url("/files/1")).send().await?,
    ];
    for resp in responses {
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let (status, code, body) = answer(resp).await;
        assert_eq!((status, code.as_str()), (503, "unavailable"), "{body}");
        assert_eq!(body["type"], "error");
    }
    let stats = bed.tb.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.faults.failed, 3);
    assert_eq!(stats.faults_injected, 3);
    assert_eq!(
        stats.bytes_received, 5000,
        "a refused body is still read and counted"
    );
    // The control endpoints are never faulted.
    let resp = bed
        .http
        .get(format!("{}/_testbed/stats", bed.tb.url()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn rate_limit_rate_one_answers_429_with_retry_after() -> TestResult {
    let mut patch = small();
    patch.rate_limit_rate = Some(1.0);
    let bed = start(patch).await;
    let resp = bed.get("/folders/0").await;
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (429, "rate_limit_exceeded"));
    assert_eq!(bed.tb.stats().faults.rate_limited, 1);
    Ok(())
}

#[tokio::test]
async fn latency_delays_each_request() -> TestResult {
    let mut patch = small();
    patch.latency_ms = Some(150);
    let bed = start(patch).await;
    let t = Instant::now();
    assert_eq!(answer(bed.get("/folders/0").await).await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn throttle_slows_request_bodies() -> TestResult {
    let mut patch = small();
    patch.box_part_size = Some(1 << 20);
    let bed = start(patch).await;
    let data = content(60_000);
    let s = bed.session("t.bin", data.len() as u64).await;
    let id = s["id"].as_str().unwrap_or_default();
    bed.tb.update_settings(SettingsPatch {
        throttle_bps: Some(100_000),
        ..Default::default()
    });
    let t = Instant::now();
    let (status, _, _) = answer(bed.put_part(id, &data, 0, data.len() as u64).await).await;
    let elapsed = t.elapsed();
    assert_eq!(status, 200);
    eprintln!(
        "throttled: {} B in {elapsed:?} = {:.0} B/s (limit 100000)",
        data.len(),
        data.len() as f64 / elapsed.as_secs_f64()
    );
    // The limit guarantees at least len/bps; only that lower bound is asserted.
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn corrupt_rate_one_stores_a_flipped_byte_and_reports_it_truthfully() -> TestResult {
    let mut patch = small();
    patch.corrupt_rate = Some(1.0);
    let bed = start(patch).await;
    let data = content(3000);
    // The commit itself succeeds: the digest check sees the bytes as sent.
    let file = bed.chunked_upload("c.bin", &data).await;
    assert_ne!(file["sha1"], sha1_hex(&data));
    let id = file["id"].as_str().unwrap_or_default();
    let (_, _, info) = answer(bed.get(&format!("/files/{id}")).await).await;
    let stored = bed
        .get(&format!("/files/{id}/content"))
        .await
        .bytes()
        .await?;
    assert_eq!(stored.len(), data.len());
    assert_eq!(stored.iter().zip(&data).filter(|(a, b)| a != b).count(), 1);
    assert_eq!(
        info["sha1"],
        sha1_hex(&stored),
        "metadata describes what is stored"
    );
    assert_eq!(info["size"], data.len());
    assert_eq!(bed.tb.objects()[0].sha1, sha1_hex(&stored));

    let (status, _, body) = answer(bed.direct_new("0", "d.bin", &data).await).await;
    assert_eq!(
        status, 201,
        "content-md5 is checked against the bytes as received"
    );
    assert_ne!(body["entries"][0]["sha1"], sha1_hex(&data));
    assert_eq!(bed.tb.stats().faults.corrupted, 2);
    Ok(())
}

#[tokio::test]
async fn settings_from_options_and_at_run_time_agree() -> TestResult {
    let mut patch = small();
    patch.latency_ms = Some(3);
    let bed = start(patch).await;
    assert_eq!(bed.tb.settings().latency_ms, 3);
    bed.tb.update_settings(SettingsPatch {
        fail_rate: Some(9.0),
        ..Default::default()
    });
    assert_eq!(bed.tb.settings().fail_rate, 1.0, "library updates clamp");
    let refused = bed.tb.try_update_settings(SettingsPatch {
        reset_rate: Some(-1.0),
        ..Default::default()
    });
    assert!(refused.is_err());
    assert_eq!(bed.tb.settings().reset_rate, 0.0);
    Ok(())
}
