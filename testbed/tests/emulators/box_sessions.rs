//! Box rules 1–4 and 15: auth, session creation, expiry/abort/commit → 404, abort.

use dropship_testbed::SettingsPatch;
use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn rule1_missing_or_unknown_token_is_401_with_header_and_empty_body() -> TestResult {
    let bed = start(small()).await;
    let url = bed.url("/files/upload_sessions");
    for req in [
        bed.http.post(&url),
        bed.http.post(&url).bearer_auth("wrong-token"),
        bed.http
            .post(&url)
            .header("Authorization", "Basic dGVzdGJlZC1zZWNyZXQ="),
    ] {
        let resp = req.json(&json!({"folder_id": "0"})).send().await?;
        assert_eq!(resp.status().as_u16(), 401);
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().map(String::from));
        assert_eq!(
            www.transpose()?.as_deref(),
            Some(
                r#"Bearer realm="Service", error="invalid_token", error_description="The access token provided is invalid.""#
            )
        );
        assert!(resp.bytes().await?.is_empty());
    }
    // The scheme is case-insensitive; the right token passes.
    let resp = bed
        .http
        .get(bed.url("/folders/0"))
        .header("Authorization", format!("bearer {TOKEN}"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn rule2_create_refusals_have_boxs_codes() -> TestResult {
    let bed = start(SettingsPatch::default()).await; // real 20,000,000 minimum
    let post = |body: serde_json::Value| {
        bed.req(Method::POST, "/files/upload_sessions")
            .json(&body)
            .send()
    };
    let big = 20_000_000u64;
    let cases = [
        (
            json!({"file_size": big, "file_name": "a"}),
            400,
            "missing_destination",
        ),
        (
            json!({"folder_id": "999", "file_size": big, "file_name": "a"}),
            404,
            "not_found",
        ),
        (
            json!({"folder_id": "0", "file_name": "a"}),
            400,
            "missing_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": "big", "file_name": "a"}),
            400,
            "invalid_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": -5, "file_name": "a"}),
            400,
            "invalid_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": 2.5e7, "file_name": "a"}),
            400,
            "invalid_file_size",
        ),
        (
            json!({"folder_id": "0", "file_size": big - 1, "file_name": "a"}),
            400,
            "file_size_too_small",
        ),
        (
            json!({"folder_id": "0", "file_size": big}),
            400,
            "missing_file_name",
        ),
        (
            json!({"folder_id": "0", "file_size": big, "file_name": ""}),
            400,
            "item_name_invalid",
        ),
        (
            json!({"folder_id": "0", "file_size": big, "file_name": "a/b"}),
            400,
            "item_name_invalid",
        ),
        (
            json!({"folder_id": "0", "file_size": big, "file_name": "a\\b"}),
            400,
            "item_name_invalid",
        ),
        (
            json!({"folder_id": "0", "file_size": big, "file_name": ".."}),
            400,
            "item_name_invalid",
        ),
        (
            json!({"folder_id": "0", "file_size": big, "file_name": "."}),
            400,
            "item_name_invalid",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, code, err) = answer(post(body.clone()).await?).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{body} → {err}"
        );
        assert_eq!(err["type"], "error");
        assert_eq!(err["status"], want_status);
        assert!(err["request_id"].is_string());
    }
    // Exactly the minimum is accepted.
    let (status, _, _) =
        answer(post(json!({"folder_id": "0", "file_size": big, "file_name": "a"})).await?).await;
    assert_eq!(status, 201);
    Ok(())
}

#[tokio::test]
async fn rule2_name_in_use_conflicts_name_the_existing_item() -> TestResult {
    let bed = start(small()).await;
    let (status, _, existing) = answer(bed.direct_new("0", "Report.bin", b"abc").await).await;
    assert_eq!(status, 201);
    let existing_id = existing["entries"][0]["id"].clone();
    // Names compare case-insensitively, and files and folders share the name space.
    let (status, code, err) = answer(bed.create_session("0", "report.BIN", 10).await).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"));
    assert_eq!(err["context_info"]["conflicts"]["id"], existing_id);
    assert_eq!(err["context_info"]["conflicts"]["type"], "file");

    let (status, _, folder) = answer(bed.mkdir("0", "docs").await).await;
    assert_eq!(status, 201);
    let (status, code, err) = answer(bed.create_session("0", "docs", 10).await).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"));
    assert_eq!(err["context_info"]["conflicts"]["id"], folder["id"]);
    assert_eq!(err["context_info"]["conflicts"]["type"], "folder");
    Ok(())
}

