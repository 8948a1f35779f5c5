//! Delivery benchmarks: the release `dropship` binary against real files, on the
//! local backend and through the Box, Insights Hub, Exosite and Edgio emulators on loopback. Prints figures; asserts
//! only that the bytes arrived intact.
//!
//!     cargo bench --bench delivery
//!
//! Figures: wall time from the file appearing in the outbox (by rename) to `done` in
//! `status`, the resulting throughput, the daemon's peak RSS (VmHWM) and CPU time,
//! and the CPU time of the emulator (this process) meanwhile: both share 2 cores.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Env, cpu_of, peak_rss_kib, random_bytes};
use dropship_testbed::{Options, Testbed};

const MIB: usize = 1 << 20;

/// CPU seconds this process (the in-process testbed) has used so far.
fn own_cpu() -> f64 {
    cpu_of(std::process::id() as i32).unwrap_or(0.0)
}

/// One delivery's figures.
struct Run {
    secs: f64,
    rss_kib: Option<u64>,
    daemon_cpu: Option<f64>,
    /// CPU of this process meanwhile: the in-process emulator, on the same cores.
    server_cpu: f64,
}

/// Drops `size` bytes as `key` and waits for `done`.
fn deliver(env: &Env, key: &str, size: usize, check: impl Fn(&[u8])) -> Run {
    let daemon = env.spawn_ready();
    let data = random_bytes(size, size as u64);
    let cpu0 = cpu_of(daemon.pid());
    let own0 = own_cpu();
    let t0 = Instant::now();
    env.drop_file(key, &data);
    env.wait_state(key, "done", Duration::from_secs(600));
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = own_cpu() - own0;
    let daemon_cpu = cpu_of(daemon.pid()).zip(cpu0).map(|(a, b)| a - b);
    let rss_kib = peak_rss_kib(daemon.pid());
    check(&data);
    Run {
        secs,
        rss_kib,
        daemon_cpu,
        server_cpu,
    }
}

