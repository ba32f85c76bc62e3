//! The worker's side of the Kubernetes contract on a real control plane: `exrscan plan
//! --configmap` writes the plan into the ConfigMap, `exrscan shard` patches its progress
//! into its key of its run's progress ConfigMap.

mod bucket;

use std::io::Write as _;
use std::process::{Command, Stdio};

use bucket::{BUCKET, PREFIX, TestResult, exrscan_s3, last_json, run, upload};
use exrscan::plan::Plan;
use testenv::S3Server;
use testenv::kube::ControlPlane;

fn kubectl_apply(plane: &ControlPlane, yaml: &str) {
    let mut child = plane.kubectl().args(["apply", "-f", "-"]).stdin(Stdio::piped()).spawn().expect("kubectl runs");
    child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("yaml written");
    assert!(child.wait().expect("kubectl exits").success(), "kubectl apply failed: {yaml}");
}

fn kubectl_get(plane: &ControlPlane, args: &[&str]) -> String {
    let out = plane.kubectl().args(args).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_cluster(cmd: &mut Command, plane: &ControlPlane) {
    cmd.env("KUBECONFIG", plane.kubeconfig_path()).env("POD_NAMESPACE", "default");
}

#[test]
fn the_plan_and_the_progress_land_in_their_configmaps() -> TestResult {
    let plane = ControlPlane::start()?;
    let s3 = S3Server::start()?;
    let uploaded = upload(&s3, 2);
    kubectl_apply(&plane, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scan-plan\ndata:\n  other: kept\n");
    // Shard 1 of a run whose progress maps hold one shard each reports into map 1.
    kubectl_apply(
        &plane,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scan-run-progress-1\ndata:\n  other: kept\n",
    );

    let mut plan_cmd = exrscan_s3(&s3);
    in_cluster(&mut plan_cmd, &plane);
    run(plan_cmd.args(["plan", &format!("s3://{BUCKET}/{PREFIX}"), "--shards", "2", "--configmap", "scan-plan"]));
    let stored = kubectl_get(&plane, &["get", "configmap", "scan-plan", "-o", "jsonpath={.data.plan\\.json}"]);
    let plan = Plan::from_json(&stored)?;
    assert_eq!((plan.shards, plan.objects), (2, uploaded.exr.len() as u64));
    assert_eq!(kubectl_get(&plane, &["get", "configmap", "scan-plan", "-o", "jsonpath={.data.other}"]), "kept");
    let mut missing = exrscan_s3(&s3);
    in_cluster(&mut missing, &plane);
    let out =
        missing.args(["plan", &format!("s3://{BUCKET}/{PREFIX}"), "--shards", "2", "--configmap", "nope"]).output()?;
    assert_eq!(out.status.code(), Some(2), "a missing ConfigMap is a configuration error");

    let dir = testenv::work_dir("s3-kube")?;
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, &stored)?;
    let mut shard = exrscan_s3(&s3);
    in_cluster(&mut shard, &plane);
    let out = run(shard
        .args(["shard", "--index", "1", "--plan"])
        .arg(&plan_file)
        .args(["--sink", &format!("duckdb://{}", dir.path().join("c.duckdb").display())])
        .env("EXRSCAN_PROGRESS_CONFIGMAP", "scan-run-progress")
        .env("EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP", "1")
        .env("EXRSCAN_PROGRESS_INTERVAL", "0.2")
        .env("EXRSCAN_TERMINATION_LOG", dir.path().join("termination")));
    let report = last_json(&out);
    let entry = kubectl_get(&plane, &["get", "configmap", "scan-run-progress-1", "-o", "jsonpath={.data.1}"]);
    let progress: serde_json::Value = serde_json::from_str(&entry)?;
    assert_eq!(progress["counts"], report["counts"], "the last patch holds the final counts");
    assert_eq!(progress["counts"]["discovered"], plan.partitions[1].objects, "{progress}");
    let other = kubectl_get(&plane, &["get", "configmap", "scan-run-progress-1", "-o", "jsonpath={.data.other}"]);
    assert_eq!(other, "kept", "a merge patch of its own key only");
    Ok(())
}
