//! `ExrScan.status`: what the operator observed, written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::EventsStatus;

/// Most entries kept in `status.failures`.
pub const MAX_FAILURES: usize = 20;

/// Most runs kept in `status.history`.
pub const MAX_HISTORY: usize = 10;

/// Observed state of an ExrScan.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExrScanStatus {
    /// Where the current run is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Complete`, `Failed`, `Reconciling` and `Stalled` (the last
    /// two as kstatus reads them), all always present; the reason of `Failed` names the cause
    /// (`ShardFailed`, `JobFailed`, `ConfigurationError`, `DeadlineExceeded`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Hash of what defines the current run (source, sink, shards, embeddings, rescan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The current run's Indexed Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Shards of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardCounts>,
    /// Objects handled by the current run so far (final once the run has finished): the
    /// shards' latest reports in the run's progress ConfigMaps, which outlive their pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// When the current run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the current run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// A bounded sample of objects that could not be indexed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub failures: Vec<Failure>,
    /// The summary of the previous run, kept when a new run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunSummary>,
    /// Earlier runs, newest first (at most 10): outcome, counts and times of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<RunSummary>,
    /// Scheduled scans: the latest tick handled (its run started, or skipped as missed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// Scheduled scans: when the latest run that succeeded finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// Scheduled scans: the next tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// `spec.events`: what the event consumers report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsStatus>,
}

/// Where a scan is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Accepted; nothing created yet.
    Pending,
    /// The planner pod is splitting the prefix into partitions.
    Planning,
    /// The shards are running.
    Running,
    /// Every shard finished.
    Succeeded,
    /// The planner or a shard failed past its retries, or the spec cannot be run.
    Failed,
    /// `spec.suspend` is true.
    Suspended,
    /// A scheduled scan before its first tick: nothing to run yet.
    Scheduled,
}

impl Phase {
    /// Every phase, for metrics.
    pub const ALL: [Phase; 7] = [
        Phase::Pending,
        Phase::Planning,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Suspended,
        Phase::Scheduled,
    ];

    /// The phase's name as it appears in the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Planning => "Planning",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Suspended => "Suspended",
            Phase::Scheduled => "Scheduled",
        }
    }

    /// Whether the run has ended (nothing more will happen until the spec changes).
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// Shards of a run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardCounts {
    /// `spec.shards` of the run.
    pub total: i32,
    /// Shards with a running pod.
    pub active: i32,
    /// Shards that finished.
    pub succeeded: i32,
    /// Shards that failed past their retries.
    pub failed: i32,
    /// Failed pods of the run, each retry of a shard counted (the Job's count: it does not
    /// drop when pods are deleted; pods evicted or preempted are not failures).
    #[serde(default)]
    pub failed_attempts: i32,
    /// `succeeded/total`, for `kubectl get`.
    #[serde(default)]
    pub summary: String,
}

/// Objects handled by a run (or by one shard: the same shape is a shard's entry in its run's
/// progress ConfigMap and its termination summary).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Objects listed under the prefix that match the globs.
    #[serde(default)]
    pub discovered: i64,
    /// Objects whose header was read (inserted + unchanged + failed).
    #[serde(default)]
    pub processed: i64,
    /// Files written to the catalog.
    #[serde(default)]
    pub inserted: i64,
    /// Files already in the catalog with the same header.
    #[serde(default)]
    pub unchanged: i64,
    /// Objects that could not be read or parsed.
    #[serde(default)]
    pub failed: i64,
    /// Bytes fetched from S3.
    #[serde(default)]
    pub bytes_read: i64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.discovered = self.discovered.saturating_add(other.discovered);
        self.processed = self.processed.saturating_add(other.processed);
        self.inserted = self.inserted.saturating_add(other.inserted);
        self.unchanged = self.unchanged.saturating_add(other.unchanged);
        self.failed = self.failed.saturating_add(other.failed);
        self.bytes_read = self.bytes_read.saturating_add(other.bytes_read);
    }
}

/// One object that could not be indexed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The object's key.
    #[schemars(length(max = 1024))]
    pub key: String,
    /// Why, in one line.
    #[schemars(length(max = 1024))]
    pub reason: String,
}

/// The outcome of a finished (or replaced) run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Its Indexed Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Its shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardCounts>,
    /// Its counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}
