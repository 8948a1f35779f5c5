//! Compression of a realistic log: ratio and CPU seconds per GiB for gzip and zstd
//! at their defaults (and a few other levels), through the daemon's own
//! `compress_file` (read, compress, write and sync the spool copy).
//!
//!     cargo bench --bench compress
//!
//! `DROPSHIP_BENCH_LOG_MIB` sets the log's size (default 512). The log: RFC 3339
//! timestamps, levels, a handful of message shapes with varying ids, addresses and
//! durations, as a gateway writes.

use std::io::Write;
use std::time::Instant;

use dropship::compress::{Compress, compress_file};
use dropship::identity::Identity;

const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// CPU seconds this thread has used (compression runs on the calling thread).
fn thread_cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid out-pointer for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn write_log(path: &std::path::Path, bytes: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("log"));
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let (mut i, mut written) = (0u64, 0u64);
    let messages = [
        "request served",
        "upstream answered",
        "cache miss, fetching",
        "session renewed",
        "retrying after timeout",
        "queue depth",
    ];
    while written < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let level = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"][(x % 6) as usize];
        let line = format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z {level} gateway[{}]: {} id={} peer=10.0.{}.{} took {} ms\n",
            1 + (i / 86_400_000) % 28,
            (i / 3_600_000) % 24,
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            100 + x % 7,
            messages[((x >> 3) % 6) as usize],
            x % 1_000_000,
            (x >> 8) % 4,
            (x >> 16) % 250,
            (x >> 24) % 900
        );
        f.write_all(line.as_bytes()).expect("write");
        written += line.len() as u64;
        i += 37;
    }
    f.flush().expect("flush");
}

fn main() {
    let mib: u64 = std::env::var("DROPSHIP_BENCH_LOG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().expect("dir");
    let src = dir.path().join("gateway.log");
    write_log(&src, mib << 20);
    let size = std::fs::metadata(&src).expect("meta").len();
    let id = Identity::of(&std::fs::metadata(&src).expect("meta"));
    println!(
        "{:.0} MiB of gateway log; per run: ratio, CPU seconds of the compressing thread (and per GiB), wall",
        size as f64 / MIB
    );
    for how in [
        Compress::Gzip(Compress::GZIP_DEFAULT),
        Compress::Gzip(1),
        Compress::Zstd(Compress::ZSTD_DEFAULT),
        Compress::Zstd(1),
        Compress::Zstd(9),
    ] {
        let dest = dir.path().join(format!("out{}", how.ext().unwrap_or("")));
        let (cpu0, t0) = (thread_cpu(), Instant::now());
        let copy = compress_file(&src, &id, &dest, how).expect("compress");
        let (cpu, wall) = (thread_cpu() - cpu0, t0.elapsed().as_secs_f64());
        println!(
            "{:<18} {:>6.1} MiB  ratio {:>5.2}  ({:>5.1} % of the log)  CPU {:>6.2} s = {:>5.2} CPU-s/GiB  wall {:>6.2} s",
            how.to_string(),
            copy.size as f64 / MIB,
            size as f64 / copy.size as f64,
            100.0 * copy.size as f64 / size as f64,
            cpu,
            cpu * GIB / size as f64,
            wall
        );
        let _ = std::fs::remove_file(&dest);
    }
}
