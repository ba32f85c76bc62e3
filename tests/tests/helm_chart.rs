//! The Helm chart `charts/exrscan-operator` with the real `helm`: lint, the values schema
//! refusing bad values, templates accepted by a real API server (server-side dry-run), the
//! chart as a subchart of an umbrella chart, the PrometheusRule checked by `promtool`, the
//! Grafana dashboard and the kube-state-metrics configuration of docs/operations.md against
//! the metrics and the CRD that exist, the GitOps examples, and an install whose rendered
//! Deployment — args, env, probes, ServiceAccount and RBAC — runs the operator binary as a
//! local process that reconciles a scan.
//!
//! Run with `cargo build --workspace --bins && cargo test -p exrscan-tests --test helm_chart`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde::Deserialize;
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

/// A top-level field of the chart's `Chart.yaml`.
fn chart_field(field: &str) -> String {
    let chart_yaml: Value = serde_yaml::from_str(&read(&chart().join("Chart.yaml"))).expect("Chart.yaml");
    chart_yaml[field].as_str().unwrap_or_else(|| panic!("{field} in Chart.yaml")).to_string()
}

/// The chart's `appVersion` (the default tag of both images).
fn app_version() -> String {
    chart_field("appVersion")
}

/// The Kubernetes version of the test control plane (`tests/env/go/controlplane/go.mod`),
/// given to `helm template` as the cluster's (a `go install`ed helm otherwise assumes 1.20,
/// which the chart's `kubeVersion` refuses).
fn kube_version() -> String {
    let go_mod = read(&workspace().join("tests/env/go/controlplane/go.mod"));
    let version = go_mod.lines().find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "));
    version.map(|v| v.trim().to_string()).expect("k8s.io/kubernetes in the control plane's go.mod")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
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

/// `helm template` of the chart with `--set` values, for the test control plane's version.
fn template(home: &Path, sets: &[&str]) -> (bool, String, String) {
    template_for(home, &kube_version(), &[], sets)
}

/// `helm template` of the chart for Kubernetes `version`, with more arguments and `--set` values.
fn template_for(home: &Path, version: &str, args: &[&str], sets: &[&str]) -> (bool, String, String) {
    let mut command = helm(home);
    command.args(["template", RELEASE]).arg(chart()).args(["--namespace", RELEASE_NAMESPACE]);
    command.args(["--kube-version", version]).args(args);
    for set in sets {
        command.args(["--set", set]);
    }
    run(command, None)
}

/// Renders the chart and parses the manifests.
fn render(home: &Path, sets: &[&str]) -> Vec<Value> {
    let (ok, rendered, stderr) = template(home, sets);
    assert!(ok, "helm template {sets:?}: {stderr}");
    documents(&rendered)
}

/// The documents of a YAML stream, empty ones left out.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("parsing rendered YAML: {e}\n{yaml}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The objects of `kind` among `docs`.
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The one object of `kind` among `docs`.
fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
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
    "aggregatedRoles.enabled=false",
    "podAntiAffinity=hard",
    "global.imagePullSecrets={regcred}",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    "monitoring.prometheusRule.disabled={ExrScanReconcileSlow}",
    "monitoring.grafanaDashboard.enabled=true",
    "monitoring.grafanaDashboard.annotations.grafana_folder=exrscan",
    "workerPods.podLabels.team=pipeline",
];

/// `workerPods` values: the defaults of every scan's worker pods and worker ServiceAccount.
const WORKER_PODS: &[&str] = &[
    "workerPods.imagePullSecrets[0].name=studio-registry",
    "workerPods.nodeSelector.pool=batch",
    "workerPods.tolerations[0].key=batch",
    "workerPods.tolerations[0].operator=Exists",
    "workerPods.priorityClassName=batch-low",
    "workerPods.podLabels.team=pipeline",
    "workerPods.podAnnotations.example\\.com/owner=pipeline",
    "workerPods.serviceAccountAnnotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/exrscan",
];

