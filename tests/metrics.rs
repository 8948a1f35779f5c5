//! `[metrics] listen`: the real daemon serving `/metrics` and `/healthz` over real
//! HTTP on loopback, read with a plain HTTP/1.0 GET (what a scraper or `curl` does).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Env, random_bytes, wait_for};
use dropship_testbed::{DEFAULT_SECRET, Settings, SettingsPatch};

const METRICS: &str = "[metrics]\nlisten = \"127.0.0.1:0\"";

/// The address the daemon logged as bound (`metrics listening addr=...`).
fn metrics_addr(env: &Env) -> SocketAddr {
    env.wait_log("metrics listening", Duration::from_secs(30));
    let log = env.log_text();
    let line = log
        .lines()
        .rfind(|l| l.contains("metrics listening"))
        .expect("the line");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"));
    addr.parse()
        .unwrap_or_else(|e| panic!("{addr:?} in {line:?}: {e}"))
}

/// An HTTP/1.0 GET: status, headers (lowercased), body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line of {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The value of the sample `series` (name with its labels, as written).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}{body}");
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    body
}

#[test]
fn metrics_follow_deliveries() {
    // Paced, so that the backlog can be seen before it drains.
    let env = Env::local("300ms", "bandwidth_limit = \"512KiB/s\"", METRICS);
    let _daemon = env.spawn_ready();
    let addr = metrics_addr(&env);
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let before = scrape(addr);
    assert_eq!(value(&before, "dropship_up"), 1.0);
    assert_eq!(value(&before, "dropship_journal_up"), 1.0);
    assert_eq!(value(&before, "dropship_files{state=\"done\"}"), 0.0);
    assert_eq!(value(&before, "dropship_bytes_sent_total"), 0.0);
    assert_eq!(value(&before, "dropship_backlog_bytes"), 0.0);
    assert_eq!(value(&before, "dropship_oldest_queued_age_seconds"), 0.0);
    assert!(
        before.contains("# HELP dropship_parts_retried "),
        "{before}"
    );

    let sizes = [1_200_000usize, 300_000, 5];
    for (i, size) in sizes.iter().enumerate() {
        env.drop_file(&format!("f{i}.bin"), &random_bytes(*size, i as u64));
    }
    let total: usize = sizes.iter().sum();
    // While the big one is on the paced wire (over 2 s), it is in the backlog.
    let mut biggest_backlog = 0.0f64;
    let mut last_sent = 0.0f64;
    let t0 = Instant::now();
    loop {
        let m = scrape(addr);
        let sent = value(&m, "dropship_bytes_sent_total");
        assert!(
            sent >= last_sent,
            "a counter went back: {last_sent} → {sent}"
        );
        last_sent = sent;
        biggest_backlog = biggest_backlog.max(value(&m, "dropship_backlog_bytes"));
        if value(&m, "dropship_files{state=\"done\"}") == sizes.len() as f64 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not delivered:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        biggest_backlog >= sizes[0] as f64,
        "the backlog never held the big file: at most {biggest_backlog}"
    );

    let st = env.wait_done(sizes.len() as u64, Duration::from_secs(30));
    let after = scrape(addr);
    let files: f64 = ["queued", "uploading", "retrying", "failed", "done"]
        .iter()
        .map(|s| value(&after, &format!("dropship_files{{state=\"{s}\"}}")))
        .sum();
    assert_eq!(files, sizes.len() as f64, "{after}");
    assert_eq!(value(&after, "dropship_files{state=\"done\"}"), 3.0);
    assert!(
        value(&after, "dropship_bytes_sent_total") >= total as f64,
        "{after}"
    );
    // The journal's own count of bytes put on the wire agrees with the counter.
    let journal_sent: u64 = st["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["bytes_sent"].as_u64().expect("bytes_sent"))
        .sum();
    assert_eq!(
        value(&after, "dropship_bytes_sent_total"),
        journal_sent as f64
    );
    assert_eq!(
        value(&after, "dropship_bytes_resent_total"),
        0.0,
        "nothing failed"
    );
    assert_eq!(value(&after, "dropship_backlog_bytes"), 0.0);
    assert_eq!(value(&after, "dropship_oldest_queued_age_seconds"), 0.0);
    assert_eq!(value(&after, "dropship_verify_failures_total"), 0.0);
    println!("figure: /metrics after three deliveries:\n{after}");
}

#[test]
fn healthz_is_ok_while_the_daemon_runs() {
    let env = Env::local("300ms", "", METRICS);
    let mut daemon = env.spawn_ready();
    let addr = metrics_addr(&env);
    let (status, _, body) = get(addr, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, _) = get(addr, "/nothing-here");
    assert_eq!(status, 404);
    daemon.sigterm();
    let exit = daemon.wait_exit(Duration::from_secs(30)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "still listening after the daemon stopped"
    );
}

#[test]
fn a_taken_port_stops_the_start_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("addr");
    let env = Env::local("300ms", "", &format!("[metrics]\nlisten = \"{addr}\""));
    let mut daemon = env.spawn();
    let exit = daemon.wait_exit(Duration::from_secs(30)).expect("exits");
    assert_eq!(exit.code(), Some(1), "{}", env.log_text());
    let log = env.log_text();
    assert!(
        log.contains(&format!(
            "cannot listen for metrics on {addr} (metrics.listen)"
        )),
        "{log}"
    );
    assert!(!log.contains("dropship is running"), "{log}");
}

