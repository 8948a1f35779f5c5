//! The `/_testbed` control endpoints.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn faults_endpoint_reads_and_patches_settings() -> TestResult {
    let bed = start(small()).await;
    let url = format!("{}/_testbed/faults", bed.tb.url());
    let now: Value = bed.http.get(&url).send().await?.json().await?;
    assert_eq!(now["box_part_size"], 1024);
    assert_eq!(now["session_ttl_s"], 604_800);
    assert_eq!(now["fail_rate"], 0.0);

    let resp = bed
        .http
        .put(&url)
        .json(&json!({"latency_ms": 5, "box_commit_202": 1}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let new: Value = resp.json().await?;
    assert_eq!(new["latency_ms"], 5);
    assert_eq!(new["box_commit_202"], 1);
    assert_eq!(new["box_part_size"], 1024, "the full settings come back");
    assert_eq!(bed.tb.settings().latency_ms, 5);

    for bad in [
        json!({"fail_rate": 2}),
        json!({"fail_rat": 0.1}),
        json!({"latency_ms": "x"}),
    ] {
        let resp = bed.http.put(&url).json(&bad).send().await?;
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
    }
    assert_eq!(
        bed.tb.settings().fail_rate,
        0.0,
        "refused patches change nothing"
    );
    Ok(())
}

#[tokio::test]
async fn stats_and_objects_endpoints() -> TestResult {
    let bed = start(small()).await;
    let data = content(10);
    assert_eq!(
        answer(bed.direct_new("0", "o.txt", &data).await).await.0,
        201
    );
    let stats: Value = bed
        .http
        .get(format!("{}/_testbed/stats", bed.tb.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["objects"], 1);
    assert!(stats["bytes_received"].as_u64() > Some(10));
    assert_eq!(stats["emulators"]["box"]["objects"], 1);
    assert_eq!(serde_json::to_value(bed.tb.stats())?, stats);

    let objects: Value = bed
        .http
        .get(format!("{}/_testbed/objects", bed.tb.url()))
        .send()
        .await?
        .json()
        .await?;
    let o = &objects[0];
    assert_eq!(o["emulator"], "box");
    assert_eq!(o["path"], "o.txt");
    assert_eq!(o["size"], 10);
    assert_eq!(o["sha1"], sha1_hex(&data));
    assert_eq!(o["sha256"].as_str().map(str::len), Some(64));
    assert!(o["id"].is_string());

    let raw = bed
        .http
        .get(format!("{}/_testbed/objects/box/o.txt", bed.tb.url()))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(raw.as_ref(), data.as_slice());
    Ok(())
}

#[tokio::test]
async fn testbed_handle_is_shareable_and_knows_its_urls() -> TestResult {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    let bed = start(small()).await;
    shareable(&bed.tb);
    let url = bed.tb.url();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with('/'));
    assert_eq!(bed.tb.emulator_url("box"), format!("{url}/box"));
    assert_eq!(url, format!("http://{}", bed.tb.addr()));
    Ok(())
}

#[tokio::test]
async fn non_loopback_listen_addresses_are_refused() -> TestResult {
    let store = tempfile::tempdir()?;
    let mut opts = dropship_testbed::Options::loopback(store.path());
    opts.listen = "0.0.0.0:0".parse()?;
    assert!(dropship_testbed::Testbed::start(opts).await.is_err());
    Ok(())
}