/// A digest in the form `image.digest` takes.
const DIGEST: &str = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

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
        ("image.digest=sha256:abc", "/image/digest"),
        ("podAntiAffinity=always", "/podAntiAffinity"),
        ("monitoring.prometheusRule.disabled={ExrScanTypo}", "/monitoring/prometheusRule/disabled/0"),
        ("monitoring.grafanaDashboard.namespace=Not_A_Namespace", "/monitoring/grafanaDashboard/namespace"),
        ("unknownKey=1", "unknownKey"),
        ("workerPods.nodeSelectr.pool=batch", "nodeSelectr"),
        ("workerPods.podLabels.exrscan\\.dev/run=x", "invalid propertyName 'exrscan.dev/run'"),
        ("workerPods.podLabels.app\\.kubernetes\\.io/managed-by=me", "'app.kubernetes.io/managed-by'"),
        ("workerPods.imagePullSecrets[0].nam=x", "/workerPods/imagePullSecrets/0"),
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
    for kind in ["ServiceMonitor", "NetworkPolicy", "PrometheusRule", "PodDisruptionBudget", "ConfigMap"] {
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
    let docs = documents(&default);
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert!(pod["affinity"].is_null(), "one replica needs no anti-affinity: {}", pod["affinity"]);
    // The aggregated roles for people, by their fixed names and aggregation labels.
    for (name, label, verb) in [
        ("exrscan-view", "rbac.authorization.k8s.io/aggregate-to-view", "watch"),
        ("exrscan-edit", "rbac.authorization.k8s.io/aggregate-to-edit", "delete"),
    ] {
        let role = of_kind(&docs, "ClusterRole").into_iter().find(|r| r["metadata"]["name"] == name);
        let role = role.unwrap_or_else(|| panic!("no ClusterRole {name}"));
        assert_eq!(role["metadata"]["labels"][label], "true", "{name}: {role}");
        let rules = role["rules"].as_array().expect("rules");
        assert!(rules.iter().all(|r| r["apiGroups"] == serde_json::json!(["exrscan.dev"])), "{name}: {role}");
        assert!(rules[0]["verbs"].as_array().is_some_and(|v| v.contains(&Value::from(verb))), "{name}: {role}");
    }

    let (ok, custom, stderr) = template(home.path(), NON_DEFAULT);
    assert!(ok, "{stderr}");
    let custom_kinds = kinds(&custom);
    for kind in ["ServiceMonitor", "NetworkPolicy", "PrometheusRule", "PodDisruptionBudget", "ConfigMap"] {
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
    let docs = documents(&custom);
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["imagePullSecrets"], serde_json::json!([{ "name": "regcred" }]), "global.imagePullSecrets");
    let required = &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(required["topologyKey"], "kubernetes.io/hostname", "podAntiAffinity=hard: {}", pod["affinity"]);
    assert_eq!(required["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"], RELEASE);
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], "exrscan-operator");
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(alerts.len(), 7, "one of the eight alerts disabled: {alerts:?}");
    assert!(!alerts.contains(&"ExrScanReconcileSlow"), "{alerts:?}");
    let dashboard = one(&docs, "ConfigMap");
    assert_eq!(dashboard["metadata"]["annotations"]["grafana_folder"], "exrscan");

    // A digest replaces the tag; global.imageRegistry replaces the registry host of both images.
    let digest = format!("image.digest={DIGEST}");
    let docs = render(home.path(), &[&digest, "global.imageRegistry=mirror.example.com", "workerImage.tag=2.0.0"]);
    let container = &one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], format!("mirror.example.com/exrscan/exrscan-operator@{DIGEST}"));
    let args = container["args"].as_array().expect("args");
    assert!(args.contains(&Value::from("--worker-image=mirror.example.com/exrscan/exrscan:2.0.0")), "{args:?}");

    // workerPods: no defaults unless set, then the set ones as JSON in one variable.
    let worker_pod_defaults = |docs: &[Value]| {
        let env = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        let env = env.as_array().cloned().unwrap_or_default();
        env.iter().find(|e| e["name"] == "EXRSCAN_WORKER_POD_DEFAULTS").map(|e| e["value"].clone())
    };
    assert_eq!(worker_pod_defaults(&render(home.path(), &[])), None, "empty workerPods set nothing");
    let text = worker_pod_defaults(&render(home.path(), WORKER_PODS)).expect("EXRSCAN_WORKER_POD_DEFAULTS");
    let defaults: Value = serde_json::from_str(text.as_str().expect("a string")).expect("JSON");
    assert_eq!(
        defaults,
        serde_json::json!({
            "imagePullSecrets": [{ "name": "studio-registry" }],
            "nodeSelector": { "pool": "batch" },
            "tolerations": [{ "key": "batch", "operator": "Exists" }],
            "priorityClassName": "batch-low",
            "podLabels": { "team": "pipeline" },
            "podAnnotations": { "example.com/owner": "pipeline" },
            "serviceAccountAnnotations": { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/exrscan" },
        }),
        "only the values set, nothing empty"
    );
}

