//! What `exrscan follow` counts, logged as a `follow stats` line every so often (and at
//! exit) and served at `/metrics` (OpenMetrics): consumer lag (per partition and total),
//! events indexed, skipped by reason, the newest event time, batch latency.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::Outside;
use super::batch::MicroBatch;
use super::event::Skip;
use crate::scan::Counts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Counters shared by the follower, the consumer's statistics callback and `/metrics`:
/// the `follow stats` log line and the OpenMetrics page read the same values.
#[derive(Debug)]
pub struct FollowStats {
    registry: Registry,
    messages: Counter,
    inserted: Counter,
    unchanged: Counter,
    failed: Counter,
    removals: Counter,
    removals_unrecorded: Counter,
    coalesced: Counter,
    malformed: Counter,
    test_events: Counter,
    other_events: Counter,
    outside_prefix: Counter,
    filtered: Counter,
    batches: Counter,
    batch_retries: Counter,
    commit_failures: Counter,
    kafka_errors: Counter,
    /// Total lag; -1 until librdkafka's first statistics.
    lag: Gauge,
    partition_lag: Family<PartitionLabels, Gauge>,
    /// Unix milliseconds of the newest event of a written batch; 0: none yet.
    last_event_ms: AtomicI64,
    last_event_seconds: Gauge<f64, AtomicU64>,
    batch_seconds: Histogram,
    event_age_seconds: Histogram,
    /// [`STARTING`], [`FOLLOWING`] or [`WAITING`].
    state: AtomicU8,
}

/// Opening the sink and joining the group: not ready.
const STARTING: u8 = 0;
/// Following: ready.
const FOLLOWING: u8 = 1;
/// A batch waits for the sink or S3: not ready.
const WAITING: u8 = 2;

impl Default for FollowStats {
    fn default() -> Self {
        Self::new()
    }
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
    /// Removals a sink without the `removals` table could not record.
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

impl FollowStats {
    /// Fresh counters (lag unknown), registered under the `exrscan_follow` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("exrscan_follow");
        let objects = Family::<OutcomeLabels, Counter>::default();
        let skipped = Family::<ReasonLabels, Counter>::default();
        let removals = Family::<OutcomeLabels, Counter>::default();
        let outcome =
            |family: &Family<OutcomeLabels, Counter>, outcome| family.get_or_create_owned(&OutcomeLabels { outcome });
        let reason = |reason| skipped.get_or_create_owned(&ReasonLabels { reason });
        let stats = Self {
            messages: Counter::default(),
            inserted: outcome(&objects, "inserted"),
            unchanged: outcome(&objects, "unchanged"),
            failed: outcome(&objects, "failed"),
            removals: outcome(&removals, "recorded"),
            removals_unrecorded: outcome(&removals, "unrecorded"),
            coalesced: Counter::default(),
            malformed: reason("malformed"),
            test_events: reason("test_event"),
            other_events: reason("other_events"),
            outside_prefix: reason("outside_prefix"),
            filtered: reason("filtered"),
            batches: Counter::default(),
            batch_retries: Counter::default(),
            commit_failures: Counter::default(),
            kafka_errors: Counter::default(),
            lag: Gauge::default(),
            partition_lag: Family::default(),
            last_event_ms: AtomicI64::new(0),
            last_event_seconds: Gauge::default(),
            // 10 ms … 82 s.
            batch_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            event_age_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            state: AtomicU8::new(STARTING),
            registry: Registry::default(),
        };
        stats.lag.set(-1);
        registry.register("messages", "Kafka messages consumed", stats.messages.clone());
        registry.register("objects", "Objects of committed batches, by outcome (inserted, unchanged, failed)", objects);
        registry.register(
            "skipped",
            "Messages or events skipped, by reason (malformed, test_event, other_events, outside_prefix, filtered)",
            skipped,
        );
        registry.register("removals", "Removal events, recorded or not (a sink without the table)", removals);
        registry.register(
            "coalesced",
            "Events replaced by a newer one of their key in the same batch",
            stats.coalesced.clone(),
        );
        registry.register("batches", "Micro-batches written and committed", stats.batches.clone());
        registry.register(
            "batch_retries",
            "Tries of a batch repeated because the sink or S3 was down",
            stats.batch_retries.clone(),
        );
        registry.register("commit_failures", "Offset commits left to the next batch", stats.commit_failures.clone());
        registry.register("kafka_errors", "Errors the Kafka consumer reported", stats.kafka_errors.clone());
        registry.register(
            "consumer_lag",
            "Messages not committed yet on the assigned partitions (-1 until known)",
            stats.lag.clone(),
        );
        registry.register(
            "partition_consumer_lag",
            "Messages not committed yet, per assigned partition",
            stats.partition_lag.clone(),
        );
        registry.register(
            "last_event_timestamp_seconds",
            "Unix time of the newest event of a committed batch (0: none yet)",
            stats.last_event_seconds.clone(),
        );
        registry.register(
            "batch_duration_seconds",
            "From a batch's first message to its commit (gathering, reading, writing, committing)",
            stats.batch_seconds.clone(),
        );
        registry.register(
            "event_age_seconds",
            "Age of a committed batch's newest event at its commit (upload to catalog)",
            stats.event_age_seconds.clone(),
        );
        Self { registry, ..stats }
    }

