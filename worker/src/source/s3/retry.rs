//! Bounded, jittered exponential retry of S3 requests (the `backoff` crate), and the
//! request counters a shard reports.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backoff::backoff::Backoff;

use super::failure::{S3Failure, classify};

/// How long transient S3 failures (503 SlowDown, 5xx, connection errors) are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct S3Retry {
    /// Wait before the first retry (then doubling, ±50 % jitter).
    pub initial: Duration,
    /// Longest wait between two attempts.
    pub max_interval: Duration,
    /// Give up on a request once this much time has passed since its first failure.
    pub max_elapsed: Duration,
}

impl Default for S3Retry {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max_interval: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

/// Requests made by a source, for the summary and the benchmark.
#[derive(Debug, Default)]
pub struct S3Stats {
    list_requests: AtomicU64,
    get_requests: AtomicU64,
    retries: AtomicU64,
    headers_read: AtomicU64,
    headers_in_one_get: AtomicU64,
    skipped_by_filter: AtomicU64,
}

/// A snapshot of [`S3Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Counts {
    /// `ListObjectsV2` requests that succeeded.
    pub list_requests: u64,
    /// Ranged `GetObject` requests that succeeded.
    pub get_requests: u64,
    /// Requests retried after a transient failure.
    pub retries: u64,
    /// Headers read completely.
    pub headers_read: u64,
    /// Headers read with a single GET.
    pub headers_in_one_get: u64,
    /// Listed keys the include/exclude globs left out.
    pub skipped_by_filter: u64,
}

impl S3Stats {
    pub(super) fn list_request(&self) {
        self.list_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn get_request(&self) {
        self.get_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn header_read(&self, gets: u32) {
        self.headers_read.fetch_add(1, Ordering::Relaxed);
        if gets == 1 {
            self.headers_in_one_get.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn skipped(&self, n: u64) {
        self.skipped_by_filter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn counts(&self) -> S3Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        S3Counts {
            list_requests: get(&self.list_requests),
            get_requests: get(&self.get_requests),
            retries: get(&self.retries),
            headers_read: get(&self.headers_read),
            headers_in_one_get: get(&self.headers_in_one_get),
            skipped_by_filter: get(&self.skipped_by_filter),
        }
    }
}

/// Runs requests under an [`S3Retry`] policy, counting into shared [`S3Stats`].
#[derive(Debug, Clone)]
pub struct Retrier {
    policy: S3Retry,
    stats: Arc<S3Stats>,
}

impl Retrier {
    /// A retrier counting into `stats`.
    pub fn new(policy: S3Retry, stats: Arc<S3Stats>) -> Self {
        Self { policy, stats }
    }

    /// The shared counters.
    pub fn stats(&self) -> &S3Stats {
        &self.stats
    }

    /// Runs `op` until it succeeds, fails for good, or transient failures outlast the policy.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, S3Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, object_store::Error>>,
    {
        let mut backoff = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.policy.initial)
            .with_randomization_factor(0.5)
            .with_multiplier(2.0)
            .with_max_interval(self.policy.max_interval)
            .with_max_elapsed_time(Some(self.policy.max_elapsed))
            .build();
        loop {
            let failure = match op().await {
                Ok(value) => return Ok(value),
                Err(error) => classify(&error),
            };
            if !failure.is_transient() {
                return Err(failure);
            }
            let Some(wait) = backoff.next_backoff() else {
                return Err(failure);
            };
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(request = what, %failure, retry_in_ms = wait.as_millis() as u64, "S3 request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }
}
