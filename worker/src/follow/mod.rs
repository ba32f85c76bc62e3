//! Continuous indexing from S3 event notifications on Kafka (`exrscan follow`).
//!
//! The consumer reads notification messages ([`event`]), drops the events outside the
//! followed prefix and its globs, and gathers the rest into micro-batches ([`batch`]): at
//! most `batch_objects` distinct keys or `batch_wait` after the first message, the events
//! of one key coalesced to the newest. A batch goes through the scan pipeline (ranged GETs
//! of the headers, the same rows, the idempotent sink) and its removals into the `removals`
//! table; only then are its offsets committed. Delivery is at least once, and since the
//! sink writes a file once, the tables hold every file exactly once.
//!
//! A batch that cannot be written (sink or S3 unavailable past their retries) is kept and
//! tried again, with the partitions paused so nothing more is fetched meanwhile; nothing is
//! committed until it lands. Malformed messages, `s3:TestEvent`, other event types and keys
//! outside the prefix or globs are counted and skipped, never fatal.

pub mod batch;
pub mod event;
pub mod http;
pub mod kafka;
pub mod report;
mod stats;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use batch::{MicroBatch, Work};
pub use kafka::{Consumer, KafkaOptions, KafkaSetupError};
pub use stats::{FollowStats, StatsSnapshot};

use crate::catalog::SourceFile;
use crate::scan::{self, ScanError, ScanOptions, Tally};
use crate::sink::{Sink, SinkError, Writer};
use crate::source::filter::KeyFilter;
use crate::source::s3::S3Source;
use crate::source::{ReadHeader, Source, SourceError};
use event::Skip;

/// How `exrscan follow` batches and retries.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Distinct objects per micro-batch (at most).
    pub batch_objects: usize,
    /// How long a batch waits for more events after its first message.
    pub batch_wait: Duration,
    /// How the scan pipeline reads and writes a batch.
    pub scan: ScanOptions,
    /// Longest wait between two tries of a batch that could not be written.
    pub max_retry_wait: Duration,
    /// How often a statistics line is logged.
    pub stats_every: Duration,
}

/// Which events are followed: those of `bucket` under `prefix` whose key the filter keeps.
#[derive(Debug, Clone)]
pub struct Scope {
    pub bucket: String,
    pub prefix: String,
    pub filter: KeyFilter,
}

/// Why an event of a well-formed message is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// Another bucket, or a key outside the prefix.
    Prefix,
    /// The include/exclude globs leave the key out (e.g. not an `.exr`).
    Filter,
}

impl Scope {
    /// Whether the event of `bucket`/`key` is followed.
    pub fn admits(&self, bucket: &str, key: &str) -> Result<(), Outside> {
        let relative = (bucket == self.bucket).then(|| key.strip_prefix(self.prefix.as_str())).flatten();
        match relative {
            None => Err(Outside::Prefix),
            Some(relative) if !self.filter.keeps(relative) => Err(Outside::Filter),
            Some(_) => Ok(()),
        }
    }
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The sink refused in a way no retry mends (configuration, schema, credentials).
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The scan pipeline failed in a way no retry mends.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// Messages fetched ahead while a batch is written, at most (then fetching waits).
const STASH_MAX: usize = 20_000;
/// How long a batch being written when the stop comes may take to land before it is left
/// uncommitted (to be read again).
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Tries of an offset commit before it is left to the next batch's commit.
const COMMIT_TRIES: u32 = 5;

/// The objects of one batch as a [`Source`]: "listing" yields them, reads go to S3.
struct EventFiles {
    files: Vec<SourceFile>,
    s3: Arc<S3Source>,
}

impl Source for EventFiles {
    async fn list(&self, found: mpsc::Sender<Result<SourceFile, SourceError>>) -> Result<(), SourceError> {
        for file in &self.files {
            if found.send(Ok(file.clone())).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    async fn read_header(&self, file: &SourceFile) -> Result<ReadHeader, SourceError> {
        self.s3.read_header(file).await
    }
}

/// The follower: a consumer, the S3 reader, the sink and what it counts.
pub struct Follower<'a, K: Sink> {
    consumer: &'a Consumer,
    s3: Arc<S3Source>,
    writer: &'a mut Writer<K>,
    scope: Scope,
    options: FollowOptions,
    stats: Arc<FollowStats>,
    /// Messages fetched while the previous batch was written, with when each was fetched:
    /// the next batch's first.
    stash: VecDeque<(OwnedMessage, Instant)>,
    /// Whether the assignment is paused (a batch is waiting for the sink).
    paused: bool,
}

impl<'a, K: Sink> Follower<'a, K> {
    /// A follower of `scope`'s events on `consumer`, reading headers with `s3`.
    pub fn new(
        consumer: &'a Consumer,
        s3: Arc<S3Source>,
        writer: &'a mut Writer<K>,
        scope: Scope,
        options: FollowOptions,
        stats: Arc<FollowStats>,
    ) -> Self {
        Self { consumer, s3, writer, scope, options, stats, stash: VecDeque::new(), paused: false }
    }

