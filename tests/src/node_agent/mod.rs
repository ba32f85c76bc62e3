//! A stand-in kubelet for tests: it registers a Node, binds unscheduled pods to it (no
//! kube-scheduler runs in the test control plane) and runs each pod's containers as
//! **local processes**, writing their lifecycle back to the pod's status the way a kubelet
//! does, so that Jobs really run, complete and fail.
//!
//! # What a container becomes
//! - **Program**: `command[0]` is resolved through `--map NAME=PATH` (matching the name or
//!   its file name), then as a path inside a volume mount (a script from a ConfigMap),
//!   then as an existing absolute path, then by file name on `PATH`. A container without a
//!   `command` runs the program of the first `--image PATTERN=PATH` whose pattern occurs in
//!   its image reference, with `args` as arguments. `$(VAR)` references in `command`,
//!   `args` and env values are expanded as the kubelet does. A container whose program
//!   cannot be found terminates with exit code 128 (`StartError`) and its pod fails.
//!   The process starts in its `workingDir` when that lies in a mount, else in the
//!   sandbox's `home/`.
//! - **Environment**: only what the pod defines, plus `PATH` (the agent's), `HOSTNAME`,
//!   `HOME` (a directory in the sandbox), `KUBERNETES_SERVICE_HOST`/`_PORT` (the API
//!   server on loopback) and `EXRSCAN_TERMINATION_LOG`. Literal values, `fieldRef`
//!   (`metadata.name`, `.namespace`, `.uid`, `.labels['…']`, `.annotations['…']` — where an
//!   Indexed Job's completion index arrives — `spec.nodeName`, `spec.serviceAccountName`,
//!   `status.podIP`/`hostIP` = `127.0.0.1`), `secretKeyRef`, `configMapKeyRef` and
//!   `envFrom` are supported; a missing Secret or ConfigMap keeps the pod `Pending`
//!   (`CreateContainerConfigError`) and is retried, as the kubelet does.
//! - **Volumes**: each pod gets a sandbox directory `<work-dir>/pods/<pod uid>/`.
//!   `configMap`, `secret`, `downwardAPI` and `projected` volumes (including
//!   `serviceAccountToken`, requested through the TokenRequest API) are written as files to
//!   `volumes/<volume>/`; `emptyDir` is an empty directory there; `hostPath` is the host
//!   path itself; a `persistentVolumeClaim` is `<work-dir>/claims/<namespace>/<claim>/`,
//!   which outlives its pods.
//!
//! # Path mapping
//! A process cannot mount, so container paths are mapped instead: every `mountPath`
//! (plus `subPath`) maps to its host directory, and the `terminationMessagePath` (default
//! `/dev/termination-log`) maps to `containers/<container>/termination-log` in the sandbox.
//! Wherever one of those container paths occurs in an argument or env value — on its own,
//! after `--flag=`, after a URI scheme's `://` (`duckdb:///path`), or inside a shell
//! script — at a path boundary (it is not part of a
//! longer name and is followed by `/` or a non-name character), it is rewritten to the host
//! path, longest mount first. So `sh -c 'cat /etc/creds/key > /dev/termination-log'` reads
//! and writes sandbox files. `EXRSCAN_TERMINATION_LOG` names the mapped termination-log file
//! for programs that honour it. Paths hard-coded inside a program are not rewritten; the
//! in-cluster service-account files therefore come as a kubeconfig: when a container mounts
//! a service-account token, `KUBECONFIG` points to one that uses it.
//!
//! # Status
//! `Pending` → `Running` (startTime, podIP `127.0.0.1`, running container states, Ready
//! conditions) → `Succeeded`/`Failed` with each container's `terminated` state: the exact
//! exit code (128 + signal for a signalled process), reason `Completed`/`Error`, the
//! termination-log file's last 4096 bytes as message (or the log's tail with
//! `FallbackToLogsOnError`), start and finish times. Restart policy `Never` is what Jobs
//! use; `OnFailure` and `Always` restart the process in place and count `restartCount`.
//! A pod being deleted gets SIGTERM on its process group, SIGKILL after its grace period
//! (capped by `--max-grace-period`), its final status, and then its deletion is confirmed
//! with grace period 0. Each pod's stdout and stderr go to `<work-dir>/<namespace>_<pod>.log`.
//!
//! Not supported (the pod fails, saying so): init containers, `resourceFieldRef`, volume
//! types other than the ones above. Probes, resource limits and `activeDeadlineSeconds` of
//! pods are ignored; the Node's capacity is advertised, not enforced.

