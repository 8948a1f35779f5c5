//! The cases every backend must pass. None names a vendor: a case reads the backend's
//! part size and single-request threshold from its world and states what it needs.

use std::time::Duration;

use dropship_testbed::{Settings, SettingsPatch};

use crate::common::{append, random_bytes, wait_for};
use crate::world::{Kind, Need, Setup, World, secs};

pub type Outcome = Result<(), String>;

pub struct Case {
    pub name: &'static str,
    pub needs: Need,
    pub run: fn(Kind) -> Outcome,
}

pub const ALL: &[Case] = &[
    case("empty_file", Need::Nothing, empty_file),
    case("one_byte", Need::Nothing, one_byte),
    case("just_below_part_size", Need::Nothing, just_below_part_size),
    case("at_part_size", Need::Nothing, at_part_size),
    case("just_above_part_size", Need::Nothing, just_above_part_size),
    case(
        "multi_part_in_parallel",
        Need::ParallelParts,
        multi_part_in_parallel,
    ),
    case(
        "two_hundred_small_files",
        Need::Nothing,
        two_hundred_small_files,
    ),
    case("resume_after_sigkill", Need::Nothing, resume_after_sigkill),
    case(
        "server_loses_the_session",
        Need::Emulator,
        server_loses_the_session,
    ),
    case(
        "unreachable_service_is_retried_until_it_returns",
        Need::Emulator,
        unreachable_service,
    ),
    case(
        "errors_and_resets_are_survived",
        Need::Emulator,
        errors_and_resets_are_survived,
    ),
    case(
        "corrupt_store_is_never_done",
        Need::Emulator,
        corrupt_store_is_never_done,
    ),
    case(
        "refused_credential_fails_without_retry_storm",
        Need::Credentials,
        refused_credential,
    ),
    case(
        "file_changed_during_upload",
        Need::Nothing,
        file_changed_during_upload,
    ),
    case("name_with_spaces_and_non_ascii", Need::Nothing, odd_name),
    case(
        "same_name_again_is_a_new_version",
        Need::Nothing,
        same_name_again,
    ),
];

const fn case(name: &'static str, needs: Need, run: fn(Kind) -> Outcome) -> Case {
    Case { name, needs, run }
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(msg()) }
}

/// Drops one file of `size` bytes, waits for `done`, compares the stored bytes.
fn deliver_one(kind: Kind, size: usize) -> Outcome {
    let mut w = World::new(kind, Setup::default());
    w.start();
    let data = random_bytes(size, size as u64);
    w.env.drop_file("one/file.bin", &data);
    let row = w.env.wait_state("one/file.bin", "done", secs(60));
    w.assert_stored("one/file.bin", &data)?;
    check(row["bytes_sent"].as_u64() == Some(size as u64), || {
        format!("bytes_sent {} for {size} bytes", row["bytes_sent"])
    })
}

fn empty_file(kind: Kind) -> Outcome {
    deliver_one(kind, 0)
}

fn one_byte(kind: Kind) -> Outcome {
    deliver_one(kind, 1)
}

fn part_size_of(kind: Kind) -> usize {
    kind.part_size() as usize
}

/// Waits until `n` parts of `key` are acknowledged, so the upload is mid-way.
fn wait_parts_acknowledged(w: &World, key: &str, n: u64) {
    wait_for(
        secs(60),
        &format!("{n} parts of {key} acknowledged"),
        || {
            w.env
                .rows(key)
                .pop()
                .filter(|r| r["parts_uploaded"].as_u64() >= Some(n))
        },
    );
}

/// A world whose daemon sends about a third of a `parts`-part file per second, so
/// that a case can act while the upload is in flight; returns the file size too.
fn slow_world(kind: Kind, parts: u64) -> (World, usize) {
    let size = kind.multipart_size(parts);
    let rate = format!("bandwidth_limit = \"{}\"", size / 3);
    let w = World::new(
        kind,
        Setup {
            upload: &rate,
            ..Setup::default()
        },
    );
    (w, size)
}

fn just_below_part_size(kind: Kind) -> Outcome {
    deliver_one(kind, part_size_of(kind) - 1)
}

fn at_part_size(kind: Kind) -> Outcome {
    deliver_one(kind, part_size_of(kind))
}

fn just_above_part_size(kind: Kind) -> Outcome {
    deliver_one(kind, part_size_of(kind) + 1)
}

fn multi_part_in_parallel(kind: Kind) -> Outcome {
    let mut w = World::new(kind, Setup::default());
    w.start();
    let size = w.multipart_size(5);
    let data = random_bytes(size, 5);
    w.env.drop_file("multi.bin", &data);
    let row = w.env.wait_state("multi.bin", "done", secs(120));
    w.assert_stored("multi.bin", &data)?;
    let parts = row["parts_total"].as_u64().unwrap_or(0);
    check(parts == (size as u64).div_ceil(w.part_size), || {
        format!("{parts} parts for {size} bytes of {}", w.part_size)
    })?;
    check(row["bytes_sent"].as_u64() == Some(size as u64), || {
        format!("bytes_sent {} for {size}", row["bytes_sent"])
    })
}

