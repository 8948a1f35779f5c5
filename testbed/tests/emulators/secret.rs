//! The run-time secret: `PUT /_testbed/secret` and `Testbed::set_secret`.

use serde_json::Value;

use crate::support::*;

/// Status of `GET /folders/0` presenting `token`.
async fn folder_status(bed: &Bed, token: &str) -> u16 {
    bed.http
        .get(bed.url("/folders/0"))
        .bearer_auth(token)
        .send()
        .await
        .expect("folder request")
        .status()
        .as_u16()
}

/// `PUT /_testbed/secret` with `body`; status and JSON body (Null if none).
async fn put_secret(bed: &Bed, body: &'static str) -> (u16, Value) {
    let resp = bed
        .http
        .put(format!("{}/_testbed/secret", bed.tb.url()))
        .body(body)
        .send()
        .await
        .expect("secret request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn secret_changed_over_http_applies_to_the_next_request_and_can_be_restored() -> TestResult {
    let bed = start(small()).await;
    assert_eq!(folder_status(&bed, TOKEN).await, 200);

    // Surrounding whitespace (a trailing newline from `echo`, say) is not part of it.
    assert_eq!(put_secret(&bed, "  rotated-secret\n").await.0, 204);
    assert_eq!(folder_status(&bed, TOKEN).await, 401, "the old token");
    assert_eq!(folder_status(&bed, "rotated-secret").await, 200);
    // A request with a body is refused too (and its body read, so the 401 arrives).
    let (status, _, _) = answer(bed.put_part("NOSUCHSESSION", &content(5000), 0, 5000).await).await;
    assert_eq!(status, 401);

    for empty in ["", " \r\n\t "] {
        let (status, body) = put_secret(&bed, empty).await;
        assert_eq!(status, 400, "{empty:?}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = put_secret(&bed, "no\u{1}control").await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(
        folder_status(&bed, "rotated-secret").await,
        200,
        "refused secrets change nothing"
    );

    assert_eq!(put_secret(&bed, TOKEN).await.0, 204);
    assert_eq!(folder_status(&bed, TOKEN).await, 200, "restored");
    assert_eq!(folder_status(&bed, "rotated-secret").await, 401);
    // The secret cannot be read back.
    let resp = bed
        .http
        .get(format!("{}/_testbed/secret", bed.tb.url()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 405);
    Ok(())
}

#[tokio::test]
async fn secret_changed_in_process_applies_to_the_next_request() -> TestResult {
    let bed = start(small()).await;
    bed.tb.set_secret(" in-process secret ");
    assert_eq!(folder_status(&bed, TOKEN).await, 401);
    assert_eq!(folder_status(&bed, "in-process secret").await, 200);
    bed.tb.set_secret(dropship_testbed::DEFAULT_SECRET);
    assert_eq!(folder_status(&bed, TOKEN).await, 200);
    Ok(())
}

#[tokio::test]
#[should_panic(expected = "must not be empty")]
async fn an_empty_secret_in_process_is_a_test_bug() {
    let bed = start(small()).await;
    bed.tb.set_secret("  ");
}
