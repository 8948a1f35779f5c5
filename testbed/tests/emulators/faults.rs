//! Fault injection (protocols/box.md rule 17 and the testbed's knobs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    assert_eq!(stats.bytes_wasted, 5000, "and counted as wasted");
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
async fn echo_headers_repeats_the_credentials_in_an_injected_refusal() -> TestResult {
    let mut patch = small();
    patch.fail_rate = Some(1.0);
    patch.echo_headers = Some(true);
    let bed = start(patch).await;
    let resp = bed.get("/folders/0").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = resp.text().await?;
    assert!(
        text.contains("authorization: Bearer testbed-secret"),
        "{text}"
    );
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

/// A body of `total` bytes of `content`, produced in 64 KiB chunks as the client
/// sends, counting in `produced` how many bytes the client has taken so far.
fn counted_body(total: usize, produced: Arc<AtomicU64>) -> reqwest::Body {
    const CHUNK: usize = 64 * 1024;
    let data = bytes::Bytes::from(content(total));
    let chunks = (0..total).step_by(CHUNK).map(move |at| {
        let chunk = data.slice(at..(at + CHUNK).min(total));
        produced.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(chunk)
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn stall_leaves_a_part_unanswered_stores_nothing_and_the_retry_works() -> TestResult {
    const PART: usize = 4 << 20;
    let mut patch = small();
    patch.box_part_size = Some(PART as u64);
    let bed = start(patch).await;
    let data = content(PART);
    let s = bed.session("stall.bin", PART as u64).await;
    let id = s["id"].as_str().unwrap_or_default();
    bed.tb.update_settings(SettingsPatch {
        stall_rate: Some(1.0),
        ..Default::default()
    });
    // Requests without a body are never stalled.
    assert_eq!(answer(bed.get("/folders/0").await).await.0, 200);

    let before = bed.tb.stats();
    let produced = Arc::new(AtomicU64::new(0));
    let wait = Duration::from_secs(3);
    let started = Instant::now();
    let result = bed
        .req(Method::PUT, &format!("/files/upload_sessions/{id}"))
        .header("Content-Range", format!("bytes 0-{}/{PART}", PART - 1))
        .header("Digest", format!("sha={}", sha1_b64(&data)))
        .header("Content-Length", PART.to_string())
        .body(counted_body(PART, produced.clone()))
        .timeout(wait)
        .send()
        .await;
    match result {
        Ok(resp) => panic!("expected no answer, got HTTP {}", resp.status()),
        Err(e) => assert!(e.is_timeout(), "expected the client's timeout, got {e:?}"),
    }
    assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    eprintln!(
        "stalled: client handed over {} of {PART} bytes",
        produced.load(Ordering::Relaxed)
    );

    let stats = bed.tb.stats();
    assert_eq!(stats.faults.stalled, 1);
    assert_eq!(stats.faults_injected, 1);
    assert_eq!(stats.faults.resets, 0);
    let read = stats.bytes_received - before.bytes_received;
    assert!(read > 0, "the server read part of the body");
    assert!(read <= PART as u64, "{read}");

    bed.tb.update_settings(SettingsPatch {
        stall_rate: Some(0.0),
        ..Default::default()
    });
    let (_, _, list) = answer(bed.get(&format!("/files/upload_sessions/{id}/parts")).await).await;
    assert_eq!(
        list["total_count"], 0,
        "nothing of the stalled part is stored"
    );
    assert_eq!(
        std::fs::read_dir(bed.tb.store_dir().join("tmp"))?.count(),
        0,
        "the stalled handler is gone, and its staging file with it"
    );
    // The range is not held by the stalled request: the same part uploads fine.
    let (status, _, body) = answer(bed.put_part(id, &data, 0, PART as u64).await).await;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

/// Once stalled, nothing reads the socket: the client's writes block. Unknown length
/// (chunked), so the cut comes within the first 64 KiB of a body far larger than
/// every socket buffer on the way.
#[tokio::test]
async fn stall_pushes_back_on_the_client() -> TestResult {
    const SIZE: usize = 64 << 20;
    let mut patch = small();
    patch.box_part_size = Some(SIZE as u64);
    let bed = start(patch).await;
    // Set after the session exists: its creation has a (JSON) body too.
    let s = bed.session("push.bin", SIZE as u64).await;
    let id = s["id"].as_str().unwrap_or_default().to_string();
    bed.tb.update_settings(SettingsPatch {
        stall_rate: Some(1.0),
        ..Default::default()
    });

    let produced = Arc::new(AtomicU64::new(0));
    let request = bed
        .req(Method::PUT, &format!("/files/upload_sessions/{id}"))
        .header("Content-Range", format!("bytes 0-{}/{SIZE}", SIZE - 1))
        .header(
            "Digest",
            format!("sha={}", sha1_b64(b"unused: never checked")),
        )
        .body(counted_body(SIZE, produced.clone()))
        .timeout(Duration::from_secs(4))
        .send();
    let upload = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let early = produced.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = produced.load(Ordering::Relaxed);
    eprintln!("client handed over {early} then {late} of {SIZE} bytes");
    assert_eq!(early, late, "the client's writes are blocked");
    assert!(late < SIZE as u64 / 2, "{late}");
    let result = upload.await?;
    assert!(
        result.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{result:?}"
    );
    assert_eq!(bed.tb.stats().faults.stalled, 1);
    assert!(bed.tb.stats().bytes_received < 1 << 20);
    Ok(())
}

#[tokio::test]
async fn a_request_picked_for_a_reset_is_not_also_stalled() -> TestResult {
    let bed = start(small()).await;
    let s = bed.session("one.bin", 1000).await;
    let id = s["id"].as_str().unwrap_or_default();
    bed.tb.update_settings(SettingsPatch {
        reset_rate: Some(1.0),
        stall_rate: Some(1.0),
        ..Default::default()
    });
    let result = bed
        .req(Method::PUT, &format!("/files/upload_sessions/{id}"))
        .header("Content-Range", "bytes 0-999/1000")
        .header("Digest", format!("sha={}", sha1_b64(&content(1000))))
        .body(content(1000))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let err = result.err().ok_or("expected a broken connection")?;
    assert!(!err.is_timeout(), "reset, not stalled: {err:?}");
    let faults = bed.tb.stats().faults;
    assert_eq!((faults.resets, faults.stalled), (1, 0));
    Ok(())
}

#[tokio::test]
async fn stall_rate_is_a_knob_like_the_other_rates() -> TestResult {
    let bed = start(small()).await;
    let url = format!("{}/_testbed/faults", bed.tb.url());
    let resp = bed
        .http
        .put(&url)
        .json(&json!({"stall_rate": 0.25}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let settings: serde_json::Value = resp.json().await?;
    assert_eq!(settings["stall_rate"], 0.25);
    let resp = bed
        .http
        .put(&url)
        .json(&json!({"stall_rate": 1.5}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(bed.tb.settings().stall_rate, 0.25);
    let stats: serde_json::Value = bed
        .http
        .get(format!("{}/_testbed/stats", bed.tb.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["faults"]["stalled"], 0);
    assert_eq!(stats["emulators"]["box"]["faults"]["stalled"], 0);
    Ok(())
}

/// The held socket is closed once the client's close reaches it: here a small body
/// fits the socket buffers, so the client's FIN gets through at once. No HTTP answer
/// ever comes, only the close.
#[tokio::test]
async fn a_stalled_connection_is_closed_when_the_client_closes() -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bed = start(small()).await;
    let s = bed.session("close.bin", 1000).await;
    let id = s["id"].as_str().unwrap_or_default();
    bed.tb.update_settings(SettingsPatch {
        stall_rate: Some(1.0),
        ..Default::default()
    });
    let body = content(1000);
    let mut sock = tokio::net::TcpStream::connect(bed.tb.addr()).await?;
    let head = format!(
        "PUT /box/2.0/files/upload_sessions/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Range: bytes 0-999/1000\r\nDigest: sha={}\r\nContent-Length: 1000\r\n\r\n",
        bed.tb.addr(),
        sha1_b64(&body)
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&body).await?;
    let mut reply = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(500), sock.read_to_end(&mut reply)).await;
    assert!(early.is_err(), "no answer, no close while the client waits");
    assert_eq!(bed.tb.stats().faults.stalled, 1);

    sock.shutdown().await?; // our FIN: the client gives up
    let closed = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut reply)).await;
    // A reset is fine too: the server closes a socket holding unread bytes.
    assert!(closed.is_ok(), "the server closed the held socket");
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
    Ok(())
}

#[tokio::test]
async fn corrupt_offset_places_the_flipped_byte() -> TestResult {
    let mut patch = small();
    patch.corrupt_rate = Some(1.0);
    patch.corrupt_offset = Some(1234);
    let bed = start(patch).await;
    let data = content(3000);
    bed.chunked_upload("at.bin", &data).await;
    let (status, _, _) = answer(bed.direct_new("0", "wrap.bin", &data[..1000]).await).await;
    assert_eq!(status, 201);
    for (name, len, at) in [("at.bin", 3000usize, 1234usize), ("wrap.bin", 1000, 234)] {
        let stored = bed.tb.object_bytes("box", name)?;
        let mut want = data[..len].to_vec();
        want[at] = !want[at];
        assert_eq!(stored, want, "{name}: byte {at} flipped, nothing else");
    }
    Ok(())
}

/// Each answer fault, at rate 1: the request took effect (a folder listing is read
/// anyway), its answer is mangled, and the fault is counted.
#[tokio::test]
async fn answer_faults_mangle_what_the_emulator_answered() -> TestResult {
    // Garbage: the status stays, the body is no longer the emulator's.
    let mut patch = small();
    patch.answer_garbage_rate = Some(1.0);
    let bed = start(patch).await;
    let resp = bed.get("/folders/0").await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await?;
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_or(true, |v| v.get("item_collection").is_none()),
        "{body:?}"
    );
    assert_eq!(bed.tb.stats().faults.mangled_answers, 1);

    // Truncated: the length promised, half of it sent, the connection dropped.
    let mut patch = small();
    patch.answer_truncate_rate = Some(1.0);
    let bed = start(patch).await;
    let resp = bed.get("/folders/0").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().await.is_err(), "a cut body reads as an error");

    // Huge: 64 MiB of junk.
    let mut patch = small();
    patch.answer_huge_rate = Some(1.0);
    let bed = start(patch).await;
    let resp = bed.get("/folders/0").await;
    let mut n = 0usize;
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len();
    }
    assert_eq!(n, 64 << 20);

    // Hang: no answer at all, for a request without a body too.
    let mut patch = small();
    patch.hang_rate = Some(1.0);
    let bed = start(patch).await;
    let r = bed
        .req(Method::GET, "/folders/0")
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(r.as_ref().is_err_and(reqwest::Error::is_timeout), "{r:?}");
    assert_eq!(bed.tb.stats().faults.hung, 1);
    Ok(())
}

/// A body the emulator accepted is not waste; one it refused is.
#[tokio::test]
async fn only_bodies_not_answered_with_success_are_wasted() -> TestResult {
    let bed = start(small()).await;
    let probe = bed.session("p.bin", 1 << 20).await;
    let ps = probe["part_size"].as_u64().unwrap_or(1024);
    let total = 2 * ps;
    let session = bed.session("w.bin", total).await;
    let id = session["id"].as_str().unwrap_or_default().to_string();
    let data = content(ps as usize);
    let before = bed.tb.stats();
    let ok = bed.put_part(&id, &data, 0, total).await;
    assert!(ok.status().is_success(), "{}", ok.status());
    // A part not on a part boundary: refused.
    let refused = bed.put_part(&id, &data, 1, total).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let stats = bed.tb.stats();
    assert_eq!(stats.bytes_received - before.bytes_received, 2 * ps);
    assert_eq!(stats.bytes_wasted - before.bytes_wasted, ps);
    Ok(())
}
