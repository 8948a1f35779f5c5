//! Box rules 5–12: part headers, ranges, lengths, digests, overlap, listing.

use dropship_testbed::SettingsPatch;
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const SIZE: u64 = 2500; // parts of 1024: 0-1023, 1024-2047, 2048-2499

/// A session of SIZE bytes; returns (bed, session id).
async fn bed_with_session() -> (Bed, String) {
    let bed = start(small()).await;
    let s = bed.session("p.bin", SIZE).await;
    let id = s["id"].as_str().unwrap_or_default().to_string();
    (bed, id)
}

/// PUT with explicit headers (None = header left out).
async fn put_raw(
    bed: &Bed,
    id: &str,
    range: Option<&str>,
    digest: Option<String>,
    body: &[u8],
) -> (u16, String, Value) {
    let mut req = bed
        .req(Method::PUT, &format!("/files/upload_sessions/{id}"))
        .body(body.to_vec());
    if let Some(r) = range {
        req = req.header("Content-Range", r);
    }
    if let Some(d) = digest {
        req = req.header("Digest", d);
    }
    answer(req.send().await.expect("put")).await
}

async fn parts_held(bed: &Bed, id: &str) -> u64 {
    let (_, _, body) = answer(bed.get(&format!("/files/upload_sessions/{id}/parts")).await).await;
    body["total_count"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn rule5_missing_or_malformed_headers_are_400_bad_request() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let part = content(1024);
    let good_digest = Some(format!("sha={}", sha1_b64(&part)));
    let cases: [(Option<&str>, Option<String>); 6] = [
        (None, good_digest.clone()),
        (Some("bytes 0-1023/2500"), None),
        (Some("items 0-1023/2500"), good_digest.clone()),
        (Some("0-1023/2500"), good_digest.clone()),
        (Some("bytes zero-1023/2500"), good_digest.clone()),
        (Some("bytes 1023-0/2500"), good_digest.clone()),
    ];
    for (range, digest) in cases {
        let (status, code, body) = put_raw(&bed, &id, range, digest, &part).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "bad_request"),
            "{range:?}: {body}"
        );
    }
    assert_eq!(parts_held(&bed, &id).await, 0);
    Ok(())
}

#[tokio::test]
async fn rule6_total_other_than_file_size_is_416() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let part = content(1024);
    let resp = bed.put_part(&id, &part, 0, SIZE + 1).await;
    let (status, code, _) = answer(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (416, "requested_range_not_satisfiable")
    );
    Ok(())
}

#[tokio::test]
async fn rule7_misaligned_or_wrong_length_ranges_are_416() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let cases: [(u64, usize); 5] = [
        (1, 1024),   // not a multiple of part_size
        (0, 1000),   // non-final part shorter than part_size
        (0, 2048),   // non-final part longer than part_size
        (2048, 400), // final part not reaching file_size - 1
        (3072, 10),  // beyond the end
    ];
    for (offset, len) in cases {
        let (status, code, body) =
            answer(bed.put_part(&id, &content(len), offset, SIZE).await).await;
        assert_eq!(
            (status, code.as_str()),
            (416, "requested_range_not_satisfiable"),
            "{offset}+{len}: {body}"
        );
    }
    // The final part, exactly to the end, is fine.
    let (status, _, _) = answer(bed.put_part(&id, &content(452), 2048, SIZE).await).await;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn rule8_body_length_other_than_range_is_400() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let body = content(1000);
    let (status, code, _) = put_raw(
        &bed,
        &id,
        Some("bytes 0-1023/2500"),
        Some(format!("sha={}", sha1_b64(&body))),
        &body,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert_eq!(parts_held(&bed, &id).await, 0);
    Ok(())
}

/// Without Content-Length (chunked), the length is only known at the end of the body.
#[tokio::test]
async fn rule8_chunked_body_of_wrong_length_is_400() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let body = content(1000);
    let mut sock = tokio::net::TcpStream::connect(bed.tb.addr()).await?;
    let head = format!(
        "PUT /box/2.0/files/upload_sessions/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Range: bytes 0-1023/2500\r\nDigest: sha={}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        bed.tb.addr(),
        sha1_b64(&body)
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(format!("{:x}\r\n", body.len()).as_bytes())
        .await?;
    sock.write_all(&body).await?;
    sock.write_all(b"\r\n0\r\n\r\n").await?;
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await?;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("\"code\":\"bad_request\""), "{reply}");
    assert_eq!(parts_held(&bed, &id).await, 0);
    Ok(())
}