#[test]
fn chart_requires_kubernetes_1_29() {
    let home = tempfile::tempdir().expect("helm home");
    let (ok, _, stderr) = template_for(home.path(), "1.28.9", &[], &[]);
    assert!(
        !ok && stderr.contains("chart requires kubeVersion: >=1.29.0-0"),
        "Kubernetes 1.28 must be refused: {stderr}"
    );
    let (ok, _, stderr) = template_for(home.path(), "1.29.0", &[], &[]);
    assert!(ok, "Kubernetes 1.29 must be accepted: {stderr}");
}

/// The chart as the dependency of a generated umbrella chart (`file://`), with the umbrella's
/// `global` values and values under the subchart's name: lint and render.
#[test]
fn chart_works_as_a_subchart_with_global_values() {
    let home = tempfile::tempdir().expect("helm home");
    let umbrella = tempfile::tempdir().expect("umbrella chart");
    let dir = umbrella.path();
    let chart_yaml = serde_json::json!({
        "apiVersion": "v2",
        "name": "platform",
        "description": "an umbrella chart",
        "version": "1.0.0",
        "icon": "https://example.com/icon.png",
        "dependencies": [{
            "name": "exrscan-operator",
            "version": chart_field("version"),
            "repository": format!("file://{}", chart().display()),
        }],
    });
    std::fs::write(dir.join("Chart.yaml"), chart_yaml.to_string()).expect("umbrella Chart.yaml");
    let values = serde_json::json!({
        "global": { "imageRegistry": "mirror.example.com:5000", "imagePullSecrets": ["regcred"] },
        "exrscan-operator": {
            "replicaCount": 2,
            "image": { "digest": DIGEST },
            "imagePullSecrets": [{ "name": "own" }],
            "monitoring": { "prometheusRule": { "enabled": true } },
        },
    });
    std::fs::write(dir.join("values.yaml"), values.to_string()).expect("umbrella values.yaml");
    let mut update = helm(home.path());
    update.args(["dependency", "update"]).arg(dir);
    succeed(update, None);
    let mut lint = helm(home.path());
    lint.args(["lint", "--strict", "--with-subcharts"]).arg(dir);
    let out = succeed(lint, None);
    assert!(out.contains("0 chart(s) failed") && !out.contains("[WARNING]"), "helm lint of the umbrella:\n{out}");

    let mut template = helm(home.path());
    template.args(["template", "platform"]).arg(dir).args([
        "--namespace",
        "platform",
        "--kube-version",
        &kube_version(),
    ]);
    let docs = documents(&succeed(template, None));
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "platform-exrscan-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], format!("mirror.example.com:5000/exrscan/exrscan-operator@{DIGEST}"));
    let args = pod["containers"][0]["args"].as_array().expect("args");
    let worker = format!("--worker-image=mirror.example.com:5000/exrscan/exrscan:{}", app_version());
    assert!(args.contains(&Value::from(worker.as_str())), "{worker} in {args:?}");
    assert_eq!(pod["imagePullSecrets"], serde_json::json!([{ "name": "own" }, { "name": "regcred" }]));
    let preferred = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(preferred["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname", "{}", pod["affinity"]);
    assert_eq!(one(&docs, "PodDisruptionBudget")["metadata"]["namespace"], "platform");
    assert_eq!(one(&docs, "PrometheusRule")["metadata"]["name"], "platform-exrscan-operator");
}

/// The rendered PrometheusRule passes `promtool check rules`; its alerts read only metrics the
/// operator exports and link runbooks that exist in docs/troubleshooting.md.
#[test]
fn prometheus_rule_passes_promtool_and_reads_exported_metrics() {
    let home = tempfile::tempdir().expect("helm home");
    let docs = render(home.path(), &["monitoring.prometheusRule.enabled=true"]);
    let rule = one(&docs, "PrometheusRule");
    let rules_file = home.path().join("rules.yaml");
    std::fs::write(&rules_file, serde_json::json!({ "groups": rule["spec"]["groups"] }).to_string()).expect("rules");
    let out = promtool_check_rules(&rules_file);
    assert!(out.contains("SUCCESS: 8 rules found"), "promtool: {out}");

    let exported = operator_metrics();
    let troubleshooting = read(&workspace().join("docs/troubleshooting.md"));
    let anchors: BTreeSet<String> =
        troubleshooting.lines().filter_map(|l| l.strip_prefix("### ")).map(github_anchor).collect();
    let base = "https://github.com/exrscan/exrscan/blob/main/docs/troubleshooting.md#";
    let mut names = Vec::new();
    for alert in rule["spec"]["groups"][0]["rules"].as_array().expect("rules") {
        let name = alert["alert"].as_str().expect("alert name");
        names.push(name.to_string());
        let expr = alert["expr"].as_str().expect("expr");
        let read = metric_names(expr);
        assert!(!read.is_empty() && read.is_subset(&exported), "{name} reads {read:?}; exported: {exported:?}");
        assert!(expr.contains("job=\"exrscan-operator-metrics\",namespace=\"exrscan-system\""), "{name}: {expr}");
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(["critical", "warning", "info"].contains(&severity), "{name}: severity {severity:?}");
        assert!(alert["annotations"]["summary"].as_str().is_some_and(|s| !s.is_empty()), "{name}: no summary");
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let anchor = runbook.strip_prefix(base).unwrap_or_else(|| panic!("{name}: runbook_url {runbook}"));
        assert!(anchors.contains(anchor), "{name}: no heading `### {name}` in docs/troubleshooting.md");
    }
    // The schema's list of alerts that may be disabled is the list of alerts.
    let schema: Value = serde_json::from_str(&read(&chart().join("values.schema.json"))).expect("schema JSON");
    let disabled = &schema["properties"]["monitoring"]["properties"]["prometheusRule"]["properties"]["disabled"];
    let listed: Vec<String> = serde_json::from_value(disabled["items"]["enum"].clone()).expect("an enum of alerts");
    assert_eq!(listed, names, "values.schema.json's monitoring.prometheusRule.disabled enum");
}

/// The dashboard in its ConfigMap is JSON; every query is PromQL that `promtool` accepts and
/// reads only metrics of the operator or of the kube-state-metrics configuration.
#[test]
fn grafana_dashboard_is_json_over_existing_metrics() {
    let home = tempfile::tempdir().expect("helm home");
    let docs = render(home.path(), &["monitoring.grafanaDashboard.enabled=true"]);
    let config_map = one(&docs, "ConfigMap");
    assert_eq!(config_map["metadata"]["name"], "exrscan-operator-dashboard");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let text = config_map["data"]["exrscan.json"].as_str().expect("exrscan.json in the ConfigMap");
    let dashboard: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("the dashboard is not JSON: {e}"));
    assert_eq!(dashboard["uid"], "exrscan-operator");

    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);
    let ids: BTreeSet<i64> = panels.iter().filter_map(|p| p["id"].as_i64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids must be unique");
    let known: BTreeSet<String> = operator_metrics().union(&kube_state_metrics()).cloned().collect();
    let mut read = BTreeSet::new();
    let mut recording = Vec::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or_default();
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        for target in targets.unwrap_or_else(|| panic!("panel {title:?} has no query")) {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
            let names = metric_names(expr);
            assert!(!names.is_empty() && names.is_subset(&known), "panel {title:?} reads {names:?}");
            read.extend(names);
            let expr = expr.replace("$__rate_interval", "5m").replace("$namespace", "exrscan-system");
            recording
                .push(serde_json::json!({ "record": format!("dashboard:query_{}", recording.len()), "expr": expr }));
        }
    }
    for metric in ["exrscan_operator_scans", "exrscan_operator_files", "kube_exrscan_shards_active"] {
        assert!(read.contains(metric), "no panel shows {metric}");
    }
    let rules_file = home.path().join("dashboard-queries.yaml");
    let rules = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": recording }] });
    std::fs::write(&rules_file, rules.to_string()).expect("writing the queries");
    let out = promtool_check_rules(&rules_file);
    assert!(out.contains(&format!("SUCCESS: {} rules found", recording.len())), "promtool: {out}");
}

