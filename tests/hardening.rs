//! What the outbox and the machine can do to the daemon, end to end on the
//! local-directory backend: symbolic links, staging folders, writers that keep a file
//! open, folders that cannot be read, a shutdown during start-up, the leftovers of a
//! crash between beginning a session and recording it, and a journal another process
//! keeps locked. The real binary, real files, real signals.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Env, read, wait_for};
use dropship::backend::{Backend, FileSpec};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Rows of every file the daemon recorded, by path relative to the outbox.
fn recorded(env: &Env) -> Vec<String> {
    let prefix = format!("{}/", env.outbox.display());
    env.status()["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            f["path"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches(&prefix)
                .to_string()
        })
        .collect()
}

#[test]
fn symbolic_links_are_never_followed_out_of_the_outbox() {
    let env = Env::local("300ms", "after = \"delete\"", "");
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("sub")).expect("mkdir");
    std::fs::write(elsewhere.join("before.txt"), b"there before the start").expect("write");
    std::os::unix::fs::symlink(&elsewhere, env.outbox.join("link")).expect("folder link");
    std::os::unix::fs::symlink(
        elsewhere.join("before.txt"),
        env.outbox.join("file-link.txt"),
    )
    .expect("file link");
    let _d = env.spawn_ready();
    // Written after the start: with the link followed, it would arrive as link/...
    std::fs::write(elsewhere.join("after.txt"), b"written after the start").expect("write");
    std::fs::write(elsewhere.join("sub/deeper.txt"), b"deeper").expect("write");
    // A link to the outbox itself (a loop), and one to a file inside it.
    std::os::unix::fs::symlink(&env.outbox, env.outbox.join("loop")).expect("loop link");
    std::fs::write(env.outbox.join("inside.txt"), b"inside").expect("write");
    std::os::unix::fs::symlink(
        env.outbox.join("inside.txt"),
        env.outbox.join("inside-link.txt"),
    )
    .expect("inside link");
    // A real file, so that there is something to wait for.
    env.drop_file("real.txt", b"a real file");
    env.wait_state("real.txt", "done", secs(30));
    // Three settle periods for anything that slipped through to show.
    std::thread::sleep(Duration::from_millis(1200));
    // The file inside is sent as itself, once; no link is sent or followed.
    let mut got = recorded(&env);
    got.sort();
    assert_eq!(got, vec!["inside.txt".to_string(), "real.txt".to_string()]);
    assert!(!env.remote().join("inside-link.txt").exists());
    assert!(!env.remote().join("loop").exists());
    for f in ["before.txt", "after.txt", "sub/deeper.txt"] {
        assert!(
            elsewhere.join(f).exists(),
            "{f} was deleted through the link"
        );
        assert!(!env.remote().join("link").join(f).exists(), "{f} was sent");
    }
    assert!(!env.remote().join("file-link.txt").exists());
    assert!(
        !env.outbox.join("real.txt").exists(),
        "the real file is deleted"
    );
}

#[test]
fn files_in_ignored_folders_wait_for_their_rename() {
    // A producer staging in `.incoming/` and renaming into place; a `*.tmp` folder.
    let env = Env::local("300ms", "", "");
    let _d = env.spawn_ready();
    let staging = env.outbox.join(".incoming");
    std::fs::create_dir_all(&staging).expect("mkdir");
    std::fs::create_dir_all(env.outbox.join("work.tmp/inner")).expect("mkdir");
    std::fs::write(staging.join("report.csv"), b"a,b\n1,2\n").expect("write");
    std::fs::write(env.outbox.join("work.tmp/inner/part.dat"), b"scratch").expect("write");
    // Long enough to settle, were it watched.
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::rename(staging.join("report.csv"), env.outbox.join("report.csv")).expect("rename");
    env.wait_state("report.csv", "done", secs(30));
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(recorded(&env), vec!["report.csv".to_string()], "sent once");
    assert!(!env.remote().join(".incoming").exists());
    assert!(!env.remote().join("work.tmp").exists());
}

