//! Exosite rule 12: list, info and download in both shapes (`/onep:v1/content` and the
//! older `/provision/download`), ranged downloads; rule 13: 502/503/504 and 429.

use dropship_testbed::SettingsPatch;
use reqwest::Method;

use crate::exosite_client::*;
use crate::support::*;

const PAIR: &str = "vendor=testbed&model=testbed";

async fn get(bed: &Bed, path: &str, range: Option<&str>) -> Answer {
    let mut req = bed.ex(Method::GET, path);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    bed.ex_send(req).await
}

/// Two contents, `a.txt` (one range) and `b.bin` (single upload).
async fn two_contents(bed: &Bed) -> (Vec<u8>, Vec<u8>) {
    let a = content(1500);
    bed.ex_upload("a.txt", &a, 1024, "text/plain").await;
    let b = content(300);
    let r = bed
        .ex(Method::POST, "/onep:v1/content/b.bin")
        .header("Content-Type", "application/x-b")
        .body(b.clone());
    assert_eq!(bed.ex_send(r).await.status, 204);
    (a, b)
}

/// `<type>,<size>,<updated>,<meta>` split into its four fields.
fn fields(line: &str) -> Vec<String> {
    let f: Vec<String> = line.split(',').map(str::to_string).collect();
    assert_eq!(f.len(), 4, "four fields in {line:?}");
    f
}

#[tokio::test]
async fn rule12_onep_list_info_and_download() -> TestResult {
    let bed = start(ex_small()).await;
    let empty = get(&bed, "/onep:v1/content/", None).await;
    assert_eq!((empty.status, empty.body.as_str()), (200, ""));
    let (a, b) = two_contents(&bed).await;
    for path in ["/onep:v1/content/", "/onep:v1/content"] {
        let list = get(&bed, path, None).await;
        assert_eq!(list.status, 200);
        assert!(
            list.header("content-type")
                .is_some_and(|t| t.starts_with("text/plain"))
        );
        assert_eq!(list.body, "a.txt\nb.bin");
    }

    let info = bed.ex_info("a.txt").await;
    assert_eq!(info.status, 200);
    assert!(
        info.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    let f = fields(&info.body);
    assert_eq!(
        (f[0].as_str(), f[1].as_str(), f[3].as_str()),
        ("text/plain", "1500", "")
    );
    let updated: u64 = f[2].parse()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert!(
        updated <= now && now - updated < 60,
        "Unix seconds: {updated}"
    );
    assert_eq!(
        fields(&bed.ex_info("b.bin").await.body)[..2],
        ["application/x-b", "300"]
    );
    bed.ex_info("nope").await.assert_error(404);

    let whole = get(&bed, "/onep:v1/content/a.txt", None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.bytes, &a[..]);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("text/plain"));
    assert_eq!(whole.header("content-length"), Some("1500"));
    let head = bed
        .ex_send(bed.ex(Method::HEAD, "/onep:v1/content/b.bin"))
        .await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("300"))
    );
    assert_eq!(get(&bed, "/onep:v1/content/b.bin", None).await.bytes, b);
    get(&bed, "/onep:v1/content/nope", None)
        .await
        .assert_error(404);
    Ok(())
}

