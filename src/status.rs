//! `dropship status`: the journal's view, as a table for people or JSON for scripts.
//!
//! The JSON shape is an interface: `counts` has one key per file state, `backend`
//! says whether the service accepts work (`{"state": "ok" | "auth_refused" |
//! "unreachable", "since", "reason", "retry_at", "tries"}`), `notices` lists every condition the daemon
//! reports (`{"topic", "state", "since", "reason"}`), and `files` has one object per
//! journal row with at least `id`, `path`, `state`, `size`, `bytes_sent`, `attempts`
//! and `last_error`. Fields may be added, never renamed.

use std::fmt::Write as _;

use serde::Serialize;

use crate::journal::{BACKEND_TOPIC, StatusReport, now_ms};
use crate::units::human_bytes;

#[derive(Serialize)]
pub struct StatusJson<'a> {
    pub daemon_running: bool,
    pub journal: String,
    /// The journal's filesystem, as `status` finds it: a daemon that cannot write
    /// its journal cannot say so in it.
    pub journal_disk: Option<JournalDisk>,
    #[serde(flatten)]
    pub report: &'a StatusReport,
}

/// Free space and writability of the filesystem that holds the journal.
pub use crate::disk::Disk as JournalDisk;

/// Below this much free space the journal may fail to record anything.
pub const JOURNAL_LOW_SPACE: u64 = 1 << 20;

/// What is wrong with the journal's filesystem, for the table; `None` when nothing is.
fn disk_problem(d: &JournalDisk) -> Option<String> {
    if d.read_only {
        Some("its filesystem is read-only: no file can be recorded or sent".into())
    } else if d.free_bytes < JOURNAL_LOW_SPACE {
        Some(format!(
            "{} free on its filesystem: files may not be recorded or sent until space returns",
            human_bytes(d.free_bytes)
        ))
    } else {
        None
    }
}
/// The table `status` prints by default: active and failed files first, then the
/// most recent finished ones.
pub fn table(report: &StatusReport, running: bool, disk: Option<JournalDisk>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "daemon: {}",
        if running { "running" } else { "not running" }
    );
    if let Some(problem) = disk.as_ref().and_then(disk_problem) {
        let _ = writeln!(out, "journal: {problem}");
    }
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    let _ = writeln!(out, "files: {}", counts.join(", "));
    let b = &report.backlog;
    if b.files > 0 {
        let _ = writeln!(
            out,
            "backlog: {} file(s), {}, oldest recorded {}",
            b.files,
            human_bytes(b.bytes),
            b.oldest_queued_at.map_or("?".into(), ago)
        );
    }
    for f in &report.in_flight {
        let rate = f
            .rate_bytes_per_s
            .map_or(", rate known after the first part".into(), |r| {
                format!(", {}/s", human_bytes(r))
            });
        let _ = writeln!(
            out,
            "in flight: #{} {} {:.0}% of {}{rate} — {}",
            f.id,
            f.state,
            f.progress * 100.0,
            human_bytes(f.size),
            f.path
        );
    }
    for e in &report.last_errors {
        let _ = writeln!(
            out,
            "error: #{} {} {} — {} — {}",
            e.id,
            e.state,
            ago(e.at),
            e.path,
            e.error
        );
    }
    if report.backend.state != "ok" {
        let _ = writeln!(
            out,
            "backend: {} since {}{} — {}",
            report.backend.state,
            report.backend.since.map_or("?".into(), ago),
            match (report.backend.tries, report.backend.retry_at) {
                (Some(n), Some(at)) => format!(
                    ", {n} tries, next in {}s",
                    ((at - now_ms()).max(0) + 999) / 1000
                ),
                _ => String::new(),
            },
            report.backend.reason.as_deref().unwrap_or("")
        );
    }
    for n in report.notices.iter().filter(|n| n.topic != BACKEND_TOPIC) {
        let _ = writeln!(
            out,
            "notice: {} {} since {} — {}",
            n.topic,
            n.state,
            ago(n.since),
            n.reason.as_deref().unwrap_or("")
        );
    }
    let shown = &report.files;
    if shown.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:>6}  {:<10}  {:>10}  {:>10}  {:>5}  PATH",
        "ID", "STATE", "SIZE", "SENT", "TRIES"
    );
    for f in shown {
        let _ = writeln!(
            out,
            "{:>6}  {:<10}  {:>10}  {:>10}  {:>5}  {}",
            f.id,
            f.state,
            human_bytes(f.size),
            human_bytes(f.bytes_sent),
            f.attempts,
            f.path
        );
        if let Some(e) = &f.last_error
            && f.state != "done"
        {
            let _ = writeln!(out, "{:>6}  └ {e}", "");
        }
        if let (Some(began), "joining") = (f.join_started, f.state) {
            let _ = writeln!(
                out,
                "{:>6}  └ the service joins the parts (completion accepted {})",
                "",
                ago(began)
            );
        }
    }
    if report.files_omitted > 0 {
        let _ = writeln!(
            out,
            "({} more file(s) not shown; `status --all` lists every one)",
            report.files_omitted
        );
    }
    out
}

/// "12s ago" / "3m ago" / "2h ago" for a unix-ms instant.
fn ago(ms: i64) -> String {
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}
