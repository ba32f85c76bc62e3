//! The operator's integration-test harness: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager) from `testenv`, the ExrScan CRD installed from the committed
//! YAML, a node agent that runs worker pods as local processes of a **fake worker** (a
//! shell script that follows the worker contract: it writes the plan chunks and header with
//! kubectl, checks that its pod sees the header and its own chunk, patches
//! its key of the run's progress ConfigMap, writes a termination-message summary and exits
//! with the contract's codes), and operator processes started from this crate's binary.
//!
//! Each scan's shards behave as its behaviour file says (`Harness::behave`): a shell
//! fragment run by the fake worker with `$i` (the shard index) and `$n` (the attempt of this
//! index, from 1) set and the functions `progress` and `summary` defined.

#![allow(dead_code)] // each test file uses part of the harness

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use exrscan_crds::ExrScan;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use testenv::kube::{ControlPlane, NodeAgent, NodeAgentConfig};
use testenv::process::{Server, free_port};

/// The image name operators in tests give to worker pods.
pub const TEST_IMAGE: &str = "exrscan-test:dev";

/// A control plane with the CRD, a node agent running the fake worker, and operators.
pub struct Harness {
    pub cluster: ControlPlane,
    pub client: Client,
    pub agent: Option<NodeAgent>,
    /// Where the fake worker finds behaviour files and keeps attempt counters.
    pub behaviours: PathBuf,
}

/// A running `exrscan-operator run`.
pub struct Operator {
    pub server: Server,
    pub metrics_port: u16,
    pub identity: String,
}

impl Operator {
    /// GET `path` from the operator's HTTP port: (status code, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.metrics_port, path)
    }
}

impl Harness {
    /// Starts the control plane and installs the CRD; with `agent`, also a node agent that
    /// runs `exrscan` as the fake worker.
    pub async fn start(agent: bool) -> Harness {
        let cluster = ControlPlane::start().unwrap_or_else(|e| panic!("{e}"));
        let client = cluster.client().await.unwrap_or_else(|e| panic!("{e}"));
        let crd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/exrscan.dev_exrscans.yaml");
        kubectl_ok(&cluster, &["apply", "-f", &crd.display().to_string()]);
        kubectl_ok(&cluster, &["wait", "--for=condition=Established", "--timeout=60s", "crd/exrscans.exrscan.dev"]);
        let behaviours = cluster.dir().join("behaviours");
        std::fs::create_dir_all(&behaviours).expect("behaviour dir");
        let agent = agent.then(|| {
            let script = write_fake_worker(cluster.dir(), &behaviours);
            cluster
                .start_node_agent(NodeAgentConfig::new("node-1").map("exrscan", script))
                .unwrap_or_else(|e| panic!("{e}"))
        });
        Harness { cluster, client, agent, behaviours }
    }

    /// A node agent `node-1` that runs worker pods as the real `exrscan` binary (for a
    /// harness started without the fake worker's agent).
    pub fn exrscan_agent(&self) -> NodeAgent {
        let exrscan = testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}"));
        self.cluster
            .start_node_agent(NodeAgentConfig::new("node-1").map("exrscan", exrscan))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates the Secrets `(name, [(key, value)])` in the namespace `default`.
    pub async fn secrets(&self, secrets: &[(&str, Vec<(&str, &str)>)]) {
        testenv::kube::create_secrets(&self.client, "default", secrets).await.expect("secrets created");
    }

    /// Starts an operator replica with a short Lease (3 s) and fast resyncs.
    pub fn operator(&self, identity: &str, extra: &[&str]) -> Operator {
        let port = free_port().expect("free port");
        let mut cmd = Command::new(operator_bin());
        cmd.env("KUBECONFIG", self.cluster.kubeconfig_path())
            .env("RUST_LOG", "info,exrscan_operator=debug")
            .args(["run", "--log-format", "text", "--worker-image", TEST_IMAGE, "--identity", identity])
            .args(["--lease-namespace", "default"])
            // Fast settings for tests, unless the caller sets its own.
            .args(
                [
                    ("--lease-duration-seconds", "3"),
                    ("--active-resync-seconds", "2"),
                    ("--progress-interval-seconds", "1"),
                ]
                .into_iter()
                .filter(|(flag, _)| !extra.iter().any(|a| a.starts_with(flag)))
                .flat_map(|(flag, value)| [flag, value]),
            )
            .arg(format!("--metrics-address=127.0.0.1:{port}"))
            .args(extra);
        let log = self.cluster.dir().join(format!("operator-{identity}.log"));
        let mut server =
            Server::spawn(&format!("exrscan-operator ({identity})"), cmd, &log).unwrap_or_else(|e| panic!("{e}"));
        server
            .wait_until(Duration::from_secs(30), || http_get(port, "/healthz").is_some_and(|(c, _)| c == 200))
            .unwrap_or_else(|e| panic!("{e}"));
        Operator { server, metrics_port: port, identity: identity.to_string() }
    }

