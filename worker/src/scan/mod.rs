//! The scan pipeline: list → skip objects the catalog holds unchanged (one lookup per chunk
//! of the listing) → read header prefixes (bounded concurrency) → parse → embed → catalog
//! rows → batches (by files and bytes) → sink, writing while the next batch is read.
//!
//! A scan can be stopped (a [`CancellationToken`], cancelled on SIGTERM by the CLI): no
//! new read starts, the reads in flight finish, what was read is written, and the scan
//! ends with [`ScanError::Interrupted`] and its summary. A later run resumes from the catalog.

pub mod progress;
mod tally;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

pub use tally::{Counts, FAILURE_SAMPLE, Failure, Summary, Tally};

use crate::catalog::{CatalogBuilder, CatalogError, ScanInfo};
use crate::embed;
use crate::sink::{Sink, SinkError, Writer};
use crate::source::{Source, SourceError};

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Headers read at once.
    pub concurrency: usize,
    /// Files per sink batch (at most).
    pub batch_files: usize,
    /// Approximate bytes of rows per sink batch (at most).
    pub batch_bytes: usize,
    /// Rows over the four tables per sink batch (at most, but at least one file).
    pub batch_rows: usize,
    /// Compute and store embeddings.
    pub embeddings: bool,
    /// Stamped on every `files` row.
    pub scan: ScanInfo,
    /// Skip, without reading them, listed files the sink already holds with the same URI,
    /// size and ETag, or size and modification time for local files (resume after an
    /// interrupted run; a local rescan reads only what changed).
    pub skip_indexed: bool,
}

/// Headers read at once by default, by `exrscan scan` and by a shard alike (the S3 latency
/// of a ranged GET is hidden behind the others; see docs/operations.md for memory).
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Listed files checked against the catalog per lookup (at most): one S3 LIST page.
const LOOKUP_CHUNK: usize = 1000;

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            batch_files: 1000,
            batch_bytes: 16 * 1024 * 1024,
            batch_rows: 100_000,
            embeddings: true,
            scan: ScanInfo::default(),
            skip_indexed: true,
        }
    }
}

