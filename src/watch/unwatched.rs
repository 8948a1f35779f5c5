//! Folders without an inotify watch, and lost file events: what the watcher does
//! instead, and what it tells the operator.
//!
//! When the watch limit is met (the kernel's `fs.inotify.max_user_watches`, 8192 on
//! small kernels, or `DROPSHIP_MAX_WATCHES`), the folders left without a watch raise
//! no event: they are listed every [`quick_interval`] instead, and only they. The
//! list is bounded ([`MAX_UNWATCHED`]); past it the whole outbox is scanned instead,
//! at [`fallback_interval`]. Either way it is said once at WARN and kept as the
//! `watch:limit` notice (`status`), until every folder has a watch again. Lost
//! events (the kernel's queue overflowed, or ours) cost a full rescan each; the first
//! is said at WARN, and the `watch:overflow` notice counts them.
//!
//! Both notices start with `watch:`, so a restart clears them with the others: a
//! daemon started with a higher limit reports only what it meets itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Unwatched folders remembered one by one. Each costs a listing per quick scan
/// and a path in memory; beyond this many, full rescans are cheaper to reason about.
pub(super) const MAX_UNWATCHED: usize = 1000;

/// The `status` notice of folders without a watch.
pub(super) const LIMIT_TOPIC: &str = "watch:limit";
/// The `status` notice of lost file events.
pub(super) const OVERFLOW_TOPIC: &str = "watch:overflow";

/// The environment variable capping the watches dropship adds itself. For tests
/// (the kernel's limit is global, shared with every program of the user), and for
/// operators who want to leave watches to other programs. Read once, at start.
pub const MAX_WATCHES_ENV: &str = "DROPSHIP_MAX_WATCHES";

/// The cap of [`MAX_WATCHES_ENV`], if set to a number (at least 1: the outbox's
/// own watch is needed for anything to work).
pub(super) fn watch_cap() -> Option<usize> {
    let raw = std::env::var(MAX_WATCHES_ENV).ok()?;
    match raw.trim().parse::<usize>() {
        Ok(n) => Some(n.max(1)),
        Err(_) => {
            tracing::warn!(value = %raw, "{MAX_WATCHES_ENV} is not a number; ignored");
            None
        }
    }
}

