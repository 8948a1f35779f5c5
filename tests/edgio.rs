//! Edgio behaviour the generic suite cannot stage: the asynchronous join (a file
//! resting in `joining` holds no worker; a restart polls and never completes again;
//! a failed join is restarted once, then the file begins again) and a token that
//! expires under a running upload. The real binary against the testbed's emulator,
//! on loopback.

mod common;

use std::time::Duration;

use dropship_testbed::{DEFAULT_SECRET, Settings, SettingsPatch, Testbed};

use common::{Env, random_bytes, runtime, start_testbed as start, wait_for};

const MIB: usize = 1 << 20;

/// The emulator with `settings`, and a daemon's environment against it (`upload`:
/// more `[upload]` lines). The runtime and the store last as long as this.
struct Bed {
    env: Env,
    tb: Testbed,
    _store: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn bed(settings: Settings, upload: &str) -> Bed {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start(&rt, store.path(), settings);
    Bed {
        env: env(&tb, upload),
        tb,
        _store: store,
        _rt: rt,
    }
}

/// A daemon's environment against `tb`: multipart above 1 MiB, 1 MiB pieces.
fn env(tb: &Testbed, upload: &str) -> Env {
    let base = tb.emulator_url("edgio");
    let backend = format!(
        "type = \"edgio\"\nupload_url = \"{base}\"\norigin_url = \"{base}/origin/testbed\"\nusername = \"testbed\"\npassword_file = \"edgio-password\"\ndirectory = \"uploads\"\nmultipart_above = \"1MiB\""
    );
    let upload = common::with_defaults("part_size = \"1MiB\"", upload);
    let env = Env::new("300ms", &upload, &backend, "");
    std::fs::write(env.dir.path().join("edgio-password"), DEFAULT_SECRET).expect("password");
    env
}

fn stored(tb: &Testbed, key: &str) -> Option<Vec<u8>> {
    tb.object_bytes("edgio", &format!("uploads/{key}")).ok()
}

/// Accepted calls of `operation` (the emulator counts them by name).
fn calls(tb: &Testbed, operation: &str) -> u64 {
    tb.stats()
        .emulators
        .get("edgio")
        .and_then(|e| e.calls.get(operation).copied())
        .unwrap_or(0)
}

/// A daemon killed while the service joins the pieces: the next one finds the file
/// `joining` in the journal, polls the join and verifies, and never asks for the
/// completion again (nor sends a piece again).
#[test]
fn a_restart_while_joining_polls_and_never_completes_again() {
    let bed = bed(
        Settings {
            edgio_join_delay_ms: 4000,
            ..Settings::default()
        },
        "",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let daemon = env.spawn_ready();
    let data = random_bytes(5 * MIB + 123, 1);
    env.drop_file("join/a.bin", &data);
    let row = env.wait_state("join/a.bin", "joining", Duration::from_secs(30));
    assert!(row["join_started"].as_i64().is_some(), "{row}");
    assert!(row["next_attempt_at"].as_i64().is_some(), "{row}");
    assert_eq!(calls(tb, "multipart/complete"), 1);
    let received = tb.stats().bytes_received;
    daemon.kill9();

    let _daemon = env.spawn_ready();
    let row = env.wait_state("join/a.bin", "done", Duration::from_secs(30));
    assert_eq!(stored(tb, "join/a.bin").as_deref(), Some(&data[..]));
    assert_eq!(calls(tb, "multipart/complete"), 1, "completed twice");
    assert_eq!(calls(tb, "multipart/create"), 1, "began a second upload");
    let resent = tb.stats().bytes_received - received;
    // Polls and the verifying HEAD carry a few hundred bytes of JSON each; a piece
    // is a MiB.
    assert!(resent < 64 << 10, "{resent} bytes sent after the restart");
    println!(
        "figure: after a restart while joining, {resent} request bytes (polls) and no piece were sent; row {row}"
    );
}

/// A file rewritten while the service joins its older content: the new content is
/// uploaded only once the older join has landed, so it is the one that stays.
#[test]
fn a_newer_content_waits_for_the_older_join_and_stays() {
    let bed = bed(
        Settings {
            edgio_join_delay_ms: 3000,
            ..Settings::default()
        },
        "",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let _daemon = env.spawn_ready();
    let old = random_bytes(3 * MIB, 5);
    env.drop_file("same.bin", &old);
    env.wait_state("same.bin", "joining", Duration::from_secs(30));
    // Small: one /post/raw, which would land at once, before the older join ends.
    let new = b"the newer content".to_vec();
    env.drop_file("same.bin", &new);
    env.wait_log(
        "an older content of this file is still being joined",
        Duration::from_secs(20),
    );
    env.wait_state("same.bin", "done", Duration::from_secs(30));
    // Past the older join's end: it cannot land afterwards.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(stored(tb, "same.bin").as_deref(), Some(&new[..]));
}

/// A daemon killed after the service accepted the completion but before the answer
/// was recorded, the file then rewritten: the older content's join is still waited
/// for (the journal noted the completion before sending it), never taken for an
/// open upload to abort, so it cannot land over the newer content afterwards.
#[test]
fn an_unrecorded_accepted_completion_still_holds_back_a_newer_content() {
    let bed = bed(
        Settings {
            // Long enough that the restarted daemon (start, login, sweep, scan,
            // settle) asks while the older join still runs, on a loaded machine.
            edgio_join_delay_ms: 10_000,
            // The answer is held back: the daemon dies before it can record it.
            edgio_complete_answer_delay_ms: 30_000,
            ..Settings::default()
        },
        "",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let daemon = env.spawn_ready();
    let old = random_bytes(3 * MIB, 8);
    env.drop_file("same.bin", &old);
    wait_for(
        Duration::from_secs(30),
        "the completion to be accepted",
        || (calls(tb, "multipart/complete") == 1).then_some(()),
    );
    daemon.kill9();
    let new = b"the newer content, written while the daemon was down".to_vec();
    env.drop_file("same.bin", &new);
    let _daemon = env.spawn_ready();
    env.wait_log(
        "an older content of this file is still being joined",
        Duration::from_secs(20),
    );
    env.wait_state("same.bin", "done", Duration::from_secs(40));
    // The newer content went only after the older join had landed: nothing of the
    // older one can land afterwards.
    assert_eq!(stored(tb, "same.bin").as_deref(), Some(&new[..]));
    assert_eq!(calls(tb, "multipart/complete"), 1);
}

/// A completion the service refused (`-13`, lock expired) until the attempt gave
/// up: the next attempt finds the upload still open, completes it, and sends no
/// piece again.
#[test]
fn a_completion_that_never_took_is_asked_again_on_the_same_upload() {
    let bed = bed(
        Settings {
            edgio_join_delay_ms: 100,
            edgio_complete_error_rate: 1.0,
            ..Settings::default()
        },
        "",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let _daemon = env.spawn_ready();
    let data = random_bytes(3 * MIB + 11, 9);
    env.drop_file("again.bin", &data);
    env.wait_state("again.bin", "retrying", Duration::from_secs(60));
    let received = tb.stats().bytes_received;
    tb.update_settings(SettingsPatch {
        edgio_complete_error_rate: Some(0.0),
        ..Default::default()
    });
    env.wait_log(
        "the service never received the completion",
        Duration::from_secs(30),
    );
    env.wait_state("again.bin", "done", Duration::from_secs(30));
    assert_eq!(stored(tb, "again.bin").as_deref(), Some(&data[..]));
    assert_eq!(calls(tb, "multipart/create"), 1, "began a second upload");
    let resent = tb.stats().bytes_received - received;
    assert!(resent < 64 << 10, "{resent} bytes sent after the refusals");
}

/// While one file waits for its join, the only worker delivers another.
#[test]
fn a_file_waiting_for_its_join_holds_no_worker() {
    let bed = bed(
        Settings {
            edgio_join_delay_ms: 6000,
            ..Settings::default()
        },
        "workers = 1",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let _daemon = env.spawn_ready();
    let big = random_bytes(3 * MIB, 2);
    env.drop_file("big.bin", &big);
    env.wait_state("big.bin", "joining", Duration::from_secs(30));
    env.drop_file("small.txt", b"delivered while the big one joins");
    env.wait_state("small.txt", "done", Duration::from_secs(20));
    let big_row = env.rows("big.bin").pop().expect("big row");
    assert_eq!(
        big_row["state"], "joining",
        "the small file waited for the join: {big_row}"
    );
    env.wait_state("big.bin", "done", Duration::from_secs(30));
    assert_eq!(stored(tb, "big.bin").as_deref(), Some(&big[..]));
}

/// A join that ends FAILED is restarted once (`restartMultipart`); failing again,
/// the file begins a new upload, which lands once the service joins again.
#[test]
fn a_failed_join_is_restarted_once_then_the_file_begins_again() {
    let bed = bed(
        Settings {
            edgio_join_delay_ms: 200,
            edgio_join_fail_rate: 1.0,
            ..Settings::default()
        },
        "",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let _daemon = env.spawn_ready();
    let data = random_bytes(3 * MIB + 7, 3);
    env.drop_file("fails.bin", &data);
    env.wait_log("asking it to restart the join", Duration::from_secs(30));
    env.wait_log("beginning a new session", Duration::from_secs(30));
    assert_eq!(calls(tb, "restartMultipart"), 1, "restarted more than once");
    // The service joins again: the new upload lands.
    tb.update_settings(SettingsPatch {
        edgio_join_fail_rate: Some(0.0),
        ..Default::default()
    });
    env.wait_state("fails.bin", "done", Duration::from_secs(60));
    assert_eq!(stored(tb, "fails.bin").as_deref(), Some(&data[..]));
    let creates = calls(tb, "multipart/create");
    assert!(creates >= 2, "{creates} uploads begun");
    // One restart per session: never more restarts than uploads begun.
    assert!(calls(tb, "restartMultipart") <= creates);
}

/// Tokens that live one second under an upload of many pieces: each expiry costs
/// one login, no file fails, and the file lands intact.
#[test]
fn an_expired_token_costs_one_login_and_no_file() {
    let bed = bed(
        Settings {
            edgio_token_ttl_s: 1,
            throttle_bps: 4 << 20,
            edgio_join_delay_ms: 100,
            ..Settings::default()
        },
        "parts_in_flight = 2",
    );
    let (tb, env) = (&bed.tb, &bed.env);
    let _daemon = env.spawn_ready();
    let data = random_bytes(12 * MIB, 4);
    env.drop_file("long.bin", &data);
    let row = env.wait_state("long.bin", "done", Duration::from_secs(60));
    assert_eq!(stored(tb, "long.bin").as_deref(), Some(&data[..]));
    let logins = calls(tb, "login");
    // About 3 s of upload with one-second tokens: a few logins, not one per call.
    assert!(logins >= 2, "the token never expired: {logins} logins");
    assert!(logins <= 12, "{logins} logins for a 3 s upload");
    let st = env.status();
    assert_eq!(st["counts"]["failed"], 0, "{st}");
    println!("figure: {logins} logins with one-second tokens over a 12 MiB upload; {row}");
}

/// SIGTERM: the daemon logs out (its token ends on the service) before it exits.
#[test]
fn shutdown_logs_out() {
    let bed = bed(Settings::default(), "");
    let (tb, env) = (&bed.tb, &bed.env);
    let mut daemon = env.spawn_ready();
    env.drop_file("one.txt", b"one");
    env.wait_state("one.txt", "done", Duration::from_secs(30));
    assert_eq!(calls(tb, "logout"), 0);
    daemon.sigterm();
    let status = daemon.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert_eq!(calls(tb, "logout"), 1, "no logout at shutdown");
}

/// Without `origin_url`, verification asks the ingest host's JSON-RPC `stat` for
/// the size and SHA-256: a corrupted join is still caught, and the file sent again.
#[test]
fn without_a_delivery_host_stat_verifies_and_catches_corruption() {
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start(
        &rt,
        store.path(),
        Settings {
            corrupt_rate: 1.0,
            edgio_join_delay_ms: 100,
            ..Settings::default()
        },
    );
    let base = tb.emulator_url("edgio");
    let backend = format!(
        "type = \"edgio\"\nupload_url = \"{base}\"\nusername = \"testbed\"\npassword_file = \"edgio-password\"\nmultipart_above = \"1MiB\""
    );
    let env = Env::new(
        "300ms",
        "part_size = \"1MiB\"\nverify_attempts = 5",
        &backend,
        "",
    );
    std::fs::write(env.dir.path().join("edgio-password"), DEFAULT_SECRET).expect("password");
    let _daemon = env.spawn_ready();
    let data = random_bytes(2 * MIB + 5, 9);
    env.drop_file("c.bin", &data);
    env.wait_log("verification failed", Duration::from_secs(30));
    tb.update_settings(SettingsPatch {
        corrupt_rate: Some(0.0),
        ..Default::default()
    });
    env.wait_state("c.bin", "done", Duration::from_secs(60));
    assert_eq!(
        tb.object_bytes("edgio", "c.bin").ok().as_deref(),
        Some(&data[..])
    );
}

/// With the password refused at login, uploads wait; a new password in the file
/// is picked up and the file lands (the login is what the credentials gate tests).
#[test]
fn a_refused_login_waits_and_a_new_password_resumes() {
    let bed = bed(Settings::default(), "");
    let (tb, env) = (&bed.tb, &bed.env);
    tb.set_secret("rotated-password");
    let _daemon = env.spawn_ready();
    env.drop_file("wait.txt", b"waits for the password");
    let st = wait_for(Duration::from_secs(30), "the backend to wait", || {
        let st = env.status();
        (st["backend"]["state"] == "auth_refused").then_some(st)
    });
    let why = st["backend"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("edgio-password"), "{why}");
    assert!(!env.log_text().contains("rotated-password"));
    std::fs::write(env.dir.path().join("edgio-password"), "rotated-password").expect("write");
    env.wait_state("wait.txt", "done", Duration::from_secs(30));
    assert_eq!(
        stored(tb, "wait.txt").as_deref(),
        Some(&b"waits for the password"[..])
    );
    let text = format!("{}{}", env.log_text(), env.status());
    assert!(!text.contains("rotated-password"), "the password leaked");
}

/// The start-up sweep: an upload begun for a key whose `begin` was never recorded
/// (the daemon died before) is found with `listMultipart` and aborted; one the
/// journal knows is kept.
#[test]
fn the_sweep_aborts_uploads_nobody_recorded_and_keeps_known_ones() {
    use dropship::backend::{BackendConfig, FileSpec};
    let rt = runtime();
    let store = tempfile::tempdir().expect("store");
    let tb = start(&rt, store.path(), Settings::default());
    let dir = tempfile::tempdir().expect("dir");
    let password = dir.path().join("password");
    std::fs::write(&password, DEFAULT_SECRET).expect("password");
    let base = tb.emulator_url("edgio");
    let cfg: BackendConfig = toml::from_str(&format!(
        "type = \"edgio\"\nupload_url = \"{base}\"\nusername = \"testbed\"\npassword_file = \"{}\"\ndirectory = \"uploads\"",
        password.display()
    ))
    .expect("config");
    let backend = cfg.build(Default::default()).expect("backend");
    let file = |key: &str| FileSpec {
        key: key.into(),
        size: 10 << 20,
        mtime: 0,
        content_type: None,
    };
    let open = || tb.stats().emulators["edgio"].sessions_open;
    rt.block_on(async {
        let lost = backend.begin(&file("a/lost.bin")).await.expect("begin");
        let kept = backend.begin(&file("a/kept.bin")).await.expect("begin");
        let other = backend.begin(&file("b/other.bin")).await.expect("begin");
        assert_eq!(open(), 3);
        let n = backend
            .sweep(
                std::slice::from_ref(&kept),
                &["a/lost.bin".into(), "a/kept.bin".into()],
            )
            .await
            .expect("sweep");
        assert_eq!(n, 1, "only the unrecorded upload of an unrecorded key");
        assert_eq!(open(), 2);
        // The known one and one of another key are still open.
        for s in [&kept, &other] {
            backend.abort(s).await.expect("abort");
        }
        assert_eq!(open(), 0);
        let _ = lost;
    });
}