mod bind;
mod container;
mod executable;
mod lookup;
mod node;
mod pod_env;
mod pods;
mod run;
mod sandbox;
mod status;
mod volumes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

pub use executable::Executables;
pub use node::Capacity;

/// Why the agent (or one operation on a pod) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    /// A request to the API server failed.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The pod refers to a Secret, ConfigMap or key that does not exist (yet); retried.
    #[error("{0}")]
    MissingReference(String),
    /// The pod asks for something this agent cannot do; the pod fails.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// What the agent is told on its command line.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The kubeconfig the agent uses (and whose cluster entry pods get).
    pub kubeconfig: PathBuf,
    /// The Node's name.
    pub node_name: String,
    /// Where pod sandboxes, claims and pod logs go.
    pub work_dir: PathBuf,
    /// How containers' programs are found.
    pub executables: Executables,
    /// What the Node advertises.
    pub capacity: Capacity,
    /// The longest a deleted pod's processes get between SIGTERM and SIGKILL.
    pub max_grace_period: Duration,
}

/// The API server as pods see it: its address and the kubeconfig cluster entry that
/// trusts it, for the kubeconfig given to containers that mount a service-account token.
#[derive(Debug, Clone)]
struct ApiServer {
    host: String,
    port: u16,
    cluster: serde_json::Value,
}

/// What every part of a running agent shares.
struct Agent {
    client: kube::Client,
    config: AgentConfig,
    api_server: ApiServer,
}

/// Connects to the API server, registers the Node and runs pods until `shutdown` resolves;
/// then stops every pod's processes, marks the Node not ready and returns.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let agent = Arc::new(connect(config).await?);
    std::fs::create_dir_all(&agent.config.work_dir)
        .map_err(|e| Error::io(format!("creating {}", agent.config.work_dir.display()), e))?;
    node::register(&agent).await?;
    let heartbeat = tokio::spawn(node::heartbeat(agent.clone()));
    let binder = tokio::spawn(bind::bind_unscheduled(agent.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let supervisor = tokio::spawn(pods::supervise(agent.clone(), stop_rx));
    shutdown.await;
    tracing::info!("stopping: terminating all pods");
    binder.abort();
    heartbeat.abort();
    let _ = stop_tx.send(true);
    if let Err(e) = supervisor.await {
        tracing::error!(error = %e, "pod supervisor ended abnormally");
    }
    node::mark_stopped(&agent).await;
    Ok(())
}

async fn connect(config: AgentConfig) -> Result<Agent, Error> {
    let kubeconfig_error = |reason: String| Error::Kubeconfig { path: config.kubeconfig.clone(), reason };
    let kubeconfig = Kubeconfig::read_from(&config.kubeconfig).map_err(|e| kubeconfig_error(e.to_string()))?;
    let cluster =
        current_cluster(&kubeconfig).ok_or_else(|| kubeconfig_error("no cluster for its current context".into()))?;
    let client_config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| kubeconfig_error(e.to_string()))?;
    let url = &client_config.cluster_url;
    let api_server = ApiServer {
        host: url.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_string(),
        port: url.port_u16().unwrap_or(443),
        cluster,
    };
    let client = kube::Client::try_from(client_config)?;
    Ok(Agent { client, config, api_server })
}

/// The cluster entry (as kubeconfig JSON) of the kubeconfig's current context.
fn current_cluster(kubeconfig: &Kubeconfig) -> Option<serde_json::Value> {
    let context_name = kubeconfig.current_context.as_deref()?;
    let context = kubeconfig.contexts.iter().find(|c| c.name == context_name)?.context.as_ref()?;
    let cluster = kubeconfig.clusters.iter().find(|c| c.name == context.cluster)?.cluster.as_ref()?;
    serde_json::to_value(cluster).ok()
}
