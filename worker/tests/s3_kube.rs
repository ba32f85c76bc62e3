//! The worker's side of the Kubernetes contract on a real control plane: `exrscan plan
//! --configmap` publishes the plan into its header and chunk ConfigMaps (each within the
//! size the API server accepts), `exrscan shard` reads its own chunk and patches its progress
//! into its key of its run's progress ConfigMap.

mod bucket;

use std::io::Write as _;
use std::process::{Command, Stdio};

use bucket::{BUCKET, PREFIX, TestResult, exrscan_s3, last_json, run, upload};
use exrscan::plan::stored::{MAX_MAP_BYTES, chunk_key};
use exrscan::plan::{Chunk, Header, Plan};
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
    // The header map and three chunk maps of 2 shards each, one with a key of its own.
    for name in ["scan-plan", "scan-plan-0", "scan-plan-1", "scan-plan-2"] {
        kubectl_apply(
            &plane,
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  other: kept\n"),
        );
    }
    // Shard 3 of a run whose progress maps hold one shard each reports into map 3.
    kubectl_apply(
        &plane,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scan-run-progress-3\ndata:\n  other: kept\n",
    );

    let url = format!("s3://{BUCKET}/{PREFIX}");
    let mut plan_cmd = exrscan_s3(&s3);
    in_cluster(&mut plan_cmd, &plane);
    run(plan_cmd.args(["plan", &url, "--shards", "5", "--configmap", "scan-plan", "--shards-per-configmap", "2"]));
    let value = |map: &str, key: &str| {
        let path = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
        kubectl_get(&plane, &["get", "configmap", map, "-o", &path])
    };
    let header = Header::from_json(&value("scan-plan", "plan.json"))?;
    assert_eq!((header.shards, header.shards_per_chunk, header.chunk_count()), (5, 2, 3));
    assert!(header.chunks.is_empty(), "the partitions are in the chunk maps");
    let mut texts = Vec::new();
    let mut chunks = Vec::new();
    for k in 0..3 {
        let text = value(&format!("scan-plan-{k}"), &chunk_key(k));
        chunks.push(serde_json::from_str::<Chunk>(&text)?);
        texts.push(text);
        assert_eq!(value(&format!("scan-plan-{k}"), "other"), "kept", "a merge patch of its own key only");
    }
    let plan = Plan::join(header, chunks)?;
    assert_eq!((plan.shards, plan.objects), (5, uploaded.exr.len() as u64));
    assert!(plan.partitions.iter().all(|p| p.objects > 0), "every shard has work: {:?}", plan.partitions);
    let mut missing = exrscan_s3(&s3);
    in_cluster(&mut missing, &plane);
    let out = missing.args(["plan", &url, "--shards", "2", "--configmap", "nope"]).output()?;
    assert_eq!(out.status.code(), Some(2), "a missing ConfigMap is a configuration error");

    // What the planner may write fits in a ConfigMap; a byte past the API server's limit does not.
    let dir = testenv::work_dir("s3-kube")?;
    let largest = dir.path().join("largest");
    std::fs::write(&largest, "x".repeat(MAX_MAP_BYTES - "k".len()))?;
    let from_file = format!("--from-file=k={}", largest.display());
    kubectl_get(&plane, &["create", "configmap", "largest", &from_file]);
    // The API server sums the values of a ConfigMap's data: 1 MiB at most.
    std::fs::write(&largest, "x".repeat(1024 * 1024 + 1))?;
    let refused = plane.kubectl().args(["create", "configmap", "too-large", &from_file]).output()?;
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("1048576"), "1 MiB + 1 byte is refused: {why}");

    // A shard's pod sees the header and the chunk files side by side (one projected volume);
    // it reads only its own chunk.
    let plan_dir = dir.path().join("plan");
    std::fs::create_dir(&plan_dir)?;
    let plan_file = plan_dir.join("plan.json");
    std::fs::write(&plan_file, value("scan-plan", "plan.json"))?;
    std::fs::write(plan_dir.join(chunk_key(1)), &texts[1])?;
    let mut shard = exrscan_s3(&s3);
    in_cluster(&mut shard, &plane);
    let out = run(shard
        .args(["shard", "--index", "3", "--plan"])
        .arg(&plan_file)
        .args(["--sink", &format!("duckdb://{}", dir.path().join("c.duckdb").display())])
        .env("EXRSCAN_PROGRESS_CONFIGMAP", "scan-run-progress")
        .env("EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP", "1")
        .env("EXRSCAN_PROGRESS_INTERVAL", "0.2")
        .env("EXRSCAN_TERMINATION_LOG", dir.path().join("termination")));
    let report = last_json(&out);
    let progress: serde_json::Value = serde_json::from_str(&value("scan-run-progress-3", "3"))?;
    assert_eq!(progress["counts"], report["counts"], "the last patch holds the final counts");
    assert_eq!(progress["counts"]["discovered"], plan.partitions[3].objects, "{progress}");
    let other = value("scan-run-progress-3", "other");
    assert_eq!(other, "kept", "a merge patch of its own key only");
    Ok(())
}
