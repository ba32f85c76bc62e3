//! Scheduling, reduced to what tests need: no kube-scheduler runs, so the agent binds every
//! unscheduled pod of the default scheduler whose `nodeSelector` its Node matches.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use super::{Agent, node};

/// Binds unscheduled pods to this node, forever (the task is aborted on shutdown).
pub async fn bind_unscheduled(agent: Arc<Agent>) {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let selector = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed";
    let mut events = watcher::watcher(api, watcher::Config::default().fields(selector)).default_backoff().boxed();
    let labels = node::labels(&agent.config.node_name);
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) if wants_this_node(&pod, &labels) => bind(&agent, &pod).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "watching unscheduled pods failed; retrying"),
        }
    }
}

fn wants_this_node(pod: &Pod, labels: &BTreeMap<String, String>) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let default_scheduler = spec.scheduler_name.as_deref().is_none_or(|s| s == "default-scheduler");
    let selected = spec.node_selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    pod.metadata.deletion_timestamp.is_none() && spec.node_name.is_none() && default_scheduler && selected
}

async fn bind(agent: &Agent, pod: &Pod) {
    let (Some(name), Some(namespace)) = (&pod.metadata.name, &pod.metadata.namespace) else { return };
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            api_version: Some("v1".into()),
            name: Some(agent.config.node_name.clone()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(agent.client.clone(), namespace);
    match api.create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding).await {
        Ok(_) => tracing::info!(pod = name, namespace, node = agent.config.node_name, "pod bound"),
        // Bound meanwhile (by another agent) or gone: nothing to do.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
            tracing::debug!(pod = name, reason = e.message, "pod not bound")
        }
        Err(e) => tracing::warn!(pod = name, namespace, error = %e, "binding a pod failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(spec: PodSpec) -> Pod {
        Pod { spec: Some(spec), ..Pod::default() }
    }

    #[test]
    fn binds_default_scheduler_pods_whose_selector_matches() {
        let labels = node::labels("n1");
        assert!(wants_this_node(&pod(PodSpec::default()), &labels));
        let selected = PodSpec {
            node_selector: Some([("kubernetes.io/hostname".to_string(), "n1".to_string())].into()),
            ..PodSpec::default()
        };
        assert!(wants_this_node(&pod(selected), &labels));
        let elsewhere = PodSpec {
            node_selector: Some([("kubernetes.io/hostname".to_string(), "n2".to_string())].into()),
            ..PodSpec::default()
        };
        assert!(!wants_this_node(&pod(elsewhere), &labels));
        let other_scheduler = PodSpec { scheduler_name: Some("volcano".into()), ..PodSpec::default() };
        assert!(!wants_this_node(&pod(other_scheduler), &labels));
    }
}
