//! One writer at a time. A run's Jobs are created only once nothing of another run is left
//! that could still write: no Job of another run (the operator deletes its own; a Job of an
//! earlier ExrScan of the same name waits for garbage collection) and no pod of the scan that
//! has not stopped, unless one of this run's own live Jobs controls it. Within a run, each
//! Job's `podReplacementPolicy: Failed` keeps one pod per index at a time. The event
//! consumers of `spec.events` are no obstacle: they write beside the runs by design (the
//! sinks write a file once, whoever writes it).

use std::collections::HashSet;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::names;
use crate::objects::{ScanRef, controller_uid};

/// What stands in the way of a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Obstacles {
    /// This scan's Jobs of other runs, not yet being deleted: the operator deletes them.
    pub to_delete: Vec<String>,
    /// Everything that must be gone first (`Job <name>`, `pod <name>`, …).
    pub waiting_for: Vec<String>,
}

/// Sorts the Jobs and pods labelled with the scan into what blocks `run`.
pub fn obstacles(scan: &ScanRef, run: &str, jobs: &[Job], pods: &[Pod]) -> Obstacles {
    let mut result = Obstacles::default();
    let mut current = HashSet::new();
    for job in jobs {
        let ours = scan.controls(&job.metadata);
        let deleting = job.metadata.deletion_timestamp.is_some();
        let of_run = job.labels().get(names::RUN_LABEL).is_some_and(|r| r == run);
        match (ours, of_run, deleting) {
            (true, true, false) => {
                current.insert(job.uid().unwrap_or_default());
                continue;
            }
            (true, false, false) => result.to_delete.push(job.name_any()),
            _ => {}
        }
        let whose = if ours { "" } else { " of an earlier ExrScan of this name" };
        result.waiting_for.push(format!("Job {}{whose}", job.name_any()));
    }
    for pod in pods {
        if pod.labels().get(names::COMPONENT_LABEL).is_some_and(|c| c == names::Component::Follow.as_str()) {
            continue;
        }
        let stopped = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
        let in_run = controller_uid(&pod.metadata).is_some_and(|uid| current.contains(uid));
        if !stopped && !in_run {
            result.waiting_for.push(format!("pod {}", pod.name_any()));
        }
    }
    result
}

/// `waiting_for` in a status message: the first few names and how many more.
pub fn describe(waiting_for: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = waiting_for.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if waiting_for.len() > SHOWN {
        text.push_str(&format!(" and {} more", waiting_for.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
    use k8s_openapi::jiff::Timestamp;

    fn owner(uid: &str) -> Option<Vec<OwnerReference>> {
        Some(vec![OwnerReference { uid: uid.into(), controller: Some(true), ..Default::default() }])
    }

    fn job(name: &str, run: &str, owner_uid: &str, deleting: bool) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("{name}-uid")),
                labels: Some([(names::RUN_LABEL.to_string(), run.to_string())].into()),
                owner_references: owner(owner_uid),
                deletion_timestamp: deleting.then(|| Time(Timestamp::from_second(1).expect("time"))),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(name: &str, job_uid: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), owner_references: owner(job_uid), ..Default::default() },
            spec: None,
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
        }
    }

    #[test]
    fn only_this_runs_live_jobs_and_stopped_pods_are_no_obstacle() {
        let scan = ScanRef::of(&fixtures::scan(fixtures::flight_spec())).expect("ref");
        let uid = scan.uid.clone();
        let jobs = [
            job("renders-plan-new", "new", &uid, false),
            job("renders-old", "old", &uid, false),
            job("renders-older", "older", &uid, true),
            job("renders-new-foreign", "new", "deleted-scan-uid", false),
        ];
        let pods = [
            pod("planner", "renders-plan-new-uid", "Running"),
            pod("old-0", "renders-old-uid", "Running"),
            pod("old-1", "renders-old-uid", "Failed"),
            pod("orphan", "gone-job-uid", "Pending"),
            Pod {
                metadata: ObjectMeta {
                    name: Some("renders-follow-7c9d-x2x4q".into()),
                    labels: Some([(names::COMPONENT_LABEL.to_string(), "follow".to_string())].into()),
                    ..Default::default()
                },
                spec: None,
                status: Some(PodStatus { phase: Some("Running".into()), ..Default::default() }),
            },
        ];
        let o = obstacles(&scan, "new", &jobs, &pods);
        assert_eq!(o.to_delete, ["renders-old"]);
        assert_eq!(
            o.waiting_for,
            [
                "Job renders-old",
                "Job renders-older",
                "Job renders-new-foreign of an earlier ExrScan of this name",
                "pod old-0",
                "pod orphan"
            ],
            "an event consumer runs beside the runs"
        );
        assert_eq!(
            describe(&o.waiting_for),
            "Job renders-old, Job renders-older, Job renders-new-foreign of an earlier ExrScan of this name and 2 more"
        );
        let clear = obstacles(&scan, "new", &jobs[..1], &pods[..1]);
        assert_eq!(clear, Obstacles::default());
    }
}
