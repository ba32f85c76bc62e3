//! One pod's lifecycle on this node: sandbox and launch preparation (retried while a
//! referenced object is missing), its containers, status updates, and termination when
//! the pod is deleted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};
use tokio::sync::{mpsc, watch};

use super::container::{self, Launch, RestartPolicy};
use super::lookup::PodObjects;
use super::pod_env::{self, Env};
use super::sandbox::{PathMap, Sandbox};
use super::status::{self, PodReport, State, Termination};
use super::volumes::{self, Volumes};
use super::{Agent, Error};

/// How long containers get to stop when the agent abandons a pod (agent shutdown, pod gone).
const ABANDON_GRACE: Duration = Duration::from_secs(2);
/// The first and the longest wait before preparing a pod again.
const PREPARE_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// What the supervisor wants from a pod's task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    /// Keep the pod running.
    Run,
    /// The pod is being deleted: stop it within `grace`, report, confirm the deletion.
    Terminate { grace: Duration },
    /// Stop the processes without reporting (the pod is gone or the agent is stopping).
    Abandon,
}

/// Identity of the pod a task runs.
struct PodRef {
    api: Api<Pod>,
    name: String,
    uid: String,
}

impl PodRef {
    async fn write(&self, report: &mut PodReport) {
        if let Err(e) = status::write(&self.api, &self.name, &self.uid, &report.status()).await {
            tracing::warn!(pod = self.name, error = %e, "could not write pod status");
        }
    }

    /// Confirms the pod's deletion (grace period 0), as the kubelet does once it has stopped.
    async fn confirm_deletion(&self) {
        confirm_deletion(&self.api, &self.name, &self.uid).await;
    }
}

/// Deletes a pod immediately, if it is still the one with `uid`.
pub async fn confirm_deletion(api: &Api<Pod>, name: &str, uid: &str) {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => tracing::info!(pod = name, "pod deleted"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = name, error = %e, "could not confirm a pod's deletion"),
    }
}

/// Runs `pod` until it is done, deleted or abandoned.
pub async fn run_pod(agent: Arc<Agent>, pod: Pod, mut control: watch::Receiver<Control>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_ref = PodRef {
        api: Api::namespaced(agent.client.clone(), &namespace),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    };
    let sandbox = Sandbox::new(&agent.config.work_dir, &pod_ref.uid);
    let mut report = PodReport::new(&pod);
    tracing::info!(pod = pod_ref.name, namespace, "starting pod");

    let mut backoff = PREPARE_BACKOFF.0;
    let launches = loop {
        match prepare(&agent, &pod, &sandbox).await {
            Ok(launches) => break launches,
            Err(Error::Unsupported(reason)) => {
                tracing::warn!(pod = pod_ref.name, %reason, "pod cannot run here");
                fail_unstarted(&mut report, &reason);
                pod_ref.write(&mut report).await;
                return;
            }
            Err(e) => {
                tracing::info!(pod = pod_ref.name, error = %e, "pod not ready to start, retrying");
                for c in &mut report.containers {
                    c.state =
                        State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(e.to_string()) };
                }
                pod_ref.write(&mut report).await;
                tokio::select! {
                    () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(PREPARE_BACKOFF.1),
                    next = async { control.wait_for(|c| *c != Control::Run).await.map(|c| *c) } => {
                        if matches!(next, Ok(Control::Terminate { .. })) {
                            pod_ref.confirm_deletion().await;
                        }
                        return;
                    }
                }
            }
        }
    };

    report.sandbox_ready = true;
    report.start_time = Some(Timestamp::now());
    let (updates_tx, mut updates) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(None);
    let tasks: Vec<_> = launches
        .into_iter()
        .enumerate()
        .map(|(index, launch)| tokio::spawn(container::run(index, launch, updates_tx.clone(), stop_rx.clone())))
        .collect();
    drop(updates_tx);

    let max_grace = agent.config.max_grace_period;
    let (mut deleting, mut abandoned, mut control_open) = (false, false, true);
    loop {
        tokio::select! {
            update = updates.recv() => {
                let Some(update) = update else { break };
                if let Some(c) = report.containers.get_mut(update.index) {
                    c.state = update.state;
                    c.last_termination = update.last_termination;
                    c.restart_count = update.restart_count;
                    c.pid = update.pid;
                }
                if !abandoned {
                    pod_ref.write(&mut report).await;
                }
            }
            changed = control.changed(), if control_open => {
                let next = if changed.is_ok() { *control.borrow_and_update() } else { Control::Abandon };
                control_open = changed.is_ok();
                match next {
                    Control::Run => {}
                    Control::Terminate { grace } => {
                        deleting = true;
                        stop_tx.send_replace(Some(grace.min(max_grace)));
                    }
                    Control::Abandon => {
                        abandoned = true;
                        control_open = false;
                        stop_tx.send_replace(Some(ABANDON_GRACE));
                    }
                }
            }
        }
    }
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(pod = pod_ref.name, error = %e, "a container task ended abnormally");
        }
    }
    tracing::info!(pod = pod_ref.name, phase = ?report.phase(), "pod finished");
    if deleting && !abandoned {
        pod_ref.confirm_deletion().await;
    }
}

