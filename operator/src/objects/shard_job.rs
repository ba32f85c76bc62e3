//! Step 2 of a run: the Indexed Job `<scan>-<run>` with one completion per shard, running
//! `exrscan shard --plan /etc/exrscan/plan/plan.json`.

use exrscan_crds::ExrScan;
use k8s_openapi::api::batch::v1::{Job, JobSpec};

use super::{ScanRef, plan, worker_pod};
use crate::names::{self, Component};

/// The Indexed Job of `run`.
///
/// Failures follow the worker's exit codes: 2 (bad configuration) fails the whole Job; 3
/// (infrastructure) and anything else retry that index, up to `spec.backoffLimitPerIndex`
/// times, while the other shards go on.
pub fn shard_job(scan: &ExrScan, scan_ref: &ScanRef, run: &str, default_image: &str) -> Job {
    let args = vec!["shard".to_string(), "--plan".to_string(), format!("{}/{}", names::PLAN_MOUNT, names::PLAN_KEY)];
    let name = names::shard_job(&scan_ref.name, run);
    Job {
        metadata: scan_ref.owned_meta(name, names::run_labels(&scan_ref.name, run, Component::Shard)),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(scan.spec.shards),
            parallelism: Some(scan.spec.effective_parallelism()),
            backoff_limit_per_index: Some(scan.spec.backoff_limit_per_index),
            pod_failure_policy: Some(plan::pod_failure_policy()),
            ttl_seconds_after_finished: scan.spec.ttl_seconds_after_finished,
            suspend: Some(scan.spec.suspend),
            template: worker_pod::template(scan, scan_ref, run, Component::Shard, default_image, args),
            ..Default::default()
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
        let job = shard_job(&scan, &r, "abcd1234", "exrscan:1");
        assert_eq!(job.metadata.name.as_deref(), Some("renders-abcd1234"));
        let labels = job.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("exrscan.dev/run").map(String::as_str), Some("abcd1234"));
        let spec = job.spec.expect("spec");
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(spec.completions, Some(4));
        assert_eq!(spec.parallelism, Some(2));
        assert_eq!(spec.backoff_limit_per_index, Some(3));
        assert_eq!(spec.backoff_limit, None, "per-index retries only");
        assert_eq!(spec.ttl_seconds_after_finished, Some(600));
        assert_eq!(spec.suspend, Some(true));
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
        assert_eq!(shard_job(&scan, &r, "x", "i").spec.and_then(|s| s.parallelism), Some(4));
    }
}
