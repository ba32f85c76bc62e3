//! Step 2 of a run: the Indexed Job `<scan>-<run>` with one completion per shard, running
//! `exrscan shard --plan /etc/exrscan/plan/plan.json`.

use exrscan_crds::ExrScan;
use k8s_openapi::api::batch::v1::{Job, JobSpec};

use super::{ScanRef, WorkerDefaults, worker_pod};
use crate::names::{self, Component};

/// The Indexed Job of `run`.
///
/// Failures follow the worker's exit codes: 2 (bad configuration) fails the whole Job; 3
/// (infrastructure) and anything else retry that index, up to `spec.backoffLimitPerIndex`
/// times, while the other shards go on.
///
/// At most one pod per index runs at a time (`podReplacementPolicy: Failed`); the Job ends
/// at the latest `deadline` seconds after it starts.
pub fn shard_job(
    scan: &ExrScan,
    scan_ref: &ScanRef,
    run: &str,
    defaults: &WorkerDefaults,
    deadline: Option<i64>,
) -> Job {
    let args = vec!["shard".to_string(), "--plan".to_string(), format!("{}/{}", names::PLAN_MOUNT, names::PLAN_KEY)];
    let name = names::shard_job(&scan_ref.name, run);
    Job {
        metadata: scan_ref.owned_meta(name, super::job_labels(scan, scan_ref, run, Component::Shard)),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(scan.spec.shards),
            parallelism: Some(scan.spec.effective_parallelism()),
            backoff_limit_per_index: Some(scan.spec.backoff_limit_per_index),
            template: worker_pod::template(scan, scan_ref, run, Component::Shard, defaults, args),
            ..super::run_job_spec(scan, deadline)
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn indexed_job_mirrors_the_spec() {
        let mut spec = fixtures::flight_spec();
        spec.suspend = true;
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        let job = shard_job(&scan, &r, "abcd1234", &fixtures::defaults(), Some(7200));
        assert_eq!(job.metadata.name.as_deref(), Some("renders-abcd1234"));
        let labels = job.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("exrscan.dev/run").map(String::as_str), Some("abcd1234"));
        let spec = job.spec.expect("spec");
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(spec.completions, Some(4));
        assert_eq!(spec.parallelism, Some(2));
        assert_eq!(spec.backoff_limit_per_index, Some(3));
        assert_eq!(spec.backoff_limit, None, "per-index retries only");
        assert_eq!(spec.ttl_seconds_after_finished, None, "set once the outcome is recorded");
        assert_eq!(spec.suspend, Some(true));
        assert_eq!(spec.pod_replacement_policy.as_deref(), Some("Failed"), "one pod per index at a time");
        assert_eq!(spec.active_deadline_seconds, Some(7200));
        assert!(!labels.contains_key("kueue.x-k8s.io/queue-name"));
        let pod = spec.template.spec.expect("pod");
        assert_eq!(
            pod.containers[0].args.clone().unwrap_or_default(),
            ["shard", "--plan", "/etc/exrscan/plan/plan.json"]
        );
        let policy = spec.pod_failure_policy.expect("policy");
        assert_eq!(policy.rules.len(), 2, "exit 3 and crashes fall through to the per-index count");
        let pod_labels = spec.template.metadata.and_then(|m| m.labels).unwrap_or_default();
        assert_eq!(pod_labels.get("app.kubernetes.io/component").map(String::as_str), Some("shard"));
    }

    #[test]
    fn parallelism_defaults_to_shards() {
        let mut spec = fixtures::flight_spec();
        spec.parallelism = None;
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        assert_eq!(shard_job(&scan, &r, "x", &fixtures::defaults(), None).spec.and_then(|s| s.parallelism), Some(4));
    }

    #[test]
    fn queued_scans_are_created_suspended_for_kueue() {
        let mut spec = fixtures::flight_spec();
        spec.worker = Some(exrscan_crds::WorkerSpec { queue_name: Some("render-farm".into()), ..Default::default() });
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        let job = shard_job(&scan, &r, "x", &fixtures::defaults(), None);
        let labels = job.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("kueue.x-k8s.io/queue-name").map(String::as_str), Some("render-farm"));
        assert_eq!(job.spec.and_then(|s| s.suspend), Some(true), "Kueue unsuspends it on admission");
    }

    #[test]
    fn pod_settings_reach_the_pods_of_both_jobs_and_not_the_jobs() {
        use exrscan_crds::{WorkerPodSettings, WorkerSpec};
        use k8s_openapi::api::core::v1::{LocalObjectReference, Toleration};
        let entry = |k: &str, v: &str| (k.to_string(), v.to_string());
        let mut spec = fixtures::flight_spec();
        spec.worker = Some(WorkerSpec {
            pod: WorkerPodSettings {
                node_selector: [entry("zone", "b")].into(),
                pod_labels: [entry("team", "lighting")].into(),
                ..Default::default()
            },
            ..Default::default()
        });
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        let mut defaults = fixtures::defaults();
        defaults.pod = WorkerPodSettings {
            image_pull_secrets: Some(vec![LocalObjectReference { name: "studio-registry".into() }]),
            node_selector: [entry("pool", "batch"), entry("zone", "a")].into(),
            tolerations: Some(vec![Toleration {
                key: Some("batch".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            priority_class_name: Some("batch-low".into()),
            pod_annotations: [entry("sidecar.istio.io/inject", "false")].into(),
            service_account_annotations: [entry("eks.amazonaws.com/role-arn", "arn:aws:iam::1:role/r")].into(),
            ..Default::default()
        };
        let planner = super::super::plan::planner_job(&scan, &r, "abcd1234", &defaults, None);
        let shards = shard_job(&scan, &r, "abcd1234", &defaults, None);
        for job in [planner, shards] {
            let job_meta = &job.metadata;
            assert!(!job_meta.labels.clone().unwrap_or_default().contains_key("team"), "pod labels stay off the Job");
            assert_eq!(job_meta.annotations, None, "pod annotations stay off the Job");
            let template = job.spec.expect("spec").template;
            let meta = template.metadata.expect("pod metadata");
            let labels = meta.labels.unwrap_or_default();
            assert_eq!(labels.get("team").map(String::as_str), Some("lighting"));
            assert_eq!(labels.get("exrscan.dev/run").map(String::as_str), Some("abcd1234"));
            let annotations = meta.annotations.unwrap_or_default();
            assert_eq!(annotations.get("sidecar.istio.io/inject").map(String::as_str), Some("false"));
            assert!(!annotations.contains_key("eks.amazonaws.com/role-arn"), "ServiceAccount annotations stay on it");
            let pod = template.spec.expect("pod");
            assert_eq!(pod.node_selector, Some([entry("pool", "batch"), entry("zone", "b")].into()));
            assert_eq!(pod.image_pull_secrets.map(|s| s[0].name.clone()).as_deref(), Some("studio-registry"));
            assert_eq!(pod.tolerations.map(|t| t.len()), Some(1));
            assert_eq!(pod.priority_class_name.as_deref(), Some("batch-low"));
            assert_eq!(pod.affinity, None);
        }
    }
}
