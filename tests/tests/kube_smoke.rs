//! The Kubernetes part of the test environment is real: etcd, kube-apiserver and
//! kube-controller-manager run on loopback, the Job controller creates pods, the node agent
//! runs them as local processes and reports exit codes and termination messages, the Job
//! controller acts on them (completion, pod failure policy) and the garbage collector
//! removes a deleted Job's pods.
//!
//! Run with `cargo build -p exrscan-tests --bins && cargo test -p exrscan-tests --test kube_smoke`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client};
use serde_json::json;
use testenv::kube::{ControlPlane, NodeAgent, NodeAgentConfig};

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// A control plane, one node agent and an admin client.
struct Cluster {
    client: Client,
    agent: NodeAgent,
    control_plane: ControlPlane,
}

impl Cluster {
    async fn start(agent: NodeAgentConfig) -> Self {
        let started = Instant::now();
        let control_plane = ControlPlane::start().unwrap_or_else(|e| panic!("{e}"));
        let agent = control_plane.start_node_agent(agent).unwrap_or_else(|e| panic!("{e}"));
        let client = control_plane.client().await.unwrap_or_else(|e| panic!("{e}"));
        eprintln!(
            "control plane ready in {:.2?}, with a Ready node agent in {:.2?}",
            control_plane.startup_time(),
            started.elapsed()
        );
        Self { client, agent, control_plane }
    }

    async fn namespace(&self, name: &str) {
        let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
    }

    /// Waits for `condition` on the Job, failing with the agent's and servers' logs.
    async fn wait_for_job(&self, namespace: &str, name: &str, what: &str, condition: impl Condition<Job>) -> Job {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(JOB_TIMEOUT, await_condition(jobs.clone(), name, condition)).await {
            Ok(Ok(Some(job))) => job,
            outcome => {
                let job = jobs.get_opt(name).await.ok().flatten();
                panic!(
                    "Job {namespace}/{name} did not become {what} ({outcome:?}); status {:#?}\npods:\n{}\nagent log:\n{}\n{}",
                    job.and_then(|j| j.status),
                    self.pod_summary(namespace).await,
                    self.agent.log_tail(40),
                    self.control_plane.log_tails(20),
                )
            }
        }
    }

    async fn job_pods(&self, namespace: &str, job: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"))).await.unwrap().items
    }

    async fn pod_summary(&self, namespace: &str) -> String {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        list.iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.metadata.name.as_deref().unwrap_or("?"),
                    serde_json::to_string(&p.status).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn job_condition(kind: &'static str) -> impl Condition<Job> {
    move |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == kind && c.status == "True"))
    }
}

fn terminated(pod: &Pod) -> (i32, String) {
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .unwrap_or_else(|| panic!("pod {:?} has no terminated container: {:?}", pod.metadata.name, pod.status));
    (state.exit_code, state.message.clone().unwrap_or_default())
}

