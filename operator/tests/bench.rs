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
use kube::api::{Api, ListParams, PostParams};

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
