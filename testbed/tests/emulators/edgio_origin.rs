//! The delivery host, the rate limit and the generic faults (protocols/edgio.md
//! rules 12–14).

use dropship_testbed::SettingsPatch;

use crate::edgio_support::{ACCOUNT, Ed, agile, quiet, sha256_hex};
use crate::support::{TestResult, content};

#[tokio::test]
async fn rule12_head_and_ranged_get() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let data = content(1000);
    let a = ed
        .post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", &t),
                ("X-Agile-Basename", "f.txt"),
                ("X-Agile-Content-Type", "text/plain"),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(a.code, 0);
    let head = ed.head("f.txt").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), "1000");
    assert_eq!(head.header("x-agile-checksum"), sha256_hex(&data));
    assert_eq!(head.header("accept-ranges"), "bytes");
    assert_eq!(head.header("content-type"), "text/plain");
    assert!(head.header("last-modified").ends_with(" GMT"), "{head:?}");
    let url = ed.url(&format!("/origin/{ACCOUNT}/f.txt"));
    let resp = ed
        .bed
        .http
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(resp.bytes().await?.as_ref(), &data[10..20]);
    let resp = ed
        .bed
        .http
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */1000");
    assert_eq!(
        ed.bed.http.get(&url).send().await?.bytes().await?.as_ref(),
        data.as_slice()
    );
    // The seed's other form: the upload host, with the account.
    let ingest = agile(
        ed.bed
            .http
            .head(ed.url(&format!("/{ACCOUNT}/f.txt")))
            .send()
            .await?,
    )
    .await;
    assert_eq!(ingest.header("x-agile-checksum"), sha256_hex(&data));
    let other = agile(
        ed.bed
            .http
            .head(ed.url("/origin/someone/f.txt"))
            .send()
            .await?,
    )
    .await;
    assert_eq!(other.status, 404, "another account");
    assert_eq!(ed.head("none.txt").await.status, 404);
    Ok(())
}

#[tokio::test]
async fn rule13_more_requests_than_the_limit_get_429() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_rate_limit_rps: Some(2),
        ..Default::default()
    })
    .await;
    let mut pairs = Vec::new();
    for _ in 0..8 {
        let a = ed.post("/jsonrpc2", &[], b"{}".to_vec()).await;
        pairs.push(a.pair());
    }
    assert_eq!(pairs[0], (200, 0));
    let limited: Vec<_> = pairs.iter().filter(|p| p.0 == 429).collect();
    assert!(!limited.is_empty(), "{pairs:?}");
    assert!(limited.iter().all(|p| p.1 == -26), "{pairs:?}");
    // The delivery host is not limited.
    for _ in 0..5 {
        assert_eq!(ed.head("x").await.status, 404);
    }
    ed.set(SettingsPatch {
        edgio_rate_limit_rps: Some(0),
        ..Default::default()
    });
    for _ in 0..10 {
        assert_eq!(
            ed.post("/jsonrpc2", &[], b"{}".to_vec()).await.status,
            200,
            "0 = off"
        );
    }
    Ok(())
}

#[tokio::test]
async fn rule14_injected_refusals_carry_agile_status() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        fail_rate: Some(1.0),
        ..quiet()
    })
    .await;
    let a = ed.post("/account/login", &[], Vec::new()).await;
    assert_eq!(a.pair(), (503, -26));
    assert_eq!(a.header("retry-after"), "1");
    ed.set(SettingsPatch {
        fail_rate: Some(0.0),
        rate_limit_rate: Some(1.0),
        ..Default::default()
    });
    assert_eq!(
        ed.post("/post/raw", &[], b"x".to_vec()).await.pair(),
        (429, -26)
    );
    Ok(())
}

#[tokio::test]
async fn unknown_urls_and_methods() -> TestResult {
    let ed = Ed::start(quiet()).await;
    assert_eq!(ed.post("/nothing", &[], Vec::new()).await.pair(), (404, -7));
    let a = agile(ed.bed.http.get(ed.url("/post/raw")).send().await?).await;
    assert_eq!(a.pair(), (405, -7));
    Ok(())
}