/// An Indexed Job whose pods check a Secret-backed env var, a Secret volume and the
/// completion index, and report through the termination log; a Job whose pod exits 3,
/// which its pod failure policy turns into a failed Job; and a Job whose image maps to
/// kubectl, which reaches the API server with the pod's service-account token.
#[tokio::test]
async fn jobs_run_through_the_node_agent() {
    let started = Instant::now();
    let kubectl = testenv::paths::tool("kubectl").unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start(NodeAgentConfig::new("smoke-node").image("kubectl-image", kubectl)).await;
    let ns = "smoke";
    cluster.namespace(ns).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds", "namespace": ns },
        "stringData": { "token": "s3cr3t" },
    }))
    .unwrap();
    Api::<Secret>::namespaced(cluster.client.clone(), ns).create(&PostParams::default(), &secret).await.unwrap();

    let script = r#"
        test "$TOKEN" = s3cr3t || exit 11
        test "$(cat /etc/creds/token)" = s3cr3t || exit 12
        test "$INDEX" = "$JOB_COMPLETION_INDEX" || exit 13
        echo "shard $INDEX of $HOSTNAME says hello"
        printf 'index %s ok' "$INDEX" > /dev/termination-log
    "#;
    let indexed: Job = serde_json::from_value(json!({
        "metadata": { "name": "indexed", "namespace": ns },
        "spec": {
            "completionMode": "Indexed",
            "completions": 3,
            "parallelism": 2,
            "backoffLimit": 0,
            "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "work",
                    "image": "busybox:stable",
                    "command": ["sh", "-c", script],
                    "env": [
                        { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } },
                        { "name": "INDEX", "valueFrom": { "fieldRef": {
                            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
                    ],
                    "volumeMounts": [{ "name": "creds", "mountPath": "/etc/creds", "readOnly": true }],
                }],
                "volumes": [{ "name": "creds", "secret": { "secretName": "creds" } }],
            }},
        },
    }))
    .unwrap();
    let failing: Job = serde_json::from_value(json!({
        "metadata": { "name": "failing", "namespace": ns },
        "spec": {
            "backoffLimit": 6,
            "podFailurePolicy": { "rules": [
                { "action": "FailJob", "onExitCodes": { "containerName": "work", "operator": "In", "values": [3] } },
            ]},
            "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "work",
                    "image": "busybox:stable",
                    "command": ["sh", "-c", "echo 'bad input' > /dev/termination-log; exit 3"],
                }],
            }},
        },
    }))
    .unwrap();
    let whoami: Job = serde_json::from_value(json!({
        "metadata": { "name": "whoami", "namespace": ns },
        "spec": {
            "backoffLimit": 0,
            "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "work",
                    "image": "registry.example/kubectl-image:1",
                    "args": ["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
                }],
            }},
        },
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), ns);
    for job in [&indexed, &failing, &whoami] {
        jobs.create(&PostParams::default(), job).await.unwrap();
    }

    let (complete, failed, _) = tokio::join!(
        cluster.wait_for_job(ns, "indexed", "Complete", job_condition("Complete")),
        cluster.wait_for_job(ns, "failing", "Failed", job_condition("Failed")),
        cluster.wait_for_job(ns, "whoami", "Complete", job_condition("Complete")),
    );

    assert_eq!(complete.status.as_ref().and_then(|s| s.succeeded), Some(3));
    let pods = cluster.job_pods(ns, "indexed").await;
    assert_eq!(pods.len(), 3, "one pod per index, none retried: {}", cluster.pod_summary(ns).await);
    let mut indexes = BTreeSet::new();
    for pod in &pods {
        let index = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
            .cloned()
            .unwrap();
        assert_eq!(terminated(pod), (0, format!("index {index} ok")));
        let name = pod.metadata.name.as_deref().unwrap();
        let log = std::fs::read_to_string(cluster.agent.pod_log(ns, name)).unwrap();
        assert!(log.contains(&format!("shard {index} of {name} says hello")), "log of {name}: {log}");
        indexes.insert(index);
    }
    assert_eq!(indexes, BTreeSet::from(["0".to_string(), "1".to_string(), "2".to_string()]));

    let failure = failed
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed"))
        .unwrap();
    assert_eq!(failure.reason.as_deref(), Some("PodFailurePolicy"), "{failure:?}");
    let failing_pods = cluster.job_pods(ns, "failing").await;
    assert_eq!(failing_pods.len(), 1, "FailJob stops at the first failure");
    assert_eq!(terminated(&failing_pods[0]), (3, "bad input\n".to_string()));

    let whoami_pods = cluster.job_pods(ns, "whoami").await;
    let whoami_pod = whoami_pods[0].metadata.name.as_deref().unwrap();
    let whoami_log = std::fs::read_to_string(cluster.agent.pod_log(ns, whoami_pod)).unwrap();
    assert_eq!(whoami_log, format!("system:serviceaccount:{ns}:default"));

    let kubectl =
        cluster.control_plane.kubectl().args(["get", "pods", "--namespace", ns, "-o", "name"]).output().unwrap();
    assert!(kubectl.status.success(), "kubectl: {}", String::from_utf8_lossy(&kubectl.stderr));
    let listed = String::from_utf8_lossy(&kubectl.stdout);
    for pod in pods.iter().chain(&failing_pods) {
        assert!(
            listed.contains(&format!("pod/{}", pod.metadata.name.as_deref().unwrap())),
            "kubectl listed:\n{listed}"
        );
    }
    eprintln!("jobs_run_through_the_node_agent took {:.2?}", started.elapsed());
}

