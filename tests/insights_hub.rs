//! Insights Hub behaviour the generic suite cannot stage: the last part riding on
//! `upload=complete` (and a crash just before it), verification that reads the
//! stored object back, name clashes with a file somebody else wrote, and the
//! gateway's one-minute limit. The real binary against the testbed's emulator, on
//! loopback.

mod common;

use std::time::Duration;

use dropship_testbed::{DEFAULT_SECRET, Settings, Testbed};

use common::{Env, random_bytes, runtime, start_testbed as start, wait_for};

const ENTITY: &str = "00189ab4c65243bb9d77f17332dd570a";
const MIB: usize = 1 << 20;

/// A daemon's environment against `tb`, writing into `uploads/` of the asset.
fn env(tb: &Testbed, upload: &str) -> Env {
    let backend = format!(
        "type = \"insights-hub\"\ngateway_url = \"{}\"\nentity_id = \"{ENTITY}\"\ntoken_file = \"ih-token\"\ndirectory = \"uploads\"",
        tb.emulator_url("insights-hub")
    );
    let env = Env::new("300ms", upload, &backend, "");
    std::fs::write(env.dir.path().join("ih-token"), DEFAULT_SECRET).expect("token");
    env
}

/// The daemon's own HTTP client set-up (it installs the TLS crypto provider).
fn http() -> reqwest::Client {
    dropship::backend::http::client(Default::default()).expect("client")
}

fn stored(tb: &Testbed, key: &str) -> Option<Vec<u8>> {
    tb.object_bytes("insights-hub", &format!("{ENTITY}/uploads/{key}"))
        .ok()
}

/// The search result of `key` as the service reports it (size, etag).
fn search(rt: &tokio::runtime::Runtime, tb: &Testbed, key: &str) -> serde_json::Value {
    let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
    let path = if dir.is_empty() {
        "uploads/".to_string()
    } else {
        format!("uploads/{dir}/")
    };
    let mut url = reqwest::Url::parse(&format!(
        "{}/api/iotfile/v3/files/{ENTITY}",
        tb.emulator_url("insights-hub")
    ))
    .expect("url");
    url.query_pairs_mut()
        .append_pair("filter", &format!("name eq {name} and path eq {path}"));
    let found: serde_json::Value = rt
        .block_on(async {
            http()
                .get(url)
                .bearer_auth(DEFAULT_SECRET)
                .send()
                .await?
                .json()
                .await
        })
        .expect("search");
    found[0].clone()
}

/// Somebody else's upload of `key`, straight through the service's API.
fn put_foreign(rt: &tokio::runtime::Runtime, tb: &Testbed, key: &str, data: &[u8]) {
    let url = format!(
        "{}/api/iotfile/v3/files/{ENTITY}/uploads/{key}",
        tb.emulator_url("insights-hub")
    );
    let status = rt
        .block_on(async {
            http()
                .put(&url)
                .bearer_auth(DEFAULT_SECRET)
                .body(data.to_vec())
                .send()
                .await
        })
        .expect("put")
        .status();
    assert_eq!(status.as_u16(), 201, "the foreign upload was refused");
}

/// A crash while the completion request carries the last part: the next start
/// reads only that last part from disk and sends only it (the numbered parts are
/// held by the service), then verifies by reading sampled ranges back.
///
/// The last part is far bigger than what socket buffers hold, so the dead daemon's
/// completion cannot finish on its buffered bytes: the crash really leaves the
/// upload between its last numbered part and its completion.
#[test]
fn a_crash_before_completion_rereads_and_resends_only_the_last_part() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start(
        &rt,
        store.path(),
        Settings {
            throttle_bps: 16 << 20,
            ..Settings::default()
        },
    );
    let env = env(&tb, "part_size = \"32MiB\"\nparts_in_flight = 2");
    let daemon = env.spawn_ready();
    let last = 28 * MIB;
    let size = 32 * MIB + last;
    let data = random_bytes(size, 71);
    env.drop_file("big.bin", &data);
    // The numbered part is acknowledged; the completion is on the (slow) wire.
    wait_for(Duration::from_secs(60), "the completion in flight", || {
        env.rows("big.bin")
            .pop()
            .filter(|r| r["state"] == "completing")
    });
    daemon.kill9();
    // What the dead daemon's buffers still held reaches the server; then nothing.
    let mut received = tb.stats().bytes_received;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = tb.stats().bytes_received;
        if now == received {
            break;
        }
        received = now;
    }
    assert!(
        stored(&tb, "big.bin").is_none(),
        "the dead daemon's completion landed; the case proves nothing"
    );
    let daemon = env.spawn_ready();
    env.wait_state("big.bin", "done", Duration::from_secs(60));
    // Everything this process ever read: journal, config, /proc, the file.
    let read = daemon.rchar();
    let resent = tb.stats().bytes_received - received;
    assert_eq!(stored(&tb, "big.bin").as_deref(), Some(&data[..]));
    println!(
        "figure: crash before completion: the restarted daemon read {read} bytes and sent {resent}; last part {last}, file {size}"
    );
    // The sampled verification reads 6 × 64 KiB of the file too, and the journal's
    // pages are read at open (quick_check), claims and polls. Since a2d0060 (claim
    // index, batched recording, commit hook; not narrowed further) that passed 1 MiB
    // of slack by 8 KB. Reading the numbered part again would add 32 MiB: 4 MiB of
    // slack still tells the two apart.
    assert!(
        read < (last + 4 * MIB) as u64,
        "read {read} bytes; only the last part ({last}) should have been read"
    );
    assert!(
        resent <= (last + 64 * 1024) as u64,
        "sent {resent} bytes again; only the last part ({last}) should have been"
    );
    let log = env.log_text();
    assert!(
        !log.contains("beginning a new session"),
        "the upload was started over"
    );
}

