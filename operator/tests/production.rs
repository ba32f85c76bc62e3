//! ExrScans under what a production cluster does to them, on a real control plane with the
//! operator binary and the fake worker (see `harness`): pods retried and runs replaced while
//! old pods still stop (one writer per index at a time), a scan re-created while its old
//! Jobs wait for garbage collection, a zero TTL, Kueue suspending and resizing Jobs, a
//! missing credentials Secret, a run deadline, quotas refusing Jobs or pods, workers that
//! try to write what is not theirs, pods deleted mid-run, the worker pod settings of a
//! production cluster (operator defaults and a scan's own), and a run with too many
//! unreadable files.

mod harness;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use exrscan_crds::{ExrScan, Phase};
use harness::{Harness, kubectl_ok, scan_yaml};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams};

const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn phase(s: &ExrScan) -> Option<Phase> {
    s.status.as_ref().and_then(|s| s.phase)
}

/// (status, reason, message) of condition `t`.
fn condition(s: &ExrScan, t: &str) -> (String, String, String) {
    s.status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == t))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

fn run_of(s: &ExrScan) -> String {
    s.status.as_ref().and_then(|st| st.run.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_hold_up_under_production_conditions() {
    let h = Harness::start(true).await;
    // Every scan here runs with the operator's worker pod defaults: a priority class, a pull
    // Secret, a nodeSelector the node agent matches, a toleration, labels and annotations.
    for (class, value) in [("exrscan-low", 100), ("exrscan-high", 1000)] {
        let (ok, err) = h.apply(&format!(
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: {class}\nvalue: {value}\n"
        ));
        assert!(ok, "{err}");
    }
    // Edits to the worker's identity are undone every --resync-seconds.
    let _op = h.operator(
        "op-1",
        &["--stuck-pod-seconds", "4", "--resync-seconds", "5", "--worker-pod-defaults", WORKER_POD_DEFAULTS],
    );
    for ns in [
        "fence",
        "again",
        "ttl",
        "queue",
        "stuck",
        "deadline",
        "quota",
        "podquota",
        "privilege",
        "gone",
        "podsettings",
        "failfiles",
    ] {
        h.namespace(ns).await;
    }
    tokio::join!(
        one_writer_per_index_and_run(&h),
        a_recreated_scan_starts_afresh(&h),
        zero_ttl_keeps_the_outcome(&h),
        kueue_owns_suspend_and_parallelism(&h),
        a_missing_secret_fails_the_scan(&h),
        a_run_past_its_deadline_fails(&h),
        a_quota_refusal_shows_as_stalled(&h),
        pods_refused_by_a_quota_fail_the_scan(&h),
        workers_write_their_progress_and_nothing_else(&h),
        counts_survive_deleted_pods(&h),
        worker_pods_get_the_production_settings(&h),
        too_many_failed_files_fail_the_run(&h),
    );
}

/// The operator's `--worker-pod-defaults` in this test.
const WORKER_POD_DEFAULTS: &str = r#"{
  "imagePullSecrets": [{"name": "studio-registry"}],
  "nodeSelector": {"node.exrscan.dev/agent": "true"},
  "tolerations": [{"key": "exrscan.dev/batch", "operator": "Exists", "effect": "NoSchedule"}],
  "priorityClassName": "exrscan-low",
  "podLabels": {"team": "pipeline"},
  "podAnnotations": {"example.com/owner": "pipeline"},
  "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/exrscan-default"}
}"#;

/// A behaviour whose pods log when they start and when they have stopped (nanoseconds), and
/// take 3 s to stop after SIGTERM, like a worker finishing its batch.
fn logged(h: &Harness, scan: &str, body: &str) -> String {
    let log = h.behaviours.join(format!("{scan}.log"));
    let log = log.display();
    format!(
        r#"echo "$(date +%s%N) start $POD_NAME" >> '{log}'
trap 'sleep 3; echo "$(date +%s%N) end $POD_NAME" >> '"'{log}'"'; exit 143' TERM
{body}
echo "$(date +%s%N) end $POD_NAME" >> '{log}'"#
    )
}