/// The kube-state-metrics values of docs/operations.md: every path is a field of the CRD's
/// status, of a type kube-state-metrics can turn into a number.
#[test]
fn kube_state_metrics_config_reads_the_crd_status() {
    let values = kube_state_metrics_values();
    let rules = values["rbac"]["extraRules"].as_array().expect("rbac.extraRules");
    assert!(
        rules.iter().any(|r| r["apiGroups"] == serde_json::json!(["exrscan.dev"])
            && r["resources"] == serde_json::json!(["exrscans"])
            && r["verbs"] == serde_json::json!(["list", "watch"])),
        "kube-state-metrics needs list and watch on exrscans: {rules:?}"
    );
    let crd: Value = serde_yaml::from_str(&read(&chart().join("crds/exrscan.dev_exrscans.yaml"))).expect("CRD");
    let version = &crd["spec"]["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"];
    let resources = values["customResourceState"]["config"]["spec"]["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 1);
    let resource = &resources[0];
    let gvk = &resource["groupVersionKind"];
    assert_eq!(
        (gvk["group"].as_str(), gvk["version"].as_str(), gvk["kind"].as_str()),
        (crd["spec"]["group"].as_str(), version["name"].as_str(), crd["spec"]["names"]["kind"].as_str())
    );
    for metric in resource["metrics"].as_array().expect("metrics") {
        let name = metric["name"].as_str().expect("name");
        let each = &metric["each"];
        match each["type"].as_str() {
            Some("StateSet") => {
                let field = schema_at(schema, &each["stateSet"]["path"]).unwrap_or_else(|| panic!("{name}: path"));
                assert_eq!(each["stateSet"]["list"], field["enum"], "{name}: the states are the CRD's enum");
            }
            Some("Gauge") => {
                let gauge = &each["gauge"];
                let field = schema_at(schema, &gauge["path"]).unwrap_or_else(|| panic!("{name}: path not in the CRD"));
                if gauge["labelFromKey"].is_string() {
                    let properties = field["properties"].as_object().expect("labelFromKey needs an object");
                    assert!(properties.values().all(|p| p["type"] == "integer"), "{name}: every value a number");
                } else if field["type"] == "array" {
                    let item = &field["items"];
                    let value = schema_at(item, &gauge["valueFrom"]).unwrap_or_else(|| panic!("{name}: valueFrom"));
                    assert_eq!(value["type"], "string", "{name}: condition status True/False");
                    for (label, path) in gauge["labelsFromPath"].as_object().expect("labelsFromPath") {
                        assert!(schema_at(item, path).is_some(), "{name}: label {label} path");
                    }
                } else {
                    let numeric = field["type"] == "integer" || field["format"] == "date-time";
                    assert!(numeric, "{name}: {field} is not a number or a time");
                }
            }
            other => panic!("{name}: unexpected type {other:?}"),
        }
    }
}

/// The Argo CD and Flux examples install this chart with CRD upgrades handled, and their
/// values render.
#[test]
fn gitops_examples_install_the_chart_with_crd_upgrades() {
    let home = tempfile::tempdir().expect("helm home");
    let argocd: Value = serde_yaml::from_str(&read(&workspace().join("examples/install/argocd-application.yaml")))
        .expect("Application");
    assert_eq!(argocd["kind"], "Application");
    let source = &argocd["spec"]["source"];
    assert!(workspace().join(source["path"].as_str().expect("source.path")).join("Chart.yaml").exists());
    assert_eq!(source["helm"]["skipCrds"], false);
    let options = argocd["spec"]["syncPolicy"]["syncOptions"].as_array().expect("syncOptions");
    assert!(options.contains(&Value::from("ServerSideApply=true")), "{options:?}");

    let flux = documents(&read(&workspace().join("examples/install/flux-helmrelease.yaml")));
    let release = one(&flux, "HelmRelease");
    let spec = &release["spec"];
    assert_eq!(
        (spec["install"]["crds"].as_str(), spec["upgrade"]["crds"].as_str()),
        (Some("CreateReplace"), Some("CreateReplace"))
    );
    let path = spec["chart"]["spec"]["chart"].as_str().expect("chart path");
    assert!(workspace().join(path).join("Chart.yaml").exists(), "{path}");
    let repository = one(&flux, "GitRepository");
    assert_eq!(spec["chart"]["spec"]["sourceRef"]["name"], repository["metadata"]["name"]);

    for values in [&source["helm"]["valuesObject"], &spec["values"]] {
        let file = home.path().join("values.yaml");
        std::fs::write(&file, values.to_string()).expect("writing values");
        let values_arg = format!("--values={}", file.display());
        let (ok, rendered, stderr) = template_for(home.path(), &kube_version(), &[&values_arg], &[]);
        assert!(ok, "the example's values must render: {stderr}");
        assert!(rendered.contains("registry.example.com/exrscan/exrscan-operator:"), "{values}");
        assert_eq!(one(&documents(&rendered), "Deployment")["spec"]["replicas"], 2);
    }
}

/// Runs `promtool check rules` on `file`; returns its output, failing the test if it fails.
fn promtool_check_rules(file: &Path) -> String {
    let mut check = Command::new(paths::tool("promtool").unwrap_or_else(|e| panic!("{e}")));
    check.args(["check", "rules"]).arg(file);
    let (ok, stdout, stderr) = run(check, None);
    assert!(ok, "promtool check rules {}:\n{stdout}\n{stderr}\n{}", file.display(), read(file));
    format!("{stdout}{stderr}")
}

/// The series the operator exports, from operator/src/metrics.rs: each registered name under
/// the registry's prefix, with `_total` for counters and `_bucket`, `_sum`, `_count` for histograms.
fn operator_metrics() -> BTreeSet<String> {
    let source = read(&workspace().join("operator/src/metrics.rs"));
    let prefix = source.split("Registry::with_prefix(\"").nth(1).and_then(|s| s.split('"').next()).expect("prefix");
    let init =
        |var: &str| source.lines().find_map(|l| l.trim().strip_prefix(&format!("let {var} = "))).map(str::to_string);
    let mut names = BTreeSet::new();
    for line in source.lines().filter_map(|l| l.trim().strip_prefix("registry.register(\"")) {
        let name = line.split('"').next().expect("metric name");
        let var = line.rsplit(", ").next().and_then(|v| v.strip_suffix(".clone());")).expect("registered variable");
        let kind = init(var).unwrap_or_else(|| panic!("no `let {var} = …` in metrics.rs"));
        let base = format!("{prefix}_{name}");
        if kind.contains("Histogram") {
            names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{base}{s}")));
        } else if kind.contains("Counter") {
            names.insert(format!("{base}_total"));
        } else {
            assert!(kind.contains("Gauge"), "{var}: {kind}");
            names.insert(base);
        }
    }
    assert!(names.contains("exrscan_operator_leader") && names.len() >= 7, "{names:?}");
    names
}

/// The kube-state-metrics chart values in docs/operations.md (the YAML block defining the
/// CustomResourceStateMetrics).
fn kube_state_metrics_values() -> Value {
    let doc = read(&workspace().join("docs/operations.md"));
    let block = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("kind: CustomResourceStateMetrics"))
        .expect("a yaml block with the kube-state-metrics configuration in docs/operations.md");
    serde_yaml::from_str(block).unwrap_or_else(|e| panic!("the kube-state-metrics values: {e}"))
}

