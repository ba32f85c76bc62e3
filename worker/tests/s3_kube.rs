//! The worker's side of the Kubernetes contract on a real control plane: `exrscan plan
//! --configmap` publishes the plan into its header and chunk ConfigMaps (each within the
//! size the API server accepts, even for 10,000 shards of the longest keys), `exrscan shard`
//! reads its own chunk and patches its progress into its key of its run's progress ConfigMap.

mod bucket;

use std::io::Write as _;
use std::process::{Command, Stdio};

use bucket::{BUCKET, PREFIX, TestResult, exrscan_s3, last_json, run, upload};
use exrscan::plan::configmap::{self, PublishError};
use exrscan::plan::stored::{DEFAULT_SHARDS_PER_CHUNK, MAX_MAP_BYTES, chunk_key};
use exrscan::plan::{Chunk, Header, Outline, Partition, Plan};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
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
    assert_eq!((header.outline.shards, header.shards_per_chunk, header.chunk_count()), (5, 2, 3));
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
    assert_eq!((plan.outline.shards, plan.outline.objects), (5, uploaded.exr.len() as u64));
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

/// A plan of 10,000 shards whose boundaries are keys of S3's longest (1,024 bytes), each byte
/// a `fill` character.
fn longest_keys_plan(fill: char) -> Plan {
    let shards = 10_000;
    let key = |i: u32| {
        let head = format!("shows/{i:05}/");
        let fill: String = std::iter::repeat_n(fill, 1024 - head.len()).collect();
        head + &fill
    };
    let mut partitions = Vec::new();
    let mut after = None;
    for shard in 0..shards {
        let until = (shard + 1 < shards).then(|| key(shard));
        partitions.push(Partition { shard, after: after.clone(), until: until.clone(), listed: 1_000, objects: 1_000 });
        after = until;
    }
    let outline = Outline {
        bucket: BUCKET.into(),
        prefix: "shows/".into(),
        shards,
        include: Vec::new(),
        exclude: Vec::new(),
        listed: 10_000_000,
        objects: 10_000_000,
    };
    Plan { outline, partitions }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_of_ten_thousand_shards_of_the_longest_keys_is_published() -> TestResult {
    let plane = ControlPlane::start()?;
    let api: Api<ConfigMap> = Api::namespaced(plane.client().await?, "default");
    let plan = longest_keys_plan('"');
    let chunks = plan.outline.shards.div_ceil(DEFAULT_SHARDS_PER_CHUNK);
    let names: Vec<String> =
        std::iter::once("big".to_string()).chain((0..chunks).map(|k| configmap::chunk_map("big", k))).collect();
    for name in names.iter().chain(&["refused".to_string(), "refused-0".to_string()]) {
        let map =
            ConfigMap { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        api.create(&PostParams::default(), &map).await?;
    }

    configmap::publish(&api, &plan, "big", DEFAULT_SHARDS_PER_CHUNK).await?;
    let value = |map: ConfigMap, key: &str| map.data.and_then(|mut d| d.remove(key)).unwrap_or_default();
    let header = Header::from_json(&value(api.get("big").await?, "plan.json"))?;
    let mut read = Vec::new();
    let mut largest = 0;
    for k in 0..chunks {
        let text = value(api.get(&configmap::chunk_map("big", k)).await?, &chunk_key(k));
        largest = largest.max(text.len());
        read.push(serde_json::from_str::<Chunk>(&text)?);
    }
    assert_eq!((header.chunk_count(), read.len() as u32), (25, 25));
    assert!(largest > 800_000 && largest <= MAX_MAP_BYTES, "the API server took a chunk of {largest} bytes");
    assert!(Plan::join(header, read)? == plan, "the published plan reads back whole");

    // Keys the listing refuses (control characters, 6 bytes each in JSON) would not fit:
    // refused before anything is written.
    let refused = configmap::publish(&api, &longest_keys_plan('\u{1}'), "refused", DEFAULT_SHARDS_PER_CHUNK).await;
    let Err(PublishError::Plan(error)) = refused else { panic!("not refused: {refused:?}") };
    assert!(error.to_string().contains("plan chunk 0 would be"), "{error}");
    for name in ["refused", "refused-0"] {
        assert!(api.get(name).await?.data.is_none(), "{name} was written");
    }
    Ok(())
}
