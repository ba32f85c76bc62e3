//! The pace of running scans. While a scan runs, its Job, pods and status change all the
//! time (at 10,000 shards, thousands of times a minute); reconciling on each change would
//! read the run and write its status continuously. A running scan is instead reconciled at
//! most once per interval: a trigger within the interval is put off to its end (leading
//! edge, never starved, unlike a trailing debounce that keeps moving). A spec change
//! (a new generation) is not put off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each running scan was last reconciled, per uid, with the generation it had.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    last: Mutex<HashMap<String, (Option<i64>, Instant)>>,
}

impl Pacer {
    /// At most one reconcile per `interval` per running scan.
    pub fn new(interval: Duration) -> Pacer {
        Pacer { interval, last: Mutex::default() }
    }

    /// How long the running scan `uid` at `generation` must wait before its next reconcile,
    /// or `None` when it may run now (which is then recorded).
    pub fn wait(&self, uid: &str, generation: Option<i64>) -> Option<Duration> {
        self.wait_at(uid, generation, Instant::now())
    }

    fn wait_at(&self, uid: &str, generation: Option<i64>, now: Instant) -> Option<Duration> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, at)) = last.get(uid)
            && *seen == generation
        {
            let next = *at + self.interval;
            if now < next {
                return Some(next - now);
            }
        }
        last.insert(uid.to_string(), (generation, now));
        None
    }

    /// Forgets `uid` (its scan no longer runs).
    pub fn forget(&self, uid: &str) {
        self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval_unless_the_spec_changed() {
        let pacer = Pacer::new(Duration::from_secs(2));
        let t = Instant::now();
        assert_eq!(pacer.wait_at("u", Some(1), t), None);
        assert_eq!(pacer.wait_at("u", Some(1), t + Duration::from_millis(500)), Some(Duration::from_millis(1500)));
        assert_eq!(pacer.wait_at("v", Some(1), t), None, "per scan");
        assert_eq!(pacer.wait_at("u", Some(2), t + Duration::from_millis(600)), None, "a new generation");
        assert_eq!(pacer.wait_at("u", Some(2), t + Duration::from_millis(2600)), None);
        pacer.forget("u");
        assert_eq!(pacer.wait_at("u", Some(2), t + Duration::from_millis(2700)), None);
    }
}