/// The series the kube-state-metrics configuration defines (prefix + name).
fn kube_state_metrics() -> BTreeSet<String> {
    let values = kube_state_metrics_values();
    let resource = &values["customResourceState"]["config"]["spec"]["resources"][0];
    let prefix = resource["metricNamePrefix"].as_str().expect("metricNamePrefix");
    let metrics = resource["metrics"].as_array().expect("metrics");
    metrics.iter().map(|m| format!("{prefix}_{}", m["name"].as_str().expect("name"))).collect()
}

/// The schema of the field at `path` (a list of names) under an object schema.
fn schema_at<'a>(schema: &'a Value, path: &Value) -> Option<&'a Value> {
    path.as_array()?.iter().try_fold(schema, |s, segment| s["properties"].get(segment.as_str()?))
}

/// All panels, those inside rows included.
fn collect_panels<'a>(panels: &'a Value, into: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        into.push(panel);
        collect_panels(&panel["panels"], into);
    }
}

/// GitHub's anchor of a Markdown heading.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The metric names a PromQL expression reads: identifiers outside strings, label matchers,
/// ranges and grouping clauses that are neither function calls nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];
    const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    // Blank out strings, {…} and […] (a string inside a matcher ends it only at its own quote).
    let mut plain = String::new();
    let mut closing: Vec<char> = Vec::new();
    for c in expr.chars() {
        match closing.last().copied() {
            Some(end) if c == end => {
                closing.pop();
            }
            Some('"' | '\'' | '`') => {}
            Some(_) if matches!(c, '"' | '\'' | '`') => closing.push(c),
            Some(_) => {}
            None => match c {
                '"' | '\'' | '`' => closing.push(c),
                '{' => closing.push('}'),
                '[' => closing.push(']'),
                _ => {
                    plain.push(c);
                    continue;
                }
            },
        }
        plain.push(' ');
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        // A function call, or an aggregation whose `by (…)` or `without (…)` comes first.
        let rest: String = chars[next..].iter().take(8).collect();
        let call = chars.get(next) == Some(&'(')
            || ["by", "without"].iter().any(|g| {
                rest.strip_prefix(g).is_some_and(|r| !r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            });
        if GROUPING.contains(&word.as_str()) {
            // Skip the label list of `by (…)`, `on (…)`, `group_left (…)`, …
            if call {
                i = next + chars[next..].iter().position(|c| *c == ')').unwrap_or(0) + 1;
            }
        } else if !call && !KEYWORDS.contains(&word.as_str()) {
            names.insert(word);
        }
    }
    names
}

