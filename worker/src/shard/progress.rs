//! Progress the operator can read while a shard runs: the counts so far, as JSON in the
//! annotation `exrscan.dev/progress` of the shard's own Pod, patched at an interval.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::report::progress_json;
use crate::scan::Tally;

/// The annotation holding a shard's progress.
pub const ANNOTATION: &str = "exrscan.dev/progress";

/// The shard's own Pod, found from `POD_NAME` and `POD_NAMESPACE`.
#[derive(Clone)]
pub struct PodProgress {
    api: Api<Pod>,
    name: String,
}

impl PodProgress {
    /// The Pod named by `POD_NAME` in `POD_NAMESPACE`, through the in-cluster (or
    /// `KUBECONFIG`) client; `None` when those variables are not set (outside a cluster).
    pub async fn from_env() -> Result<Option<Self>, kube::Error> {
        let (Ok(name), Ok(namespace)) = (std::env::var("POD_NAME"), std::env::var("POD_NAMESPACE")) else {
            return Ok(None);
        };
        let client = kube::Client::try_default().await?;
        Ok(Some(Self { api: Api::namespaced(client, &namespace), name }))
    }

    /// Patches the annotation with the counts of `tally`.
    pub async fn patch(&self, tally: &Tally) -> Result<(), kube::Error> {
        let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION: progress_json(tally.counts())}}});
        self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    }

    /// Patches every `every` until stopped; a failed patch is logged, never fatal.
    pub fn start(self, tally: Arc<Tally>, every: Duration) -> Patcher {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(error) = self.patch(&tally).await {
                    tracing::warn!(%error, "could not patch the progress annotation");
                }
            }
            // The final counts, so that the annotation agrees with the summary.
            if let Err(error) = self.patch(&tally).await {
                tracing::warn!(%error, "could not patch the progress annotation");
            }
        });
        Patcher { stop, task }
    }
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
