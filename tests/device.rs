//! The device itself failing under a running daemon: the journal's disk full or
//! read-only. Needs root with CAP_SYS_ADMIN to mount a small tmpfs for the journal
//! (the tests run so here); elsewhere it prints that it skipped.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Env, read, wait_for};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A tmpfs of `size` at `dir`, unmounted on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Fills the filesystem at `dir` to the last byte; returns the filler's path.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0u8; 1]);
    let _ = f.sync_all();
    filler
}

/// `dropship status` as a table.
fn status_table(env: &Env) -> String {
    let out = Command::new(common::BIN)
        .args(["status", "--config"])
        .arg(&env.config)
        .output()
        .expect("run status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drops `n` files under `folder/`; returns what each must be stored as.
fn drop_files(env: &Env, folder: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let rel = format!("{folder}/{i}.txt");
            let data = format!("{folder} {i}").into_bytes();
            env.drop_file(&rel, &data);
            (rel, data)
        })
        .collect()
}

fn assert_delivered(env: &Env, files: &[(String, Vec<u8>)]) {
    for (rel, data) in files {
        assert_eq!(
            &read(&env.dir.path().join("remote").join(rel)),
            data,
            "{rel}"
        );
    }
}

/// The journal's disk full, then read-only, under a running daemon: it takes no
/// work it cannot record, says why once (log) and in `status` (which reads the
/// filesystem itself: the daemon cannot write it into the journal), loses nothing,
/// and records and sends everything by itself once the disk can be written.
#[test]
fn a_full_or_read_only_journal_disk_pauses_the_daemon_and_it_resumes_by_itself() {
    if !is_root() {
        println!("skipped: mounting a tmpfs for the journal needs root");
        return;
    }
    let env = Env::local("200ms", "", "");
    let state = env.dir.path().join("state");
    let Some(mount) = Mount::tmpfs(&state, "2m") else {
        // Root without CAP_SYS_ADMIN (a container): said, never a silent pass.
        println!("skipped: cannot mount a tmpfs here");
        return;
    };
    let mut daemon = env.spawn_ready();
    let before = drop_files(&env, "before", 1);
    env.wait_done(1, secs(30));

    // Full.
    let filler = fill(&state);
    let full = drop_files(&env, "full", 20);
    wait_for(secs(20), "the daemon to say the journal is full", || {
        env.log_text()
            .contains("cannot record files in the journal")
            .then_some(())
    });
    std::thread::sleep(secs(2)); // several retries of every file
    let said = env.log_lines(&["ERROR", "cannot record files in the journal"]);
    assert_eq!(said, 1, "said more than once:\n{}", env.log_text());
    let st = env.status();
    assert!(
        st["journal_disk"]["free_bytes"].as_u64() < Some(1 << 20),
        "{}",
        st["journal_disk"]
    );
    let table = status_table(&env);
    assert!(table.contains("journal: "), "{table}");
    assert!(
        daemon.wait_exit(Duration::ZERO).is_none(),
        "the daemon stopped"
    );
    std::fs::remove_file(&filler).expect("free space");
    env.wait_done(21, secs(30));
    assert_delivered(&env, &before);
    assert_delivered(&env, &full);
    assert!(env.log_text().contains("the journal can be written again"));

    // Read-only. Linux refuses to remount a filesystem read-only while a file on
    // it is open for writing, so this is the start of a daemon on one (an ext4 that
    // remounted itself read-only after an error): it says why and exits 1, which
    // systemd restarts until the journal can be written again.
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(secs(30)).and_then(|s| s.code()), Some(0));
    mount.remount("ro");
    let ro = drop_files(&env, "read-only", 5);
    let mut refused = env.spawn();
    let code = refused.wait_exit(secs(30)).and_then(|s| s.code());
    assert_eq!(code, Some(1), "{}", env.log_text());
    let log = env.log_text();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("journal"))
        .unwrap_or_default();
    assert!(last.contains("state/journal.db"), "{log}");
    let st = env.status();
    assert_eq!(
        st["journal_disk"]["read_only"], true,
        "{}",
        st["journal_disk"]
    );
    assert!(status_table(&env).contains("read-only"));
    mount.remount("rw");
    let daemon = env.spawn_ready();
    env.wait_done(26, secs(30));
    assert_delivered(&env, &ro);
    drop(daemon);
    drop(mount);
}

/// The watched folder on a filesystem of its own (a tmpfs here), delivered files
/// moved to a folder on another one: inotify sees the files, and the move, which
/// `rename` refuses across filesystems, is a copy then a delete.
#[test]
fn an_outbox_on_its_own_filesystem_is_watched_and_moved_out_of() {
    if !is_root() {
        println!("skipped: mounting a tmpfs for the outbox needs root");
        return;
    }
    let env = Env::local("200ms", "after = \"move\"\nmove_to = \"sent\"", "");
    let Some(_mount) = Mount::tmpfs(&env.outbox, "8m") else {
        println!("skipped: cannot mount a tmpfs here");
        return;
    };
    let _daemon = env.spawn_ready();
    let files = drop_files(&env, "sub", 3);
    env.wait_done(3, secs(30));
    assert_delivered(&env, &files);
    for (rel, data) in &files {
        let moved = env.dir.path().join("sent").join(rel);
        wait_for(secs(10), "the file moved", || moved.exists().then_some(()));
        assert_eq!(&read(&moved), data, "{rel}");
        assert!(!env.outbox.join(rel).exists(), "{rel} left in the outbox");
    }
}
