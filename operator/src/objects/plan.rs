//! Step 1 of a run: the `<scan>-plan` ConfigMap (empty, annotated with the run) and the
//! planner Job that runs `exrscan plan s3://BUCKET/PREFIX --shards N --configmap <scan>-plan`
//! and writes `plan.json` into it.

use std::collections::BTreeMap;

use exrscan_crds::ExrScan;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{ScanRef, WorkerDefaults, worker_pod};
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

/// The planner Job of `run`, ending at the latest `deadline` seconds after it starts.
pub fn planner_job(
    scan: &ExrScan,
    scan_ref: &ScanRef,
    run: &str,
    defaults: &WorkerDefaults,
    deadline: Option<i64>,
) -> Job {
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
        metadata: scan_ref.owned_meta(name, super::job_labels(scan, scan_ref, run, Component::Planner)),
        spec: Some(JobSpec {
            completions: Some(1),
            parallelism: Some(1),
            backoff_limit: Some(PLANNER_BACKOFF_LIMIT),
            template: worker_pod::template(scan, scan_ref, run, Component::Planner, defaults, args),
            ..super::run_job_spec(scan, deadline)
        }),
        status: None,
    }
}

/// Exit code 2 (bad configuration) fails the Job at once: retrying cannot help. A pod
/// disrupted by the cluster (drained node, preemption, eviction) is retried without counting
/// against the retry limit; any other failure counts.
pub fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(names::CONTAINER.into()),
                    operator: "In".into(),
                    values: vec![2],
                }),
                on_pod_conditions: None,
            },
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: Some("True".into()),
                }]),
            },
        ],
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
        let job = planner_job(&scan, &r, "abcd1234", &fixtures::defaults(), Some(3600));
        assert_eq!(job.metadata.name.as_deref(), Some("renders-plan-abcd1234"));
        let spec = job.spec.expect("spec");
        let c = &spec.template.spec.as_ref().expect("pod").containers[0];
        assert_eq!(
            c.args.clone().unwrap_or_default(),
            ["plan", "s3://renders/show/seq", "--shards", "4", "--configmap", "renders-plan"]
        );
        assert_eq!(c.image.as_deref(), Some("exrscan:1"));
        assert_eq!(spec.backoff_limit, Some(PLANNER_BACKOFF_LIMIT));
        assert_eq!(spec.pod_replacement_policy.as_deref(), Some("Failed"));
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        assert_eq!(spec.ttl_seconds_after_finished, None, "set once the outcome is recorded");
        let rules = &spec.pod_failure_policy.expect("policy").rules;
        assert_eq!(rules[0].action, "FailJob");
        assert_eq!(rules[0].on_exit_codes.as_ref().map(|e| e.values.clone()), Some(vec![2]));
        assert_eq!(rules[1].action, "Ignore");
        let conditions = rules[1].on_pod_conditions.clone().unwrap_or_default();
        assert_eq!(conditions[0].type_, "DisruptionTarget");
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