/// The log lines of `logged` pods: (nanoseconds, "start"/"end", pod).
fn log_lines(h: &Harness, scan: &str) -> Vec<(u128, String, String)> {
    std::fs::read_to_string(h.behaviours.join(format!("{scan}.log")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

async fn shard_pods(h: &Harness, ns: &str, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .expect("pods listed")
        .items
}

async fn job(h: &Harness, ns: &str, name: &str) -> Option<Job> {
    Api::<Job>::namespaced(h.client.clone(), ns).get_opt(name).await.expect("job read")
}

async fn wait_job(h: &Harness, ns: &str, name: &str, what: &str, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(j) = job(h, ns, name).await.filter(|j| done(j)) {
            return j;
        }
        assert!(Instant::now() < deadline, "{ns}/{name}: timed out waiting for {what}\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn one_writer_per_index_and_run(h: &Harness) {
    let (ns, name) = ("fence", "fence");
    h.behave(name, &logged(h, name, "progress 1 1; sleep 60 & wait $!; summary 10 10 0 0"));
    let (ok, err) = h.apply(&scan_yaml(ns, name, 2, ""));
    assert!(ok, "{err}");
    let running = h
        .wait_scan(ns, name, RUN_TIMEOUT, "both shards running", |s| {
            s.status.as_ref().and_then(|st| st.shards.as_ref()).is_some_and(|sh| sh.active == 2)
                && log_lines(h, name).len() == 2
        })
        .await;
    let old_run = run_of(&running);
    let old_job_name = format!("{name}-{old_run}");
    let old_job = job(h, ns, &old_job_name).await.expect("shard Job");
    assert_eq!(
        old_job.spec.as_ref().and_then(|s| s.pod_replacement_policy.as_deref()),
        Some("Failed"),
        "the Job carries the policy"
    );

    // A pod of index 0 is deleted: its replacement starts only once it has stopped.
    let pods = shard_pods(h, ns, &old_job_name).await;
    let first = pods
        .iter()
        .find(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
                .map(String::as_str)
                == Some("0")
        })
        .and_then(|p| p.metadata.name.clone())
        .expect("pod of index 0");
    kubectl_ok(&h.cluster, &["delete", "pod", &first, "-n", ns, "--wait=false"]);
    let deadline = Instant::now() + RUN_TIMEOUT;
    while log_lines(h, name).iter().filter(|l| l.1 == "start").count() < 3 {
        assert!(Instant::now() < deadline, "no replacement pod: {:?}\n{}", log_lines(h, name), h.diagnostics());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lines = log_lines(h, name);
    let ended = lines.iter().find(|l| l.1 == "end" && l.2 == first).map(|l| l.0).expect("the deleted pod stopped");
    let replacement = lines.iter().filter(|l| l.1 == "start").nth(2).expect("replacement");
    assert!(replacement.0 > ended, "replacement {} started before {first} stopped: {lines:?}", replacement.2);
    eprintln!("retry of index 0 started {} ms after its deleted pod stopped", (replacement.0 - ended) / 1_000_000);

    // A rescan while the old run's pods still run: its Job comes only once they have stopped.
    h.behave(name, &logged(h, name, "summary 10 0 10 0"));
    let rescan = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let (ok, err) = h.apply(&scan_yaml(ns, name, 2, "  rescan: \"2\"\n"));
    assert!(ok, "{err}");
    let reasons = Mutex::new(Vec::<String>::new());
    let done = h
        .wait_scan(ns, name, RUN_TIMEOUT, "the rescan to succeed", |s| {
            let reason = condition(s, "Progressing").1;
            let mut seen = reasons.lock().expect("lock");
            if seen.last() != Some(&reason) {
                seen.push(reason);
            }
            run_of(s) != old_run && phase(s) == Some(Phase::Succeeded)
        })
        .await;
    let reasons = reasons.into_inner().expect("lock");
    assert!(reasons.iter().any(|r| r == "PreviousRunStopping"), "the rescan waited for the old pods: {reasons:?}");
    let new_job_name = format!("{name}-{}", run_of(&done));
    let new_job = job(h, ns, &new_job_name).await.expect("new shard Job");
    assert_eq!(new_job.spec.as_ref().and_then(|s| s.pod_replacement_policy.as_deref()), Some("Failed"));
    let lines = log_lines(h, name);
    let old_prefix = format!("{old_job_name}-");
    let new_prefix = format!("{new_job_name}-");
    let old: Vec<_> = lines.iter().filter(|l| l.2.starts_with(&old_prefix)).collect();
    let last_old_end = old.iter().filter(|l| l.1 == "end").map(|l| l.0).max().expect("old pods stopped");
    assert_eq!(old.iter().filter(|l| l.1 == "end").count(), 3, "every old pod stopped: {lines:?}");
    let first_new_start =
        lines.iter().filter(|l| l.2.starts_with(&new_prefix) && l.1 == "start").map(|l| l.0).min().expect("new pods");
    assert!(first_new_start > last_old_end, "a new pod started before the old run's pods stopped: {lines:?}");
    eprintln!(
        "rescan: old pods stopped {} ms after the apply, the new run's first pod started {} ms after that",
        (last_old_end - rescan) / 1_000_000,
        (first_new_start - last_old_end) / 1_000_000
    );
    let created = new_job.metadata.creation_timestamp.expect("created").0.as_nanosecond();
    assert!(created + 1_000_000_000 > last_old_end as i128, "the new Job was created after the old pods stopped");
    let counts = done.status.and_then(|s| s.counts).expect("counts");
    assert_eq!((counts.inserted, counts.unchanged), (0, 20));
}

async fn a_recreated_scan_starts_afresh(h: &Harness) {
    let (ns, name) = ("again", "again");
    h.behave(name, "summary 10 10 0 0");
    let manifest = scan_yaml(ns, name, 1, "");
    let (ok, err) = h.apply(&manifest);
    assert!(ok, "{err}");
    let first = h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    let job_name = format!("{name}-{}", run_of(&first));
    // Its Job outlives the scan for a while, as when garbage collection is slow.
    kubectl_ok(
        &h.cluster,
        &[
            "patch",
            "job",
            &job_name,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["test.exrscan.dev/hold"]}}"#,
        ],
    );
    kubectl_ok(&h.cluster, &["delete", "exs", name, "-n", ns, "--wait=true"]);
    wait_job(h, ns, &job_name, "garbage collection to start", |j| j.metadata.deletion_timestamp.is_some()).await;

    h.behave(name, "summary 10 0 10 0");
    let (ok, err) = h.apply(&manifest);
    assert!(ok, "{err}");
    let uid = h.scan(ns, name).await.metadata.uid;
    assert_ne!(uid, first.metadata.uid);
    let held = format!("Job {job_name} of an earlier ExrScan of this name");
    h.wait_scan(ns, name, RUN_TIMEOUT, "waiting for the old Job", |s| {
        let (_, reason, message) = condition(s, "Progressing");
        reason == "PreviousRunStopping" && message.contains(&held)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = h.scan(ns, name).await;
    assert_eq!(phase(&still), Some(Phase::Pending), "the old Job is not adopted: {:?}", still.status);

    kubectl_ok(
        &h.cluster,
        &[
            "patch",
            "job",
            &job_name,
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ],
    );
    let done = h.wait_scan(ns, name, RUN_TIMEOUT, "a fresh run", |s| phase(s) == Some(Phase::Succeeded)).await;
    let counts = done.status.and_then(|s| s.counts).expect("counts");
    assert_eq!((counts.inserted, counts.unchanged), (0, 10), "the new run's counts, not the old Job's");
    let new_job = job(h, ns, &job_name).await.expect("the new run's Job");
    assert_eq!(
        new_job.metadata.owner_references.and_then(|o| o.first().map(|o| o.uid.clone())),
        uid,
        "owned by the new scan"
    );
}

async fn zero_ttl_keeps_the_outcome(h: &Harness) {
    let (ns, name) = ("ttl", "quick");
    h.behave(name, "summary 10 10 0 0");
    let (ok, err) = h.apply(&scan_yaml(ns, name, 1, "  ttlSecondsAfterFinished: 0\n"));
    assert!(ok, "{err}");
    h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.jobs(ns, name).await.is_empty() {
        assert!(Instant::now() < deadline, "the TTL did not delete the Jobs\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Several reconciles later the outcome is still the recorded one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = h.scan(ns, name).await;
    assert_eq!(phase(&after), Some(Phase::Succeeded), "{:?}", after.status);
    assert_eq!(after.status.and_then(|s| s.counts).map(|c| c.inserted), Some(10));
}

async fn kueue_owns_suspend_and_parallelism(h: &Harness) {
    let (ns, name) = ("queue", "queued");
    h.behave(name, "progress 1 1; sleep 4; summary 10 10 0 0");
    let (ok, err) = h.apply(&scan_yaml(ns, name, 2, "  worker:\n    queueName: farm\n"));
    assert!(ok, "{err}");
    let queued = h.wait_scan(ns, name, RUN_TIMEOUT, "Queued", |s| condition(s, "Progressing").1 == "Queued").await;
    assert_eq!(phase(&queued), Some(Phase::Pending));
    let planner_name = format!("{name}-plan-{}", run_of(&queued));
    let planner = job(h, ns, &planner_name).await.expect("planner Job");
    let labels = planner.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("kueue.x-k8s.io/queue-name").map(String::as_str), Some("farm"));
    assert_eq!(planner.spec.and_then(|s| s.suspend), Some(true), "created suspended for Kueue");

    // Kueue admits the planner, then the shard Job with one pod at a time.
    let patch =
        |job: &str, body: &str| kubectl_ok(&h.cluster, &["patch", "job", job, "-n", ns, "--type=merge", "-p", body]);
    patch(&planner_name, r#"{"spec":{"suspend":false}}"#);
    let shard_name = format!("{name}-{}", run_of(&queued));
    let shard = wait_job(h, ns, &shard_name, "the shard Job", |_| true).await;
    assert_eq!(shard.spec.as_ref().and_then(|s| s.suspend), Some(true));
    patch(&shard_name, r#"{"spec":{"suspend":false,"parallelism":1}}"#);
    h.wait_scan(ns, name, RUN_TIMEOUT, "Running", |s| phase(s) == Some(Phase::Running)).await;

    // Kueue preempts it: the operator leaves the Job suspended and resized.
    patch(&shard_name, r#"{"spec":{"suspend":true}}"#);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = job(h, ns, &shard_name).await.expect("shard Job");
    let spec = held.spec.expect("spec");
    assert_eq!((spec.suspend, spec.parallelism), (Some(true), Some(1)), "external suspend and parallelism kept");
    let scan = h.scan(ns, name).await;
    assert_eq!((phase(&scan), condition(&scan, "Progressing").1.as_str()), (Some(Phase::Pending), "Queued"));

    patch(&shard_name, r#"{"spec":{"suspend":false}}"#);
    let done = h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    assert_eq!(done.status.and_then(|s| s.counts).map(|c| c.inserted), Some(20));
}

async fn a_missing_secret_fails_the_scan(h: &Harness) {
    let (ns, name) = ("stuck", "typo");
    let yaml = scan_yaml(ns, name, 1, "").replace("    prefix:", "    credentialsSecret: missing-creds\n    prefix:");
    let (ok, err) = h.apply(&yaml);
    assert!(ok, "{err}");
    let failed = h.wait_scan(ns, name, RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (status, reason, message) = condition(&failed, "Failed");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "CreateContainerConfigError"), "{message}");
    assert!(message.contains("missing-creds"), "{message}");
    assert_eq!(condition(&failed, "Stalled").0, "True");
    // Its planner is ended, not left waiting.
    let planner = format!("{name}-plan-{}", run_of(&failed));
    wait_job(h, ns, &planner, "the planner Job to be ended", |j| {
        j.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Failed"))
    })
    .await;
    h.wait_event(ns, name, "CreateContainerConfigError").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(condition(&h.scan(ns, name).await, "Failed").1, "CreateContainerConfigError", "the reason stays");
}

async fn a_run_past_its_deadline_fails(h: &Harness) {
    let (ns, name) = ("deadline", "slow");
    h.behave(name, "progress 1 1; sleep 120 & wait $!; summary 10 10 0 0");
    let (ok, err) = h.apply(&scan_yaml(ns, name, 1, "  timeoutSeconds: 15\n"));
    assert!(ok, "{err}");
    let started = Instant::now();
    let failed = h.wait_scan(ns, name, RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (_, reason, message) = condition(&failed, "Failed");
    assert_eq!(reason, "DeadlineExceeded", "{message}");
    assert!(message.contains("spec.timeoutSeconds=15"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(40), "ended near its deadline: {:?}", started.elapsed());
    let job = job(h, ns, &format!("{name}-{}", run_of(&failed))).await.expect("shard Job");
    let deadline = job.spec.and_then(|s| s.active_deadline_seconds).expect("activeDeadlineSeconds");
    assert!((1..=15).contains(&deadline), "what was left of the run's 15 s: {deadline}");
}

async fn a_quota_refusal_shows_as_stalled(h: &Harness) {
    let (ns, name) = ("quota", "capped");
    h.behave(name, "summary 10 10 0 0");
    zero_quota(h, ns, "no-jobs", "count/jobs.batch");
    let (ok, err) = h.apply(&scan_yaml(ns, name, 1, ""));
    assert!(ok, "{err}");
    let stalled = h.wait_scan(ns, name, RUN_TIMEOUT, "Stalled", |s| condition(s, "Stalled").0 == "True").await;
    let (_, reason, message) = condition(&stalled, "Stalled");
    assert_eq!(reason, "QuotaExceeded", "{message}");
    assert!(message.contains("exceeded quota"), "{message}");
    assert_eq!(condition(&stalled, "Reconciling").0, "False", "kstatus reads it as failed");
    assert_eq!(condition(&stalled, "Ready").0, "False");
    let (kind, _, note) = h.wait_event(ns, name, "QuotaExceeded").await;
    assert_eq!(kind, "Warning", "{note}");

    kubectl_ok(&h.cluster, &["delete", "resourcequota", "no-jobs", "-n", ns]);
    let done = h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    assert_eq!(condition(&done, "Stalled").0, "False");
}

/// A ResourceQuota `name` allowing none of `resource` in `ns`. No quota controller runs here:
/// the test writes the quota's status itself.
fn zero_quota(h: &Harness, ns: &str, name: &str, resource: &str) {
    let (ok, err) = h.apply(&format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  hard:\n    {resource}: \"0\"\n"
    ));
    assert!(ok, "{err}");
    let status = format!(r#"{{"status":{{"hard":{{"{resource}":"0"}},"used":{{"{resource}":"0"}}}}}}"#);
    kubectl_ok(
        &h.cluster,
        &["patch", "resourcequota", name, "-n", ns, "--subresource=status", "--type=merge", "-p", &status],
    );
}

async fn pods_refused_by_a_quota_fail_the_scan(h: &Harness) {
    let (ns, name) = ("podquota", "nopods");
    zero_quota(h, ns, "no-pods", "pods");
    let (ok, err) = h.apply(&scan_yaml(ns, name, 1, ""));
    assert!(ok, "{err}");
    let failed = h.wait_scan(ns, name, RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (_, reason, message) = condition(&failed, "Failed");
    assert_eq!(reason, "QuotaExceeded", "{message}");
    assert!(message.contains("could not create any pod") && message.contains("exceeded quota"), "{message}");
}

/// Runs `kubectl ARGS` inside a worker pod (with its ServiceAccount's token), appending its
/// output and exit status to `$DIR/<scan>.<file>`.
/// A shell fragment: asks the API server's authorizer whether the pod's token may patch
/// `object` (`kubectl auth can-i`), then tries `patch`; both outputs into `<scan>.<file>`.
fn try_in_pod(h: &Harness, scan: &str, file: &str, object: &str, patch: &str) -> String {
    let out = h.behaviours.join(format!("{scan}.{file}"));
    let out = out.display();
    format!(
        r#""$KUBECTL" -n "$POD_NAMESPACE" auth can-i patch {object} >> '{out}' 2>&1; "$KUBECTL" -n "$POD_NAMESPACE" patch {object} --type merge -p '{patch}' >> '{out}' 2>&1; echo "exit $?" >> '{out}'"#
    )
}

async fn workers_write_their_progress_and_nothing_else(h: &Harness) {
    let (ns, name) = ("privilege", "least");
    // A bystander pod (never run: bound to a node no agent serves) and a ConfigMap of
    // someone else in the scan's namespace.
    let (ok, err) = h.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bystander\n  namespace: {ns}\nspec:\n  nodeName: elsewhere\n  containers:\n  - name: c\n    image: busybox\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-other-progress-0\n  namespace: {ns}\n"
    ));
    assert!(ok, "{err}");
    let release = h.behaviours.join(format!("{name}.release"));
    h.behave(
        name,
        &format!(
            "[ \"$i\" = 0 ] && {{ {}; {}; {}; }}\nprogress 4 4\nwhile [ ! -f '{}' ]; do sleep 0.2; done\nsummary 10 10 0 0",
            try_in_pod(h, name, "pod", "pod/bystander", r#"{"metadata":{"labels":{"taken":"yes"}}}"#),
            try_in_pod(h, name, "own-pod", "pod/\"$POD_NAME\"", r#"{"metadata":{"labels":{"taken":"yes"}}}"#),
            try_in_pod(h, name, "cm", "configmap/least-other-progress-0", r#"{"data":{"0":"x"}}"#),
            release.display()
        ),
    );
    let (ok, err) = h.apply(&scan_yaml(ns, name, 2, ""));
    assert!(ok, "{err}");
    // Progress reaches the status while the shards run, through the progress ConfigMap.
    let running = h
        .wait_scan(ns, name, RUN_TIMEOUT, "live progress of both shards", |s| {
            phase(s) == Some(Phase::Running)
                && s.status.as_ref().and_then(|st| st.counts).is_some_and(|c| c.processed == 8)
        })
        .await;
    let run = run_of(&running);
    let map = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(h.client.clone(), ns)
        .get(&format!("{name}-{run}-progress-0"))
        .await
        .expect("progress ConfigMap");
    let data = map.data.unwrap_or_default();
    assert!(data.get("0").is_some_and(|v| v.contains("\"processed\":4")), "{data:?}");
    for (file, what) in [("pod", "another pod"), ("own-pod", "its own pod"), ("cm", "another ConfigMap")] {
        let path = h.behaviours.join(format!("{name}.{file}"));
        let deadline = Instant::now() + RUN_TIMEOUT;
        let out = loop {
            let out = std::fs::read_to_string(&path).unwrap_or_default();
            if out.contains("exit ") {
                break out;
            }
            assert!(Instant::now() < deadline, "the worker did not try to patch {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The authorizer's answer for PATCH, then the refused attempt (kubectl reads first).
        assert!(out.lines().next() == Some("no"), "the worker may patch {what}: {out}");
        assert!(out.contains("(Forbidden)") && !out.contains("exit 0"), "the worker could patch {what}: {out}");
        assert!(out.contains(&format!("system:serviceaccount:{ns}:{name}-worker")), "{out}");
        eprintln!("worker patching {what}: {}", out.lines().next().unwrap_or_default());
    }
    let bystander = Api::<Pod>::namespaced(h.client.clone(), ns).get("bystander").await.expect("bystander");
    assert!(!bystander.metadata.labels.unwrap_or_default().contains_key("taken"));

    // Edits to the worker's identity are undone while the run goes on.
    let roles = Api::<Role>::namespaced(h.client.clone(), ns);
    let role_name = format!("{name}-worker");
    kubectl_ok(&h.cluster, &["delete", "role", &role_name, "-n", ns]);
    kubectl_ok(&h.cluster, &["delete", "rolebinding", &role_name, "-n", ns]);
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let role = roles.get_opt(&role_name).await.expect("role read");
        let binding = Api::<RoleBinding>::namespaced(h.client.clone(), ns).get_opt(&role_name).await.expect("read");
        let names: Vec<String> = role
            .and_then(|r| r.rules)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r.resource_names.unwrap_or_default())
            .collect();
        if binding.is_some() && names.contains(&format!("{name}-{run}-progress-0")) {
            break;
        }
        assert!(Instant::now() < deadline, "the worker Role was not re-applied: {names:?}\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    std::fs::write(&release, "").expect("release");
    let done = h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    assert_eq!(done.status.and_then(|s| s.counts).map(|c| (c.processed, c.inserted)), Some((20, 20)));
}

async fn counts_survive_deleted_pods(h: &Harness) {
    let (ns, name) = ("gone", "gone");
    let release = h.behaviours.join(format!("{name}.release"));
    // Shard 1 fails once; shard 2 runs until released; the others finish at once.
    h.behave(
        name,
        &format!(
            "progress 2 2\n[ \"$i\" = 1 ] && [ \"$n\" = 1 ] && {{ summary 3 3 0 0 'S3 unreachable'; exit 3; }}\n[ \"$i\" = 2 ] && while [ ! -f '{}' ]; do sleep 0.2; done\nsummary 10 10 0 0",
            release.display()
        ),
    );
    let (ok, err) = h.apply(&scan_yaml(ns, name, 4, ""));
    assert!(ok, "{err}");
    let three = h
        .wait_scan(ns, name, RUN_TIMEOUT, "three shards done", |s| {
            s.status.as_ref().and_then(|st| st.shards.as_ref()).is_some_and(|sh| sh.succeeded == 3)
                && s.status.as_ref().and_then(|st| st.counts).is_some_and(|c| c.inserted == 32)
        })
        .await;
    let job_name = format!("{name}-{}", run_of(&three));
    h.wait_event(ns, name, "ShardFailed").await;

    // Every pod that has stopped is deleted (as terminated-pod GC or a cleanup would).
    let stopped = shard_pods(h, ns, &job_name)
        .await
        .into_iter()
        .filter(|p| matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .filter_map(|p| p.metadata.name)
        .collect::<Vec<_>>();
    assert_eq!(stopped.len(), 4, "3 succeeded and 1 failed pod: {stopped:?}");
    let mut args = vec!["delete", "pod", "-n", ns, "--wait=true"];
    args.extend(stopped.iter().map(String::as_str));
    kubectl_ok(&h.cluster, &args);
    // Several reconciles later the counts are what they were.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = h.scan(ns, name).await;
    let status = after.status.clone().expect("status");
    assert_eq!(status.counts.map(|c| c.inserted), Some(32), "{status:?}");
    assert_eq!(status.shards.as_ref().map(|s| (s.succeeded, s.failed_attempts)), Some((3, 1)), "{status:?}");

    std::fs::write(&release, "").expect("release");
    let done = h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    let status = done.status.expect("status");
    let counts = status.counts.expect("counts");
    assert_eq!((counts.processed, counts.inserted), (40, 40), "final counts of all four shards");
    assert_eq!(status.shards.map(|s| (s.succeeded, s.failed_attempts)), Some((4, 1)));
    // One ShardFailed Event for the one failed attempt, not repeated once its pod was gone.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events listed");
    let failed: Vec<_> = events.items.into_iter().filter(|e| e.reason.as_deref() == Some("ShardFailed")).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let note = failed[0].note.clone().unwrap_or_default();
    assert!(note.contains("shard 1 failed") && note.contains("S3 unreachable"), "{note}");
    assert!(failed[0].series.is_none(), "published once, not as a series: {:?}", failed[0].series);
}

/// A scan's own pod settings over the operator's defaults reach its planner and shard pods
/// (and not their Jobs), its worker ServiceAccount, and its S3 CA Secret the workers; changing
/// them starts no new run; a pod label of the operator's is refused.
async fn worker_pods_get_the_production_settings(h: &Harness) {
    let (ns, name) = ("podsettings", "prod");
    let ca = "-----BEGIN CERTIFICATE-----\nTESTCA\n-----END CERTIFICATE-----";
    let (ok, err) = h.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-ca\n  namespace: {ns}\nstringData:\n  ca.crt: |\n    {}\n",
        ca.replace('\n', "\n    ")
    ));
    assert!(ok, "{err}");
    let dir = h.behaviours.display().to_string();
    std::fs::write(
        h.behaviours.join(format!("{name}.plan")),
        format!("cat \"$EXRSCAN_S3_CA\" > '{dir}/{name}.planner-ca'\n"),
    )
    .expect("planner behaviour");
    h.behave(name, &format!("cat \"$EXRSCAN_S3_CA\" > \"{dir}/{name}.$i.ca\"\nsummary 10 10 0 0"));
    let worker = |team: &str| {
        format!(
            r#"  worker:
    priorityClassName: exrscan-high
    nodeSelector: {{kubernetes.io/os: linux}}
    tolerations: []
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
          - matchExpressions: [{{key: node.exrscan.dev/agent, operator: In, values: ["true"]}}]
    podLabels: {{team: {team}, show: abc}}
    podAnnotations: {{example.com/ticket: "42"}}
    serviceAccountAnnotations: {{eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/abc"}}
"#
        )
    };
    let manifest =
        |team: &str| scan_yaml(ns, name, 2, &worker(team)).replace("    prefix:", "    caSecret: s3-ca\n    prefix:");
    let (ok, err) = h.apply(&manifest("lighting"));
    assert!(ok, "{err}");
    let done = h.wait_scan(ns, name, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    let run = run_of(&done);

    let entry = |k: &str, v: &str| (k.to_string(), v.to_string());
    for (job_name, component) in [(format!("{name}-plan-{run}"), "planner"), (format!("{name}-{run}"), "shard")] {
        let job = job(h, ns, &job_name).await.expect("Job");
        let job_labels = job.metadata.labels.clone().unwrap_or_default();
        assert!(!job_labels.contains_key("team") && job.metadata.annotations.is_none(), "{:?}", job.metadata);
        let template = job.spec.expect("Job spec").template;
        let meta = template.metadata.expect("pod metadata");
        let labels = meta.labels.unwrap_or_default();
        assert_eq!(labels.get("team").map(String::as_str), Some("lighting"), "the scan's label wins");
        assert_eq!(labels.get("show").map(String::as_str), Some("abc"));
        assert_eq!(labels.get("exrscan.dev/run"), Some(&run));
        assert_eq!(labels.get("app.kubernetes.io/component").map(String::as_str), Some(component));
        let annotations = meta.annotations.unwrap_or_default();
        assert_eq!(
            annotations,
            [entry("example.com/owner", "pipeline"), entry("example.com/ticket", "42")].into(),
            "annotations merged"
        );
        let pod = template.spec.expect("pod spec");
        assert_eq!(pod.priority_class_name.as_deref(), Some("exrscan-high"), "the scan's class replaces the default");
        assert_eq!(pod.tolerations, None, "an empty list removes the default tolerations");
        assert_eq!(
            pod.node_selector,
            Some([entry("kubernetes.io/os", "linux"), entry("node.exrscan.dev/agent", "true")].into()),
            "nodeSelectors merged"
        );
        assert_eq!(pod.image_pull_secrets.map(|s| s[0].name.clone()).as_deref(), Some("studio-registry"));
        assert!(pod.affinity.and_then(|a| a.node_affinity).is_some(), "{component}: affinity");
    }
    // The pods as the API server admitted them: the priority class resolved.
    let pods = shard_pods(h, ns, &format!("{name}-{run}")).await;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        assert_eq!(pod.spec.as_ref().and_then(|s| s.priority), Some(1000), "exrscan-high's value");
        assert_eq!(pod.metadata.labels.as_ref().and_then(|l| l.get("show")).map(String::as_str), Some("abc"));
    }
    let accounts = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(h.client.clone(), ns);
    let account = accounts.get(&format!("{name}-worker")).await.expect("worker ServiceAccount");
    assert_eq!(
        account.metadata.annotations,
        Some([entry("eks.amazonaws.com/role-arn", "arn:aws:iam::123456789012:role/abc")].into()),
        "the scan's role replaces the default's; pod annotations stay off it"
    );
    assert!(!account.metadata.labels.unwrap_or_default().contains_key("team"), "pod labels stay off it");
    // The CA Secret reached the planner and both shards as EXRSCAN_S3_CA.
    for file in [format!("{name}.planner-ca"), format!("{name}.0.ca"), format!("{name}.1.ca")] {
        let read = std::fs::read_to_string(h.behaviours.join(&file)).unwrap_or_default();
        assert_eq!(read.trim_end(), ca, "{file}");
    }

    // A change of the pod settings alone starts no run.
    let (ok, err) = h.apply(&manifest("compositing"));
    assert!(ok, "{err}");
    let generation = h.scan(ns, name).await.metadata.generation;
    let seen = h
        .wait_scan(ns, name, RUN_TIMEOUT, "the new generation observed", |s| {
            s.status.as_ref().and_then(|st| st.observed_generation) == generation
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = h.scan(ns, name).await;
    assert_eq!((run_of(&seen), run_of(&after)), (run.clone(), run.clone()), "the same run");
    assert_eq!(phase(&after), Some(Phase::Succeeded));
    assert_eq!(h.jobs(ns, name).await.len(), 2, "no new Job");

    // The operator's labels cannot be set.
    let (ok, err) = h.apply(&manifest("x").replace("show: abc", "exrscan.dev/run: other"));
    assert!(!ok && err.contains("spec.worker.podLabels must not set the operator's"), "{err}");
}

/// A run with more unreadable files than `spec.maxFailedFiles` fails with
/// `TooManyFailedFiles` while its shards still run, and they are stopped; one with exactly
/// as many succeeds.
async fn too_many_failed_files_fail_the_run(h: &Harness) {
    let ns = "failfiles";
    let (over, at) = ("over", "at-limit");
    h.behave(
        over,
        r#"report '{"counts":{"discovered":10,"processed":8,"failed":6}}'
sleep 120 & wait $!
summary 10 4 0 6"#,
    );
    h.behave(at, "summary 10 4 0 6");
    for (name, shards, max) in [(over, 2, 11), (at, 1, 6)] {
        let (ok, err) = h.apply(&scan_yaml(ns, name, shards, &format!("  maxFailedFiles: {max}\n")));
        assert!(ok, "{err}");
    }
    let started = Instant::now();
    let failed = h.wait_scan(ns, over, RUN_TIMEOUT, "Failed", |s| phase(s) == Some(Phase::Failed)).await;
    let (status, reason, message) = condition(&failed, "Failed");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "TooManyFailedFiles"), "{message}");
    assert!(message.starts_with("12 files could not be read or parsed, more than spec.maxFailedFiles=11"), "{message}");
    assert_eq!(failed.status.as_ref().and_then(|s| s.counts).map(|c| c.failed), Some(12));
    let (kind, _, note) = h.wait_event(ns, over, "TooManyFailedFiles").await;
    assert_eq!(kind, "Warning", "{note}");
    // Its shards are stopped, long before they would have finished.
    let job_name = format!("{over}-{}", run_of(&failed));
    wait_job(h, ns, &job_name, "the shard Job to be ended", |j| {
        j.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Failed"))
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(90), "stopped early: {:?}", started.elapsed());
    eprintln!(
        "too many failed files: run failed and its Job ended {} ms after the apply",
        started.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(condition(&h.scan(ns, over).await, "Failed").1, "TooManyFailedFiles", "the reason stays");

    let done = h.wait_scan(ns, at, RUN_TIMEOUT, "Succeeded", |s| phase(s) == Some(Phase::Succeeded)).await;
    assert_eq!(done.status.and_then(|s| s.counts).map(|c| c.failed), Some(6), "6 of at most 6: no failure");
}