#[test]
fn a_file_still_open_for_writing_is_not_deleted_until_its_writer_closes_it() {
    use std::io::Write;
    let env = Env::local("300ms", "after = \"delete\"", "");
    let _d = env.spawn_ready();
    let path = env.outbox.join("app.log");
    let mut writer = std::fs::File::create(&path).expect("create");
    writer.write_all(b"first part\n").expect("write");
    // The writer pauses longer than `settle`: the file looks finished and is sent...
    // The row waits as `retrying` between attempts (each finds the writer again and
    // keeps the error); polled in the middle of one, it is `uploading` for a moment.
    wait_for(secs(30), "delivery, with the delete postponed", || {
        env.rows("app.log").pop().filter(|r| {
            r["state"] == "retrying"
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("open for writing"))
        })
    });
    assert_eq!(read(&env.remote().join("app.log")), b"first part\n");
    // ...but not deleted: its next writes land in the file, not in an unlinked inode.
    std::thread::sleep(Duration::from_millis(500));
    assert!(path.exists(), "deleted while a writer held it open");
    writer.write_all(b"second part\n").expect("write");
    drop(writer);
    wait_for(
        secs(30),
        "the whole content delivered and the file deleted",
        || {
            let done = env.rows("app.log").pop().filter(|r| r["state"] == "done")?;
            (!path.exists()).then_some(done)
        },
    );
    assert_eq!(
        read(&env.remote().join("app.log")),
        b"first part\nsecond part\n"
    );
}

#[test]
fn sigterm_during_a_long_start_up_scan_exits_zero_at_once() {
    let env = Env::local("300ms", "", "");
    // Enough files that listing and recording them takes a while (500 a commit, the
    // walk streaming batches to the journal as it goes).
    for i in 0..20_000 {
        std::fs::write(env.outbox.join(format!("f{i:05}.txt")), i.to_string()).expect("write");
    }
    // Older than `settle`, so the scan records each one (instead of watching it).
    std::thread::sleep(Duration::from_millis(400));
    let mut daemon = env.spawn();
    let journal = env.dir.path().join("state/journal.db");
    // The journal is opened after the signal handlers are in place.
    wait_for(secs(30), "the journal to be created", || {
        journal.exists().then_some(())
    });
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    daemon.sigterm();
    let status = daemon.wait_exit(secs(20)).expect("exited");
    let took = t0.elapsed();
    let log = env.log_text();
    assert!(
        !log.contains("dropship is running"),
        "the scan ended before the signal; the case proved nothing"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    println!(
        "figure: SIGTERM during the start-up scan: exit 0 after {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < secs(5), "took {took:?}");
}

#[test]
fn staging_that_no_journal_session_names_is_swept_at_start() {
    let env = Env::local("300ms", "", "");
    let remote = env.remote();
    // A daemon that died after `begin` and before recording the session left this:
    // a staging folder with a sparse file of the full size, and a half single file.
    let backend = dropship::backend::local::LocalBackend::new(&remote).expect("backend");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let orphan = rt
        .block_on(backend.begin(&FileSpec {
            key: "big.bin".into(),
            size: 64 << 20,
            mtime: 0,
            content_type: None,
        }))
        .expect("begin");
    let staging = remote.join(dropship::backend::local::STAGING_DIR);
    std::fs::write(staging.join("single-00c0ffee"), b"half").expect("write");
    assert_eq!(std::fs::read_dir(&staging).expect("list").count(), 2);
    let _d = env.spawn_ready();
    wait_for(secs(10), "the staging folder to be swept", || {
        (std::fs::read_dir(&staging).expect("list").count() == 0).then_some(())
    });
    assert!(!staging.join(&orphan.id).exists());
    assert!(
        env.log_text()
            .contains("discarded sessions nobody recorded")
    );
    // And the daemon works as usual afterwards.
    env.drop_file("after.txt", b"delivered");
    env.wait_state("after.txt", "done", secs(30));
}

#[test]
fn an_unreadable_folder_is_reported_once_and_its_files_sent_once_readable() {
    // Permissions do not stop root: run the daemon as another user when we are root.
    let root = unsafe { libc::geteuid() } == 0;
    let env = Env::with_watch(
        "300ms",
        "rescan = \"1s\"",
        "",
        "type = \"local\"\npath = \"remote\"",
        "",
    );
    let locked = env.outbox.join("locked");
    std::fs::create_dir_all(&locked).expect("mkdir");
    std::fs::write(locked.join("x.txt"), b"waited").expect("write");
    if root {
        for dir in [env.dir.path(), env.outbox.as_path()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let _d = if root {
        env.spawn_as(65534)
    } else {
        env.spawn()
    };
    let topic = format!("watch:{}", locked.display());
    let notice = wait_for(secs(30), "the folder to be reported", || {
        env.status()["notices"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["topic"] == topic.as_str()).cloned())
    });
    assert_eq!(notice["state"], "unreadable", "{notice}");
    // Several rescans later, still one warning.
    std::thread::sleep(Duration::from_millis(2500));
    let warnings = env.log_lines(&["WARN", "cannot read a folder"]);
    assert_eq!(warnings, 1, "{}", env.log_text());
    let table = env.cli(&["status"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("unreadable"));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    env.wait_state("locked/x.txt", "done", secs(30));
    wait_for(secs(10), "the notice to clear", || {
        let st = env.status();
        st["notices"]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["topic"] != topic.as_str()))
            .then_some(())
    });
}

#[test]
fn a_burst_of_files_faster_than_the_watcher_loses_none() {
    // Three events a file, far more than the watcher's queue holds: overflowing it
    // (or the kernel's) costs a rescan, never a file.
    const FILES: usize = 6000;
    let env = Env::local("300ms", "", "");
    let _d = env.spawn_ready();
    for i in 0..FILES {
        std::fs::write(env.outbox.join(format!("b{i:05}.txt")), i.to_string()).expect("write");
    }
    let t0 = Instant::now();
    wait_for(secs(300), "every file recorded", || {
        (env.status()["files"].as_array().map_or(0, Vec::len) == FILES).then_some(())
    });
    let log = env.log_text();
    // Lost events are said once at WARN, however often they are lost, and counted in
    // `status`.
    let lost = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("rescanning (said once"))
        .count();
    let notice = env.status()["notices"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["topic"] == "watch:overflow").cloned());
    assert!(lost <= 1, "{lost} warnings of lost events");
    assert_eq!(lost == 1, notice.is_some(), "{notice:?}");
    if let Some(n) = &notice {
        assert_eq!(n["state"], "events_lost", "{n}");
    }
    println!(
        "figure: {FILES} files written at once, all recorded {:.1} s later; event queue overflowed: {}, kernel dropped events: {}",
        t0.elapsed().as_secs_f64(),
        log.contains("file events came faster"),
        log.contains("the kernel dropped file events")
    );
}

