//! Read-your-writes for scan statuses. Reconciles read scans from the watch cache, which can
//! lag behind the operator's own last status write; a reconcile that then acted on the older
//! status could undo a recorded outcome (a run recorded `Succeeded` whose Job the TTL
//! controller deleted right after would be seen as "Job deleted before its end"). The
//! operator is the only writer of `status`, so the status it wrote last is the current one
//! until the cache shows it; entries are dropped as soon as it does.

use std::collections::HashMap;
use std::sync::Mutex;

use exrscan_crds::ExrScanStatus;

/// Statuses written and not yet seen in the cache, per scan uid.
#[derive(Debug, Default)]
pub struct Written {
    statuses: Mutex<HashMap<String, ExrScanStatus>>,
}

impl Written {
    /// The current status of scan `uid` whose cached copy has `cached`.
    pub fn latest(&self, uid: &str, cached: Option<&ExrScanStatus>) -> ExrScanStatus {
        let mut statuses = self.statuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match statuses.get(uid) {
            Some(written) if Some(written) != cached => written.clone(),
            Some(_) => {
                statuses.remove(uid);
                cached.cloned().unwrap_or_default()
            }
            None => cached.cloned().unwrap_or_default(),
        }
    }

    /// Remembers that `status` was written for scan `uid`.
    pub fn record(&self, uid: &str, status: ExrScanStatus) {
        self.statuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(uid.to_string(), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exrscan_crds::Phase;

    #[test]
    fn the_last_write_wins_until_the_cache_shows_it() {
        let w = Written::default();
        let planning = ExrScanStatus { phase: Some(Phase::Planning), ..Default::default() };
        let done = ExrScanStatus { phase: Some(Phase::Succeeded), ..Default::default() };
        assert_eq!(w.latest("u", Some(&planning)), planning);
        w.record("u", done.clone());
        assert_eq!(w.latest("u", Some(&planning)), done, "the cache lags");
        assert_eq!(w.latest("u", Some(&done)), done);
        assert!(w.statuses.lock().expect("lock").is_empty(), "dropped once the cache caught up");
    }
}