#[test]
fn a_bad_listen_address_is_refused_with_key_and_line() {
    let env = Env::local("300ms", "", "[metrics]\nlisten = \"localhost:9184\"");
    let text = std::fs::read_to_string(&env.config).expect("config");
    let line = text
        .lines()
        .position(|l| l.starts_with("listen ="))
        .expect("the line")
        + 1;
    let out = env.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!(":{line}:")), "line {line}: {err}");
    assert!(err.contains("metrics.listen"), "{err}");
    assert!(err.contains("not an IP address and port"), "{err}");
}

#[test]
fn refused_requests_count_as_parts_retried() {
    let rt = common::runtime();
    let store = tempfile::tempdir().expect("store");
    // Every request refused with 503 until the test sees the retries counted.
    let tb = common::start_testbed(
        &rt,
        store.path(),
        Settings {
            fail_rate: 1.0,
            ..Settings::default()
        },
    );
    let base = tb.emulator_url("box");
    let backend = format!(
        "type = \"box\"\napi_url = \"{base}\"\nupload_url = \"{base}\"\ntoken_file = \"token\"\nfolder_id = \"0\""
    );
    let env = Env::new("300ms", "", &backend, METRICS);
    std::fs::write(env.dir.path().join("token"), DEFAULT_SECRET).expect("token");
    let _daemon = env.spawn_ready();
    let addr = metrics_addr(&env);
    let data = random_bytes(200_000, 7);
    env.drop_file("refused.bin", &data);
    let server_errors = "dropship_parts_retried_total{reason=\"server_error\"}";
    wait_for(Duration::from_secs(60), "a retried 503", || {
        (value(&scrape(addr), server_errors) >= 1.0).then_some(())
    });
    let during = scrape(addr);
    assert_eq!(value(&during, "dropship_files{state=\"done\"}"), 0.0);
    assert!(
        value(&during, "dropship_backlog_bytes") >= data.len() as f64,
        "{during}"
    );
    tb.update_settings(SettingsPatch {
        fail_rate: Some(0.0),
        ..SettingsPatch::default()
    });
    env.wait_done(1, Duration::from_secs(60));
    let after = scrape(addr);
    assert!(value(&after, server_errors) >= 1.0, "{after}");
    assert_eq!(
        value(&after, "dropship_parts_retried_total{reason=\"checksum\"}"),
        0.0
    );
    let sent = value(&after, "dropship_bytes_sent_total");
    assert!(sent >= data.len() as f64, "{after}");
    assert!(
        value(&after, "dropship_bytes_resent_total") <= sent,
        "{after}"
    );
    assert_eq!(value(&after, "dropship_backlog_bytes"), 0.0);
    assert_eq!(tb.object_bytes("box", "refused.bin").expect("stored"), data);
}

/// `upload.outbox_max` exceeded by files that cannot be delivered: the gauges say
/// how big the outbox is and that nothing delivered is left to remove.
#[test]
fn an_outbox_over_its_limit_shows_in_the_gauges() {
    let env = Env::new(
        "200ms",
        "outbox_max = \"10KiB\"",
        "type = \"box\"\napi_url = \"http://127.0.0.1:9\"\nupload_url = \"http://127.0.0.1:9\"\ntoken_file = \"token\"",
        METRICS,
    );
    std::fs::write(env.dir.path().join("token"), "t").expect("token");
    let _daemon = env.spawn_with(|c| {
        c.env("DROPSHIP_RETENTION_EVERY_MS", "200");
    });
    let addr = metrics_addr(&env);
    for i in 0..3u64 {
        env.drop_file(&format!("u{i}.bin"), &common::random_bytes(4 << 10, i));
    }
    let text = common::wait_for(Duration::from_secs(30), "outbox_over_limit 1", || {
        let text = scrape(addr);
        (value(&text, "dropship_outbox_over_limit") == 1.0).then_some(text)
    });
    assert_eq!(
        value(&text, "dropship_outbox_bytes"),
        f64::from(3 * (4 << 10))
    );
}

/// The journal commits without syncing (`synchronous = NORMAL`); a power cut may
/// undo its last commits. Deleting a delivered file cannot be undone, so each
/// deletion waits for a sync of the journal's log: counted, it shows up here. With
/// `after = "keep"` nothing irreversible happens and nothing is synced.
#[test]
fn a_delivered_file_is_deleted_only_after_a_journal_sync() {
    for (after, files) in [("delete", 4u64), ("keep", 2)] {
        let env = Env::local("300ms", &format!("after = \"{after}\""), METRICS);
        let _daemon = env.spawn_ready();
        let addr = metrics_addr(&env);
        let before = scrape(addr);
        for i in 0..files {
            env.drop_file(&format!("f{i}.bin"), &random_bytes(1000, i));
        }
        env.wait_done(files, Duration::from_secs(30));
        let m = scrape(addr);
        let syncs = value(&m, "dropship_journal_syncs_total")
            - value(&before, "dropship_journal_syncs_total");
        let commits = value(&m, "dropship_journal_commits_total")
            - value(&before, "dropship_journal_commits_total");
        let left = (0..files)
            .filter(|i| env.outbox.join(format!("f{i}.bin")).exists())
            .count() as u64;
        match after {
            "delete" => {
                assert_eq!(left, 0, "every delivered file deleted");
                assert!(syncs >= files as f64, "{syncs} syncs for {files} deletions");
            }
            _ => {
                assert_eq!(left, files, "kept");
                assert_eq!(syncs, 0.0, "nothing irreversible, nothing synced");
            }
        }
        // Syncs are the exception, not one per commit.
        assert!(commits >= 4.0 * files as f64, "{commits} commits");
    }
}