/// A byte flipped by the store in a sampled range fails verification (and the
/// file, after `verify_attempts`); `full` catches one anywhere; `size` does not,
/// which shows the flip really is there.
#[test]
fn read_back_verification_catches_what_size_cannot() {
    let rt = runtime();
    // (verify mode, offset of the flipped byte, expected final state)
    let size = 12 * MIB;
    let cases = [
        ("sample", 100i64, "failed"),
        ("sample", (size - 10) as i64, "failed"),
        ("full", (size / 2 + 12_345) as i64, "failed"),
        ("size", (size / 2 + 12_345) as i64, "done"),
    ];
    for (mode, offset, want) in cases {
        let store = tempfile::tempdir().expect("store");
        let tb = start(
            &rt,
            store.path(),
            Settings {
                corrupt_rate: 1.0,
                corrupt_offset: offset,
                ..Settings::default()
            },
        );
        let env = env(
            &tb,
            &format!("part_size = \"5MiB\"\nverify = \"{mode}\"\nverify_attempts = 1"),
        );
        let _daemon = env.spawn_ready();
        let data = random_bytes(size, 72);
        env.drop_file("flip.bin", &data);
        let row = env.wait_state("flip.bin", want, Duration::from_secs(60));
        let stored = stored(&tb, "flip.bin").expect("stored");
        assert_ne!(stored, data, "{mode}: the store did not flip a byte");
        if want == "failed" {
            let why = row["last_error"].as_str().unwrap_or_default();
            assert!(why.contains("verification failed"), "{mode}: {row}");
            if mode == "sample" {
                assert!(why.contains(&format!("byte {offset} ")), "{mode}: {row}");
            }
        }
    }
}

/// `upload.on_exists` against a file somebody else put there: skip leaves both
/// alone, fail fails the file, overwrite updates it with `If-Match` (etag 0 → 1).
#[test]
fn a_name_somebody_else_wrote_is_skipped_failed_or_updated() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start(&rt, store.path(), Settings::default());
    let theirs = b"somebody else's report".to_vec();
    for (policy, want) in [("skip", "done"), ("fail", "failed"), ("overwrite", "done")] {
        let key = format!("{policy}.csv");
        put_foreign(&rt, &tb, &key, &theirs);
        let env = env(
            &tb,
            &format!("on_exists = \"{policy}\"\nafter = \"delete\""),
        );
        let _daemon = env.spawn_ready();
        let ours = format!("our {policy} report").into_bytes();
        let path = env.drop_file(&key, &ours);
        let row = env.wait_state(&key, want, Duration::from_secs(30));
        let held = stored(&tb, &key).expect("stored");
        let etag = &search(&rt, &tb, &key)["etag"];
        match policy {
            "overwrite" => {
                assert_eq!(held, ours, "{policy}");
                assert_eq!(etag, 1, "an update increments the etag");
                assert!(!path.exists(), "a verified file is deleted");
            }
            _ => {
                assert_eq!(held, theirs, "{policy}: their file was touched");
                assert_eq!(etag, 0, "{policy}: their file was updated");
                assert!(path.exists(), "{policy}: an undelivered file was deleted");
                let why = row["last_error"].as_str().unwrap_or_default();
                assert!(why.contains("already holds"), "{policy}: {row}");
            }
        }
    }
}

/// A part that cannot cross the link within the gateway's minute at the configured
/// bandwidth limit is warned about at start.
#[test]
fn a_part_slower_than_the_gateway_timeout_is_warned_about() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start(&rt, store.path(), Settings::default());
    let env = env(
        &tb,
        "part_size = \"8MiB\"\nbandwidth_limit = \"256KiB/s\"\nworkers = 1\nparts_in_flight = 2",
    );
    let _daemon = env.spawn_ready();
    // 8 MiB at half of 256 KiB/s: 64 s.
    env.wait_log("longer than the 60 s", Duration::from_secs(10));
}
