//! The one reconcile: from an ExrScan and what exists in its namespace, create the next
//! object of its run (plan ConfigMap, worker RBAC, planner Job, Indexed Job), mirror
//! suspension and parallelism, and write the observed status. Everything is derived from the
//! cluster on every call, so a restarted operator (or a new leader) picks up where the last
//! one stopped and never creates a Job twice.

use std::sync::Arc;
use std::time::Duration;

use exrscan_crds::{ExrScan, ExrScanStatus, Phase, RunSummary};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::conditions::{self, Outcome};
use crate::metrics::Metrics;
use crate::names::{self, Component};
use crate::objects::{self, ScanRef, plan, rbac, shard_job};
use crate::progress;
use crate::run_id::run_id;

/// Failed attempts reported as Events in one reconcile (the rest are in the status).
const MAX_FAILURE_EVENTS: usize = 5;

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The ExrScan lacks metadata the API server always sets.
    #[error(transparent)]
    Object(#[from] objects::Error),
    /// The status could not be serialised.
    #[error("serialising the status: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A short label for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Object(_) => "object",
            Error::Json(_) => "json",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events on ExrScans.
    pub recorder: Recorder,
    /// Worker image of scans that do not name one.
    pub default_image: String,
    /// Requeue interval of finished scans.
    pub resync: Duration,
    /// Requeue interval of active scans (pod and Job events trigger reconciles sooner).
    pub active_requeue: Duration,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

/// Reconciles one ExrScan.
pub async fn reconcile(scan: Arc<ExrScan>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&scan, &ctx).await;
    ctx.metrics.observe_reconcile(started.elapsed(), result.as_ref().err().map(Error::kind));
    result
}