#[tokio::test]
async fn rule9_malformed_digest_is_400_and_wrong_digest_is_412() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let part = content(1024);
    let range = Some("bytes 0-1023/2500");
    let md5_only = Some("md5=rL0Y20zC+Fzt72VPzMSk2A==".to_string());
    let short = Some(format!("sha={}", base64_of(&[1u8; 16])));
    let not_b64 = Some("sha=%%%".to_string());
    for digest in [md5_only, short, not_b64] {
        let (status, code, body) = put_raw(&bed, &id, range, digest, &part).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{body}");
    }
    let wrong = Some(format!("sha={}", sha1_b64(b"something else")));
    let (status, code, _) = put_raw(&bed, &id, range, wrong, &part).await;
    assert_eq!((status, code.as_str()), (412, "precondition_failed"));
    assert_eq!(
        parts_held(&bed, &id).await,
        0,
        "nothing stored on a digest mismatch"
    );
    // The algorithm token is case-insensitive (legacy Python SDK sends SHA=).
    let upper = Some(format!("SHA={}", sha1_b64(&part)));
    let (status, _, _) = put_raw(&bed, &id, range, upper, &part).await;
    assert_eq!(status, 200);
    Ok(())
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn rule10_overlap_is_416_with_the_stored_part() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let first = content(1024);
    let (status, _, stored) = answer(bed.put_part(&id, &first, 0, SIZE).await).await;
    assert_eq!(status, 200);
    // Same range again, even with other bytes: refused, nothing changes.
    let other = vec![9u8; 1024];
    let (status, code, err) = answer(bed.put_part(&id, &other, 0, SIZE).await).await;
    assert_eq!(
        (status, code.as_str()),
        (416, "range_overlaps_existing_part")
    );
    assert_eq!(err["context_info"]["conflicting_part"], stored["part"]);
    let (_, _, list) = answer(bed.get(&format!("/files/upload_sessions/{id}/parts")).await).await;
    assert_eq!(list["entries"][0], stored["part"]);
    Ok(())
}

#[tokio::test]
async fn a_range_being_uploaded_is_409_on_the_headers_without_reading_the_body() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let part = content(1024);
    // A request whose body stops half-way and stays open: a client that died.
    let mut holder = tokio::net::TcpStream::connect(bed.tb.addr()).await?;
    let head = format!(
        "PUT /box/2.0/files/upload_sessions/{id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Range: bytes 0-1023/2500\r\nDigest: sha={}\r\nContent-Length: 1024\r\n\r\n",
        bed.tb.addr(),
        sha1_b64(&part)
    );
    holder.write_all(head.as_bytes()).await?;
    holder.write_all(&part[..512]).await?;
    // Wait until the server has taken the range.
    for _ in 0..100 {
        if bed.tb.stats().bytes_received >= 512 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = bed.tb.stats().bytes_received;
    let (status, code, _) = answer(bed.put_part(&id, &part, 0, SIZE).await).await;
    assert_eq!((status, code.as_str()), (409, "conflict"));
    assert_eq!(
        bed.tb.stats().bytes_received,
        before,
        "the refused body was read"
    );
    // Once the first request is gone, the range can be sent.
    drop(holder);
    let mut stored = 0;
    for _ in 0..100 {
        let (status, _, _) = answer(bed.put_part(&id, &part, 0, SIZE).await).await;
        stored = status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stored, 200);
    Ok(())
}

