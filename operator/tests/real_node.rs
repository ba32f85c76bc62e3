//! End to end on a real node, as a user installs it: the images built from the project's
//! Dockerfiles (`testenv::images`), a kubelet running them with containerd and runc on a
//! CNI bridge, and `helm install` of the chart (the operator in a pod, with in-cluster
//! config and its own ServiceAccount under RBAC), in namespaces enforcing the restricted
//! Pod Security level. Against MinIO and Apache Arrow's Flight SQL server, both over TLS
//! with a CA of the test's own (given to the scans as Secrets: `spec.source.caSecret`, the
//! example's `tls.caSecret`; the worker image's system roots are loaded beside it), one
//! cluster runs:
//!
//! 1. `examples/flight-sql-scan.yaml`, sharded, to Succeeded with counts equal to the rows read back, each shard's progress in its
//!    `kubectl logs` (through the kubelet) and its termination message;
//! 2. `examples/minimal-scan.yaml` into DuckDB on a claim bound to a local PersistentVolume,
//!    its rows read back from the volume's directory by DuckDB's own client;
//! 3. a shard whose container is SIGKILLed through containerd after its first batch is in
//!    the sink: retried in a new pod, every object in the sink exactly once;
//! 4. `kubectl drain` of the node while a shard runs: the evicted pods carry
//!    DisruptionTarget, and after `kubectl uncordon` the scan succeeds, exactly once too.
//!
//! The whole cluster runs in a network namespace of the test's own (`testenv::netns`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use exrscan_crds::{ExrScan, Phase};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::runtime::watcher;
use object_store::{ObjectStoreExt, PutPayload};
use testenv::flightsql::FlightSqlOptions;
use testenv::images::TestImages;
use testenv::kube::{ControlPlane, ControlPlaneOptions, Node, NodeConfig};
use testenv::netns::NODE_IP;
use testenv::s3::S3Options;
use testenv::{FlightSqlServer, S3Server};

/// Copies of `samples/` uploaded under each example's prefix.
const COPIES: usize = 12;
const SHARDS: i64 = 4;
/// Objects under `bulk/` for the kill and drain scans: one shard writes them in batches of
/// 1000 files (the worker's default), so a run outlasts its first batch by seconds.
const BULK: usize = 2500;
const NODE: &str = "node-1";
const RELEASE_NAMESPACE: &str = "exrscan-system";
/// The examples' namespace.
const NAMESPACE: &str = "pipeline";
const SCAN_TIMEOUT: Duration = Duration::from_secs(600);
/// The Secret with the CA of MinIO's certificate (`spec.source.caSecret`).
const S3_CA_SECRET: &str = "renders-ca";

