//! Step 1 of a run: the run's plan ConfigMaps (empty: the header `<scan>-<run>-plan` and one
//! chunk `<scan>-<run>-plan-<k>` per [`names::SHARDS_PER_PLAN_MAP`] shards) and the planner
//! Job that runs `exrscan plan s3://BUCKET/PREFIX --shards N --configmap <scan>-<run>-plan
//! --shards-per-configmap 400`, which writes each chunk's `partitions-<k>.json`, then the
//! header's `plan.json`.

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

/// The plan ConfigMaps of `run` of `shards` shards, without data (the planner fills them
/// in): the header first, then the chunks.
pub fn config_maps(scan: &ScanRef, run: &str, shards: i32) -> Vec<ConfigMap> {
    let header = (names::plan_config_map(&scan.name, run), names::PLAN_COMPONENT);
    let chunks = names::plan_chunk_maps(&scan.name, run, shards).into_iter().map(|n| (n, names::PLAN_CHUNK_COMPONENT));
    std::iter::once(header)
        .chain(chunks)
        .map(|(name, component)| ConfigMap {
            metadata: scan.owned_meta(name, names::run_map_labels(&scan.name, run, component)),
            ..Default::default()
        })
        .collect()
}

/// Whether the header ConfigMap `cm` holds a plan (written after every chunk).
pub fn holds_plan(cm: &ConfigMap) -> bool {
    cm.data.as_ref().is_some_and(|d| d.get(names::PLAN_KEY).is_some_and(|p| !p.is_empty()))
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
        names::plan_config_map(&scan_ref.name, run),
        "--shards-per-configmap".to_string(),
        names::SHARDS_PER_PLAN_MAP.to_string(),
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
            [
                "plan",
                "s3://renders/show/seq",
                "--shards",
                "4",
                "--configmap",
                "renders-abcd1234-plan",
                "--shards-per-configmap",
                "400"
            ]
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
    fn a_header_and_a_chunk_per_four_hundred_shards() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let r = ScanRef::of(&scan).expect("ref");
        let maps = config_maps(&r, "run1", 801);
        let names: Vec<_> = maps.iter().filter_map(|m| m.metadata.name.clone()).collect();
        assert_eq!(names, ["renders-run1-plan", "renders-run1-plan-0", "renders-run1-plan-1", "renders-run1-plan-2"]);
        assert_eq!(config_maps(&r, "run1", 400).len(), 2);
        assert_eq!(config_maps(&r, "run1", 10_000).len(), 26);
        let components: Vec<_> = maps
            .iter()
            .map(|m| m.metadata.labels.clone().unwrap_or_default().get(names::COMPONENT_LABEL).cloned())
            .collect();
        assert_eq!(components[0].as_deref(), Some("plan"), "the header is watched");
        assert!(components[1..].iter().all(|c| c.as_deref() == Some("plan-chunk")));
        for map in &maps {
            let labels = map.metadata.labels.clone().unwrap_or_default();
            assert_eq!(labels.get(names::RUN_LABEL).map(String::as_str), Some("run1"), "deleted with its run");
            assert!(r.controls(&map.metadata), "deleted with the scan");
        }
        let mut header = maps[0].clone();
        assert!(!holds_plan(&header), "empty until the planner writes it");
        header.data = Some(std::collections::BTreeMap::from([("plan.json".to_string(), "{}".to_string())]));
        assert!(holds_plan(&header));
    }
}
