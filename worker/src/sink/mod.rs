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
pub use similar::{Neighbour, SimilarBy};
pub use uri::SinkUri;

pub use canonical::GcCounts;

use crate::catalog::{CatalogBatch, CatalogError, SourceFile, WriteId};

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
    /// with the same URI, size and ETag, in one round trip. Files without an ETag are never
    /// in the answer.
    fn indexed(&mut self, files: &[SourceFile]) -> impl Future<Output = Result<HashSet<String>, SinkError>> + Send;

    /// Repairs what a transient failure may have broken (e.g. a session or token lost in a
    /// server restart) before the next attempt.
    fn recover(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Deletes the rows the `indexed_*` views hide: those of attempts that wrote a file
    /// another attempt had written (smaller write id), and child rows without a `files` row
    /// of their attempt whose write id sorts below `orphans_before` (younger ones may belong
    /// to an attempt still writing).
    fn collect_garbage(&mut self, orphans_before: &WriteId)
    -> impl Future<Output = Result<GcCounts, SinkError>> + Send;

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOutcome {
    /// Files written by this call.
    pub inserted: u64,
    /// Files already in the catalog (nothing written for them).
    pub unchanged: u64,
    /// Rows written over the four tables.
    pub rows: u64,
    /// Attempts that failed transiently before the one that succeeded.
    pub retries: u32,
}

/// A sink with idempotent, retried batch writes.
pub struct Writer<S> {
    sink: S,
    retry: RetryPolicy,
}

impl<S: Sink> Writer<S> {
    /// Wraps `sink`, retrying transient failures under `retry`.
    pub fn new(sink: S, retry: RetryPolicy) -> Self {
        Self { sink, retry }
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
    pub async fn put(&mut self, batch: &CatalogBatch) -> Result<PutOutcome, SinkError> {
        let mut attempted: HashSet<String> = HashSet::new();
        let mut backoff = self.retry.backoff();
        let mut retries = 0;
        loop {
            match self.attempt(batch, &attempted).await {
                Ok(mut outcome) => {
                    outcome.retries = retries;
                    return Ok(outcome);
                }
                Err((error, tried)) if error.is_transient() => {
                    attempted.extend(tried);
                    let Some(wait) = retry::next_wait(&mut backoff) else {
                        return Err(error);
                    };
                    retries += 1;
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "sink write failed; retrying");
                    tokio::time::sleep(wait).await;
                    if let Err(e) = self.sink.recover().await
                        && !e.is_transient()
                    {
                        return Err(e);
                    }
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// [`Sink::indexed`] under the retry policy.
    pub async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        let mut backoff = self.retry.backoff();
        loop {
            match self.sink.indexed(files).await {
                Ok(found) => return Ok(found),
                Err(error) if error.is_transient() => {
                    let Some(wait) = retry::next_wait(&mut backoff) else {
                        return Err(error);
                    };
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "sink lookup failed; retrying");
                    tokio::time::sleep(wait).await;
                    if let Err(e) = self.sink.recover().await
                        && !e.is_transient()
                    {
                        return Err(e);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One existence check and write; on failure, also the ids it tried to write.
    async fn attempt(
        &mut self,
        batch: &CatalogBatch,
        attempted: &HashSet<String>,
    ) -> Result<PutOutcome, (SinkError, Vec<String>)> {
        if batch.is_empty() {
            return Ok(PutOutcome::default());
        }
        let existing = self.sink.existing(batch.file_ids()).await.map_err(|e| (e, Vec::new()))?;
        let fresh =
            batch.without(&existing).and_then(|b| b.stamped(&WriteId::new())).map_err(|e| (e.into(), Vec::new()))?;
        let landed_earlier = existing.iter().filter(|id| attempted.contains(*id)).count() as u64;
        let total = batch.files() as u64;
        if !fresh.is_empty()
            && let Err(e) = self.sink.write(&fresh).await
        {
            return Err((e, fresh.file_ids().to_vec()));
        }
        let inserted = fresh.files() as u64 + landed_earlier;
        Ok(PutOutcome { inserted, unchanged: total - inserted, rows: fresh.rows() as u64, retries: 0 })
    }
}
