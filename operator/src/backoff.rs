//! Requeue delays of scans whose reconcile fails: exponential per scan (2 s, 4 s, 8 s, … up
//! to 5 min), back to the start after a reconcile succeeds, so that a scan refused by a quota
//! or an admission policy is retried without hammering the API server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First delay after a failure.
const FIRST: Duration = Duration::from_secs(2);
/// Longest delay.
const MAX: Duration = Duration::from_secs(300);

/// Failures in a row, per scan uid.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The delay before retrying the scan `uid` after one more failure.
    pub fn next(&self, uid: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(uid.to_string()).or_insert(0);
        let delay = FIRST.saturating_mul(2u32.saturating_pow(*n)).min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `uid` (its reconcile succeeded).
    pub fn reset(&self, uid: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..10).map(|_| b.next("a").as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.next("b").as_secs(), 2, "per scan");
        b.reset("a");
        assert_eq!(b.next("a").as_secs(), 2);
    }
}
