//! Metrics: what the daemon did since it started, and what the journal holds now,
//! in the OpenMetrics text format for Prometheus (`[metrics] listen`).
//!
//! Two kinds, kept apart on purpose:
//! - **counters** of this process (`*_total`), incremented by the engine as it
//!   works: they start at 0 with every start, as Prometheus expects of counters
//!   (`rate()` handles the reset);
//! - **gauges read from the journal** at each scrape (one aggregate query on a
//!   blocking thread): files by state, the backlog's bytes and its oldest file's
//!   age. They survive restarts because the journal does.
//!
//! The engine always counts (a few atomic additions per part), whether or not a
//! server serves them; [`server`] does only the HTTP.
//!
//! Labels come from closed sets (file states, [`Reason`]): no path, key, server
//! answer or credential ever becomes a label.

mod reason;
pub mod server;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use reason::Reason;

use crate::journal::{Backlog, FileId, FileState, JournalHandle, now_ms};

/// Files whose parts are remembered as sent (for `bytes_resent`) at most; past
/// that the memory is cleared and the next re-sends count as first sends. Files
/// are forgotten once delivered or given up, so only files that keep failing stay:
/// this bounds what a pathological backlog can hold (a few hundred KiB).
const MAX_TRACKED_FILES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: Reason,
}

/// The daemon's metrics: the counters the engine feeds, the registry that encodes
/// them, and the journal's gauges of the last scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    bytes_sent: Counter,
    bytes_resent: Counter,
    parts_retried: Family<ReasonLabel, Counter>,
    verify_failures: Counter,
    /// Parts of each file that put bytes on the wire in this process: a request for
    /// one of them again is a re-send. Entries go when the file is settled for good
    /// ([`Metrics::forget`]).
    sent_parts: Mutex<HashMap<FileId, HashSet<u32>>>,
    /// What the last scrape read from the journal; encoded by [`JournalGauges`].
    journal: std::sync::Arc<JournalGauges>,
    /// One scrape at a time: each sets the journal's gauges, then encodes them.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dropship");
        let bytes_sent = Counter::default();
        let bytes_resent = Counter::default();
        let parts_retried = Family::<ReasonLabel, Counter>::default();
        let verify_failures = Counter::default();
        let up = Gauge::<i64>::default();
        up.set(1);
        // `_total` is added by the encoder (OpenMetrics counters).
        registry.register(
            "bytes_sent",
            "Body bytes put on the wire by part and single-file requests since the daemon started, re-sends included",
            bytes_sent.clone(),
        );
        registry.register(
            "bytes_resent",
            "Of bytes_sent, those of requests for a part that had already put bytes on the wire in this process (a retry in place, a later attempt, a new session, an upload again after a failed verification)",
            bytes_resent.clone(),
        );
        registry.register(
            "parts_retried",
            "Part requests (a part, a file sent in one request, or a completion carrying the last part) that failed and whose part is sent again, by reason",
            parts_retried.clone(),
        );
        registry.register(
            "verify_failures",
            "Times the service was found holding other content than the file (size, digest or bytes read back differ, or a part acknowledged with another digest); each uploads the file again or, past upload.verify_attempts, fails it",
            verify_failures.clone(),
        );
        registry.register("up", "1 while the daemon serves metrics", up);
        registry.register(
            "build",
            "The running dropship's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        // Every reason shows from the start at 0: a series that appears only with
        // its first increment hides that first increment from `rate()`.
        for reason in Reason::ALL {
            drop(parts_retried.get_or_create(&ReasonLabel { reason }));
        }
        let journal = std::sync::Arc::new(JournalGauges::default());
        registry.register_collector(Box::new(journal.clone()));
        Metrics {
            registry,
            bytes_sent,
            bytes_resent,
            parts_retried,
            verify_failures,
            sent_parts: Mutex::default(),
            journal,
            scrape: Mutex::new(()),
        }
    }

    /// A request for part `index` of `file` ended, having put `bytes` of its body
    /// on the wire (whatever its outcome).
    pub fn part_sent(&self, file: FileId, index: u32, bytes: u64) {
        if bytes == 0 {
            return; // nothing left: not a send, and the next try is no re-send
        }
        self.bytes_sent.inc_by(bytes);
        let mut sent = self.sent_parts.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() >= MAX_TRACKED_FILES && !sent.contains_key(&file) {
            sent.clear();
        }
        if !sent.entry(file).or_default().insert(index) {
            self.bytes_resent.inc_by(bytes);
        }
    }

    /// A part's request failed and the part is to be sent again.
    pub fn part_retried(&self, reason: Reason) {
        self.parts_retried
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The service holds other content than the file.
    pub fn verify_failed(&self) {
        self.verify_failures.inc();
    }

    /// The file is settled for good (delivered, failed, superseded): its parts
    /// will not be sent again under this id.
    pub fn forget(&self, file: FileId) {
        self.sent_parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&file);
    }

    /// The OpenMetrics text of every metric, the journal's gauges read now.
    /// A journal that does not answer `within` leaves its gauges out and sets
    /// `dropship_journal_up` to 0; the counters are served all the same.
    pub async fn render(
        &self,
        journal: &JournalHandle,
        within: std::time::Duration,
    ) -> Result<String, std::fmt::Error> {
        let read = journal.call(|j| {
            let (counts, _) = j.summary()?;
            Ok(JournalSnapshot {
                counts,
                backlog: j.backlog()?,
                outbox_bytes: j.outbox_bytes()?,
                outbox_over_limit: j
                    .notices()?
                    .iter()
                    .any(|n| n.topic == crate::retention::NOTICE),
                now_ms: now_ms(),
            })
        });
        let read = match tokio::time::timeout(within, read).await {
            Ok(Ok(snap)) => Some(snap),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: the journal did not answer");
                None
            }
            Err(_) => {
                tracing::warn!(
                    within_ms = within.as_millis() as u64,
                    "metrics: the journal did not answer in time"
                );
                None
            }
        };
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.journal.set(read);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// What one scrape read from the journal.
#[derive(Debug)]
struct JournalSnapshot {
    counts: std::collections::BTreeMap<String, u64>,
    backlog: Backlog,
    outbox_bytes: u64,
    outbox_over_limit: bool,
    now_ms: i64,
}

