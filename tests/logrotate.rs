//! Log shipping with the real logrotate: `config/examples/logrotate/` (the snippet for
//! /etc/logrotate.d/ and its dropship.toml) run as shipped, but for paths, the group,
//! the postrotate command and the backend (a local folder).
//!
//! A writer process appends numbered lines to a log and reopens it on SIGHUP, as a
//! daemon does, 200 ms after the rename; logrotate (`-f`, its own state file) rotates
//! the log into the outbox six times while the writer runs. Then: every rotated log was delivered exactly
//! once, compressed, under its templated key, and deleted locally after
//! verification; and every line the writer wrote is in exactly one delivered object
//! (none lost to the rotation, none sent twice).
//!
//! logrotate comes from `$DROPSHIP_LOGROTATE` (`.ci/run` installs Debian's package
//! and sets it; a path that is not there fails the test), else from the usual
//! places; without one the test says so and passes as skipped.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use common::{Env, wait_for};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/logrotate");
const ROTATIONS: usize = 6;

fn logrotate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DROPSHIP_LOGROTATE") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "DROPSHIP_LOGROTATE={} is not a file",
            p.display()
        );
        return Some(p);
    }
    [
        "/usr/sbin/logrotate",
        "/usr/bin/logrotate",
        "/sbin/logrotate",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// `text` with `from` replaced by `to`; the example must still contain `from`, so
/// that a change to it shows here rather than testing something else.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example no longer has {from:?}");
    text.replace(from, to)
}

/// The example's dropship.toml, with the test's folders and a local backend.
fn daemon_config(env: &Env) -> String {
    let text = std::fs::read_to_string(Path::new(EXAMPLES).join("dropship.toml"))
        .expect("example dropship.toml");
    let mut t: toml::Table = text.parse().expect("example dropship.toml is TOML");
    let table = |t: &mut toml::Table, name: &str| -> toml::Table {
        t.get(name)
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_else(|| panic!("the example has no [{name}]"))
    };
    let mut watch = table(&mut t, "watch");
    watch.insert("path".into(), env.outbox.display().to_string().into());
    t.insert("watch".into(), watch.into());
    let mut journal = table(&mut t, "journal");
    journal.insert(
        "path".into(),
        env.dir
            .path()
            .join("state/journal.db")
            .display()
            .to_string()
            .into(),
    );
    t.insert("journal".into(), journal.into());
    let mut backend = toml::Table::new();
    backend.insert("type".into(), "local".into());
    backend.insert("path".into(), env.remote().display().to_string().into());
    t.insert("backend".into(), backend.into());
    toml::to_string(&t).expect("config")
}

/// The example's logrotate snippet, for `logs` and the test's outbox; the writer is
/// told to reopen through its pid file.
fn logrotate_config(env: &Env, logs: &Path, pid_file: &Path) -> String {
    let text = std::fs::read_to_string(Path::new(EXAMPLES).join("app")).expect("example app");
    let text = swap(&text, "/var/log/app", &logs.display().to_string());
    let text = swap(
        &text,
        "/var/spool/dropship/outbox",
        &env.outbox.display().to_string(),
    );
    // No group "dropship" here: the test runs as root.
    let text = swap(&text, "root dropship", "root root");
    swap(
        &text,
        "systemctl kill --signal=HUP app.service",
        // A service slow to reopen: its writes land in the rotated file for 200 ms.
        &format!("sleep 0.2; kill -HUP \"$(cat {})\"", pid_file.display()),
    )
}

/// A bash process that appends `seq=<n>` lines to a log as fast as a busy service
/// might (about 5,000 a second), reopening it on SIGHUP and stopping on SIGTERM.
/// Killed when dropped, so a failed test leaves no writer behind.
struct Writer(std::sync::Mutex<Option<Child>>);

impl Writer {
    fn start(log: &Path, pid_file: &Path) -> Writer {
        let script = r#"
            log=$1
            exec 3>>"$log"
            trap 'exec 3>>"$log"' HUP
            trap 'exit 0' TERM
            echo $$ > "$2.tmp" && mv "$2.tmp" "$2"
            i=0
            while :; do
                printf '%(%Y-%m-%dT%H:%M:%S)T INFO worker=%d seq=%08d request served\n' -1 $((i % 7)) $i >&3
                i=$((i + 1))
                if (( i % 50 == 0 )); then sleep 0.01; fi
            done
        "#;
        let child = Command::new("bash")
            .args(["-c", script, "writer"])
            .arg(log)
            .arg(pid_file)
            .spawn()
            .expect("bash");
        let writer = Writer(std::sync::Mutex::new(Some(child)));
        wait_for(Duration::from_secs(10), "the writer's pid file", || {
            pid_file.exists().then_some(())
        });
        writer
    }

