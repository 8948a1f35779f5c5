//! `dropship status` on a big journal: 100,000 file rows (a day of a busy device),
//! timed as the operator runs it, a whole process from exec to exit.
//!
//!     cargo bench --bench status
//!
//! The journal is built with the daemon's own schema (`Journal::open`), then filled
//! with plain SQL in one transaction: 99,000 `done` rows (one part each, counted in
//! the row, as the daemon leaves them), 600
//! `queued`, 200 `retrying` with an error, 100 `failed`, 100 `uploading` with 8
//! parts half sent. Prints the median and worst of 15 runs of each form.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dropship::journal::{Journal, now_ms};
use rusqlite::params;

const ROWS: i64 = 100_000;
const RUNS: usize = 15;

fn build(journal: &Path) {
    drop(Journal::open(journal).expect("create the journal"));
    let mut conn = rusqlite::Connection::open(journal).expect("open");
    let tx = conn.transaction().expect("tx");
    let now = now_ms();
    {
        let mut file = tx
            .prepare(
                "INSERT INTO files (id, path, key, size, mtime_ns, inode, state, attempts,
                    next_attempt_at, last_error, bytes_sent, created_at, updated_at,
                    claimed_at, acked_at_claim, parts_count)
                 VALUES (?1, ?2, ?3, ?4, 1, ?1, ?5, 1, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12)",
            )
            .expect("prepare");
        let mut part = tx
            .prepare(
                "INSERT INTO parts (file_id, idx, offset, length, state, receipt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .expect("prepare");
        for id in 1..=ROWS {
            let (state, parts, error) = match id {
                _ if id > ROWS - 100 => ("uploading", 8, None),
                _ if id > ROWS - 200 => ("failed", 0, Some("the service refused the name")),
                _ if id > ROWS - 400 => ("retrying", 0, Some("connection reset by peer")),
                _ if id > ROWS - 1000 => ("queued", 0, None),
                // Delivered rows keep no parts (migration 0008).
                _ => ("done", 0, None),
            };
            let size: i64 = 1 << 20;
            let created = now - (ROWS - id) * 800;
            file.execute(params![
                id,
                format!("/var/spool/dropship/outbox/app/2026/11/25/log-{id:06}.log").as_bytes(),
                format!("app/2026/11/25/log-{id:06}.log"),
                size * parts.max(1),
                state,
                if state == "retrying" { now + 30_000 } else { 0 },
                error,
                if state == "done" { size } else { size * 4 },
                created,
                created + 700,
                (state == "uploading").then_some(now - 5_000),
                (state == "done").then_some(1),
            ])
            .expect("file row");
            for idx in 0..parts {
                let sent = state == "done" || idx < parts / 2;
                part.execute(params![
                    id,
                    idx,
                    idx * size,
                    size,
                    if sent { "uploaded" } else { "pending" },
                    sent.then_some("{\"index\":0,\"etag\":\"x\"}"),
                ])
                .expect("part row");
            }
        }
    }
    tx.commit().expect("commit");
}

fn time(config: &Path, args: &[&str]) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_dropship"))
            .arg("status")
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .expect("run status");
        times.push(start.elapsed());
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bytes = out.stdout.len();
    }
    times.sort();
    (times[RUNS / 2], times[RUNS - 1], bytes)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("journal.db");
    let start = Instant::now();
    build(&journal);
    println!(
        "journal of {ROWS} files built in {:.1} s ({} MiB)",
        start.elapsed().as_secs_f64(),
        std::fs::metadata(&journal).map_or(0, |m| m.len() >> 20)
    );
    let config = dir.path().join("dropship.toml");
    std::fs::write(
        &config,
        format!(
            "[watch]\npath = \"{}\"\n[journal]\npath = \"{}\"\n[backend]\ntype = \"local\"\npath = \"{}\"\n",
            dir.path().join("outbox").display(),
            journal.display(),
            dir.path().join("remote").display()
        ),
    )
    .expect("config");
    std::fs::create_dir_all(dir.path().join("outbox")).expect("outbox");
    println!("| command | median | worst of {RUNS} | output |");
    println!("|---|---|---|---|");
    for args in [&[][..], &["--json"][..], &["--json", "--all"][..]] {
        let (median, worst, bytes) = time(&config, args);
        println!(
            "| `dropship status {}` | {:.1} ms | {:.1} ms | {} KiB |",
            args.join(" "),
            median.as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3,
            bytes >> 10
        );
    }
}
