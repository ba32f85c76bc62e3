//! Bounded, jittered exponential retry of transient sink failures (the `backoff` crate).

use std::future::Future;
use std::time::Duration;

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;

use super::SinkError;

/// How long and how often transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry (then doubling, ±50 % jitter).
    pub initial: Duration,
    /// Longest wait between two attempts.
    pub max_interval: Duration,
    /// Give up once this much time has passed since the first failure.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A fresh backoff schedule.
    pub(super) fn backoff(&self) -> ExponentialBackoff {
        backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_randomization_factor(0.5)
            .with_multiplier(2.0)
            .with_max_interval(self.max_interval)
            .with_max_elapsed_time(Some(self.max_elapsed))
            .build()
    }

    /// Runs `op` until it succeeds, fails permanently, or the policy gives up.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, SinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SinkError>>,
    {
        let mut backoff = self.backoff();
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() => {
                    let Some(wait) = next_wait(&mut backoff) else {
                        return Err(error);
                    };
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "sink unavailable; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The next wait of `backoff`, or `None` when it has given up.
pub(super) fn next_wait(backoff: &mut ExponentialBackoff) -> Option<Duration> {
    backoff.next_backoff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(1),
            max_interval: Duration::from_millis(2),
            max_elapsed: Duration::from_secs(5),
        };
        let mut calls = 0;
        let result = policy
            .run(|| {
                calls += 1;
                let n = calls;
                async move { if n < 3 { Err(SinkError::Transient("down".into())) } else { Ok(n) } }
            })
            .await;
        assert_eq!(result.ok(), Some(3));

        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(|| {
                calls += 1;
                async { Err(SinkError::Auth("no".into())) }
            })
            .await;
        assert!(matches!(result, Err(SinkError::Auth(_))));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_elapsed() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(5),
            max_interval: Duration::from_millis(10),
            max_elapsed: Duration::from_millis(60),
        };
        let started = std::time::Instant::now();
        let result: Result<(), _> = policy.run(|| async { Err(SinkError::Transient("down".into())) }).await;
        assert!(matches!(result, Err(SinkError::Transient(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