    pub(super) fn message(&self) {
        self.messages.inc();
    }

    pub(super) fn skipped(&self, skip: &Skip) {
        match skip {
            Skip::Malformed(_) => &self.malformed,
            Skip::TestEvent => &self.test_events,
            Skip::OtherEvents => &self.other_events,
        }
        .inc();
    }

    pub(super) fn outside(&self, outside: Outside) {
        match outside {
            Outside::Prefix => &self.outside_prefix,
            Outside::Filter => &self.filtered,
        }
        .inc();
    }

    pub(super) fn indexed(&self, counts: &Counts) {
        self.inserted.inc_by(counts.inserted);
        self.unchanged.inc_by(counts.unchanged);
        self.failed.inc_by(counts.failed);
    }

    pub(super) fn removals(&self, n: u64) {
        self.removals.inc_by(n);
    }

    pub(super) fn removals_unrecorded(&self, n: u64) {
        self.removals_unrecorded.inc_by(n);
    }

    pub(super) fn batch_done(&self, batch: &MicroBatch) {
        self.batches.inc();
        self.coalesced.inc_by(batch.coalesced());
        if let Some(started) = batch.started() {
            self.batch_seconds.observe(started.elapsed().as_secs_f64());
        }
        if let Some(newest) = batch.newest_event() {
            if let Ok(age) = newest.elapsed() {
                self.event_age_seconds.observe(age.as_secs_f64());
            }
            if let Some(ms) = unix_ms(newest) {
                let newest = self.last_event_ms.fetch_max(ms, Ordering::Relaxed).max(ms);
                self.last_event_seconds.set(newest as f64 / 1000.0);
            }
        }
    }

    pub(super) fn batch_retry(&self) {
        self.batch_retries.inc();
    }

    pub(super) fn commit_failed(&self) {
        self.commit_failures.inc();
    }

    pub(super) fn kafka_error(&self) {
        self.kafka_errors.inc();
    }

    /// Marks whether a batch is waiting for the sink or S3 (else: following).
    pub(super) fn set_waiting(&self, waiting: bool) {
        self.state.store(if waiting { WAITING } else { FOLLOWING }, Ordering::Relaxed);
    }

    /// Sets the lag: per (topic, partition) of the assignment, and their sum.
    pub(super) fn set_lag(&self, partitions: &[(String, i32, i64)]) {
        self.partition_lag.clear();
        for (topic, partition, lag) in partitions {
            let labels = PartitionLabels { topic: topic.clone(), partition: partition.to_string() };
            self.partition_lag.get_or_create(&labels).set(*lag);
        }
        self.lag.set(partitions.iter().map(|(_, _, lag)| lag).sum());
    }

    /// `Err` with the reason while starting, or while a batch waits for the sink or S3.
    pub fn ready(&self) -> Result<(), &'static str> {
        match self.state.load(Ordering::Relaxed) {
            STARTING => Err("opening the sink and joining the consumer group"),
            WAITING => Err("a batch is waiting for the sink or S3"),
            _ => Ok(()),
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            messages: self.messages.get(),
            inserted: self.inserted.get(),
            unchanged: self.unchanged.get(),
            failed: self.failed.get(),
            removals: self.removals.get(),
            removals_unrecorded: self.removals_unrecorded.get(),
            coalesced: self.coalesced.get(),
            malformed: self.malformed.get(),
            test_events: self.test_events.get(),
            other_events: self.other_events.get(),
            outside_prefix: self.outside_prefix.get(),
            filtered: self.filtered.get(),
            batches: self.batches.get(),
            batch_retries: self.batch_retries.get(),
            commit_failures: self.commit_failures.get(),
            kafka_errors: self.kafka_errors.get(),
            lag: self.lag.get(),
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
