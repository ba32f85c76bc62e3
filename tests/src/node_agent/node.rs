//! The Node object: registered Ready with its capacity, kept alive by heartbeats, and
//! marked not ready when the agent stops.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::status::POD_IP;
use super::{Agent, Error};

/// How often the Ready condition's heartbeat time is renewed.
const HEARTBEAT: Duration = Duration::from_secs(10);
const FIELD_MANAGER: &str = "exrscan-node-agent";

/// What the Node advertises as capacity and allocatable (not enforced).
#[derive(Debug, Clone)]
pub struct Capacity {
    /// CPU cores, as a Kubernetes quantity (`"2"`).
    pub cpu: String,
    /// Memory, as a Kubernetes quantity (`"24Gi"`).
    pub memory: String,
    /// The most pods the Node takes.
    pub pods: u32,
}

impl Capacity {
    /// This machine's cores and memory, and 110 pods (the kubelet's default).
    pub fn of_this_machine() -> Self {
        let cpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .unwrap_or(4 * 1024 * 1024);
        Self { cpu: cpu.to_string(), memory: format!("{memory_kib}Ki"), pods: 110 }
    }
}

/// The labels of the Node named `node` (what `nodeSelector`s match).
pub fn labels(node: &str) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", node),
        ("kubernetes.io/os", std::env::consts::OS),
        ("kubernetes.io/arch", go_arch()),
        ("node.exrscan.dev/agent", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Creates or updates the Node, Ready and untainted.
pub async fn register(agent: &Agent) -> Result<(), Error> {
    let name = &agent.config.node_name;
    let nodes: Api<Node> = Api::all(agent.client.clone());
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels(name) },
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    nodes.patch(name, &params, &Patch::Apply(&node)).await?;
    // The API server taints new Nodes not-ready; the node lifecycle controller, which does
    // not run here, would lift that taint once the Node is Ready.
    nodes.patch(name, &PatchParams::default(), &Patch::Merge(json!({ "spec": { "taints": null } }))).await?;

    let capacity = &agent.config.capacity;
    let resources = json!({ "cpu": capacity.cpu, "memory": capacity.memory, "pods": capacity.pods.to_string() });
    let now = Time(Timestamp::now());
    let pressure = |kind: &str, reason: &str| json!({ "type": kind, "status": "False", "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now });
    let status = json!({
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [{ "type": "InternalIP", "address": POD_IP }, { "type": "Hostname", "address": name }],
            "conditions": [
                ready("True", "KubeletReady", "exrscan-node-agent is running pods as local processes"),
                pressure("MemoryPressure", "KubeletHasSufficientMemory"),
                pressure("DiskPressure", "KubeletHasNoDiskPressure"),
                pressure("PIDPressure", "KubeletHasSufficientPID"),
            ],
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "", "osImage": "exrscan-node-agent",
                "containerRuntimeVersion": "process://",
                "kubeletVersion": concat!("exrscan-node-agent/", env!("CARGO_PKG_VERSION")),
                "kubeProxyVersion": "",
                "operatingSystem": std::env::consts::OS,
                "architecture": go_arch(),
            },
        },
    });
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    tracing::info!(node = name, "node registered and ready");
    Ok(())
}

/// Renews the Ready condition's heartbeat until the task is aborted.
pub async fn heartbeat(agent: std::sync::Arc<Agent>) {
    let nodes: Api<Node> = Api::all(agent.client.clone());
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let patch =
            json!({ "status": { "conditions": [{ "type": "Ready", "lastHeartbeatTime": Time(Timestamp::now()) }] } });
        if let Err(e) =
            nodes.patch_status(&agent.config.node_name, &PatchParams::default(), &Patch::Strategic(&patch)).await
        {
            tracing::warn!(error = %e, "node heartbeat failed");
        }
    }
}

/// Marks the Node not ready (best effort, briefly), as it stops running pods.
pub async fn mark_stopped(agent: &Agent) {
    let nodes: Api<Node> = Api::all(agent.client.clone());
    let patch =
        json!({ "status": { "conditions": [ready("Unknown", "NodeAgentStopped", "exrscan-node-agent stopped")] } });
    let (params, patch) = (PatchParams::default(), Patch::Strategic(&patch));
    let update = nodes.patch_status(&agent.config.node_name, &params, &patch);
    match tokio::time::timeout(Duration::from_secs(2), update).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not mark the node stopped"),
        Err(_) => tracing::warn!("marking the node stopped timed out"),
    }
}

fn ready(status: &str, reason: &str, message: &str) -> serde_json::Value {
    let now = Time(Timestamp::now());
    json!({ "type": "Ready", "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now })
}

/// This machine's architecture as Kubernetes (Go) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
