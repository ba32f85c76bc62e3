//! Step 1 of a run: the `<scan>-plan` ConfigMap (empty, annotated with the run) and the
//! planner Job that runs `exrscan plan s3://BUCKET/PREFIX --shards N --configmap <scan>-plan`
//! and writes `plan.json` into it.

use std::collections::BTreeMap;

use exrscan_crds::ExrScan;
use k8s_openapi::api::batch::v1::{Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{ScanRef, worker_pod};
use crate::names::{self, Component};

/// Retries of the planner pod for crashes and infrastructure errors (exit code 3).
pub const PLANNER_BACKOFF_LIMIT: i32 = 2;

/// The plan ConfigMap of `run`, without data (the planner fills it in).
pub fn config_map(scan: &ScanRef, run: &str) -> ConfigMap {
    let mut metadata = scan.meta(names::plan_config_map(&scan.name));
    metadata.annotations = Some(BTreeMap::from([(names::PLAN_RUN_ANNOTATION.to_string(), run.to_string())]));
    ConfigMap { metadata, ..Default::default() }
}

/// Whether `cm` holds the plan of `run`.
pub fn holds_plan(cm: &ConfigMap, run: &str) -> bool {
    plan_run(cm) == Some(run) && cm.data.as_ref().is_some_and(|d| d.get(names::PLAN_KEY).is_some_and(|p| !p.is_empty()))
}

/// The run a plan ConfigMap was created for.
pub fn plan_run(cm: &ConfigMap) -> Option<&str> {
    cm.metadata.annotations.as_ref().and_then(|a| a.get(names::PLAN_RUN_ANNOTATION)).map(String::as_str)
}

/// The planner Job of `run`.
pub fn planner_job(scan: &ExrScan, scan_ref: &ScanRef, run: &str, default_image: &str) -> Job {
    let args = vec![
        "plan".to_string(),
        worker_pod::source_uri(scan),
        "--shards".to_string(),
        scan.spec.shards.to_string(),
        "--configmap".to_string(),
        names::plan_config_map(&scan_ref.name),
    ];
    let name = names::planner_job(&scan_ref.name, run);
    Job {
        metadata: scan_ref.owned_meta(name, names::run_labels(&scan_ref.name, run, Component::Planner)),
        spec: Some(JobSpec {
            completions: Some(1),
            parallelism: Some(1),
            backoff_limit: Some(PLANNER_BACKOFF_LIMIT),
            pod_failure_policy: Some(fail_job_on_config_error()),
            suspend: Some(scan.spec.suspend),
            template: worker_pod::template(scan, scan_ref, run, Component::Planner, default_image, args),
            ..Default::default()
        }),
        status: None,
    }
}

/// Exit code 2 (bad configuration) fails the Job at once: retrying cannot help. Other
/// failures count against the retry limit.
pub fn fail_job_on_config_error() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some(names::CONTAINER.into()),
                operator: "In".into(),
                values: vec![2],
            }),
            on_pod_conditions: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn planner_runs_the_contract_command() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let r = ScanRef::of(&scan).expect("ref");
        let job = planner_job(&scan, &r, "abcd1234", "exrscan:1");
        assert_eq!(job.metadata.name.as_deref(), Some("renders-plan-abcd1234"));
        let spec = job.spec.expect("spec");
        let c = &spec.template.spec.as_ref().expect("pod").containers[0];
        assert_eq!(
            c.args.clone().unwrap_or_default(),
            ["plan", "s3://renders/show/seq", "--shards", "4", "--configmap", "renders-plan"]
        );
        assert_eq!(c.image.as_deref(), Some("exrscan:1"));
        assert_eq!(spec.backoff_limit, Some(PLANNER_BACKOFF_LIMIT));
        let rule = &spec.pod_failure_policy.expect("policy").rules[0];
        assert_eq!(rule.action, "FailJob");
        assert_eq!(rule.on_exit_codes.as_ref().map(|e| e.values.clone()), Some(vec![2]));
    }

    #[test]
    fn plan_belongs_to_its_run() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let r = ScanRef::of(&scan).expect("ref");
        let mut cm = config_map(&r, "run1");
        assert_eq!(cm.metadata.name.as_deref(), Some("renders-plan"));
        assert!(!holds_plan(&cm, "run1"), "empty until the planner writes it");
        cm.data = Some(BTreeMap::from([("plan.json".to_string(), "{}".to_string())]));
        assert!(holds_plan(&cm, "run1"));
        assert!(!holds_plan(&cm, "run2"), "a plan of another run is stale");
    }
}