#[test]
fn metric_names_of_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(r#"histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x",l=~"y|z"}[10m]))) > 2"#),
        ["a_bucket"]
    );
    assert_eq!(names("max(b{p=\"F\"}) / clamp_min(max(c), 1) > 0.01 and on (n, s) d == 1"), ["b", "c", "d"]);
    assert_eq!(names("(time() - e) and on (namespace) f{phase=\"Running\"} offset 5m"), ["e", "f"]);
    assert_eq!(names("absent(g{a=\"}\"})"), ["g"]);
    assert_eq!(names("sum without (x) (h) + count by (y) (bytes)"), ["bytes", "h"]);
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

    // The prometheus-operator CRDs are not installed here; every other kind is checked by the server.
    let without_service_monitor: Vec<&str> = NON_DEFAULT
        .iter()
        .copied()
        .filter(|s| !s.starts_with("serviceMonitor") && !s.starts_with("monitoring.prometheusRule"))
        .collect();
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

    let sets = [
        &["workerImage.repository=registry.example.com/vfx/exrscan", "workerImage.tag=2.0.0", "logLevel=debug"],
        WORKER_PODS,
    ]
    .concat();
    let cluster_wide = Install {
        release: RELEASE,
        namespace: RELEASE_NAMESPACE,
        sets: &sets,
        worker_image: "registry.example.com/vfx/exrscan:2.0.0",
        scan_namespace: SCAN_NAMESPACE,
    };
    let operator = install_and_reconcile(&cluster, home.path(), &cluster_wide);
    let log = std::fs::read_to_string(operator.log_path()).unwrap_or_default();
    assert!(log.contains("DEBUG"), "logLevel=debug must reach RUST_LOG:\n{}", operator.log_tail(20));
    worker_pods_carry_the_chart_defaults(&cluster);
    drop(operator);

    // The aggregated roles' rules as the API server's authorizer applies them (this control
    // plane runs no clusterrole-aggregation controller, so they are bound directly).
    for (user, role) in [("alice", "exrscan-view"), ("bob", "exrscan-edit")] {
        let mut bind = cluster.kubectl();
        bind.args([
            "create",
            "rolebinding",
            user,
            "--clusterrole",
            role,
            "--user",
            user,
            "--namespace",
            SCAN_NAMESPACE,
        ]);
        succeed(bind, None);
    }
    for (user, verb, allowed) in
        [("alice", "list", "yes"), ("alice", "create", "no"), ("bob", "delete", "yes"), ("bob", "patch", "yes")]
    {
        let mut can_i = cluster.kubectl();
        can_i.args(["auth", "can-i", verb, "exrscans.exrscan.dev", "--as", user, "--namespace", SCAN_NAMESPACE]);
        assert_eq!(run(can_i, None).1.trim(), allowed, "{user} {verb} exrscans");
    }
    let mut status = cluster.kubectl();
    status.args(["auth", "can-i", "patch", "exrscans.exrscan.dev", "--subresource=status", "--as", "bob"]);
    status.args(["--namespace", SCAN_NAMESPACE]);
    assert_eq!(run(status, None).1.trim(), "no", "only the operator writes the status");

    // A scan outside the scoped release's namespaces, applied while no operator runs.
    let mut ignored = cluster.kubectl();
    ignored.args(["apply", "--namespace", SCAN_NAMESPACE, "-f", "-"]);
    let example = std::fs::read_to_string(workspace().join("examples/minimal-scan.yaml")).expect("example scan");
    succeed(ignored, Some(&example.replace("name: abc-renders", "name: not-watched")));

    let scoped = Install {
        release: "scoped",
        namespace: SCOPED_RELEASE_NAMESPACE,
        // The aggregated ClusterRoles belong to the first release (their names are fixed).
        sets: &["watchNamespaces={lighting}", "aggregatedRoles.enabled=false"],
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

/// The `WORKER_PODS` values reached the pod template of the planner Job of
/// `examples/minimal-scan.yaml` (and not the Job itself), and its worker ServiceAccount.
fn worker_pods_carry_the_chart_defaults(cluster: &ControlPlane) {
    let get_json = |args: &[&str]| -> Value {
        let mut get = cluster.kubectl();
        get.args(args).args(["--namespace", SCAN_NAMESPACE, "-o", "json"]);
        serde_json::from_str(&succeed(get, None)).expect("kubectl JSON")
    };
    let job = &get_json(&["get", "jobs"])["items"][0];
    assert!(job["metadata"]["labels"].get("team").is_none(), "pod labels stay off the Job: {}", job["metadata"]);
    assert!(job["metadata"]["annotations"].get("example.com/owner").is_none(), "{}", job["metadata"]);
    let template = &job["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["team"], "pipeline");
    assert_eq!(template["metadata"]["labels"]["app.kubernetes.io/component"], "planner");
    assert_eq!(template["metadata"]["annotations"]["example.com/owner"], "pipeline");
    let pod = &template["spec"];
    assert_eq!(pod["imagePullSecrets"], serde_json::json!([{ "name": "studio-registry" }]));
    assert_eq!(pod["nodeSelector"], serde_json::json!({ "pool": "batch" }));
    assert_eq!(pod["tolerations"], serde_json::json!([{ "key": "batch", "operator": "Exists" }]));
    assert_eq!(pod["priorityClassName"], "batch-low");
    let account = get_json(&["get", "serviceaccount", "abc-renders-worker"]);
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"], "arn:aws:iam::123456789012:role/exrscan",
        "IRSA annotation on the worker ServiceAccount: {}",
        account["metadata"]
    );
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
