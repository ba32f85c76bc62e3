//! Progress the operator can read while a shard runs: the counts so far (and a few
//! failures), as JSON under the shard's index in the run's progress ConfigMap
//! `$EXRSCAN_PROGRESS_CONFIGMAP-<index / $EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP>`, merge-patched
//! at an interval and once more with the final counts. The worker's Role lets it patch those
//! ConfigMaps only (no Pod access).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::report::progress_json;
use crate::scan::Tally;

/// Env var naming the run's progress ConfigMaps (before `-<k>`).
pub const CONFIGMAP_ENV: &str = "EXRSCAN_PROGRESS_CONFIGMAP";
/// Env var with the number of shards per progress ConfigMap.
pub const SHARDS_PER_CONFIGMAP_ENV: &str = "EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP";

/// Tries of the final write (the operator's final counts of the shard).
const FINAL_TRIES: u32 = 3;

/// This shard's entry in its run's progress ConfigMap.
#[derive(Clone)]
pub struct ShardProgress {
    api: Api<ConfigMap>,
    name: String,
    key: String,
}

impl ShardProgress {
    /// The entry of shard `index` named by `EXRSCAN_PROGRESS_CONFIGMAP`,
    /// `EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP` and `POD_NAMESPACE`, through the in-cluster
    /// (or `KUBECONFIG`) client; `None` when those variables are not set (outside a cluster).
    pub async fn from_env(index: u32) -> Result<Option<Self>, kube::Error> {
        let (Ok(prefix), Ok(per_map), Ok(namespace)) =
            (std::env::var(CONFIGMAP_ENV), std::env::var(SHARDS_PER_CONFIGMAP_ENV), std::env::var("POD_NAMESPACE"))
        else {
            return Ok(None);
        };
        let Some(name) = map_name(&prefix, &per_map, index) else {
            tracing::warn!(%per_map, "{SHARDS_PER_CONFIGMAP_ENV} is not a positive number: progress is not reported");
            return Ok(None);
        };
        let client = kube::Client::try_default().await?;
        Ok(Some(Self { api: Api::namespaced(client, &namespace), name, key: index.to_string() }))
    }

    /// Merge-patches this shard's key with the counts and failures of `tally`.
    pub async fn patch(&self, tally: &Tally) -> Result<(), kube::Error> {
        let entry = progress_json(tally.counts(), &tally.failures());
        let patch = serde_json::json!({"data": {&self.key: entry}});
        self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    }

    /// Patches every `every` until stopped, then once more with the final counts (retried);
    /// a failed patch is logged, never fatal.
    pub fn start(self, tally: Arc<Tally>, every: Duration) -> Patcher {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(error) = self.patch(&tally).await {
                    tracing::warn!(%error, configmap = %self.name, "could not report progress");
                }
            }
            for attempt in 1..=FINAL_TRIES {
                match self.patch(&tally).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(%error, configmap = %self.name, attempt, "could not report the final counts");
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    }
                }
            }
        });
        Patcher { stop, task }
    }
}

/// `<prefix>-<index / per_map>`, or `None` if `per_map` is not a positive number.
fn map_name(prefix: &str, per_map: &str, index: u32) -> Option<String> {
    let per_map: u32 = per_map.trim().parse().ok().filter(|n| *n > 0)?;
    Some(format!("{prefix}-{}", index / per_map))
}

/// A running progress patcher; [`Patcher::finish`] makes a last patch and stops it.
pub struct Patcher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Patcher {
    /// Stops after one last patch.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chunk_of_shards_has_its_map() {
        assert_eq!(map_name("renders-abcd-progress", "200", 0).as_deref(), Some("renders-abcd-progress-0"));
        assert_eq!(map_name("renders-abcd-progress", "200", 199).as_deref(), Some("renders-abcd-progress-0"));
        assert_eq!(map_name("renders-abcd-progress", "200", 200).as_deref(), Some("renders-abcd-progress-1"));
        assert_eq!(map_name("p", "0", 3), None);
        assert_eq!(map_name("p", "x", 3), None);
    }
}
