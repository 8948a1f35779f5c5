//! Box's preflight check: `OPTIONS /2.0/files/content`.

use dropship_testbed::SettingsPatch;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// The preflight check with a JSON body.
async fn preflight(bed: &Bed, body: &Value) -> (u16, String, Value) {
    let resp = bed
        .req(Method::OPTIONS, "/files/content")
        .json(body)
        .send()
        .await
        .expect("preflight request");
    answer(resp).await
}

fn check(name: &str, parent: &str) -> Value {
    json!({"name": name, "parent": {"id": parent}})
}

#[tokio::test]
async fn a_free_name_gets_the_upload_url_which_then_takes_the_upload() -> TestResult {
    let bed = start(small()).await;
    let (status, _, body) = preflight(&bed, &check("new.txt", "0")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upload_url"], bed.url("/files/content"));
    assert!(body["upload_token"].is_null(), "{body}");
    let with_size = json!({"name": "new.txt", "parent": {"id": "0"}, "size": 123_456_789});
    assert_eq!(preflight(&bed, &with_size).await.0, 200);

    // The URL is where a direct upload goes; nothing was reserved by the check.
    assert!(bed.tb.objects().is_empty());
    let url = body["upload_url"].as_str().unwrap_or_default();
    let attrs = json!({"name": "new.txt", "parent": {"id": "0"}}).to_string();
    let form = format!(
        "--b\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attrs}\r\n\
         --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nhello\r\n--b--\r\n"
    );
    let resp = bed
        .http
        .post(url)
        .bearer_auth(TOKEN)
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body(form)
        .send()
        .await?;
    assert_eq!(answer(resp).await.0, 201);
    Ok(())
}

#[tokio::test]
async fn a_name_taken_by_a_file_is_409_with_that_file() -> TestResult {
    let bed = start(small()).await;
    let (_, _, up) = answer(bed.direct_new("0", "Report.PDF", b"v1").await).await;
    let file = &up["entries"][0];
    // Names clash case-insensitively.
    let (status, code, err) = preflight(&bed, &check("report.pdf", "0")).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"), "{err}");
    let conflict = &err["context_info"]["conflicts"];
    assert!(conflict.is_object(), "one item, as for uploads: {err}");
    assert_eq!(conflict["type"], "file");
    assert_eq!(conflict["id"], file["id"]);
    assert_eq!(conflict["name"], "Report.PDF");
    assert_eq!(conflict["sha1"], sha1_hex(b"v1"));
    assert_eq!(conflict["etag"], "0");
    assert_eq!(err["type"], "error");
    Ok(())
}

#[tokio::test]
async fn a_name_taken_by_a_folder_is_409_with_that_folder() -> TestResult {
    let bed = start(small()).await;
    let (_, _, a) = answer(bed.mkdir("0", "Photos").await).await;
    let (status, code, err) = preflight(&bed, &check("PHOTOS", "0")).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"), "{err}");
    let conflict = &err["context_info"]["conflicts"];
    assert_eq!(conflict["type"], "folder");
    assert_eq!(conflict["id"], a["id"]);
    assert_eq!(conflict["name"], "Photos");
    // Names are per folder: the same name inside it is free.
    let a_id = a["id"].as_str().unwrap_or_default();
    assert_eq!(preflight(&bed, &check("Photos", a_id)).await.0, 200);
    Ok(())
}

#[tokio::test]
async fn a_missing_folder_is_404() -> TestResult {
    let bed = start(small()).await;
    let (status, code, _) = preflight(&bed, &check("x", "424242")).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    // A file's id is not a folder.
    let (_, _, up) = answer(bed.direct_new("0", "f", b"x").await).await;
    let file_id = up["entries"][0]["id"].as_str().unwrap_or_default();
    let (status, code, _) = preflight(&bed, &check("x", file_id)).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    Ok(())
}

#[tokio::test]
async fn invalid_names_are_400_item_name_invalid() -> TestResult {
    let bed = start(small()).await;
    for name in ["", "a/b", "a\\b", ".", "..", " lead", "trail "] {
        let (status, code, body) = preflight(&bed, &check(name, "0")).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "item_name_invalid"),
            "{name:?}: {body}"
        );
    }
    let long = "x".repeat(256);
    assert_eq!(
        preflight(&bed, &check(&long, "0")).await.1,
        "item_name_invalid"
    );
    let not_text = json!({"name": 5, "parent": {"id": "0"}});
    assert_eq!(preflight(&bed, &not_text).await.1, "item_name_invalid");
    Ok(())
}

#[tokio::test]
async fn missing_or_malformed_bodies_are_400_bad_request() -> TestResult {
    let bed = start(small()).await;
    let bodies = [
        json!({}),
        json!({"parent": {"id": "0"}}),
        json!({"name": "x"}),
        json!({"name": "x", "parent": {}}),
        json!({"name": "x", "parent": "0"}),
        json!({"name": "x", "parent": {"id": "0"}, "size": -1}),
        json!({"name": "x", "parent": {"id": "0"}, "size": "big"}),
        json!(["name", "x"]),
    ];
    for body in bodies {
        let (status, code, answer) = preflight(&bed, &body).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "bad_request"),
            "{body}: {answer}"
        );
    }
    let raw = [
        bed.req(Method::OPTIONS, "/files/content").send().await?,
        bed.req(Method::OPTIONS, "/files/content")
            .body("not json")
            .send()
            .await?,
    ];
    for resp in raw {
        let (status, code, _) = answer(resp).await;
        assert_eq!((status, code.as_str()), (400, "bad_request"));
    }
    Ok(())
}

#[tokio::test]
async fn preflight_goes_through_auth_and_faults_like_every_box_route() -> TestResult {
    let bed = start(small()).await;
    let resp = bed
        .http
        .request(Method::OPTIONS, bed.url("/files/content"))
        .json(&check("x", "0"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let resp = bed
        .http
        .request(Method::OPTIONS, bed.url("/files/content"))
        .bearer_auth("wrong")
        .json(&check("x", "0"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);

    bed.tb.update_settings(SettingsPatch {
        fail_rate: Some(1.0),
        ..Default::default()
    });
    let (status, code, _) = preflight(&bed, &check("x", "0")).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert_eq!(bed.tb.stats().faults.failed, 1);
    Ok(())
}
