//! The whole chunked flow as a client runs it: create, parts in parallel, list,
//! commit, verify, download.

use std::sync::Arc;

use dropship_testbed::SettingsPatch;
use reqwest::Method;
use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_with_parallel_parts_round_trips() -> TestResult {
    let bed = Arc::new(
        start(SettingsPatch {
            box_min_session_size: Some(1),
            box_part_size: Some(64 * 1024),
            ..Default::default()
        })
        .await,
    );
    let (_, _, folder) = answer(bed.mkdir("0", "backups").await).await;
    let folder_id = folder["id"].as_str().unwrap_or_default().to_string();
    let data = Arc::new(content(64 * 1024 * 7 + 12_345));
    let (status, _, s) = answer(
        bed.create_session(&folder_id, "big.bin", data.len() as u64)
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(s["total_parts"], 8);
    let id = s["id"].as_str().unwrap_or_default().to_string();
    let part_size = s["part_size"].as_u64().unwrap_or(1) as usize;

    // Four in flight at a time, as Box recommends 3–5, highest offsets first for fun.
    let offsets: Vec<usize> = (0..data.len()).step_by(part_size).rev().collect();
    let mut parts: Vec<Value> = Vec::new();
    for batch in offsets.chunks(4) {
        let mut tasks = Vec::new();
        for &offset in batch {
            let (bed, data, id) = (bed.clone(), data.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                let chunk = &data[offset..(offset + part_size).min(data.len())];
                answer(
                    bed.put_part(&id, chunk, offset as u64, data.len() as u64)
                        .await,
                )
                .await
            }));
        }
        for t in tasks {
            let (status, _, body) = t.await?;
            assert_eq!(status, 200, "{body}");
            parts.push(body["part"].clone());
        }
    }

    // What a resuming client would do: trust the server's list.
    let (_, _, listed) = answer(
        bed.get(&format!("/files/upload_sessions/{id}/parts?limit=1000"))
            .await,
    )
    .await;
    assert_eq!(listed["total_count"], 8);
    parts.sort_by_key(|p| p["offset"].as_u64());
    assert_eq!(listed["entries"].as_array(), Some(&parts));

    let (status, _, committed) = answer(bed.commit(&id, &parts, &sha1_b64(&data)).await).await;
    assert_eq!(status, 201, "{committed}");
    let file = &committed["entries"][0];
    let file_id = file["id"].as_str().unwrap_or_default();

    let (_, _, info) = answer(bed.get(&format!("/files/{file_id}?fields=sha1,size")).await).await;
    assert_eq!(info["sha1"], sha1_hex(&data));
    assert_eq!(info["size"], data.len());
    let got = bed
        .req(Method::GET, &format!("/files/{file_id}/content"))
        .send()
        .await?
        .bytes()
        .await?;
    assert!(got.as_ref() == data.as_slice(), "download differs");
    assert!(bed.tb.object_bytes("box", "backups/big.bin")? == *data);

    let objects = bed.tb.objects();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].path, "backups/big.bin");
    assert_eq!(objects[0].sha1, sha1_hex(&data));
    assert_eq!(objects[0].id, file_id);
    let stats = bed.tb.stats();
    assert_eq!(stats.objects, 1);
    assert_eq!(stats.sessions_open, 0);
    assert!(stats.bytes_received >= data.len() as u64);
    // Parts and staging files are gone once committed.
    let store = bed.tb.store_dir();
    assert_eq!(std::fs::read_dir(store.join("tmp"))?.count(), 0);
    assert!(!store.join("sessions/box").join(&id).exists());
    Ok(())
}