#[test]
fn helm_installed_operator_runs_the_examples_in_real_pods() {
    // First, before any thread or server exists: everything below lives in the namespace.
    testenv::netns::enter().unwrap_or_else(|e| panic!("{e}"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(real_node());
}

async fn real_node() {
    let started = Instant::now();
    let images = TestImages::build().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("[{:?}] images built", started.elapsed());
    let tls_dir = testenv::work_dir("real-node-tls").unwrap_or_else(|e| panic!("{e}"));
    let tls = Tls::issue(tls_dir.path());
    let mut s3 = S3Server::start_with(S3Options { address: Some(NODE_IP), ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    s3.create_bucket("renders").unwrap_or_else(|e| panic!("{e}"));
    let samples = Samples::read();
    let flight_prefix = example_prefix("flight-sql-scan.yaml");
    let duckdb_prefix = example_prefix("minimal-scan.yaml");
    let mut objects = samples.copies(&flight_prefix, COPIES);
    objects.extend(samples.copies(&duckdb_prefix, COPIES));
    objects.push(("elsewhere/outside.exr".into(), samples.readable_body()));
    objects.extend((0..BULK).map(|i| (format!("bulk/{i:05}.exr"), samples.readable_body())));
    upload(&s3, objects).await;
    // Then HTTPS only, with the test's CA: the scans trust it through `spec.source.caSecret`.
    s3.serve_tls(&tls.minio_certs).unwrap_or_else(|e| panic!("{e}"));
    assert!(s3.endpoint().starts_with("https://"), "{}", s3.endpoint());
    eprintln!("[{:?}] uploaded", started.elapsed());
    let flight = FlightSqlServer::start_with(FlightSqlOptions {
        tls: Some((tls.cert.clone(), tls.key.clone())),
        basic_auth: Some(("exrscan".into(), "s3cret".into())),
        // arrow-rs 60's prepared-statement update sends its parameters in a separate DoPut,
        // which arrow-go's server does not take.
        bulk_ingest: true,
        // A killed shard's open transaction would hold SQLite's write lock until the
        // server stops; its retry must not wait for that.
        transaction_idle_timeout: Some(Duration::from_secs(3)),
        address: Some(NODE_IP),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let cluster = ControlPlane::start_with(ControlPlaneOptions { address: NODE_IP, real_node: true })
        .unwrap_or_else(|e| panic!("{e}"));
    let node = cluster
        .start_node(NodeConfig::new(NODE).image(&images.operator).image(&images.worker))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(20)));
    let client = cluster.client().await.unwrap_or_else(|e| panic!("{e}"));
    let env = Env { cluster: &cluster, node: &node, client: client.clone(), s3: &s3, flight: &flight, ca: &tls.ca };
    eprintln!("[{:?}] control plane and node ready", started.elapsed());

    for ns in [RELEASE_NAMESPACE, NAMESPACE] {
        restricted_namespace(&client, ns).await;
    }
    env.restricted_level_refuses_a_host_network_pod().await;
    env.helm_install();
    eprintln!("[{:?}] chart installed", started.elapsed());
    env.secrets().await;

    env.sharded_flight_example(&samples).await;
    eprintln!("[{:?}] sharded Flight SQL example done", started.elapsed());
    env.duckdb_example_on_a_local_volume(&samples).await;
    eprintln!("[{:?}] DuckDB example done", started.elapsed());
    env.killed_shard_is_retried().await;
    eprintln!("[{:?}] killed shard done", started.elapsed());
    env.drained_node_is_survived().await;
    eprintln!("[{:?}] drain done", started.elapsed());
}

/// What the test talks to.
struct Env<'a> {
    cluster: &'a ControlPlane,
    node: &'a Node,
    client: kube::Client,
    s3: &'a S3Server,
    flight: &'a FlightSqlServer,
    /// The CA of the Flight SQL server's certificate.
    ca: &'a Path,
}

impl Env<'_> {
    /// `helm install` of the chart with the test images, waiting for the operator to be ready.
    fn helm_install(&self) {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/exrscan-operator");
        let helm = testenv::paths::tool("helm").unwrap_or_else(|e| panic!("{e}"));
        let tag = testenv::images::TAG;
        let out = Command::new(helm)
            .args(["install", "exrscan"])
            .arg(&chart)
            .args(["--namespace", RELEASE_NAMESPACE, "--wait", "--timeout", "3m"])
            .arg(format!("--kubeconfig={}", self.cluster.kubeconfig_path().display()))
            .args(["--set", &format!("image.tag={tag}"), "--set", &format!("workerImage.tag={tag}")])
            .env("HOME", self.cluster.dir())
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "helm install failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.node.log_tails(30)
        );
    }

    /// The examples' namespace enforces the restricted level: a pod on the host's network
    /// is refused (so the operator's and workers' pods it admits below meet the level).
    async fn restricted_level_refuses_a_host_network_pod(&self) {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "host-network"},
            "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "ghcr.io/exrscan/exrscan:test"}]},
        }))
        .expect("a Pod");
        let refused = self.pods(NAMESPACE).create(&PostParams { dry_run: true, ..Default::default() }, &pod).await;
        match refused {
            Err(kube::Error::Api(status)) => {
                assert!(status.message.contains("violates PodSecurity \"restricted:latest\""), "{status:?}")
            }
            other => panic!("a host-network pod was not refused by Pod Security admission: {other:?}"),
        }
    }

    /// The examples' Secrets: S3 keys, the Flight SQL server's credentials, and the test's
    /// CA for both servers.
    async fn secrets(&self) {
        let ca = std::fs::read_to_string(self.ca).expect("the CA");
        let secrets = [
            (
                "renders-s3",
                vec![("AWS_ACCESS_KEY_ID", self.s3.access_key()), ("AWS_SECRET_ACCESS_KEY", self.s3.secret_key())],
            ),
            ("flightsql-creds", vec![("username", "exrscan"), ("password", "s3cret")]),
            ("flightsql-ca", vec![("ca.crt", ca.as_str())]),
            (S3_CA_SECRET, vec![("ca.crt", ca.as_str())]),
        ];
        testenv::kube::create_secrets(&self.client, NAMESPACE, &secrets).await.expect("secrets created");
    }

    /// `examples/flight-sql-scan.yaml`: sharded, counts equal to the rows, shard pods run by
    /// containerd from the worker image, each shard's progress in its log.
    async fn sharded_flight_example(&self, samples: &Samples) {
        let scan = self.flight_scan("flight-catalog", &example_prefix("flight-sql-scan.yaml"), "exr_", SHARDS);
        let st = self.run_to_success(scan).await;
        let counts = st.counts.expect("counts");
        eprintln!("the Flight SQL example's counts: {counts:?}");
        let (exr, readable) = (samples.exr * COPIES, samples.readable * COPIES);
        assert_eq!(counts.discovered as usize, exr, "every *.exr key under the prefix found once");
        assert_eq!(counts.processed as usize, exr);
        assert_eq!(counts.inserted as usize, readable);
        assert_eq!(counts.failed as usize, exr - readable);
        assert_eq!(
            sink_rows(self.flight, self.ca, "exr_"),
            (counts.inserted, counts.inserted),
            "status counts equal the rows"
        );
        assert_eq!(st.shards.map(|s| (i64::from(s.total), i64::from(s.succeeded))), Some((SHARDS, SHARDS)));

        // The pods were real containers of the worker image, admitted under the restricted level.
        let shard_pods = self.shard_pods("flight-catalog").await;
        assert_eq!(shard_pods.len() as i64, SHARDS, "a pod per shard");
        let mut logged = 0;
        for pod in &shard_pods {
            let container = container_status(pod);
            assert!(
                container.container_id.as_deref().is_some_and(|id| id.starts_with("containerd://")),
                "run by containerd: {container:?}"
            );
            assert_eq!(container.image, format!("{}/exrscan:{}", testenv::images::REPOSITORY, testenv::images::TAG));
            // The summary, through the kubelet's termination message.
            let message = container.state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.message.clone());
            let summary: serde_json::Value =
                serde_json::from_str(message.as_deref().unwrap_or_default()).expect("a JSON termination message");
            assert_eq!(summary["outcome"], "done", "{summary}");
            // `kubectl logs`: the API server fetches the log from the kubelet.
            let name = pod.metadata.name.clone().expect("pod name");
            let log = self.kubectl(&["logs", "--namespace", NAMESPACE, &name]);
            logged += shard_log_processed(&log).unwrap_or_else(|| panic!("no progress in the log of {name}:\n{log}"));
        }
        assert_eq!(logged, counts.processed, "the shards' logs account for every processed object");
    }

    /// `examples/minimal-scan.yaml`: one shard into a DuckDB catalog on a claim bound to a
    /// local PersistentVolume (a directory of the node), read back by DuckDB's own client.
    async fn duckdb_example_on_a_local_volume(&self, samples: &Samples) {
        let volume_dir = self.cluster.dir().join("catalog-volume");
        std::fs::create_dir_all(&volume_dir).expect("the volume's directory");
        let mut scan = example("minimal-scan.yaml");
        let claim = scan["spec"]["sink"]["duckdb"]["persistentVolumeClaim"].as_str().expect("a claim").to_string();
        let file = scan["spec"]["sink"]["duckdb"]["path"].as_str().expect("a path").to_string();
        self.local_volume(&claim, &volume_dir).await;
        scan["metadata"]["namespace"] = NAMESPACE.into();
        scan["spec"]["source"]["endpoint"] = self.s3.endpoint().into();
        scan["spec"]["source"]["region"] = testenv::s3::REGION.into();
        scan["spec"]["source"]["caSecret"] = S3_CA_SECRET.into();
        let scan: ExrScan = serde_json::from_value(scan).expect("an ExrScan");
        let st = self.run_to_success(scan).await;
        let counts = st.counts.expect("counts");
        eprintln!("the DuckDB example's counts: {counts:?}");
        assert_eq!(counts.processed as usize, samples.exr * COPIES);
        assert_eq!(counts.inserted as usize, samples.readable * COPIES);
        let db = volume_dir.join(&file);
        let rows = testenv::python::run(
            "import sys, duckdb\nc = duckdb.connect(sys.argv[1], read_only=True)\n\
             print(c.execute('SELECT count(*) FROM files').fetchone()[0])",
            &[&db.to_string_lossy()],
        )
        .unwrap_or_else(|e| panic!("reading {}: {e}", db.display()));
        assert_eq!(rows.trim(), counts.inserted.to_string(), "status counts equal the rows on the volume");
    }

    /// A StorageClass `local` (no provisioner, bound when a pod needs it), a local
    /// PersistentVolume at `dir` on the node, and the claim `claim` in the examples' namespace.
    async fn local_volume(&self, claim: &str, dir: &Path) {
        let class: StorageClass = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "local"},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }))
        .expect("a StorageClass");
        Api::<StorageClass>::all(self.client.clone()).create(&PostParams::default(), &class).await.expect("class");
        let volume: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "catalog"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "local",
                "local": {"path": dir},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}
                ]}]}},
            },
        }))
        .expect("a PersistentVolume");
        Api::<PersistentVolume>::all(self.client.clone()).create(&PostParams::default(), &volume).await.expect("PV");
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "local",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }))
        .expect("a PersistentVolumeClaim");
        Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), NAMESPACE)
            .create(&PostParams::default(), &pvc)
            .await
            .expect("PVC");
    }

    /// One shard over `bulk/`, its container SIGKILLed (through containerd) once its first
    /// batch is in the sink: the Job retries it in a new pod, which finishes the shard.
    async fn killed_shard_is_retried(&self) {
        let name = "killed";
        let scans: Api<ExrScan> = Api::namespaced(self.client.clone(), NAMESPACE);
        scans.create(&PostParams::default(), &self.flight_scan(name, "bulk/", "killed_", 1)).await.expect("created");
        let at_kill = wait_rows(self.flight, self.ca, "killed_", 1, Duration::from_secs(300));
        let pod = self.running_shard_pod(name).await;
        let id = container_status(&pod).container_id.clone().expect("a container id");
        self.node
            .kill_container(id.trim_start_matches("containerd://"))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.node.log_tails(20)));
        eprintln!("killed {id} with {at_kill} of {BULK} rows in the sink");
        assert!(at_kill < BULK as i64, "the kill came before the shard was done");

        let st = self.wait_succeeded(name).await;
        let counts = st.counts.expect("counts");
        eprintln!("the killed scan's counts: {counts:?}");
        let pods = self.shard_pods(name).await;
        let killed = pods.iter().find(|p| p.metadata.name == pod.metadata.name).expect("the killed pod");
        let terminated = container_status(killed).state.as_ref().and_then(|s| s.terminated.clone());
        assert_eq!(terminated.map(|t| t.exit_code), Some(137), "the container died of the SIGKILL");
        assert_eq!(pods.len(), 2, "the shard ran again in a new pod");
        assert_exactly_once(self.flight, self.ca, "killed_", &counts);
    }

    /// `kubectl drain` of the node while a shard runs: the shard pod is evicted (with
    /// DisruptionTarget, not counted as a failure), the operator's pod too; after
    /// `kubectl uncordon` both come back and the scan succeeds, every object once.
    async fn drained_node_is_survived(&self) {
        let name = "drained";
        let scans: Api<ExrScan> = Api::namespaced(self.client.clone(), NAMESPACE);
        scans.create(&PostParams::default(), &self.flight_scan(name, "bulk/", "drained_", 1)).await.expect("created");
        let pod = self.running_shard_pod(name).await;
        let pod_name = pod.metadata.name.clone().expect("named");
        // The Job controller deletes the evicted pod once it has counted it: watch it from
        // before the drain, so that no update is missed.
        let config = watcher::Config::default().fields(&format!("metadata.name={pod_name}"));
        let mut events = std::pin::pin!(watcher(self.pods(NAMESPACE), config));
        while !matches!(events.next().await, Some(Ok(watcher::Event::InitDone))) {}
        let mut drain = self
            .cluster
            .kubectl()
            .args(["drain", NODE, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl drain runs");
        let mut disrupted = None;
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(120), events.next()).await {
            match event.expect("watching the pod") {
                watcher::Event::Apply(pod) => {
                    let conditions = pod.status.and_then(|s| s.conditions).unwrap_or_default();
                    disrupted = conditions.into_iter().find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
                    if disrupted.is_some() {
                        break;
                    }
                }
                watcher::Event::Delete(_) => break,
                _ => {}
            }
        }
        let disrupted = disrupted.expect("the evicted shard pod is marked DisruptionTarget");
        eprintln!("{pod_name}: {disrupted:?}");
        while matches!(drain.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let out = drain.wait_with_output().expect("kubectl drain");
        assert!(
            out.status.success(),
            "kubectl drain: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let operator_pods = self.pods(RELEASE_NAMESPACE).list(&ListParams::default()).await.expect("pods").items;
        assert!(
            operator_pods.iter().all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none()),
            "the operator was evicted too and waits for a node: {operator_pods:?}"
        );
        self.kubectl(&["uncordon", NODE]);

        let st = self.wait_succeeded(name).await;
        let counts = st.counts.expect("counts");
        eprintln!("the drained scan's counts: {counts:?}");
        assert_exactly_once(self.flight, self.ca, "drained_", &counts);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), NAMESPACE);
        let selector = format!("exrscan.dev/scan={name},app.kubernetes.io/component=shard");
        let job = jobs.list(&ListParams::default().labels(&selector)).await.expect("jobs").items;
        let failed: Vec<i32> = job.iter().map(|j| j.status.as_ref().and_then(|s| s.failed).unwrap_or(0)).collect();
        assert_eq!(failed, [0], "one shard Job, the eviction not counted as a failed pod");
    }

    /// A Flight SQL scan of `examples/flight-sql-scan.yaml` named `name` over `prefix`,
    /// pointed at the test's servers: MinIO (path-style, HTTPS with the test's CA) and the
    /// Flight SQL server with the
    /// example's TLS and credentials Secrets, tables `<table_prefix>*`. The SQLite-backed
    /// server has no schemas.
    fn flight_scan(&self, name: &str, prefix: &str, table_prefix: &str, shards: i64) -> ExrScan {
        let mut scan = example("flight-sql-scan.yaml");
        scan["metadata"]["name"] = name.into();
        let spec = &mut scan["spec"];
        spec["source"]["prefix"] = prefix.into();
        spec["source"]["endpoint"] = self.s3.endpoint().into();
        spec["source"]["region"] = testenv::s3::REGION.into();
        spec["source"]["forcePathStyle"] = true.into();
        spec["source"]["caSecret"] = S3_CA_SECRET.into();
        let sink = spec["sink"]["flight"].as_object_mut().expect("a Flight SQL sink");
        sink.insert("endpoint".into(), self.flight.addr().to_string().into());
        sink.insert("tablePrefix".into(), table_prefix.into());
        sink.remove("schema");
        spec["shards"] = shards.into();
        spec["parallelism"] = shards.min(2).into();
        serde_json::from_value(scan).expect("an ExrScan")
    }

    /// Creates `scan` and waits until it has Succeeded; its status.
    async fn run_to_success(&self, scan: ExrScan) -> exrscan_crds::ExrScanStatus {
        let name = scan.metadata.name.clone().expect("named");
        let scans: Api<ExrScan> = Api::namespaced(self.client.clone(), NAMESPACE);
        scans.create(&PostParams::default(), &scan).await.unwrap_or_else(|e| panic!("creating {name}: {e}"));
        self.wait_succeeded(&name).await
    }

    /// Polls the scan until it has Succeeded (or fails the test when it Failed).
    async fn wait_succeeded(&self, name: &str) -> exrscan_crds::ExrScanStatus {
        let scans: Api<ExrScan> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + SCAN_TIMEOUT;
        loop {
            let scan = scans.get(name).await.expect("the scan exists");
            let status = scan.status.unwrap_or_default();
            match status.phase {
                Some(Phase::Succeeded) => return status,
                Some(Phase::Failed) => panic!("{name} failed: {status:?}\n{}", self.diagnostics().await),
                _ if Instant::now() > deadline => {
                    panic!("{name}: not finished after {SCAN_TIMEOUT:?}: {status:?}\n{}", self.diagnostics().await)
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The shard pods of the scan `scan`, oldest first.
    async fn shard_pods(&self, scan: &str) -> Vec<Pod> {
        let selector = format!("exrscan.dev/scan={scan},app.kubernetes.io/component=shard");
        let mut pods = self.pods(NAMESPACE).list(&ListParams::default().labels(&selector)).await.expect("pods").items;
        pods.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        pods
    }

    /// Waits for a shard pod of `scan` whose container runs.
    async fn running_shard_pod(&self, scan: &str) -> Pod {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let running = self.shard_pods(scan).await.into_iter().find(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|c| c.first())
                    .is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            });
            if let Some(pod) = running {
                return pod;
            }
            assert!(Instant::now() < deadline, "no shard of {scan} running\n{}", self.diagnostics().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs kubectl with `args`, failing the test when it fails; its stdout.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = self.cluster.kubectl().args(args).output().expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pods, their states and logs, with the servers' log tails.
    async fn diagnostics(&self) -> String {
        let mut text = String::new();
        for ns in [RELEASE_NAMESPACE, NAMESPACE] {
            let pods = self.pods(ns);
            for pod in pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let status = pod.status.as_ref();
                text.push_str(&format!(
                    "--- pod {ns}/{name}: {:?} {:?}\n",
                    status.and_then(|s| s.phase.clone()),
                    status.and_then(|s| s.container_statuses.clone())
                ));
                if let Ok(log) = pods.logs(&name, &LogParams { tail_lines: Some(20), ..Default::default() }).await {
                    text.push_str(&log);
                }
            }
        }
        format!("{text}\n{}\n{}", self.cluster.log_tails(15), self.node.log_tails(30))
    }
}

fn container_status(pod: &Pod) -> &k8s_openapi::api::core::v1::ContainerStatus {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()).expect("a container status")
}

/// The objects a shard processed, from the summary line its log ends with.
fn shard_log_processed(log: &str) -> Option<i64> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|line| (line["outcome"] == "done").then(|| line["counts"]["processed"].as_i64()).flatten())
}

