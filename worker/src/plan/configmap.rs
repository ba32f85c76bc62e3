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
    /// No Kubernetes client.
    #[error("no Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The API server refused or failed a write.
    #[error("writing ConfigMap {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl PublishError {
    /// The Kubernetes error, if the failure was one.
    pub fn kube(&self) -> Option<&kube::Error> {
        match self {
            PublishError::Plan(_) => None,
            PublishError::Client(e) | PublishError::Write { source: e, .. } => Some(e),
        }
    }
}

/// The ConfigMap holding chunk `k` of the plan published as `name`.
pub fn chunk_map(name: &str, k: u32) -> String {
    format!("{name}-{k}")
}

/// Writes `plan` with chunks of `shards_per_chunk` shards into ConfigMaps `name-<k>` and
/// its header into `name`, in `namespace` (else `POD_NAMESPACE`, else the client's default
/// namespace), leaving their other keys alone. Every value is checked against the
/// ConfigMap size limit before anything is written.
pub async fn publish(
    plan: &Plan,
    name: &str,
    shards_per_chunk: u32,
    namespace: Option<&str>,
) -> Result<(), PublishError> {
    let stored = plan.stored(shards_per_chunk)?;
    let client = kube::Client::try_default().await.map_err(PublishError::Client)?;
    let namespace = namespace
        .map(str::to_owned)
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| client.default_namespace().to_string());
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let chunks = (0..).zip(&stored.chunks).map(|(k, chunk)| (chunk_map(name, k), chunk_key(k), chunk));
    for (map, key, value) in chunks.chain([(name.to_string(), HEADER_KEY.to_string(), &stored.header)]) {
        let patch = serde_json::json!({"data": {key: value}});
        api.patch(&map, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| PublishError::Write { name: map.clone(), source })?;
    }
    Ok(())
}
