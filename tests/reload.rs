//! SIGHUP: the config read again by the running daemon. The real binary, real
//! signals, the local backend.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Env, random_bytes, wait_for};

const MIB: usize = 1 << 20;

fn sighup(d: &Daemon) {
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    assert_eq!(rc, 0, "kill SIGHUP");
}

/// Replaces `from` with `to` in the config file.
fn edit_config(env: &Env, from: &str, to: &str) {
    let text = std::fs::read_to_string(&env.config).expect("config");
    assert!(text.contains(from), "{from:?} not in the config:\n{text}");
    std::fs::write(&env.config, text.replacen(from, to, 1)).expect("config");
}

/// Sends SIGHUP and waits for the reload's outcome in the log (the `n`th such line).
fn reload_and_wait(env: &Env, d: &Daemon, needle: &str) -> String {
    let before = env.log_text().matches(needle).count();
    sighup(d);
    wait_for(Duration::from_secs(20), needle, || {
        let log = env.log_text();
        (log.matches(needle).count() > before).then_some(log)
    })
}

#[test]
fn a_reload_lifts_the_bandwidth_limit_of_a_running_upload_and_names_what_needs_a_restart() {
    let env = Env::local(
        "200ms",
        "bandwidth_limit = \"64KiB\"\nworkers = 1\npart_size = \"256KiB\"",
        "",
    );
    let mut daemon = env.spawn_ready();
    // 64 KiB/s: 4 MiB would take more than a minute.
    env.drop_file("big.bin", &random_bytes(4 * MIB, 3));
    env.wait_state("big.bin", "uploading", Duration::from_secs(20));
    edit_config(&env, "bandwidth_limit = \"64KiB\"\n", "");
    edit_config(&env, "workers = 1", "workers = 3");
    edit_config(&env, "part_size = \"256KiB\"", "part_size = \"1MiB\"");
    let t0 = Instant::now();
    let log = reload_and_wait(&env, &daemon, "configuration reloaded");
    let line = log
        .lines()
        .rfind(|l| l.contains("configuration reloaded"))
        .expect("line");
    assert!(
        line.contains("upload.bandwidth_limit") && line.contains("upload.workers"),
        "{line}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("apply only after a restart") && l.contains("upload.part_size")),
        "{log}"
    );
    env.wait_state("big.bin", "done", Duration::from_secs(30));
    println!(
        "figure: the rest of a 4 MiB file delivered {:.1} s after the limit was lifted",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the limit still held"
    );
    // Three workers now: three files in flight at once under a new limit.
    edit_config(
        &env,
        "[upload]\n",
        "[upload]\nbandwidth_limit = \"64KiB\"\n",
    );
    reload_and_wait(&env, &daemon, "configuration reloaded");
    for i in 0..3 {
        env.drop_file(&format!("w{i}.bin"), &random_bytes(MIB, 10 + i));
    }
    let st = wait_for(Duration::from_secs(20), "three in flight", || {
        let st = env.status();
        (st["in_flight"].as_array()?.len() == 3).then_some(st)
    });
    assert_eq!(st["counts"]["uploading"], 3, "{st:#}");
    assert!(daemon.is_running());
    daemon.sigterm();
    assert_eq!(
        daemon
            .wait_exit(Duration::from_secs(30))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn a_broken_config_is_refused_and_the_running_one_stays() {
    let env = Env::local("200ms", "", "");
    let daemon = env.spawn_ready();
    let good = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        good.replace("[upload]\n", "[upload]\nworkers = 0\n"),
    )
    .expect("config");
    let log = reload_and_wait(&env, &daemon, "reload refused");
    let line = log
        .lines()
        .rfind(|l| l.contains("reload refused"))
        .expect("line");
    assert!(line.contains("upload.workers"), "names the key: {line}");
    std::fs::write(&env.config, "[watch\npath = ").expect("config");
    reload_and_wait(&env, &daemon, "reload refused");
    assert!(daemon.is_running());
    // (`status` reads the config file too.)
    std::fs::write(&env.config, &good).expect("config");
    env.drop_file("after.txt", b"still delivered");
    env.wait_state("after.txt", "done", Duration::from_secs(20));
}

#[test]
fn a_reload_applies_new_ignore_patterns_and_log_level() {
    let env = Env::local("200ms", "", "");
    edit_config(&env, "[watch]\n", "[watch]\nignore = [\"*.log\"]\n");
    // The config's filter, not the tests' usual DROPSHIP_LOG.
    std::fs::write(
        &env.config,
        std::fs::read_to_string(&env.config).expect("config") + "\n[daemon]\nlog = \"warn\"\n",
    )
    .expect("config");
    let daemon = env.spawn_with(|c| {
        c.env_remove("DROPSHIP_LOG").env_remove("RUST_LOG");
    });
    // At `warn`, the start says nothing: wait for the status to show it running.
    wait_for(Duration::from_secs(20), "the daemon to run", || {
        env.status()["daemon_running"].as_bool().filter(|r| *r)
    });
    env.drop_file("app.log", b"ignored for now");
    env.drop_file("seen.txt", b"not ignored");
    env.wait_state("seen.txt", "done", Duration::from_secs(20));
    assert!(env.rows("app.log").is_empty(), "app.log is ignored");
    assert!(!env.log_text().contains("INFO"), "warn level at start");

    edit_config(&env, "ignore = [\"*.log\"]\n", "ignore = [\".*\"]\n");
    edit_config(&env, "log = \"warn\"", "log = \"info\"");
    sighup(&daemon);
    env.wait_state("app.log", "done", Duration::from_secs(20));
    env.wait_log("configuration reloaded", Duration::from_secs(20));
}

#[test]
fn a_reload_reads_a_rotated_token_and_never_logs_it() {
    use dropship_testbed::DEFAULT_SECRET;
    let rt = common::runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = common::start_testbed(&rt, store.path(), Default::default());
    let base = tb.emulator_url("box");
    let env = Env::new(
        "200ms",
        "",
        &format!(
            "type = \"box\"\napi_url = \"{base}\"\nupload_url = \"{base}\"\ntoken_file = \"token\"\nfolder_id = \"0\""
        ),
        "",
    );
    let token = env.dir.path().join("token");
    std::fs::write(&token, DEFAULT_SECRET).expect("token");
    let daemon = env.spawn_ready();
    let requests = || tb.stats().requests;
    let r0 = requests();
    env.drop_file("before.txt", b"sent with the old token");
    env.wait_state("before.txt", "done", Duration::from_secs(20));
    let first = requests() - r0;
    // Rotated on the service and in the file, as a provisioning job would.
    let rotated = "rotated-by-provisioning-7f3a";
    tb.set_secret(rotated);
    std::fs::write(&token, rotated).expect("token");
    let log = reload_and_wait(&env, &daemon, "configuration reloaded");
    let line = log
        .lines()
        .rfind(|l| l.contains("configuration reloaded"))
        .expect("line");
    assert!(line.contains("new_credentials=true"), "{line}");
    let r1 = requests();
    env.drop_file("after.txt", b"sent with the new token");
    env.wait_state("after.txt", "done", Duration::from_secs(20));
    // No 401 and second try: the new token was in use before the first request.
    assert_eq!(requests() - r1, first, "requests for the same upload");
    let log = env.log_text();
    assert!(
        !log.contains(rotated) && !log.contains(DEFAULT_SECRET),
        "{log}"
    );
}
