//! The daemon end to end on the local-directory backend: the real binary, real files,
//! real signals. Figures the issue asks for are printed (run with `--nocapture`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Env, append, random_bytes, read, wait_for};

const MIB: usize = 1 << 20;

#[test]
fn delivers_small_files_in_subfolders_and_a_large_file() {
    let env = Env::local("300ms", "", "");
    let _daemon = env.spawn_ready();
    let mut expected = Vec::new();
    for i in 0..30u64 {
        let rel = format!("sub{}/deeper{}/file-{i}.dat", i % 3, i % 2);
        let data = random_bytes(100 + (i as usize) * 517, i);
        // Written in place (open, write, close): the close marks it finished.
        let path = env.outbox.join(&rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &data).expect("write");
        expected.push((rel, data));
    }
    let big = random_bytes(40 * MIB, 99);
    std::fs::write(env.outbox.join("big.bin"), &big).expect("write big");
    let written = Instant::now();
    env.wait_state("big.bin", "done", Duration::from_secs(120));
    println!(
        "figure: 40 MiB delivered (written → verified done) in {:.2} s",
        written.elapsed().as_secs_f64()
    );
    expected.push(("big.bin".into(), big));

    let st = env.wait_done(31, Duration::from_secs(60));
    assert_eq!(
        st["files"].as_array().expect("files").len(),
        31,
        "one row per file"
    );
    for (rel, data) in &expected {
        assert_eq!(&read(&env.remote().join(rel)), data, "{rel} differs");
        let row = env.rows(rel).pop().expect("row");
        assert_eq!(row["bytes_sent"], row["size"], "{rel}: nothing sent twice");
        assert_eq!(row["last_error"], serde_json::Value::Null);
    }
    // Nothing half-written is left in staging.
    let staging = env.remote().join(".dropship-staging");
    assert_eq!(std::fs::read_dir(&staging).expect("staging").count(), 0);
}

#[test]
fn a_restart_does_not_queue_delivered_files_again() {
    let env = Env::local("300ms", "", "");
    let mut daemon = env.spawn_ready();
    env.drop_file("a.txt", b"alpha");
    env.drop_file("d/b.txt", b"beta");
    env.wait_done(2, Duration::from_secs(30));
    daemon.sigterm();
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
    // The startup scan sees both kept files again.
    let _again = env.spawn_ready();
    let st = env.status();
    assert_eq!(st["files"].as_array().expect("files").len(), 2);
    assert_eq!(st["counts"]["done"], 2);
}

#[test]
fn resumes_after_sigkill_and_resends_at_most_the_parts_in_flight() {
    const SIZE: usize = 120 * MIB;
    const PART: u64 = 4 << 20;
    const IN_FLIGHT: u64 = 2;
    let env = Env::local(
        "300ms",
        "part_size = \"4MiB\"\nparts_in_flight = 2\nbandwidth_limit = \"40MiB/s\"",
        "",
    );
    let data = random_bytes(SIZE, 7);
    let daemon = env.spawn_ready();
    env.drop_file("big/resume.bin", &data);
    // Kill it somewhere in the middle, with parts in flight.
    let before = wait_for(Duration::from_secs(60), "upload to pass 40%", || {
        env.rows("big/resume.bin")
            .pop()
            .filter(|r| r["bytes_sent"].as_u64().unwrap_or(0) > (SIZE as u64) * 2 / 5)
    });
    daemon.kill9();
    let uploaded_before = before["parts_uploaded"].as_u64().expect("parts_uploaded");
    assert!(uploaded_before < before["parts_total"].as_u64().expect("parts_total"));

    let _daemon = env.spawn_ready();
    let row = env.wait_state("big/resume.bin", "done", Duration::from_secs(120));
    assert_eq!(read(&env.remote().join("big/resume.bin")), data);
    let resent = row["bytes_sent"].as_u64().expect("bytes_sent") - SIZE as u64;
    println!(
        "figure: SIGKILL at {} of {} parts acknowledged; re-sent {resent} bytes ({:.1} MiB) after restart (bound {} MiB)",
        uploaded_before,
        before["parts_total"],
        resent as f64 / MIB as f64,
        IN_FLIGHT * PART / MIB as u64
    );
    assert!(
        resent <= IN_FLIGHT * PART,
        "re-sent {resent} bytes, more than {IN_FLIGHT} parts of {PART}"
    );
    assert_eq!(row["attempts"], 2, "one attempt before the kill, one after");
}

