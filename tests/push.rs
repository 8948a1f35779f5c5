//! `dropship push` end to end on the local backend: the real binary, with and without
//! a daemon, files inside and outside the outbox, refusals and interruptions.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{BIN, Env, random_bytes, read, wait_for};
use serde_json::Value;

const MIB: usize = 1 << 20;

/// Writes `data` at `<tmp>/<rel>` (outside the outbox unless `rel` says otherwise).
fn write(env: &Env, rel: &str, data: &[u8]) -> PathBuf {
    let path = env.dir.path().join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, data).expect("write");
    path
}

fn push(env: &Env, files: &[&Path]) -> Output {
    let mut args = vec!["push"];
    args.extend(files.iter().map(|p| p.to_str().expect("UTF-8 test path")));
    env.cli(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The status rows of the file at `path` (as the journal records it: links resolved).
fn rows_of(env: &Env, path: &Path) -> Vec<Value> {
    let path = std::fs::canonicalize(path).expect("canonical");
    let shown = path.display().to_string();
    env.status()["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["path"] == shown.as_str())
        .cloned()
        .collect()
}

#[test]
fn pushes_files_from_outside_and_inside_the_outbox_without_a_daemon_and_keeps_them() {
    // `after = "delete"`: a pushed file is kept all the same.
    let env = Env::local("300ms", "after = \"delete\"\npart_size = \"1MiB\"", "");
    let big = random_bytes(3 * MIB + 17, 1);
    let small = random_bytes(1000, 2);
    let inside = random_bytes(5000, 3);
    let a = write(&env, "elsewhere/big.bin", &big);
    let b = write(&env, "other/place/small.txt", &small);
    let c = env.drop_file("sub/inside.dat", &inside);

    let out = push(&env, &[&a, &b, &c]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Outside: under its name; inside: under its path below the outbox.
    assert_eq!(read(&env.remote().join("big.bin")), big);
    assert_eq!(read(&env.remote().join("small.txt")), small);
    assert_eq!(read(&env.remote().join("sub/inside.dat")), inside);
    for (p, data) in [(&a, &big), (&b, &small), (&c, &inside)] {
        assert_eq!(&read(p), data, "{} must stay", p.display());
        let rows = rows_of(&env, p);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0]["state"], "done");
        assert_eq!(rows[0]["last_error"], Value::Null);
    }
    assert_eq!(env.status()["daemon_running"], false);

    // A daemon started afterwards finds the outbox file known and delivered: not
    // queued again, and not deleted either (its row is push's).
    let _daemon = env.spawn_ready();
    let st = env.status();
    assert_eq!(st["files"].as_array().expect("files").len(), 3, "{st:#}");
    assert_eq!(st["counts"]["done"], 3);
    assert_eq!(read(&c), inside);
}

#[test]
fn a_missing_file_fails_the_push_and_the_others_are_still_delivered() {
    let env = Env::local("300ms", "", "");
    let a = write(&env, "in/a.txt", b"alpha");
    let b = write(&env, "in/b.txt", b"beta");
    let missing = env.dir.path().join("in/missing.txt");
    let folder = env.dir.path().join("in");

    let out = push(&env, &[&a, &missing, &folder, &b]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("failed {}: no such file", missing.display())),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains(&format!("failed {}: is a folder", folder.display())),
        "{}",
        show(&out)
    );
    assert!(
        text(&out.stderr).contains("2 of 4 file(s) delivered, 2 failed"),
        "{}",
        show(&out)
    );
    assert_eq!(read(&env.remote().join("a.txt")), b"alpha");
    assert_eq!(read(&env.remote().join("b.txt")), b"beta");
    assert_eq!(env.status()["counts"]["done"], 2);
}

#[test]
fn with_a_daemon_running_the_daemon_uploads_and_push_follows() {
    let env = Env::local("300ms", "", "");
    let _daemon = env.spawn_ready();
    let data = random_bytes(2 * MIB + 5, 4);
    let a = write(&env, "elsewhere/via-daemon.bin", &data);

    let out = push(&env, &[&a]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("a daemon is running"),
        "{}",
        show(&out)
    );
    assert_eq!(read(&env.remote().join("via-daemon.bin")), data);
    assert_eq!(read(&a), data);
    // The daemon's engine did the work.
    env.wait_log("delivered and verified", Duration::from_secs(5));
    assert!(
        env.log_text()
            .lines()
            .any(|l| l.contains("via-daemon.bin") && l.contains("delivered and verified")),
        "{}",
        env.log_text()
    );
    let rows = rows_of(&env, &a);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "done");
}