#[tokio::test]
async fn rule11_part_answer_has_fresh_id_hex_sha1_and_counts_as_processed() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let mut ids = Vec::new();
    for (i, offset) in [0u64, 1024].into_iter().enumerate() {
        let part = content(1024 + i)[i..].to_vec();
        let (status, _, body) = answer(bed.put_part(&id, &part, offset, SIZE).await).await;
        assert_eq!(status, 200);
        let p = &body["part"];
        let pid = p["part_id"].as_str().unwrap_or_default().to_string();
        assert!(
            pid.len() == 8 && pid.chars().all(|c| c.is_ascii_hexdigit()),
            "{pid}"
        );
        assert_eq!(p["sha1"], sha1_hex(&part));
        assert_eq!(p["offset"], offset);
        assert_eq!(p["size"], 1024);
        ids.push(pid);
        let (_, _, s) = answer(bed.get(&format!("/files/upload_sessions/{id}")).await).await;
        assert_eq!(s["num_parts_processed"], i as u64 + 1);
    }
    assert_ne!(ids[0], ids[1]);
    Ok(())
}

#[tokio::test]
async fn rule11_processing_delay_holds_num_parts_processed() -> TestResult {
    let mut patch = small();
    patch.box_part_processing_ms = Some(60_000);
    let bed = start(patch).await;
    let s = bed.session("slow.bin", 100).await;
    let id = s["id"].as_str().unwrap_or_default();
    assert_eq!(
        answer(bed.put_part(id, &content(100), 0, 100).await)
            .await
            .0,
        200
    );
    let (_, _, s) = answer(bed.get(&format!("/files/upload_sessions/{id}")).await).await;
    assert_eq!(s["num_parts_processed"], 0);
    Ok(())
}

#[tokio::test]
async fn rule12_listing_pages_clamps_and_refuses_big_offsets() -> TestResult {
    let bed = start(SettingsPatch {
        box_min_session_size: Some(1),
        box_part_size: Some(10),
        ..Default::default()
    })
    .await;
    let data = content(45);
    let s = bed.session("l.bin", 45).await;
    let id = s["id"].as_str().unwrap_or_default();
    // Upload out of order; the listing is still by offset.
    for offset in [40u64, 0, 20, 10, 30] {
        let chunk = &data[offset as usize..(offset as usize + 10).min(45)];
        assert_eq!(
            answer(bed.put_part(id, chunk, offset, 45).await).await.0,
            200
        );
    }
    let path = |q: &str| format!("/files/upload_sessions/{id}/parts{q}");
    let (_, _, all) = answer(bed.get(&path("")).await).await;
    assert_eq!(all["total_count"], 5);
    let offsets: Vec<u64> = all["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["offset"].as_u64())
        .collect();
    assert_eq!(offsets, vec![0, 10, 20, 30, 40]);

    let (_, _, page) = answer(bed.get(&path("?offset=1&limit=2")).await).await;
    assert_eq!(page["total_count"], 5);
    assert_eq!(
        (page["offset"].as_u64(), page["limit"].as_u64()),
        (Some(1), Some(2))
    );
    let offsets: Vec<u64> = page["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["offset"].as_u64())
        .collect();
    assert_eq!(offsets, vec![10, 20]);

    let (status, _, clamped) = answer(bed.get(&path("?limit=5000")).await).await;
    assert_eq!(status, 200);
    assert_eq!(clamped["limit"], 1000);

    let (status, code, _) = answer(bed.get(&path("?offset=10001")).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let (status, _, _) = answer(bed.get(&path("?offset=10000")).await).await;
    assert_eq!(status, 200);
    let (status, code, _) = answer(bed.get(&path("?limit=many")).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    Ok(())
}

#[tokio::test]
async fn plan_endpoint_reports_every_part_as_a_miss() -> TestResult {
    let (bed, id) = bed_with_session().await;
    let (_, _, s) = answer(bed.get(&format!("/files/upload_sessions/{id}")).await).await;
    let plan_url = s["session_endpoints"]["plan"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(plan_url.ends_with("/plan"), "{plan_url}");
    let asked =
        serde_json::json!({"parts": [{"offset": 0, "size": 1024, "sha512": "ab".repeat(64)}]});
    let resp = bed
        .http
        .post(&plan_url)
        .bearer_auth(TOKEN)
        .json(&asked)
        .send()
        .await?;
    let (status, _, plan) = answer(resp).await;
    assert_eq!(status, 200);
    assert_eq!(plan["upload_session_id"], id.as_str());
    assert_eq!(plan["hits"], serde_json::json!([]));
    assert_eq!(plan["misses"], asked["parts"]);
    Ok(())
}