/// Requeue policy after a failed reconcile.
pub fn error_policy(scan: Arc<ExrScan>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(scan = %scan.name_any(), namespace = %scan.namespace().unwrap_or_default(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Typed access to the namespace of one scan.
struct Apis {
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    pods: Api<Pod>,
    scans: Api<ExrScan>,
}

async fn reconcile_inner(scan: &ExrScan, ctx: &Context) -> Result<Action, Error> {
    let r = ScanRef::of(scan)?;
    let client = ctx.client.clone();
    let apis = Apis {
        jobs: Api::namespaced(client.clone(), &r.namespace),
        config_maps: Api::namespaced(client.clone(), &r.namespace),
        pods: Api::namespaced(client.clone(), &r.namespace),
        scans: Api::namespaced(client, &r.namespace),
    };
    let run = run_id(&scan.spec);
    let old = scan.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let mut events = Vec::new();
    let now = now();

    if st.run.as_deref() != Some(run.as_str()) {
        if let Some(previous) = st.run.clone() {
            retire_run(&apis, &r, &previous).await?;
            events.push(normal("NewRun", "Start", format!("spec changed: run {previous} replaced by run {run}")));
        }
        st = ExrScanStatus {
            run: Some(run.clone()),
            start_time: Some(now.clone()),
            last_run: st.run.is_some().then(|| summary_of(&st)),
            ..Default::default()
        };
    }

    let outcome = if old.run.as_deref() == Some(run.as_str()) && old.phase.is_some_and(Phase::is_finished) {
        // The run is over; only a spec change (a new run hash) starts more work.
        finished_outcome(&old)
    } else {
        advance(scan, &r, &run, ctx, &apis, &mut st, &mut events).await?
    };

    if st.phase != Some(outcome.phase) {
        let job = st.job_name.as_deref().map(|name| reference("batch/v1", "Job", name, &r.namespace));
        events.extend(transition_event(old.phase.filter(|_| old.run == st.run), &outcome).map(|e| related(e, job)));
        if outcome.phase.is_finished() && st.completion_time.is_none() {
            st.completion_time = Some(now.clone());
        }
    }
    st.phase = Some(outcome.phase);
    st.observed_generation = scan.metadata.generation;
    st.conditions = conditions::conditions(&outcome, &old.conditions, scan.metadata.generation, &now);

    if st != old {
        let patch = serde_json::json!({
            "apiVersion": "exrscan.dev/v1alpha1",
            "kind": "ExrScan",
            "status": st,
        });
        apis.scans.patch_status(&r.name, &PatchParams::apply(names::MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    let reference = scan.object_ref(&());
    for e in events {
        if let Err(error) = ctx.recorder.publish(&e, &reference).await {
            tracing::warn!(scan = %r.name, namespace = %r.namespace, %error, "publishing an Event failed");
        }
    }
    tracing::debug!(scan = %r.name, namespace = %r.namespace, phase = outcome.phase.as_str(), run, "reconciled");
    Ok(if outcome.phase.is_finished() { Action::requeue(ctx.resync) } else { Action::requeue(ctx.active_requeue) })
}

/// Moves the current run forward by one step and observes it.
async fn advance(
    scan: &ExrScan,
    r: &ScanRef,
    run: &str,
    ctx: &Context,
    apis: &Apis,
    st: &mut ExrScanStatus,
    events: &mut Vec<Event>,
) -> Result<Outcome, Error> {
    let job_name = names::shard_job(&r.name, run);
    let mut job = apis.jobs.get_opt(&job_name).await?;
    if job.is_none() {
        if st.job_name.as_deref() == Some(job_name.as_str()) {
            return Ok(Outcome::new(
                Phase::Failed,
                "JobDeleted",
                format!("Job {job_name} was deleted before its end was observed; set spec.rescan to run again"),
            ));
        }
        match plan_stage(scan, r, run, ctx, apis, events).await? {
            PlanStage::Waiting(outcome) => return Ok(outcome),
            PlanStage::Ready => {
                let created = create(&apis.jobs, &shard_job::shard_job(scan, r, run, &ctx.default_image)).await?;
                ctx.metrics.job_created(Component::Shard);
                let started = normal(
                    "Started",
                    "CreateJob",
                    format!(
                        "Indexed Job {job_name} created: {} shards, parallelism {}",
                        scan.spec.shards,
                        scan.spec.effective_parallelism()
                    ),
                );
                events.push(related(started, Some(created.object_ref(&()))));
                st.job_name = Some(job_name.clone());
                job = Some(created);
            }
        }
    }
    let Some(job) = job else { return Ok(Outcome::new(Phase::Pending, "Pending", "")) };
    st.job_name = Some(job_name.clone());
    mirror_job_spec(scan, &apis.jobs, &job, scan.spec.effective_parallelism()).await?;

    let pods =
        apis.pods.list(&ListParams::default().labels(&names::run_selector(&r.name, run, Component::Shard))).await?;
    let agg = progress::aggregate(&pods.items);
    let previous_failed = st.shards.as_ref().map_or(0, |s| s.failed_attempts.max(0) as usize);
    let shards = progress::shard_counts(&job, scan.spec.shards, agg.failed_attempts.len());
    for a in agg.failed_attempts.iter().skip(previous_failed).take(MAX_FAILURE_EVENTS) {
        let failed = warning(
            "ShardFailed",
            "RunShard",
            format!(
                "shard {} failed (pod {}, {}); retries left are tried per index",
                a.index,
                a.pod,
                a.failure_reason()
            ),
        );
        events.push(related(failed, Some(reference("v1", "Pod", &a.pod, &r.namespace))));
    }
    st.counts = Some(agg.counts);
    st.failures = agg.failures;
    let outcome = job_outcome(scan, &job, &shards, agg.failed_attempts.last());
    st.shards = Some(shards);
    Ok(outcome)
}

/// Where the plan of a run stands.
enum PlanStage {
    /// `plan.json` of this run is in the ConfigMap.
    Ready,
    /// Not yet (or never: the outcome says which).
    Waiting(Outcome),
}

async fn plan_stage(
    scan: &ExrScan,
    r: &ScanRef,
    run: &str,
    ctx: &Context,
    apis: &Apis,
    events: &mut Vec<Event>,
) -> Result<PlanStage, Error> {
    let planner_name = names::planner_job(&r.name, run);
    // The Job first: a planner seen complete has written the plan before the ConfigMap is read.
    let planner = apis.jobs.get_opt(&planner_name).await?;
    let cm_name = names::plan_config_map(&r.name);
    let cm = apis.config_maps.get_opt(&cm_name).await?;
    if cm.as_ref().is_some_and(|cm| plan::holds_plan(cm, run)) {
        return Ok(PlanStage::Ready);
    }
    match planner {
        None => {
            if scan.spec.suspend {
                return Ok(PlanStage::Waiting(Outcome::new(
                    Phase::Suspended,
                    "Suspended",
                    "spec.suspend is true; planning waits",
                )));
            }
            // A planner pod of a replaced run may still be stopping; it must not write its
            // plan into this run's ConfigMap, so wait until it is gone.
            let planners = apis
                .pods
                .list(&ListParams::default().labels(&format!(
                    "{}={},{}={}",
                    names::SCAN_LABEL,
                    r.name,
                    names::COMPONENT_LABEL,
                    Component::Planner.as_str()
                )))
                .await?;
            if planners.items.iter().any(|p| is_live_pod_of_other_run(p, run)) {
                return Ok(PlanStage::Waiting(Outcome::new(
                    Phase::Planning,
                    "Planning",
                    "waiting for the previous run's planner pod to stop",
                )));
            }
            match cm {
                Some(stale) if plan::plan_run(&stale) != Some(run) => {
                    apis.config_maps
                        .delete(&cm_name, &DeleteParams::default())
                        .await
                        .map(|_| ())
                        .or_else(ignore_not_found)?;
                    create(&apis.config_maps, &plan::config_map(r, run)).await?;
                }
                Some(_) => {}
                None => {
                    create(&apis.config_maps, &plan::config_map(r, run)).await?;
                }
            }
            apply_rbac(r, &ctx.client).await?;
            let planner = create(&apis.jobs, &plan::planner_job(scan, r, run, &ctx.default_image)).await?;
            ctx.metrics.job_created(Component::Planner);
            let planning =
                normal("Planning", "CreatePlanner", format!("planner Job {planner_name} created for run {run}"));
            events.push(related(planning, Some(planner.object_ref(&()))));
            Ok(PlanStage::Waiting(Outcome::new(
                Phase::Planning,
                "Planning",
                format!("planner Job {planner_name} is listing the prefix"),
            )))
        }
        Some(job) => {
            if has_condition(&job, "Complete") {
                return Ok(PlanStage::Waiting(Outcome::new(
                    Phase::Failed,
                    "PlanMissing",
                    format!(
                        "planner Job {planner_name} finished without writing {} into ConfigMap {cm_name}",
                        names::PLAN_KEY
                    ),
                )));
            }
            if has_condition(&job, "Failed") {
                let pods = apis
                    .pods
                    .list(&ListParams::default().labels(&names::run_selector(&r.name, run, Component::Planner)))
                    .await?;
                let why = progress::aggregate(&pods.items)
                    .failed_attempts
                    .last()
                    .map_or_else(|| "no pod status".to_string(), progress::Attempt::failure_reason);
                return Ok(PlanStage::Waiting(Outcome::new(
                    Phase::Failed,
                    "PlanFailed",
                    format!("planner Job {planner_name} failed: {why}"),
                )));
            }
            mirror_job_spec(scan, &apis.jobs, &job, 1).await?;
            if scan.spec.suspend {
                return Ok(PlanStage::Waiting(Outcome::new(
                    Phase::Suspended,
                    "Suspended",
                    "spec.suspend is true; planning paused",
                )));
            }
            Ok(PlanStage::Waiting(Outcome::new(
                Phase::Planning,
                "Planning",
                format!("planner Job {planner_name} is listing the prefix"),
            )))
        }
    }
}

/// The phase of a run from its Indexed Job.
fn job_outcome(
    scan: &ExrScan,
    job: &Job,
    shards: &exrscan_crds::ShardCounts,
    last_failure: Option<&progress::Attempt>,
) -> Outcome {
    let name = job.metadata.name.clone().unwrap_or_default();
    if has_condition(job, "Complete") {
        return Outcome::new(
            Phase::Succeeded,
            "Succeeded",
            format!("all {} shards of Job {name} finished", shards.total),
        );
    }
    if let Some(c) = condition(job, "Failed") {
        let why = last_failure
            .map(progress::Attempt::failure_reason)
            .unwrap_or_else(|| c.message.clone().unwrap_or_default());
        let failed = job.status.as_ref().and_then(|s| s.failed_indexes.clone()).unwrap_or_default();
        return match c.reason.as_deref() {
            Some("PodFailurePolicy") => Outcome::new(
                Phase::Failed,
                "ConfigurationError",
                format!("a shard reported a configuration error, retrying cannot help: {why}"),
            ),
            _ if !failed.is_empty() => Outcome::new(
                Phase::Failed,
                "ShardFailed",
                format!(
                    "shard(s) {failed} failed past backoffLimitPerIndex={}: {why}",
                    scan.spec.backoff_limit_per_index
                ),
            ),
            reason => Outcome::new(
                Phase::Failed,
                "JobFailed",
                format!("Job {name} failed ({}): {why}", reason.unwrap_or("unknown")),
            ),
        };
    }
    if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) {
        return Outcome::new(
            Phase::Suspended,
            "Suspended",
            format!("spec.suspend is true; {} of {} shards done", shards.succeeded, shards.total),
        );
    }
    Outcome::new(
        Phase::Running,
        "Running",
        format!("{} of {} shards done, {} running", shards.succeeded, shards.total, shards.active),
    )
}

/// Keeps a Job's `suspend` and `parallelism` equal to the spec's (both are mutable).
async fn mirror_job_spec(scan: &ExrScan, jobs: &Api<Job>, job: &Job, parallelism: i32) -> Result<(), Error> {
    if job.status.as_ref().and_then(|s| s.completion_time.as_ref()).is_some() || has_condition(job, "Failed") {
        return Ok(());
    }
    let spec = job.spec.as_ref();
    let suspend = spec.and_then(|s| s.suspend).unwrap_or(false);
    let current = spec.and_then(|s| s.parallelism).unwrap_or(1);
    if suspend != scan.spec.suspend || current != parallelism {
        let patch = serde_json::json!({"spec": {"suspend": scan.spec.suspend, "parallelism": parallelism}});
        jobs.patch(&job.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(())
}

/// Deletes the Jobs of a replaced run (their pods go with them); the plan ConfigMap and the
/// worker RBAC are reused by the next run.
async fn retire_run(apis: &Apis, r: &ScanRef, run: &str) -> Result<(), Error> {
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    for name in [names::planner_job(&r.name, run), names::shard_job(&r.name, run)] {
        apis.jobs.delete(&name, &dp).await.map(|_| ()).or_else(ignore_not_found)?;
    }
    Ok(())
}

/// Server-side applies the worker ServiceAccount, Role and RoleBinding.
async fn apply_rbac(r: &ScanRef, client: &Client) -> Result<(), Error> {
    let name = names::worker_account(&r.name);
    let pp = PatchParams::apply(names::MANAGER).force();
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &r.namespace);
    sa.patch(&name, &pp, &Patch::Apply(&typed(rbac::service_account(r), "v1", "ServiceAccount")?)).await?;
    let roles: Api<Role> = Api::namespaced(client.clone(), &r.namespace);
    roles.patch(&name, &pp, &Patch::Apply(&typed(rbac::role(r), "rbac.authorization.k8s.io/v1", "Role")?)).await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &r.namespace);
    bindings
        .patch(&name, &pp, &Patch::Apply(&typed(rbac::role_binding(r), "rbac.authorization.k8s.io/v1", "RoleBinding")?))
        .await?;
    Ok(())
}

/// An object with `apiVersion` and `kind`, as server-side apply wants it.
fn typed<T: Serialize>(object: T, api_version: &str, kind: &str) -> Result<serde_json::Value, Error> {
    let mut value = serde_json::to_value(object)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    Ok(value)
}

/// Creates `object`, or returns the one that already exists under its name.
async fn create<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(api.get(&object.name_any()).await?),
        Err(e) => Err(e.into()),
    }
}

fn ignore_not_found(e: kube::Error) -> Result<(), kube::Error> {
    match e {
        kube::Error::Api(s) if s.code == 404 => Ok(()),
        e => Err(e),
    }
}

/// Whether `pod` belongs to another run and has not stopped yet.
fn is_live_pod_of_other_run(pod: &Pod, run: &str) -> bool {
    let other = pod.labels().get(names::RUN_LABEL).is_some_and(|r| r != run);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    other && !matches!(phase, Some("Succeeded" | "Failed"))
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_ && c.status == "True")
}

fn has_condition(job: &Job, type_: &str) -> bool {
    condition(job, type_).is_some()
}

fn finished_outcome(st: &ExrScanStatus) -> Outcome {
    let phase = st.phase.unwrap_or(Phase::Succeeded);
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready");
    Outcome::new(
        phase,
        ready.map_or(phase.as_str(), |c| c.reason.as_str()),
        ready.map(|c| c.message.clone()).unwrap_or_default(),
    )
}

fn summary_of(st: &ExrScanStatus) -> RunSummary {
    RunSummary {
        run: st.run.clone(),
        phase: st.phase,
        job_name: st.job_name.clone(),
        shards: st.shards.clone(),
        counts: st.counts,
        start_time: st.start_time.clone(),
        completion_time: st.completion_time.clone(),
    }
}

/// The Event of a phase change, if it deserves one.
fn transition_event(from: Option<Phase>, to: &Outcome) -> Option<Event> {
    match (from, to.phase) {
        (_, Phase::Succeeded) => Some(normal("Completed", "FinishRun", to.message.clone())),
        (_, Phase::Failed) => Some(warning(&to.reason, "FinishRun", to.message.clone())),
        (_, Phase::Suspended) => Some(normal("Suspended", "Suspend", to.message.clone())),
        (Some(Phase::Suspended), _) => Some(normal("Resumed", "Resume", to.message.clone())),
        _ => None,
    }
}

fn normal(reason: &str, action: &str, note: String) -> Event {
    event(EventType::Normal, reason, action, note)
}

fn warning(reason: &str, action: &str, note: String) -> Event {
    event(EventType::Warning, reason, action, note)
}

fn event(type_: EventType, reason: &str, action: &str, note: String) -> Event {
    Event { type_, reason: reason.to_string(), note: Some(note), action: action.to_string(), secondary: None }
}

/// `event` about `object` (a Job or Pod of the scan), its Event's `related` field. The
/// recorder folds Events of one reason into a series that keeps the first message; Events
/// about different Jobs or Pods (another run, another shard) stay apart this way.
fn related(mut event: Event, object: Option<ObjectReference>) -> Event {
    event.secondary = object;
    event
}

/// A reference to an object in the scan's namespace by kind and name.
fn reference(api_version: &str, kind: &str, name: &str, namespace: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

/// Now, to the second (the precision of `Time` on the wire), so unchanged statuses compare equal.
fn now() -> Time {
    let t = Timestamp::now();
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn job(conditions: Vec<(&str, Option<&str>)>, failed_indexes: Option<&str>, suspend: bool) -> Job {
        Job {
            metadata: ObjectMeta { name: Some("renders-abcd1234".into()), ..Default::default() },
            spec: Some(JobSpec { suspend: Some(suspend), ..Default::default() }),
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .into_iter()
                        .map(|(t, reason)| JobCondition {
                            type_: t.into(),
                            status: "True".into(),
                            reason: reason.map(String::from),
                            message: Some("job message".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                failed_indexes: failed_indexes.map(String::from),
                ..Default::default()
            }),
        }
    }

    fn shards() -> exrscan_crds::ShardCounts {
        exrscan_crds::ShardCounts { total: 4, succeeded: 3, failed: 1, ..Default::default() }
    }

    #[test]
    fn job_conditions_decide_the_phase() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let o = job_outcome(&scan, &job(vec![("Complete", None)], None, false), &shards(), None);
        assert_eq!((o.phase, o.reason.as_str()), (Phase::Succeeded, "Succeeded"));
        let o = job_outcome(&scan, &job(vec![("Failed", Some("FailedIndexes"))], Some("2"), false), &shards(), None);
        assert_eq!((o.phase, o.reason.as_str()), (Phase::Failed, "ShardFailed"));
        assert!(o.message.contains("shard(s) 2 failed past backoffLimitPerIndex=3"), "{}", o.message);
        let o = job_outcome(&scan, &job(vec![("Failed", Some("PodFailurePolicy"))], None, false), &shards(), None);
        assert_eq!((o.phase, o.reason.as_str()), (Phase::Failed, "ConfigurationError"));
        let o = job_outcome(&scan, &job(vec![], None, true), &shards(), None);
        assert_eq!(o.phase, Phase::Suspended);
        let o = job_outcome(&scan, &job(vec![], None, false), &shards(), None);
        assert_eq!((o.phase, o.message.as_str()), (Phase::Running, "3 of 4 shards done, 0 running"));
    }

    #[test]
    fn phase_changes_raise_events() {
        let done = Outcome::new(Phase::Succeeded, "Succeeded", "ok");
        assert_eq!(transition_event(Some(Phase::Running), &done).map(|e| e.reason), Some("Completed".into()));
        let failed = Outcome::new(Phase::Failed, "ShardFailed", "x");
        let e = transition_event(Some(Phase::Running), &failed).expect("event");
        assert_eq!((e.type_, e.reason.as_str()), (EventType::Warning, "ShardFailed"));
        let running = Outcome::new(Phase::Running, "Running", "");
        assert_eq!(transition_event(Some(Phase::Suspended), &running).map(|e| e.reason), Some("Resumed".into()));
        assert!(transition_event(Some(Phase::Planning), &running).is_none());
    }

    #[test]
    fn only_live_pods_of_other_runs_block_planning() {
        let pod = |run: &str, phase: &str| Pod {
            metadata: ObjectMeta {
                labels: Some([(names::RUN_LABEL.to_string(), run.to_string())].into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
        };
        assert!(is_live_pod_of_other_run(&pod("old", "Running"), "new"));
        assert!(!is_live_pod_of_other_run(&pod("old", "Failed"), "new"));
        assert!(!is_live_pod_of_other_run(&pod("new", "Running"), "new"));
    }
}