    /// Follows until `stop` is cancelled: the batch being gathered is then written and
    /// committed, a batch waiting for the sink (or still not written [`STOP_GRACE`] after
    /// the stop) is left uncommitted (it is read again).
    pub async fn run(mut self, stop: &CancellationToken) -> Result<(), FollowError> {
        self.stats.set_waiting(false);
        let mut next_stats = Instant::now() + self.options.stats_every;
        loop {
            let batch = self.gather(stop, &mut next_stats).await;
            if !batch.is_empty() {
                let gathered = Instant::now();
                if !self.write(&batch, stop).await? {
                    tracing::warn!("stopping with a batch not written; its events will be read again");
                    break;
                }
                let written = Instant::now();
                self.commit(&batch).await;
                self.stats.batch_done(&batch);
                let age_ms = batch.newest_event().and_then(|t| t.elapsed().ok()).map(|d| d.as_millis() as u64);
                let ms = |from: Instant, to: Instant| to.duration_since(from).as_millis() as u64;
                tracing::debug!(
                    objects = batch.objects(),
                    ?age_ms,
                    gather_ms = batch.started().map(|started| ms(started, gathered)),
                    write_ms = ms(gathered, written),
                    commit_ms = ms(written, Instant::now()),
                    "batch written and committed"
                );
            }
            if Instant::now() >= next_stats {
                self.stats.log();
                next_stats = Instant::now() + self.options.stats_every;
            }
            if stop.is_cancelled() {
                break;
            }
        }
        self.stats.log();
        Ok(())
    }

    /// Gathers a micro-batch: the stash first, then new messages until the batch is full,
    /// `batch_wait` has passed since its oldest message was fetched (messages stashed during
    /// a long write do not wait twice), or `stop` (which ends an empty batch at once).
    async fn gather(&mut self, stop: &CancellationToken, next_stats: &mut Instant) -> MicroBatch {
        let mut batch = MicroBatch::default();
        while batch.objects() < self.options.batch_objects
            && let Some((message, fetched)) = self.stash.pop_front()
        {
            self.admit(&mut batch, &message, fetched);
        }
        loop {
            if batch.objects() >= self.options.batch_objects {
                return batch;
            }
            let wait = match batch.started() {
                Some(started) => (started + self.options.batch_wait).saturating_duration_since(Instant::now()),
                None => next_stats.saturating_duration_since(Instant::now()).max(Duration::from_millis(100)),
            };
            tokio::select! {
                _ = stop.cancelled() => return batch,
                received = tokio::time::timeout(wait, self.consumer.recv()) => match received {
                    Ok(Ok(message)) => {
                        let message = message.detach();
                        self.admit(&mut batch, &message, Instant::now());
                    }
                    Ok(Err(error)) => {
                        self.stats.kafka_error();
                        tracing::warn!(%error, "Kafka consumer error; librdkafka retries");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(_elapsed) if batch.is_empty() => {
                        self.stats.log();
                        *next_stats = Instant::now() + self.options.stats_every;
                    }
                    Err(_elapsed) => return batch,
                },
            }
        }
    }

    /// Parses one message, fetched at `fetched`, into `batch`, counting what is skipped.
    fn admit(&self, batch: &mut MicroBatch, message: &OwnedMessage, fetched: Instant) {
        batch.consumed(message.topic(), message.partition(), message.offset(), fetched);
        self.stats.message();
        let events = match event::parse(message.payload().unwrap_or_default()) {
            Ok(events) => events,
            Err(skip) => {
                if let Skip::Malformed(reason) = &skip {
                    tracing::warn!(
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        %reason,
                        "skipping a malformed event message"
                    );
                }
                self.stats.skipped(&skip);
                return;
            }
        };
        for event in events {
            match self.scope.admits(&event.bucket, &event.key) {
                Ok(()) => batch.add(event),
                Err(outside) => self.stats.outside(outside),
            }
        }
    }

    /// Writes `batch` until it lands: `Ok(true)`; `Ok(false)` when `stop` came first.
    async fn write(&mut self, batch: &MicroBatch, stop: &CancellationToken) -> Result<bool, FollowError> {
        let work = batch.work();
        let mut wait = Duration::from_millis(500);
        // The stats line goes on while a write takes long (an outage, retried).
        let every = self.options.stats_every;
        let mut stats_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            let attempt = {
                let index = index(&work, &self.s3, self.writer, &self.options.scan, &self.stats);
                tokio::pin!(index);
                // After `stop`, an attempt gets STOP_GRACE to land: one that is retrying an
                // outage (S3's retries can last minutes) is then left uncommitted.
                let abandon = async {
                    stop.cancelled().await;
                    tokio::time::sleep(STOP_GRACE).await;
                };
                tokio::pin!(abandon);
                loop {
                    let room = self.stash.len() < STASH_MAX;
                    tokio::select! {
                        done = &mut index => break done,
                        () = &mut abandon => return Ok(false),
                        _ = stats_tick.tick() => self.stats.log(),
                        received = self.consumer.recv(), if room => match received {
                            Ok(message) => self.stash.push_back((message.detach(), Instant::now())),
                            Err(error) => tracing::debug!(%error, "Kafka consumer error while writing"),
                        },
                    }
                }
            };
            match attempt {
                Ok(()) => {
                    self.resume();
                    self.stats.set_waiting(false);
                    return Ok(true);
                }
                Err(error) if !retryable(&error) => return Err(error),
                Err(error) => {
                    self.pause();
                    self.stats.set_waiting(true);
                    self.stats.batch_retry();
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64,
                        objects = work.files.len(), removals = work.removals.len(),
                        "batch not written; fetching is paused, the batch is kept and tried again");
                    // Polls meanwhile (paused: nothing is fetched) to stay in the group.
                    let until = tokio::time::sleep(wait);
                    tokio::pin!(until);
                    loop {
                        tokio::select! {
                            _ = &mut until => break,
                            _ = stop.cancelled() => return Ok(false),
                            _ = stats_tick.tick() => self.stats.log(),
                            received = self.consumer.recv() => if let Ok(message) = received {
                                self.stash.push_back((message.detach(), Instant::now()));
                            },
                        }
                    }
                    wait = (wait * 2).min(self.options.max_retry_wait);
                }
            }
        }
    }

