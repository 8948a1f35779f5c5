//! The performance harness: what an edge device pays for its uploads, measured on
//! this machine and printed as tables (Markdown, to paste).
//!
//!     cargo bench --bench perf                       # every scenario
//!     cargo bench --bench perf -- big small          # some of them
//!
//! Scenarios:
//! - `floor`: each digest's speed on one core here (the floor of a backend's CPU).
//! - `big`: one file (1 GiB) to every backend: the testbed's emulators in this
//!   process, s3s-fs (with `DROPSHIP_S3S_FS`) and a local folder, beside `rclone
//!   copyto` for local and S3. Wall time, MiB/s, dropship's CPU-s per GiB against
//!   its backend's digest floor, the server's CPU-s per GiB, dropship's peak RSS.
//! - `small`: 5,000 files of 4 KiB (kept, deleted, and kept with 8 workers), then
//!   500 of 1 MiB, on the local backend: files per second, CPU-s, journal commits
//!   and syncs per file.
//! - `latency`: 200 files written and closed in the outbox one by one at low load:
//!   close → verified, p50 and p99.
//! - `memory`: peak RSS with default settings, idle, with one 64 MiB file, and with
//!   a 4 GiB file and 1,000 small ones queued together.
//! - `backlog`: 100,000 files in the outbox at start: time to READY and to the
//!   first delivery, RSS; then, on that journal, `status` and one claim.
//!
//! `DROPSHIP_BENCH_MIB` sets `big`'s size (default 1024), `DROPSHIP_BENCH_RUNS` its
//! runs per backend (default 3; the median is shown), `DROPSHIP_BENCH_BACKENDS` a
//! comma-separated subset of `big`'s backends (e.g. `box,edgio`; `rclone` for its
//! rows), `DROPSHIP_BENCH_SMALL` a subset of `small`'s rows (`keep`, `delete`,
//! `keep8`, `1mib`), `DROPSHIP_BENCH_UPLOAD` more `[upload]` lines for them (e.g.
//! `part_size = "1MiB"`). The server shares the two cores with dropship, so its CPU is shown
//! beside dropship's.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::bench::{median, quantile, rclone_present, rclone_s3, timed, write_random};
use common::s3s_fs::{self, S3sFs};
use common::{Daemon, Env, cpu_of, env_u64};
use dropship_testbed::{Options, Testbed};
use serde_json::Value;

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const S3_SECRET: &str = "bench-secret";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn own_cpu() -> f64 {
    cpu_of(std::process::id() as i32).unwrap_or(0.0)
}

