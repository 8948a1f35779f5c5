//! Offline for days, at a time scale of seconds: the service is unreachable while a
//! thousand files arrive. The daemon keeps queueing them, tries the service with one
//! file at a time, backing off to the cap with jitter (`retry_base` 20 ms and
//! `retry_max` 1 s here: the default 1 s and 5 min, compressed); a restart resumes
//! that backoff from the journal instead of trying every file; when the service
//! returns, the backlog drains by itself, oldest first.

mod common;
#[allow(dead_code)] // the suite's world; this test uses a part of it
#[path = "behaviour/world.rs"]
mod world;

use std::time::{Duration, Instant};

use common::wait_for;
use world::{Kind, Setup, World};

const FILES: usize = 1000;
const CAP_MS: u64 = 1000;

/// The attempts recorded over all rows (each claim counts one).
fn attempts(w: &World) -> u64 {
    w.env.status()["files"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["attempts"].as_u64()).sum())
        .unwrap_or(0)
}

/// The ids the daemon claimed, in order, from the log text after `from`.
fn claimed_ids(log: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.contains("claimed attempt="))
        .filter_map(|l| {
            let at = l.find("file{id=")? + "file{id=".len();
            let rest = &l[at..];
            rest[..rest.find(|c: char| !c.is_ascii_digit())?]
                .parse()
                .ok()
        })
        .collect()
}

/// The waits the gate planned after failed tries (DEBUG "next try planned").
fn planned_waits(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("next try planned"))
        .filter_map(|l| {
            let at = l.find("wait_ms=")? + "wait_ms=".len();
            let rest = &l[at..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

#[test]
fn a_thousand_files_wait_out_days_offline_with_one_try_at_a_time_then_drain_oldest_first() {
    let upload = format!("retry_base = \"20ms\"\nretry_max = \"{CAP_MS}ms\"\nworkers = 4");
    let mut w = World::new(
        Kind::Box,
        Setup {
            upload: &upload,
            ..Setup::default()
        },
    );
    w.start();
    let addr = w.stop_service().expect("an emulated service");
    let t0 = Instant::now();
    for i in 0..FILES {
        w.env.drop_file(
            &format!("backlog/{i:04}.log"),
            format!("line {i}\n").as_bytes(),
        );
    }
    wait_for(Duration::from_secs(60), "every file to be queued", || {
        let st = w.env.status();
        let n = st["files"].as_array().map_or(0, Vec::len);
        (n == FILES).then_some(())
    });
    // Days offline, compressed: well past the ramp to the cap.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(t0.elapsed()));
    let offline = t0.elapsed();
    let tried = attempts(&w);
    let st = w.env.status();
    let backend = &st["backend"];
    assert_eq!(backend["state"], "unreachable", "{backend}");
    let tries_before = backend["tries"].as_u64().expect("tries");
    assert!(backend["retry_at"].as_i64().is_some(), "{backend}");
    let rows = st["files"].as_array().expect("files");
    assert!(
        rows.iter().all(|r| r["state"] != "failed"),
        "a file failed while offline"
    );
    // One file at a time, at most one try per planned wait: the ramp to the cap
    // (log2(1000/20) ≈ 6 tries), then one per half-cap at most, plus one per worker
    // that was already running when the first try failed.
    let bound = 4 + 7 + offline.as_millis() as u64 / (CAP_MS / 2);
    assert!(
        tried <= bound,
        "{tried} attempts in {offline:?} (bound {bound})"
    );
    let waits = planned_waits(&w.env.log_text());
    let at_cap: Vec<u64> = waits
        .iter()
        .copied()
        .filter(|&ms| ms >= CAP_MS / 2 - 50)
        .collect();
    assert!(at_cap.len() >= 3, "never reached the cap: {waits:?}");
    assert!(
        waits.iter().all(|&ms| ms <= CAP_MS),
        "above the cap: {waits:?}"
    );
    assert!(
        at_cap.windows(2).any(|p| p[0] != p[1]),
        "no jitter: {waits:?}"
    );

    // A restart (a power cut) keeps the plan: the backoff is not begun again.
    w.kill9();
    w.start();
    w.env
        .wait_log("its next try is kept", Duration::from_secs(10));
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_millis(1500) {
        let backend = w.env.status()["backend"].clone();
        assert_eq!(backend["state"], "unreachable", "{backend}");
        let tries = backend["tries"].as_u64().unwrap_or(0);
        assert!(tries >= tries_before, "the backoff began again: {backend}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The service returns: the backlog drains by itself, oldest first.
    let log_before = w.env.log_text().len();
    w.start_service_at(addr);
    let back = Instant::now();
    w.env.wait_done(FILES as u64, Duration::from_secs(120));
    let drained = back.elapsed();
    let log = w.env.log_text();
    let claims = claimed_ids(&log[log_before..]);
    assert!(
        claims.len() >= FILES,
        "{} claims after the return",
        claims.len()
    );
    // Claims are logged by each worker as it starts, so up to `workers` of them
    // may be logged out of their order: the first k claims must all be among the
    // k + 4 oldest files.
    let mut sorted = claims.clone();
    sorted.sort_unstable();
    let mut newest = 0;
    for (k, id) in claims.iter().enumerate() {
        newest = newest.max(*id);
        let allowed = sorted[(k + 4).min(sorted.len() - 1)];
        assert!(newest <= allowed, "not drained oldest first: {claims:?}");
    }
    assert!(
        claims[..5].contains(&1),
        "the oldest file was not among the first tries"
    );
    for i in [0, FILES / 2, FILES - 1] {
        let key = format!("backlog/{i:04}.log");
        assert_eq!(
            w.stored(&key).as_deref(),
            Some(format!("line {i}\n").as_bytes()),
            "{key}"
        );
    }
    println!(
        "figure: offline {:.1} s with {FILES} files queued: {tried} attempts (bound {bound}), {} planned waits at the {CAP_MS} ms cap ({}..{} ms); after the return {FILES} files drained oldest first in {:.1} s",
        offline.as_secs_f64(),
        at_cap.len(),
        at_cap.iter().min().copied().unwrap_or(0),
        at_cap.iter().max().copied().unwrap_or(0),
        drained.as_secs_f64()
    );
}