#[tokio::test]
async fn rule12_ranged_downloads_206_and_416() -> TestResult {
    let bed = start(ex_small()).await;
    let (a, _) = two_contents(&bed).await;
    for path in [
        "/onep:v1/content/a.txt".to_string(),
        format!("/provision/download?{PAIR}&id=a.txt"),
    ] {
        for (range, first, last) in [
            ("bytes=0-99", 0usize, 99usize),
            ("bytes=1400-", 1400, 1499),
            ("bytes=-10", 1490, 1499),
            ("bytes=1000-5000", 1000, 1499),
        ] {
            let r = get(&bed, &path, Some(range)).await;
            assert_eq!(r.status, 206, "{path} {range}");
            assert_eq!(r.bytes, &a[first..=last], "{path} {range}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {first}-{last}/1500").as_str())
            );
        }
        for bad in [
            "bytes=1500-",
            "bytes=-0",
            "bytes=5-2",
            "bytes=0-1,5-6",
            "lines=1-2",
        ] {
            let r = get(&bed, &path, Some(bad)).await;
            r.assert_error(416);
            assert_eq!(r.header("content-range"), Some("bytes */1500"), "{bad}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn rule12_provision_download_list_info_and_download() -> TestResult {
    let bed = start(ex_small()).await;
    let (a, b) = two_contents(&bed).await;
    let list = get(&bed, &format!("/provision/download?{PAIR}"), None).await;
    assert_eq!(list.status, 200);
    assert!(
        list.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    assert_eq!(list.body, "a.txt\nb.bin");

    let info = get(
        &bed,
        &format!("/provision/download?{PAIR}&id=b.bin&info=true"),
        None,
    )
    .await;
    assert_eq!(info.status, 200);
    assert!(
        info.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    assert_eq!(fields(&info.body)[..2], ["application/x-b", "300"]);
    assert_eq!(
        info.body,
        bed.ex_info("b.bin").await.body,
        "one info line, two routes"
    );

    let dl = get(&bed, &format!("/provision/download?{PAIR}&id=a.txt"), None).await;
    assert_eq!(
        (dl.status, dl.header("accept-ranges")),
        (200, Some("bytes"))
    );
    assert_eq!(dl.bytes, &a[..]);
    assert_eq!(dl.header("content-type"), Some("text/plain"));
    let dl = get(&bed, &format!("/provision/download?{PAIR}&id=b.bin"), None).await;
    assert_eq!(dl.bytes, &b[..]);
    get(&bed, &format!("/provision/download?{PAIR}&id=nope"), None)
        .await
        .assert_error(404);
    get(
        &bed,
        &format!("/provision/download?{PAIR}&id=nope&info=true"),
        None,
    )
    .await
    .assert_error(404);

    // A bad vendor/model pair: 403 for the list and the download, 400 for the info.
    for pair in [
        "vendor=x&model=testbed",
        "vendor=testbed&model=x",
        "vendor=testbed",
        "",
    ] {
        let base = format!("/provision/download?{pair}");
        get(&bed, &base, None).await.assert_error(403);
        get(&bed, &format!("{base}&id=a.txt"), None)
            .await
            .assert_error(403);
        get(&bed, &format!("{base}&id=a.txt&info=true"), None)
            .await
            .assert_error(400);
    }
    // The knobs name the pair.
    bed.tb.update_settings(SettingsPatch {
        exosite_vendor: Some("acme".into()),
        exosite_model: Some("m1".into()),
        ..Default::default()
    });
    get(&bed, &format!("/provision/download?{PAIR}"), None)
        .await
        .assert_error(403);
    let list = get(&bed, "/provision/download?vendor=acme&model=m1", None).await;
    assert_eq!(list.body, "a.txt\nb.bin");
    Ok(())
}

#[tokio::test]
async fn info_of_an_upload_in_progress_is_404_or_its_progress() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(3000);
    assert_eq!(
        bed.ex_initiate("p.bin", 3000, "video/mp4").await.status,
        204
    );
    assert_eq!(
        bed.ex_patch("p.bin", &data[..1024], 0, 3000).await.status,
        204
    );
    bed.ex_info("p.bin").await.assert_error(404);

    bed.tb.update_settings(SettingsPatch {
        exosite_info_progress: Some(true),
        ..Default::default()
    });
    for path in [
        "/onep:v1/content/p.bin?info=true".to_string(),
        format!("/provision/download?{PAIR}&id=p.bin&info=true"),
    ] {
        let info = get(&bed, &path, None).await;
        assert_eq!(info.status, 200, "{}", info.body);
        let f = fields(&info.body);
        assert_eq!(
            (f[0].as_str(), f[1].as_str(), f[3].as_str()),
            ("video/mp4", "1024", "uploading")
        );
    }
    // Still not listed nor downloadable.
    assert_eq!(get(&bed, "/onep:v1/content/", None).await.body, "");
    get(&bed, "/onep:v1/content/p.bin", None)
        .await
        .assert_error(404);
    assert_eq!(
        bed.ex_patch("p.bin", &data[1024..2048], 1024, 3000)
            .await
            .status,
        204
    );
    assert_eq!(fields(&bed.ex_info("p.bin").await.body)[1], "2048");
    assert_eq!(
        bed.ex_patch("p.bin", &data[2048..], 2048, 3000)
            .await
            .status,
        204
    );
    // Complete: the content's own line, with an empty meta.
    let f = fields(&bed.ex_info("p.bin").await.body);
    assert_eq!((f[1].as_str(), f[3].as_str()), ("3000", ""));
    Ok(())
}

#[tokio::test]
async fn rule13_gateway_errors_alternate_502_and_504() -> TestResult {
    let bed = start(SettingsPatch {
        exosite_gateway_error_rate: Some(1.0),
        ..ex_small()
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        // No credential at all: the gateway answers before auth.
        let a = bed
            .ex_send(
                bed.http
                    .post(bed.ex_url("/onep:v1/content/"))
                    .body(r#"{"id": "g", "length": 1, "type": "text/plain"}"#),
            )
            .await;
        a.assert_error(a.status);
        seen.push(a.status);
    }
    assert_eq!(seen, [502, 504, 502, 504]);
    let stats = bed.tb.stats();
    assert_eq!(stats.faults.gateway_errors, 4);
    assert_eq!(stats.faults_injected, 4);
    assert_eq!(stats.sessions_open, 0, "nothing of them was kept");

    bed.tb.update_settings(SettingsPatch {
        exosite_gateway_error_rate: Some(0.0),
        ..Default::default()
    });
    assert_eq!(bed.ex_initiate("g", 1, "text/plain").await.status, 204);
    Ok(())
}

#[tokio::test]
async fn rule13_injected_503_and_429_are_plain_text_with_retry_after() -> TestResult {
    let bed = start(SettingsPatch {
        fail_rate: Some(1.0),
        ..ex_small()
    })
    .await;
    let a = bed.ex_initiate("x", 10, "text/plain").await;
    a.assert_error(503);
    assert_eq!(a.header("retry-after"), Some("1"));
    bed.tb.update_settings(SettingsPatch {
        fail_rate: Some(0.0),
        rate_limit_rate: Some(1.0),
        ..Default::default()
    });
    let a = bed.ex_patch("x", b"abc", 0, 3).await;
    a.assert_error(429);
    assert_eq!(a.header("retry-after"), Some("1"));
    assert_eq!(bed.tb.stats().sessions_open, 0);
    Ok(())
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_plain_text() -> TestResult {
    let bed = start(ex_small()).await;
    bed.ex_send(bed.ex(Method::GET, "/onep:v1/nothing"))
        .await
        .assert_error(404);
    bed.ex_send(bed.ex(Method::DELETE, "/onep:v1/content/x").body("ignored"))
        .await
        .assert_error(405);
    bed.ex_send(bed.ex(Method::PATCH, "/onep:v1/content/"))
        .await
        .assert_error(405);
    Ok(())
}