fn two_hundred_small_files(kind: Kind) -> Outcome {
    let mut w = World::new(kind, Setup::default());
    w.start();
    let mut files = Vec::new();
    for i in 0..200u64 {
        let key = format!("batch{}/f{i:03}.txt", i % 4);
        let data = random_bytes(1 + (i as usize * 37) % 3000, i);
        w.env.drop_file(&key, &data);
        files.push((key, data));
    }
    w.env.wait_done(200, secs(180));
    for (key, data) in &files {
        w.assert_stored(key, data)?;
    }
    Ok(())
}

fn resume_after_sigkill(kind: Kind) -> Outcome {
    // Slow enough (about 3 s) that the kill lands with parts in flight.
    let (mut w, size) = slow_world(kind, 6);
    w.start();
    let data = random_bytes(size, 66);
    w.env.drop_file("resume.bin", &data);
    wait_parts_acknowledged(&w, "resume.bin", 2);
    w.kill9();
    w.start();
    let row = w.env.wait_state("resume.bin", "done", secs(120));
    w.assert_stored("resume.bin", &data)?;
    let in_flight = 4 * w.part_size;
    // What crossed the wire in all: the server's own count where there is a server,
    // else the daemon's. JSON bodies of session calls add a few KiB.
    let (what, total) = match w.stats() {
        Some(st) => ("server bytes_received", st.bytes_received),
        None => ("bytes_sent", row["bytes_sent"].as_u64().unwrap_or(0)),
    };
    let extra = total.saturating_sub(size as u64);
    println!(
        "figure: {}::resume_after_sigkill re-sent {extra} bytes ({what}), bound {in_flight}",
        kind.name()
    );
    check(extra <= in_flight + (64 << 10), || {
        format!("{what} grew by {extra} bytes beyond the file; bound is {in_flight}")
    })
}

fn server_loses_the_session(kind: Kind) -> Outcome {
    let (mut w, size) = slow_world(kind, 5);
    w.start();
    let data = random_bytes(size, 77);
    w.env.drop_file("ttl.bin", &data);
    wait_parts_acknowledged(&w, "ttl.bin", 1);
    // Every open session expires now; the next part call finds it gone.
    w.faults(SettingsPatch {
        session_ttl_s: Some(1),
        ..Default::default()
    });
    wait_for(secs(30), "the daemon to notice", || {
        w.env
            .log_text()
            .contains("beginning a new session")
            .then_some(())
    });
    w.faults(SettingsPatch {
        session_ttl_s: Some(604_800),
        ..Default::default()
    });
    w.env.wait_state("ttl.bin", "done", secs(120));
    w.assert_stored("ttl.bin", &data)
}

fn unreachable_service(kind: Kind) -> Outcome {
    let mut w = World::new(kind, Setup::default());
    w.start();
    let addr = w.stop_service().ok_or("no service to stop")?;
    w.env
        .drop_file("later/data.bin", b"sent once the uplink is back");
    // Refused connections are temporary, however many: never `failed`.
    let row = wait_for(secs(60), "several failed attempts", || {
        w.env
            .rows("later/data.bin")
            .pop()
            .filter(|r| r["attempts"].as_u64() >= Some(4))
    });
    check(row["state"] != "failed", || {
        format!("gave up on a network error: {row}")
    })?;
    let why = row["last_error"].as_str().unwrap_or_default();
    check(why.contains("temporary"), || format!("{row}"))?;
    w.start_service_at(addr);
    w.env.wait_state("later/data.bin", "done", secs(60));
    w.assert_stored("later/data.bin", b"sent once the uplink is back")
}

fn errors_and_resets_are_survived(kind: Kind) -> Outcome {
    let settings = Settings {
        fail_rate: 0.10,
        reset_rate: 0.05,
        ..Settings::default()
    };
    let mut w = World::new(
        kind,
        Setup {
            settings,
            ..Setup::default()
        },
    );
    w.start();
    let big = random_bytes(w.multipart_size(4), 8);
    w.env.drop_file("big.bin", &big);
    let mut files = vec![("big.bin".to_string(), big)];
    for i in 0..20u64 {
        let key = format!("small/{i}.dat");
        let data = random_bytes(500 + i as usize * 100, 80 + i);
        w.env.drop_file(&key, &data);
        files.push((key, data));
    }
    let st = w.env.wait_done(21, secs(300));
    for (key, data) in &files {
        w.assert_stored(key, data)?;
    }
    let faults = w.stats().map(|s| s.faults_injected).unwrap_or(0);
    println!(
        "figure: {}::errors_and_resets_are_survived with {faults} faults injected",
        kind.name()
    );
    check(faults > 0, || {
        "no fault was injected; the case proved nothing".into()
    })?;
    check(st["counts"]["failed"] == 0, || format!("{st}"))
}

