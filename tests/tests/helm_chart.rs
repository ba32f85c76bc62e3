//! The Helm chart `charts/exrscan-operator` with the real `helm`: lint, the values schema
//! refusing bad values, templates accepted by a real API server (server-side dry-run), and an
//! install whose rendered Deployment — args, env, probes, ServiceAccount and RBAC — runs the
//! operator binary as a local process that reconciles a scan.
//!
//! Run with `cargo build --workspace --bins && cargo test --workspace --test helm_chart`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde_json::Value;
use testenv::kube::ControlPlane;
use testenv::paths;
use testenv::process::{Server, free_port};

const RELEASE: &str = "exrscan-operator";
const RELEASE_NAMESPACE: &str = "exrscan-system";
const SCOPED_RELEASE_NAMESPACE: &str = "exrscan-scoped";
const SCAN_NAMESPACE: &str = "renders";
const POD_NAME: &str = "exrscan-operator-helm-test";
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The chart's `appVersion` (the default tag of both images).
fn app_version() -> String {
    let chart_yaml = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let line = chart_yaml.lines().find_map(|l| l.strip_prefix("appVersion:")).expect("appVersion in Chart.yaml");
    line.trim().trim_matches('"').to_string()
}

fn chart() -> PathBuf {
    workspace().join("charts/exrscan-operator")
}

/// `helm` with its config, cache and data in `home` (nothing of the user's is read or written).
fn helm(home: &Path) -> Command {
    let bin = paths::tool("helm").unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new(bin);
    for (var, dir) in [("HELM_CONFIG_HOME", "config"), ("HELM_CACHE_HOME", "cache"), ("HELM_DATA_HOME", "data")] {
        command.env(var, home.join(dir));
    }
    command
}

