//! One big file to a real S3 server (s3s-fs 0.14.1 on loopback): dropship's daemon
//! beside `rclone copyto` of the same file to the same server, in the same run.
//!
//!     DROPSHIP_S3S_FS=target/s3s-fs-0.14.1/bin/s3s-fs cargo bench --bench s3
//!
//! `DROPSHIP_BENCH_S3_MIB` sets the size (default 1024), `DROPSHIP_BENCH_RUNS` the
//! runs of each (default 3; the median is reported). Figures per run: wall time
//! (dropship: from the file's rename into the outbox to `done` in `status`, which
//! includes the HeadObject verification; rclone: the whole command), throughput,
//! the client's CPU seconds and peak RSS, and s3s-fs's CPU seconds meanwhile: all
//! three share this machine's cores.
//!
//! Both run with their defaults: dropship 8 MiB parts, 4 in flight, PutObject up to
//! 16 MiB, Content-MD5 on every request; rclone 1.60 5 MiB chunks, 4 at once, its
//! MD5 of the whole file first (for its `md5chksum` metadata). rclone needs
//! `AWS_CA_BUNDLE` unset here; it is removed from its environment.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::bench::{rclone_present, rclone_s3, write_random};
use common::s3s_fs::{self, S3sFs};
use common::{Env, cpu_of, env_u64};

const MIB: u64 = 1 << 20;
const SECRET: &str = "bench-secret";

fn peak_rss_mib(pid: i32) -> Option<f64> {
    common::peak_rss_kib(pid).map(|k| k as f64 / 1024.0)
}

#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    client_cpu: f64,
    client_rss_mib: f64,
    server_cpu: f64,
}

fn dropship_run(server: &S3sFs, source: &Path, size: u64, n: usize) -> Run {
    let backend = format!(
        "type = \"s3\"\nendpoint = \"{}\"\nbucket = \"dropship\"\nprefix = \"dropship\"\n\
         access_key_id_file = \"{}\"\nsecret_access_key_file = \"secret\"\n",
        server.endpoint,
        server.access_key_file().display()
    );
    let env = Env::new("300ms", "", &backend, "");
    std::fs::write(env.dir.path().join("secret"), SECRET).expect("secret");
    let daemon = env.spawn_ready();
    let key = format!("run{n}.bin");
    // Same filesystem: the rename makes the whole file appear at once.
    let staged = env.dir.path().join("staged.bin");
    std::fs::hard_link(source, &staged).expect("link the source");
    let server_cpu0 = cpu_of(server.pid()).unwrap_or(0.0);
    let cpu0 = cpu_of(daemon.pid()).unwrap_or(0.0);
    let t0 = Instant::now();
    std::fs::rename(&staged, env.outbox.join(&key)).expect("into the outbox");
    env.wait_state(&key, "done", Duration::from_secs(1200));
    let secs = t0.elapsed().as_secs_f64();
    let run = Run {
        secs,
        client_cpu: cpu_of(daemon.pid()).unwrap_or(0.0) - cpu0,
        client_rss_mib: peak_rss_mib(daemon.pid()).unwrap_or(0.0),
        server_cpu: cpu_of(server.pid()).unwrap_or(0.0) - server_cpu0,
    };
    let stored = server.bucket_dir("dropship").join("dropship").join(&key);
    assert_eq!(
        std::fs::metadata(&stored).expect("stored").len(),
        size,
        "the stored object's size"
    );
    let _ = std::fs::remove_file(stored);
    run
}

fn rclone_run(server: &S3sFs, source: &Path, size: u64, n: usize) -> Run {
    let server_cpu0 = cpu_of(server.pid()).unwrap_or(0.0);
    let t = rclone_s3(
        &server.endpoint,
        s3s_fs::ACCESS_KEY,
        SECRET,
        source,
        &format!("dropship/rclone/run{n}.bin"),
    );
    let server_cpu = cpu_of(server.pid()).unwrap_or(0.0) - server_cpu0;
    let stored = server
        .bucket_dir("dropship")
        .join("rclone")
        .join(format!("run{n}.bin"));
    assert_eq!(std::fs::metadata(&stored).expect("stored").len(), size);
    let _ = std::fs::remove_file(stored);
    Run {
        secs: t.secs,
        client_cpu: t.cpu,
        client_rss_mib: t.peak_rss_mib,
        server_cpu,
    }
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    runs[runs.len() / 2]
}

fn report(what: &str, size: u64, r: &Run) {
    println!(
        "{what:<26} {:>7.2} s {:>7.1} MiB/s   client CPU {:>5.2} s, peak RSS {:>5.1} MiB   s3s-fs CPU {:>5.2} s",
        r.secs,
        size as f64 / MIB as f64 / r.secs,
        r.client_cpu,
        r.client_rss_mib,
        r.server_cpu
    );
}

fn main() {
    let size = env_u64("DROPSHIP_BENCH_S3_MIB", 1024) * MIB;
    let runs = env_u64("DROPSHIP_BENCH_RUNS", 3).max(1) as usize;
    let Some(server) = S3sFs::start(&["dropship"], SECRET) else {
        println!("s3 bench not run: {}", s3s_fs::MISSING);
        return;
    };
    let rclone = rclone_present();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.bin");
    write_random(&source, size);
    // One MD5 pass over the file on one core: the floor of any client that sends
    // Content-MD5 (dropship: per part and, from the parts, the ETag it verifies).
    let t = Instant::now();
    let md5 = {
        use md5::Digest as _;
        let mut h = md5::Md5::new();
        let mut f = std::fs::File::open(&source).expect("source");
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).expect("read");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.finalize()
    };
    let md5_secs = t.elapsed().as_secs_f64();
    std::hint::black_box(md5);
    println!(
        "{} MiB of random bytes, {runs} run(s) each, alternating; median by wall time:",
        size / MIB
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for n in 0..runs {
        ours.push(dropship_run(&server, &source, size, n));
        if rclone {
            theirs.push(rclone_run(&server, &source, size, n));
        }
    }
    for (i, r) in ours.iter().enumerate() {
        report(&format!("  dropship run {i}"), size, r);
    }
    for (i, r) in theirs.iter().enumerate() {
        report(&format!("  rclone copyto run {i}"), size, r);
    }
    let ours = median(ours);
    report("dropship (median)", size, &ours);
    if theirs.is_empty() {
        println!("rclone copyto             not run: no rclone on PATH");
    } else {
        let theirs = median(theirs);
        report("rclone copyto (median)", size, &theirs);
        println!(
            "dropship / rclone wall time: {:.2}",
            ours.secs / theirs.secs
        );
    }
    println!(
        "floor: one MD5 pass over the file on one core took {md5_secs:.2} s ({:.0} MiB/s)",
        size as f64 / MIB as f64 / md5_secs
    );
}
