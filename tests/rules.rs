//! Remote key templates and `[[rule]]` sections, end to end on the local backend:
//! the key a file is queued with, the rule that decides its post-action and
//! priority, and a template changed between restarts that moves no queued file.

mod common;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use common::{Env, random_bytes, wait_for};

/// Writes `data` to `<outbox>/<rel>` with modification time `mtime` (Unix seconds),
/// through a hidden name and a rename, as a careful producer does.
fn drop_with_mtime(env: &Env, rel: &str, data: &[u8], mtime: u64) {
    let dest = env.outbox.join(rel);
    let parent = dest.parent().expect("parent");
    std::fs::create_dir_all(parent).expect("mkdir");
    let tmp = parent.join(".incoming.tmp");
    std::fs::write(&tmp, data).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(&tmp)
        .expect("open");
    f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .expect("set mtime");
    drop(f);
    std::fs::rename(&tmp, &dest).expect("rename");
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

fn stored(env: &Env, key: &str) -> Option<Vec<u8>> {
    std::fs::read(env.remote().join(key)).ok()
}

#[test]
fn a_key_template_names_the_object_from_the_file_and_its_mtime() {
    let env = Env::local(
        "200ms",
        "key = \"{host}/{mtime:%Y/%m/%d}/{dir}/{stem}.{ext}\"",
        "",
    );
    let _d = env.spawn_ready();
    // 2026-01-02T03:04:05Z
    drop_with_mtime(&env, "app/x.log", b"a log line\n", 1_767_323_045);
    drop_with_mtime(&env, "README", b"top", 1_767_323_045);
    let row = env.wait_state("app/x.log", "done", Duration::from_secs(30));
    let want = format!("{}/2026/01/02/app/x.log", host());
    assert_eq!(row["key"], want.as_str(), "{row}");
    assert_eq!(stored(&env, &want).as_deref(), Some(&b"a log line\n"[..]));
    // An empty `{dir}` takes its `/`, an empty `{ext}` its `.`.
    let row = env.wait_state("README", "done", Duration::from_secs(30));
    let want = format!("{}/2026/01/02/README", host());
    assert_eq!(row["key"], want.as_str(), "{row}");
    assert!(stored(&env, &want).is_some());
}

#[test]
fn a_key_that_would_leave_the_remote_folder_refuses_the_file_with_a_reason() {
    let env = Env::local("200ms", "key = \"../{name}\"", "");
    let _d = env.spawn_ready();
    env.drop_file("escape.txt", b"stays here");
    let row = env.wait_state("escape.txt", "failed", Duration::from_secs(30));
    let why = row["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("`..`") && why.contains("upload.key"), "{row}");
    assert!(env.outbox.join("escape.txt").exists(), "the file stays");
    assert!(!env.dir.path().join("escape.txt").exists());
}

#[test]
fn rules_decide_key_post_action_and_show_in_status() {
    let env = Env::local(
        "200ms",
        "after = \"keep\"",
        "[[rule]]\nmatch = \"alarms/**\"\nkey = \"urgent/{name}\"\nafter = \"delete\"\npriority = 10\n\n\
         [[rule]]\nmatch = \"**/*.log\"\nkey = \"logs/{path}\"\n",
    );
    let _d = env.spawn_ready();
    env.drop_file("alarms/deep/a1.json", b"{\"alarm\":1}");
    env.drop_file("app/one.log", b"log");
    env.drop_file("other.bin", b"bin");
    let alarm = env.wait_state("alarms/deep/a1.json", "done", Duration::from_secs(30));
    assert_eq!(alarm["key"], "urgent/a1.json");
    assert_eq!(alarm["rule"], "alarms/**");
    let log = env.wait_state("app/one.log", "done", Duration::from_secs(30));
    assert_eq!(log["key"], "logs/app/one.log");
    assert_eq!(log["rule"], "**/*.log");
    let other = env.wait_state("other.bin", "done", Duration::from_secs(30));
    assert_eq!(other["key"], "other.bin");
    assert!(other["rule"].is_null(), "{other}");
    assert_eq!(
        stored(&env, "urgent/a1.json").as_deref(),
        Some(&b"{\"alarm\":1}"[..])
    );
    assert_eq!(
        stored(&env, "logs/app/one.log").as_deref(),
        Some(&b"log"[..])
    );
    // The alarm rule deletes; `[upload]` keeps.
    wait_for(Duration::from_secs(10), "the alarm file deleted", || {
        (!env.outbox.join("alarms/deep/a1.json").exists()).then_some(())
    });
    assert!(env.outbox.join("app/one.log").exists());
    assert!(env.outbox.join("other.bin").exists());
}

/// One worker on a slow link: bulk files queued first, an alarm after them; the
/// alarm is claimed before every bulk file still waiting.
#[test]
fn a_higher_priority_is_claimed_before_older_files() {
    let env = Env::local(
        "200ms",
        "workers = 1\nbandwidth_limit = \"512KiB\"",
        "[[rule]]\nmatch = \"alarms/*\"\npriority = 10\n",
    );
    let _d = env.spawn_ready();
    for i in 0..4 {
        env.drop_file(&format!("bulk/{i}.bin"), &random_bytes(512 << 10, i));
    }
    // Which bulk file goes first depends on the order the watcher saw them in.
    wait_for(
        Duration::from_secs(30),
        "one bulk file sent, two waiting",
        || {
            let c = env.status()["counts"].clone();
            (c["uploading"].as_u64() >= Some(1) && c["queued"].as_u64() >= Some(2)).then_some(())
        },
    );
    env.drop_file("alarms/fire.json", b"{}");
    env.wait_done(5, Duration::from_secs(60));
    let st = env.status();
    let done_at = |rel: &str| -> i64 {
        let path = env.outbox.join(rel).display().to_string();
        st["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"] == path.as_str())
            .and_then(|f| f["updated_at"].as_i64())
            .expect("a done row")
    };
    let alarm = done_at("alarms/fire.json");
    let bulk: Vec<i64> = (0..4).map(|i| done_at(&format!("bulk/{i}.bin"))).collect();
    // The one in flight when the alarm came may finish first, and one more may
    // have been claimed before the alarm was recorded; no other may.
    let before = bulk.iter().filter(|&&t| t < alarm).count();
    assert!(before <= 2, "alarm done at {alarm}, bulk at {bulk:?}");
}

/// The key is decided when a file is queued: a template changed across a restart
/// moves no file that was already queued; files queued after it follow the new one.
#[test]
fn a_template_changed_between_restarts_moves_no_queued_file() {
    let env = Env::local(
        "200ms",
        "workers = 1\nbandwidth_limit = \"256KiB\"\nkey = \"first/{path}\"",
        "",
    );
    let d = env.spawn_ready();
    let big = random_bytes(1 << 20, 1);
    env.drop_file("a.bin", &big);
    env.drop_file("b.bin", b"queued behind a.bin");
    env.wait_state("a.bin", "uploading", Duration::from_secs(30));
    let queued = env.wait_state("b.bin", "queued", Duration::from_secs(30));
    assert_eq!(queued["key"], "first/b.bin");
    d.kill9();
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replace("key = \"first/{path}\"", "key = \"second/{path}\"")
            .replace("bandwidth_limit = \"256KiB\"", ""),
    )
    .expect("config");
    let _d = env.spawn_ready();
    env.drop_file("c.bin", b"queued after the restart");
    env.wait_done(3, Duration::from_secs(60));
    assert_eq!(stored(&env, "first/a.bin").as_deref(), Some(&big[..]));
    assert!(stored(&env, "first/b.bin").is_some());
    assert!(stored(&env, "second/c.bin").is_some());
    assert!(!Path::new(&env.remote().join("second/a.bin")).exists());
    assert!(!Path::new(&env.remote().join("second/b.bin")).exists());
}