/// The journal deleted, or replaced by another file, under a running daemon: SQLite
/// would go on writing to the unlinked file, and the next start would send every
/// file still in the outbox again. The daemon notices, says so and exits 3, which
/// the systemd unit does not restart.
#[test]
fn a_journal_deleted_or_replaced_under_the_daemon_stops_it_with_exit_3() {
    for what in ["deleted", "replaced"] {
        let env = Env::local("200ms", "", "");
        let mut daemon = env.spawn_ready();
        env.drop_file("kept.txt", b"delivered before the journal went");
        env.wait_done(1, secs(30));
        let journal = env.dir.path().join("state/journal.db");
        match what {
            "deleted" => std::fs::remove_file(&journal).expect("delete"),
            _ => {
                let other = env.dir.path().join("state/other.db");
                std::fs::copy(&journal, &other).expect("copy");
                std::fs::rename(&other, &journal).expect("replace");
            }
        }
        let status = daemon.wait_exit(secs(15)).expect("the daemon exits");
        assert_eq!(status.code(), Some(3), "{what}: {}", env.log_text());
        let log = env.log_text();
        assert!(
            log.contains(&format!("was {what} while the daemon ran")),
            "{what}: {log}"
        );
    }
}

/// The watched folder removed (a careless cleanup) and made again: files dropped
/// into the new folder are found without waiting for the periodic rescan.
#[test]
fn the_watched_folder_removed_and_made_again_is_watched_again() {
    let env = Env::local("200ms", "", "");
    let _daemon = env.spawn_ready();
    env.drop_file("first.txt", b"before the folder went");
    env.wait_done(1, secs(30));
    std::fs::remove_dir_all(&env.outbox).expect("remove the outbox");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::create_dir_all(&env.outbox).expect("make it again");
    std::thread::sleep(Duration::from_millis(500));
    env.drop_file("sub/second.txt", b"after it came back");
    env.wait_done(2, secs(20));
    assert_eq!(
        read(&env.dir.path().join("remote/sub/second.txt")),
        b"after it came back"
    );
}

