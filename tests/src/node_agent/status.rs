//! What the agent reports in a pod's status, and writing it.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::Error;

/// The address every pod of this agent has.
pub const POD_IP: &str = "127.0.0.1";

/// How a container ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Termination {
    /// The exit code; 128 + the signal number for a signalled process.
    pub exit_code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// `Completed`, `Error` or `StartError`.
    pub reason: String,
    /// The termination message.
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
}

/// A container's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Termination),
}

/// What is known about one container.
#[derive(Debug, Clone)]
pub struct ContainerReport {
    pub name: String,
    pub image: String,
    pub state: State,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    /// The process id of the current or last process.
    pub pid: Option<u32>,
}

/// The pod phase the agent derives from its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    /// Whether the pod is done for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// The state of a whole pod, turned into `PodStatus` on every change.
#[derive(Debug)]
pub struct PodReport {
    pub containers: Vec<ContainerReport>,
    /// When the agent started the pod's containers.
    pub start_time: Option<Timestamp>,
    /// Whether the sandbox (volumes, files) is ready.
    pub sandbox_ready: bool,
    /// A pod-level explanation, set when the pod fails before its containers can run.
    pub message: Option<String>,
    /// Condition type → (status, when it last changed).
    transitions: HashMap<&'static str, (bool, Timestamp)>,
}

impl PodReport {
    /// A report with every container of `pod` waiting in `ContainerCreating`.
    pub fn new(pod: &Pod) -> Self {
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| ContainerReport {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                state: State::Waiting { reason: "ContainerCreating".into(), message: None },
                last_termination: None,
                restart_count: 0,
                pid: None,
            })
            .collect();
        Self { containers, start_time: None, sandbox_ready: false, message: None, transitions: HashMap::new() }
    }

    /// The pod's phase: terminal once every container has terminated for good.
    pub fn phase(&self) -> Phase {
        let terminations: Option<Vec<&Termination>> = self
            .containers
            .iter()
            .map(|c| match &c.state {
                State::Terminated(t) => Some(t),
                _ => None,
            })
            .collect();
        match terminations {
            Some(t) if t.iter().all(|t| t.exit_code == 0) => Phase::Succeeded,
            Some(_) => Phase::Failed,
            None if self.start_time.is_none() => Phase::Pending,
            None => Phase::Running,
        }
    }

    /// The pod status to write now.
    pub fn status(&mut self) -> PodStatus {
        let now = Timestamp::now();
        let phase = self.phase();
        let all_running =
            !self.containers.is_empty() && self.containers.iter().all(|c| matches!(c.state, State::Running { .. }));
        let not_ready_reason = if phase.is_terminal() { "PodCompleted" } else { "ContainersNotReady" };
        let conditions = [
            ("PodReadyToStartContainers", self.sandbox_ready, None),
            ("Initialized", true, None),
            ("ContainersReady", all_running, Some(not_ready_reason)),
            ("Ready", all_running, Some(not_ready_reason)),
        ]
        .into_iter()
        .map(|(kind, value, reason_if_false)| {
            let since = match self.transitions.get(kind) {
                Some(&(previous, since)) if previous == value => since,
                _ => {
                    self.transitions.insert(kind, (value, now));
                    now
                }
            };
            PodCondition {
                type_: kind.to_string(),
                status: if value { "True" } else { "False" }.to_string(),
                reason: if value { None } else { reason_if_false.map(str::to_string) },
                last_transition_time: Some(Time(since)),
                ..PodCondition::default()
            }
        })
        .collect();
        PodStatus {
            phase: Some(phase.as_str().to_string()),
            message: self.message.clone(),
            start_time: self.start_time.map(Time),
            host_ip: Some(POD_IP.into()),
            host_ips: Some(vec![HostIP { ip: POD_IP.into() }]),
            pod_ip: Some(POD_IP.into()),
            pod_ips: Some(vec![PodIP { ip: POD_IP.into() }]),
            conditions: Some(conditions),
            container_statuses: Some(self.containers.iter().map(container_status).collect()),
            ..PodStatus::default()
        }
    }
}

fn container_status(c: &ContainerReport) -> ContainerStatus {
    let running = matches!(c.state, State::Running { .. });
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        container_id: c.pid.map(|pid| format!("process://{pid}")),
        ready: running,
        started: Some(running),
        restart_count: c.restart_count,
        state: Some(container_state(&c.state)),
        last_state: c.last_termination.clone().map(|t| container_state(&State::Terminated(t))),
        ..ContainerStatus::default()
    }
}

fn container_state(state: &State) -> ContainerState {
    match state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..ContainerState::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..ContainerState::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                signal: t.signal,
                reason: Some(t.reason.clone()),
                message: t.message.clone(),
                started_at: t.started_at.map(Time),
                finished_at: Some(Time(t.finished_at)),
                container_id: None,
            }),
            ..ContainerState::default()
        },
    }
}

/// Writes `status` to the pod's status subresource (strategic merge, the kubelet's way,
/// with the pod's uid as precondition), retrying transient failures a few times.
/// A pod that no longer exists (or was replaced by one with another uid) is not an error.
pub async fn write(pods: &Api<Pod>, name: &str, uid: &str, status: &PodStatus) -> Result<(), Error> {
    let patch = serde_json::json!({ "metadata": { "uid": uid }, "status": status });
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
            Err(e) if attempt < 5 => {
                tracing::debug!(pod = name, error = %e, attempt, "writing pod status failed, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn pod(containers: &[&str]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|n| Container { name: n.to_string(), ..Container::default() })
                    .collect(),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn terminated(code: i32) -> State {
        State::Terminated(Termination {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: Timestamp::now(),
        })
    }

    #[test]
    fn phase_follows_the_containers() {
        let mut report = PodReport::new(&pod(&["a", "b"]));
        assert_eq!(report.phase(), Phase::Pending);
        report.start_time = Some(Timestamp::now());
        report.containers[0].state = State::Running { started_at: Timestamp::now() };
        assert_eq!(report.phase(), Phase::Running);
        report.containers[0].state = terminated(0);
        assert_eq!(report.phase(), Phase::Running, "b has not terminated");
        report.containers[1].state = terminated(0);
        assert_eq!(report.phase(), Phase::Succeeded);
        report.containers[1].state = terminated(3);
        assert_eq!(report.phase(), Phase::Failed);
    }

    #[test]
    fn status_carries_exit_codes_and_keeps_transition_times() {
        let mut report = PodReport::new(&pod(&["main"]));
        report.sandbox_ready = true;
        let first = report.status();
        report.start_time = Some(Timestamp::now());
        report.containers[0].state = terminated(3);
        let second = report.status();
        assert_eq!(second.phase.as_deref(), Some("Failed"));
        let code = second
            .container_statuses
            .as_ref()
            .and_then(|s| s[0].state.as_ref()?.terminated.as_ref())
            .map(|t| t.exit_code);
        assert_eq!(code, Some(3));
        let since = |s: &PodStatus, kind: &str| {
            s.conditions.iter().flatten().find(|c| c.type_ == kind).and_then(|c| c.last_transition_time.clone())
        };
        assert_eq!(since(&first, "PodReadyToStartContainers"), since(&second, "PodReadyToStartContainers"));
        let ready = second
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.as_str(), c.reason.as_deref()));
        assert_eq!(ready, Some(("False", Some("PodCompleted"))));
    }
}
