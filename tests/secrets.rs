//! Secrets never leave the process: every emulated backend runs with a distinctive
//! credential through its error paths (injected 503s and 429s whose bodies echo the
//! request's headers, credentials included; the credential refused with 401/403 or a
//! refused login; a wrong credential in the file; then the right one again), and the
//! daemon's log, `status` (table and JSON) and every recorded error are searched for
//! it: zero hits.

mod common;
#[allow(dead_code)] // the suite's world; this test uses a part of it
#[path = "behaviour/world.rs"]
mod world;

use std::time::Duration;

use dropship_testbed::Settings;

use common::{random_bytes, wait_for};
use world::{Kind, Setup, World};

/// Lines that carry a credential header (as echoed by the service) must show it
/// masked.
fn unmasked_headers(text: &str) -> Vec<&str> {
    const NAMES: [&str; 4] = [
        "authorization:",
        "x-exosite-cik:",
        "x-agile-authorization:",
        "x-agile-password:",
    ];
    text.lines()
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            NAMES.iter().any(|n| {
                lower.split(n).skip(1).any(|after| {
                    let value = after.trim_start().trim_start_matches("bearer ").trim();
                    !value.starts_with("***")
                })
            })
        })
        .collect()
}

fn run(kind: Kind) -> Result<(), String> {
    let secret = format!("Sx9-{}-c0nfid3ntial-4711", kind.name());
    let mut w = World::new(
        kind,
        Setup {
            token: &secret,
            settings: Settings {
                fail_rate: 0.3,
                rate_limit_rate: 0.1,
                echo_headers: true,
                ..Settings::default()
            },
            ..Setup::default()
        },
    );
    w.set_service_secret(&secret);
    w.start();
    let big = random_bytes(w.multipart_size(2), 3);
    w.env.drop_file("small.txt", b"small");
    w.env.drop_file("big.bin", &big);
    w.env
        .wait_state("small.txt", "done", Duration::from_secs(90));
    w.env.wait_state("big.bin", "done", Duration::from_secs(90));
    // The service stops accepting it: 401/403, or Edgio's refused login.
    w.set_service_secret("another-credential-entirely");
    w.env.drop_file("after.txt", b"after");
    wait_for(
        Duration::from_secs(60),
        "the credentials to be refused",
        || (w.env.status()["backend"]["state"] == "auth_refused").then_some(()),
    );
    // A wrong credential in the file: read again, refused again.
    std::fs::write(w.token_file(), "not-the-one").map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(3));
    // The right one on both sides: the file lands.
    std::fs::write(w.token_file(), &secret).map_err(|e| e.to_string())?;
    w.set_service_secret(&secret);
    w.env
        .wait_state("after.txt", "done", Duration::from_secs(90));

    let table = w.env.cli(&["status"]);
    let text = format!(
        "{}\n{}\n{}\n{}",
        w.env.log_text(),
        w.env.status(),
        String::from_utf8_lossy(&table.stdout),
        String::from_utf8_lossy(&table.stderr)
    );
    let echoed = w
        .stats()
        .map(|s| s.faults.failed + s.faults.rate_limited)
        .unwrap_or(0);
    if echoed == 0 {
        return Err(format!("{}: no refusal echoed anything", kind.name()));
    }
    let hits = text.matches(&secret).count();
    if hits > 0 {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&secret)).collect();
        return Err(format!(
            "{}: the secret appears {hits} times: {lines:#?}",
            kind.name()
        ));
    }
    // S3's secret never travels; what a log must not hold is the presigned query
    // that a signature and the key id ride in.
    for signed in ["X-Amz-Signature", "X-Amz-Credential"] {
        if text.contains(signed) {
            return Err(format!(
                "{}: a presigned URL's {signed} was shown",
                kind.name()
            ));
        }
    }
    let unmasked = unmasked_headers(&text);
    if !unmasked.is_empty() {
        return Err(format!(
            "{}: credential headers shown unmasked: {unmasked:#?}",
            kind.name()
        ));
    }
    println!(
        "figure: secrets {}: {echoed} refusals echoed the request's headers; 0 hits of the secret in the log, status and errors",
        kind.name()
    );
    Ok(())
}

#[test]
fn no_secret_in_logs_status_or_errors() {
    let failures: Vec<String> = [
        Kind::Box,
        Kind::InsightsHub,
        Kind::Exosite,
        Kind::Edgio,
        Kind::S3,
    ]
    .into_iter()
    .filter(|k| k.runs_here("secrets"))
    .filter_map(|k| run(k).err())
    .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