    fn pause(&mut self) {
        if self.paused {
            return;
        }
        match self.consumer.assignment().and_then(|a| self.consumer.pause(&a)) {
            Ok(()) => self.paused = true,
            Err(error) => tracing::warn!(%error, "could not pause fetching"),
        }
    }

    fn resume(&mut self) {
        if !self.paused {
            return;
        }
        match self.consumer.assignment().and_then(|a| self.consumer.resume(&a)) {
            Ok(()) => self.paused = false,
            Err(error) => tracing::warn!(%error, "could not resume fetching"),
        }
    }

    /// Commits the batch's offsets (synchronously). A commit that keeps failing (broker
    /// down, partitions moved to another consumer) is left to the next batch's commit:
    /// its events are then read again, and the sink writes nothing twice.
    async fn commit(&self, batch: &MicroBatch) {
        let mut offsets = TopicPartitionList::new();
        for (topic, partition, next) in batch.offsets() {
            if let Err(error) = offsets.add_partition_offset(topic, partition, Offset::Offset(next)) {
                tracing::warn!(%error, topic, partition, "bad offset to commit");
            }
        }
        for attempt in 1..=COMMIT_TRIES {
            let committed = tokio::task::block_in_place(|| self.consumer.commit(&offsets, CommitMode::Sync));
            match committed {
                Ok(()) => return,
                Err(error) if attempt == COMMIT_TRIES => {
                    self.stats.commit_failed();
                    tracing::warn!(%error, "offsets not committed; the next batch's commit covers them");
                }
                Err(error) => {
                    tracing::debug!(%error, attempt, "offset commit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
            }
        }
    }
}

/// Whether a failed batch is worth trying again: the sink or S3 unavailable, or the sink
/// refusing in a way that a restart of it mends.
fn retryable(error: &FollowError) -> bool {
    match error {
        FollowError::Sink(e) | FollowError::Scan(ScanError::Sink(e)) => e.is_transient(),
        FollowError::Scan(ScanError::Source(SourceError::Unavailable { .. })) => true,
        FollowError::Scan(_) => false,
    }
}

/// Indexes the files of `work` through the scan pipeline and records its removals.
async fn index<K: Sink>(
    work: &Work,
    s3: &Arc<S3Source>,
    writer: &mut Writer<K>,
    options: &ScanOptions,
    stats: &FollowStats,
) -> Result<(), FollowError> {
    if !work.files.is_empty() {
        let source = Arc::new(EventFiles { files: work.files.clone(), s3: Arc::clone(s3) });
        let tally = Tally::default();
        let summary = scan::run(source, writer, options, &tally, &CancellationToken::new()).await?;
        for failure in &summary.failures {
            tracing::warn!(key = %failure.key, reason = %failure.reason, "object not indexed");
        }
        stats.indexed(&summary.counts);
    }
    if !work.removals.is_empty() {
        match writer.record_removals(&work.removals).await {
            Ok(()) => stats.removals(work.removals.len() as u64),
            Err(SinkError::Unsupported(what)) => {
                stats.removals_unrecorded(work.removals.len() as u64);
                tracing::warn!(count = work.removals.len(), "removals not recorded: this sink does not support {what}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::filter::split_patterns;

    #[test]
    fn scope_tells_prefix_from_filter() {
        let filter = KeyFilter::new(&[], &split_patterns("**/tmp/**")).expect("globs");
        let scope = Scope { bucket: "b".into(), prefix: "renders/".into(), filter };
        assert_eq!(scope.admits("b", "renders/s/a.exr"), Ok(()));
        assert_eq!(scope.admits("b", "other/a.exr"), Err(Outside::Prefix));
        assert_eq!(scope.admits("c", "renders/a.exr"), Err(Outside::Prefix));
        assert_eq!(scope.admits("b", "renders/notes.txt"), Err(Outside::Filter));
        assert_eq!(scope.admits("b", "renders/tmp/a.exr"), Err(Outside::Filter));
    }
}