/// A file the daemon may not read (a producer that fixes the mode after writing):
/// skipped with the reason in `status`, tried again later, sent once readable.
#[test]
fn a_file_without_read_permission_waits_with_its_reason_and_is_sent_once_readable() {
    // Permissions do not stop root: run the daemon as another user when we are root.
    let root = unsafe { libc::geteuid() } == 0;
    let env = Env::local("200ms", "retry_max = \"500ms\"", "");
    if root {
        for dir in [env.dir.path(), env.outbox.as_path()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let _d = if root {
        env.spawn_as(65534)
    } else {
        env.spawn()
    };
    let path = env.outbox.join("closed.txt");
    std::fs::write(&path, b"readable at last").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let row = wait_for(secs(30), "several refused reads", || {
        env.rows("closed.txt")
            .pop()
            .filter(|r| r["attempts"].as_u64() >= Some(3))
    });
    // Between tries (or in one): never given up.
    assert!(
        row["state"] == "retrying" || row["state"] == "uploading",
        "{row}"
    );
    let why = row["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("cannot read the local file"), "{row}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    env.wait_state("closed.txt", "done", secs(30));
    assert_eq!(
        read(&env.dir.path().join("remote/closed.txt")),
        b"readable at last"
    );
}

/// A journal damaged while the daemon was down: it refuses to start, says which
/// file and why, and exits 3 (not restarted by systemd); the file is left as it was.
#[test]
fn a_damaged_journal_is_refused_with_exit_3_and_left_untouched() {
    let env = Env::local("200ms", "", "");
    {
        let mut d = env.spawn_ready();
        env.drop_file("one.txt", b"one");
        env.wait_done(1, secs(30));
        d.sigterm();
        assert_eq!(d.wait_exit(secs(30)).and_then(|s| s.code()), Some(0));
    }
    let journal = env.dir.path().join("state/journal.db");
    let mut bytes = std::fs::read(&journal).expect("journal");
    // Past the header: pages of the tables, overwritten with junk.
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xA5;
    }
    std::fs::write(&journal, &bytes).expect("damage");
    let mut d = env.spawn();
    let code = d.wait_exit(secs(30)).and_then(|s| s.code());
    assert_eq!(code, Some(3), "{}", env.log_text());
    let log = env.log_text();
    assert!(
        log.contains("journal.db") && log.contains("damaged"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&journal).expect("journal"),
        bytes,
        "the journal was changed"
    );
}

/// A journal that cannot be written for longer than its busy timeout while a file
/// is sent (a write lock held by another process here; a full disk on a device):
/// the attempt cannot record its outcome, and its row is released as soon as the
/// journal can be written again, however long that takes. It is delivered without
/// a restart. (Released after three tries at most, as it was, the row stayed
/// `uploading`, held by nobody, until the daemon restarted.)
#[test]
fn a_row_whose_outcome_could_not_be_recorded_is_released_once_the_journal_can_be_written() {
    let env = Env::local("100ms", "bandwidth_limit = \"64KiB\"", "");
    let _daemon = env.spawn_ready();
    let data = common::random_bytes(192 << 10, 9);
    env.drop_file("slow.bin", &data);
    env.wait_state("slow.bin", "uploading", secs(20));
    // Taken while the file is sent (3 s at the limit): the attempt's next writes
    // wait 5 s each for it, then fail.
    let journal = env.dir.path().join("state/journal.db");
    let lock = rusqlite::Connection::open(&journal).expect("open the journal");
    lock.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    env.wait_log("cannot release the row", secs(60));
    // Held past the third try of the release (about 16 s after the first).
    std::thread::sleep(secs(20));
    lock.execute_batch("COMMIT").expect("unlock");
    drop(lock);
    env.wait_done(1, secs(60));
    assert_eq!(read(&env.remote().join("slow.bin")), data);
    let said = env.log_lines(&["ERROR", "cannot release the row"]);
    assert_eq!(said, 1, "said more than once:\n{}", env.log_text());
}
