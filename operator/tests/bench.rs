//! The operator benchmark (ignored by default; numbers go to `docs/benchmarks.md`):
//!
//! ```text
//! cargo test -p exrscan-operator --test bench -- --ignored --nocapture
//! # or against a release build:
//! cargo build --release -p exrscan-operator
//! EXRSCAN_OPERATOR_BIN=$CARGO_TARGET_DIR/release/exrscan-operator cargo test -p exrscan-operator --test bench -- --ignored --nocapture
//! ```
//!
//! 1. apply → Job created: 40 ExrScans created one after another; the time from the create
//!    call until the scan's first Job (the planner) exists, p50/p95.
//! 2. 500 ExrScans created at once: time until all 500 first Jobs exist, and the operator's
//!    peak RSS (`VmHWM`) over the whole benchmark.
//!
//! No node agent runs, so the planner pods stay Pending: this measures the operator and the
//! API server, not the worker.

mod harness;

use std::time::{Duration, Instant};

use exrscan_crds::ExrScan;
use futures::{StreamExt, stream};
use harness::Harness;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

const SEQUENTIAL: usize = 40;
const BULK: usize = 500;

fn scan(name: &str) -> ExrScan {
    serde_yaml::from_str(&harness::scan_yaml("bench", name, 4, "")).expect("scan manifest")
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p exrscan-operator --test bench -- --ignored --nocapture"]
async fn operator_benchmark() {
    let h = Harness::start(false).await;
    h.namespace("bench").await;
    let op = h.operator("bench", &["--concurrency", "32"]);
    let pid = op.server.pid();
    let scans: Api<ExrScan> = Api::namespaced(h.client.clone(), "bench");
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), "bench");
    // Let the operator take the Lease first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut latencies = Vec::new();
    for i in 0..SEQUENTIAL {
        let name = format!("seq-{i}");
        let start = Instant::now();
        scans.create(&PostParams::default(), &scan(&name)).await.expect("scan created");
        let selector = format!("exrscan.dev/scan={name}");
        loop {
            if !jobs.list_metadata(&ListParams::default().labels(&selector)).await.expect("list").items.is_empty() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no Job for {name}\n{}", h.diagnostics());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let (p50, p95) = (percentile(&latencies, 0.5), percentile(&latencies, 0.95));

    let start = Instant::now();
    stream::iter(0..BULK)
        .map(|i| {
            let scans = scans.clone();
            async move { scans.create(&PostParams::default(), &scan(&format!("bulk-{i}"))).await.expect("scan created") }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let created = start.elapsed();
    let selector = "app.kubernetes.io/managed-by=exrscan-operator,app.kubernetes.io/component=planner";
    let mut max_rss = peak_rss_mib(pid);
    loop {
        let n = jobs.list_metadata(&ListParams::default().labels(selector)).await.expect("list").items.len();
        max_rss = max_rss.max(peak_rss_mib(pid));
        if n >= SEQUENTIAL + BULK {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "only {n} Jobs after 300 s\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_jobs = start.elapsed();
    // Let status writes and pod events settle, then read the peak again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    max_rss = max_rss.max(peak_rss_mib(pid));

    println!("operator binary: {}", harness::operator_bin().display());
    println!(
        "apply → first Job ({SEQUENTIAL} sequential): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    println!(
        "{BULK} ExrScans created in {:.1} s; all their Jobs exist {:.1} s after the first create",
        created.as_secs_f64(),
        all_jobs.as_secs_f64()
    );
    println!("operator peak RSS (VmHWM): {max_rss:.1} MiB");
    assert!(p50 <= Duration::from_secs(1), "apply → Job p50 {p50:?} > 1 s");
    assert!(max_rss <= 150.0, "peak RSS {max_rss:.1} MiB > 150 MiB");
}

/// How long the at-scale benchmark measures each scenario once its shard Jobs exist.
const WINDOW: Duration = Duration::from_secs(120);

/// The operator at scale (ignored by default; numbers go to `docs/benchmarks.md`):
///
/// ```text
/// cargo test -p exrscan-operator --test bench -- --ignored --nocapture operator_at_scale
/// ```
///
/// Two scenarios, each on a fresh control plane: one ExrScan of 10,000 shards, and 200
/// ExrScans of 16 shards. No kubelet runs: the benchmark plays each planner pod (writes the
/// plan, marks the pod Succeeded), the real Job controller creates the shard pods (which stay
/// Pending), and the benchmark writes every shard's progress into the run's progress
/// ConfigMaps at the interval the operator gives the shard pods (`EXRSCAN_PROGRESS_INTERVAL`),
/// as running shards would. Over a window of [`WINDOW`] it reports the operator's own API
/// requests per second (`exrscan_operator_api_requests_total`), its status writes per scan,
/// the API server's total request rate, and the operator's peak RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p exrscan-operator --test bench -- --ignored --nocapture operator_at_scale"]
async fn operator_at_scale() {
    for (scans, shards) in [(1, 10_000), (200, 16)] {
        scale_scenario(scans, shards).await;
    }
}

async fn scale_scenario(scans: usize, shards: i32) {
    let h = Harness::start(false).await;
    let ns = "scale";
    h.namespace(ns).await;
    // The operator's production defaults.
    let op = h.operator(
        "scale",
        &["--progress-interval-seconds=5", "--active-resync-seconds=30", "--lease-duration-seconds=15"],
    );
    let pid = op.server.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<ExrScan> = Api::namespaced(h.client.clone(), ns);
    let names: Vec<String> = (0..scans).map(|i| format!("s{i}")).collect();
    stream::iter(names.clone())
        .map(|name| {
            let api = api.clone();
            async move {
                let scan: ExrScan =
                    serde_yaml::from_str(&harness::scan_yaml(ns, &name, shards, "")).expect("scan manifest");
                api.create(&PostParams::default(), &scan).await.expect("scan created")
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    stream::iter(names.clone()).for_each_concurrent(16, |name| play_planner(&h, ns, name)).await;
    // Every scan's shard Job exists: its run, and the progress interval its pods were given.
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), ns);
    let shard_jobs = wait_for(Duration::from_secs(300), "every shard Job", || async {
        let selector = "app.kubernetes.io/component=shard";
        let list = jobs.list(&ListParams::default().labels(selector)).await.expect("jobs listed").items;
        (list.len() == scans).then_some(list)
    })
    .await;
    let interval: u64 = shard_jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers[0].env.as_ref())
        .and_then(|env| env.iter().find(|e| e.name == "EXRSCAN_PROGRESS_INTERVAL"))
        .and_then(|e| e.value.as_deref()?.parse().ok())
        .expect("the shard pods' progress interval");
    let maps: Vec<(String, u32)> = shard_jobs
        .iter()
        .flat_map(|job| {
            let name = job.metadata.name.clone().expect("job name");
            (0..shards as u32).map(move |i| (format!("{name}-progress-{}", i / 200), i))
        })
        .collect();

    let before = operator_requests(&op);
    let server_before = server_requests(&h);
    let start = Instant::now();
    let written = write_progress(&h, ns, &maps, interval, WINDOW).await;
    let took = start.elapsed().as_secs_f64();
    let after = operator_requests(&op);
    let server_after = server_requests(&h);
    let rss = peak_rss_mib(pid);
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(h.client.clone(), ns)
        .list_metadata(&ListParams::default())
        .await
        .expect("pods listed")
        .items
        .len();

    let delta: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect();
    let total: f64 = delta.iter().map(|(_, d)| d).sum();
    let status_writes = delta.iter().find(|(k, _)| k == "patch exrscans/status").map_or(0.0, |(_, d)| *d);
    println!(
        "\n## {scans} ExrScan(s) × {shards} shards ({} pods exist at the end; progress every {interval} s per shard)",
        pods
    );
    println!("progress writes by the simulated shards: {written} in {took:.0} s ({:.1}/s)", written as f64 / took);
    println!("operator API requests: {:.2}/s in all", total / took);
    for (k, d) in &delta {
        println!("  {k}: {:.2}/s", d / took);
    }
    println!("operator status writes: {:.3}/s per scan (goal ≤ 0.5/s per scan)", status_writes / took / scans as f64);
    println!("API server requests from everyone: {:.1}/s", (server_after - server_before) / took);
    println!("operator peak RSS (VmHWM): {rss:.1} MiB (goal ≤ 200 MiB)");
    assert!(status_writes / took / scans as f64 <= 0.5, "more than one status write per scan per 2 s");
}

/// Plays the planner pod of `scan`: writes a plan header into its run's ConfigMap and marks the pod
/// Succeeded, as a kubelet would once the planner exited 0.
async fn play_planner(h: &Harness, ns: &str, scan: String) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(h.client.clone(), ns);
    let selector = format!("exrscan.dev/scan={scan},app.kubernetes.io/component=planner");
    let pod = wait_for(Duration::from_secs(300), "a planner pod", || async {
        pods.list_metadata(&ListParams::default().labels(&selector)).await.expect("pods listed").items.pop()
    })
    .await;
    let run =
        pod.metadata.labels.as_ref().and_then(|l| l.get("exrscan.dev/run")).expect("the planner pod's run").clone();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(h.client.clone(), ns);
    // The header the operator waits for (the shards, never run, would read the chunks).
    let plan = serde_json::json!({"data": {"plan.json": "{\"bench\":true}"}});
    cms.patch(&format!("{scan}-{run}-plan"), &PatchParams::default(), &Patch::Merge(&plan))
        .await
        .expect("plan written");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = serde_json::json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "exrscan", "image": "exrscan-test:dev", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
    }]}});
    let name = pod.metadata.name.expect("pod name");
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("planner pod Succeeded");
}