/// A namespace that enforces the restricted Pod Security level.
async fn restricted_namespace(client: &kube::Client, name: &str) {
    let labels = BTreeMap::from([
        ("pod-security.kubernetes.io/enforce".to_string(), "restricted".to_string()),
        ("pod-security.kubernetes.io/enforce-version".to_string(), "latest".to_string()),
    ]);
    let ns = Namespace {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), labels: Some(labels), ..Default::default() },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace created");
}

/// An example of `examples/`, as JSON.
fn example(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The prefix an example scans.
fn example_prefix(name: &str) -> String {
    example(name)["spec"]["source"]["prefix"].as_str().expect("the example has a prefix").to_string()
}

/// The `samples/` EXR files.
struct Samples {
    files: Vec<PathBuf>,
    /// How many there are.
    exr: usize,
    /// How many of them the worker reads.
    readable: usize,
    /// The first one it reads.
    first_readable: PathBuf,
}

impl Samples {
    fn read() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("samples/").flatten().map(|e| e.path()).collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "exr"));
        files.sort();
        let readable = readable(&files);
        let first_readable = readable.first().cloned().expect("a readable sample");
        Self { exr: files.len(), readable: readable.len(), files, first_readable }
    }

    /// `copies` copies under `prefix` (`<prefix>shotNNN/<name>`), each with a text file
    /// beside it that is not `*.exr`.
    fn copies(&self, prefix: &str, copies: usize) -> Vec<(String, Vec<u8>)> {
        let mut objects = Vec::new();
        for copy in 0..copies {
            for file in &self.files {
                let name = file.file_name().expect("a file name").to_string_lossy();
                objects.push((format!("{prefix}shot{copy:03}/{name}"), std::fs::read(file).expect("a sample")));
            }
            objects.push((format!("{prefix}shot{copy:03}/notes.txt"), b"not an image".to_vec()));
        }
        objects
    }

    fn readable_body(&self) -> Vec<u8> {
        std::fs::read(&self.first_readable).expect("a sample")
    }
}