/// Runs `command`, feeding it `stdin`; returns (success, stdout, stderr).
fn run(mut command: Command, stdin: Option<&str>) -> (bool, String, String) {
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("writing to {command:?}: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("waiting for {command:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `command` and returns its stdout, failing the test with its stderr.
fn succeed(command: Command, stdin: Option<&str>) -> String {
    let what = format!("{command:?}");
    let (ok, stdout, stderr) = run(command, stdin);
    assert!(ok, "{what} failed:\n{stderr}\n{stdout}");
    stdout
}

/// `helm template` of the chart with `--set` values.
fn template(home: &Path, sets: &[&str]) -> (bool, String, String) {
    let mut command = helm(home);
    command.args(["template", RELEASE]).arg(chart()).args(["--namespace", RELEASE_NAMESPACE]);
    for set in sets {
        command.args(["--set", set]);
    }
    run(command, None)
}

/// Values exercising every optional part of the chart.
const NON_DEFAULT: &[&str] = &[
    "watchNamespaces={renders,lighting}",
    "replicaCount=2",
    "networkPolicy.enabled=true",
    "serviceMonitor.enabled=true",
    "logLevel=exrscan_operator=debug\\,kube=info",
    "logFormat=text",
    "image.tag=1.2.3",
    "workerImage.repository=registry.example.com/vfx/exrscan",
    "workerImage.tag=2.0.0",
    "resources.limits.memory=512Mi",
];

#[test]
fn chart_crd_is_the_generated_crd() {
    let generated = std::fs::read_to_string(workspace().join("crds/exrscan.dev_exrscans.yaml")).expect("crds/ CRD");
    let in_chart = std::fs::read_to_string(chart().join("crds/exrscan.dev_exrscans.yaml")).expect("chart CRD");
    assert!(
        generated == in_chart,
        "charts/exrscan-operator/crds/exrscan.dev_exrscans.yaml differs from crds/; copy it: \
         cp crds/exrscan.dev_exrscans.yaml charts/exrscan-operator/crds/"
    );
}

#[test]
fn helm_lint_is_clean_with_default_and_non_default_values() {
    let home = tempfile::tempdir().expect("helm home");
    for sets in [&[][..], NON_DEFAULT] {
        let mut command = helm(home.path());
        command.args(["lint", "--strict"]).arg(chart());
        for set in sets {
            command.args(["--set", set]);
        }
        let out = succeed(command, None);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "helm lint: {out}");
        assert!(!out.contains("[WARNING]") && !out.contains("[ERROR]"), "helm lint --strict reported problems:\n{out}");
    }
}

#[test]
fn values_schema_rejects_bad_values() {
    let home = tempfile::tempdir().expect("helm home");
    let (ok, _, stderr) = template(home.path(), NON_DEFAULT);
    assert!(ok, "the non-default values must render: {stderr}");
    let cases: &[(&str, &str)] = &[
        ("replicaCount=0", "/replicaCount"),
        ("replicaCount=two", "/replicaCount"),
        ("logFormat=xml", "/logFormat"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces/0"),
        ("metrics.port=70000", "/metrics/port"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("resources.limits.memory=lots", "/resources/limits/memory"),
        ("workerImage.repository=", "/workerImage/repository"),
        ("leaderElection.leaseDurationSeconds=0", "/leaderElection/leaseDurationSeconds"),
        ("serviceMonitor.interval=often", "/serviceMonitor/interval"),
        ("unknownKey=1", "unknownKey"),
    ];
    for (set, path) in cases {
        let (ok, _, stderr) = template(home.path(), &[set]);
        assert!(!ok, "--set {set} must be refused by values.schema.json");
        assert!(stderr.contains(path), "--set {set}: the error should name {path}:\n{stderr}");
    }
    // Several replicas without leader election would run competing controllers.
    let (ok, _, stderr) = template(home.path(), &["replicaCount=2", "leaderElection.enabled=false"]);
    assert!(!ok && stderr.contains("/leaderElection/enabled"), "replicas > 1 need leader election: {stderr}");
}

#[test]
fn templates_render_the_optional_parts_and_restricted_pods() {
    let home = tempfile::tempdir().expect("helm home");
    let kinds =
        |yaml: &str| yaml.lines().filter_map(|l| l.strip_prefix("kind: ")).map(str::to_owned).collect::<Vec<_>>();
    let (ok, default, stderr) = template(home.path(), &[]);
    assert!(ok, "{stderr}");
    let default_kinds = kinds(&default);
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment"]
    {
        assert!(default_kinds.iter().any(|k| k == kind), "default render lacks a {kind}: {default_kinds:?}");
    }
    for kind in ["ServiceMonitor", "NetworkPolicy"] {
        assert!(!default_kinds.iter().any(|k| k == kind), "{kind} must be opt-in");
    }
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [ALL]",
        "type: RuntimeDefault",
        "path: /healthz",
        "path: /readyz",
    ] {
        assert!(default.contains(needle), "the Deployment lacks `{needle}`");
    }
    let (ok, custom, stderr) = template(home.path(), NON_DEFAULT);
    assert!(ok, "{stderr}");
    let custom_kinds = kinds(&custom);
    for kind in ["ServiceMonitor", "NetworkPolicy"] {
        assert!(custom_kinds.iter().any(|k| k == kind), "{kind} enabled but not rendered");
    }
    // Per-namespace RBAC: nothing cluster-wide, one Role per watched namespace plus the Lease's.
    assert!(
        !custom_kinds.iter().any(|k| k.starts_with("Cluster")),
        "watchNamespaces must not create cluster-wide RBAC"
    );
    assert_eq!(custom_kinds.iter().filter(|k| *k == "Role").count(), 3, "{custom_kinds:?}");
    assert!(custom.contains("--namespaces=renders,lighting"));
    assert!(custom.contains("--worker-image=registry.example.com/vfx/exrscan:2.0.0"));
    assert!(custom.contains("ghcr.io/exrscan/exrscan-operator:1.2.3"));
}

/// Server-side dry-run of the chart's templates, then two installs — cluster-wide and
/// per-namespace RBAC — whose Deployment settings run the operator (as the chart's
/// ServiceAccount) until it reconciles a scan.
#[test]
fn chart_installs_and_its_deployment_runs_the_operator() {
    let cluster = ControlPlane::start().unwrap_or_else(|e| panic!("{e}"));
    let home = tempfile::tempdir().expect("helm home");

    let mut apply_crd = cluster.kubectl();
    apply_crd.args(["apply", "--server-side", "-f"]).arg(chart().join("crds/exrscan.dev_exrscans.yaml"));
    succeed(apply_crd, None);
    let mut established = cluster.kubectl();
    established.args(["wait", "--for=condition=Established", "--timeout=30s", "crd/exrscans.exrscan.dev"]);
    succeed(established, None);
    for namespace in [RELEASE_NAMESPACE, SCOPED_RELEASE_NAMESPACE, SCAN_NAMESPACE, "lighting"] {
        let mut create = cluster.kubectl();
        create.args(["create", "namespace", namespace]);
        succeed(create, None);
    }

    // The ServiceMonitor CRD is not installed here; every other kind is checked by the server.
    let without_service_monitor: Vec<&str> =
        NON_DEFAULT.iter().copied().filter(|s| !s.starts_with("serviceMonitor")).collect();
    for sets in [&[][..], &without_service_monitor[..]] {
        let (ok, rendered, stderr) = template(home.path(), sets);
        assert!(ok, "{stderr}");
        let mut dry_run = cluster.kubectl();
        dry_run.args(["apply", "--dry-run=server", "-f", "-"]);
        let out = succeed(dry_run, Some(&rendered));
        assert!(
            out.contains("deployment.apps/exrscan-operator created (server dry run)"),
            "dry run with {sets:?}:\n{out}"
        );
    }

    let cluster_wide = Install {
        release: RELEASE,
        namespace: RELEASE_NAMESPACE,
        sets: &["workerImage.repository=registry.example.com/vfx/exrscan", "workerImage.tag=2.0.0", "logLevel=debug"],
        worker_image: "registry.example.com/vfx/exrscan:2.0.0",
        scan_namespace: SCAN_NAMESPACE,
    };
    let operator = install_and_reconcile(&cluster, home.path(), &cluster_wide);
    let log = std::fs::read_to_string(operator.log_path()).unwrap_or_default();
    assert!(log.contains("DEBUG"), "logLevel=debug must reach RUST_LOG:\n{}", operator.log_tail(20));
    drop(operator);

    // A scan outside the scoped release's namespaces, applied while no operator runs.
    let mut ignored = cluster.kubectl();
    ignored.args(["apply", "--namespace", SCAN_NAMESPACE, "-f", "-"]);
    let example = std::fs::read_to_string(workspace().join("examples/minimal-scan.yaml")).expect("example scan");
    succeed(ignored, Some(&example.replace("name: abc-renders", "name: not-watched")));

    let scoped = Install {
        release: "scoped",
        namespace: SCOPED_RELEASE_NAMESPACE,
        sets: &["watchNamespaces={lighting}"],
        worker_image: &format!("ghcr.io/exrscan/exrscan:{}", app_version()),
        scan_namespace: "lighting",
    };
    let operator = install_and_reconcile(&cluster, home.path(), &scoped);
    let mut cluster_roles = cluster.kubectl();
    cluster_roles.args(["get", "clusterroles", "-o", "name"]);
    assert!(
        !succeed(cluster_roles, None).contains("scoped-exrscan-operator"),
        "watchNamespaces must not create a ClusterRole"
    );
    let mut get = cluster.kubectl();
    get.args(["get", "exrscan", "not-watched", "--namespace", SCAN_NAMESPACE, "-o", "jsonpath={.status}"]);
    assert_eq!(succeed(get, None), "", "a scan outside watchNamespaces got a status:\n{}", operator.log_tail(20));
}

/// One `helm install` of the chart and the scan it must reconcile.
struct Install<'a> {
    release: &'a str,
    namespace: &'a str,
    sets: &'a [&'a str],
    /// The worker image the values give the scan's Jobs.
    worker_image: &'a str,
    scan_namespace: &'a str,
}

/// Installs the chart, runs the operator with its stored Deployment's args, env, probes and
/// ServiceAccount, and waits until `examples/minimal-scan.yaml` in the scan namespace has a
/// status, a planner Job of the worker image and its worker RBAC. Returns the running operator.
fn install_and_reconcile(cluster: &ControlPlane, home: &Path, install: &Install) -> Server {
    let mut helm_install = helm(home);
    helm_install
        .args(["install", install.release])
        .arg(chart())
        .args(["--namespace", install.namespace, "--kubeconfig"])
        .arg(cluster.kubeconfig_path());
    for set in install.sets {
        helm_install.args(["--set", set]);
    }
    let notes = succeed(helm_install, None);
    assert!(notes.contains("Create a first scan") && notes.contains("kind: ExrScan"), "NOTES.txt: {notes}");

    // The Deployment as the API server stored it.
    let fullname = if install.release.contains("exrscan-operator") {
        install.release.to_string()
    } else {
        format!("{}-exrscan-operator", install.release)
    };
    let mut get = cluster.kubectl();
    get.args(["get", "deployment", &fullname, "--namespace", install.namespace, "-o", "json"]);
    let deployment: Deployment = serde_json::from_str(&succeed(get, None)).expect("Deployment JSON");
    let pod = deployment.spec.and_then(|s| s.template.spec).expect("pod spec");
    let account = pod.service_account_name.clone().expect("serviceAccountName");
    let container = pod.containers.first().cloned().expect("a container");

    // Run as the chart's ServiceAccount: its token in a copy of the admin kubeconfig.
    let mut token = cluster.kubectl();
    token.args(["create", "token", &account, "--namespace", install.namespace, "--duration=1h"]);
    let token = succeed(token, None);
    let dir = cluster.dir().join(install.release);
    std::fs::create_dir_all(&dir).expect("operator work dir");
    let kubeconfig = dir.join("operator.kubeconfig");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(cluster.kubeconfig_path()).expect("admin kubeconfig"))
            .expect("kubeconfig JSON");
    config["users"][0]["user"] = serde_json::json!({ "token": token.trim() });
    std::fs::write(&kubeconfig, config.to_string()).expect("writing kubeconfig");

    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let operator = start_operator(&container, &kubeconfig, port, install.namespace, &dir);
    let base = format!("http://127.0.0.1:{port}");
    for probe in [container.liveness_probe.as_ref(), container.readiness_probe.as_ref()] {
        let path = probe.and_then(|p| p.http_get.as_ref()).and_then(|g| g.path.clone()).expect("an httpGet probe");
        wait_for(&operator, &format!("{path} answering 200"), || http_status(&format!("{base}{path}")) == Some(200));
    }

    // The Lease in the release namespace, held under the Deployment's POD_NAME.
    wait_for(&operator, "the leader Lease", || {
        let mut get = cluster.kubectl();
        get.args([
            "get",
            "lease",
            "exrscan-operator",
            "--namespace",
            install.namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        matches!(run(get, None), (true, out, _) if out == POD_NAME)
    });

    let mut apply_scan = cluster.kubectl();
    apply_scan
        .args(["apply", "--namespace", install.scan_namespace, "-f"])
        .arg(workspace().join("examples/minimal-scan.yaml"));
    succeed(apply_scan, None);

    let get_json = |args: &[&str], done: &dyn Fn(&Value) -> bool| {
        let mut last = Value::Null;
        wait_for(&operator, &args.join(" "), || {
            let mut get = cluster.kubectl();
            get.args(args).args(["--namespace", install.scan_namespace, "-o", "json"]);
            let (ok, out, _) = run(get, None);
            last = if ok { serde_json::from_str(&out).unwrap_or(Value::Null) } else { Value::Null };
            done(&last)
        });
        last
    };
    let scan = get_json(&["get", "exrscan", "abc-renders"], &|s| s["status"]["phase"].as_str() == Some("Planning"));
    assert!(
        scan["status"]["conditions"].as_array().is_some_and(|c| !c.is_empty()),
        "status without conditions: {scan}"
    );
    let jobs = get_json(&["get", "jobs"], &|j| j["items"].as_array().is_some_and(|i| !i.is_empty()));
    let job = &jobs["items"][0];
    let name = job["metadata"]["name"].as_str().unwrap_or_default();
    assert!(name.starts_with("abc-renders-plan-"), "the planner Job: {name}");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"].as_str(),
        Some(install.worker_image),
        "the chart's workerImage must reach the scan's Jobs"
    );
    let mut worker_rbac = cluster.kubectl();
    worker_rbac.args([
        "get",
        "serviceaccount,role,rolebinding",
        "abc-renders-worker",
        "--namespace",
        install.scan_namespace,
        "-o",
        "name",
    ]);
    assert_eq!(succeed(worker_rbac, None).lines().count(), 3, "the worker's ServiceAccount, Role and RoleBinding");

    let log = std::fs::read_to_string(operator.log_path()).unwrap_or_default();
    assert!(!log.to_lowercase().contains("forbidden"), "the chart's RBAC refused the operator something:\n{log}");
    operator
}

/// Starts the operator with the container's args and env, the metrics address moved to a free
/// loopback port and the downward-API variables filled in as the kubelet would.
fn start_operator(container: &Container, kubeconfig: &Path, port: u16, namespace: &str, dir: &Path) -> Server {
    let mut args = container.args.clone().unwrap_or_default();
    let metrics = args.iter_mut().find(|a| a.starts_with("--metrics-address=")).expect("a --metrics-address arg");
    *metrics = format!("--metrics-address=127.0.0.1:{port}");
    let mut command = Command::new(paths::workspace_bin("exrscan-operator").unwrap_or_else(|e| panic!("{e}")));
    command.args(&args).env_clear().env("KUBECONFIG", kubeconfig);
    for EnvVar { name, value, value_from } in container.env.clone().unwrap_or_default() {
        let value = match (value, value_from.and_then(|f| f.field_ref).map(|f| f.field_path)) {
            (Some(value), _) => value,
            (None, Some(path)) if path == "metadata.name" => POD_NAME.to_string(),
            (None, Some(path)) if path == "metadata.namespace" => namespace.to_string(),
            (value, path) => panic!("env {name}: the test cannot fill in {value:?} / {path:?}"),
        };
        command.env(name, value);
    }
    Server::spawn("exrscan-operator", command, &dir.join("operator.log")).unwrap_or_else(|e| panic!("{e}"))
}

fn wait_for(operator: &Server, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + RECONCILE_TIMEOUT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "no {what} after {RECONCILE_TIMEOUT:?}; operator log:\n{}",
            operator.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The status code of a GET, or `None` when nothing answered.
fn http_status(url: &str) -> Option<u16> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    agent.get(url).call().ok().map(|r| r.status().as_u16())
}
