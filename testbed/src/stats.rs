//! Request and fault counters, and the `Stats` snapshot built from them.
//!
//! Counters only grow; they live as long as the server. Each emulator registers its
//! own set once at start; the server-wide numbers are sums over emulators.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Live counters of one emulator, updated by the fault layer and the emulator.
#[derive(Debug, Default)]
pub(crate) struct EmulatorCounters {
    /// Requests that reached the emulator's prefix, faulted ones included.
    requests: AtomicU64,
    /// Request-body bytes read from the socket, whatever became of the request.
    bytes_received: AtomicU64,
    /// Body bytes of requests not answered with success (see `EmulatorStats`).
    bytes_wasted: AtomicU64,
    /// Injected faults by kind; see [`FaultCounts`] for each.
    failed: AtomicU64,
    rate_limited: AtomicU64,
    resets: AtomicU64,
    stalled: AtomicU64,
    corrupted: AtomicU64,
    commit_202: AtomicU64,
    gateway_errors: AtomicU64,
    mangled_answers: AtomicU64,
    hung: AtomicU64,
    /// Bodies refused because they did not match the digest the client stated.
    digest_mismatches: AtomicU64,
    /// Accepted calls of the operations an emulator counts by name (Edgio: logins,
    /// completions, join restarts), for tests that assert how often one happened.
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl EmulatorCounters {
    pub(crate) fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_wasted(&self, n: u64) {
        self.bytes_wasted.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_stalled(&self) {
        self.stalled.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_corrupted(&self) {
        self.corrupted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_commit_202(&self) {
        self.commit_202.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_gateway_error(&self) {
        self.gateway_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_mangled_answer(&self) {
        self.mangled_answers.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_hung(&self) {
        self.hung.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_digest_mismatch(&self) {
        self.digest_mismatches.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one accepted call of `operation`.
    pub(crate) fn add_call(&self, operation: &'static str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(operation).or_default() += 1;
    }

    fn calls(&self) -> BTreeMap<String, u64> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    }

    fn faults(&self) -> FaultCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultCounts {
            failed: get(&self.failed),
            rate_limited: get(&self.rate_limited),
            resets: get(&self.resets),
            stalled: get(&self.stalled),
            corrupted: get(&self.corrupted),
            commit_202: get(&self.commit_202),
            gateway_errors: get(&self.gateway_errors),
            mangled_answers: get(&self.mangled_answers),
            hung: get(&self.hung),
        }
    }
}

/// Every emulator's counters, by emulator name.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Registered by each emulator at start; entries are never removed.
    by_emulator: Mutex<BTreeMap<&'static str, Arc<EmulatorCounters>>>,
}

impl Counters {
    /// The counters of `emulator`, created on first use.
    pub(crate) fn register(&self, emulator: &'static str) -> Arc<EmulatorCounters> {
        let mut map = self.by_emulator.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(emulator).or_default().clone()
    }

    /// A snapshot; `objects` and `sessions_open` come from the store and emulators.
    pub(crate) fn snapshot(
        &self,
        objects: &dyn Fn(&str) -> u64,
        sessions: &dyn Fn(&str) -> u64,
    ) -> Stats {
        let map = self.by_emulator.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = Stats::default();
        for (name, c) in map.iter() {
            let e = EmulatorStats {
                requests: c.requests.load(Ordering::Relaxed),
                bytes_received: c.bytes_received.load(Ordering::Relaxed),
                bytes_wasted: c.bytes_wasted.load(Ordering::Relaxed),
                objects: objects(name),
                sessions_open: sessions(name),
                digest_mismatches: c.digest_mismatches.load(Ordering::Relaxed),
                faults: c.faults(),
                calls: c.calls(),
            };
            stats.requests += e.requests;
            stats.digest_mismatches += e.digest_mismatches;
            stats.bytes_received += e.bytes_received;
            stats.bytes_wasted += e.bytes_wasted;
            stats.objects += e.objects;
            stats.sessions_open += e.sessions_open;
            stats.faults.add(&e.faults);
            stats.emulators.insert((*name).to_string(), e);
        }
        stats.faults_injected = stats.faults.total();
        stats
    }
}

/// What `GET /_testbed/stats` answers. Server-wide fields are sums over `emulators`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Emulator requests received, faulted ones included (`/_testbed` not counted).
    pub requests: u64,
    /// Request-body bytes read, retries and interrupted requests included.
    pub bytes_received: u64,
    /// The part of `bytes_received` in requests not answered with success: refused
    /// (injected or not), cut by a reset or stall, or abandoned by the client.
    #[serde(default)]
    pub bytes_wasted: u64,
    /// Objects stored now.
    pub objects: u64,
    /// Upload sessions open now (not committed, aborted or expired).
    pub sessions_open: u64,
    /// Bodies refused because they did not match the digest their request stated.
    #[serde(default)]
    pub digest_mismatches: u64,
    /// Sum of `faults`.
    pub faults_injected: u64,
    /// Injected faults by kind.
    pub faults: FaultCounts,
    /// The same numbers per emulator, keyed by its path prefix ("box").
    pub emulators: BTreeMap<String, EmulatorStats>,
}

/// One emulator's share of [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// Requests under this emulator's prefix, faulted ones included.
    pub requests: u64,
    /// Request-body bytes read for this emulator.
    pub bytes_received: u64,
    /// The part of `bytes_received` in requests not answered with success: refused
    /// (injected or not), cut by a reset or stall, or abandoned by the client (a
    /// killed daemon). What is left beyond the data's own size was accepted, then
    /// sent again.
    #[serde(default)]
    pub bytes_wasted: u64,
    /// Objects this emulator holds now.
    pub objects: u64,
    /// Its open upload sessions now.
    pub sessions_open: u64,
    /// Its bodies refused for not matching their stated digest (so far counted by
    /// Exosite only: a range or single upload whose `MD5` header is wrong).
    #[serde(default)]
    pub digest_mismatches: u64,
    /// Faults injected into its requests.
    pub faults: FaultCounts,
    /// Accepted calls by operation, for the operations this emulator counts (so far
    /// Edgio: `login`, `logout`, `multipart/create`, `multipart/complete`,
    /// `restartMultipart`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calls: BTreeMap<String, u64>,
}

/// Injected faults by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultCounts {
    /// 503 answers from `fail_rate`.
    pub failed: u64,
    /// 429 answers from `rate_limit_rate`.
    pub rate_limited: u64,
    /// Connections dropped mid-body by `reset_rate`.
    pub resets: u64,
    /// Requests whose body stopped being read mid-body, never answered, by
    /// `stall_rate`.
    pub stalled: u64,
    /// Objects stored with a flipped byte by `corrupt_rate`.
    pub corrupted: u64,
    /// Commits answered 202 by `box_commit_202`.
    pub commit_202: u64,
    /// 502/504 answers from `exosite_gateway_error_rate`.
    #[serde(default)]
    pub gateway_errors: u64,
    /// Answers whose body was replaced or cut after the request was handled, by
    /// `answer_garbage_rate`, `answer_truncate_rate` and `answer_huge_rate`.
    #[serde(default)]
    pub mangled_answers: u64,
    /// Requests never answered, by `hang_rate`.
    #[serde(default)]
    pub hung: u64,
}

impl FaultCounts {
    fn add(&mut self, o: &FaultCounts) {
        self.failed += o.failed;
        self.rate_limited += o.rate_limited;
        self.resets += o.resets;
        self.stalled += o.stalled;
        self.corrupted += o.corrupted;
        self.commit_202 += o.commit_202;
        self.gateway_errors += o.gateway_errors;
        self.mangled_answers += o.mangled_answers;
        self.hung += o.hung;
    }

    /// All injected faults.
    pub fn total(&self) -> u64 {
        self.failed
            + self.rate_limited
            + self.resets
            + self.stalled
            + self.corrupted
            + self.commit_202
            + self.gateway_errors
            + self.mangled_answers
            + self.hung
    }
}
