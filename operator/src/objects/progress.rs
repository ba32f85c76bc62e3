//! A run's progress ConfigMaps `<scan>-<run>-progress-<k>`: each shard's worker merge-patches
//! its own key (the shard index) with its counts while it runs and once more when it ends,
//! and nothing else may write them but the operator (the worker Role names them). They
//! outlive the run's pods, so a run's counts do not shrink when pods are deleted.

use std::time::Duration;

use exrscan_crds::ExrScan;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar};

use super::ScanRef;
use crate::names;

/// Env var naming the run's progress ConfigMaps (before `-<k>`).
pub const PREFIX_ENV: &str = "EXRSCAN_PROGRESS_CONFIGMAP";
/// Env var with the number of shards per progress ConfigMap.
pub const SHARDS_PER_MAP_ENV: &str = "EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP";
/// Env var with the seconds between two progress reports of a shard.
pub const INTERVAL_ENV: &str = "EXRSCAN_PROGRESS_INTERVAL";

/// Progress writes per second a run's shards make at most together: a run of many shards
/// reports each shard less often, so the API server's load stays flat with the shard count.
pub const WRITES_PER_SECOND: u64 = 50;

/// The operator's key in each progress ConfigMap: the ShardFailed Events already published,
/// as a JSON object from shard index to the number of that index's failed attempts reported.
pub const REPORTED_KEY: &str = "reported-failures";

/// The empty progress ConfigMaps of a run of `shards` shards.
pub fn config_maps(scan: &ScanRef, run: &str, shards: i32) -> Vec<ConfigMap> {
    names::progress_maps(&scan.name, run, shards)
        .into_iter()
        .map(|name| ConfigMap {
            metadata: scan.owned_meta(name, names::run_map_labels(&scan.name, run, names::PROGRESS_COMPONENT)),
            ..Default::default()
        })
        .collect()
}

/// Seconds between two reports of one shard of `scan`: at least `least`, and long enough
/// that its running shards (`parallelism`) make at most [`WRITES_PER_SECOND`] writes together.
pub fn interval(scan: &ExrScan, least: Duration) -> u64 {
    let running = u64::try_from(scan.spec.effective_parallelism()).unwrap_or(1);
    least.as_secs().max(1).max(running.div_ceil(WRITES_PER_SECOND))
}

/// The environment telling a shard where and how often to report its progress.
pub fn env(scan: &ExrScan, scan_ref: &ScanRef, run: &str, least: Duration) -> Vec<EnvVar> {
    [
        (PREFIX_ENV, names::progress_prefix(&scan_ref.name, run)),
        (SHARDS_PER_MAP_ENV, names::SHARDS_PER_PROGRESS_MAP.to_string()),
        (INTERVAL_ENV, interval(scan, least).to_string()),
    ]
    .into_iter()
    .map(|(name, value)| EnvVar { name: name.into(), value: Some(value), value_from: None })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn one_map_per_chunk_of_shards() {
        let r = ScanRef::of(&fixtures::scan(fixtures::flight_spec())).expect("ref");
        let maps = config_maps(&r, "abcd1234", 401);
        let names: Vec<_> = maps.iter().filter_map(|m| m.metadata.name.clone()).collect();
        assert_eq!(
            names,
            ["renders-abcd1234-progress-0", "renders-abcd1234-progress-1", "renders-abcd1234-progress-2"]
        );
        assert_eq!(config_maps(&r, "abcd1234", 200).len(), 1);
        let labels = maps[0].metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app.kubernetes.io/component").map(String::as_str), Some("progress"));
        assert_eq!(labels.get("exrscan.dev/run").map(String::as_str), Some("abcd1234"));
        assert!(maps[0].metadata.owner_references.is_some(), "deleted with the scan");
        let scan = fixtures::scan(fixtures::flight_spec());
        let env = env(&scan, &r, "abcd1234", Duration::from_secs(5));
        assert_eq!(env[0].value.as_deref(), Some("renders-abcd1234-progress"));
        assert_eq!(env[1].value.as_deref(), Some("200"));
        assert_eq!((env[2].name.as_str(), env[2].value.as_deref()), (INTERVAL_ENV, Some("5")));
    }

    #[test]
    fn many_shards_report_less_often() {
        let mut spec = fixtures::flight_spec();
        spec.shards = 10_000;
        spec.parallelism = None;
        let scan = fixtures::scan(spec);
        assert_eq!(interval(&scan, Duration::from_secs(5)), 200, "10,000 shards: 50 writes/s");
        let small = fixtures::scan(fixtures::flight_spec());
        assert_eq!(interval(&small, Duration::from_secs(5)), 5);
        assert_eq!(interval(&small, Duration::ZERO), 1, "never busier than once a second");
    }
}
