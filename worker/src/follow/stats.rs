//! What `exrscan follow` counts, logged as a `follow stats` line every so often (and at
//! exit): consumer lag, events indexed, skipped by reason, the newest event time.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Outside;
use super::batch::MicroBatch;
use super::event::Skip;
use crate::scan::Counts;

/// Counters shared by the follower and the consumer's statistics callback.
#[derive(Debug, Default)]
pub struct FollowStats {
    messages: AtomicU64,
    inserted: AtomicU64,
    unchanged: AtomicU64,
    failed: AtomicU64,
    removals: AtomicU64,
    removals_unrecorded: AtomicU64,
    coalesced: AtomicU64,
    malformed: AtomicU64,
    test_events: AtomicU64,
    other_events: AtomicU64,
    outside_prefix: AtomicU64,
    filtered: AtomicU64,
    batches: AtomicU64,
    batch_retries: AtomicU64,
    commit_failures: AtomicU64,
    kafka_errors: AtomicU64,
    /// -1 until librdkafka's first statistics.
    lag: AtomicI64,
    /// Unix milliseconds of the newest event of a written batch; 0: none yet.
    last_event_ms: AtomicI64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Messages consumed.
    pub messages: u64,
    /// Objects written to the catalog (new `file_id`s).
    pub inserted: u64,
    /// Objects the catalog already held (redelivered or unchanged events).
    pub unchanged: u64,
    /// Objects that could not be read or parsed (gone, not an EXR, …).
    pub failed: u64,
    /// Removals recorded.
    pub removals: u64,
    /// Removals the sink cannot record (it has no `removals` table yet).
    pub removals_unrecorded: u64,
    /// Events left out because a newer one of their key was in the same batch.
    pub coalesced: u64,
    /// Messages that are not S3 event notifications.
    pub malformed: u64,
    /// `s3:TestEvent` messages.
    pub test_events: u64,
    /// Messages with neither creations nor removals.
    pub other_events: u64,
    /// Events of other buckets or outside the prefix.
    pub outside_prefix: u64,
    /// Events whose key the globs leave out (e.g. not `.exr`).
    pub filtered: u64,
    /// Micro-batches written and committed.
    pub batches: u64,
    /// Tries of a batch that failed (sink or S3 down) and were repeated.
    pub batch_retries: u64,
    /// Offset commits left to the next batch.
    pub commit_failures: u64,
    /// Errors the consumer reported (broker down, …).
    pub kafka_errors: u64,
    /// Messages not yet committed over the assigned partitions (-1: not known yet).
    pub lag: i64,
    /// Unix milliseconds of the newest event written (0: none).
    pub last_event_ms: i64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl FollowStats {
    /// Fresh counters (lag unknown).
    pub fn new() -> Self {
        Self { lag: AtomicI64::new(-1), ..Self::default() }
    }

    pub(super) fn message(&self) {
        add(&self.messages, 1);
    }

    pub(super) fn skipped(&self, skip: &Skip) {
        add(
            match skip {
                Skip::Malformed(_) => &self.malformed,
                Skip::TestEvent => &self.test_events,
                Skip::OtherEvents => &self.other_events,
            },
            1,
        );
    }

    pub(super) fn outside(&self, outside: Outside) {
        add(
            match outside {
                Outside::Prefix => &self.outside_prefix,
                Outside::Filter => &self.filtered,
            },
            1,
        );
    }

    pub(super) fn indexed(&self, counts: &Counts) {
        add(&self.inserted, counts.inserted);
        add(&self.unchanged, counts.unchanged);
        add(&self.failed, counts.failed);
    }

    pub(super) fn removals(&self, n: u64) {
        add(&self.removals, n);
    }

    pub(super) fn removals_unrecorded(&self, n: u64) {
        add(&self.removals_unrecorded, n);
    }

    pub(super) fn batch_done(&self, batch: &MicroBatch) {
        add(&self.batches, 1);
        add(&self.coalesced, batch.coalesced());
        if let Some(ms) = batch.newest_event().and_then(unix_ms) {
            self.last_event_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    pub(super) fn batch_retry(&self) {
        add(&self.batch_retries, 1);
    }

    pub(super) fn commit_failed(&self) {
        add(&self.commit_failures, 1);
    }

    pub(super) fn kafka_error(&self) {
        add(&self.kafka_errors, 1);
    }

    pub(super) fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            messages: get(&self.messages),
            inserted: get(&self.inserted),
            unchanged: get(&self.unchanged),
            failed: get(&self.failed),
            removals: get(&self.removals),
            removals_unrecorded: get(&self.removals_unrecorded),
            coalesced: get(&self.coalesced),
            malformed: get(&self.malformed),
            test_events: get(&self.test_events),
            other_events: get(&self.other_events),
            outside_prefix: get(&self.outside_prefix),
            filtered: get(&self.filtered),
            batches: get(&self.batches),
            batch_retries: get(&self.batch_retries),
            commit_failures: get(&self.commit_failures),
            kafka_errors: get(&self.kafka_errors),
            lag: self.lag.load(Ordering::Relaxed),
            last_event_ms: self.last_event_ms.load(Ordering::Relaxed),
        }
    }

    /// Logs the `follow stats` line.
    pub fn log(&self) {
        let s = self.snapshot();
        let last_event = (s.last_event_ms > 0)
            .then(|| chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_millis(s.last_event_ms as u64)))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        tracing::info!(
            lag = s.lag,
            messages = s.messages,
            inserted = s.inserted,
            unchanged = s.unchanged,
            failed = s.failed,
            removals = s.removals,
            removals_unrecorded = s.removals_unrecorded,
            coalesced = s.coalesced,
            malformed = s.malformed,
            test_events = s.test_events,
            other_events = s.other_events,
            outside_prefix = s.outside_prefix,
            filtered = s.filtered,
            batches = s.batches,
            batch_retries = s.batch_retries,
            commit_failures = s.commit_failures,
            kafka_errors = s.kafka_errors,
            %last_event,
            "follow stats"
        );
    }
}

fn unix_ms(time: SystemTime) -> Option<i64> {
    time.duration_since(UNIX_EPOCH).ok().and_then(|d| i64::try_from(d.as_millis()).ok())
}
