//! Box rule 16: direct upload, and new versions through it.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn rule16_direct_upload_stores_the_file() -> TestResult {
    let bed = start(small()).await;
    let data = content(777);
    let (status, _, body) = answer(bed.direct_new("0", "small.txt", &data).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["total_count"], 1);
    let file = &body["entries"][0];
    assert_eq!(file["name"], "small.txt");
    assert_eq!(file["size"], 777);
    assert_eq!(file["sha1"], sha1_hex(&data));
    assert_eq!(bed.tb.object_bytes("box", "small.txt")?, data);
    Ok(())
}

#[tokio::test]
async fn rule16_attributes_after_file_is_400_metadata_after_file_contents() -> TestResult {
    let bed = start(small()).await;
    let attrs = json!({"name": "x", "parent": {"id": "0"}})
        .to_string()
        .into_bytes();
    let resp = bed
        .direct(
            "/files/content",
            &[("file", b"abc".to_vec()), ("attributes", attrs)],
            &[],
        )
        .await;
    let (status, code, _) = answer(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "metadata_after_file_contents")
    );
    assert!(bed.tb.objects().is_empty());
    Ok(())
}

#[tokio::test]
async fn rule16_content_md5_mismatch_is_400() -> TestResult {
    let bed = start(small()).await;
    let attrs = json!({"name": "x", "parent": {"id": "0"}})
        .to_string()
        .into_bytes();
    let resp = bed
        .direct(
            "/files/content",
            &[("attributes", attrs), ("file", b"abc".to_vec())],
            &[("content-md5", sha1_hex(b"abd"))],
        )
        .await;
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (400, "bad_digest"));
    assert!(bed.tb.objects().is_empty());
    Ok(())
}

#[tokio::test]
async fn rule16_name_conflict_is_409_and_a_new_version_then_works() -> TestResult {
    let bed = start(small()).await;
    let (_, _, first) = answer(bed.direct_new("0", "same.txt", b"v1").await).await;
    let first_id = first["entries"][0]["id"].clone();
    let (status, code, err) = answer(bed.direct_new("0", "same.txt", b"v2").await).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"));
    assert_eq!(err["context_info"]["conflicts"]["id"], first_id);
    assert_eq!(err["context_info"]["conflicts"]["type"], "file");
    assert!(err["context_info"]["conflicts"]["sha1"].is_string());

    let id = first_id.as_str().unwrap_or_default();
    let resp = bed
        .direct(
            &format!("/files/{id}/content"),
            &[("attributes", b"{}".to_vec()), ("file", b"v2".to_vec())],
            &[("content-md5", sha1_hex(b"v2")), ("If-Match", "0".into())],
        )
        .await;
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["entries"][0]["etag"], "1");
    assert_eq!(bed.tb.object_bytes("box", "same.txt")?, b"v2");
    // A stale If-Match on the next version is refused.
    let resp = bed
        .direct(
            &format!("/files/{id}/content"),
            &[("file", b"v3".to_vec())],
            &[("If-Match", "0".into())],
        )
        .await;
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (412, "precondition_failed"));
    Ok(())
}

#[tokio::test]
async fn direct_upload_refusals() -> TestResult {
    let bed = start(small()).await;
    let (status, code, _) = answer(bed.direct_new("12345", "x", b"a").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, _) = answer(bed.direct_new("0", "a/b", b"a").await).await;
    assert_eq!((status, code.as_str()), (400, "item_name_invalid"));
    let resp = bed
        .req(Method::POST, "/files/content")
        .body("plain")
        .send()
        .await?;
    assert_eq!(answer(resp).await.0, 400);
    // Above the session minimum is still allowed directly.
    let mut patch = small();
    patch.box_min_session_size = Some(100);
    let bed = start(patch).await;
    let (status, _, _) = answer(bed.direct_new("0", "big", &content(5000)).await).await;
    assert_eq!(status, 201);
    Ok(())
}

#[tokio::test]
async fn file_delete_and_missing_files() -> TestResult {
    let bed = start(small()).await;
    let (_, _, body) = answer(bed.direct_new("0", "d.txt", b"x").await).await;
    let id = body["entries"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let resp = bed
        .req(Method::DELETE, &format!("/files/{id}"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    assert!(bed.tb.objects().is_empty());
    for path in [format!("/files/{id}"), format!("/files/{id}/content")] {
        let (status, code, _) = answer(bed.get(&path).await).await;
        assert_eq!((status, code.as_str()), (404, "not_found"));
    }
    Ok(())
}
