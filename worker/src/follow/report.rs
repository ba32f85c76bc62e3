//! What a consumer run by the operator (`spec.events`) reports: its counters as JSON under
//! its pod name in the scan's ConfigMap `<scan>-follow`, merge-patched at an interval and
//! once more when it stops. The operator sums the entries into `status.events`; the worker
//! Role lets the pod patch that one ConfigMap only.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{FollowStats, StatsSnapshot};

/// Tries of the last report, when the consumer stops.
const FINAL_TRIES: u32 = 3;

/// This consumer's entry in the scan's follow ConfigMap.
pub struct StatusReport {
    api: Api<ConfigMap>,
    name: String,
    key: String,
}

impl StatusReport {
    /// The entry `POD_NAME` of ConfigMap `configmap` in `POD_NAMESPACE`, through the
    /// in-cluster (or `KUBECONFIG`) client; `None` when those variables are not set.
    pub async fn from_env(configmap: &str) -> Result<Option<Self>, kube::Error> {
        let (Ok(pod), Ok(namespace)) = (std::env::var("POD_NAME"), std::env::var("POD_NAMESPACE")) else {
            return Ok(None);
        };
        let client = kube::Client::try_default().await?;
        Ok(Some(Self { api: Api::namespaced(client, &namespace), name: configmap.to_string(), key: pod }))
    }

    /// Merge-patches this consumer's key with the counters now.
    pub async fn patch(&self, stats: &FollowStats) -> Result<(), kube::Error> {
        let patch = serde_json::json!({"data": {&self.key: entry(&stats.snapshot(), SystemTime::now())}});
        self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    }

    /// Reports every `every` until [`Reporter::finish`], then once more (retried); a failed
    /// report is logged, never fatal.
    pub fn start(self, stats: Arc<FollowStats>, every: Duration) -> Reporter {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                if let Err(error) = self.patch(&stats).await {
                    tracing::warn!(%error, configmap = %self.name, "could not report the follow status");
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
            for attempt in 1..=FINAL_TRIES {
                match self.patch(&stats).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(%error, configmap = %self.name, attempt, "could not report the final counts");
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    }
                }
            }
        });
        Reporter { stop, task }
    }
}

/// The entry: the counters (`StatsSnapshot`'s fields) and `updated_ms`, when it was taken.
fn entry(snapshot: &StatsSnapshot, now: SystemTime) -> String {
    let mut value = serde_json::to_value(snapshot).unwrap_or_default();
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    value["updated_ms"] = now_ms.into();
    value.to_string()
}

/// A running reporter; [`Reporter::finish`] makes a last report and stops it.
pub struct Reporter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Reporter {
    /// Stops after one last report.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
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