/// Those of `files` that `exrscan inspect` reads.
fn readable(files: &[PathBuf]) -> Vec<PathBuf> {
    let exrscan = testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}"));
    files
        .iter()
        .filter(|file| {
            let out = Command::new(&exrscan).args(["inspect", "--json"]).arg(file).output().expect("exrscan inspect");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|line| serde_json::from_str::<serde_json::Value>(line).is_ok_and(|r| r["ok"] == true))
        })
        .cloned()
        .collect()
}

/// Puts `objects` into the bucket `renders`, 32 at a time.
async fn upload(s3: &S3Server, objects: Vec<(String, Vec<u8>)>) {
    let store = s3.store("renders").unwrap_or_else(|e| panic!("{e}"));
    let failures: Vec<String> = futures::stream::iter(objects)
        .map(|(key, body)| {
            let store = &store;
            async move {
                let path = object_store::path::Path::from(key.as_str());
                store.put(&path, PutPayload::from(body)).await.err().map(|e| format!("{key}: {e}"))
            }
        })
        .buffer_unordered(32)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    assert!(failures.is_empty(), "uploads failed: {failures:?}");
}

/// An ADBC connection to the Flight SQL server (`argv[1]`, TLS with the CA file `argv[2]`)
/// in autocommit mode (an open read transaction
/// would hold SQLite's shared lock against the shards' commits).
const ADBC_CONNECT: &str = "import sys, time\n\
    import adbc_driver_flightsql.dbapi as fs\n\
    kw = {'username': 'exrscan', 'password': 's3cret', 'adbc.flight.sql.client_option.tls_root_certs': open(sys.argv[2]).read()}\n\
    c = fs.connect(sys.argv[1], db_kwargs=kw, autocommit=True)\n\
    cur = c.cursor()\n";

