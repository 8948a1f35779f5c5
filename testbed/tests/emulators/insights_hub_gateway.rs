//! Insights Hub rule 5: a request running past the gateway timeout gets 502 and
//! leaves nothing behind.

use std::time::{Duration, Instant};

use dropship_testbed::SettingsPatch;

use crate::insights_hub_client::*;
use crate::support::*;

/// 300 ms gateway, 16 KiB/s bodies: a 32 KiB body needs about 2 s.
fn slow() -> SettingsPatch {
    SettingsPatch {
        ih_gateway_timeout_ms: Some(300),
        throttle_bps: Some(16 * 1024),
        ..ih_small()
    }
}

fn unlimited() -> SettingsPatch {
    SettingsPatch {
        throttle_bps: Some(0),
        ..Default::default()
    }
}

#[tokio::test]
async fn rule5_a_slow_single_upload_gets_502_and_is_not_stored() -> TestResult {
    let bed = start(slow()).await;
    let began = Instant::now();
    let a = bed.ih_put("slow.bin", "", &content(32 * 1024), &[]).await;
    let took = began.elapsed();
    a.assert_error(502);
    assert!(
        took < Duration::from_millis(1500),
        "answered at the timeout: {took:?}"
    );
    assert!(bed.tb.objects().is_empty());
    assert_eq!(
        std::fs::read_dir(bed.tb.store_dir().join("tmp"))?.count(),
        0
    );
    // Within the limit, the same upload goes through.
    bed.tb.update_settings(unlimited());
    let ok = bed.ih_put("slow.bin", "", &content(32 * 1024), &[]).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    Ok(())
}

#[tokio::test]
async fn rule5_a_slow_part_gets_502_and_is_not_stored() -> TestResult {
    let bed = start(slow()).await;
    assert_eq!(
        bed.ih_put("p.bin", "?upload=start", b"", &[]).await.status,
        200
    );
    let a = bed
        .ih_put("p.bin", "?part=1", &content(32 * 1024), &[])
        .await;
    a.assert_error(502);
    bed.tb.update_settings(unlimited());
    assert!(
        bed.ih_fileslist("p.bin").await.is_empty(),
        "the part is not kept"
    );
    assert_eq!(bed.tb.stats().sessions_open, 1, "the upload itself goes on");
    let ok = bed
        .ih_put("p.bin", "?part=1", &content(32 * 1024), &[])
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(bed.ih_fileslist("p.bin").await.len(), 1);
    Ok(())
}