/// Deleting a running Job (background propagation) makes the garbage collector delete its
/// pods, and the node agent stop their processes.
#[tokio::test]
async fn deleting_a_job_removes_its_pods_and_processes() {
    let started = Instant::now();
    let cluster = Cluster::start(NodeAgentConfig::new("smoke-node")).await;
    let ns = "gc";
    cluster.namespace(ns).await;
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "sleepy", "namespace": ns },
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "template": { "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 5,
                "containers": [{ "name": "work", "image": "busybox:stable", "command": ["sleep", "300"] }],
            }},
        },
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), ns);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    cluster
        .wait_for_job(ns, "sleepy", "ready with 2 pods", |job: Option<&Job>| {
            job.and_then(|j| j.status.as_ref()).and_then(|s| s.ready) == Some(2)
        })
        .await;
    let pids = process_ids(&cluster.job_pods(ns, "sleepy").await);
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|pid| is_running(*pid)), "the sleep processes run");

    let background =
        DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    jobs.delete("sleepy", &background).await.unwrap();
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let left = cluster.job_pods(ns, "sleepy").await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the garbage collector left pods behind:\n{}\nagent log:\n{}",
            cluster.pod_summary(ns).await,
            cluster.agent.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(jobs.get_opt("sleepy").await.unwrap().is_none());
    for pid in pids {
        assert!(!is_running(pid), "process {pid} of a deleted pod still runs");
    }
    eprintln!("deleting_a_job_removes_its_pods_and_processes took {:.2?}", started.elapsed());
}

/// Stopping the node agent (SIGTERM, as dropping its handle does) stops its pods'
/// processes and marks its Node not ready.
#[tokio::test]
async fn stopping_the_agent_stops_its_pods() {
    let cluster = Cluster::start(NodeAgentConfig::new("smoke-node")).await;
    let ns = "stop";
    cluster.namespace(ns).await;
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "sleepy", "namespace": ns },
        "spec": { "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "work", "image": "busybox:stable", "command": ["sh", "-c", "sleep 300 & wait"] }],
        }}},
    }))
    .unwrap();
    Api::<Job>::namespaced(cluster.client.clone(), ns).create(&PostParams::default(), &job).await.unwrap();
    cluster
        .wait_for_job(ns, "sleepy", "ready", |job: Option<&Job>| {
            job.and_then(|j| j.status.as_ref()).and_then(|s| s.ready) == Some(1)
        })
        .await;
    let pids = process_ids(&cluster.job_pods(ns, "sleepy").await);
    assert!(pids.len() == 1 && is_running(pids[0]), "one running process: {pids:?}");

    let Cluster { client, agent, control_plane: _control_plane } = cluster;
    drop(agent);
    assert!(!is_running(pids[0]), "the pod's process outlived the agent");
    let node = Api::<Node>::all(client).get("smoke-node").await.unwrap();
    let ready =
        node.status.and_then(|s| s.conditions).into_iter().flatten().find(|c| c.type_ == "Ready").map(|c| c.status);
    assert_eq!(ready.as_deref(), Some("Unknown"));
}

/// The process ids the agent reports as container ids (`process://<pid>`).
fn process_ids(pods: &[Pod]) -> Vec<i32> {
    pods.iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref()?.first()?.container_id.clone())
        .map(|id| id.trim_start_matches("process://").parse().unwrap())
        .collect()
}

/// Whether a process exists and is not a zombie waiting to be reaped.
fn is_running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().is_some_and(|state| !state.is_empty() && !state.trim_start().starts_with('Z'))
}
