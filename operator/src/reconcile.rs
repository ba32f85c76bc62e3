//! The one reconcile: from an ExrScan and what exists in its namespace, create the next
//! object of its run (plan ConfigMap, worker RBAC, planner Job, Indexed Job), mirror
//! suspension and parallelism, and write the observed status. Everything is derived from the
//! cluster on every call, so a restarted operator (or a new leader) picks up where the last
//! one stopped and never creates a Job twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use exrscan_crds::status::MAX_HISTORY;
use exrscan_crds::{ConcurrencyPolicy, Counts, ExrScan, ExrScanStatus, Phase, RunSummary};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, ObjectReference, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::conditions::{self, Outcome};
use crate::events;
use crate::fence;
use crate::metrics::Metrics;
use crate::names::{self, Component};
use crate::objects::{self, ScanRef, WorkerDefaults, plan, pod_settings, rbac, shard_job};
use crate::pace::Pacer;
use crate::progress;
use crate::run_id::{run_id, scheduled_run_id};
use crate::schedule::{Due, Schedule, ScheduleError};
use crate::written::Written;

/// Failed attempts reported as Events in one reconcile (the rest are in the status).
const MAX_FAILURE_EVENTS: usize = 5;

/// The reason of a run waiting for what an earlier run left to be gone.
const PREVIOUS_RUN_STOPPING: &str = "PreviousRunStopping";

/// How often a run waiting for an earlier run's pods to stop looks again.
const STOPPING_POLL: Duration = Duration::from_secs(2);

/// Pending pods of a run looked at for one that cannot start (the first page of a list).
const PENDING_SAMPLE: u32 = 50;

/// Longest one reconcile may take: a hung request fails it (it is then retried with backoff).
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest the report of a failed reconcile (status and Event) may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// An object the scan needs exists under its name but belongs to something else.
    #[error("{kind} {name} exists and is not controlled by this ExrScan")]
    NotOwned {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The reconcile did not finish in time.
    #[error("the reconcile took longer than {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// A short label for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Object(_) => "object",
            Error::Json(_) => "json",
            Error::NotOwned { .. } => "not_owned",
            Error::Timeout(_) => "timeout",
        }
    }

    /// The reason shown in the scan's `Stalled` condition and Warning Event.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) => api_reason(status.code, &status.message),
            Error::Kube(_) => "APIUnreachable",
            Error::Object(_) | Error::Json(_) => "InternalError",
            Error::NotOwned { .. } => "NotOwned",
            Error::Timeout(_) => "ReconcileTimeout",
        }
    }
}

