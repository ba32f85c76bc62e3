//! Wiring of the kube-runtime Controllers: one per watched namespace (or one for all), each
//! watching ExrScans and triggered by the Jobs and plan ConfigMaps they own. Only ExrScans
//! are cached; Jobs and ConfigMaps are watched as metadata only (a trigger needs no more)
//! and read on demand, so memory and watch traffic stay flat with the number of shards.
//! Pods are not watched: every change of a run's pods that matters shows in its Job's
//! status, and what does not (a pod that cannot start, an old run's pod stopping) is seen
//! on the next requeue. Progress ConfigMaps, and the map the event consumers of
//! `spec.events` report to, are not watched either: their pods write them every few
//! seconds, and such a scan is re-read at its pace anyway (see `pace`).

use std::sync::Arc;

use exrscan_crds::ExrScan;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::{Config, Controller, Error as ControllerError};
use kube::runtime::watcher;
use kube::{Api, Client};

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
    let managed = format!("{}={}", names::MANAGED_BY_LABEL, names::MANAGER);
    let owned = watcher::Config::default().labels(&managed);
    // Plan headers only: not plan chunks, the runs' progress maps, nor the event consumers' map
    // (a plan is there once its header is written).
    let plans = watcher::Config::default().labels(&format!(
        "{managed},{} notin ({},{},{})",
        names::COMPONENT_LABEL,
        names::PROGRESS_COMPONENT,
        names::PLAN_CHUNK_COMPONENT,
        names::Component::Follow.as_str()
    ));
    let controllers = apis.into_iter().map(|ns| {
        let scans: Api<ExrScan> = scoped(&client, ns.as_deref());
        let jobs: Api<Job> = scoped(&client, ns.as_deref());
        let cms: Api<ConfigMap> = scoped(&client, ns.as_deref());
        let controller = Controller::new(scans, watcher::Config::default().any_semantic())
            .with_config(Config::default().concurrency(concurrency))
            .owns(jobs, owned.clone())
            .owns(cms, plans.clone())
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