    /// Creates a namespace.
    pub async fn namespace(&self, name: &str) {
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
    }

    /// Sets how the shards of `scan` behave (a shell fragment, see the module docs).
    pub fn behave(&self, scan: &str, fragment: &str) {
        std::fs::write(self.behaviours.join(format!("{scan}.shard")), fragment).expect("behaviour written");
    }

    /// `kubectl apply` of `yaml`; returns (success, stderr).
    pub fn apply(&self, yaml: &str) -> (bool, String) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = self.cluster.dir().join(format!("apply-{}.yaml", COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, yaml).expect("manifest written");
        let out =
            self.cluster.kubectl().args(["apply", "-f", &path.display().to_string()]).output().expect("kubectl runs");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// The ExrScan `name` in `ns`.
    pub async fn scan(&self, ns: &str, name: &str) -> ExrScan {
        Api::<ExrScan>::namespaced(self.client.clone(), ns).get(name).await.expect("scan exists")
    }

    /// Polls `scan` until `done` holds, failing with the last status after `timeout`.
    pub async fn wait_scan(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&ExrScan) -> bool,
    ) -> ExrScan {
        let deadline = Instant::now() + timeout;
        let api = Api::<ExrScan>::namespaced(self.client.clone(), ns);
        loop {
            // A dropped connection is retried: only the deadline fails the wait.
            let scan = match api.get(name).await {
                Ok(scan) => scan,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("{ns}/{name}: reading the scan failed ({error}); retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(error) => panic!("{ns}/{name}: reading the scan failed: {error}\n{}", self.diagnostics()),
            };
            if done(&scan) {
                return scan;
            }
            if Instant::now() > deadline {
                panic!(
                    "{ns}/{name}: timed out waiting for {what}; status: {}\n{}",
                    serde_json::to_string_pretty(&scan.status).unwrap_or_default(),
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Jobs of a scan.
    pub async fn jobs(&self, ns: &str, scan: &str) -> Vec<Job> {
        Api::<Job>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(&format!("exrscan.dev/scan={scan}")))
            .await
            .expect("jobs listed")
            .items
    }

    /// Events about a scan, as (type, reason, note).
    pub async fn events(&self, ns: &str, scan: &str) -> Vec<(String, String, String)> {
        Api::<Event>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("events listed")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(scan))
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits until an Event with `reason` exists for `scan`.
    pub async fn wait_event(&self, ns: &str, scan: &str, reason: &str) -> (String, String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.events(ns, scan).await.into_iter().find(|e| e.1 == reason) {
                return e;
            }
            assert!(Instant::now() < deadline, "no {reason} Event for {ns}/{scan}: {:?}", self.events(ns, scan).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Server logs for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut text = self.cluster.log_tails(15);
        if let Some(agent) = &self.agent {
            text.push_str(&format!("\n--- node agent\n{}", agent.log_tail(30)));
        }
        if let Ok(dir) = std::fs::read_dir(self.cluster.dir()) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("operator-") {
                    let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    text.push_str(&format!("\n--- {name}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
                }
            }
        }
        text
    }
}

/// The operator binary: `$EXRSCAN_OPERATOR_BIN` (e.g. a release build, for benchmarks),
/// else the one cargo built for these tests.
pub fn operator_bin() -> PathBuf {
    std::env::var_os("EXRSCAN_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_exrscan-operator").into())
}

/// Runs kubectl and fails the test with its stderr if it fails.
pub fn kubectl_ok(cluster: &ControlPlane, args: &[&str]) -> String {
    let out = cluster.kubectl().args(args).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scan manifest with a Flight sink (the sink is never contacted by the fake worker).
pub fn scan_yaml(ns: &str, name: &str, shards: i32, extra_spec: &str) -> String {
    format!(
        "apiVersion: exrscan.dev/v1alpha1\nkind: ExrScan\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  source:\n    bucket: renders\n    prefix: shows/{name}/\n  sink:\n    flight:\n      endpoint: 127.0.0.1:1\n  shards: {shards}\n{extra_spec}"
    )
}

/// Minimal HTTP/1.0 GET on loopback.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// Writes the fake worker: `exrscan plan …` writes a chunk into each chunk ConfigMap, then the
/// header, with the pod's own ServiceAccount (exercising the per-scan Role); `exrscan shard …`
/// exits 2 unless the plan volume holds the header and the shard's chunk, then runs the
/// scan's behaviour fragment, by default: progress, then a summary of 10 inserted files, exit 0.
fn write_fake_worker(dir: &Path, behaviours: &Path) -> PathBuf {
    let kubectl = testenv::paths::tool("kubectl").unwrap_or_else(|e| panic!("{e}"));
    let script = format!(
        r#"#!/bin/sh
# Fake exrscan worker for the operator's tests (follows docs/worker-contract.md).
set -u
KUBECTL='{kubectl}'
DIR='{behaviours}'
LOG="${{EXRSCAN_TERMINATION_LOG:-/dev/termination-log}}"
report() {{ # JSON: this shard's entry in its run's progress ConfigMap
  map="$EXRSCAN_PROGRESS_CONFIGMAP-$((JOB_COMPLETION_INDEX / EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP))"
  entry=$(printf '%s' "$1" | sed 's/"/\\"/g')
  "$KUBECTL" -n "$POD_NAMESPACE" patch configmap "$map" --type merge \
    -p "{{\"data\":{{\"$JOB_COMPLETION_INDEX\":\"$entry\"}}}}" >/dev/null || exit 3
}}
progress() {{ # processed inserted
  report "{{\"counts\":{{\"discovered\":10,\"processed\":$1,\"inserted\":$2}}}}"
}}
summary() {{ # processed inserted unchanged failed [error]
  err=""
  [ $# -ge 5 ] && err=",\"error\":\"$5\""
  counts=$(printf '"counts":{{"discovered":10,"processed":%s,"inserted":%s,"unchanged":%s,"failed":%s,"bytesRead":%s}}' \
    "$1" "$2" "$3" "$4" "$(($1 * 1000))")
  report "{{$counts}}"
  printf '{{%s%s}}' "$counts" "$err" > "$LOG"
}}
cmd=$1; shift
case "$cmd" in
plan)
  src=$1; shards=$3; cm=$5; per=$7
  [ -f "$DIR/$EXRSCAN_SCAN_NAME.plan" ] && . "$DIR/$EXRSCAN_SCAN_NAME.plan"
  k=0
  while [ $((k * per)) -lt "$shards" ]; do
    "$KUBECTL" -n "$POD_NAMESPACE" patch configmap "$cm-$k" --type merge \
      -p "{{\"data\":{{\"partitions-$k.json\":\"{{\\\"first\\\":$((k * per))}}\"}}}}" >/dev/null || exit 3
    k=$((k + 1))
  done
  header="{{\\\"source\\\":\\\"$src\\\",\\\"shards\\\":$shards,\\\"shardsPerChunk\\\":$per}}"
  "$KUBECTL" -n "$POD_NAMESPACE" patch configmap "$cm" --type merge -p "{{\"data\":{{\"plan.json\":\"$header\"}}}}" || exit 3
  ;;
shard)
  [ "$1" = "--plan" ] && [ -s "$2" ] || {{ echo "no plan at $2" > "$LOG"; exit 2; }}
  per=$(sed 's/.*"shardsPerChunk":\([0-9]*\).*/\1/' "$2")
  chunk="$(dirname "$2")/partitions-$((JOB_COMPLETION_INDEX / per)).json"
  [ -s "$chunk" ] || {{ echo "no plan chunk at $chunk" > "$LOG"; exit 2; }}
  i=$JOB_COMPLETION_INDEX
  counter="$DIR/$EXRSCAN_SCAN_NAME.$i.attempts"
  n=$(( $(cat "$counter" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$counter"
  if [ -f "$DIR/$EXRSCAN_SCAN_NAME.shard" ]; then
    . "$DIR/$EXRSCAN_SCAN_NAME.shard"
  else
    progress 5 5; sleep 1; summary 10 10 0 0
  fi
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
exit 0
"#,
        kubectl = kubectl.display(),
        behaviours = behaviours.display()
    );
    let path = dir.join("fake-exrscan.sh");
    std::fs::write(&path, script).expect("fake worker written");
    let mut perms = std::fs::metadata(&path).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).expect("chmod");
    path
}
