//! The journal of a device that ships 100,000 files a day, with the default
//! `journal.keep_done` of 7 days: how big it gets, and what a pruning pass costs.
//!
//!     cargo bench --bench housekeeping
//!
//! Eight days of `done` rows (realistic paths, each with its digest and remote
//! object, and no part rows, as the daemon leaves a delivered file) are written with
//! the daemon's schema; the daemon's own pass (`housekeeping::pass`) prunes what is
//! older than 7 days (the files are gone from the outbox, as with `after = "delete"`
//! or `"move"`). Then a ninth day arrives and is pruned in turn: the file must not
//! grow, since SQLite reuses the pages pruned rows freed.

use std::path::Path;
use std::time::{Duration, Instant};

use dropship::journal::{Journal, JournalHandle, now_ms};
use rusqlite::params;
use tokio_util::sync::CancellationToken;

const PER_DAY: i64 = 100_000;
const DAY_MS: i64 = 86_400_000;
const KEEP: Duration = Duration::from_secs(7 * 86_400);

/// `DROPSHIP_BENCH_OLD_ROWS=1`: rows as delivered files were kept before migration
/// 0008 (with their part, session and hash checkpoint), for the comparison.
fn old_rows() -> bool {
    std::env::var_os("DROPSHIP_BENCH_OLD_ROWS").is_some()
}

/// Appends one day of delivered files, `days_ago` days old.
fn add_day(journal: &Path, day: i64, days_ago: i64) {
    let mut conn = rusqlite::Connection::open(journal).expect("open");
    let tx = conn.transaction().expect("tx");
    {
        let mut file = tx
            .prepare(
                "INSERT INTO files (path, key, size, mtime_ns, inode, state, attempts,
                    bytes_sent, created_at, updated_at, parts_count, digests, remote)
                 VALUES (?1, ?2, 1048576, 1, ?3, 'done', 1, 1048576, ?4, ?4, 1, ?5, ?6)",
            )
            .expect("prepare");
        let base = now_ms() - days_ago * DAY_MS;
        for i in 0..PER_DAY {
            let at = base + i * DAY_MS / PER_DAY;
            let rel = format!("gw-07/app/2026-11-{:02}/events-{i:06}.log", day + 1);
            // As the daemon leaves a delivered row (migration 0008): what it was
            // and became, no parts, session or hash checkpoint.
            file.execute(params![
                format!("/var/spool/dropship/outbox/{rel}").as_bytes(),
                rel,
                day * PER_DAY + i,
                at,
                format!(
                    "{{\"object\":{{\"kind\":\"sha256\",\"hex\":\"{:064x}\"}}}}",
                    i
                ),
                format!("{{\"key\":\"{rel}\"}}"),
            ])
            .expect("file");
            if old_rows() {
                let id = tx.last_insert_rowid();
                tx.execute(
                    "UPDATE files SET parts_count = NULL, session = ?2, hash_state = ?3
                     WHERE id = ?1",
                    params![
                        id,
                        "{\"id\":\"2d1eeefbd60db67200004153\",\"part_size\":8388608}",
                        format!(
                            "{{\"kind\":\"sha256\",\"offset\":1048576,\"state\":\"{:0200x}\"}}",
                            i
                        )
                    ],
                )
                .expect("old row");
                tx.execute(
                    "INSERT INTO parts (file_id, idx, offset, length, state, receipt)
                     VALUES (?1, 0, 0, 1048576, 'uploaded', ?2)",
                    params![id, "{\"index\":0,\"offset\":0,\"length\":1048576}"],
                )
                .expect("part");
            }
        }
    }
    tx.commit().expect("commit");
}

fn mib(journal: &Path) -> f64 {
    let wal = journal.with_extension("db-wal");
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    (len(journal) + len(&wal)) as f64 / (1 << 20) as f64
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.db");
    drop(Journal::open(&path).expect("create"));
    let t0 = Instant::now();
    for day in 0..8 {
        add_day(&path, day, 8 - day);
    }
    println!(
        "8 days of {PER_DAY} files written in {:.1} s: {:.1} MiB",
        t0.elapsed().as_secs_f64(),
        mib(&path)
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pass = |label: &str| {
        let handle = JournalHandle::new(Journal::open(&path).expect("open"));
        let t = Instant::now();
        let done = rt
            .block_on(dropship::housekeeping::pass(
                &handle,
                KEEP,
                &CancellationToken::new(),
            ))
            .expect("pass");
        let took = t.elapsed();
        drop(handle);
        // The daemon's connection checkpoints as it goes; a fresh one here does so
        // at close, as it would.
        let conn = rusqlite::Connection::open(&path).expect("open");
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))
            .expect("count");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        drop(conn);
        println!(
            "| {label} | {} pruned, {} kept | {:.1} s | {rows} rows | {:.1} MiB |",
            done.pruned,
            done.kept,
            took.as_secs_f64(),
            mib(&path)
        );
    };
    println!("| pass | rows | time | journal rows after | journal size after |");
    println!("|---|---|---|---|---|");
    pass("day 8: the oldest day is past keep_done");
    add_day(&path, 8, 0);
    // The ninth day: everything one day older.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute(
        "UPDATE files SET updated_at = updated_at - ?1, created_at = created_at - ?1
         WHERE id <= ?2",
        params![DAY_MS, 8 * PER_DAY],
    )
    .expect("age");
    drop(conn);
    pass("day 9: another day past keep_done");
}
