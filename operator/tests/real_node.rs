//! End to end on a real node, as a user installs it: the images built from the project's
//! Dockerfiles (`testenv::images`), a kubelet running them with containerd and runc on a
//! CNI bridge, and `helm install` of the chart (the operator in a pod, with in-cluster
//! config and its own ServiceAccount under RBAC). The ExrScan of
//! `examples/flight-sql-scan.yaml`, pointed at MinIO and Apache Arrow's Flight SQL server,
//! runs its planner and shards as pods in a namespace enforcing the restricted Pod Security
//! level, and succeeds with counts equal to the rows read back from the sink.
//!
//! The whole cluster runs in a network namespace of the test's own (`testenv::netns`).
//! No kubectl: the test talks to the API server with kube-rs, as the operator does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use exrscan_crds::{ExrScan, Phase};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, ListParams, LogParams, PostParams};
use object_store::{ObjectStoreExt, PutPayload};
use testenv::flightsql::FlightSqlOptions;
use testenv::images::TestImages;
use testenv::kube::{ControlPlane, ControlPlaneOptions, Node, NodeConfig};
use testenv::netns::NODE_IP;
use testenv::s3::S3Options;
use testenv::{FlightSqlServer, S3Server};

/// Copies of `samples/` uploaded under `shows/shotNNN/`.
const COPIES: usize = 12;
const SHARDS: i64 = 4;
const RELEASE_NAMESPACE: &str = "exrscan-system";
/// The example's namespace.
const NAMESPACE: &str = "pipeline";

#[test]
fn helm_installed_operator_runs_the_sharded_example_in_real_pods() {
    // First, before any thread or server exists: everything below lives in the namespace.
    testenv::netns::enter().unwrap_or_else(|e| panic!("{e}"));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(sharded_example());
}

async fn sharded_example() {
    let images = TestImages::build().unwrap_or_else(|e| panic!("{e}"));
    let (s3, samples) = s3_with_samples().await;
    let flight = FlightSqlServer::start_with(FlightSqlOptions {
        basic_auth: Some(("exrscan".into(), "s3cret".into())),
        // arrow-rs 60's prepared-statement update sends its parameters in a separate DoPut,
        // which arrow-go's server does not take.
        bulk_ingest: true,
        address: Some(NODE_IP),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let cluster = ControlPlane::start_with(ControlPlaneOptions { address: NODE_IP, real_node: true })
        .unwrap_or_else(|e| panic!("{e}"));
    let node = cluster
        .start_node(NodeConfig::new("node-1").image(&images.operator).image(&images.worker))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(20)));
    let client = cluster.client().await.unwrap_or_else(|e| panic!("{e}"));
    let env = Env { cluster: &cluster, node: &node, client: client.clone() };

    for ns in [RELEASE_NAMESPACE, NAMESPACE] {
        restricted_namespace(&client, ns).await;
    }
    env.helm_install();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    for (name, data) in [
        ("renders-s3", [("AWS_ACCESS_KEY_ID", s3.access_key()), ("AWS_SECRET_ACCESS_KEY", s3.secret_key())]),
        ("flightsql-creds", [("username", "exrscan"), ("password", "s3cret")]),
    ] {
        let secret = Secret {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            string_data: Some(data.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        };
        secrets.create(&PostParams::default(), &secret).await.expect("secret created");
    }

    let scans: Api<ExrScan> = Api::namespaced(client.clone(), NAMESPACE);
    let scan = example_scan(&s3, &flight);
    let name = scan.metadata.name.clone().expect("the example is named");
    scans.create(&PostParams::default(), &scan).await.unwrap_or_else(|e| panic!("creating the example scan: {e}"));
    let done = env.wait_finished(&name, Duration::from_secs(600)).await;
    let st = done.status.expect("status");
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}\n{}", env.diagnostics().await);
    let counts = st.counts.expect("counts");
    eprintln!("the example's counts: {counts:?}");
    assert_eq!(counts.discovered as usize, samples.exr, "every *.exr key under the prefix found once");
    assert_eq!(counts.processed as usize, samples.exr);
    assert_eq!(counts.inserted as usize, samples.readable);
    assert_eq!(counts.failed as usize, samples.exr - samples.readable);
    assert_eq!(sink_rows(&flight), counts.inserted, "status counts equal the rows in the sink");
    assert_eq!(st.shards.map(|s| (i64::from(s.total), i64::from(s.succeeded))), Some((SHARDS, SHARDS)));

    // The pods were real containers of the images, admitted under the restricted level.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let shard_pods: Vec<Pod> =
        pods.list(&ListParams::default().labels("app.kubernetes.io/component=shard")).await.expect("pods listed").items;
    assert!(shard_pods.len() as i64 >= SHARDS, "a pod per shard: {}", shard_pods.len());
    for pod in &shard_pods {
        let status = pod.status.as_ref().expect("pod status");
        let container = status.container_statuses.as_ref().and_then(|c| c.first()).expect("a container status");
        assert!(
            container.container_id.as_deref().is_some_and(|id| id.starts_with("containerd://")),
            "run by containerd: {container:?}"
        );
        assert_eq!(container.image, format!("{}/exrscan:{}", testenv::images::REPOSITORY, testenv::images::TAG));
    }
    // `kubectl logs` of a shard: the API server fetches it from the kubelet.
    let shard = shard_pods[0].metadata.name.clone().expect("pod name");
    let log = pods.logs(&shard, &LogParams::default()).await.unwrap_or_else(|e| panic!("logs of {shard}: {e}"));
    eprintln!("log of {shard}:\n{log}");
    assert!(log.contains("processed"), "the shard's log shows its progress: {log}");
}