fn report(what: &str, size: usize, run: &Run) {
    println!(
        "{what:<44} {:>6.1} MiB in {:>6.2} s = {:>7.1} MiB/s   daemon peak RSS {}, CPU {} s; testbed process CPU {:.2} s",
        size as f64 / MIB as f64,
        run.secs,
        size as f64 / MIB as f64 / run.secs,
        run.rss_kib
            .map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        run.daemon_cpu.map_or("?".into(), |c| format!("{c:.2}")),
        run.server_cpu,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored: this is one run.
    for (size, part) in [(40 * MIB, "8MiB"), (100 * MIB, "8MiB")] {
        let env = Env::local(
            "300ms",
            &format!("part_size = \"{part}\"\nparts_in_flight = 4"),
            "",
        );
        let run = deliver(&env, "bench/local.bin", size, |data| {
            assert_eq!(common::read(&env.remote().join("bench/local.bin")), data);
        });
        report(&format!("local, part {part}, 4 in flight"), size, &run);
    }

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = tempfile::tempdir().expect("store");
    let tb = rt
        .block_on(Testbed::start(Options::loopback(store.path())))
        .expect("testbed");
    let base = format!("{}/box", tb.url());
    {
        let size = 100 * MIB;
        let env = Env::new(
            "300ms",
            "parts_in_flight = 4",
            &format!(
                "type = \"box\"\napi_url = \"{base}\"\nupload_url = \"{base}\"\ntoken_file = \"token\""
            ),
            "",
        );
        std::fs::write(
            env.dir.path().join("token"),
            dropship_testbed::DEFAULT_SECRET,
        )
        .expect("token");
        let key = "bench/box.bin";
        let run = deliver(&env, key, size, |data| {
            assert_eq!(tb.object_bytes("box", key).expect("stored"), data);
        });
        report("box emulator (8 MiB parts), 4 in flight", size, &run);
    }
    {
        let size = 100 * MIB;
        let entity = "00189ab4c65243bb9d77f17332dd570a";
        let env = Env::new(
            "300ms",
            "part_size = \"8MiB\"\nparts_in_flight = 4",
            &format!(
                "type = \"insights-hub\"\ngateway_url = \"{}\"\nentity_id = \"{entity}\"\ntoken_file = \"token\"",
                tb.emulator_url("insights-hub")
            ),
            "",
        );
        std::fs::write(
            env.dir.path().join("token"),
            dropship_testbed::DEFAULT_SECRET,
        )
        .expect("token");
        let key = "bench/ih.bin";
        let run = deliver(&env, key, size, |data| {
            let stored = tb
                .object_bytes("insights-hub", &format!("{entity}/{key}"))
                .expect("stored");
            assert!(stored == data, "the stored object differs");
        });
        report("insights-hub emulator (8 MiB parts, sampled)", size, &run);
    }
    {
        // Above the 100,000,000-byte single-request limit: 20 ranges of 5 MiB, one
        // at a time, each with its MD5 (the slowest digest: ~0.6 GB/s a core).
        let size = 100 * MIB;
        let env = Env::new(
            "300ms",
            "",
            &format!(
                "type = \"exosite\"\nurl = \"{}\"\ntoken_file = \"token\"",
                tb.emulator_url("exosite")
            ),
            "",
        );
        std::fs::write(
            env.dir.path().join("token"),
            dropship_testbed::DEFAULT_SECRET,
        )
        .expect("token");
        let key = "bench/exosite.bin";
        let run = deliver(&env, key, size, |data| {
            let stored = tb
                .object_bytes("exosite", "bench%2Fexosite.bin")
                .expect("stored");
            assert!(stored == data, "the stored object differs");
        });
        report("exosite emulator (5 MiB ranges in order)", size, &run);
        let md5_bound = size as f64 / 0.62e9;
        println!(
            "{:<44} MD5 of 100 MiB on one core alone takes {md5_bound:.2} s (0.62 GB/s)",
            ""
        );
    }
    {
        // Above multipart_above (64 MiB): 13 pieces of 8 MiB in parallel, each answer's
        // SHA-256 checked, then the service's join (the emulator's default delay)
        // polled, then HEAD on the delivery host.
        let size = 100 * MIB;
        let base = tb.emulator_url("edgio");
        let env = Env::new(
            "300ms",
            "",
            &format!(
                "type = \"edgio\"\nupload_url = \"{base}\"\norigin_url = \"{base}/origin/testbed\"\nusername = \"testbed\"\npassword_file = \"token\""
            ),
            "",
        );
        std::fs::write(
            env.dir.path().join("token"),
            dropship_testbed::DEFAULT_SECRET,
        )
        .expect("token");
        let key = "bench/edgio.bin";
        let run = deliver(&env, key, size, |data| {
            let stored = tb.object_bytes("edgio", key).expect("stored");
            assert!(stored == data, "the stored object differs");
        });
        report("edgio emulator (8 MiB pieces, join polled)", size, &run);
        // From the completion accepted to the object verified: the join, its polls,
        // and the HEAD, from the daemon's own log lines.
        let log = env.log_text();
        let join = log
            .lines()
            .find(|l| l.contains("the service finished joining"))
            .and_then(|l| l.split("join_secs=").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?");
        let at = |needle: &str| {
            log.lines()
                .find(|l| l.contains(needle))
                .and_then(|l| l.split_whitespace().next())
                .and_then(seconds_of_day)
        };
        let verified = match (at("completion accepted"), at("delivered and verified")) {
            (Some(a), Some(b)) => format!("{:.3}", b - a),
            _ => "?".into(),
        };
        println!(
            "{:<44} completion accepted → verified {verified} s; the join took {join} s (emulator's default delay {} ms)",
            "",
            dropship_testbed::Settings::default().edgio_join_delay_ms
        );
        let sha_bound = 2.0 * size as f64 / 1.75e9;
        println!(
            "{:<44} SHA-256 twice (pieces + file) of 100 MiB on one core takes {sha_bound:.2} s",
            ""
        );
    }
}

/// Seconds since midnight of a log line's RFC 3339 UTC timestamp
/// (`2026-11-24T19:06:26.755479Z`).
fn seconds_of_day(ts: &str) -> Option<f64> {
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut f = time.split(':');
    let h: f64 = f.next()?.parse().ok()?;
    let m: f64 = f.next()?.parse().ok()?;
    let s: f64 = f.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}