fn corrupt_store_is_never_done(kind: Kind) -> Outcome {
    let settings = Settings {
        corrupt_rate: 1.0,
        ..Settings::default()
    };
    let mut w = World::new(
        kind,
        Setup {
            settings,
            ..Setup::default()
        },
    );
    w.start();
    w.env
        .drop_file("c/small.txt", b"these bytes will be flipped");
    let big = random_bytes(w.multipart_size(3), 9);
    w.env.drop_file("c/big.bin", &big);
    for key in ["c/small.txt", "c/big.bin"] {
        let row = w.env.wait_state(key, "failed", secs(120));
        let why = row["last_error"].as_str().unwrap_or_default();
        check(why.contains("verification failed"), || {
            format!("{key}: {row}")
        })?;
    }
    check(w.env.status()["counts"]["done"] == 0, || {
        "a corrupted file was marked done".into()
    })
}

fn refused_credential(kind: Kind) -> Outcome {
    let mut w = World::new(
        kind,
        Setup {
            token: "not-the-token",
            ..Setup::default()
        },
    );
    w.start();
    for i in 0..3 {
        w.env.drop_file(&format!("f{i}.txt"), b"secret data");
    }
    let big = random_bytes(w.multipart_size(2), 10);
    w.env.drop_file("big.bin", &big);
    for key in ["f0.txt", "f1.txt", "f2.txt", "big.bin"] {
        let row = w.env.wait_state(key, "failed", secs(60));
        let why = row["last_error"].as_str().unwrap_or_default();
        check(why.contains("401") && why.contains("token"), || {
            format!("{key}: {row}")
        })?;
        check(!why.contains("not-the-token"), || {
            format!("the secret leaked: {why}")
        })?;
        check(row["attempts"] == 1, || format!("{key} retried: {row}"))?;
    }
    // Give a retry storm the chance to show, then count the requests.
    let before = w.stats().map(|s| s.requests).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let after = w.stats().map(|s| s.requests).unwrap_or(0);
    check(after == before, || {
        format!("{} requests after all files failed", after - before)
    })?;
    check(!w.env.log_text().contains("not-the-token"), || {
        "the token is in the log".into()
    })?;
    // A person fixes the token and asks for a retry: everything is delivered.
    std::fs::write(
        w.env.dir.path().join("box-token"),
        dropship_testbed::DEFAULT_SECRET,
    )
    .map_err(|e| e.to_string())?;
    let out = w.env.cli(&["retry", "--all-failed"]);
    check(out.status.success(), || format!("{out:?}"))?;
    w.env.wait_done(4, secs(60));
    w.assert_stored("big.bin", &big)?;
    w.assert_stored("f0.txt", b"secret data")
}

fn file_changed_during_upload(kind: Kind) -> Outcome {
    let (mut w, size) = slow_world(kind, 4);
    w.start();
    let first = random_bytes(size, 12);
    let path = w.env.drop_file("grow.log", &first);
    wait_for(secs(60), "the upload to start", || {
        w.env
            .rows("grow.log")
            .pop()
            .filter(|r| r["bytes_sent"].as_u64() > Some(0))
    });
    let tail = random_bytes(4321, 13);
    append(&path, &tail);
    let final_size = (size + tail.len()) as u64;
    wait_for(secs(120), "the final content to be done", || {
        w.env
            .rows("grow.log")
            .pop()
            .filter(|r| r["state"] == "done" && r["size"].as_u64() == Some(final_size))
    });
    let mut whole = first;
    whole.extend_from_slice(&tail);
    w.assert_stored("grow.log", &whole)?;
    let rows = w.env.rows("grow.log");
    check(rows.len() == 2 && rows[0]["state"] == "superseded", || {
        format!("{rows:#?}")
    })
}

fn odd_name(kind: Kind) -> Outcome {
    let mut w = World::new(kind, Setup::default());
    w.start();
    let key = "dossier été/Ünïcødé – 日本語 file (1).txt";
    w.env.drop_file(key, "contenu accentué\n".as_bytes());
    w.env.wait_state(key, "done", secs(60));
    w.assert_stored(key, "contenu accentué\n".as_bytes())
}

fn same_name_again(kind: Kind) -> Outcome {
    let mut w = World::new(kind, Setup::default());
    w.start();
    w.env.drop_file("again/report.csv", b"version one");
    w.env.wait_state("again/report.csv", "done", secs(60));
    w.env.drop_file("again/report.csv", b"version two, longer");
    wait_for(secs(60), "the second version", || {
        let rows = w.env.rows("again/report.csv");
        (rows.len() == 2 && rows[1]["state"] == "done").then_some(())
    });
    w.assert_stored("again/report.csv", b"version two, longer")
}
