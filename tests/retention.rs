//! Local retention (`upload.keep_for`, `upload.outbox_max`), end to end: delivered
//! files kept in the outbox are removed in their time, oldest first over the limit,
//! and undelivered ones never; the daemon says when nothing is left to remove.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Env, random_bytes, wait_for};

/// A pass every 200 ms instead of every 30 s.
fn fast_retention(c: &mut Command) {
    c.env("DROPSHIP_RETENTION_EVERY_MS", "200");
}

#[test]
fn keep_for_removes_delivered_files_after_their_time_and_keeps_the_rows() {
    let env = Env::local("200ms", "after = \"keep\"\nkeep_for = \"2s\"", "");
    let _d = env.spawn_with(fast_retention);
    env.wait_log("watching", Duration::from_secs(30));
    let a = env.drop_file("a.txt", b"delivered, then removed");
    let row = env.wait_state("a.txt", "done", Duration::from_secs(30));
    assert!(a.exists(), "kept right after delivery: {row}");
    std::thread::sleep(Duration::from_millis(800));
    assert!(a.exists(), "removed before keep_for");
    wait_for(
        Duration::from_secs(15),
        "a.txt removed after keep_for",
        || (!a.exists()).then_some(()),
    );
    assert_eq!(
        std::fs::read(env.remote().join("a.txt")).expect("delivered"),
        b"delivered, then removed"
    );
    assert_eq!(env.rows("a.txt").pop().expect("row")["state"], "done");
    assert!(
        env.log_text()
            .contains("retention: removed delivered files")
    );
}

#[test]
fn over_outbox_max_the_oldest_delivered_files_go_first() {
    let env = Env::local("200ms", "after = \"keep\"\noutbox_max = \"10KiB\"", "");
    let _d = env.spawn_with(fast_retention);
    env.wait_log("watching", Duration::from_secs(30));
    let mut paths = Vec::new();
    for i in 0..3u64 {
        let rel = format!("f{i}.bin");
        paths.push(env.drop_file(&rel, &random_bytes(4 << 10, i)));
        env.wait_state(&rel, "done", Duration::from_secs(30));
        // Distinct delivery times, so that "oldest" is well defined.
        std::thread::sleep(Duration::from_millis(50));
    }
    // 12 KiB kept > 10 KiB: the oldest goes, the two newest (8 KiB) stay.
    wait_for(Duration::from_secs(15), "f0 removed", || {
        (!paths[0].exists()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(paths[1].exists() && paths[2].exists());
    assert!(
        env.status()["notices"]
            .as_array()
            .is_none_or(|n| n.iter().all(|n| n["topic"] != "outbox"))
    );
}

/// The service unreachable: nothing is delivered, the outbox grows past its limit,
/// and nothing is removed; `status` and the log say why.
#[test]
fn undelivered_files_are_never_removed_and_status_says_the_outbox_is_over() {
    let env = Env::new(
        "200ms",
        "outbox_max = \"10KiB\"",
        "type = \"box\"\napi_url = \"http://127.0.0.1:9\"\nupload_url = \"http://127.0.0.1:9\"\ntoken_file = \"token\"",
        "",
    );
    std::fs::write(env.dir.path().join("token"), "t").expect("token");
    let _d = env.spawn_with(fast_retention);
    env.wait_log("watching", Duration::from_secs(30));
    let paths: Vec<_> = (0..3u64)
        .map(|i| env.drop_file(&format!("u{i}.bin"), &random_bytes(4 << 10, i)))
        .collect();
    let notice = wait_for(Duration::from_secs(30), "the outbox notice", || {
        env.status()["notices"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["topic"] == "outbox").cloned())
    });
    let why = notice["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("outbox_max") && why.contains("never removed"),
        "{notice}"
    );
    assert!(
        paths.iter().all(|p| p.exists()),
        "an undelivered file was removed"
    );
    env.wait_log("the outbox is over outbox_max", Duration::from_secs(10));
}
