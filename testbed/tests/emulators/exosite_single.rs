//! Exosite rule 3: content in one request, `POST` or `PUT /onep:v1/content/{id}`.

use dropship_testbed::SettingsPatch;
use reqwest::Method;

use crate::exosite_client::*;
use crate::support::*;

async fn single(
    bed: &Bed,
    method: Method,
    id: &str,
    data: &[u8],
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = bed
        .ex(method, &format!("/onep:v1/content/{id}"))
        .body(data.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    bed.ex_send(req).await
}

#[tokio::test]
async fn rule3_post_or_put_stores_the_body_with_its_type() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(5000);
    let a = single(
        &bed,
        Method::POST,
        "log.txt",
        &data,
        &[("Content-Type", "text/plain")],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (204, ""));
    assert_eq!(bed.ex_stored("log.txt"), data);
    assert!(
        bed.ex_info("log.txt")
            .await
            .body
            .starts_with("text/plain,5000,")
    );
    assert_eq!(bed.tb.stats().sessions_open, 0, "no upload is left open");

    // PUT replaces it; no Content-Type means application/octet-stream.
    let v2 = content(10);
    let a = single(&bed, Method::PUT, "log.txt", &v2, &[]).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(bed.ex_stored("log.txt"), v2);
    let info = bed.ex_info("log.txt").await;
    assert!(
        info.body.starts_with("application/octet-stream,10,"),
        "{}",
        info.body
    );
    let dl = bed
        .ex_send(bed.ex(Method::GET, "/onep:v1/content/log.txt"))
        .await;
    assert_eq!(dl.header("content-type"), Some("application/octet-stream"));
    assert_eq!(bed.tb.objects().len(), 1);

    // An id with a space, percent-encoded in the URL.
    let a = single(&bed, Method::POST, "my%20file.bin", b"x", &[]).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(bed.ex_stored("my file.bin"), b"x");
    // `/` encoded in the segment is still not an id.
    single(&bed, Method::POST, "a%2Fb", b"x", &[])
        .await
        .assert_error(400);
    Ok(())
}

#[tokio::test]
async fn rule3_a_body_over_the_single_maximum_is_413() -> TestResult {
    let bed = start(SettingsPatch {
        exosite_single_max: Some(1000),
        ..ex_small()
    })
    .await;
    assert_eq!(bed.tb.settings().exosite_single_max, 1000);
    let a = single(&bed, Method::POST, "big", &content(1001), &[]).await;
    a.assert_error(413);
    assert!(bed.tb.objects().is_empty());
    assert_eq!(
        std::fs::read_dir(bed.tb.store_dir().join("tmp"))?.count(),
        0,
        "no staging file left"
    );
    let a = single(&bed, Method::PUT, "big", &content(1000), &[]).await;
    assert_eq!(a.status, 204, "exactly the maximum is fine: {}", a.body);
    Ok(())
}

#[tokio::test]
async fn rule3_the_default_maximum_is_100_mib() -> TestResult {
    let bed = start(ex_small()).await;
    assert_eq!(bed.tb.settings().exosite_single_max, 104_857_600);
    Ok(())
}

#[tokio::test]
async fn rule3_an_optional_md5_header_is_checked() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(3000);
    let good = md5_b64(&data);
    let a = single(&bed, Method::POST, "m", &data, &[("MD5", good.as_str())]).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let wrong = md5_b64(b"other");
    let bad = content(2999);
    single(&bed, Method::POST, "m", &bad, &[("MD5", wrong.as_str())])
        .await
        .assert_error(400);
    single(&bed, Method::POST, "m", &bad, &[("MD5", "zz")])
        .await
        .assert_error(400);
    assert_eq!(bed.ex_stored("m"), data, "nothing stored by the refusals");
    assert_eq!(bed.tb.stats().digest_mismatches, 1);
    Ok(())
}

#[tokio::test]
async fn rule3_corruption_applies_to_single_uploads_too() -> TestResult {
    let bed = start(SettingsPatch {
        corrupt_rate: Some(1.0),
        corrupt_offset: Some(3),
        ..ex_small()
    })
    .await;
    let data = content(100);
    assert_eq!(
        single(&bed, Method::POST, "c", &data, &[]).await.status,
        204
    );
    let mut want = data;
    want[3] ^= 0xff;
    assert_eq!(bed.ex_stored("c"), want);
    assert_eq!(bed.tb.stats().faults.corrupted, 1);
    Ok(())
}