/// Rows of `<prefix>files` and their distinct source URIs, read back through the Flight
/// SQL server with ADBC.
fn sink_rows(flight: &FlightSqlServer, ca: &Path, prefix: &str) -> (i64, i64) {
    let code = format!(
        "{ADBC_CONNECT}cur.execute('SELECT count(*), count(DISTINCT source_uri) FROM {prefix}files')\n\
         print(*cur.fetchone())\n"
    );
    let out = testenv::python::run(&code, &[&flight.adbc_uri(), &ca.to_string_lossy()])
        .unwrap_or_else(|e| panic!("ADBC read-back: {e}"));
    let mut n = out.split_whitespace().map(|n| n.parse().unwrap_or_else(|e| panic!("row count {out:?}: {e}")));
    (n.next().expect("rows"), n.next().expect("distinct URIs"))
}

/// Waits until `<prefix>files` holds at least `at_least` rows (polling every 100 ms); how many.
fn wait_rows(flight: &FlightSqlServer, ca: &Path, prefix: &str, at_least: i64, timeout: Duration) -> i64 {
    let code = format!(
        "{ADBC_CONNECT}deadline = time.time() + {secs}\n\
         while time.time() < deadline:\n\
         \x20   try:\n\
         \x20       cur.execute('SELECT count(*) FROM {prefix}files')\n\
         \x20       n = cur.fetchone()[0]\n\
         \x20   except Exception:\n\
         \x20       n = 0\n\
         \x20   if n >= {at_least}:\n\
         \x20       print(n)\n\
         \x20       sys.exit(0)\n\
         \x20   time.sleep(0.1)\n\
         sys.exit('no rows in time')\n",
        secs = timeout.as_secs()
    );
    let out = testenv::python::run(&code, &[&flight.adbc_uri(), &ca.to_string_lossy()])
        .unwrap_or_else(|e| panic!("waiting for rows: {e}"));
    out.trim().parse().unwrap_or_else(|e| panic!("row count {out:?}: {e}"))
}

