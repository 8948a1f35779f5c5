//! Box rules 13–14: commit checks and the committed file.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// A session with every part of `data` uploaded: (session id, part records).
async fn uploaded(bed: &Bed, name: &str, data: &[u8]) -> (String, Vec<Value>) {
    let s = bed.session(name, data.len() as u64).await;
    let parts = bed.upload_all(&s, data).await;
    (s["id"].as_str().unwrap_or_default().to_string(), parts)
}

#[tokio::test]
async fn rule13_missing_digest_is_400() -> TestResult {
    let bed = start(small()).await;
    let data = content(3000);
    let (id, parts) = uploaded(&bed, "a.bin", &data).await;
    let resp = bed
        .req(Method::POST, &format!("/files/upload_sessions/{id}/commit"))
        .json(&json!({ "parts": parts }))
        .send()
        .await?;
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    Ok(())
}

#[tokio::test]
async fn rule13_parts_list_must_equal_the_stored_parts() -> TestResult {
    let bed = start(small()).await;
    let data = content(3000);
    let (id, parts) = uploaded(&bed, "a.bin", &data).await;
    let digest = sha1_b64(&data);
    let mut wrong_id = parts.clone();
    wrong_id[1]["part_id"] = json!("00000000");
    let mut wrong_sha = parts.clone();
    wrong_sha[2]["sha1"] = json!(sha1_hex(b"nope"));
    let mut wrong_size = parts.clone();
    wrong_size[2]["size"] = json!(1);
    let reordered = vec![parts[1].clone(), parts[0].clone(), parts[2].clone()];
    for listed in [
        parts[..2].to_vec(),
        wrong_id,
        wrong_sha,
        wrong_size,
        reordered,
        vec![],
    ] {
        let (status, code, body) = answer(bed.commit(&id, &listed, &digest).await).await;
        assert_eq!((status, code.as_str()), (400, "parts_mismatch"), "{body}");
    }
    // Hex case does not matter.
    let mut upper = parts.clone();
    for p in &mut upper {
        p["sha1"] = json!(p["sha1"].as_str().unwrap_or_default().to_uppercase());
    }
    assert_eq!(
        bed.commit(&id, &upper, &digest).await.status().as_u16(),
        201
    );
    Ok(())
}

#[tokio::test]
async fn rule13_parts_not_covering_the_file_is_parts_mismatch() -> TestResult {
    let bed = start(small()).await;
    let data = content(3000);
    let s = bed.session("gap.bin", 3000).await;
    let id = s["id"].as_str().unwrap_or_default();
    let mut parts = Vec::new();
    for offset in [0usize, 2048] {
        let chunk = &data[offset..(offset + 1024).min(3000)];
        let (status, _, body) = answer(bed.put_part(id, chunk, offset as u64, 3000).await).await;
        assert_eq!(status, 200);
        parts.push(body["part"].clone());
    }
    let (status, code, _) = answer(bed.commit(id, &parts, &sha1_b64(&data)).await).await;
    assert_eq!((status, code.as_str()), (400, "parts_mismatch"));
    Ok(())
}

#[tokio::test]
async fn rule13_whole_file_digest_mismatch_is_400_digest_mismatch() -> TestResult {
    let bed = start(small()).await;
    let data = content(3000);
    let (id, parts) = uploaded(&bed, "a.bin", &data).await;
    let (status, code, body) =
        answer(bed.commit(&id, &parts, &sha1_b64(b"other file")).await).await;
    assert_eq!((status, code.as_str()), (400, "digest_mismatch"));
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Actual")
    );
    assert!(bed.tb.objects().is_empty());
    Ok(())
}

#[tokio::test]
async fn rule13_name_taken_meanwhile_is_409() -> TestResult {
    let bed = start(small()).await;
    let data = content(3000);
    let (id, parts) = uploaded(&bed, "race.bin", &data).await;
    let (status, _, other) = answer(bed.direct_new("0", "race.bin", b"first").await).await;
    assert_eq!(status, 201);
    let (status, code, err) = answer(bed.commit(&id, &parts, &sha1_b64(&data)).await).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"));
    assert_eq!(
        err["context_info"]["conflicts"]["id"],
        other["entries"][0]["id"]
    );
    Ok(())
}

#[tokio::test]
async fn rule13_if_match_must_equal_the_current_etag() -> TestResult {
    let bed = start(small()).await;
    let file = bed.chunked_upload("m.bin", &content(2000)).await;
    let file_id = file["id"].as_str().unwrap_or_default();
    let data = content(2100);
    let resp = bed
        .req(Method::POST, &format!("/files/{file_id}/upload_sessions"))
        .json(&json!({"file_size": data.len()}))
        .send()
        .await?;
    let s = answer(resp).await.2;
    let parts = bed.upload_all(&s, &data).await;
    let sid = s["id"].as_str().unwrap_or_default();
    let commit = |etag: &'static str| {
        bed.req(
            Method::POST,
            &format!("/files/upload_sessions/{sid}/commit"),
        )
        .header("Digest", format!("sha={}", sha1_b64(&data)))
        .header("If-Match", etag)
        .json(&json!({ "parts": parts }))
        .send()
    };
    let (status, code, _) = answer(commit("7").await?).await;
    assert_eq!((status, code.as_str()), (412, "precondition_failed"));
    let (status, _, body) = answer(commit("0").await?).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entries"][0]["etag"], "1");
    Ok(())
}

#[tokio::test]
async fn rule13_injected_202s_then_201() -> TestResult {
    let mut patch = small();
    patch.box_commit_202 = Some(2);
    let bed = start(patch).await;
    let data = content(3000);
    let (id, parts) = uploaded(&bed, "slow.bin", &data).await;
    for _ in 0..2 {
        let resp = bed.commit(&id, &parts, &sha1_b64(&data)).await;
        assert_eq!(resp.status().as_u16(), 202);
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
    }
    assert_eq!(
        bed.commit(&id, &parts, &sha1_b64(&data))
            .await
            .status()
            .as_u16(),
        201
    );
    assert_eq!(bed.tb.stats().faults.commit_202, 2);
    Ok(())
}

#[tokio::test]
async fn rule13_commit_while_parts_processing_is_202() -> TestResult {
    let mut patch = small();
    patch.box_part_processing_ms = Some(60_000);
    let bed = start(patch).await;
    let data = content(3000);
    let (id, parts) = uploaded(&bed, "p.bin", &data).await;
    let resp = bed.commit(&id, &parts, &sha1_b64(&data)).await;
    assert_eq!(resp.status().as_u16(), 202);
    assert!(resp.headers().contains_key("retry-after"));
    Ok(())
}

#[tokio::test]
async fn rule14_commit_answers_the_file_and_content_is_readable() -> TestResult {
    let bed = start(small()).await;
    let data = content(5000);
    let file = bed.chunked_upload("r.bin", &data).await;
    assert_eq!(file["type"], "file");
    assert_eq!(file["size"], 5000);
    assert_eq!(file["sha1"], sha1_hex(&data));
    assert_eq!(file["etag"], "0");
    let id = file["id"].as_str().unwrap_or_default();
    let (status, _, info) = answer(bed.get(&format!("/files/{id}?fields=sha1,size")).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (info["sha1"].clone(), info["size"].clone()),
        (file["sha1"].clone(), json!(5000))
    );
    assert_eq!(info["parent"]["id"], "0");
    let got = bed
        .get(&format!("/files/{id}/content"))
        .await
        .bytes()
        .await?;
    assert_eq!(got.as_ref(), data.as_slice());
    Ok(())
}
