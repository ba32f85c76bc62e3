//! Where catalog rows go: the [`Sink`] interface, its implementations (embedded DuckDB,
//! Arrow Flight SQL, VAST DataBase's native tabular API) chosen by URI, and the idempotent, retried [`Writer`] on top.
//!
//! A sink does two things per batch: one existence check of the batch's `file_id`s (one
//! round trip), then a write of the new files' rows to the four tables, child tables first
//! and `files` last, every row tagged with the attempt's [`WriteId`]. Readers query the
//! `indexed_*` views ([`canonical`]), which show each file's rows of one complete attempt
//! only, so that a killed attempt, a timed-out one that lands after its retry, or two
//! writers of the same file never show a partial file or a file twice; [`Sink::collect_garbage`]
//! removes what the views hide. The [`Writer`] runs both under a bounded, jittered retry on
//! transient errors; because the existence check is repeated on every attempt, a retry after
//! a write that did land writes nothing twice.

pub mod canonical;
pub mod duckdb;
pub mod flight;
mod lookup;
mod retry;
mod similar;
mod uri;
pub mod vast;

use std::collections::HashSet;
use std::future::Future;

pub use retry::RetryPolicy;
pub use similar::{IndexedFile, Neighbour, SimilarBy, Stored};
pub use uri::SinkUri;

pub use canonical::GcCounts;

use crate::catalog::{CatalogBatch, CatalogError, Oversize, Removal, SourceFile, WriteId};
use crate::retry::Backoff;

/// Why a sink operation failed. Only [`SinkError::Transient`] is retried.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink URI or an option is wrong.
    #[error("bad sink configuration: {0}")]
    Config(String),
    /// The server refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The tables exist with other columns than the catalog's.
    #[error("catalog schema mismatch: {0}")]
    Schema(String),
    /// A failure that a later attempt may not see (server unavailable, overloaded, slow).
    #[error("transient sink failure: {0}")]
    Transient(String),
    /// The sink does not do this yet.
    #[error("this sink does not support {0} yet")]
    Unsupported(&'static str),
    /// Any other failure of the database.
    #[error("sink failure: {0}")]
    Failed(String),
    /// The rows could not be prepared.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl SinkError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Transient(_))
    }
}

/// A catalog database that takes [`CatalogBatch`]es.
pub trait Sink: Send {
    /// The subset of `ids` already in the catalog, in one round trip.
    fn existing(&mut self, ids: &[String]) -> impl Future<Output = Result<HashSet<String>, SinkError>> + Send;

    /// Writes every row of `batch` (stamped with one [`WriteId`]) to the four tables, child
    /// tables first and `files` last, in one transaction where the sink has them.
    fn write(&mut self, batch: &CatalogBatch) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The URIs of those `files` (as listed, before reading) that the catalog already holds
    /// with the same URI, size and ETag (or, for files listed without an ETag, such as local
    /// ones, the same modification time), in one round trip. Files listed with neither are
    /// never in the answer.
    fn indexed(&mut self, files: &[SourceFile]) -> impl Future<Output = Result<HashSet<String>, SinkError>> + Send;

    /// The most bytes one row may take (as [`crate::catalog::row_sizes`] counts them), if the
    /// sink has such a limit: a file with a larger row cannot be written and is not tried.
    fn max_row_bytes(&self) -> Option<usize> {
        None
    }

