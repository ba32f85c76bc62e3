//! Wiring of the kube-runtime Controllers: one per watched namespace (or one for all), each
//! watching ExrScans and triggered by the Jobs and ConfigMaps they own and by the pods of
//! their runs (progress annotations, terminations). Only ExrScans are cached; Jobs, pods and
//! ConfigMaps pass through as triggers and are read on demand, so memory stays flat with the
//! number of scans.

use std::sync::Arc;

use exrscan_crds::ExrScan;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::controller::{Config, Controller, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::names;
use crate::reconcile::{self, Context};

/// Where the controllers look.
pub enum Scope {
    /// Every namespace.
    All,
    /// These namespaces.
    Namespaces(Vec<String>),
}

/// Runs the controllers until `shutdown` resolves (then lets running reconciles finish).
pub async fn run(
    client: Client,
    scope: Scope,
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let apis: Vec<Option<String>> = match scope {
        Scope::All => vec![None],
        Scope::Namespaces(ns) => ns.into_iter().map(Some).collect(),
    };
    let owned = watcher::Config::default().labels(&format!("{}={}", names::MANAGED_BY_LABEL, names::MANAGER));
    let controllers = apis.into_iter().map(|ns| {
        let scans: Api<ExrScan> = scoped(&client, ns.as_deref());
        let jobs: Api<Job> = scoped(&client, ns.as_deref());
        let cms: Api<ConfigMap> = scoped(&client, ns.as_deref());
        let pods: Api<Pod> = scoped(&client, ns.as_deref());
        let controller = Controller::new(scans, watcher::Config::default().any_semantic())
            .with_config(Config::default().concurrency(concurrency))
            .owns(jobs, owned.clone())
            .owns(cms, owned.clone())
            .watches(pods, owned.clone(), scan_of_pod)
            .graceful_shutdown_on(shutdown.clone());
        ctx.metrics.watch_store(controller.store());
        controller.run(reconcile::reconcile, reconcile::error_policy, ctx.clone()).for_each(|result| async move {
            match result {
                // A watch that fails (e.g. 403 listing pods) leaves the operator blind: say so.
                Err(error @ (ControllerError::QueueError(_) | ControllerError::RunnerError(_))) => {
                    tracing::warn!(%error, "watching failed; retrying")
                }
                // Failed reconciles are logged by the error policy; vanished objects are normal.
                Err(error) => tracing::debug!(%error, "controller event"),
                Ok(_) => {}
            }
        })
    });
    futures::future::join_all(controllers).await;
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The ExrScan a pod works for (from its `exrscan.dev/scan` label).
fn scan_of_pod(pod: Pod) -> Option<ObjectRef<ExrScan>> {
    let scan = pod.labels().get(names::SCAN_LABEL)?;
    Some(ObjectRef::new(scan).within(&pod.namespace()?))
}
