//! One retry policy for every remote call (S3 requests, sink writes and lookups): a bounded,
//! jittered exponential backoff from `backon`, retrying while the error says a later
//! attempt may succeed ([`Transient`]).

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};

/// An error that knows whether a later attempt may succeed.
pub trait Transient: Display {
    /// Whether a retry may succeed (server unavailable, overloaded, connection lost).
    fn is_transient(&self) -> bool;
}

/// How long and how often transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// First wait; each next one doubles, up to `max_interval`. Each wait is jittered
    /// upwards by up to 100 % (so that many clients do not retry in step).
    pub initial: Duration,
    /// Longest wait between two attempts, before jitter.
    pub max_interval: Duration,
    /// Give up once the next wait would end more than this long after the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// The sinks' policy: 200 ms doubling to 10 s, for two minutes.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max_interval: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

/// The waits of one retried operation (an iterator of [`Duration`]s; `None`: give up).
#[derive(Debug)]
pub struct Backoff {
    waits: ExponentialBackoff,
    deadline: Instant,
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.waits.next()?;
        (Instant::now() + wait <= self.deadline).then_some(wait)
    }
}

impl RetryPolicy {
    /// A fresh schedule of waits, its time limit counted from now.
    pub fn backoff(&self) -> Backoff {
        let waits = ExponentialBuilder::new()
            .with_min_delay(self.initial)
            .with_max_delay(self.max_interval.max(self.initial))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        Backoff { waits, deadline: Instant::now() + self.max_elapsed }
    }

    /// Runs `op` until it succeeds, fails for good, or transient failures outlast the
    /// policy; each retry is logged as a warning.
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_notify(op, |error: &E, wait| {
            tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "unavailable; retrying");
        })
        .await
    }

    /// [`run`](Self::run), calling `notify` with the error and the wait before each retry.
    pub async fn run_notify<T, E, F, Fut>(&self, op: F, notify: impl FnMut(&E, Duration)) -> Result<T, E>
    where
        E: Transient,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        op.retry(self.backoff()).when(E::is_transient).notify(notify).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Error {
        Down,
        Refused,
    }

    impl Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl Transient for Error {
        fn is_transient(&self) -> bool {
            *self == Error::Down
        }
    }

    fn quick(max_elapsed: Duration) -> RetryPolicy {
        RetryPolicy { initial: Duration::from_millis(1), max_interval: Duration::from_millis(4), max_elapsed }
    }

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let policy = quick(Duration::from_secs(5));
        let mut calls = 0;
        let mut waits = Vec::new();
        let result = policy
            .run_notify(
                || {
                    calls += 1;
                    let n = calls;
                    async move { if n < 3 { Err(Error::Down) } else { Ok(n) } }
                },
                |_, wait| waits.push(wait),
            )
            .await;
        assert_eq!(result, Ok(3));
        assert_eq!(waits.len(), 2, "one wait per retry");
        assert!(waits.iter().all(|w| *w >= Duration::from_millis(1) && *w <= Duration::from_millis(8)), "{waits:?}");

        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(|| {
                calls += 1;
                async { Err(Error::Refused) }
            })
            .await;
        assert_eq!(result, Err(Error::Refused));
        assert_eq!(calls, 1, "a permanent error is not retried");
    }

    #[tokio::test]
    async fn gives_up_after_max_elapsed() {
        let policy = quick(Duration::from_millis(60));
        let started = Instant::now();
        let mut calls = 0;
        let result: Result<(), _> = policy
            .run(|| {
                calls += 1;
                async { Err(Error::Down) }
            })
            .await;
        assert_eq!(result, Err(Error::Down));
        assert!(calls > 3, "retried until the limit: {calls}");
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn waits_double_up_to_the_cap_with_upward_jitter() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max_interval: Duration::from_millis(400),
            max_elapsed: Duration::from_secs(3600),
        };
        let waits: Vec<Duration> = policy.backoff().take(5).collect();
        for (wait, base) in waits.iter().zip([100, 200, 400, 400, 400]) {
            let base = Duration::from_millis(base);
            assert!(*wait >= base && *wait <= 2 * base, "{waits:?}");
        }
    }
}