/// Names the API server's refusal: quota, admission (webhook or policy), RBAC, validation.
fn api_reason(code: u16, message: &str) -> &'static str {
    if message.contains("exceeded quota") {
        "QuotaExceeded"
    } else if message.contains("admission webhook")
        || message.contains("ValidatingAdmissionPolicy")
        || message.contains("violates PodSecurity")
    {
        "AdmissionDenied"
    } else {
        match code {
            401 => "Unauthorized",
            403 => "Forbidden",
            400 | 422 => "Invalid",
            404 => "NotFound",
            409 => "Conflict",
            429 => "TooManyRequests",
            500..=599 => "APIServerError",
            _ => "APIError",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events on ExrScans.
    pub recorder: Recorder,
    /// What every scan's worker pods get from the operator's settings.
    pub worker: WorkerDefaults,
    /// Requeue interval of finished scans.
    pub resync: Duration,
    /// Requeue interval of active scans (pod and Job events trigger reconciles sooner).
    pub active_requeue: Duration,
    /// How long a pod may wait for a reason waiting does not cure before its scan fails.
    pub stuck_pod_grace: Duration,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Requeue delays of failing scans.
    pub backoff: Backoff,
    /// Statuses written and not yet in the watch cache.
    pub written: Written,
    /// The pace of running scans' reconciles.
    pub pacer: Pacer,
    /// The pace at which a running scan's worker ServiceAccount, Role and RoleBinding are
    /// re-applied (undoing edits made to them).
    pub rbac_pacer: Pacer,
    /// The pace at which `spec.events` consumers' objects are re-applied when the spec has
    /// not changed (undoing edits made to them).
    pub events_pacer: Pacer,
}

/// Reconciles one ExrScan.
pub async fn reconcile(scan: Arc<ExrScan>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = scan.metadata.uid.as_deref().unwrap_or_default();
    // Scans with event consumers are always active: their status follows the consumers'.
    let running = scan.status.as_ref().and_then(|s| s.phase) == Some(Phase::Running) || scan.spec.events.is_some();
    if !running {
        ctx.pacer.forget(uid);
    } else if let Some(wait) = ctx.pacer.wait(uid, scan.metadata.generation) {
        return Ok(Action::requeue(wait));
    }
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(RECONCILE_TIMEOUT, reconcile_inner(&scan, &ctx))
        .await
        .unwrap_or(Err(Error::Timeout(RECONCILE_TIMEOUT)));
    ctx.metrics.observe_reconcile(started.elapsed(), result.as_ref().err().map(Error::kind));
    match &result {
        Ok(_) => ctx.backoff.reset(uid),
        Err(error) => {
            if tokio::time::timeout(REPORT_TIMEOUT, report_failure(&scan, error, &ctx)).await.is_err() {
                tracing::warn!(scan = %scan.name_any(), "reporting a failed reconcile timed out");
            }
        }
    }
    result
}

/// Requeue policy after a failed reconcile: exponential backoff per scan.
pub fn error_policy(scan: Arc<ExrScan>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next(scan.metadata.uid.as_deref().unwrap_or_default());
    tracing::warn!(scan = %scan.name_any(), namespace = %scan.namespace().unwrap_or_default(), %error, reason = error.reason(), retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Shows a failed reconcile on the scan: `Stalled` with the reason (kstatus, and so Flux,
/// read the scan as failed, not current, until a reconcile succeeds) and a Warning Event.
async fn report_failure(scan: &ExrScan, error: &Error, ctx: &Context) {
    let Ok(scan_ref) = ScanRef::of(scan) else { return };
    let reason = error.reason();
    let message = error.to_string();
    let mut status = ctx.written.latest(&scan_ref.uid, scan.status.as_ref());
    let previous = status.clone();
    status.phase.get_or_insert(Phase::Pending);
    status.observed_generation = scan.metadata.generation;
    status.conditions = conditions::blocked(reason, &message, &status.conditions, scan.metadata.generation, &now());
    if status != previous {
        let scans: Api<ExrScan> = Api::namespaced(ctx.client.clone(), &scan_ref.namespace);
        match write_status(&scans, &scan_ref, &status).await {
            Ok(()) => ctx.written.record(&scan_ref.uid, status),
            Err(error) => tracing::warn!(scan = %scan_ref.name, %error, "writing the Stalled condition failed"),
        }
    }
    let event = warning(reason, "Reconcile", message);
    if let Err(error) = ctx.recorder.publish(&event, &scan.object_ref(&())).await {
        tracing::warn!(scan = %scan_ref.name, %error, "publishing an Event failed");
    }
}

/// Typed access to the namespace of one scan.
#[derive(Clone)]
struct Apis {
    jobs: Api<Job>,
    config_maps: Api<ConfigMap>,
    pods: Api<Pod>,
    scans: Api<ExrScan>,
    service_accounts: Api<ServiceAccount>,
}

impl Apis {
    fn new(client: &Client, namespace: &str) -> Apis {
        Apis {
            jobs: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client.clone(), namespace),
            scans: Api::namespaced(client.clone(), namespace),
            service_accounts: Api::namespaced(client.clone(), namespace),
        }
    }
}

/// One reconcile's view of its scan.
struct Run<'a> {
    scan: &'a ExrScan,
    scan_ref: ScanRef,
    /// The run hash.
    id: String,
    apis: Apis,
    ctx: &'a Context,
    now: Time,
}

async fn reconcile_inner(scan: &ExrScan, ctx: &Context) -> Result<Action, Error> {
    let scan_ref = ScanRef::of(scan)?;
    let apis = Apis::new(&ctx.client, &scan_ref.namespace);
    let now = now();
    let old = ctx.written.latest(&scan_ref.uid, scan.status.as_ref());
    let mut status = old.clone();
    let mut events = Vec::new();

    let target = match target(scan, &old, now.0, &mut status, &mut events) {
        Ok(target) => target,
        Err(invalid) => Target { id: None, tick: None, next_tick: None, invalid: Some(invalid) },
    };
    status.next_schedule_time = target.next_tick.map(Time);
    if let Some(id) = target.id.as_ref().filter(|id| old.run.as_ref() != Some(*id)) {
        if let Some(previous) = &old.run {
            let why = match target.tick {
                Some(tick) => format!("scheduled run {id} (tick {tick}) follows run {previous}"),
                None => format!("spec changed: run {previous} replaced by run {id}"),
            };
            events.push(normal("NewRun", "Start", format!("{why}; it starts once run {previous}'s pods have stopped")));
        }
        let mut history = old.history.clone();
        if old.run.is_some() {
            history.insert(0, summary_of(&old));
            history.truncate(MAX_HISTORY);
        }
        status = ExrScanStatus {
            run: Some(id.clone()),
            start_time: Some(now.clone()),
            last_run: old.run.is_some().then(|| summary_of(&old)),
            history,
            last_schedule_time: target.tick.map(Time).or(status.last_schedule_time),
            last_successful_time: old.last_successful_time.clone(),
            next_schedule_time: status.next_schedule_time,
            ..Default::default()
        };
    }

    let run = target.id.as_ref().map(|id| Run {
        scan,
        apis: apis.clone(),
        id: id.clone(),
        scan_ref: scan_ref.clone(),
        ctx,
        now: now.clone(),
    });
    let recorded = old.run.is_some() && old.run == target.id && old.phase.is_some_and(Phase::is_finished);
    let outcome = match (&run, target.invalid) {
        (_, Some(invalid)) => Outcome::new(Phase::Failed, "InvalidSchedule", invalid.to_string()),
        // The run is over; only a spec change (a new run hash) or the next tick starts more work.
        _ if recorded => finished_outcome(&old),
        (Some(run), None) => run.advance(&mut status, &mut events).await?,
        (None, None) => Outcome::new(
            Phase::Scheduled,
            "Scheduled",
            status
                .next_schedule_time
                .as_ref()
                .map_or("no tick ahead".into(), |t| format!("the first run starts at {}", t.0)),
        ),
    };

    if status.phase != Some(outcome.phase) {
        let job = status.job_name.as_deref().map(|name| reference("batch/v1", "Job", name, &scan_ref.namespace));
        events.extend(transition_event(old.phase.filter(|_| old.run == status.run), &outcome).map(|e| related(e, job)));
        if outcome.phase.is_finished() && status.completion_time.is_none() {
            status.completion_time = Some(now.clone());
        }
        if outcome.phase == Phase::Succeeded && scan.spec.schedule.is_some() {
            status.last_successful_time = status.completion_time.clone();
        }
    }
    status.events =
        events::reconcile(scan, &scan_ref, &ctx.client, &ctx.worker, &ctx.events_pacer, old.events.is_some()).await?;
    status.phase = Some(outcome.phase);
    status.observed_generation = scan.metadata.generation;
    status.conditions = conditions::conditions(&outcome, &old.conditions, scan.metadata.generation, &now);

    if status != old {
        write_status(&apis.scans, &scan_ref, &status).await?;
        ctx.written.record(&scan_ref.uid, status.clone());
    }
    if let Some(run) = run.as_ref().filter(|_| outcome.phase.is_finished() && !recorded) {
        run.finish(&outcome).await?;
    }
    let scan_object = scan.object_ref(&());
    for e in events {
        if let Err(error) = ctx.recorder.publish(&e, &scan_object).await {
            tracing::warn!(scan = %scan_ref.name, namespace = %scan_ref.namespace, %error, "publishing an Event failed");
        }
    }
    tracing::debug!(scan = %scan_ref.name, namespace = %scan_ref.namespace, phase = outcome.phase.as_str(), run = ?target.id, "reconciled");
    let mut requeue = match outcome.phase {
        phase if phase.is_finished() => ctx.resync,
        // Pods are not watched: their stopping is polled for.
        Phase::Pending if outcome.reason == PREVIOUS_RUN_STOPPING => ctx.active_requeue.min(STOPPING_POLL),
        _ => ctx.active_requeue,
    };
    if scan.spec.events.is_some() {
        requeue = requeue.min(ctx.active_requeue);
    }
    if let Some(next) = target.next_tick {
        // A second past the tick, so that the tick is due when the reconcile comes.
        let until = now.0.duration_until(next).unsigned_abs() + Duration::from_secs(1);
        requeue = requeue.min(until);
    }
    Ok(Action::requeue(requeue))
}

/// Which run a reconcile works on.
struct Target {
    /// The run hash; none for a scheduled scan before its first tick (or with a bad schedule).
    id: Option<String>,
    /// The tick whose run this is, when it starts now.
    tick: Option<Timestamp>,
    /// A scheduled scan's next tick.
    next_tick: Option<Timestamp>,
    /// Why the schedule cannot be used.
    invalid: Option<ScheduleError>,
}

/// The run `scan` works on at `now`: its spec's hash, or for a scheduled scan the run of a
/// tick that is due (by `concurrencyPolicy`, `suspend` and `startingDeadlineSeconds`), else
/// the current run. A tick past its deadline is recorded as handled in `status` and reported.
fn target(
    scan: &ExrScan,
    old: &ExrScanStatus,
    now: Timestamp,
    status: &mut ExrScanStatus,
    events: &mut Vec<Event>,
) -> Result<Target, ScheduleError> {
    let spec = &scan.spec;
    let Some(expression) = spec.schedule.as_deref() else {
        return Ok(Target { id: Some(run_id(spec)), tick: None, next_tick: None, invalid: None });
    };
    let schedule = Schedule::parse(expression, spec.time_zone.as_deref())?;
    // Before its first tick: ticks before the scan existed, or before its current run started
    // (a schedule added to a scan that already ran), are not due.
    let handled = match &old.last_schedule_time {
        Some(tick) => tick.0,
        None => [scan.metadata.creation_timestamp.as_ref(), old.start_time.as_ref()]
            .into_iter()
            .flatten()
            .map(|t| t.0)
            .max()
            .unwrap_or(now),
    };
    let running = old.run.is_some() && !old.phase.is_some_and(Phase::is_finished);
    let wait_for_it = running && spec.concurrency_policy.unwrap_or_default() == ConcurrencyPolicy::Forbid;
    let mut target = Target { id: old.run.clone(), tick: None, next_tick: schedule.next(now), invalid: None };
    match schedule.due(handled, now, spec.starting_deadline_seconds) {
        Due::Start(tick) if !spec.suspend && !wait_for_it => {
            target.id = Some(scheduled_run_id(spec, tick));
            target.tick = Some(tick);
        }
        Due::Missed(tick) => {
            status.last_schedule_time = Some(Time(tick));
            events.push(warning(
                "MissedSchedule",
                "Schedule",
                format!("the run of the tick at {tick} could not start within spec.startingDeadlineSeconds; skipped"),
            ));
        }
        Due::Start(_) | Due::Idle => {}
    }
    Ok(target)
}

/// Server-side applies `status` as the operator's.
async fn write_status(scans: &Api<ExrScan>, scan_ref: &ScanRef, status: &ExrScanStatus) -> Result<(), Error> {
    let patch = serde_json::json!({
        "apiVersion": "exrscan.dev/v1alpha1",
        "kind": "ExrScan",
        "status": status,
    });
    scans.patch_status(&scan_ref.name, &PatchParams::apply(names::MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Where the plan of a run stands.
enum PlanStage {
    /// `plan.json` of this run is in the run's own header ConfigMap.
    Ready,
    /// No plan to start the shards from (yet): the run's outcome says why — planning,
    /// suspended, queued, waiting for an earlier run, or failed.
    NotReady(Outcome),
}

impl Run<'_> {
    /// Moves the run forward by one step and observes it.
    async fn advance(&self, status: &mut ExrScanStatus, events: &mut Vec<Event>) -> Result<Outcome, Error> {
        let job_name = names::shard_job(&self.scan_ref.name, &self.id);
        let job = match self.live_job(&job_name).await? {
            Some(job) => job,
            None if status.job_name.as_deref() == Some(job_name.as_str()) => {
                return Ok(Outcome::new(
                    Phase::Failed,
                    "JobDeleted",
                    format!("Job {job_name} was deleted before its end was observed; set spec.rescan to run again"),
                ));
            }
            None => {
                if let PlanStage::NotReady(outcome) = self.plan_stage(status, events).await? {
                    return Ok(outcome);
                }
                let deadline = match self.deadline(status) {
                    Ok(deadline) => deadline,
                    Err(outcome) => return Ok(outcome),
                };
                if let Some(outcome) = self.clear_the_way(Vec::new()).await? {
                    return Ok(outcome);
                }
                for map in objects::progress::config_maps(&self.scan_ref, &self.id, self.scan.spec.shards) {
                    self.create(&self.apis.config_maps, "ConfigMap", &map).await?;
                }
                self.apply_rbac().await?;
                let job = shard_job::shard_job(self.scan, &self.scan_ref, &self.id, &self.ctx.worker, deadline);
                let created = self.create(&self.apis.jobs, "Job", &job).await?;
                self.ctx.metrics.job_created(Component::Shard);
                let started = normal(
                    "Started",
                    "CreateJob",
                    format!(
                        "Indexed Job {job_name} created: {} shards, parallelism {}",
                        self.scan.spec.shards,
                        self.scan.spec.effective_parallelism()
                    ),
                );
                events.push(related(started, Some(created.object_ref(&()))));
                created
            }
        };
        status.job_name = Some(job_name);
        self.mirror_job_spec(&job, self.scan.spec.effective_parallelism()).await?;
        if !is_finished(&job) && self.ctx.rbac_pacer.wait(&self.scan_ref.uid, self.scan.metadata.generation).is_none() {
            // Edits to the worker's ServiceAccount, Role or RoleBinding are undone while it runs.
            self.apply_rbac().await?;
        }

        let maps = self.progress_maps().await?;
        let progress = progress::sum(&maps);
        let failed = progress::failed_attempts(&self.pods(Component::Shard, "status.phase=Failed", None).await?);
        self.report_failures(&maps, &failed, events).await?;
        let shards = progress::shard_counts(&job, self.scan.spec.shards);
        status.counts = Some(progress.counts);
        status.failures = progress.failures;
        let outcome = match self.cannot_start(&job, Component::Shard).await? {
            Some(failure) => failure,
            None => job_outcome(self.scan, &job, &shards, failed.last()),
        };
        let outcome = past_failed_files_threshold(self.scan, &progress.counts, outcome);
        status.shards = Some(shards);
        Ok(outcome)
    }

    async fn plan_stage(&self, status: &ExrScanStatus, events: &mut Vec<Event>) -> Result<PlanStage, Error> {
        let planner_name = names::planner_job(&self.scan_ref.name, &self.id);
        // The Job first: a planner seen complete has written the plan before the ConfigMap is read.
        let planner = self.live_job(&planner_name).await?;
        let cm_name = names::plan_config_map(&self.scan_ref.name, &self.id);
        let cm = self.apis.config_maps.get_opt(&cm_name).await?;
        if cm.is_some_and(|cm| self.scan_ref.controls(&cm.metadata) && plan::holds_plan(&cm)) {
            return Ok(PlanStage::Ready);
        }
        let Some(planner) = planner else {
            // The previous run stops first, suspended or not; objects of an earlier ExrScan
            // of this name (plan maps included) wait for garbage collection.
            let account = self.apis.service_accounts.get_opt(&names::worker_account(&self.scan_ref.name)).await?;
            let mut foreign = Vec::new();
            if account.is_some_and(|a| objects::controller_uid(&a.metadata).is_some_and(|uid| uid != self.scan_ref.uid))
            {
                foreign.push(format!(
                    "ServiceAccount {} of an earlier ExrScan of this name",
                    names::worker_account(&self.scan_ref.name)
                ));
            }
            if let Some(outcome) = self.clear_the_way(foreign).await? {
                return Ok(PlanStage::NotReady(outcome));
            }
            if let Some(suspended) = self.suspended("planning waits") {
                return Ok(PlanStage::NotReady(suspended));
            }
            let deadline = match self.deadline(status) {
                Ok(deadline) => deadline,
                Err(outcome) => return Ok(PlanStage::NotReady(outcome)),
            };
            for map in plan::config_maps(&self.scan_ref, &self.id, self.scan.spec.shards) {
                self.create(&self.apis.config_maps, "ConfigMap", &map).await?;
            }
            self.apply_rbac().await?;
            let job = plan::planner_job(self.scan, &self.scan_ref, &self.id, &self.ctx.worker, deadline);
            let planner = self.create(&self.apis.jobs, "Job", &job).await?;
            self.ctx.metrics.job_created(Component::Planner);
            let planning =
                normal("Planning", "CreatePlanner", format!("planner Job {planner_name} created for run {}", self.id));
            events.push(related(planning, Some(planner.object_ref(&()))));
            return Ok(PlanStage::NotReady(Outcome::new(
                Phase::Planning,
                "Planning",
                format!("planner Job {planner_name} is listing the prefix"),
            )));
        };
        if has_condition(&planner, "Complete") {
            return Ok(PlanStage::NotReady(Outcome::new(
                Phase::Failed,
                "PlanMissing",
                format!(
                    "planner Job {planner_name} finished without writing {} into ConfigMap {cm_name}",
                    names::PLAN_KEY
                ),
            )));
        }
        if let Some(failed) = condition(&planner, "Failed") {
            if failed.reason.as_deref() == Some("DeadlineExceeded") {
                return Ok(PlanStage::NotReady(self.deadline_exceeded("planning")));
            }
            let why = progress::failed_attempts(&self.pods(Component::Planner, "status.phase=Failed", None).await?)
                .last()
                .map_or_else(|| "no pod status".to_string(), progress::Attempt::failure_reason);
            return Ok(PlanStage::NotReady(Outcome::new(
                Phase::Failed,
                "PlanFailed",
                format!("planner Job {planner_name} failed: {why}"),
            )));
        }
        if let Some(failure) = self.cannot_start(&planner, Component::Planner).await? {
            return Ok(PlanStage::NotReady(failure));
        }
        self.mirror_job_spec(&planner, 1).await?;
        if let Some(queued) = queued_outcome(&planner) {
            return Ok(PlanStage::NotReady(queued));
        }
        if let Some(suspended) = self.suspended("planning paused") {
            return Ok(PlanStage::NotReady(suspended));
        }
        Ok(PlanStage::NotReady(Outcome::new(
            Phase::Planning,
            "Planning",
            format!("planner Job {planner_name} is listing the prefix"),
        )))
    }

    /// `Suspended` (with `what` the run does meanwhile) while `spec.suspend` is true. The
    /// shard Job's own `suspend` follows the spec ([`Self::mirror_job_spec`]) unless Kueue
    /// holds it ([`queued_outcome`]).
    fn suspended(&self, what: &str) -> Option<Outcome> {
        self.scan
            .spec
            .suspend
            .then(|| Outcome::new(Phase::Suspended, "Suspended", format!("spec.suspend is true; {what}")))
    }

    /// The Job `name` if it is this scan's and not being deleted.
    async fn live_job(&self, name: &str) -> Result<Option<Job>, Error> {
        let job = self.apis.jobs.get_opt(name).await?;
        Ok(job.filter(|j| self.scan_ref.controls(&j.metadata) && j.metadata.deletion_timestamp.is_none()))
    }

    /// Deletes the scan's Jobs of other runs and says what must still be gone before this
    /// run may create a Job (see [`fence`]); `foreign` are more such objects already found.
    async fn clear_the_way(&self, mut foreign: Vec<String>) -> Result<Option<Outcome>, Error> {
        let selector = ListParams::default().labels(&names::scan_selector(&self.scan_ref.name));
        let jobs = self.apis.jobs.list(&selector).await?;
        let running = selector.clone().fields("status.phase!=Succeeded,status.phase!=Failed");
        let pods = self.apis.pods.list(&running).await?;
        let obstacles = fence::obstacles(&self.scan_ref, &self.id, &jobs.items, &pods.items);
        let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        for name in &obstacles.to_delete {
            self.apis.jobs.delete(name, &dp).await.map(|_| ()).or_else(ignore_not_found)?;
        }
        foreign.extend(obstacles.waiting_for);
        // Progress and plan maps: earlier runs' are deleted (the status keeps their totals in
        // `lastRun`); an earlier ExrScan's wait for garbage collection.
        let run_maps = ListParams::default().labels(&names::run_maps_selector(&self.scan_ref.name));
        for map in self.apis.config_maps.list_metadata(&run_maps).await?.items {
            let of_run = map.labels().get(names::RUN_LABEL).is_some_and(|run| *run == self.id);
            if !self.scan_ref.controls(&map.metadata) {
                foreign.push(format!("ConfigMap {} of an earlier ExrScan of this name", map.name_any()));
            } else if !of_run {
                self.apis.config_maps.delete(&map.name_any(), &dp).await.map(|_| ()).or_else(ignore_not_found)?;
            }
        }
        if foreign.is_empty() {
            return Ok(None);
        }
        Ok(Some(Outcome::new(
            Phase::Pending,
            PREVIOUS_RUN_STOPPING,
            format!("waiting until what an earlier run left is gone: {}", fence::describe(&foreign)),
        )))
    }

    /// Seconds left of `spec.timeoutSeconds` (none: unbounded), or the failure once none are.
    fn deadline(&self, status: &ExrScanStatus) -> Result<Option<i64>, Outcome> {
        let Some(timeout) = self.scan.spec.timeout_seconds else { return Ok(None) };
        let now = self.now.0.as_second();
        let started = status.start_time.as_ref().map_or(now, |t| t.0.as_second());
        let left = timeout.saturating_sub(now.saturating_sub(started));
        if left > 0 { Ok(Some(left)) } else { Err(self.deadline_exceeded("waiting to start")) }
    }

    fn deadline_exceeded(&self, stage: &str) -> Outcome {
        Outcome::new(
            Phase::Failed,
            "DeadlineExceeded",
            format!(
                "the run did not finish within spec.timeoutSeconds={} (it was {stage})",
                self.scan.spec.timeout_seconds.unwrap_or_default()
            ),
        )
    }

    /// The pods of this run's `component` matching the field selector `fields` (e.g. a phase),
    /// at most `limit`. The run's pods are never listed all at once.
    async fn pods(&self, component: Component, fields: &str, limit: Option<u32>) -> Result<Vec<Pod>, Error> {
        let mut params =
            ListParams::default().labels(&names::run_selector(&self.scan_ref.name, &self.id, component)).fields(fields);
        if let Some(limit) = limit {
            params = params.limit(limit);
        }
        Ok(self.apis.pods.list(&params).await?.items)
    }

    /// The failure of a run whose `job` cannot start its pods, once it has run for the grace
    /// period (a pod cannot have waited that long before): a pod that waits for a reason
    /// waiting does not cure (among the first [`PENDING_SAMPLE`] pending pods), or no pod
    /// created at all.
    async fn cannot_start(&self, job: &Job, component: Component) -> Result<Option<Outcome>, Error> {
        let suspended = job.spec.as_ref().and_then(|s| s.suspend) == Some(true);
        if suspended || is_finished(job) || !self.past_grace(job) {
            return Ok(None);
        }
        // Every pod the Job has is ready: none is waiting to start.
        let status = job.status.as_ref();
        let (active, ready) = (status.and_then(|s| s.active).unwrap_or(0), status.and_then(|s| s.ready).unwrap_or(0));
        if active > 0 && ready >= active {
            return Ok(None);
        }
        let pending = self.pods(component, "status.phase=Pending", Some(PENDING_SAMPLE)).await?;
        if let Some(stuck) = progress::stuck(&pending, self.now.0, self.ctx.stuck_pod_grace) {
            return Ok(Some(
                Outcome::new(
                    Phase::Failed,
                    &stuck.reason,
                    format!(
                        "pod {} cannot start ({} for more than {} s): {}",
                        stuck.pod,
                        stuck.reason,
                        self.ctx.stuck_pod_grace.as_secs(),
                        stuck.message
                    ),
                )
                .stopping_jobs(),
            ));
        }
        self.pods_not_created(job).await
    }

    /// The failure of a run whose Job has not been able to create a single pod for the grace
    /// period since it started: the Job controller's latest `FailedCreate` Event says why (a
    /// quota, an admission policy such as PodSecurity, a missing ServiceAccount). Its Events
    /// are read only then.
    async fn pods_not_created(&self, job: &Job) -> Result<Option<Outcome>, Error> {
        let status = job.status.as_ref();
        let pods = [status.and_then(|s| s.active), status.and_then(|s| s.succeeded), status.and_then(|s| s.failed)];
        if pods.iter().any(|n| n.unwrap_or(0) > 0) {
            return Ok(None);
        }
        let waited = self.now.0.as_second().saturating_sub(started_at(job).unwrap_or_default());
        let events: Api<CoreEvent> = Api::namespaced(self.ctx.client.clone(), &self.scan_ref.namespace);
        let selector = format!("involvedObject.kind=Job,involvedObject.name={},reason=FailedCreate", job.name_any());
        let refusals = events.list(&ListParams::default().fields(&selector)).await?;
        let latest = refusals.items.iter().max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
        let Some(message) = latest.and_then(|e| e.message.clone()) else { return Ok(None) };
        let reason = match api_reason(403, &message) {
            "Forbidden" => "FailedCreate",
            named => named,
        };
        Ok(Some(
            Outcome::new(
                Phase::Failed,
                reason,
                format!("Job {} could not create any pod for {waited} s: {message}", job.name_any()),
            )
            .stopping_jobs(),
        ))
    }

    /// The run's progress ConfigMaps, in index order (one that is missing reads as empty).
    /// The run's progress ConfigMaps in chunk order, read with one LIST whatever the shard
    /// count (a missing map is empty).
    async fn progress_maps(&self) -> Result<Vec<ConfigMap>, Error> {
        let selector = names::progress_selector(&self.scan_ref.name, &self.id);
        let mut listed: Vec<ConfigMap> = self
            .apis
            .config_maps
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .filter(|m| self.scan_ref.controls(&m.metadata))
            .collect();
        let maps = names::progress_maps(&self.scan_ref.name, &self.id, self.scan.spec.shards)
            .into_iter()
            .map(|name| match listed.iter().position(|m| m.metadata.name.as_deref() == Some(name.as_str())) {
                Some(i) => listed.swap_remove(i),
                None => {
                    ConfigMap { metadata: ObjectMeta { name: Some(name), ..Default::default() }, ..Default::default() }
                }
            })
            .collect();
        Ok(maps)
    }

    /// A ShardFailed Warning for each failed attempt not reported yet (at most
    /// [`MAX_FAILURE_EVENTS`] per reconcile; the rest are counted in the status). What was
    /// reported is kept per shard index and attempt in the progress maps, so that neither
    /// deleted pods nor a restarted operator skip or repeat an Event.
    async fn report_failures(
        &self,
        maps: &[ConfigMap],
        failed: &[progress::Attempt],
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        let mut reported: Vec<_> = maps.iter().map(progress::reported).collect();
        let mut changed = BTreeSet::new();
        let mut published = 0;
        for attempt in failed {
            let map = progress::map_of(attempt.index);
            let Some(seen) = reported.get_mut(map).map(|r| r.entry(attempt.index).or_default()) else { continue };
            if attempt.previous_failures < *seen {
                continue;
            }
            *seen = attempt.previous_failures + 1;
            changed.insert(map);
            if published == MAX_FAILURE_EVENTS {
                continue;
            }
            published += 1;
            let failed = warning(
                "ShardFailed",
                "RunShard",
                format!(
                    "shard {} failed (pod {}, {}); retries left are tried per index",
                    attempt.index,
                    attempt.pod,
                    attempt.failure_reason()
                ),
            );
            events.push(related(failed, Some(reference("v1", "Pod", &attempt.pod, &self.scan_ref.namespace))));
        }
        for map in changed {
            let patch =
                serde_json::json!({"data": {objects::progress::REPORTED_KEY: serde_json::to_string(&reported[map])?}});
            self.apis
                .config_maps
                .patch(&maps[map].name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .or_else(ignore_not_found)?;
        }
        Ok(())
    }

    /// Server-side applies the worker ServiceAccount, Role (naming this run's progress maps)
    /// and RoleBinding, before each Job, so that edits made to them since are undone.
    async fn apply_rbac(&self) -> Result<(), Error> {
        let scan_ref = &self.scan_ref;
        let name = names::worker_account(&scan_ref.name);
        let apply = PatchParams::apply(names::MANAGER).force();
        let annotations = pod_settings::effective(self.scan, &self.ctx.worker.pod).service_account_annotations;
        let account = typed(rbac::service_account(scan_ref, &annotations), "v1", "ServiceAccount")?;
        self.apis.service_accounts.patch(&name, &apply, &Patch::Apply(&account)).await?;
        let role =
            typed(rbac::role(scan_ref, &self.id, self.scan.spec.shards), "rbac.authorization.k8s.io/v1", "Role")?;
        let roles: Api<Role> = Api::namespaced(self.ctx.client.clone(), &scan_ref.namespace);
        roles.patch(&name, &apply, &Patch::Apply(&role)).await?;
        let binding = typed(rbac::role_binding(scan_ref), "rbac.authorization.k8s.io/v1", "RoleBinding")?;
        let bindings: Api<RoleBinding> = Api::namespaced(self.ctx.client.clone(), &scan_ref.namespace);
        bindings.patch(&name, &apply, &Patch::Apply(&binding)).await?;
        Ok(())
    }

    /// Whether `job` has been running (since it started or was last resumed) for the grace
    /// period of pods that cannot start.
    fn past_grace(&self, job: &Job) -> bool {
        let grace = i64::try_from(self.ctx.stuck_pod_grace.as_secs()).unwrap_or(i64::MAX);
        started_at(job).is_some_and(|t| self.now.0.as_second().saturating_sub(t) >= grace)
    }

    /// Keeps a Job's `suspend` and `parallelism` equal to the spec's (both are mutable),
    /// except on a Job that Kueue admits: there both are Kueue's.
    async fn mirror_job_spec(&self, job: &Job, parallelism: i32) -> Result<(), Error> {
        let finished = job.status.as_ref().and_then(|s| s.completion_time.as_ref()).is_some();
        if finished || has_condition(job, "Failed") || is_queued(job) {
            return Ok(());
        }
        let spec = job.spec.as_ref();
        let suspend = spec.and_then(|s| s.suspend).unwrap_or(false);
        let current = spec.and_then(|s| s.parallelism).unwrap_or(1);
        if suspend != self.scan.spec.suspend || current != parallelism {
            let patch = serde_json::json!({"spec": {"suspend": self.scan.spec.suspend, "parallelism": parallelism}});
            self.apis.jobs.patch(&job.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        Ok(())
    }

    /// Once the run's outcome is in the status: its Jobs get `spec.ttlSecondsAfterFinished`
    /// (so the TTL controller never deletes a Job whose end was not recorded), and a run
    /// whose pods cannot start, or with too many unreadable files, has its Jobs ended
    /// (`activeDeadlineSeconds: 1`).
    async fn finish(&self, outcome: &Outcome) -> Result<(), Error> {
        let mut spec = serde_json::Map::new();
        if let Some(ttl) = self.scan.spec.ttl_seconds_after_finished {
            spec.insert("ttlSecondsAfterFinished".into(), ttl.into());
        }
        if outcome.stop_jobs {
            spec.insert("activeDeadlineSeconds".into(), 1.into());
        }
        if spec.is_empty() {
            return Ok(());
        }
        let patch = serde_json::json!({ "spec": spec });
        for name in [names::planner_job(&self.scan_ref.name, &self.id), names::shard_job(&self.scan_ref.name, &self.id)]
        {
            if self.live_job(&name).await?.is_some() {
                self.apis.jobs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
        }
        Ok(())
    }

    /// Creates `object`, or returns the one that already exists under its name if this scan
    /// controls it (an object of an earlier ExrScan of the same name is never adopted).
    async fn create<K>(&self, api: &Api<K>, kind: &'static str, object: &K) -> Result<K, Error>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        match api.create(&PostParams::default(), object).await {
            Ok(created) => Ok(created),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api.get(&object.name_any()).await?;
                if self.scan_ref.controls(existing.meta()) {
                    Ok(existing)
                } else {
                    Err(Error::NotOwned { kind, name: object.name_any() })
                }
            }
            Err(e) => Err(e.into()),
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
            Some("DeadlineExceeded") => Outcome::new(
                Phase::Failed,
                "DeadlineExceeded",
                format!(
                    "the run did not finish within spec.timeoutSeconds={}: {} of {} shards done",
                    scan.spec.timeout_seconds.unwrap_or_default(),
                    shards.succeeded,
                    shards.total
                ),
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
    if let Some(queued) = queued_outcome(job) {
        return queued;
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

/// `outcome`, unless the run has more unreadable files than `spec.maxFailedFiles`: then it
/// fails with `TooManyFailedFiles` (a run that failed otherwise keeps its own reason) and
/// its Jobs are stopped.
fn past_failed_files_threshold(scan: &ExrScan, counts: &Counts, outcome: Outcome) -> Outcome {
    match scan.spec.max_failed_files {
        Some(max) if counts.failed > max && outcome.phase != Phase::Failed => Outcome::new(
            Phase::Failed,
            "TooManyFailedFiles",
            format!(
                "{} files could not be read or parsed, more than spec.maxFailedFiles={max} (status.failures lists some)",
                counts.failed
            ),
        )
        .stopping_jobs(),
        _ => outcome,
    }
}

/// When `job` started or was last resumed (Unix seconds).
fn started_at(job: &Job) -> Option<i64> {
    Some(job.status.as_ref()?.start_time.as_ref()?.0.as_second())
}

/// Whether Kueue admits `job` (it carries a queue name).
fn is_queued(job: &Job) -> bool {
    job.labels().contains_key(names::KUEUE_QUEUE_LABEL)
}

/// `Pending` while Kueue holds `job` suspended.
fn queued_outcome(job: &Job) -> Option<Outcome> {
    let queue = job.labels().get(names::KUEUE_QUEUE_LABEL)?;
    (job.spec.as_ref().and_then(|s| s.suspend) == Some(true)).then(|| {
        Outcome::new(
            Phase::Pending,
            "Queued",
            format!("Job {} waits for Kueue to admit it (LocalQueue {queue})", job.name_any()),
        )
    })
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

fn ignore_not_found(e: kube::Error) -> Result<(), kube::Error> {
    match e {
        kube::Error::Api(s) if s.code == 404 => Ok(()),
        e => Err(e),
    }
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_ && c.status == "True")
}

fn has_condition(job: &Job, type_: &str) -> bool {
    condition(job, type_).is_some()
}

/// Whether `job` has ended (completed or failed).
fn is_finished(job: &Job) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

fn finished_outcome(status: &ExrScanStatus) -> Outcome {
    let phase = status.phase.unwrap_or(Phase::Succeeded);
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    Outcome::new(
        phase,
        ready.map_or(phase.as_str(), |c| c.reason.as_str()),
        ready.map(|c| c.message.clone()).unwrap_or_default(),
    )
}

fn summary_of(status: &ExrScanStatus) -> RunSummary {
    RunSummary {
        run: status.run.clone(),
        phase: status.phase,
        job_name: status.job_name.clone(),
        shards: status.shards.clone(),
        counts: status.counts,
        start_time: status.start_time.clone(),
        completion_time: status.completion_time.clone(),
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
        let o = job_outcome(&scan, &job(vec![("Failed", Some("DeadlineExceeded"))], None, false), &shards(), None);
        assert_eq!((o.phase, o.reason.as_str()), (Phase::Failed, "DeadlineExceeded"));
    }

    #[test]
    fn too_many_failed_files_fail_the_run() {
        let mut scan = fixtures::scan(fixtures::flight_spec());
        let running = Outcome::new(Phase::Running, "Running", "");
        let counts = Counts { processed: 50, failed: 3, ..Default::default() };
        assert_eq!(past_failed_files_threshold(&scan, &counts, running.clone()), running, "no threshold by default");
        scan.spec.max_failed_files = Some(3);
        assert_eq!(past_failed_files_threshold(&scan, &counts, running.clone()), running, "3 is not more than 3");
        scan.spec.max_failed_files = Some(2);
        let o = past_failed_files_threshold(&scan, &counts, running);
        assert_eq!((o.phase, o.reason.as_str(), o.stop_jobs), (Phase::Failed, "TooManyFailedFiles", true));
        assert!(
            o.message.starts_with("3 files could not be read or parsed, more than spec.maxFailedFiles=2"),
            "{}",
            o.message
        );
        let done = Outcome::new(Phase::Succeeded, "Succeeded", "");
        assert_eq!(past_failed_files_threshold(&scan, &counts, done).reason, "TooManyFailedFiles");
        let shard_failed = Outcome::new(Phase::Failed, "ShardFailed", "");
        assert_eq!(past_failed_files_threshold(&scan, &counts, shard_failed).reason, "ShardFailed");
    }

    #[test]
    fn a_job_held_by_kueue_is_queued_not_suspended() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let mut held = job(vec![], None, true);
        held.metadata.labels = Some([(names::KUEUE_QUEUE_LABEL.to_string(), "farm".to_string())].into());
        let o = job_outcome(&scan, &held, &shards(), None);
        assert_eq!((o.phase, o.reason.as_str()), (Phase::Pending, "Queued"));
        assert!(o.message.contains("LocalQueue farm"), "{}", o.message);
        assert!(is_queued(&held));
        held.spec = Some(JobSpec { suspend: Some(false), ..Default::default() });
        assert_eq!(job_outcome(&scan, &held, &shards(), None).phase, Phase::Running, "admitted");
    }

    #[test]
    fn api_refusals_are_named() {
        assert_eq!(
            api_reason(403, "jobs.batch \"x\" is forbidden: exceeded quota: q, requested: count/jobs.batch=1"),
            "QuotaExceeded"
        );
        assert_eq!(api_reason(403, "admission webhook \"policy.example\" denied the request: no"), "AdmissionDenied");
        assert_eq!(api_reason(403, "jobs.batch is forbidden: User \"x\" cannot create resource"), "Forbidden");
        assert_eq!(api_reason(422, "Job.batch \"x\" is invalid"), "Invalid");
        assert_eq!(api_reason(503, "unavailable"), "APIServerError");
        assert_eq!(
            api_reason(403, "Error creating: pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\""),
            "AdmissionDenied"
        );
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

    fn scheduled(policy: Option<ConcurrencyPolicy>, deadline: Option<i64>) -> ExrScan {
        let mut spec = fixtures::flight_spec();
        spec.schedule = Some("0 * * * *".into());
        spec.concurrency_policy = policy;
        spec.starting_deadline_seconds = deadline;
        let mut scan = fixtures::scan(spec);
        scan.metadata.creation_timestamp = Some(Time(at("2026-12-06T08:30:00Z")));
        scan
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn decide(scan: &ExrScan, old: &ExrScanStatus, now: &str) -> (Target, ExrScanStatus, Vec<Event>) {
        let (mut status, mut events) = (old.clone(), Vec::new());
        let target = target(scan, old, at(now), &mut status, &mut events).expect("valid schedule");
        (target, status, events)
    }

    #[test]
    fn a_tick_starts_its_own_run_once() {
        let scan = scheduled(None, None);
        let (before, ..) = decide(&scan, &ExrScanStatus::default(), "2026-12-06T08:59:00Z");
        assert_eq!((before.id, before.next_tick), (None, Some(at("2026-12-06T09:00:00Z"))));
        let (first, ..) = decide(&scan, &ExrScanStatus::default(), "2026-12-06T09:00:01Z");
        assert_eq!(first.tick, Some(at("2026-12-06T09:00:00Z")));
        let id = first.id.expect("a run");
        assert_eq!(id, scheduled_run_id(&scan.spec, at("2026-12-06T09:00:00Z")));
        assert_ne!(id, run_id(&scan.spec), "each tick is a run of its own");
        let done = ExrScanStatus {
            run: Some(id.clone()),
            phase: Some(Phase::Succeeded),
            last_schedule_time: Some(Time(at("2026-12-06T09:00:00Z"))),
            ..Default::default()
        };
        let (again, ..) = decide(&scan, &done, "2026-12-06T09:40:00Z");
        assert_eq!((again.id.as_ref(), again.tick), (Some(&id), None), "handled ticks do not run again");
    }

    #[test]
    fn a_schedule_added_to_a_scan_that_ran_waits_for_the_next_tick() {
        let scan = scheduled(None, None);
        let ran = ExrScanStatus {
            run: Some("0123abcd".into()),
            phase: Some(Phase::Succeeded),
            start_time: Some(Time(at("2026-12-06T10:10:00Z"))),
            ..Default::default()
        };
        let (target, ..) = decide(&scan, &ran, "2026-12-06T10:20:00Z");
        assert_eq!((target.id.as_deref(), target.tick), (Some("0123abcd"), None));
    }

    #[test]
    fn forbid_waits_for_the_running_run_and_replace_does_not() {
        let running = ExrScanStatus {
            run: Some("0123abcd".into()),
            phase: Some(Phase::Running),
            last_schedule_time: Some(Time(at("2026-12-06T09:00:00Z"))),
            ..Default::default()
        };
        let (forbid, ..) = decide(&scheduled(None, None), &running, "2026-12-06T10:00:05Z");
        assert_eq!(forbid.id.as_deref(), Some("0123abcd"), "Forbid (the default) keeps the running run");
        let (replace, ..) =
            decide(&scheduled(Some(ConcurrencyPolicy::Replace), None), &running, "2026-12-06T10:00:05Z");
        assert_eq!(replace.tick, Some(at("2026-12-06T10:00:00Z")), "Replace starts the tick's run");
    }

    #[test]
    fn a_late_tick_is_skipped_and_reported() {
        let scan = scheduled(None, Some(60));
        let done = ExrScanStatus {
            run: Some("0123abcd".into()),
            phase: Some(Phase::Succeeded),
            last_schedule_time: Some(Time(at("2026-12-06T09:00:00Z"))),
            ..Default::default()
        };
        let (target, status, events) = decide(&scan, &done, "2026-12-06T10:05:00Z");
        assert_eq!(target.id.as_deref(), Some("0123abcd"));
        assert_eq!(status.last_schedule_time, Some(Time(at("2026-12-06T10:00:00Z"))), "the tick counts as handled");
        assert_eq!(events.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), ["MissedSchedule"]);
    }

    #[test]
    fn a_bad_schedule_is_an_error_naming_the_field() {
        let mut scan = scheduled(None, None);
        scan.spec.time_zone = Some("Nowhere/Special".into());
        let (mut status, mut events) = (ExrScanStatus::default(), Vec::new());
        let error = target(&scan, &ExrScanStatus::default(), at("2026-12-06T10:00:00Z"), &mut status, &mut events)
            .err()
            .expect("an unknown time zone");
        assert!(error.to_string().starts_with("spec.timeZone `Nowhere/Special`"), "{error}");
    }
}