/// Writes each shard's progress (`(map, index)`) once per `interval` seconds, spread evenly,
/// for `window`; returns the writes made.
async fn write_progress(h: &Harness, ns: &str, shards: &[(String, u32)], interval: u64, window: Duration) -> usize {
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(h.client.clone(), ns);
    let per_tick = shards.len() as f64 / interval as f64 / 10.0;
    let start = Instant::now();
    let (mut due, mut next, mut written) = (0.0, 0usize, 0usize);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    while start.elapsed() < window {
        ticks.tick().await;
        due += per_tick;
        let batch: Vec<(String, u32, usize)> = (0..due as usize)
            .map(|k| {
                let (map, i) = &shards[(next + k) % shards.len()];
                (map.clone(), *i, (next + k) / shards.len() + 1)
            })
            .collect();
        due -= batch.len() as f64;
        next += batch.len();
        written += batch.len();
        stream::iter(batch)
            .for_each_concurrent(32, |(map, i, round)| {
                let cms = cms.clone();
                async move {
                    let entry =
                        format!("{{\"counts\":{{\"discovered\":100,\"processed\":{round},\"inserted\":{round}}}}}");
                    let patch = serde_json::json!({"data": {i.to_string(): entry}});
                    if let Err(e) = cms.patch(&map, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        eprintln!("progress write to {map} failed: {e}");
                    }
                }
            })
            .await;
    }
    written
}

/// The operator's `exrscan_operator_api_requests_total`, keyed `"verb resource"`.
fn operator_requests(op: &harness::Operator) -> std::collections::BTreeMap<String, f64> {
    // A busy 2-core machine may let one scrape time out.
    let mut scrape = None;
    for _ in 0..10 {
        scrape = op.get("/metrics");
        if scrape.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let (_, text) = scrape.unwrap_or_else(|| panic!("no operator metrics; its log:\n{}", op.server.log_tail(40)));
    text.lines()
        .filter_map(|l| l.strip_prefix("exrscan_operator_api_requests_total{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let label = |k: &str| labels.split(',').find_map(|p| p.strip_prefix(&format!("{k}=\"")))?.strip_suffix('"');
            Some((format!("{} {}", label("verb")?, label("resource")?), value.trim().parse().ok()?))
        })
        .collect()
}

/// The API server's `apiserver_request_total`, summed over every label.
fn server_requests(h: &Harness) -> f64 {
    let out = h.cluster.kubectl().args(["get", "--raw", "/metrics"]).output().expect("kubectl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Polls `probe` until it gives a value, failing after `timeout`.
async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < timeout, "no {what} after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