/// How often unwatched folders are listed: ten settle times, within 1–30 s. A file
/// there is found that much later than an event would have found it.
pub(super) fn quick_interval(settle: Duration) -> Duration {
    (settle * 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// How often the whole outbox is scanned when too many folders lack a watch to
/// list them one by one: `watch.rescan`, or five minutes where it is off.
pub(super) fn fallback_interval(rescan: Duration) -> Duration {
    if rescan.is_zero() {
        Duration::from_secs(300)
    } else {
        rescan
    }
}

/// The folders without a watch, as the last scans found them.
#[derive(Debug, Default)]
pub(super) struct Unwatched {
    dirs: BTreeSet<PathBuf>,
    /// More than [`MAX_UNWATCHED`] were found: `dirs` is dropped and full scans
    /// take over, until a full scan finds fewer.
    too_many: bool,
    /// The reason last written to the notice (written again only when it changes).
    reported: Option<String>,
}

impl Unwatched {
    /// A scan of `scanned` left `found` without a watch (`too_many`: more than it
    /// kept). `full`: it covered the whole outbox.
    pub(super) fn update(
        &mut self,
        scanned: &Path,
        found: Vec<PathBuf>,
        too_many: bool,
        full: bool,
    ) {
        self.dirs.retain(|d| !d.starts_with(scanned));
        if full {
            self.too_many = false;
        }
        if too_many {
            self.too_many = true;
        }
        if self.too_many {
            self.dirs.clear();
            return;
        }
        self.dirs.extend(found);
        if self.dirs.len() > MAX_UNWATCHED {
            self.too_many = true;
            self.dirs.clear();
        }
    }

    /// Whether any folder lacks a watch.
    pub(super) fn any(&self) -> bool {
        self.too_many || !self.dirs.is_empty()
    }

    pub(super) fn too_many(&self) -> bool {
        self.too_many
    }

    /// The folders to list: those with no unwatched folder above them (a listing
    /// walks down through unwatched folders, not through watched ones).
    pub(super) fn tops(&self) -> Vec<PathBuf> {
        let mut tops: Vec<PathBuf> = Vec::new();
        // Sorted: a folder comes right after its ancestors' subtrees begin.
        for d in &self.dirs {
            if !tops.last().is_some_and(|t| d.starts_with(t)) {
                tops.push(d.clone());
            }
        }
        tops
    }

    /// The notice's reason now, or `None` when every folder has a watch.
    pub(super) fn reason(
        &self,
        cap: Option<usize>,
        quick: Duration,
        fallback: Duration,
    ) -> Option<String> {
        if !self.any() {
            return None;
        }
        let limit = match cap {
            Some(n) => format!("{MAX_WATCHES_ENV}={n}"),
            None => "the kernel's fs.inotify.max_user_watches (raise it with sysctl)".into(),
        };
        Some(if self.too_many {
            format!(
                "more than {MAX_UNWATCHED} folders have no inotify watch: {limit} is reached; \
                 the whole outbox is scanned every {}s instead",
                fallback.as_secs()
            )
        } else {
            format!(
                "{} folder(s) have no inotify watch: {limit} is reached; they are scanned every {}s instead",
                self.dirs.len(),
                quick.as_secs()
            )
        })
    }

    /// Whether `reason` differs from what the notice says; remembers it.
    pub(super) fn changed(&mut self, reason: Option<&str>) -> bool {
        if self.reported.as_deref() == reason {
            return false;
        }
        self.reported = reason.map(str::to_string);
        true
    }

    /// Whether the notice was reported (a WARN was said for this spell).
    pub(super) fn reported(&self) -> bool {
        self.reported.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn scans_replace_what_they_cover_and_the_list_stays_bounded() {
        let mut u = Unwatched::default();
        u.update(
            &p("/o"),
            vec![p("/o/a/b"), p("/o/a/b/c"), p("/o/x")],
            false,
            true,
        );
        assert_eq!(u.tops(), vec![p("/o/a/b"), p("/o/x")]);
        // A listing of /o/a/b found its folders watched now.
        u.update(&p("/o/a/b"), vec![], false, false);
        assert_eq!(u.tops(), vec![p("/o/x")]);
        u.update(&p("/o/x"), vec![], false, false);
        assert!(!u.any());
        let many: Vec<PathBuf> = (0..=MAX_UNWATCHED)
            .map(|i| p(&format!("/o/d{i}")))
            .collect();
        u.update(&p("/o"), many, false, true);
        assert!(u.too_many() && u.tops().is_empty());
        // Only a full scan that finds fewer ends the fallback.
        u.update(&p("/o/d1"), vec![], false, false);
        assert!(u.too_many());
        u.update(&p("/o"), vec![p("/o/d1")], false, true);
        assert!(!u.too_many() && u.any());
    }

    #[test]
    fn the_reason_names_the_limit_and_changes_with_the_count() {
        let mut u = Unwatched::default();
        let q = Duration::from_secs(3);
        let f = Duration::from_secs(300);
        assert_eq!(u.reason(None, q, f), None);
        u.update(&p("/o"), vec![p("/o/a")], false, true);
        let r = u.reason(None, q, f).expect("reason");
        assert!(
            r.contains("fs.inotify.max_user_watches") && r.contains("1 folder"),
            "{r}"
        );
        assert!(u.changed(Some(&r)) && !u.changed(Some(&r)));
        let r = u.reason(Some(2), q, f).expect("reason");
        assert!(
            r.contains("DROPSHIP_MAX_WATCHES=2") && r.contains("every 3s"),
            "{r}"
        );
        assert_eq!(quick_interval(Duration::from_millis(300)), q);
        assert_eq!(
            quick_interval(Duration::from_secs(2)),
            Duration::from_secs(20)
        );
        assert_eq!(fallback_interval(Duration::ZERO), f);
    }
}
