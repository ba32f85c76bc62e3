//! Live counts of a scan and its final summary.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Most failures kept as examples in the summary.
pub const FAILURE_SAMPLE: usize = 20;

/// Counts of a scan, as the summary and the ExrScan status report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// EXR files found by the listing.
    pub discovered: u64,
    /// Files whose header was read and parsed.
    pub processed: u64,
    /// Files written to the catalog (new `file_id`s).
    pub inserted: u64,
    /// Files already in the catalog (nothing written).
    pub unchanged: u64,
    /// Files (or listing entries) that could not be read or parsed.
    pub failed: u64,
    /// Bytes read from the source (headers only).
    pub bytes_read: u64,
}

/// One failed file and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Key (path relative to the source root) or location of the entry.
    pub key: String,
    /// One-line reason.
    pub reason: String,
}

/// The outcome of a scan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Final counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Rows written over the four tables.
    pub rows_written: u64,
    /// Batches sent to the sink.
    pub batches: u64,
    /// Transient sink failures that were retried.
    pub retries: u64,
    /// Wall time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// The first failures (at most [`FAILURE_SAMPLE`]).
    pub failures: Vec<Failure>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Counters shared between the pipeline and whoever shows progress.
#[derive(Debug, Default)]
pub struct Tally {
    discovered: AtomicU64,
    processed: AtomicU64,
    inserted: AtomicU64,
    unchanged: AtomicU64,
    failed: AtomicU64,
    bytes_read: AtomicU64,
    rows_written: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    failures: Mutex<Vec<Failure>>,
}

impl Tally {
    /// A snapshot of the counts.
    pub fn counts(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            discovered: get(&self.discovered),
            processed: get(&self.processed),
            inserted: get(&self.inserted),
            unchanged: get(&self.unchanged),
            failed: get(&self.failed),
            bytes_read: get(&self.bytes_read),
        }
    }

    pub(super) fn discovered(&self) {
        self.discovered.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn processed(&self, bytes_read: u64) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes_read, Ordering::Relaxed);
    }

    /// Counts files skipped unread because the catalog holds them unchanged.
    pub(super) fn unchanged_unread(&self, n: u64) {
        self.unchanged.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts sink requests retried outside a batch's write (the resume check's lookups).
    pub(super) fn retried(&self, n: u32) {
        self.retries.fetch_add(u64::from(n), Ordering::Relaxed);
    }

    pub(super) fn written(&self, outcome: &crate::sink::PutOutcome) {
        self.inserted.fetch_add(outcome.inserted, Ordering::Relaxed);
        self.unchanged.fetch_add(outcome.unchanged, Ordering::Relaxed);
        self.rows_written.fetch_add(outcome.rows, Ordering::Relaxed);
        self.retries.fetch_add(u64::from(outcome.retries), Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure and keeps it as an example if there is room; returns whether it is
    /// among the first [`FAILURE_SAMPLE`].
    pub(super) fn failed(&self, key: String, reason: String) -> bool {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let keep = failures.len() < FAILURE_SAMPLE;
        if keep {
            failures.push(Failure { key, reason });
        }
        keep
    }

    /// The failures kept as examples so far.
    pub fn failures(&self) -> Vec<Failure> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The summary after `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            counts: self.counts(),
            rows_written: get(&self.rows_written),
            batches: get(&self.batches),
            retries: get(&self.retries),
            elapsed,
            failures: self.failures(),
        }
    }
}
