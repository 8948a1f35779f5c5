//! What an operator uses on a running device: `status` (its summary, its bounded
//! list, `--watch`), `forget`, and the journal's housekeeping. The real binary on
//! the local backend.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, random_bytes, wait_for};
use serde_json::Value;

const MIB: usize = 1 << 20;

/// `status --json` with extra arguments.
fn status_json(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["status", "--json"];
    all.extend_from_slice(args);
    let out = env.cli(&all);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// Sets `key = value` in the config's `[journal]` table.
fn set_journal_key(env: &Env, line: &str) {
    let text = std::fs::read_to_string(&env.config).expect("config");
    let text = text.replacen("[journal]\n", &format!("[journal]\n{line}\n"), 1);
    std::fs::write(&env.config, text).expect("config");
}

#[test]
fn status_shows_the_backlog_the_file_in_flight_with_its_rate_and_the_last_error() {
    // 96 KiB/s: a 3 MiB file stays in flight for about 30 s, a part landing
    // every 2.7 s.
    let env = Env::local(
        "200ms",
        "bandwidth_limit = \"96KiB\"\nworkers = 1\npart_size = \"256KiB\"",
        "",
    );
    let _daemon = env.spawn_ready();
    env.drop_file("slow.bin", &random_bytes(3 * MIB, 1));
    // A name that is not UTF-8 cannot be a key: failed before any request.
    let bad = env.outbox.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&bad, b"latin-1 name").expect("write");
    env.drop_file("waiting.txt", b"behind the slow one");

    // Four parts in flight share the link, so the first acknowledgements come
    // about together, a quarter of the file in: the rate is the attempt's average
    // over acknowledged parts.
    let st = wait_for(Duration::from_secs(30), "a quarter acknowledged", || {
        let st = status_json(&env, &[]);
        let progress = st["in_flight"][0]["progress"].as_f64().unwrap_or(0.0);
        (progress >= 0.25 && !st["last_errors"].as_array()?.is_empty()).then_some(st)
    });
    let flying = &st["in_flight"][0];
    assert_eq!(flying["state"], "uploading");
    assert!(flying["path"].as_str().expect("path").ends_with("slow.bin"));
    let rate = flying["rate_bytes_per_s"].as_u64().expect("rate");
    assert!(
        (60_000..=150_000).contains(&rate),
        "rate {rate} B/s, with a 96 KiB/s limit"
    );
    let progress = flying["progress"].as_f64().expect("progress");
    assert!((0.0..1.0).contains(&progress), "progress {progress}");
    // The slow file and the one waiting behind it are still to deliver.
    assert_eq!(st["backlog"]["files"], 2, "{st:#}");
    assert_eq!(
        st["backlog"]["bytes"].as_u64(),
        Some(3 * MIB as u64 + b"behind the slow one".len() as u64)
    );
    assert!(st["backlog"]["oldest_queued_age_s"].as_f64().expect("age") > 0.0);
    let err = &st["last_errors"][0];
    assert_eq!(err["state"], "failed");
    assert!(
        err["error"].as_str().expect("error").contains("UTF-8"),
        "{err}"
    );

    let table = String::from_utf8(env.cli(&["status"]).stdout).expect("utf-8");
    assert!(table.contains("backlog: 2 file(s)"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("in flight:") && l.contains("/s") && l.contains("slow.bin")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("error:") && l.contains("UTF-8")),
        "{table}"
    );
}

#[test]
fn status_lists_a_bounded_set_of_files_unless_asked_for_all() {
    let env = Env::local("200ms", "", "");
    let _daemon = env.spawn_ready();
    for i in 0..6 {
        env.drop_file(&format!("f{i}.txt"), format!("file {i}").as_bytes());
    }
    env.wait_done(6, Duration::from_secs(30));
    let st = status_json(&env, &["--recent", "2"]);
    let files = st["files"].as_array().expect("files");
    assert_eq!(files.len(), 2, "{st:#}");
    assert_eq!(st["files_omitted"], 4);
    assert_eq!(st["counts"]["done"], 6, "counts cover every row");
    let all = status_json(&env, &["--all"]);
    assert_eq!(all["files"].as_array().expect("files").len(), 6);
    assert_eq!(all["files_omitted"], 0);
    let table = String::from_utf8(env.cli(&["status", "--recent", "1"]).stdout).expect("utf-8");
    assert!(
        table.contains("(5 more file(s) not shown; `status --all` lists every one)"),
        "{table}"
    );
}

