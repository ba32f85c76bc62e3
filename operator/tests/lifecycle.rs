//! ExrScans on a real control plane, run by the operator binary, with worker pods run by
//! the node agent as the fake worker (see `harness`): plan → Indexed Job → live and final
//! status, GitOps re-apply and rescan, per-index retries, permanent failures, configuration
//! errors, a plan map deleted mid-run, suspend/resume, and cleanup by garbage collection.

mod harness;

use std::time::{Duration, Instant};

use exrscan_crds::{ExrScan, Phase};
use harness::{Harness, Operator, kubectl_ok, scan_yaml};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::Api;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn phase(s: &ExrScan) -> Option<Phase> {
    s.status.as_ref().and_then(|s| s.phase)
}

fn condition<'a>(s: &'a ExrScan, t: &str) -> (&'a str, &'a str, &'a str) {
    let c = s
        .status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == t))
        .unwrap_or_else(|| panic!("condition {t} missing: {:?}", s.status));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_follow_their_spec_on_a_real_control_plane() {
    let h = Harness::start(true).await;
    let op = h.operator("op-1", &[]);
    for ns in ["happy", "retry", "broken", "config", "lost", "pause"] {
        h.namespace(ns).await;
    }
    tokio::join!(
        happy_path(&h, &op),
        retried_shard(&h),
        shard_failing_past_its_limit(&h),
        configuration_error(&h),
        a_deleted_plan_map(&h),
        suspend_and_resume(&h)
    );

    let (code, metrics) = op.get("/metrics").expect("metrics served");
    assert_eq!(code, 200);
    assert!(metrics.contains("exrscan_operator_scans{phase=\"Failed\"} 3"), "{metrics}");
    assert!(metrics.contains("exrscan_operator_leader 1"), "{metrics}");
    assert!(metrics.contains("exrscan_operator_reconcile_duration_seconds_count"), "{metrics}");
    assert_eq!(op.get("/readyz").map(|(c, _)| c), Some(200));
}

