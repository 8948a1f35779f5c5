//! Big and deep outboxes (issue 11): with inotify's watches used up, folders left
//! without one are listed every few seconds, `status` says so, the log says so once,
//! and the daemon keeps running. The kernel's limit (`fs.inotify.max_user_watches`)
//! is global and shared with every test running beside this one, so the test caps
//! dropship's own watches instead (`DROPSHIP_MAX_WATCHES`): past the cap, the same
//! code runs as after the kernel's ENOSPC.

mod common;

use std::time::{Duration, Instant};

use common::{Env, wait_for};

const WARNING: &str = "the inotify watch limit is reached";

#[test]
fn folders_beyond_the_watch_limit_are_scanned_and_the_daemon_says_so_once() {
    // settle 300ms: unwatched folders are listed every 3 s; the full rescan stays
    // at its default 5 min, far beyond the test.
    let env = Env::local("300ms", "", "");
    let deep: String = (0..20).map(|i| format!("d{i:02}/")).collect();
    std::fs::create_dir_all(env.outbox.join(&deep)).expect("mkdir");
    let d = env.spawn_with(|c| {
        c.env("DROPSHIP_MAX_WATCHES", "2");
    });
    env.wait_log("dropship is running", Duration::from_secs(30));

    // The outbox and d00 have the two watches; nothing below d00 raises an event.
    let t0 = Instant::now();
    env.drop_file(&format!("{deep}deepest.txt"), b"twenty folders down");
    env.drop_file("d00/d01/d02/d03/d04/middle.txt", b"five folders down");
    env.drop_file("d00/watched.txt", b"in a watched folder");
    env.wait_done(3, Duration::from_secs(20));
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "found after {took:?}");

    let status = env.status();
    let notice = status["notices"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["topic"] == "watch:limit"))
        .cloned()
        .unwrap_or_else(|| panic!("no watch:limit notice: {status:#}"));
    assert_eq!(notice["state"], "degraded", "{notice}");
    let reason = notice["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("DROPSHIP_MAX_WATCHES=2") && reason.contains("19 folder(s)"),
        "{reason}"
    );
    let table = env.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("watch:limit"),
        "{}",
        String::from_utf8_lossy(&table.stdout)
    );

    // A folder made at run time under an unwatched one: no event either; found by
    // the same listings, and counted.
    env.drop_file(&format!("{deep}later/new.txt"), b"made while running");
    env.wait_done(4, Duration::from_secs(20));
    wait_for(Duration::from_secs(10), "the notice to count 20", || {
        env.status()["notices"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["topic"] == "watch:limit"))
            .and_then(|n| n["reason"].as_str().map(str::to_string))
            .filter(|r| r.contains("20 folder(s)"))
    });

    let log = env.log_text();
    let warned = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(WARNING))
        .count();
    assert_eq!(warned, 1, "{log}");
    assert!(d.is_running(), "the daemon exited:\n{log}");
    println!(
        "figure: cap 2 watches, 20 nested folders: 3 files found {:.1} s after they were written",
        took.as_secs_f64()
    );
}

#[test]
fn every_folder_watched_means_no_notice() {
    let env = Env::local("300ms", "", "");
    std::fs::create_dir_all(env.outbox.join("a/b/c")).expect("mkdir");
    let d = env.spawn_with(|c| {
        c.env("DROPSHIP_MAX_WATCHES", "10");
    });
    env.wait_log("dropship is running", Duration::from_secs(30));
    env.drop_file("a/b/c/x.txt", b"x");
    env.wait_done(1, Duration::from_secs(20));
    let status = env.status();
    assert!(
        !status["notices"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["topic"] == "watch:limit")),
        "{status:#}"
    );
    assert!(!env.log_text().contains(WARNING));
    assert!(d.is_running());
}