/// Encodes the journal's gauges of the current scrape (a `Collector`, because the
/// values are read once per scrape and a failed read must drop them, not leave the
/// last ones standing).
/// Their help ends with a period as the registry's own do (it appends one).
#[derive(Debug, Default)]
struct JournalGauges {
    last: Mutex<Option<JournalSnapshot>>,
}

impl JournalGauges {
    fn set(&self, read: Option<JournalSnapshot>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = read;
    }
}

impl Collector for JournalGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        ConstGauge::new(i64::from(last.is_some())).encode(encoder.encode_descriptor(
            "journal_up",
            "1 if the journal answered this scrape; 0 leaves the journal's gauges out.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(crate::journal::commits()).encode(encoder.encode_descriptor(
            "journal_commits",
            "Journal transactions committed since the daemon started (written to the journal's log, synced by the next checkpoint or barrier).",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(crate::journal::syncs()).encode(encoder.encode_descriptor(
            "journal_syncs",
            "Durability barriers taken since the daemon started: syncs of the journal's log before a delivered file is removed or moved.",
            None,
            MetricType::Counter,
        )?)?;
        let Some(snap) = last.as_ref() else {
            return Ok(());
        };
        let mut files = encoder.encode_descriptor(
            "files",
            "Files in the journal by state.",
            None,
            MetricType::Gauge,
        )?;
        for state in FileState::ALL {
            let n = snap.counts.get(state.as_str()).copied().unwrap_or(0);
            let labels = [("state", state.as_str())];
            ConstGauge::new(n).encode(files.encode_family(&labels)?)?;
        }
        ConstGauge::new(snap.backlog.bytes).encode(encoder.encode_descriptor(
            "backlog_bytes",
            "Bytes of the files not yet delivered (every state but done, failed and superseded).",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(snap.outbox_bytes).encode(encoder.encode_descriptor(
            "outbox_bytes",
            "Bytes of the outbox's files as the journal sees them: not yet delivered (failed ones too) and delivered but kept.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(i64::from(snap.outbox_over_limit)).encode(encoder.encode_descriptor(
            "outbox_over_limit",
            "1 while the outbox is over upload.outbox_max with nothing delivered left to remove.",
            None,
            MetricType::Gauge,
        )?)?;
        let age = snap
            .backlog
            .oldest_queued_at
            .map_or(0.0, |t| (snap.now_ms - t).max(0) as f64 / 1000.0);
        ConstGauge::new(age).encode(encoder.encode_descriptor(
            "oldest_queued_age_seconds",
            "Seconds since the oldest file not yet delivered was recorded; 0 when none waits.",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn resent_counts_only_parts_already_on_the_wire() {
        let m = Metrics::new();
        m.part_sent(1, 0, 100);
        m.part_sent(1, 1, 50);
        m.part_sent(1, 2, 0); // refused before any byte: not a send
        m.part_sent(1, 2, 30);
        m.part_sent(1, 0, 100); // part 0 again
        m.part_sent(2, 0, 7); // another file's part 0
        assert_eq!(m.bytes_sent.get(), 287);
        assert_eq!(m.bytes_resent.get(), 100);
        m.forget(1);
        m.part_sent(1, 0, 100);
        assert_eq!(m.bytes_resent.get(), 100, "forgotten: a first send again");
    }

    #[tokio::test]
    async fn renders_counters_and_journal_gauges() {
        let journal = crate::journal::Journal::open_in_memory().expect("journal");
        let journal = JournalHandle::new(journal);
        let m = Metrics::new();
        m.part_sent(1, 0, 10);
        m.part_retried(Reason::RateLimited);
        m.part_retried(Reason::RateLimited);
        m.verify_failed();
        let text = m
            .render(&journal, std::time::Duration::from_secs(10))
            .await
            .expect("encoded");
        assert_eq!(
            sample(&text, "dropship_bytes_sent_total"),
            Some(10.0),
            "{text}"
        );
        assert_eq!(sample(&text, "dropship_bytes_resent_total"), Some(0.0));
        assert_eq!(
            sample(
                &text,
                "dropship_parts_retried_total{reason=\"rate_limited\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "dropship_parts_retried_total{reason=\"network\"}"),
            Some(0.0)
        );
        assert_eq!(sample(&text, "dropship_verify_failures_total"), Some(1.0));
        assert_eq!(sample(&text, "dropship_journal_up"), Some(1.0));
        assert_eq!(sample(&text, "dropship_files{state=\"done\"}"), Some(0.0));
        assert_eq!(sample(&text, "dropship_backlog_bytes"), Some(0.0));
        assert_eq!(
            sample(&text, "dropship_oldest_queued_age_seconds"),
            Some(0.0)
        );
        assert_eq!(sample(&text, "dropship_up"), Some(1.0));
        assert!(
            text.contains("# HELP dropship_bytes_sent Body bytes"),
            "{text}"
        );
        assert!(text.contains("dropship_build_info{version=\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