/// Reports a pod whose processes a previous agent ran and this one cannot find, as the
/// kubelet reports containers it lost.
pub async fn fail_lost(agent: &Agent, pod: &Pod) {
    let pod_ref = PodRef {
        api: Api::namespaced(agent.client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    };
    let mut report = PodReport::new(pod);
    report.start_time = Some(Timestamp::now());
    for c in &mut report.containers {
        c.state = State::Terminated(Termination {
            exit_code: 137,
            signal: None,
            reason: "ContainerStatusUnknown".into(),
            message: Some("the node agent restarted and lost this container's process".into()),
            started_at: None,
            finished_at: Timestamp::now(),
        });
    }
    pod_ref.write(&mut report).await;
}

/// Marks every container as failed to start, which fails the pod.
fn fail_unstarted(report: &mut PodReport, reason: &str) {
    report.message = Some(format!("exrscan-node-agent: {reason}"));
    for c in &mut report.containers {
        c.state = State::Terminated(Termination {
            exit_code: 128,
            signal: None,
            reason: "StartError".into(),
            message: Some(reason.to_string()),
            started_at: None,
            finished_at: Timestamp::now(),
        });
    }
}

/// Creates the sandbox and volumes and works out each container's launch.
async fn prepare(agent: &Agent, pod: &Pod, sandbox: &Sandbox) -> Result<Vec<Launch>, Error> {
    let spec = pod.spec.as_ref().ok_or_else(|| Error::Unsupported("the pod has no spec".into()))?;
    if spec.init_containers.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(Error::Unsupported("init containers are not supported by the test node agent".into()));
    }
    sandbox.create()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut objects = PodObjects::new(agent.client.clone(), namespace);
    let volumes = volumes::materialise(&agent.client, &agent.config.work_dir, pod, sandbox, &mut objects).await?;
    let restart = RestartPolicy::from_spec(spec.restart_policy.as_deref());
    let mut launches = Vec::with_capacity(spec.containers.len());
    for container in &spec.containers {
        launches.push(launch(agent, pod, container, sandbox, &volumes, &mut objects, restart).await?);
    }
    Ok(launches)
}

