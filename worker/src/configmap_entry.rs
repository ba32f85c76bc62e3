//! One key of a ConfigMap that a pod keeps up to date for the operator: merge-patched at an
//! interval and once more, retried, when the pod's work ends. Shards report their progress
//! this way ([`crate::shard::progress`]), event consumers their status
//! ([`crate::follow::report`]); a failed patch is logged, never fatal.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Tries of the last patch, when the work ends.
const FINAL_TRIES: u32 = 3;

/// The key `key` of ConfigMap `name`.
pub struct ConfigMapEntry {
    api: Api<ConfigMap>,
    name: String,
    key: String,
}

/// When the first patch is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// At once, then every interval.
    Now,
    /// After one interval.
    AfterInterval,
}

impl ConfigMapEntry {
    /// The entry `key` of ConfigMap `name` in `namespace`, through the in-cluster (or
    /// `KUBECONFIG`) client.
    pub async fn new(namespace: &str, name: String, key: String) -> Result<Self, kube::Error> {
        let client = kube::Client::try_default().await?;
        Ok(Self { api: Api::namespaced(client, namespace), name, key })
    }

    /// Merge-patches the key with `value`.
    pub async fn patch(&self, value: String) -> Result<(), kube::Error> {
        let patch = serde_json::json!({"data": {&self.key: value}});
        self.api.patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    }

    /// Patches the key with `value()` every `every` (the first time as `first` says) until
    /// [`Updater::finish`], then once more (retried); failures are logged as "could not
    /// report `what`".
    pub fn start(
        self,
        every: Duration,
        first: First,
        what: &'static str,
        value: impl Fn() -> String + Send + 'static,
    ) -> Updater {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut wait = first == First::AfterInterval;
            loop {
                if wait {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
                wait = true;
                if let Err(error) = self.patch(value()).await {
                    tracing::warn!(%error, configmap = %self.name, "could not report {what}");
                }
            }
            for attempt in 1..=FINAL_TRIES {
                match self.patch(value()).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(%error, configmap = %self.name, attempt, "could not report the final counts");
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    }
                }
            }
        });
        Updater { stop, task }
    }
}

/// A running updater; [`Updater::finish`] makes a last patch and stops it.
pub struct Updater {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Updater {
    /// Stops after one last patch.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