#[test]
fn a_file_appended_during_upload_is_superseded_and_the_final_content_delivered() {
    let env = Env::local(
        "300ms",
        "part_size = \"1MiB\"\nparts_in_flight = 2\nbandwidth_limit = \"8MiB/s\"",
        "",
    );
    let _daemon = env.spawn_ready();
    let first = random_bytes(16 * MIB, 3);
    let path = env.drop_file("log/app.log", &first);
    wait_for(Duration::from_secs(30), "the upload to start", || {
        env.rows("log/app.log")
            .pop()
            .filter(|r| r["state"] == "uploading" && r["bytes_sent"].as_u64() > Some(0))
    });
    let tail = random_bytes(MIB + 123, 4);
    append(&path, &tail);
    let done = wait_for(
        Duration::from_secs(60),
        "the new content to be done",
        || {
            env.rows("log/app.log").pop().filter(|r| {
                r["state"] == "done" && r["size"].as_u64() == Some((17 * MIB + 123) as u64)
            })
        },
    );
    let mut whole = first;
    whole.extend_from_slice(&tail);
    assert_eq!(read(&env.remote().join("log/app.log")), whole);
    let rows = env.rows("log/app.log");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0]["state"], "superseded");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("changed"))
    );
    assert_eq!(done["state"], "done");
    // The superseded session's staging was aborted, not left behind.
    wait_for(Duration::from_secs(10), "staging to be empty", || {
        (std::fs::read_dir(env.remote().join(".dropship-staging"))
            .expect("staging")
            .count()
            == 0)
            .then_some(())
    });
}

#[test]
fn a_slow_writer_is_not_uploaded_before_the_file_settles() {
    let env = Env::local("1s", "", "");
    let _daemon = env.spawn_ready();
    let path = env.outbox.join("slow.csv");
    let mut f = std::fs::File::create(&path).expect("create");
    let mut expected = Vec::new();
    // Ten writes 300 ms apart on one open descriptor: never quiet for a second.
    for i in 0..10u64 {
        let chunk = random_bytes(64 << 10, 100 + i);
        std::io::Write::write_all(&mut f, &chunk).expect("write");
        expected.extend_from_slice(&chunk);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            env.rows("slow.csv").is_empty(),
            "queued while still being written"
        );
        assert!(!env.remote().join("slow.csv").exists());
    }
    // Still open, but quiet: it settles and is sent whole.
    let row = env.wait_state("slow.csv", "done", Duration::from_secs(30));
    assert_eq!(row["size"].as_u64(), Some(expected.len() as u64));
    assert_eq!(read(&env.remote().join("slow.csv")), expected);
    drop(f);
    // The close is an event the watcher handles; wait until it has, then count.
    wait_for(Duration::from_secs(10), "the close to be handled", || {
        env.log_text()
            .lines()
            .any(|l| l.contains("already known") && l.contains("slow.csv"))
            .then_some(())
    });
    assert_eq!(
        env.rows("slow.csv").len(),
        1,
        "closing it afterwards queues nothing"
    );
}

#[test]
fn sigterm_exits_zero_within_shutdown_timeout_and_the_upload_resumes() {
    let env = Env::local(
        "300ms",
        "part_size = \"4MiB\"\nparts_in_flight = 1\nbandwidth_limit = \"1MiB/s\"",
        "[daemon]\nshutdown_timeout = \"2s\"",
    );
    let data = random_bytes(9 * MIB, 11);
    let mut daemon = env.spawn_ready();
    env.drop_file("slow.bin", &data);
    wait_for(Duration::from_secs(30), "the upload to start", || {
        env.rows("slow.bin")
            .pop()
            .filter(|r| r["bytes_sent"].as_u64() > Some(0))
    });
    let t0 = Instant::now();
    daemon.sigterm();
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("exited after SIGTERM");
    let took = t0.elapsed();
    println!(
        "figure: SIGTERM mid-part → exit in {:.2} s (shutdown_timeout 2 s)",
        took.as_secs_f64()
    );
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_millis(3500), "took {took:?}");

    // Change the limit so the rest goes fast, and check it resumes to the end.
    let cfg = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(&env.config, cfg.replace("1MiB/s", "0")).expect("config");
    let _d = env.spawn_ready();
    env.wait_state("slow.bin", "done", Duration::from_secs(60));
    assert_eq!(read(&env.remote().join("slow.bin")), data);
}

