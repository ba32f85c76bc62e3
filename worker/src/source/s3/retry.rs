//! S3 requests under the shared [`RetryPolicy`] (transient: 503 SlowDown, 5xx, connection
//! errors; see [`classify`]), and the request counters a shard reports.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::failure::{S3Failure, classify};
use crate::retry::RetryPolicy;

/// The S3 requests' policy: 50 ms doubling to 5 s, for two minutes per request.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(50),
    max_interval: Duration::from_secs(5),
    max_elapsed: Duration::from_secs(120),
};

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

/// Runs requests under a [`RetryPolicy`], counting into shared [`S3Stats`].
#[derive(Debug, Clone)]
pub struct Retrier {
    policy: RetryPolicy,
    stats: Arc<S3Stats>,
}

impl Retrier {
    /// A retrier counting into `stats`.
    pub fn new(policy: RetryPolicy, stats: Arc<S3Stats>) -> Self {
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
        let attempt = || {
            let request = op();
            async move { request.await.map_err(|error| classify(&error)) }
        };
        let notify = |failure: &S3Failure, wait: Duration| {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(request = what, %failure, retry_in_ms = wait.as_millis() as u64, "S3 request failed; retrying");
        };
        self.policy.run_notify(attempt, notify).await
    }
}