#[test]
fn a_file_the_service_refuses_fails_the_push_with_the_reason() {
    // The service already holds the name, and `on_exists = "fail"` refuses it.
    let env = Env::local("300ms", "on_exists = \"fail\"", "");
    std::fs::create_dir_all(env.remote()).expect("remote");
    std::fs::write(env.remote().join("taken.bin"), b"somebody else's").expect("write");
    let a = write(&env, "elsewhere/taken.bin", b"ours");
    let b = write(&env, "elsewhere/free.bin", b"free");

    let out = push(&env, &[&a, &b]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    let failed = stdout
        .lines()
        .find(|l| l.starts_with(&format!("failed {}: ", a.display())))
        .unwrap_or_else(|| panic!("no failed line: {}", show(&out)));
    assert!(
        failed.contains("already holds taken.bin") && failed.contains("on_exists"),
        "{failed}"
    );
    assert!(text(&out.stderr).contains("1 of 2 file(s) delivered, 1 failed"));
    assert_eq!(read(&env.remote().join("taken.bin")), b"somebody else's");
    assert_eq!(read(&env.remote().join("free.bin")), b"free");
    assert_eq!(rows_of(&env, &a)[0]["state"], "failed");
}

#[test]
fn plain_lines_when_stdout_is_not_a_terminal() {
    let env = Env::local("300ms", "", "");
    let a = write(&env, "x/one.bin", &random_bytes(2 * MIB, 5));
    let b = write(&env, "x/two.txt", b"12345");
    let missing = env.dir.path().join("x/none.txt");

    let out = push(&env, &[&a, &b, &missing]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // No escape sequences or carriage returns: lines a log can keep.
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(
        lines[0],
        format!("failed {}: no such file", missing.display())
    );
    assert_eq!(
        lines[1],
        format!("pushing {} -> one.bin (2.0 MiB)", a.display())
    );
    assert_eq!(
        lines[2],
        format!("pushing {} -> two.txt (5 B)", b.display())
    );
    for (p, key, size) in [(&a, "one.bin", "2.0 MiB"), (&b, "two.txt", "5 B")] {
        let prefix = format!("done {} -> {key} ({size}, ", p.display());
        let done = lines[3..]
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {stdout}"));
        let secs = done[prefix.len()..]
            .strip_suffix(" s)")
            .unwrap_or_else(|| panic!("{done:?}"));
        assert!(secs.parse::<f64>().is_ok(), "{done:?}");
    }
}

#[test]
fn push_leaves_other_queued_files_to_the_daemon() {
    let env = Env::local(
        "300ms",
        "part_size = \"256KiB\"\nparts_in_flight = 1\nbandwidth_limit = \"256KiB/s\"",
        "",
    );
    // A daemon killed in the middle of an outbox file leaves it in the journal.
    let daemon = env.spawn_ready();
    env.drop_file("slow.bin", &random_bytes(4 * MIB, 6));
    wait_for(Duration::from_secs(30), "the upload to start", || {
        env.rows("slow.bin")
            .pop()
            .filter(|r| r["bytes_sent"].as_u64() > Some(0))
    });
    daemon.kill9();

    let a = write(&env, "elsewhere/mine.txt", b"mine");
    let out = push(&env, &[&a]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(read(&env.remote().join("mine.txt")), b"mine");
    // The outbox file was not claimed: put back in the queue, not sent.
    let row = env.rows("slow.bin").pop().expect("row");
    assert_eq!(row["state"], "queued", "{row:#}");
    assert!(!env.remote().join("slow.bin").exists());
}

#[test]
fn an_interrupted_push_leaves_its_files_for_the_daemon() {
    let env = Env::local(
        "300ms",
        "part_size = \"256KiB\"\nparts_in_flight = 1\nbandwidth_limit = \"512KiB/s\"",
        "[daemon]\nshutdown_timeout = \"2s\"",
    );
    let data = random_bytes(4 * MIB, 7);
    let a = write(&env, "elsewhere/long.bin", &data);
    let mut child = Command::new(BIN)
        .args(["push", a.to_str().expect("UTF-8"), "--config"])
        .arg(&env.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn push");
    wait_for(Duration::from_secs(30), "the upload to start", || {
        rows_of(&env, &a)
            .pop()
            .filter(|r| r["parts_uploaded"].as_u64() > Some(0))
    });
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0, "kill SIGINT");
    wait_for(Duration::from_secs(15), "push to exit", || {
        child.try_wait().expect("try_wait")
    });
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("stay in the journal"),
        "{}",
        show(&out)
    );
    let row = rows_of(&env, &a).pop().expect("row");
    assert_ne!(row["state"], "done", "{row:#}");
    assert!(!env.remote().join("long.bin").exists());

    // The daemon resumes it, without sending again what was acknowledged.
    let _daemon = env.spawn_ready();
    let row = wait_for(Duration::from_secs(60), "the daemon to deliver it", || {
        rows_of(&env, &a).pop().filter(|r| r["state"] == "done")
    });
    assert_eq!(read(&env.remote().join("long.bin")), data);
    assert_eq!(read(&a), data, "kept");
    let resent = row["bytes_sent"].as_u64().expect("bytes_sent") - data.len() as u64;
    assert!(
        resent <= 256 << 10,
        "re-sent {resent} bytes: more than the part in flight"
    );
}

#[test]
fn when_the_daemon_stops_push_finishes_the_work_itself() {
    let env = Env::local(
        "300ms",
        "part_size = \"256KiB\"\nparts_in_flight = 1\nbandwidth_limit = \"512KiB/s\"",
        "[daemon]\nshutdown_timeout = \"2s\"",
    );
    let mut daemon = env.spawn_ready();
    let data = random_bytes(3 * MIB, 8);
    let a = write(&env, "elsewhere/handed-over.bin", &data);
    let mut child = Command::new(BIN)
        .args(["push", a.to_str().expect("UTF-8"), "--config"])
        .arg(&env.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn push");
    wait_for(Duration::from_secs(30), "the daemon to start on it", || {
        rows_of(&env, &a)
            .pop()
            .filter(|r| r["parts_uploaded"].as_u64() > Some(0))
    });
    daemon.sigterm();
    assert!(daemon.wait_exit(Duration::from_secs(15)).is_some());

    // (Its output is small: the pipes cannot fill while it runs.)
    wait_for(Duration::from_secs(60), "push to finish", || {
        child.try_wait().expect("try_wait")
    });
    let out = child.wait_with_output().expect("push output");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("a daemon is running"), "{}", show(&out));
    assert!(
        stderr.contains("the daemon stopped; push uploads the rest itself"),
        "{}",
        show(&out)
    );
    assert_eq!(read(&env.remote().join("handed-over.bin")), data);
}
