//! What a consumer run by the operator (`spec.events`) reports: its counters as JSON under
//! its pod name in the scan's ConfigMap `<scan>-follow`, merge-patched at an interval and
//! once more when it stops. The operator sums the entries into `status.events`; the worker
//! Role lets the pod patch that one ConfigMap only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{FollowStats, StatsSnapshot};
use crate::configmap_entry::{ConfigMapEntry, First, Updater};

/// This consumer's entry in the scan's follow ConfigMap.
pub struct StatusReport(ConfigMapEntry);

impl StatusReport {
    /// The entry `POD_NAME` of ConfigMap `configmap` in `POD_NAMESPACE`, through the
    /// in-cluster (or `KUBECONFIG`) client; `None` when those variables are not set.
    pub async fn from_env(configmap: &str) -> Result<Option<Self>, kube::Error> {
        let (Ok(pod), Ok(namespace)) = (std::env::var("POD_NAME"), std::env::var("POD_NAMESPACE")) else {
            return Ok(None);
        };
        Ok(Some(Self(ConfigMapEntry::new(&namespace, configmap.to_string(), pod).await?)))
    }

    /// Reports the counters now and every `every` until [`Updater::finish`], then once more
    /// (retried); a failed report is logged, never fatal.
    pub fn start(self, stats: Arc<FollowStats>, every: Duration) -> Updater {
        self.0.start(every, First::Now, "the follow status", move || entry(&stats.snapshot(), SystemTime::now()))
    }
}

/// The entry: the counters (`StatsSnapshot`'s fields) and `updated_ms`, when it was taken.
fn entry(snapshot: &StatsSnapshot, now: SystemTime) -> String {
    let mut value = serde_json::to_value(snapshot).unwrap_or_default();
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    value["updated_ms"] = now_ms.into();
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_holds_the_counters_and_its_time() {
        let snapshot = StatsSnapshot { inserted: 3, lag: 7, last_event_ms: 1_700_000_000_000, ..Default::default() };
        let text = entry(&snapshot, UNIX_EPOCH + Duration::from_millis(1_800_000_000_123));
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["inserted"], 3);
        assert_eq!(value["lag"], 7);
        assert_eq!(value["last_event_ms"], 1_700_000_000_000_i64);
        assert_eq!(value["updated_ms"], 1_800_000_000_123_u64);
        assert_eq!(value["malformed"], 0);
    }
}