    /// Records `removals` in the `removals` table, in one transaction where the sink has
    /// them; a removal already recorded (same URI and sequencer) is not written again.
    /// Sinks without the table refuse with [`SinkError::Unsupported`].
    fn record_removals(&mut self, removals: &[Removal]) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = removals;
        std::future::ready(Err(SinkError::Unsupported("recording removals")))
    }

    /// Repairs what a transient failure may have broken (e.g. a session or token lost in a
    /// server restart) before the next attempt.
    fn recover(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Deletes the rows the `indexed_*` views hide: those of attempts that wrote a file
    /// another attempt had written (smaller write id), and child rows without a `files` row
    /// of their attempt whose write id sorts below `orphans_before` (younger ones may belong
    /// to an attempt still writing).
    fn collect_garbage(&mut self, orphans_before: &WriteId)
    -> impl Future<Output = Result<GcCounts, SinkError>> + Send;

    /// The stored `by` vectors of the indexed files `which` names, the newest version of each
    /// URI (none when no such file has one; more than one for a key several roots share).
    fn stored(
        &mut self,
        by: SimilarBy,
        which: &IndexedFile,
    ) -> impl Future<Output = Result<Vec<Stored>, SinkError>> + Send;

    /// The `k` indexed files nearest to `vector` by cosine similarity of the `by` vectors,
    /// best first, leaving out `exclude_uri`. Only the newest `file_id` of a URI counts.
    fn similar(
        &mut self,
        by: SimilarBy,
        vector: &[f32],
        k: usize,
        exclude_uri: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Neighbour>, SinkError>> + Send;
}

/// The sink a URI names.
pub enum AnySink {
    /// `duckdb:///path/catalog.duckdb`
    Duckdb(duckdb::DuckdbSink),
    /// `flight+grpc://…`, `flight+grpc+tls://…`
    Flight(Box<flight::FlightSink>),
    /// `vast://…`
    Vast(Box<vast::VastSink>),
}

/// The secrets of the sinks that take them (never in a URI).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Flight SQL's user name and password, or token.
    pub flight: flight::Credentials,
    /// VAST's key pair.
    pub vast: vast::Credentials,
}

impl From<flight::Credentials> for Credentials {
    fn from(flight: flight::Credentials) -> Self {
        Self { flight, ..Self::default() }
    }
}

impl From<vast::Credentials> for Credentials {
    fn from(vast: vast::Credentials) -> Self {
        Self { vast, ..Self::default() }
    }
}

impl AnySink {
    /// Opens the sink `uri` names, creating its tables if missing. Credentials come from
    /// `credentials`, never from the URI.
    pub async fn open(uri: &SinkUri, credentials: &Credentials, retry: &RetryPolicy) -> Result<Self, SinkError> {
        match uri {
            SinkUri::Duckdb(path) => {
                let path = path.clone();
                let sink = tokio::task::spawn_blocking(move || duckdb::DuckdbSink::open(&path))
                    .await
                    .map_err(|e| SinkError::Failed(format!("DuckDB open task: {e}")))??;
                Ok(AnySink::Duckdb(sink))
            }
            SinkUri::Flight(options) => {
                let sink =
                    retry.run(|| flight::FlightSink::connect(options.clone(), credentials.flight.clone())).await?;
                Ok(AnySink::Flight(Box::new(sink)))
            }
            SinkUri::Vast(options) => {
                let sink = retry.run(|| vast::VastSink::connect(options.clone(), credentials.vast.clone())).await?;
                Ok(AnySink::Vast(Box::new(sink)))
            }
        }
    }
}

impl Sink for AnySink {
    async fn existing(&mut self, ids: &[String]) -> Result<HashSet<String>, SinkError> {
        match self {
            AnySink::Duckdb(s) => s.existing(ids).await,
            AnySink::Flight(s) => s.existing(ids).await,
            AnySink::Vast(s) => s.existing(ids).await,
        }
    }

    async fn write(&mut self, batch: &CatalogBatch) -> Result<(), SinkError> {
        match self {
            AnySink::Duckdb(s) => s.write(batch).await,
            AnySink::Flight(s) => s.write(batch).await,
            AnySink::Vast(s) => s.write(batch).await,
        }
    }