/// Every object of `bulk/` in the sink once, and the status counting each once.
fn assert_exactly_once(flight: &FlightSqlServer, ca: &Path, prefix: &str, counts: &exrscan_crds::Counts) {
    assert_eq!(sink_rows(flight, ca, prefix), (BULK as i64, BULK as i64), "every object in the sink exactly once");
    assert_eq!(counts.discovered as usize, BULK, "{counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert_eq!((counts.inserted + counts.unchanged) as usize, BULK, "{counts:?}");
}

/// A CA and a certificate for the servers at the node's address, as PEM files (also as
/// MinIO wants them: `public.crt` and `private.key` in a directory).
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    minio_certs: PathBuf,
}

impl Tls {
    fn issue(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "exrscan real-node test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let params = CertificateParams::new(vec![NODE_IP.to_string()]).expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server certificate");
        let minio_certs = dir.join("minio");
        std::fs::create_dir_all(&minio_certs).expect("MinIO's certificate directory");
        let tls =
            Self { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key"), minio_certs };
        for (path, pem) in [
            (&tls.ca, ca.pem()),
            (&tls.cert, cert.pem()),
            (&tls.key, key.serialize_pem()),
            (&tls.minio_certs.join("public.crt"), cert.pem()),
            (&tls.minio_certs.join("private.key"), key.serialize_pem()),
        ] {
            std::fs::write(path, pem).expect("a PEM file");
        }
        tls
    }
}