#[tokio::test]
async fn rule3_session_has_server_part_size_total_parts_expiry_and_absolute_endpoints() -> TestResult
{
    let bed = start(SettingsPatch {
        box_min_session_size: Some(1),
        box_part_size: Some(3000),
        ..Default::default()
    })
    .await;
    let s = bed.session("f.bin", 10_001).await;
    assert_eq!(s["type"], "upload_session");
    assert_eq!(s["part_size"], 3000);
    assert_eq!(s["total_parts"], 4);
    assert_eq!(s["num_parts_processed"], 0);
    let id = s["id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 32);
    let expires = s["session_expires_at"].as_str().unwrap_or_default();
    assert!(
        expires.ends_with("+00:00") && expires.len() == 25,
        "{expires}"
    );
    let base = format!("{}/box/2.0/files/upload_sessions/{id}", bed.tb.url());
    let ep = &s["session_endpoints"];
    assert_eq!(ep["upload_part"], base);
    assert_eq!(ep["status"], base);
    assert_eq!(ep["abort"], base);
    assert_eq!(ep["list_parts"], format!("{base}/parts"));
    assert_eq!(ep["commit"], format!("{base}/commit"));
    // The default part size is Box's 8 MiB.
    let bed = start(SettingsPatch {
        box_min_session_size: Some(1),
        ..Default::default()
    })
    .await;
    assert_eq!(bed.session("g.bin", 10).await["part_size"], 8_388_608);
    Ok(())
}

/// Every session call on `id` answers 404 `not_found`.
async fn all_session_calls_are_404(bed: &Bed, id: &str) -> TestResult {
    let calls = [
        bed.get(&format!("/files/upload_sessions/{id}")).await,
        bed.get(&format!("/files/upload_sessions/{id}/parts")).await,
        bed.put_part(id, b"x", 0, 10).await,
        bed.commit(id, &[], &sha1_b64(b"x")).await,
        bed.req(Method::DELETE, &format!("/files/upload_sessions/{id}"))
            .send()
            .await?,
    ];
    for resp in calls {
        let (status, code, body) = answer(resp).await;
        assert_eq!((status, code.as_str()), (404, "not_found"), "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn rule4_and_15_abort_is_204_then_session_is_gone() -> TestResult {
    let bed = start(small()).await;
    let s = bed.session("a.bin", 2048).await;
    let id = s["id"].as_str().unwrap_or_default();
    let (status, _, _) = answer(bed.put_part(id, &content(1024), 0, 2048).await).await;
    assert_eq!(status, 200);
    let resp = bed
        .req(Method::DELETE, &format!("/files/upload_sessions/{id}"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    assert!(resp.bytes().await?.is_empty());
    all_session_calls_are_404(&bed, id).await?;
    assert_eq!(bed.tb.stats().sessions_open, 0);
    Ok(())
}

#[tokio::test]
async fn rule4_after_commit_session_is_gone() -> TestResult {
    let bed = start(small()).await;
    let data = content(1500);
    let s = bed.session("c.bin", data.len() as u64).await;
    let parts = bed.upload_all(&s, &data).await;
    let id = s["id"].as_str().unwrap_or_default();
    assert_eq!(
        bed.commit(id, &parts, &sha1_b64(&data))
            .await
            .status()
            .as_u16(),
        201
    );
    all_session_calls_are_404(&bed, id).await
}

#[tokio::test]
async fn rule4_expired_session_is_gone_and_its_parts_freed() -> TestResult {
    let bed = start(small()).await;
    let s = bed.session("e.bin", 2048).await;
    let id = s["id"].as_str().unwrap_or_default();
    let (status, _, _) = answer(bed.put_part(id, &content(1024), 0, 2048).await).await;
    assert_eq!(status, 200);
    assert_eq!(bed.tb.stats().sessions_open, 1);
    // Lowering the ttl expires open sessions: no sleeping needed.
    bed.tb.update_settings(SettingsPatch {
        session_ttl_s: Some(0),
        ..Default::default()
    });
    assert_eq!(bed.tb.stats().sessions_open, 0);
    all_session_calls_are_404(&bed, id).await?;
    let parts_dir = bed.tb.store_dir().join("sessions/box").join(id);
    assert!(
        !parts_dir.exists(),
        "expired session's parts must be removed"
    );
    Ok(())
}

#[tokio::test]
async fn new_version_session_targets_an_existing_file() -> TestResult {
    let bed = start(small()).await;
    let first = bed.chunked_upload("v.bin", &content(2000)).await;
    let id = first["id"].as_str().unwrap_or_default();
    let resp = bed
        .req(Method::POST, &format!("/files/{id}/upload_sessions"))
        .json(&json!({"file_size": 3000}))
        .send()
        .await?;
    let (status, _, s) = answer(resp).await;
    assert_eq!(status, 201, "{s}");
    let data = content(3000);
    let parts = bed.upload_all(&s, &data).await;
    let resp = bed
        .commit(
            s["id"].as_str().unwrap_or_default(),
            &parts,
            &sha1_b64(&data),
        )
        .await;
    let (status, _, body) = answer(resp).await;
    assert_eq!(status, 201, "{body}");
    let file = &body["entries"][0];
    assert_eq!(file["id"], first["id"]);
    assert_eq!(file["etag"], "1");
    assert_eq!(file["size"], 3000);
    assert_eq!(bed.tb.object_bytes("box", "v.bin")?, data);
    // Unknown file → 404.
    let resp = bed
        .req(Method::POST, "/files/424242/upload_sessions")
        .json(&json!({"file_size": 3000}))
        .send()
        .await?;
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    Ok(())
}