    async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        match self {
            AnySink::Duckdb(s) => s.indexed(files).await,
            AnySink::Flight(s) => s.indexed(files).await,
            AnySink::Vast(s) => s.indexed(files).await,
        }
    }

    fn max_row_bytes(&self) -> Option<usize> {
        match self {
            AnySink::Duckdb(s) => s.max_row_bytes(),
            AnySink::Flight(s) => s.max_row_bytes(),
            AnySink::Vast(s) => s.max_row_bytes(),
        }
    }

    async fn record_removals(&mut self, removals: &[Removal]) -> Result<(), SinkError> {
        match self {
            AnySink::Duckdb(s) => s.record_removals(removals).await,
            AnySink::Flight(s) => s.record_removals(removals).await,
            AnySink::Vast(s) => s.record_removals(removals).await,
        }
    }

    async fn recover(&mut self) -> Result<(), SinkError> {
        match self {
            AnySink::Duckdb(s) => s.recover().await,
            AnySink::Flight(s) => s.recover().await,
            AnySink::Vast(s) => s.recover().await,
        }
    }

    async fn collect_garbage(&mut self, orphans_before: &WriteId) -> Result<GcCounts, SinkError> {
        match self {
            AnySink::Duckdb(s) => s.collect_garbage(orphans_before).await,
            AnySink::Flight(s) => s.collect_garbage(orphans_before).await,
            AnySink::Vast(s) => s.collect_garbage(orphans_before).await,
        }
    }

    async fn stored(&mut self, by: SimilarBy, which: &IndexedFile) -> Result<Vec<Stored>, SinkError> {
        match self {
            AnySink::Duckdb(s) => s.stored(by, which).await,
            AnySink::Flight(s) => s.stored(by, which).await,
            AnySink::Vast(s) => s.stored(by, which).await,
        }
    }

    async fn similar(
        &mut self,
        by: SimilarBy,
        vector: &[f32],
        k: usize,
        exclude_uri: Option<&str>,
    ) -> Result<Vec<Neighbour>, SinkError> {
        match self {
            AnySink::Duckdb(s) => s.similar(by, vector, k, exclude_uri).await,
            AnySink::Flight(s) => s.similar(by, vector, k, exclude_uri).await,
            AnySink::Vast(s) => s.similar(by, vector, k, exclude_uri).await,
        }
    }
}

/// What [`Writer::put`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Files written by this call.
    pub inserted: u64,
    /// Files already in the catalog (nothing written for them).
    pub unchanged: u64,
    /// Rows written over the four tables.
    pub rows: u64,
    /// Attempts that failed transiently before the one that succeeded.
    pub retries: u32,
    /// Files not written because a row of theirs is over the sink's [`Sink::max_row_bytes`].
    pub rejected: Vec<Oversize>,
}

/// A sink with idempotent, retried batch writes.
pub struct Writer<S> {
    sink: S,
    retry: RetryPolicy,
    /// Failed lookups retried since [`Self::take_lookup_retries`] was last called.
    lookup_retries: u32,
}

impl<S: Sink> Writer<S> {
    /// Wraps `sink`, retrying transient failures under `retry`.
    pub fn new(sink: S, retry: RetryPolicy) -> Self {
        Self { sink, retry, lookup_retries: 0 }
    }

    /// The sink, e.g. for queries.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Writes the files of `batch` that are not in the catalog yet.
    ///
    /// Every attempt checks which `file_id`s exist and writes only the others under a write
    /// id of its own, so retrying after a failure that happened after the server committed
    /// (the reply was lost) writes nothing twice; those files then count as inserted by this
    /// call, since its own first attempt had found them missing. An attempt that did not
    /// stop on the server when it timed out here may still land after the retry: then both
    /// attempts' rows are complete, the views show those of the smaller write id, and
    /// [`Sink::collect_garbage`] removes the others.
    ///
    /// Files with a row over the sink's [`Sink::max_row_bytes`] are left out, and returned
    /// as [`PutOutcome::rejected`].
    pub async fn put(&mut self, batch: &CatalogBatch) -> Result<PutOutcome, SinkError> {
        let (fits, rejected) = match self.sink.max_row_bytes() {
            Some(max) => batch.split_oversize(max)?,
            None => (batch.clone(), Vec::new()),
        };
        let mut outcome = self.put_fitting(&fits).await?;
        outcome.rejected = rejected;
        Ok(outcome)
    }