#[test]
fn status_watch_prints_one_document_per_interval_until_stopped() {
    let env = Env::local("200ms", "", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropship"))
        .args(["status", "--json", "--watch", "200ms", "--config"])
        .arg(&env.config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("status --watch");
    std::thread::sleep(Duration::from_millis(1100));
    child.kill().expect("kill");
    let out = child.wait_with_output().expect("output");
    let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert!(
        (3..=7).contains(&docs.len()),
        "{} documents in 1.1 s at 200 ms",
        docs.len()
    );
    assert!(docs.iter().all(|d| d["counts"].is_object()));
    let bad = env.cli(&["status", "--watch", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn forget_removes_finished_rows_and_refuses_the_rest() {
    let env = Env::local("200ms", "bandwidth_limit = \"64KiB\"\nworkers = 1", "");
    let _daemon = env.spawn_ready();
    env.drop_file("done.txt", b"delivered");
    let done = env.wait_state("done.txt", "done", Duration::from_secs(30));
    env.drop_file("slow.bin", &random_bytes(2 * MIB, 2));
    let slow = env.wait_state("slow.bin", "uploading", Duration::from_secs(30));

    let out = env.cli(&["forget", &slow["id"].to_string()]);
    assert!(
        !out.status.success(),
        "an upload in flight cannot be forgotten"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only finished files"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.cli(&["forget", "999999"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no file 999999"));

    // Forgotten and gone from disk: nothing brings it back.
    std::fs::remove_file(env.outbox.join("done.txt")).expect("rm");
    let out = env.cli(&["forget", &done["id"].to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.rows("done.txt").is_empty());
    assert_eq!(env.rows("slow.bin").len(), 1, "the other row is untouched");
}

#[test]
fn housekeeping_prunes_old_rows_but_keeps_those_of_files_still_in_the_outbox() {
    let env = Env::local("200ms", "", "");
    set_journal_key(&env, "keep_done = \"1s\"");
    let mut daemon = env.spawn_ready();
    env.drop_file("gone.txt", b"deleted after delivery");
    env.drop_file("kept.txt", b"stays in the outbox");
    env.wait_done(2, Duration::from_secs(30));
    std::fs::remove_file(env.outbox.join("gone.txt")).expect("rm");
    // The first pass runs 5 s after start.
    env.wait_log("housekeeping: pruned", Duration::from_secs(30));
    let st = status_json(&env, &["--all"]);
    let paths: Vec<&str> = st["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("kept.txt"), "{paths:?}");
    // A restart's scan finds kept.txt known: not queued, not sent again.
    daemon.sigterm();
    daemon.wait_exit(Duration::from_secs(20)).expect("exit");
    let _daemon = env.spawn_ready();
    std::thread::sleep(Duration::from_secs(2));
    let rows = env.rows("kept.txt");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["attempts"], 1);
}

#[test]
fn json_logs_are_one_object_per_line_with_the_files_span() {
    let env = Env::local("200ms", "", "");
    let _daemon = env.spawn_with(|c| {
        c.args(["--log-format", "json"]);
    });
    env.wait_log("dropship is running", Duration::from_secs(20));
    env.drop_file("logged.txt", b"in json");
    env.wait_state("logged.txt", "done", Duration::from_secs(20));
    env.wait_log("delivered and verified", Duration::from_secs(20));
    let lines: Vec<Value> = env
        .log_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let delivered = lines
        .iter()
        .find(|l| l["fields"]["message"] == "delivered and verified")
        .expect("the delivery line");
    assert_eq!(delivered["level"], "INFO");
    assert_eq!(delivered["span"]["name"], "file", "{delivered}");
    assert_eq!(delivered["span"]["key"], "logged.txt", "{delivered}");
    assert!(delivered["span"]["id"].is_number(), "{delivered}");
}