/// Why a scan stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The source could not be listed.
    #[error("source: {0}")]
    Source(#[from] SourceError),
    /// The sink failed permanently or kept failing past the retry policy.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Stopped by request before the end; what was read has been written, as the summary
    /// counts.
    #[error("interrupted before the end; the files read so far were written, a new run resumes")]
    Interrupted(Box<Summary>),
    /// Rows could not be built.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Scans `source` into `writer`, updating `tally` as it goes (for progress), and returns
/// the summary. Files that cannot be read are counted and sampled, not fatal. Cancelling
/// `stop` ends the scan early and gracefully (see the module documentation).
pub async fn run<S: Source, K: Sink>(
    source: Arc<S>,
    writer: &mut Writer<K>,
    options: &ScanOptions,
    tally: &Tally,
    stop: &CancellationToken,
) -> Result<Summary, ScanError> {
    let started = Instant::now();
    let (found_tx, found_rx) = mpsc::channel(4096);
    let lister = {
        let source = Arc::clone(&source);
        tokio::spawn(async move { source.list(found_tx).await })
    };
    let reader = Arc::clone(&source);
    let (batch_tx, mut batch_rx) = mpsc::channel::<crate::catalog::CatalogBatch>(2);
    // The lookups of the listing and the writes of the batches share the sink.
    let writer = &tokio::sync::Mutex::new(writer);

    let (unread_tx, mut unread_rx) = mpsc::channel(2 * LOOKUP_CHUNK);

    // Checks the listing against the catalog, a chunk at a time. Always polled (joined
    // below), so it never holds the sink while stalled by the stages after it.
    let lookup = async move {
        let mut chunks = Chunks { listed: found_rx, tally };
        while let Some(mut files) = chunks.next().await {
            if options.skip_indexed {
                let known = {
                    let mut writer = writer.lock().await;
                    let known = writer.indexed(&files).await;
                    tally.retried(writer.take_lookup_retries());
                    known
                };
                match known {
                    Ok(known) if !known.is_empty() => {
                        files.retain(|f| !known.contains(&f.uri));
                        tally.unchanged_unread(known.len() as u64);
                    }
                    Ok(_) => {}
                    // Only an optimisation: the write still checks file_ids.
                    Err(error) => tracing::warn!(%error, "resume check failed; reading the files"),
                }
            }
            for file in files {
                if unread_tx.send(file).await.is_err() {
                    return;
                }
            }
        }
    };

    let produce = async move {
        // Stopping ends this stream: the reads in flight finish and the last batch is sent.
        // Then `unread_rx` is dropped, which ends the lookup, which ends the listing.
        let unread = futures::stream::poll_fn(|cx| unread_rx.poll_recv(cx)).take_until(Box::pin(stop.cancelled()));
        let mut reads = unread
            .map(|file| {
                let source = Arc::clone(&reader);
                let with_embeddings = options.embeddings;
                let key = file.key.clone();
                // Each read (and its parse and embeddings) is a task of its own, so that
                // they spread over the runtime's threads while this loop builds rows.
                let task = tokio::spawn(async move {
                    let read = source.read_header(&file).await;
                    let embeddings = match &read {
                        Ok(read) if with_embeddings => Some(embed::embed(&read.header)),
                        _ => None,
                    };
                    (file, read, embeddings)
                });
                async move { task.await.map_err(|e| (key, format!("read task failed: {e}"))) }
            })
            .buffer_unordered(options.concurrency.max(1));
        let mut builder = CatalogBuilder::new(options.scan.clone());
        while let Some(done) = reads.next().await {
            let (file, read, embeddings) = match done {
                Ok(done) => done,
                Err((key, reason)) => {
                    note_failure(tally, key, reason);
                    continue;
                }
            };
            match read {
                Ok(read) => {
                    tally.processed(read.bytes_read);
                    builder.add(read.file.unwrap_or(file), &read.header, embeddings.as_ref());
                    // The rows are built: the header's share of the read budget is free again.
                    drop(read.held);
                    let full = builder.files() >= options.batch_files
                        || builder.rows() >= options.batch_rows
                        || builder.estimated_bytes() >= options.batch_bytes;
                    if full && batch_tx.send(builder.finish()?).await.is_err() {
                        return Ok(());
                    }
                }
                // No later read can succeed (refused credentials are not bad files): write
                // what was read, then stop.
                Err(e @ (SourceError::Unavailable { .. } | SourceError::Credentials { .. })) => {
                    if builder.files() > 0 {
                        let _ = batch_tx.send(builder.finish()?).await;
                    }
                    return Err(e.into());
                }
                Err(e) => note_failure(tally, file.key, e.to_string()),
            }
        }
        if builder.files() > 0 {
            // A closed receiver means the writer failed; its error is reported.
            let _ = batch_tx.send(builder.finish()?).await;
        }
        Ok::<(), ScanError>(())
    };
    // Owns the batch receiver: if a write fails, dropping it stops `produce`.
    let consume = async move {
        while let Some(batch) = batch_rx.recv().await {
            let outcome = writer.lock().await.put(&batch).await?;
            for file in &outcome.rejected {
                note_failure(tally, file.key.clone(), file.to_string());
            }
            tally.written(&outcome);
        }
        Ok::<(), ScanError>(())
    };
    // `produce` owns the batch sender: the writer's loop ends when it is done.
    let ((), produced, consumed) = tokio::join!(lookup, produce, consume);
    consumed?;
    produced?;
    lister.await.map_err(|e| SourceError::Unusable { location: "listing".into(), reason: e.to_string() })??;
    let summary = tally.summary(started.elapsed());
    if stop.is_cancelled() {
        return Err(ScanError::Interrupted(Box::new(summary)));
    }
    Ok(summary)
}

/// How long a chunk of the listing waits, after its first file, for the rest of it: the
/// files of a LIST page arrive at once, and a chunk cut short costs a query of its own.
const LOOKUP_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The listing in chunks of [`LOOKUP_CHUNK`] files, each cut short only when the listing
/// ends or pauses for [`LOOKUP_WAIT`]. Counts each file discovered; a listing error is
/// counted as a failure and left out.
struct Chunks<'t> {
    listed: mpsc::Receiver<Result<crate::catalog::SourceFile, SourceError>>,
    tally: &'t Tally,
}

impl Chunks<'_> {
    /// The next chunk; `None` at the end of the listing.
    async fn next(&mut self) -> Option<Vec<crate::catalog::SourceFile>> {
        let mut files = Vec::with_capacity(LOOKUP_CHUNK);
        let mut items = Vec::with_capacity(LOOKUP_CHUNK);
        let mut deadline = None;
        while files.len() < LOOKUP_CHUNK {
            let want = LOOKUP_CHUNK - files.len();
            let received = match deadline {
                None => self.listed.recv_many(&mut items, want).await,
                Some(at) => match tokio::time::timeout_at(at, self.listed.recv_many(&mut items, want)).await {
                    Ok(received) => received,
                    Err(_) => break,
                },
            };
            if received == 0 {
                break;
            }
            for item in items.drain(..) {
                match item {
                    Ok(file) => {
                        self.tally.discovered();
                        files.push(file);
                    }
                    Err(e) => note_failure(self.tally, location(&e), e.to_string()),
                }
            }
            if !files.is_empty() && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + LOOKUP_WAIT);
            }
        }
        (!files.is_empty()).then_some(files)
    }
}

fn location(error: &SourceError) -> String {
    match error {
        SourceError::Unusable { location, .. }
        | SourceError::Entry { location, .. }
        | SourceError::Unavailable { location, .. }
        | SourceError::Credentials { location, .. } => location.clone(),
        SourceError::File { .. } => String::new(),
    }
}

fn note_failure(tally: &Tally, key: String, reason: String) {
    if tally.failed(key.clone(), reason.clone()) {
        tracing::warn!(%key, %reason, "file failed");
    } else {
        tracing::debug!(%key, %reason, "file failed");
    }
}