    /// [`Self::put`] of a batch whose rows all fit the sink.
    async fn put_fitting(&mut self, batch: &CatalogBatch) -> Result<PutOutcome, SinkError> {
        if batch.is_empty() {
            return Ok(PutOutcome::default());
        }
        // The files that failed attempts tried to write: one that the next attempt finds in
        // the catalog landed after all, and counts as inserted by this call.
        let mut attempted: HashSet<String> = HashSet::new();
        let mut waits = self.retry.backoff();
        let mut retries = 0;
        loop {
            match attempt(&mut self.sink, batch, &mut attempted).await {
                Ok(outcome) => return Ok(PutOutcome { retries, ..outcome }),
                Err(error) => self.recover_from(error, &mut waits, "sink write").await?,
            }
            retries += 1;
        }
    }

    /// [`Sink::indexed`] under the retry policy.
    pub async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        let mut waits = self.retry.backoff();
        loop {
            match self.sink.indexed(files).await {
                Ok(found) => return Ok(found),
                Err(error) => self.recover_from(error, &mut waits, "sink lookup").await?,
            }
            self.lookup_retries += 1;
        }
    }

    /// The lookups [`Self::indexed`] retried since the last call (for the scan's count of
    /// retries; writes count theirs in [`PutOutcome::retries`]).
    pub fn take_lookup_retries(&mut self) -> u32 {
        std::mem::take(&mut self.lookup_retries)
    }

    /// [`Sink::record_removals`] under the retry policy (recording is idempotent).
    pub async fn record_removals(&mut self, removals: &[Removal]) -> Result<(), SinkError> {
        if removals.is_empty() {
            return Ok(());
        }
        let mut waits = self.retry.backoff();
        loop {
            match self.sink.record_removals(removals).await {
                Ok(()) => return Ok(()),
                Err(error) => self.recover_from(error, &mut waits, "recording removals").await?,
            }
        }
    }

    /// After a failed attempt: `error` again if it is permanent or the retry policy has
    /// given up; otherwise waits, lets the sink repair what the failure may have broken
    /// ([`Sink::recover`]), and returns for the next attempt.
    async fn recover_from(&mut self, error: SinkError, waits: &mut Backoff, what: &str) -> Result<(), SinkError> {
        if !error.is_transient() {
            return Err(error);
        }
        let Some(wait) = waits.next() else { return Err(error) };
        tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "{what} failed; retrying");
        tokio::time::sleep(wait).await;
        match self.sink.recover().await {
            Err(e) if !e.is_transient() => Err(e),
            _ => Ok(()),
        }
    }
}

/// One existence check and write of `batch` (not empty) under a new write id; on failure,
/// adds the files it tried to write to `attempted`.
async fn attempt<S: Sink>(
    sink: &mut S,
    batch: &CatalogBatch,
    attempted: &mut HashSet<String>,
) -> Result<PutOutcome, SinkError> {
    let existing = sink.existing(batch.file_ids()).await?;
    let fresh = batch.without(&existing)?.stamped(&WriteId::new())?;
    let landed_earlier = existing.iter().filter(|id| attempted.contains(*id)).count() as u64;
    let total = batch.files() as u64;
    if !fresh.is_empty()
        && let Err(e) = sink.write(&fresh).await
    {
        attempted.extend(fresh.file_ids().iter().cloned());
        return Err(e);
    }
    let inserted = fresh.files() as u64 + landed_earlier;
    Ok(PutOutcome { inserted, unchanged: total - inserted, rows: fresh.rows() as u64, ..PutOutcome::default() })
}
