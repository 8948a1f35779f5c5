//! Delivery benchmarks: the release `dropship` binary against real files, on the
//! local backend and through the Box, Insights Hub and Exosite emulators on loopback. Prints figures; asserts
//! only that the bytes arrived intact.
//!
//!     cargo bench --bench delivery
//!
//! Figures: wall time from the file appearing in the outbox (by rename) to `done` in
//! `status`, the resulting throughput, and the daemon's peak RSS (VmHWM).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Env, random_bytes};
use dropship_testbed::{Options, Testbed};

const MIB: usize = 1 << 20;

fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Drops `size` bytes as `key`, waits for `done`; returns (seconds, peak RSS KiB).
fn deliver(env: &Env, key: &str, size: usize, check: impl Fn(&[u8])) -> (f64, Option<u64>) {
    let daemon = env.spawn_ready();
    let data = random_bytes(size, size as u64);
    let t0 = Instant::now();
    env.drop_file(key, &data);
    env.wait_state(key, "done", Duration::from_secs(600));
    let secs = t0.elapsed().as_secs_f64();
    let rss = peak_rss_kib(daemon.pid());
    check(&data);
    (secs, rss)
}

fn report(what: &str, size: usize, secs: f64, rss: Option<u64>) {
    println!(
        "{what:<44} {:>6.1} MiB in {secs:>6.2} s = {:>7.1} MiB/s   daemon peak RSS {}",
        size as f64 / MIB as f64,
        size as f64 / MIB as f64 / secs,
        rss.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
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
        let (secs, rss) = deliver(&env, "bench/local.bin", size, |data| {
            assert_eq!(common::read(&env.remote().join("bench/local.bin")), data);
        });
        report(&format!("local, part {part}, 4 in flight"), size, secs, rss);
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
        let (secs, rss) = deliver(&env, key, size, |data| {
            assert_eq!(tb.object_bytes("box", key).expect("stored"), data);
        });
        report("box emulator (8 MiB parts), 4 in flight", size, secs, rss);
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
        let (secs, rss) = deliver(&env, key, size, |data| {
            let stored = tb
                .object_bytes("insights-hub", &format!("{entity}/{key}"))
                .expect("stored");
            assert!(stored == data, "the stored object differs");
        });
        report(
            "insights-hub emulator (8 MiB parts, sampled)",
            size,
            secs,
            rss,
        );
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
        let (secs, rss) = deliver(&env, key, size, |data| {
            let stored = tb
                .object_bytes("exosite", "bench%2Fexosite.bin")
                .expect("stored");
            assert!(stored == data, "the stored object differs");
        });
        report(
            &format!("exosite emulator (5 MiB ranges in order, MD5; key {key})"),
            size,
            secs,
            rss,
        );
        let md5_bound = size as f64 / 0.62e9;
        println!(
            "{:<44} MD5 of 100 MiB on one core alone takes {md5_bound:.2} s (0.62 GB/s)",
            ""
        );
    }
}