async fn launch(
    agent: &Agent,
    pod: &Pod,
    container: &Container,
    sandbox: &Sandbox,
    volumes: &Volumes,
    objects: &mut PodObjects,
    restart: RestartPolicy,
) -> Result<Launch, Error> {
    let mut paths = PathMap::default();
    let mut kubeconfig = None;
    for mount in container.volume_mounts.iter().flatten() {
        if mount.sub_path_expr.as_deref().is_some_and(|e| !e.is_empty()) {
            return Err(Error::Unsupported(format!(
                "volume mount {:?}: subPathExpr is not supported",
                mount.mount_path
            )));
        }
        let dir = volumes.dir(&mount.name).ok_or_else(|| {
            Error::Unsupported(format!("volume mount {:?} names no volume of the pod", mount.mount_path))
        })?;
        let host = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
            Some(sub) if Path::new(sub).components().all(|c| matches!(c, std::path::Component::Normal(_))) => {
                dir.join(sub)
            }
            Some(sub) => return Err(Error::Unsupported(format!("subPath {sub:?} must stay inside its volume"))),
            None => dir.to_path_buf(),
        };
        if !host.exists() {
            std::fs::create_dir_all(&host).map_err(|e| Error::io(format!("creating {}", host.display()), e))?;
        }
        paths.insert(&mount.mount_path, host)?;
        if let (None, Some(token)) = (&kubeconfig, volumes.token(&mount.name)) {
            kubeconfig = Some(write_kubeconfig(agent, pod, &sandbox.kubeconfig(&mount.name), token)?);
        }
    }
    let termination_log = sandbox.termination_log(&container.name);
    if let Some(dir) = termination_log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    paths.insert(
        container.termination_message_path.as_deref().unwrap_or("/dev/termination-log"),
        termination_log.clone(),
    )?;

    let mut env = Env::default();
    if let Some(path) = &agent.config.executables.search_path {
        env.set("PATH", path.to_string_lossy());
    }
    env.set("HOSTNAME", pod.metadata.name.clone().unwrap_or_default());
    env.set("HOME", sandbox.home().to_string_lossy());
    env.set("KUBERNETES_SERVICE_HOST", agent.api_server.host.clone());
    env.set("KUBERNETES_SERVICE_PORT", agent.api_server.port.to_string());
    env.set("EXRSCAN_TERMINATION_LOG", termination_log.to_string_lossy());
    if let Some(kubeconfig) = &kubeconfig {
        env.set("KUBECONFIG", kubeconfig.to_string_lossy());
    }
    pod_env::resolve(&mut env, pod, container, objects, &paths).await?;

    let expand = |s: &String| pod_env::expand(&paths.rewrite(s), |name| env.get(name).map(str::to_string));
    let command: Vec<String> = container.command.iter().flatten().map(expand).collect();
    let args = container.args.iter().flatten().map(expand);
    let executables = &agent.config.executables;
    let (program, args) = match command.split_first() {
        Some((first, rest)) => (
            executables.for_command(first, &paths).ok_or_else(|| {
                format!("no program for command {first:?}: not mapped with --map, not in a volume, not on PATH")
            }),
            rest.iter().cloned().chain(args).collect(),
        ),
        None => {
            let image = container.image.as_deref().unwrap_or_default();
            (
                executables.for_image(image).ok_or_else(|| {
                    format!(
                        "container {:?} has no command and its image {image:?} matches no --image mapping",
                        container.name
                    )
                }),
                args.collect(),
            )
        }
    };
    let cwd = container.working_dir.as_deref().and_then(|dir| paths.host_path(dir)).unwrap_or_else(|| sandbox.home());
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    Ok(Launch {
        name: container.name.clone(),
        program,
        args,
        env,
        cwd,
        termination_log,
        fallback_to_logs: container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
        log: agent.config.work_dir.join(format!("{namespace}_{name}.log")),
        restart,
    })
}

/// A kubeconfig that reaches the API server with the pod's service-account token file, in
/// the pod's namespace: how in-cluster clients find their credentials here.
fn write_kubeconfig(agent: &Agent, pod: &Pod, path: &Path, token: &Path) -> Result<std::path::PathBuf, Error> {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "cluster", "cluster": agent.api_server.cluster }],
        "users": [{ "name": "service-account", "user": { "tokenFile": token } }],
        "contexts": [{ "name": "pod", "context": {
            "cluster": "cluster",
            "user": "service-account",
            "namespace": pod.metadata.namespace.as_deref().unwrap_or("default"),
        }}],
        "current-context": "pod",
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::write(path, kubeconfig.to_string()).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(path.to_path_buf())
}
