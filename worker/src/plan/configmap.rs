//! Publishing a plan where the shard pods read it: the `plan.json` key of a ConfigMap (the
//! operator creates it empty, owned by the ExrScan, and mounts it into the shards).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

use super::Plan;

/// The ConfigMap key holding the plan.
pub const PLAN_KEY: &str = "plan.json";

/// Writes `plan` into the `plan.json` key of ConfigMap `name` in `namespace` (else
/// `POD_NAMESPACE`, else the client's default namespace), leaving its other keys alone.
pub async fn publish(plan: &Plan, name: &str, namespace: Option<&str>) -> Result<(), kube::Error> {
    let client = kube::Client::try_default().await?;
    let namespace = namespace
        .map(str::to_owned)
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| client.default_namespace().to_string());
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let patch = serde_json::json!({"data": {PLAN_KEY: plan.to_json()}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}