    /// SIGTERM, and waits for it to exit (cleanly: the trap exits 0).
    fn stop(&self) {
        let child = self.0.lock().ok().and_then(|mut c| c.take());
        if let Some(mut child) = child {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let status = child.wait().expect("writer");
            assert!(status.success(), "writer: {status:?}");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.get_mut().ok().and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs logrotate once (`-f`, verbose); returns the rotated log's new name.
fn rotate(logrotate: &Path, conf: &Path, state: &Path) -> String {
    let out = Command::new(logrotate)
        .args(["-v", "-f", "-s"])
        .arg(state)
        .arg(conf)
        .output()
        .expect("logrotate");
    // -v talks on stderr; "renaming <log> to <olddir>/<name>" is the rotation.
    let talk = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !talk.contains("error"),
        "logrotate: {:?}\n{talk}",
        out.status
    );
    let renamed: Vec<&str> = talk
        .lines()
        .filter_map(|l| l.strip_prefix("renaming "))
        .filter_map(|l| l.rsplit_once(" to "))
        .map(|(_, to)| to.rsplit('/').next().unwrap_or(to))
        .collect();
    assert_eq!(renamed.len(), 1, "one log rotated: {talk}");
    renamed[0].to_string()
}

/// The `seq=` numbers of a log's lines.
fn seqs(text: &str) -> Vec<u64> {
    text.lines()
        .map(|l| {
            l.split_once("seq=")
                .and_then(|(_, rest)| rest.get(..8))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a writer's line: {l:?}"))
        })
        .collect()
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn every_rotated_log_is_delivered_once_compressed_and_removed() {
    let Some(logrotate) = logrotate() else {
        eprintln!("skipped: logrotate is not installed (apt-get install logrotate)");
        return;
    };
    let env = Env::local("1s", "", "");
    std::fs::write(&env.config, daemon_config(&env)).expect("config");
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let pid_file = env.dir.path().join("writer.pid");
    let conf = env.dir.path().join("logrotate.conf");
    std::fs::write(&conf, logrotate_config(&env, &logs, &pid_file)).expect("conf");
    let state = env.dir.path().join("logrotate.state");

    let mut daemon = env.spawn_ready();
    let writer = Writer::start(&logs.join("app.log"), &pid_file);
    let mut rotated = Vec::new();
    for i in 0..ROTATIONS {
        // dateformat has whole seconds: one rotation per second at most.
        std::thread::sleep(Duration::from_millis(1100));
        if i == ROTATIONS - 1 {
            // The last rotation takes everything: the writer stops first.
            writer.stop();
            std::thread::sleep(Duration::from_millis(1100));
        }
        let name = rotate(&logrotate, &conf, &state);
        assert!(!rotated.contains(&name), "{name} rotated twice");
        rotated.push(name);
    }

    // Every rotated log is done, once, and then gone from the outbox.
    let mut rows = BTreeMap::new();
    for name in &rotated {
        let rel = format!("app/{name}");
        let row = env.wait_state(&rel, "done", Duration::from_secs(60));
        let all = env.rows(&rel);
        assert_eq!(all.len(), 1, "{rel} queued once: {all:?}");
        rows.insert(name.clone(), row);
    }
    wait_for(Duration::from_secs(20), "delivered logs deleted", || {
        files_under(&env.outbox).is_empty().then_some(())
    });
    let status = env.status();
    let files = status["files"].as_array().expect("files");
    assert_eq!(files.len(), ROTATIONS, "no other row: {status}");

    // Each under its templated key, compressed; the remote holds nothing else.
    let host = dropship::keys::host_name();
    let today = jiff::Timestamp::now();
    let days: Vec<String> = [today, today - jiff::SignedDuration::from_hours(24)]
        .iter()
        .map(|t| t.strftime("%Y/%m/%d").to_string())
        .collect();
    let mut lines = Vec::new();
    for (name, row) in &rows {
        let key = row["key"].as_str().expect("key");
        let prefix = format!("{host}/logs/app/");
        let rest = key
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(&format!("/{name}.zst")))
            .unwrap_or_else(|| panic!("{key} is not {prefix}<date>/{name}.zst"));
        assert!(
            days.iter().any(|d| d == rest),
            "{key}: the date of its mtime"
        );
        assert_eq!(row["rule"], "app/*.log-*", "{row}");
        let stored = std::fs::read(env.remote().join(key)).expect("stored object");
        let text = zstd::decode_all(stored.as_slice()).expect("a zstd frame");
        lines.extend(seqs(&String::from_utf8(text).expect("text")));
    }
    let remote = files_under(&env.remote());
    assert_eq!(remote.len(), ROTATIONS, "{remote:?}");

    // Every line written is in exactly one object: nothing lost, nothing twice.
    let live = std::fs::read_to_string(logs.join("app.log")).expect("the new log");
    lines.extend(seqs(&live));
    let n = lines.len() as u64;
    assert!(n > 1000, "the writer wrote {n} lines");
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len() as u64, n, "a line delivered twice");
    assert_eq!(sorted.last().copied(), Some(n - 1), "a line lost");
    // In order, too: objects sorted by name (the rotation time) hold ascending runs.
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "lines out of order");
    eprintln!("{ROTATIONS} rotated logs, {n} lines, each delivered once");
    daemon.sigterm();
    daemon.wait_exit(Duration::from_secs(15));
}

/// The same without logrotate: a file renamed into the outbox while its writer still
/// holds it open is not taken until the writer closes it; then all of it is sent,
/// once. (A rename alone used to count as finished.)
#[test]
fn a_file_renamed_in_while_still_written_is_taken_when_closed() {
    use std::io::Write;
    // A long settle: only the close may finish the file within the test.
    let env = Env::local("30s", "", "");
    let staging = env.dir.path().join("staging");
    std::fs::create_dir_all(&staging).expect("staging");
    let _daemon = env.spawn_ready();
    let mut log = std::fs::File::create(staging.join("app.log")).expect("create");
    log.write_all(b"before the rename\n").expect("write");
    std::fs::rename(staging.join("app.log"), env.outbox.join("app.log")).expect("rename");
    log.write_all(b"after the rename\n").expect("write");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        env.rows("app.log").is_empty(),
        "taken while still open for writing: {:?}",
        env.rows("app.log")
    );
    log.write_all(b"last line\n").expect("write");
    drop(log);
    env.wait_state("app.log", "done", Duration::from_secs(20));
    assert_eq!(env.rows("app.log").len(), 1);
    assert_eq!(
        std::fs::read(env.remote().join("app.log")).expect("stored"),
        b"before the rename\nafter the rename\nlast line\n"
    );
}