async fn happy_path(h: &Harness, op: &Operator) {
    let ns = "happy";
    // Slow enough to watch live progress.
    h.behave("render", "progress 5 5; sleep 4; summary 10 10 0 0");
    let applied = Instant::now();
    let (ok, err) = h.apply(&scan_yaml(ns, "render", 3, "  parallelism: 2\n"));
    assert!(ok, "{err}");

    // The planner Job comes first, quickly.
    while h.jobs(ns, "render").await.is_empty() {
        assert!(applied.elapsed() < Duration::from_secs(10), "no Job 10 s after apply\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("kubectl apply → planner Job (kubectl start-up included): {:?}", applied.elapsed());

    // Live counts while the shards run.
    let live = h
        .wait_scan(ns, "render", RUN_TIMEOUT, "live progress", |s| {
            phase(s) == Some(Phase::Running)
                && s.status.as_ref().and_then(|st| st.counts).is_some_and(|c| c.processed >= 5)
        })
        .await;
    assert_eq!(condition(&live, "Progressing").0, "True");
    assert_eq!(condition(&live, "Ready").0, "False");
    assert_eq!(condition(&live, "Reconciling").0, "True");
    let table = kubectl_ok(&h.cluster, &["get", "exs", "-n", ns]);
    let header: Vec<&str> = table.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "SHARDS", "DISCOVERED", "PROCESSED", "INSERTED", "FAILED", "AGE"], "{table}");

    let done = h.wait_scan(ns, "render", RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    let st = done.status.clone().expect("status");
    let counts = st.counts.expect("counts");
    assert_eq!(
        (counts.discovered, counts.processed, counts.inserted, counts.failed, counts.bytes_read),
        (30, 30, 30, 0, 30_000)
    );
    let shards = st.shards.clone().expect("shards");
    assert_eq!(
        (shards.total, shards.succeeded, shards.failed, shards.active, shards.summary.as_str()),
        (3, 3, 0, 0, "3/3")
    );
    assert_eq!(st.observed_generation, done.metadata.generation);
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    for (t, want) in [
        ("Ready", "True"),
        ("Complete", "True"),
        ("Progressing", "False"),
        ("Failed", "False"),
        ("Reconciling", "False"),
        ("Stalled", "False"),
    ] {
        assert_eq!(condition(&done, t).0, want, "{t}");
    }
    let run = st.run.clone().expect("run");
    assert_eq!(st.job_name.as_deref(), Some(format!("render-{run}").as_str()));
    let table = kubectl_ok(&h.cluster, &["get", "exs", "-n", ns, "--no-headers"]);
    let row: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&row[..7], ["render", "Succeeded", "3/3", "30", "30", "30", "0"], "{table}");

    // What it created, and how.
    let jobs = h.jobs(ns, "render").await;
    let mut names: Vec<String> = jobs.iter().filter_map(|j| j.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, [format!("render-{run}"), format!("render-plan-{run}")]);
    let shard_job =
        jobs.iter().find(|j| j.metadata.name.as_deref() == Some(&format!("render-{run}"))).expect("shard job");
    let spec = shard_job.spec.as_ref().expect("job spec");
    assert_eq!(
        (spec.completion_mode.as_deref(), spec.completions, spec.parallelism),
        (Some("Indexed"), Some(3), Some(2))
    );
    assert_eq!(spec.backoff_limit_per_index, Some(3));
    let maps = Api::<ConfigMap>::namespaced(h.client.clone(), ns);
    let header = maps.get(&format!("render-{run}-plan")).await.expect("plan header ConfigMap");
    assert!(header.data.unwrap_or_default().get("plan.json").is_some_and(|p| p.contains("\"shards\":3")));
    let chunk = maps.get(&format!("render-{run}-plan-0")).await.expect("plan chunk ConfigMap");
    assert!(chunk.data.unwrap_or_default().contains_key("partitions-0.json"), "written by the planner's Role");
    Api::<ServiceAccount>::namespaced(h.client.clone(), ns).get("render-worker").await.expect("worker ServiceAccount");
    Api::<Role>::namespaced(h.client.clone(), ns).get("render-worker").await.expect("worker Role");
    Api::<RoleBinding>::namespaced(h.client.clone(), ns).get("render-worker").await.expect("worker RoleBinding");
    let reasons: Vec<String> = h.events(ns, "render").await.into_iter().map(|e| e.1).collect();
    for r in ["Planning", "Started", "Completed"] {
        assert!(reasons.iter().any(|x| x == r), "Event {r} missing: {reasons:?}");
    }

    // GitOps: re-applying the same manifest changes nothing.
    let created_before = metric(op, "exrscan_operator_jobs_created_total{component=\"shard\"}");
    let (ok, err) = h.apply(&scan_yaml(ns, "render", 3, "  parallelism: 2\n"));
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(h.jobs(ns, "render").await.len(), 2, "no new Job on re-apply");
    assert_eq!(metric(op, "exrscan_operator_jobs_created_total{component=\"shard\"}"), created_before);
    let again = h.scan(ns, "render").await;
    assert_eq!(again.status.as_ref().and_then(|s| s.run.clone()), Some(run.clone()));
    assert_eq!(phase(&again), Some(Phase::Succeeded));

    // A new rescan value starts a new run and keeps the last one's summary.
    h.behave("render", "summary 10 0 10 0");
    let (ok, err) = h.apply(&scan_yaml(ns, "render", 3, "  parallelism: 2\n  rescan: \"2\"\n"));
    assert!(ok, "{err}");
    let rerun = h
        .wait_scan(ns, "render", RUN_TIMEOUT, "the rescan to succeed", |s| {
            let st = s.status.as_ref();
            st.and_then(|st| st.run.as_deref()) != Some(run.as_str()) && phase(s) == Some(Phase::Succeeded)
        })
        .await;
    let st = rerun.status.clone().expect("status");
    let last = st.last_run.expect("lastRun kept");
    assert_eq!(last.run.as_deref(), Some(run.as_str()));
    assert_eq!(last.phase, Some(Phase::Succeeded));
    assert_eq!(last.counts.map(|c| c.inserted), Some(30));
    let counts = st.counts.expect("counts");
    assert_eq!((counts.processed, counts.inserted, counts.unchanged), (30, 0, 30));
    let new_run = st.run.expect("run");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut names: Vec<String> =
            h.jobs(ns, "render").await.iter().filter_map(|j| j.metadata.name.clone()).collect();
        names.sort();
        if names == [format!("render-{new_run}"), format!("render-plan-{new_run}")] {
            break;
        }
        assert!(Instant::now() < deadline, "the old run's Jobs were not removed: {names:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for old in [format!("render-{run}-plan"), format!("render-{run}-plan-0")] {
        assert!(maps.get_opt(&old).await.expect("get").is_none(), "the old run's plan map {old} was deleted");
    }
    assert!(maps.get_opt(&format!("render-{new_run}-plan-0")).await.expect("get").is_some());

    // Deleting the scan deletes what it owns (garbage collection via owner references).
    kubectl_ok(&h.cluster, &["delete", "exs", "render", "-n", ns, "--wait=true"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = h.jobs(ns, "render").await.len();
        let cm = Api::<ConfigMap>::namespaced(h.client.clone(), ns)
            .get_opt(&format!("render-{new_run}-plan"))
            .await
            .expect("get");
        let sa = Api::<ServiceAccount>::namespaced(h.client.clone(), ns).get_opt("render-worker").await.expect("get");
        let role = Api::<Role>::namespaced(h.client.clone(), ns).get_opt("render-worker").await.expect("get");
        let rb = Api::<RoleBinding>::namespaced(h.client.clone(), ns).get_opt("render-worker").await.expect("get");
        if jobs == 0 && cm.is_none() && sa.is_none() && role.is_none() && rb.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "owned objects left after delete: jobs={jobs} cm={} sa={} role={} rb={}",
            cm.is_some(),
            sa.is_some(),
            role.is_some(),
            rb.is_some()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn retried_shard(h: &Harness) {
    let ns = "retry";
    // Shard 1 fails its first attempt with the infrastructure exit code, then succeeds.
    h.behave("flaky", r#"if [ "$i" = 1 ] && [ "$n" = 1 ]; then summary 3 3 0 0 "S3 unreachable after 5 retries"; exit 3; fi; summary 10 10 0 0"#);
    let (ok, err) = h.apply(&scan_yaml(ns, "flaky", 2, "  backoffLimitPerIndex: 2\n"));
    assert!(ok, "{err}");
    let done = h.wait_scan(ns, "flaky", RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    let st = done.status.expect("status");
    let shards = st.shards.expect("shards");
    assert_eq!((shards.succeeded, shards.failed, shards.failed_attempts), (2, 0, 1));
    assert_eq!(st.counts.map(|c| c.processed), Some(20), "the retried shard counts once");
    let (kind, _, note) = h.wait_event(ns, "flaky", "ShardFailed").await;
    assert_eq!(kind, "Warning");
    assert!(note.contains("shard 1") && note.contains("exit code 3: S3 unreachable after 5 retries"), "{note}");
}

async fn shard_failing_past_its_limit(h: &Harness) {
    let ns = "broken";
    h.behave("broken", r#"if [ "$i" = 1 ]; then summary 0 0 0 0 "sink unreachable: connection refused"; exit 3; fi; summary 10 10 0 0"#);
    let (ok, err) = h.apply(&scan_yaml(ns, "broken", 2, "  backoffLimitPerIndex: 1\n"));
    assert!(ok, "{err}");
    let done = h.wait_scan(ns, "broken", RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (status, reason, message) = condition(&done, "Failed");
    assert_eq!((status, reason), ("True", "ShardFailed"));
    assert!(message.contains("shard(s) 1 failed") && message.contains("sink unreachable"), "{message}");
    assert_eq!(condition(&done, "Stalled").0, "True");
    assert_eq!(condition(&done, "Ready").0, "False");
    let st = done.status.clone().expect("status");
    let shards = st.shards.expect("shards");
    assert_eq!((shards.succeeded, shards.failed, shards.failed_attempts), (1, 1, 2), "1 try + 1 retry of shard 1");
    assert!(st.completion_time.is_some());
    let events = h.events(ns, "broken").await;
    assert!(
        events.iter().any(|(t, r, n)| t == "Warning" && r == "ShardFailed" && n.contains("backoffLimitPerIndex=1")),
        "final Warning Event missing: {events:?}"
    );
    // One Event per failed pod, each with its own pod name (not one series keeping the first).
    let per_pod: Vec<_> = events.iter().filter(|(_, r, n)| r == "ShardFailed" && n.contains("(pod ")).collect();
    assert_eq!(per_pod.len(), 2, "one ShardFailed Event per failed attempt: {events:?}");
    assert_ne!(per_pod[0].2, per_pod[1].2, "{per_pod:?}");
}

async fn configuration_error(h: &Harness) {
    let ns = "config";
    h.behave("misconfigured", r#"summary 0 0 0 0 "bad sink URI"; exit 2"#);
    let (ok, err) = h.apply(&scan_yaml(ns, "misconfigured", 2, "  backoffLimitPerIndex: 5\n"));
    assert!(ok, "{err}");
    let done = h.wait_scan(ns, "misconfigured", RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (status, reason, message) = condition(&done, "Failed");
    assert_eq!((status, reason), ("True", "ConfigurationError"));
    assert!(message.contains("exit code 2: bad sink URI"), "{message}");
    let attempts = done.status.and_then(|s| s.shards).map(|s| s.failed_attempts).unwrap_or_default();
    assert!(attempts <= 2, "exit code 2 is not retried: {attempts} failed pods");
}

/// The plan maps are optional sources of the shards' plan volume: a chunk map deleted by hand
/// after planning does not leave pods waiting for their volume — they start, and the shard
/// exits 2 naming its missing chunk file, which fails the scan with that reason.
async fn a_deleted_plan_map(h: &Harness) {
    let ns = "lost";
    let go = h.behaviours.join("lost.go");
    let wait = format!(r#"if [ "$i" = 0 ]; then while [ ! -f '{}' ]; do sleep 0.2; done; fi; "#, go.display());
    h.behave("lost", &format!("{wait}summary 10 10 0 0"));
    let (ok, err) = h.apply(&scan_yaml(ns, "lost", 2, "  parallelism: 1\n  backoffLimitPerIndex: 5\n"));
    assert!(ok, "{err}");
    let running = h.wait_scan(ns, "lost", RUN_TIMEOUT, "Running", |s| phase(s) == Some(Phase::Running)).await;
    let run = running.status.and_then(|s| s.run).expect("run");
    let chunk = format!("lost-{run}-plan-0");
    kubectl_ok(&h.cluster, &["delete", "configmap", "-n", ns, &chunk]);
    std::fs::write(&go, "").expect("shard 0 may end");
    let done = h.wait_scan(ns, "lost", RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (status, reason, message) = condition(&done, "Failed");
    assert_eq!((status, reason), ("True", "ConfigurationError"));
    assert!(message.contains("exit code 2: no plan chunk at") && message.contains("partitions-0.json"), "{message}");
}

async fn suspend_and_resume(h: &Harness) {
    let ns = "pause";
    h.behave("paused", "progress 5 5; sleep 5; summary 10 10 0 0");
    let (ok, err) = h.apply(&scan_yaml(ns, "paused", 2, "  suspend: true\n"));
    assert!(ok, "{err}");
    let s = h.wait_scan(ns, "paused", RUN_TIMEOUT, "Suspended", |s| phase(s) == Some(Phase::Suspended)).await;
    assert_eq!(condition(&s, "Progressing").1, "Suspended");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.jobs(ns, "paused").await.is_empty(), "nothing runs while suspended");

    kubectl_ok(
        &h.cluster,
        &["patch", "exs", "paused", "-n", ns, "--type=merge", "-p", r#"{"spec":{"suspend":false}}"#],
    );
    h.wait_scan(ns, "paused", RUN_TIMEOUT, "Running shards", |s| {
        phase(s) == Some(Phase::Running)
            && s.status.as_ref().and_then(|st| st.shards.as_ref()).is_some_and(|sh| sh.active > 0)
    })
    .await;
    kubectl_ok(&h.cluster, &["patch", "exs", "paused", "-n", ns, "--type=merge", "-p", r#"{"spec":{"suspend":true}}"#]);
    let s = h.wait_scan(ns, "paused", RUN_TIMEOUT, "Suspended again", |s| phase(s) == Some(Phase::Suspended)).await;
    let job_name = s.status.and_then(|st| st.job_name).expect("job name");
    let job = h
        .jobs(ns, "paused")
        .await
        .into_iter()
        .find(|j| j.metadata.name.as_deref() == Some(job_name.as_str()))
        .expect("job");
    assert_eq!(job.spec.and_then(|s| s.suspend), Some(true), "the Job is suspended");

    kubectl_ok(
        &h.cluster,
        &["patch", "exs", "paused", "-n", ns, "--type=merge", "-p", r#"{"spec":{"suspend":false}}"#],
    );
    let done = h.wait_scan(ns, "paused", RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    assert_eq!(done.status.and_then(|s| s.counts).map(|c| c.processed), Some(20));
    let reasons: Vec<String> = h.events(ns, "paused").await.into_iter().map(|e| e.1).collect();
    assert!(reasons.iter().any(|r| r == "Suspended") && reasons.iter().any(|r| r == "Resumed"), "{reasons:?}");
}

fn metric(op: &Operator, name: &str) -> f64 {
    let (_, text) = op.get("/metrics").expect("metrics served");
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}