/// What the test talks to.
struct Env<'a> {
    cluster: &'a ControlPlane,
    node: &'a Node,
    client: kube::Client,
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

    /// Polls the scan until it has Succeeded or Failed.
    async fn wait_finished(&self, name: &str, timeout: Duration) -> ExrScan {
        let scans: Api<ExrScan> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + timeout;
        loop {
            let scan = scans.get(name).await.expect("the scan exists");
            let phase = scan.status.as_ref().and_then(|s| s.phase);
            if matches!(phase, Some(Phase::Succeeded | Phase::Failed)) {
                return scan;
            }
            if Instant::now() > deadline {
                panic!("{name}: not finished after {timeout:?}: {:?}\n{}", scan.status, self.diagnostics().await);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Pods, their states and the operator's log, with the servers' log tails.
    async fn diagnostics(&self) -> String {
        let mut text = String::new();
        for ns in [RELEASE_NAMESPACE, NAMESPACE] {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
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

/// An example of `examples/`, as YAML.
fn example(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The prefix `examples/flight-sql-scan.yaml` scans.
fn example_prefix() -> String {
    example("flight-sql-scan.yaml")["spec"]["source"]["prefix"].as_str().expect("the example has a prefix").to_string()
}

/// `examples/flight-sql-scan.yaml` pointed at the test's servers: MinIO (path-style) and
/// the Flight SQL server over plain gRPC with the example's credentials Secret, the tables
/// named `exr_*`, and fewer shards for two cores. The SQLite-backed server has no schemas.
fn example_scan(s3: &S3Server, flight: &FlightSqlServer) -> ExrScan {
    let mut scan = example("flight-sql-scan.yaml");
    let spec = &mut scan["spec"];
    spec["source"]["endpoint"] = s3.endpoint().into();
    spec["source"]["region"] = testenv::s3::REGION.into();
    spec["source"]["forcePathStyle"] = true.into();
    let sink = spec["sink"]["flight"].as_object_mut().expect("a Flight SQL sink");
    sink.insert("endpoint".into(), flight.addr().to_string().into());
    sink.insert("tablePrefix".into(), "exr_".into());
    sink.remove("tls");
    sink.remove("schema");
    spec["shards"] = SHARDS.into();
    spec["parallelism"] = 2.into();
    serde_json::from_value(scan).expect("an ExrScan")
}

/// What was uploaded.
struct Samples {
    /// `*.exr` objects the scan should discover.
    exr: usize,
    /// Those the worker reads.
    readable: usize,
}

/// MinIO on the node's address with the bucket `renders` holding `COPIES` copies of
/// `samples/` under the example's prefix (`…/shotNNN/`), a text file per shot (not
/// `*.exr`), and an EXR outside the prefix.
async fn s3_with_samples() -> (S3Server, Samples) {
    let s3 = S3Server::start_with(S3Options { address: Some(NODE_IP), ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    s3.create_bucket("renders").unwrap_or_else(|e| panic!("{e}"));
    let store = s3.store("renders").unwrap_or_else(|e| panic!("{e}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("samples/").flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "exr"));
    files.sort();
    let readable_here = readable(&files);
    let prefix = example_prefix();
    let mut objects = Vec::new();
    for copy in 0..COPIES {
        for file in &files {
            let name = file.file_name().expect("a file name").to_string_lossy();
            objects.push((format!("{prefix}shot{copy:03}/{name}"), std::fs::read(file).expect("a sample")));
        }
        objects.push((format!("{prefix}shot{copy:03}/notes.txt"), b"not an image".to_vec()));
    }
    objects.push(("elsewhere/outside.exr".into(), std::fs::read(&files[0]).expect("a sample")));
    for (key, body) in objects {
        store.put(&object_store::path::Path::from(key.as_str()), PutPayload::from(body)).await.expect("uploaded");
    }
    (s3, Samples { exr: COPIES * files.len(), readable: COPIES * readable_here })
}

/// How many of `files` `exrscan inspect` reads.
fn readable(files: &[PathBuf]) -> usize {
    let exrscan = testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exrscan).args(["inspect", "--json"]).args(files).output().expect("exrscan inspect runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| serde_json::from_str::<serde_json::Value>(line).is_ok_and(|r| r["ok"] == true))
        .count()
}

/// Rows of `exr_files` (the table prefix the test sets), read back through the Flight SQL
/// server with ADBC.
fn sink_rows(flight: &FlightSqlServer) -> i64 {
    let code = "import sys\n\
        import adbc_driver_flightsql.dbapi as fs\n\
        with fs.connect(sys.argv[1], db_kwargs={'username': 'exrscan', 'password': 's3cret'}) as c:\n\
        \x20   cur = c.cursor()\n\
        \x20   cur.execute('SELECT count(*) FROM exr_files')\n\
        \x20   print(cur.fetchone()[0])\n";
    let out = testenv::python::run(code, &[&flight.adbc_uri()]).unwrap_or_else(|e| panic!("ADBC read-back: {e}"));
    out.trim().parse().unwrap_or_else(|e| panic!("row count {out:?}: {e}"))
}
