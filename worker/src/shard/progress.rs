//! Progress the operator can read while a shard runs: the counts so far (and a few
//! failures), as JSON under the shard's index in the run's progress ConfigMap
//! `$EXRSCAN_PROGRESS_CONFIGMAP-<index / $EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP>`, merge-patched
//! at an interval and once more with the final counts. The worker's Role lets it patch those
//! ConfigMaps only (no Pod access).

use std::sync::Arc;
use std::time::Duration;

use super::report::progress_json;
use crate::configmap_entry::{ConfigMapEntry, First, Updater};
use crate::scan::Tally;

/// Env var naming the run's progress ConfigMaps (before `-<k>`).
pub const CONFIGMAP_ENV: &str = "EXRSCAN_PROGRESS_CONFIGMAP";
/// Env var with the number of shards per progress ConfigMap.
pub const SHARDS_PER_CONFIGMAP_ENV: &str = "EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP";

/// This shard's entry in its run's progress ConfigMap.
pub struct ShardProgress(ConfigMapEntry);

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
        Ok(Some(Self(ConfigMapEntry::new(&namespace, name, index.to_string()).await?)))
    }

    /// Patches the counts and failures of `tally` every `every` until stopped, then once more
    /// with the final counts (retried); a failed patch is logged, never fatal.
    pub fn start(self, tally: Arc<Tally>, every: Duration) -> Updater {
        self.0.start(every, First::AfterInterval, "progress", move || progress_json(tally.counts(), &tally.failures()))
    }
}

/// `<prefix>-<index / per_map>`, or `None` if `per_map` is not a positive number.
fn map_name(prefix: &str, per_map: &str, index: u32) -> Option<String> {
    let per_map: u32 = per_map.trim().parse().ok().filter(|n| *n > 0)?;
    Some(format!("{prefix}-{}", index / per_map))
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
