//! The pods bound to this node: a watch on them starts, terminates and forgets each pod's
//! task as the pod appears, is deleted and disappears.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Agent;
use super::run::{self, Control};
use super::sandbox::Sandbox;

/// A pod this agent has seen.
enum Entry {
    /// Its task runs (or has just finished) the pod.
    Running { control: watch::Sender<Control>, task: JoinHandle<()> },
    /// The agent has nothing (more) to run for it.
    Done,
}

impl Entry {
    fn is_running(&self) -> bool {
        matches!(self, Entry::Running { task, .. } if !task.is_finished())
    }
}

/// Watches this node's pods until `stop` turns true, then stops every pod's processes.
pub async fn supervise(agent: Arc<Agent>, mut stop: watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let selector = format!("spec.nodeName={}", agent.config.node_name);
    let mut events = watcher::watcher(api, watcher::Config::default().fields(&selector)).default_backoff().boxed();
    let mut pods = Pods { agent, entries: HashMap::new(), listing: None };
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            event = events.next() => match event {
                Some(Ok(event)) => pods.handle(event),
                Some(Err(e)) => tracing::warn!(error = %e, "watching this node's pods failed; retrying"),
                None => break,
            },
        }
    }
    pods.shutdown().await;
}

struct Pods {
    agent: Arc<Agent>,
    entries: HashMap<String, Entry>,
    /// The pods seen since the watch (re)started, until its initial listing is complete.
    listing: Option<HashSet<String>>,
}

impl Pods {
    fn handle(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.listing = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let (Some(listing), Some(uid)) = (&mut self.listing, &pod.metadata.uid) {
                    listing.insert(uid.clone());
                }
                self.apply(pod);
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let vanished: Vec<String> = self.entries.keys().filter(|uid| !listed.contains(*uid)).cloned().collect();
                for uid in vanished {
                    self.forget(&uid);
                }
            }
            Event::Apply(pod) => self.apply(pod),
            Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    self.forget(uid);
                }
            }
        }
    }

    /// Reacts to the current state of a pod bound to this node.
    fn apply(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else { return };
        let deletion = pod.metadata.deletion_timestamp.is_some().then(|| {
            Duration::from_secs(
                pod.metadata.deletion_grace_period_seconds.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            )
        });
        match (self.entries.get(&uid), deletion) {
            (Some(entry @ Entry::Running { control, .. }), Some(grace)) if entry.is_running() => {
                control.send_if_modified(|c| {
                    let terminate = *c == Control::Run;
                    if terminate {
                        *c = Control::Terminate { grace };
                    }
                    terminate
                });
            }
            (Some(_), None) => {}
            // Nothing runs for it (finished, never started here, or a previous agent's):
            // confirm a graceful deletion right away.
            (_, Some(grace)) => {
                self.entries.insert(uid.clone(), Entry::Done);
                if grace > Duration::ZERO {
                    let api = Api::namespaced(
                        self.agent.client.clone(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                    );
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    tokio::spawn(async move { run::confirm_deletion(&api, &name, &uid).await });
                }
            }
            (None, None) => self.start(uid, pod),
        }
    }

    fn start(&mut self, uid: String, pod: Pod) {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            self.entries.insert(uid, Entry::Done);
            return;
        }
        if pod.status.as_ref().is_some_and(|s| s.start_time.is_some()) {
            // Started by an earlier incarnation of this agent: its processes are gone.
            self.entries.insert(uid, Entry::Done);
            let agent = self.agent.clone();
            tokio::spawn(async move { run::fail_lost(&agent, &pod).await });
            return;
        }
        let (control, receiver) = watch::channel(Control::Run);
        let task = tokio::spawn(run::run_pod(self.agent.clone(), pod, receiver));
        self.entries.insert(uid, Entry::Running { control, task });
    }

    /// The pod no longer exists: stop whatever still runs and remove its sandbox.
    fn forget(&mut self, uid: &str) {
        let sandbox = Sandbox::new(&self.agent.config.work_dir, uid);
        match self.entries.remove(uid) {
            Some(Entry::Running { control, task }) => {
                control.send_replace(Control::Abandon);
                tokio::spawn(async move {
                    let _ = task.await;
                    sandbox.remove();
                });
            }
            Some(Entry::Done) | None => sandbox.remove(),
        }
    }

    /// Abandons every running pod and waits for their processes to stop.
    async fn shutdown(self) {
        let mut tasks = Vec::new();
        for entry in self.entries.into_values() {
            if let Entry::Running { control, task } = entry {
                control.send_replace(Control::Abandon);
                tasks.push(task);
            }
        }
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a pod task ended abnormally");
            }
        }
    }
}
