//! Publishing a plan where the shard pods read it: chunk `k` into the key
//! `partitions-<k>.json` of ConfigMap `<name>-<k>`, then the header into the key `plan.json`
//! of ConfigMap `<name>` (the operator creates them all empty, owned by the ExrScan, and
//! projects them into one directory of the shards). The header is written last: a plan
//! whose header is there is complete.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

use super::stored::{HEADER_KEY, chunk_key};
use super::{Plan, PlanError};

/// Why a plan was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Part of the plan would not fit in a ConfigMap; nothing was written.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The API server refused or failed a write.
    #[error("writing ConfigMap {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The ConfigMap holding chunk `k` of the plan published as `name`.
pub fn chunk_map(name: &str, k: u32) -> String {
    format!("{name}-{k}")
}

/// Writes `plan` with chunks of `shards_per_chunk` shards into ConfigMaps `name-<k>` and
/// its header into `name` (all in `api`'s namespace), leaving their other keys alone. Every
/// value is checked against the ConfigMap size limit before anything is written.
pub async fn publish(api: &Api<ConfigMap>, plan: &Plan, name: &str, shards_per_chunk: u32) -> Result<(), PublishError> {
    let stored = plan.stored(shards_per_chunk)?;
    let chunks = (0..).zip(&stored.chunks).map(|(k, chunk)| (chunk_map(name, k), chunk_key(k), chunk));
    for (map, key, value) in chunks.chain([(name.to_string(), HEADER_KEY.to_string(), &stored.header)]) {
        let patch = serde_json::json!({"data": {key: value}});
        api.patch(&map, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| PublishError::Write { name: map.clone(), source })?;
    }
    Ok(())
}