#[test]
fn sigterm_when_idle_exits_zero_at_once() {
    let env = Env::local("300ms", "", "");
    let mut daemon = env.spawn_ready();
    let t0 = Instant::now();
    daemon.sigterm();
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success());
    assert!(t0.elapsed() < Duration::from_secs(2));
}

/// Runs `dropship <verb> --config` on a file with `text`; returns (code, stderr).
fn run_with_config(verb: &str, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("outbox")).expect("outbox");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).expect("config");
    let out = Command::new(common::BIN)
        .args([verb, "--config"])
        .arg(&path)
        .output()
        .expect("run");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_config_is_refused_with_file_line_and_key() {
    let good = "[watch]\npath = \"outbox\"\n\n[backend]\ntype = \"local\"\npath = \"remote\"\n";
    assert_eq!(run_with_config("check-config", good).0, 0);
    let cases = [
        (
            "unknown key",
            good.replace("path = \"outbox\"", "path = \"outbox\"\nsettel = \"2s\""),
            vec!["bad.toml:3:", "watch.settel", "unknown field `settel`"],
        ),
        (
            "wrong type",
            format!("{good}[upload]\nworkers = \"two\"\n"),
            vec!["bad.toml:8:", "upload.workers", "invalid type"],
        ),
        (
            "bad unit",
            format!("{good}[upload]\npart_size = \"8 MiBs\"\n"),
            vec!["bad.toml:8:", "upload.part_size", "unknown size unit"],
        ),
        (
            "unknown backend",
            good.replace("type = \"local\"", "type = \"ftp\""),
            vec!["bad.toml:", "backend", "ftp"],
        ),
    ];
    for (what, text, needles) in &cases {
        for verb in ["run", "check-config"] {
            let (code, err) = run_with_config(verb, text);
            assert_eq!(code, 2, "{what} / {verb}: {err}");
            for n in needles {
                assert!(err.contains(n), "{what} / {verb}: {n:?} not in {err}");
            }
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    // A missing watch folder is a problem of the machine: `run` refuses to start.
    let missing = good.replace("\"outbox\"", "\"no-such-folder\"");
    let (code, err) = run_with_config("run", &missing);
    assert_eq!(code, 2, "{err}");
    for n in ["bad.toml:2:", "watch.path", "does not exist"] {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
    // `check-config` warns about it but accepts the file itself.
    let (code, _) = run_with_config("check-config", &missing);
    assert_eq!(code, 0);
}

#[test]
fn status_of_a_config_with_no_journal_yet_is_empty() {
    let env = Env::local("1s", "", "");
    let st = env.status();
    assert_eq!(st["daemon_running"], false);
    assert_eq!(st["counts"]["queued"], 0);
    assert_eq!(st["files"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_second_daemon_on_the_same_journal_is_refused() {
    let env = Env::local("300ms", "", "");
    let _first = env.spawn_ready();
    assert_eq!(env.status()["daemon_running"], true);
    let out = env.cli(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
}

#[test]
fn a_refused_file_is_failed_with_its_reason_and_retry_requeues_it() {
    // The local backend refuses keys inside its own staging folder: a permanent error.
    // (A hidden folder is ignored by default: let it through.)
    let env = Env::with_watch(
        "300ms",
        "ignore = []",
        "",
        "type = \"local\"\npath = \"remote\"",
        "",
    );
    let _d = env.spawn_ready();
    let rel = ".dropship-staging/x.bin";
    env.drop_file(rel, b"payload");
    let row = env.wait_state(rel, "failed", Duration::from_secs(30));
    assert!(
        row["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be stored")),
        "{row}"
    );
    assert!(env.outbox.join(rel).exists(), "a failed file stays on disk");
    assert_eq!(
        row["attempts"], 1,
        "a permanent error is not retried by itself"
    );

    let out = env.cli(&["retry", &row["id"].to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-queued 1"));
    let row = wait_for(Duration::from_secs(30), "the second attempt", || {
        env.rows(rel)
            .pop()
            .filter(|r| r["attempts"] == 2 && r["state"] == "failed")
    });
    assert_eq!(env.rows(rel).len(), 1, "retried in place, not queued twice");
    let out = env.cli(&["retry", "--all-failed"]);
    // Failed once under load without saying why: the CLI's own words go in the message.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-queued 1"),
        "{row}\nstdout: {}\nstderr: {}\nrows now: {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.rows(rel)
    );
    let out = env.cli(&["retry", "999"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bandwidth_limit_is_shared_by_all_workers() {
    // Two workers, one budget: 2 × 4 MiB at 4 MiB/s cannot take less than ~2 s
    // (less one 64 KiB slice of burst). A lower bound only: a slow machine is slower.
    let env = Env::local(
        "300ms",
        "workers = 2\nparts_in_flight = 2\npart_size = \"1MiB\"\nbandwidth_limit = \"4MiB/s\"",
        "",
    );
    let _d = env.spawn_ready();
    let t0 = Instant::now();
    env.drop_file("a.bin", &random_bytes(4 * MIB, 1));
    env.drop_file("b.bin", &random_bytes(4 * MIB, 2));
    // Both in flight together: without that, a per-worker budget would pass too.
    wait_for(
        Duration::from_secs(10),
        "both files uploading at once",
        || {
            let st = env.status();
            (st["counts"]["uploading"] == 2).then_some(())
        },
    );
    env.wait_done(2, Duration::from_secs(60));
    let took = t0.elapsed();
    println!(
        "figure: 8 MiB over 2 workers at 4 MiB/s took {:.2} s",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_millis(1900),
        "took {took:?}: the limit was not shared"
    );
}

#[test]
fn files_in_freshly_created_folders_are_never_missed() {
    // inotify watches a new folder only after its creation event is read, so a file
    // landing in it at once can slip past the events; the watcher must still find it.
    let env = Env::local("300ms", "", "");
    let _d = env.spawn_ready();
    for i in 0..100u64 {
        env.drop_file(
            &format!("new{i}/deeper/f.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    env.wait_done(100, Duration::from_secs(60));
}

/// systemd's notify protocol, over a real datagram socket: `READY=1` once the
/// daemon runs, a `STATUS=` summary every few seconds with the files' counts and
/// the rate, `STOPPING=1` at SIGTERM.
#[test]
fn systemd_hears_ready_a_status_line_and_stopping() {
    let env = Env::local("200ms", "", "");
    let socket = env.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&socket).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut daemon = env.spawn_with(|c| {
        c.env("NOTIFY_SOCKET", &socket);
    });
    let mut heard: Vec<String> = Vec::new();
    let mut listen = |until: &dyn Fn(&[String]) -> bool, what: &str| {
        let t0 = Instant::now();
        let mut buf = [0u8; 4096];
        while !until(&heard) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no {what}: {heard:?}"
            );
            if let Ok(n) = sock.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    listen(&|h| h.iter().any(|m| m.contains("READY=1")), "READY=1");
    env.drop_file("one.txt", b"one");
    env.wait_done(1, Duration::from_secs(30));
    listen(
        &|h| {
            h.iter()
                .any(|m| m.starts_with("STATUS=") && m.contains("queued"))
        },
        "STATUS= summary",
    );
    daemon.sigterm();
    listen(
        &|h| h.iter().any(|m| m.contains("STOPPING=1")),
        "STOPPING=1",
    );
    assert_eq!(
        daemon
            .wait_exit(Duration::from_secs(20))
            .and_then(|s| s.code()),
        Some(0)
    );
    let status = heard
        .iter()
        .find(|m| m.starts_with("STATUS=") && m.contains("queued"))
        .cloned()
        .unwrap_or_default();
    assert!(
        status.contains("uploading") && status.contains("failed") && status.ends_with("/s"),
        "{status}"
    );
    println!("figure: systemd heard {heard:?}");
}

/// systemd's watchdog (`WatchdogSec=`): fed while the daemon idles, withheld once an
/// upload hangs beyond every timeout (here a service that never answers, with the
/// timeouts at their 1-day maximum and `daemon.stuck_after` at 3 s), but not while a
/// slow upload takes longer than that and keeps moving; after the hang
/// this test does what systemd does (kill, start again) and the file is delivered.
#[test]
fn the_watchdog_is_withheld_while_a_hung_service_holds_an_upload_and_a_restart_delivers() {
    use dropship_testbed::SettingsPatch;
    let rt = common::runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = common::start_testbed(&rt, store.path(), Default::default());
    let base = tb.emulator_url("box");
    let env = Env::new(
        "200ms",
        "stall_timeout = \"1d\"\nanswer_timeout = \"1d\"\nbandwidth_limit = \"64KiB\"",
        &format!(
            "type = \"box\"\napi_url = \"{base}\"\nupload_url = \"{base}\"\ntoken_file = \"token\"\nfolder_id = \"0\""
        ),
        "[daemon]\nstuck_after = \"3s\"",
    );
    std::fs::write(
        env.dir.path().join("token"),
        dropship_testbed::DEFAULT_SECRET,
    )
    .expect("token");
    let socket = env.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&socket).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let spawn = || {
        env.spawn_with(|c| {
            // WatchdogSec=0.4s; no WATCHDOG_PID: any process may feed it.
            c.env("NOTIFY_SOCKET", &socket)
                .env("WATCHDOG_USEC", "400000");
        })
    };
    // Like systemd, read every message as it comes: the instants of WATCHDOG=1.
    let fed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let reader = {
        let (sock, fed) = (sock.try_clone().expect("clone"), fed.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") => {
                        fed.lock().expect("fed").push(Instant::now())
                    }
                    Ok(n) if &buf[..n] == b"end" => return,
                    _ => {}
                }
            }
        })
    };
    let listen = |for_: Duration| -> Vec<Instant> {
        let t0 = Instant::now();
        std::thread::sleep(for_);
        let fed = fed.lock().expect("fed");
        fed.iter().copied().filter(|t| *t >= t0).collect()
    };
    let daemon = spawn();
    env.wait_log("dropship is running", Duration::from_secs(30));
    let idle = listen(Duration::from_secs(2));
    assert!(idle.len() >= 5, "fed {} times in 2 s of idling", idle.len());

    // An upload that takes longer than `stuck_after` but keeps moving is progress.
    env.drop_file("slow.bin", &random_bytes(384 * 1024, 6));
    let slow = listen(Duration::from_secs(4));
    assert!(
        slow.len() >= 15,
        "fed {} times in 4 s of a slow upload",
        slow.len()
    );
    env.wait_done(1, Duration::from_secs(30));
    assert!(!env.log_text().contains("withholding the watchdog"));

    tb.update_settings(SettingsPatch {
        hang_rate: Some(1.0),
        ..Default::default()
    });
    env.drop_file("hung.bin", &random_bytes(64 * 1024, 7));
    env.wait_log("withholding the watchdog", Duration::from_secs(30));
    // systemd would have fired: nothing for 5 intervals.
    let fed = listen(Duration::from_secs(2));
    assert!(fed.is_empty(), "still fed {} times while hung", fed.len());
    assert!(tb.stats().faults.hung > 0, "the service hung");

    // What systemd does next: kill it, start it again. The service answers again.
    daemon.kill9();
    tb.update_settings(SettingsPatch {
        hang_rate: Some(0.0),
        ..Default::default()
    });
    let _daemon = spawn();
    env.wait_done(2, Duration::from_secs(60));
    let fed = listen(Duration::from_secs(1));
    assert!(fed.len() >= 2, "fed again after the restart: {}", fed.len());
    let _ = std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.send_to(b"end", &socket));
    reader.join().expect("reader");
}
