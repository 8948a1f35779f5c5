//! Compression before upload, end to end on the local backend: the compressed copy
//! is what is stored (under the key with `.gz`/`.zst`) and verified; the original
//! gets its post-action only after; a SIGKILL while compressing or while the copy
//! uploads neither loses the original nor leaves spool files behind.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use common::{Env, wait_for};

/// A log of `lines` lines: timestamps, levels, messages that repeat with variation.
fn log_text(lines: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = String::with_capacity(lines * 90);
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let level = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"][(x % 6) as usize];
        out.push_str(&format!(
            "2026-11-25T04:{:02}:{:02}.{:03}Z {level} gateway[{}]: request {} from 10.0.{}.{} served in {} ms\n",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            100 + x % 7,
            x % 100_000,
            x % 4,
            (x >> 8) % 250,
            (x >> 16) % 900
        ));
    }
    out.into_bytes()
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("stored"))
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn unzstd(path: &Path) -> Vec<u8> {
    zstd::stream::decode_all(std::fs::File::open(path).expect("stored")).expect("unzstd")
}

fn spool_files(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.dir.path().join("state/spool"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_compressed_copy_is_stored_under_the_key_with_its_extension_then_the_file_goes() {
    let env = Env::local(
        "200ms",
        "compress = \"gzip\"\nafter = \"delete\"",
        "[[rule]]\nmatch = \"metrics/*\"\ncompress = \"zstd\"\ncompress_level = 9\n\n\
         [[rule]]\nmatch = \"raw/*\"\ncompress = \"none\"\n",
    );
    let _d = env.spawn_ready();
    let log = log_text(20_000, 1);
    let a = env.drop_file("app.log", &log);
    let m = env.drop_file("metrics/m.csv", &log[..100_000]);
    let r = env.drop_file("raw/blob.bin", b"sent as it is");
    let row = env.wait_state("app.log", "done", Duration::from_secs(60));
    assert_eq!(row["key"], "app.log.gz");
    assert!(
        row["bytes_sent"].as_u64().expect("sent") < log.len() as u64 / 4,
        "{row}"
    );
    assert_eq!(gunzip(&env.remote().join("app.log.gz")), log);
    let row = env.wait_state("metrics/m.csv", "done", Duration::from_secs(60));
    assert_eq!(row["key"], "metrics/m.csv.zst");
    assert_eq!(
        unzstd(&env.remote().join("metrics/m.csv.zst")),
        &log[..100_000]
    );
    env.wait_state("raw/blob.bin", "done", Duration::from_secs(60));
    assert_eq!(
        std::fs::read(env.remote().join("raw/blob.bin")).expect("raw"),
        b"sent as it is"
    );
    wait_for(Duration::from_secs(10), "the originals deleted", || {
        (!a.exists() && !m.exists() && !r.exists()).then_some(())
    });
    assert!(spool_files(&env).is_empty(), "{:?}", spool_files(&env));
    assert!(env.log_text().contains("compressed into the spool"));
}

/// SIGKILL while a big file is being compressed (zstd at its slowest level), then
/// a restart: the original is still there until delivered, delivered once, and no
/// spool file is left behind.
#[test]
fn a_kill_while_compressing_loses_nothing_and_leaves_no_spool_file() {
    let env = Env::local(
        "200ms",
        "compress = \"zstd\"\ncompress_level = 19\nafter = \"delete\"",
        "",
    );
    let d = env.spawn_ready();
    let log = log_text(250_000, 2); // about 25 MB: seconds at level 19
    let path = env.drop_file("big.log", &log);
    wait_for(
        Duration::from_secs(30),
        "a spool file being written",
        || (!spool_files(&env).is_empty()).then_some(()),
    );
    d.kill9();
    assert!(path.exists(), "the original went before delivery");
    let _d = env.spawn_ready();
    env.wait_state("big.log", "done", Duration::from_secs(300));
    assert_eq!(unzstd(&env.remote().join("big.log.zst")), log);
    wait_for(Duration::from_secs(10), "the original deleted", || {
        (!path.exists()).then_some(())
    });
    assert!(spool_files(&env).is_empty(), "{:?}", spool_files(&env));
}

/// SIGKILL while the compressed copy uploads (a slow link): the restart sends on
/// from the journal's copy (not compressed again), and the spool empties.
#[test]
fn a_kill_while_the_copy_uploads_resumes_it_and_cleans_up() {
    let env = Env::local(
        "200ms",
        "compress = \"gzip\"\ncompress_level = 1\nbandwidth_limit = \"256KiB\"\npart_size = \"64KiB\"\nafter = \"delete\"",
        "",
    );
    let d = env.spawn_ready();
    // Random bytes barely compress: about 1 MiB to send, 4 s at 256 KiB/s.
    let data = common::random_bytes(1 << 20, 3);
    let path = env.drop_file("blob.bin", &data);
    wait_for(Duration::from_secs(30), "the copy half sent", || {
        env.rows("blob.bin")
            .pop()
            .filter(|r| r["bytes_sent"].as_u64() > Some(300 << 10))
    });
    d.kill9();
    assert!(path.exists());
    assert_eq!(spool_files(&env).len(), 1, "the copy waits for the restart");
    let _d = env.spawn_ready();
    env.wait_state("blob.bin", "done", Duration::from_secs(60));
    assert_eq!(gunzip(&env.remote().join("blob.bin.gz")), data);
    let compressions = env.log_lines(&["compressed into the spool"]);
    assert_eq!(compressions, 1, "compressed again after the restart");
    wait_for(Duration::from_secs(10), "the original deleted", || {
        (!path.exists()).then_some(())
    });
    assert!(spool_files(&env).is_empty(), "{:?}", spool_files(&env));
}