fn rss_mib(pid: i32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |k| k / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let all = ["floor", "big", "small", "latency", "memory", "backlog"];
    let chosen: Vec<&str> = if args.is_empty() {
        all.to_vec()
    } else {
        all.iter()
            .copied()
            .filter(|s| args.iter().any(|a| a == s))
            .collect()
    };
    println!("# dropship performance\n");
    println!("{}\n", machine());
    let floors = Floors::measure();
    for s in chosen {
        match s {
            "floor" => floors.print(),
            "big" => big(&floors),
            "small" => small(),
            "latency" => latency(),
            "memory" => memory(),
            "backlog" => backlog(),
            _ => unreachable!(),
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or("?".into(), |k| format!("{:.1} GiB", k / 1024.0 / 1024.0));
    format!(
        "Machine: {cpu}, {cores} cores, {mem} RAM, Linux {}; release build, loopback.",
        kernel.trim()
    )
}

/// Seconds per GiB of each digest on one core of this machine, with the crates the
/// daemon uses.
struct Floors {
    sha256: f64,
    sha1: f64,
    md5: f64,
}

impl Floors {
    fn measure() -> Floors {
        let buf = common::random_bytes(256 * MIB as usize, 7);
        fn secs_per_gib<D: sha2::Digest>(buf: &[u8]) -> f64 {
            let t = Instant::now();
            let mut h = D::new();
            for chunk in buf.chunks(1 << 20) {
                h.update(chunk);
            }
            std::hint::black_box(h.finalize());
            t.elapsed().as_secs_f64() * GIB / buf.len() as f64
        }
        Floors {
            sha256: secs_per_gib::<sha2::Sha256>(&buf),
            sha1: secs_per_gib::<sha1::Sha1>(&buf),
            md5: secs_per_gib::<md5::Md5>(&buf),
        }
    }

    fn print(&self) {
        println!("## Digest floors (one core, 256 MiB in 1 MiB updates)\n");
        println!("| digest | CPU-s per GiB | GB/s |\n|---|---|---|");
        for (name, s) in [
            ("SHA-256", self.sha256),
            ("SHA-1", self.sha1),
            ("MD5", self.md5),
        ] {
            println!("| {name} | {s:.3} | {:.2} |", GIB / s / 1e9);
        }
        println!();
    }
}

/// The stored object's size of a key, if stored.
type StoredSize = Box<dyn Fn(&str) -> Option<u64>>;

/// Removes the stored object of a key.
type Remove = Box<dyn Fn(&str)>;

/// Sizes of objects kept as files under `dir` (a local folder, s3s-fs's bucket).
fn stored_in(dir: &Path) -> StoredSize {
    let dir = dir.to_path_buf();
    Box::new(move |k: &str| std::fs::metadata(dir.join(k)).ok().map(|m| m.len()))
}

fn remove_from(dir: &Path) -> Remove {
    let dir = dir.to_path_buf();
    Box::new(move |k: &str| {
        let _ = std::fs::remove_file(dir.join(k));
    })
}

/// One backend of the `big` scenario.
struct Target {
    name: &'static str,
    /// The `[backend]` table.
    backend: String,
    /// Digests the daemon must compute for it, per GiB, on one core.
    floor: f64,
    floor_why: &'static str,
    /// The server's process, when it is not this one (s3s-fs).
    server_pid: Option<i32>,
    /// The stored object's size, to check the delivery.
    stored: StoredSize,
    /// Removes the stored object (disk space for the next run).
    remove: Remove,
    /// Files the backend config names, written next to the config.
    files: Vec<(&'static str, String)>,
    /// What must live as long as the target (its testbed and store).
    _keep: Option<Box<dyn std::any::Any>>,
}

struct Delivery {
    secs: f64,
    cpu: f64,
    rss_mib: f64,
    server_cpu: f64,
}

/// Waits (polling `status` every 250 ms: each poll is a process of its own) until
/// `key`'s newest row is done; returns that row.
fn wait_done_row(env: &Env, key: &str, timeout: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        if let Some(r) = env.rows(key).pop() {
            if r["state"] == "done" {
                return r;
            }
            assert!(r["state"] != "failed", "{key} failed: {r}");
        }
        assert!(t0.elapsed() < timeout, "{key} not done in {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Delivers `source` once as `key` through a fresh daemon; times it from the rename
/// into the outbox to the `done` row's `updated_at`.
fn deliver(t: &Target, source: &Path, key: &str, size: u64) -> Delivery {
    let env = Env::new("300ms", "", &t.backend, "");
    for (name, text) in &t.files {
        std::fs::write(env.dir.path().join(name), text).expect("backend file");
    }
    let daemon = env.spawn_ready();
    let staged = env.dir.path().join("staged.bin");
    std::fs::hard_link(source, &staged).expect("link the source");
    let server = || {
        t.server_pid
            .map_or_else(own_cpu, |p| cpu_of(p).unwrap_or(0.0))
    };
    let (cpu0, server0) = (cpu_of(daemon.pid()).unwrap_or(0.0), server());
    let t0 = now_ms();
    std::fs::rename(&staged, env.outbox.join(key)).expect("into the outbox");
    let row = wait_done_row(&env, key, Duration::from_secs(1800));
    let done_at = row["updated_at"].as_i64().expect("updated_at");
    let d = Delivery {
        secs: (done_at - t0) as f64 / 1000.0,
        cpu: cpu_of(daemon.pid()).unwrap_or(0.0) - cpu0,
        rss_mib: rss_mib(daemon.pid(), "VmHWM:"),
        server_cpu: server() - server0,
    };
    // Each run on stderr: the table shows the median only.
    eprintln!(
        "{} {key}: {:.2} s, dropship {:.2} CPU-s, server {:.2} CPU-s",
        t.name, d.secs, d.cpu, d.server_cpu
    );
    assert_eq!(
        (t.stored)(key),
        Some(size),
        "{}: the stored object's size",
        t.name
    );
    (t.remove)(key);
    drop(daemon);
    d
}

/// The testbed of one emulated backend: started for it, dropped (with its store)
/// after its runs, so that at most one backend's objects take disk space.
fn testbed_target(rt: &tokio::runtime::Runtime, name: &'static str, floors: &Floors) -> Target {
    let store = tempfile::tempdir().expect("store");
    let tb = std::sync::Arc::new(
        rt.block_on(Testbed::start(Options::loopback(store.path())))
            .expect("testbed"),
    );
    let entity = "00189ab4c65243bb9d77f17332dd570a";
    let (emulator, backend, floor, floor_why, path): (_, _, _, _, fn(&str) -> String) = match name {
        "box" => (
            "box",
            format!(
                "type = \"box\"\napi_url = \"{0}/box\"\nupload_url = \"{0}/box\"\ntoken_file = \"token\"",
                tb.url()
            ),
            2.0 * floors.sha1,
            "SHA-1 twice (parts, file)",
            |k| k.to_string(),
        ),
        "insights-hub" => (
            "insights-hub",
            format!(
                "type = \"insights-hub\"\ngateway_url = \"{}\"\nentity_id = \"{entity}\"\ntoken_file = \"token\"",
                tb.emulator_url("insights-hub")
            ),
            0.0,
            "no digest",
            |k| format!("00189ab4c65243bb9d77f17332dd570a/{k}"),
        ),
        "exosite" => (
            "exosite",
            format!(
                "type = \"exosite\"\nurl = \"{}\"\ntoken_file = \"token\"",
                tb.emulator_url("exosite")
            ),
            floors.md5,
            "MD5 once",
            dropship::backend::exosite::content_id,
        ),
        _ => (
            "edgio",
            format!(
                "type = \"edgio\"\nupload_url = \"{0}\"\norigin_url = \"{0}/origin/testbed\"\nusername = \"testbed\"\npassword_file = \"token\"",
                tb.emulator_url("edgio")
            ),
            2.0 * floors.sha256,
            "SHA-256 twice (pieces, file)",
            |k| k.to_string(),
        ),
    };
    let lookup = tb.clone();
    Target {
        name,
        backend,
        floor,
        floor_why,
        server_pid: None,
        stored: Box::new(move |key: &str| {
            lookup
                .objects()
                .into_iter()
                .find(|o| o.emulator == emulator && o.path == path(key))
                .map(|o| o.size)
        }),
        remove: Box::new(|_| {}),
        files: vec![("token", dropship_testbed::DEFAULT_SECRET.to_string())],
        _keep: Some(Box::new((tb, store))),
    }
}

fn big(floors: &Floors) {
    let size = env_u64("DROPSHIP_BENCH_MIB", 1024) * MIB;
    let runs = env_u64("DROPSHIP_BENCH_RUNS", 3).max(1) as usize;
    let gib = size as f64 / GIB;
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.bin");
    write_random(&source, size);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let s3 = S3sFs::start(&["dropship"], S3_SECRET);
    let local_remote = dir.path().join("remote");
    let local = || Target {
        name: "local",
        backend: format!("type = \"local\"\npath = \"{}\"", local_remote.display()),
        // Verification reads the stored copy back and hashes it: two passes.
        floor: 2.0 * floors.sha256,
        floor_why: "SHA-256 twice (file, stored copy)",
        server_pid: None,
        stored: stored_in(&local_remote),
        remove: remove_from(&local_remote),
        files: Vec::new(),
        _keep: None,
    };
    let s3_target = |s3: &S3sFs| {
        let bucket = s3.bucket_dir("dropship").join("dropship");
        Target {
            name: "s3 (s3s-fs)",
            backend: format!(
                "type = \"s3\"\nendpoint = \"{}\"\nbucket = \"dropship\"\nprefix = \"dropship\"\n\
                 access_key_id_file = \"{}\"\nsecret_access_key_file = \"secret\"",
                s3.endpoint,
                s3.access_key_file().display()
            ),
            floor: floors.md5,
            floor_why: "MD5 once (parts; the ETag from them)",
            server_pid: Some(s3.pid()),
            stored: stored_in(&bucket),
            remove: remove_from(&bucket),
            files: vec![("secret", S3_SECRET.to_string())],
            _keep: None,
        }
    };

    println!(
        "## One {} MiB file of random bytes per backend (median of {runs} by wall time)\n",
        size / MIB
    );
    println!(
        "| backend | wall s | MiB/s | dropship CPU-s/GiB | digest floor CPU-s/GiB | × floor | server CPU-s/GiB | dropship peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let names = ["local", "box", "insights-hub", "exosite", "edgio", "s3"];
    // To profile or re-measure one backend without the rest.
    let only = std::env::var("DROPSHIP_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |n: &str| only.is_empty() || only.split(',').any(|o| o.trim() == n);
    for name in names.into_iter().filter(|n| wanted(n)) {
        let t = match name {
            "local" => local(),
            "s3" => match &s3 {
                Some(s3) => s3_target(s3),
                None => continue,
            },
            other => testbed_target(&rt, other, floors),
        };
        // A new key each run: the same content under the same key would be found
        // held already, and nothing sent.
        let mut runs_of: Vec<Delivery> = (0..runs)
            .map(|i| deliver(&t, &source, &format!("big-{i}.bin"), size))
            .collect();
        runs_of.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        let d = &runs_of[runs_of.len() / 2];
        let ratio = if t.floor > 0.0 {
            format!("{:.2}", d.cpu / gib / t.floor)
        } else {
            "—".into()
        };
        println!(
            "| {} | {:.2} | {:.0} | {:.2} | {:.2} ({}) | {ratio} | {:.2} | {:.1} |",
            t.name,
            d.secs,
            size as f64 / MIB as f64 / d.secs,
            d.cpu / gib,
            t.floor,
            t.floor_why,
            d.server_cpu / gib,
            d.rss_mib
        );
    }
    if rclone_present() && wanted("rclone") {
        let copies: Vec<_> = (0..runs)
            .map(|_| {
                let dest = dir.path().join("rclone.bin");
                let r = timed(Command::new("rclone").arg("copyto").arg(&source).arg(&dest));
                let _ = std::fs::remove_file(dest);
                r
            })
            .collect();
        let r = copies
            .iter()
            .min_by(|a, b| {
                let m = median(copies.iter().map(|c| c.secs).collect());
                (a.secs - m).abs().total_cmp(&(b.secs - m).abs())
            })
            .copied()
            .expect("runs");
        println!(
            "| rclone copyto, local | {:.2} | {:.0} | {:.2} | | | | {:.1} |",
            r.secs,
            size as f64 / MIB as f64 / r.secs,
            r.cpu / gib,
            r.peak_rss_mib
        );
        if let Some(s3) = &s3 {
            let mut copies = Vec::new();
            for _ in 0..runs {
                let cpu0 = cpu_of(s3.pid()).unwrap_or(0.0);
                let r = rclone_s3(
                    &s3.endpoint,
                    s3s_fs::ACCESS_KEY,
                    S3_SECRET,
                    &source,
                    "dropship/rclone/big.bin",
                );
                copies.push((r, cpu_of(s3.pid()).unwrap_or(0.0) - cpu0));
                let _ = std::fs::remove_file(s3.bucket_dir("dropship").join("rclone/big.bin"));
            }
            copies.sort_by(|a, b| a.0.secs.total_cmp(&b.0.secs));
            let (r, server) = copies[copies.len() / 2];
            println!(
                "| rclone copyto, s3 (s3s-fs) | {:.2} | {:.0} | {:.2} | | | {:.2} | {:.1} |",
                r.secs,
                size as f64 / MIB as f64 / r.secs,
                r.cpu / gib,
                server / gib,
                r.peak_rss_mib
            );
        }
    } else {
        println!("\n(rclone is not installed: no rclone rows)");
    }
    if s3.is_none() {
        println!("\n(no s3 row: {})", s3s_fs::MISSING);
    }
    println!(
        "\nWall: the file's rename into the outbox to its `done` row (verification included). \
         Server CPU: the testbed (this process) or s3s-fs meanwhile; rclone's is its own `time`.\n"
    );
}

/// A loopback port free now, for `[metrics] listen`.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `dropship_journal_commits_total` from the daemon's metrics endpoint.
/// The daemon's journal commits and syncs so far, from its metrics.
fn journal_counters(port: u16) -> (f64, f64) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).expect("metrics answer");
    let counter = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in the metrics"))
    };
    (
        counter("dropship_journal_commits_total"),
        counter("dropship_journal_syncs_total"),
    )
}

/// An env on the local backend with metrics on a free port; `upload`: more lines
/// for `[upload]`.
fn local_env(settle: &str, upload: &str) -> (Env, u16) {
    let port = free_port();
    let env = Env::local(
        settle,
        upload,
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\""),
    );
    (env, port)
}

/// Counts of the journal's states, from `status --json`.
fn done_count(env: &Env) -> u64 {
    let out = Command::new(common::BIN)
        .args([
            "status", "--json", "--limit", "1", "--recent", "1", "--config",
        ])
        .arg(&env.config)
        .output()
        .expect("status");
    let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    v["counts"]["done"].as_u64().unwrap_or(0)
}

fn small() {
    println!("## Many small files, local backend, default settings but `workers`\n");
    println!(
        "| files | after | workers | files/s | dropship CPU-s | CPU-ms per file | journal commits per file | journal syncs per file | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // `keep` is the default; `delete` adds the journal sync each removal waits for;
    // 8 workers show what concurrency buys where each file waits on the disk.
    let only = std::env::var("DROPSHIP_BENCH_SMALL").unwrap_or_default();
    let extra = std::env::var("DROPSHIP_BENCH_UPLOAD").unwrap_or_default();
    for (n, size, after, workers, name) in [
        (5000usize, 4096usize, "keep", 2, "keep"),
        (5000, 4096, "delete", 2, "delete"),
        (5000, 4096, "keep", 8, "keep8"),
        (500, MIB as usize, "keep", 2, "1mib"),
    ] {
        if !only.is_empty() && !only.split(',').any(|o| o.trim() == name) {
            continue;
        }
        let (env, port) = local_env(
            "300ms",
            &format!("after = \"{after}\"\nworkers = {workers}\n{extra}"),
        );
        let staging = env.dir.path().join("staging");
        std::fs::create_dir_all(&staging).expect("staging");
        let data = common::random_bytes(size, n as u64);
        for i in 0..n {
            std::fs::write(staging.join(format!("f{i:05}.bin")), &data).expect("write");
        }
        let daemon = env.spawn_ready();
        let (cpu0, (commits0, syncs0)) =
            (cpu_of(daemon.pid()).unwrap_or(0.0), journal_counters(port));
        let t0 = now_ms();
        for i in 0..n {
            let name = format!("f{i:05}.bin");
            std::fs::rename(staging.join(&name), env.outbox.join(&name)).expect("rename");
        }
        let t1 = Instant::now();
        while done_count(&env) < n as u64 {
            assert!(
                t1.elapsed() < Duration::from_secs(600),
                "small files not done"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let end = last_done_ms(&env);
        let secs = (end - t0) as f64 / 1000.0;
        let cpu = cpu_of(daemon.pid()).unwrap_or(0.0) - cpu0;
        let (c, s) = journal_counters(port);
        let (c, s) = (c - commits0, s - syncs0);
        println!(
            "| {n} × {} | {after} | {workers} | {:.0} | {cpu:.2} | {:.2} | {:.1} | {:.2} | {:.1} |",
            human(size as u64),
            n as f64 / secs,
            cpu * 1000.0 / n as f64,
            c / n as f64,
            s / n as f64,
            rss_mib(daemon.pid(), "VmHWM:")
        );
    }
    println!("\nFrom the first rename into the outbox to the last `done` row's `updated_at`.\n");
}

/// The latest `updated_at` of a done row.
fn last_done_ms(env: &Env) -> i64 {
    env.status()["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|r| r["state"] == "done")
        .filter_map(|r| r["updated_at"].as_i64())
        .max()
        .expect("done rows")
}

fn human(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

fn latency() {
    let settle = "300ms";
    let (env, _) = local_env(settle, "");
    let daemon = env.spawn_ready();
    let n = 200;
    let mut closed = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("l{i:03}.bin");
        let mut f = std::fs::File::create(env.outbox.join(&name)).expect("create");
        f.write_all(&[i as u8; 4096]).expect("write");
        drop(f);
        closed.push((env.outbox.join(&name).display().to_string(), now_ms()));
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_done(&env, n as u64);
    let rows = env.status()["files"].as_array().cloned().expect("files");
    let lat: Vec<f64> = closed
        .iter()
        .filter_map(|(path, t)| {
            let r = rows.iter().find(|r| r["path"] == path.as_str())?;
            Some((r["updated_at"].as_i64()? - t) as f64)
        })
        .collect();
    assert_eq!(lat.len(), n, "every file's row");
    println!("## Latency: a 4 KiB file closed in the outbox → verified, local backend\n");
    println!("| files | settle | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    println!(
        "| {n}, one every 50 ms | {settle} | {:.0} | {:.0} | {:.0} |",
        quantile(lat.clone(), 0.5),
        quantile(lat.clone(), 0.99),
        quantile(lat, 1.0)
    );
    println!(
        "\nA file closed after writing is finished at its close (inotify), not after `settle`.\n"
    );
    drop(daemon);
}

fn wait_for_done(env: &Env, n: u64) {
    let t0 = Instant::now();
    while done_count(env) < n {
        assert!(t0.elapsed() < Duration::from_secs(1800), "not done");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn memory() {
    println!(
        "## Memory: peak RSS with default settings (8 MiB parts, 4 in flight), local backend\n"
    );
    println!("| load | peak RSS MiB | bound 16 + 4 × 8 MiB |\n|---|---|---|");
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("dir");
    let big = dir.path().join("big.bin");
    // Idle.
    {
        let (env, _) = local_env("300ms", "");
        let d = env.spawn_ready();
        std::thread::sleep(Duration::from_secs(2));
        println!("| idle | {:.1} | 48 |", rss_mib(d.pid(), "VmHWM:"));
    }
    for (label, size, bigs, smalls) in [
        ("one 64 MiB file", 64 * MIB, 1, 0usize),
        ("a 4 GiB file and 1,000 of 4 KiB", 4096 * MIB, 1, 1000),
        ("two 1 GiB files at once", 1024 * MIB, 2, 0),
    ]
    .into_iter()
    // `DROPSHIP_BENCH_MEMORY=4` runs only the rows whose label has "4" in it.
    .filter(|r| {
        std::env::var("DROPSHIP_BENCH_MEMORY")
            .ok()
            .is_none_or(|x| r.0.contains(&x))
    }) {
        write_random(&big, size);
        let (env, _) = local_env("300ms", "");
        let staging = env.dir.path().join("staging");
        std::fs::create_dir_all(&staging).expect("staging");
        for i in 0..smalls {
            std::fs::write(staging.join(format!("s{i:04}")), [i as u8; 4096]).expect("small");
        }
        let d = env.spawn_ready();
        // Hard links of one file: as many big files as wanted for the disk space of one.
        for b in 0..bigs {
            let n = format!("big{b}.bin");
            std::fs::hard_link(&big, staging.join(&n)).expect("link");
            std::fs::rename(staging.join(&n), env.outbox.join(&n)).expect("rename");
        }
        for i in 0..smalls {
            let n = format!("s{i:04}");
            std::fs::rename(staging.join(&n), env.outbox.join(&n)).expect("rename");
        }
        wait_for_done(&env, (smalls + bigs) as u64);
        println!("| {label} | {:.1} | 48 |", rss_mib(d.pid(), "VmHWM:"));
        for b in 0..bigs {
            let _ = std::fs::remove_file(env.remote().join(format!("big{b}.bin")));
        }
    }
    println!();
}

/// Writes `n` 16-byte files into `root` in folders of 1,000.
fn fill(root: &Path, n: usize) {
    for i in 0..n {
        let d = root.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&d).expect("folder");
        }
        std::fs::write(d.join(format!("f{i:06}")), format!("{i:015}\n")).expect("file");
    }
}

/// Seconds since the epoch of a log line's RFC 3339 UTC timestamp.
fn log_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?;
    let t: jiff::Timestamp = ts.parse().ok()?;
    Some(t.as_millisecond() as f64 / 1000.0)
}

fn backlog() {
    let n = 100_000;
    let (env, _) = local_env("300ms", "");
    fill(&env.outbox, n);
    let t0 = now_ms() as f64 / 1000.0;
    let daemon: Daemon = env.spawn();
    let log_at = |needle: &str| {
        let t = Instant::now();
        loop {
            if let Some(at) = env
                .log_text()
                .lines()
                .find(|l| l.contains(needle))
                .and_then(log_time)
            {
                return at;
            }
            assert!(t.elapsed() < Duration::from_secs(600), "no {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let ready = log_at("dropship is running") - t0;
    let rss_ready = rss_mib(daemon.pid(), "VmRSS:");
    let first = log_at("delivered and verified") - t0;
    // Let it work a while, then stop it with most of the backlog queued.
    std::thread::sleep(Duration::from_secs(10));
    let done = done_count(&env);
    let peak = rss_mib(daemon.pid(), "VmHWM:");
    daemon.sigterm();
    let mut daemon = daemon;
    daemon.wait_exit(Duration::from_secs(30));

    println!("## Backlog: {n} files of 16 bytes in the outbox at start, local backend\n");
    println!(
        "| READY s | first delivery s | RSS at READY MiB | peak RSS MiB (first 10 s of work) | delivered in those 10 s |"
    );
    println!("|---|---|---|---|---|");
    println!("| {ready:.2} | {first:.2} | {rss_ready:.1} | {peak:.1} | {done} |\n");

    // That journal: ~100,000 rows, most queued.
    let status = |args: &[&str]| {
        let runs: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new(common::BIN)
                    .arg("status")
                    .args(args)
                    .arg("--config")
                    .arg(&env.config)
                    .output()
                    .expect("status");
                assert!(out.status.success());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        median(runs)
    };
    let human_ms = status(&[]);
    let json_ms = status(&["--json"]);
    let all_ms = status(&["--json", "--all"]);
    let journal_path = env.dir.path().join("state/journal.db");
    let claims = claim_costs(&journal_path, 200);
    println!("| on that journal ({} rows) | ms |\n|---|---|", n);
    println!("| `status` (median of 5, whole process) | {human_ms:.0} |");
    println!("| `status --json` | {json_ms:.0} |");
    println!("| `status --json --all` | {all_ms:.0} |");
    println!(
        "| one claim (`claim_next`, p50 / p99 of 200, commit included) | {:.2} / {:.2} |\n",
        quantile(claims.clone(), 0.5),
        quantile(claims, 0.99)
    );
}

/// Milliseconds of each of `n` claims on the journal at `path`.
fn claim_costs(path: &Path, n: usize) -> Vec<f64> {
    let mut j = dropship::journal::Journal::open(path).expect("journal");
    j.recover().expect("recover");
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let row = j
                .claim_next(dropship::journal::now_ms(), &[])
                .expect("claim");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert!(row.is_some(), "a queued row to claim");
            ms
        })
        .collect()
}
