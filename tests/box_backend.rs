//! Box-specific behaviour the generic suite cannot stage: folders deleted on the
//! service while the daemon has their ids cached, and finding a file by name in a
//! folder of thousands. The real binary or the real backend against the testbed's
//! Box emulator, on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dropship::backend::{Backend, BackendConfig, FileDigests, FileSpec, Meter, PartBody};
use dropship::digest::{DigestKind, digest_of};
use dropship_testbed::{DEFAULT_SECRET, Options, Testbed};

use common::Env;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn start_testbed(rt: &tokio::runtime::Runtime, store: &std::path::Path) -> Testbed {
    rt.block_on(Testbed::start(Options::loopback(store)))
        .expect("testbed")
}

fn box_config(tb: &Testbed, token_file: &str) -> String {
    let base = tb.emulator_url("box");
    format!(
        "type = \"box\"\napi_url = \"{base}\"\nupload_url = \"{base}\"\ntoken_file = \"{token_file}\"\nfolder_id = \"0\""
    )
}

/// The id of the folder `name` in the root, through Box's API.
fn folder_id(rt: &tokio::runtime::Runtime, tb: &Testbed, name: &str) -> String {
    let url = format!("{}/2.0/folders/0/items", tb.emulator_url("box"));
    let items: serde_json::Value = rt
        .block_on(async {
            reqwest::Client::new()
                .get(&url)
                .bearer_auth(DEFAULT_SECRET)
                .send()
                .await?
                .json()
                .await
        })
        .expect("list the root");
    items["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|i| i["name"] == name))
        .and_then(|i| i["id"].as_str())
        .expect("the folder")
        .to_string()
}

#[test]
fn a_folder_deleted_on_the_service_is_made_again_for_the_next_file() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start_testbed(&rt, store.path());
    let env = Env::new("300ms", "", &box_config(&tb, "token"), "");
    std::fs::write(env.dir.path().join("token"), DEFAULT_SECRET).expect("token");
    let _d = env.spawn_ready();
    env.drop_file("site/cam/first.jpg", b"first");
    env.wait_state("site/cam/first.jpg", "done", Duration::from_secs(30));
    // Someone deletes the folder on the service; the daemon still has its id cached.
    let id = folder_id(&rt, &tb, "site");
    let url = format!("{}/2.0/folders/{id}?recursive=true", tb.emulator_url("box"));
    let deleted = rt
        .block_on(
            reqwest::Client::new()
                .delete(&url)
                .bearer_auth(DEFAULT_SECRET)
                .send(),
        )
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    env.drop_file("site/cam/second.jpg", b"second");
    let row = env.wait_state("site/cam/second.jpg", "done", Duration::from_secs(30));
    assert_eq!(row["attempts"], 1, "{row}");
    assert_eq!(
        tb.object_bytes("box", "site/cam/second.jpg")
            .expect("stored"),
        b"second"
    );
}

#[test]
fn a_file_is_found_by_name_in_one_request_per_folder() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start_testbed(&rt, store.path());
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("token"), DEFAULT_SECRET).expect("token");
    let cfg: BackendConfig = toml::from_str(&box_config(
        &tb,
        &dir.path().join("token").display().to_string(),
    ))
    .expect("config");
    let backend: Arc<dyn Backend> = cfg.build(Default::default()).expect("backend");
    // A folder of more items than two pages of a folder listing.
    const FILES: usize = 2100;
    rt.block_on(async {
        for i in 0..FILES {
            let data = Bytes::from(format!("file {i}"));
            let digests = FileDigests {
                object: Some(digest_of(DigestKind::Sha1, &data)),
                part: None,
            };
            let spec = FileSpec {
                key: format!("many/f{i:04}.txt"),
                size: data.len() as u64,
                mtime: 0,
                content_type: None,
            };
            backend
                .put_single(&spec, PartBody::new(data, Meter::new(None)), &digests)
                .await
                .expect("upload");
        }
    });
    let before = tb.stats().requests;
    let last = format!("many/f{:04}.txt", FILES - 1);
    let stat = rt
        .block_on(backend.stat(&last, None))
        .expect("stat")
        .expect("found");
    let requests = tb.stats().requests - before;
    assert_eq!(stat.size, format!("file {}", FILES - 1).len() as u64);
    assert_eq!(
        stat.digest,
        Some(digest_of(
            DigestKind::Sha1,
            format!("file {}", FILES - 1).as_bytes()
        ))
    );
    println!("figure: a file among {FILES} found by name in {requests} requests");
    // One preflight per path component, then the file's metadata.
    assert_eq!(requests, 3, "{requests} requests to find {last}");
    assert!(
        rt.block_on(backend.stat("many/absent.txt", None))
            .expect("stat")
            .is_none()
    );
}
