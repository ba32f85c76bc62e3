//! `ExrScan.spec`: what to scan, where the rows go, and how the work is split.
//!
//! Every constraint the API server can check is in the schema (ranges, lengths) or in a CEL
//! rule (`x-kubernetes-validations`) with a message that says what to change, so a bad spec
//! is refused by `kubectl apply` instead of being discovered by a failing pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::EventsSpec;
use crate::status::ExrScanStatus;

/// Longest ExrScan name: the operator appends `-plan-<run>` (14 characters) to name the
/// planner Job, whose name must stay a 63-character DNS label.
pub const MAX_NAME_LENGTH: usize = 48;

/// Shards a scan may ask for.
pub const MAX_SHARDS: i32 = 10_000;

/// Bounds of `spec.worker.headerBytes`: the size of a worker's first ranged GET.
pub const HEADER_BYTES_RANGE: (i64, i64) = (1_024, 16 * 1024 * 1024);

/// Indexes an S3 prefix of OpenEXR renders into a catalog, reading headers only.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "exrscan.dev",
    version = "v1alpha1",
    kind = "ExrScan",
    plural = "exrscans",
    shortname = "exs",
    category = "exrscan",
    namespaced,
    status = "ExrScanStatus",
    doc = "ExrScan indexes the OpenEXR headers under an S3 prefix into a catalog (Flight SQL or DuckDB).",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Shards", type_ = "string", json_path = ".status.shards.summary"),
    printcolumn(name = "Discovered", type_ = "integer", json_path = ".status.counts.discovered"),
    printcolumn(name = "Processed", type_ = "integer", json_path = ".status.counts.processed"),
    printcolumn(name = "Inserted", type_ = "integer", json_path = ".status.counts.inserted"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.counts.failed"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 48 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label of at most 48 characters (lowercase letters, digits, '-'): Job, ConfigMap and ServiceAccount names are derived from it")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.parallelism) || self.parallelism <= self.shards")
        .message("spec.parallelism must not exceed spec.shards")
        .field_path(".parallelism"),
    validation = Rule::new("!has(self.sink.duckdb) || self.shards == 1")
        .message("a duckdb sink has a single writer and needs spec.shards: 1; use a flight sink for sharded scans")
        .field_path(".shards"),
    validation = Rule::new("has(self.schedule) || !(has(self.timeZone) || has(self.concurrencyPolicy) || has(self.startingDeadlineSeconds))")
        .message("spec.timeZone, spec.concurrencyPolicy and spec.startingDeadlineSeconds apply to a spec.schedule"),
    validation = Rule::new("!has(self.events) || !has(self.sink.duckdb)")
        .message("spec.events needs a flight or vast sink: a duckdb catalog has a single writer, which the scan's runs already are")
        .field_path(".events")
)]
pub struct ExrScanSpec {
    /// The S3 bucket and prefix to scan.
    pub source: Source,
    /// Where the rows go: exactly one of `vast`, `flight` or `duckdb`.
    pub sink: Sink,
    /// Number of shards (worker pods, each listing only its own partitions of the prefix).
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 10000))]
    pub shards: i32,
    /// Shards running at once; defaults to `shards`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub parallelism: Option<i32>,
    /// Worker pod settings. The operator's defaults (`--worker-pod-defaults`, the chart's
    /// `workerPods`) fill in the scheduling, pull Secrets and metadata not set here: maps
    /// are merged key by key (the scan's value wins), other fields replaced (an empty list
    /// removes the default's). None of these is part of the run hash: a change applies to
    /// the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerSpec>,
    /// Metadata and channel embeddings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<EmbeddingsSpec>,
    /// Pauses the scan: running shards are stopped (the Job is suspended) until it is false again.
    #[serde(default)]
    pub suspend: bool,
    /// Any new value starts a fresh run over the whole prefix (the GitOps backfill knob);
    /// files already indexed are counted `unchanged` and not written again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub rescan: Option<String>,
    /// Retries of one shard before it counts as failed (and with it the scan).
    #[serde(default = "default_backoff_limit_per_index")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit_per_index: i32,
    /// Seconds after the run's outcome is in the status before its Jobs and pods are deleted
    /// (the status keeps the results; 0 deletes them as soon as the outcome is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31536000))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Longest a run may take, from its start (planning included); a run still going then
    /// fails with `DeadlineExceeded` (its Jobs' `activeDeadlineSeconds`). Unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31536000))]
    pub timeout_seconds: Option<i64>,
    /// Objects that could not be read or parsed (`status.counts.failed`) a run tolerates: once
    /// it has more, the run fails with `TooManyFailedFiles` and its Jobs are stopped (`0`: the
    /// first unreadable file fails the run). No limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_failed_files: Option<i64>,
    /// Runs the scan on a cron schedule (five fields, as CronJob's `schedule`, aliases such as
    /// `@hourly` included): each tick starts a run that lists the prefix and indexes only new
    /// and changed objects (unchanged ones cost their LIST entry alone). The first run is at
    /// the first tick after the scan is created; a spec change alone starts no run (it applies
    /// from the next tick). Without it, a scan runs once per change of its spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub schedule: Option<String>,
    /// IANA time zone of `schedule` (e.g. `America/Los_Angeles`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// What a tick does while the previous run still runs: `Forbid` (the default) starts the
    /// tick's run once the previous one has finished, if still within
    /// `startingDeadlineSeconds`; `Replace` stops the previous run and starts the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// A tick whose run cannot start within this many seconds is skipped (a `MissedSchedule`
    /// Event); ticks missed while the operator was down are never run one by one, only the
    /// latest. Unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31536000))]
    pub starting_deadline_seconds: Option<i64>,
    /// Indexes new and changed objects seconds after they land, from the bucket's S3 event
    /// notifications on Kafka: a Deployment `<scan>-follow` of `exrscan follow` consumers
    /// (scaled to 0 while `suspend`, deleted when this is removed). Runs go on alongside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsSpec>,
}

/// What a scheduled tick does while the previous run still runs.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConcurrencyPolicy {
    /// Wait for the previous run to finish.
    #[default]
    Forbid,
    /// Stop the previous run and start the new one.
    Replace,
}

fn default_shards() -> i32 {
    1
}

fn default_backoff_limit_per_index() -> i32 {
    3
}

/// The S3 objects to scan.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Bucket name.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')")
        .message("spec.source.bucket must be an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'"))]
    pub bucket: String,
    /// Key prefix to scan (empty: the whole bucket).
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub prefix: String,
    /// S3 endpoint URL (`https://…`); empty for AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/\\\\s]+/?$')")
        .message("spec.source.endpoint must be an http:// or https:// URL without a path, e.g. https://s3.example.com:9000"))]
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (MinIO, VAST).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret with the keys `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally
    /// `AWS_SESSION_TOKEN`, in the scan's namespace; referenced by the worker pods, never read
    /// by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
    /// Secret whose key `ca.crt` is the PEM CA bundle that signs a private endpoint's
    /// certificate, trusted in addition to the worker image's system roots (`EXRSCAN_S3_CA`);
    /// mounted into the planner and shard pods. Not part of the run hash: changing it applies
    /// to the next run (set `rescan` to start one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret: Option<String>,
    /// Only keys matching one of these globs are scanned (default: `*.exr` files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    #[x_kube(validation = Rule::new("self.all(g, !g.contains(','))").message("spec.source.include globs must not contain ','"))]
    pub include: Vec<String>,
    /// Keys matching one of these globs are skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    #[x_kube(validation = Rule::new("self.all(g, !g.contains(','))").message("spec.source.exclude globs must not contain ','"))]
    pub exclude: Vec<String>,
}

/// Where the rows go.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.vast), has(self.flight), has(self.duckdb)].filter(x, x).size() == 1")
    .message("exactly one of spec.sink.vast, spec.sink.flight or spec.sink.duckdb must be set"))]
pub struct Sink {
    /// VAST DataBase through its native tabular API (the protocol of VAST's own clients); the
    /// sink for sharded scans into VAST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vast: Option<VastSink>,
    /// An Arrow Flight SQL server (Dremio, the Arrow reference server, any Flight SQL engine);
    /// sharded scans may write to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flight: Option<FlightSink>,
    /// An embedded DuckDB catalog file on a PersistentVolumeClaim; single writer, `shards: 1` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duckdb: Option<DuckDbSink>,
}

/// A VAST DataBase catalog: a schema in a database bucket, reached through a VIP.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.caSecret) || self.endpoint.startsWith('https://')")
    .message("spec.sink.vast.caSecret needs an https:// endpoint"))]
pub struct VastSink {
    /// `http://host[:port]` or `https://host[:port]` of a VIP pool (or load balancer) serving the
    /// tabular API, as given to `vastdb.connect(endpoint=…)`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.matches('^https?://(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?/?$')")
        .message("spec.sink.vast.endpoint must be http://host[:port] or https://host[:port], e.g. https://vip-pool.vast.example.com"))]
    pub endpoint: String,
    /// The database bucket holding the schema.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]+$')")
        .message("spec.sink.vast.bucket must be made of letters, digits, '.', '_' and '-'"))]
    pub bucket: String,
    /// Schema of the tables, nested levels joined by `/` (`exrscan`, `exrscan/prod`); created
    /// when missing.
    #[serde(default = "default_vast_schema")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$')")
        .message("spec.sink.vast.schema must be names of letters, digits, '.', '_' and '-' joined by '/'"))]
    pub schema: String,
    /// Prefix of the table names (`<prefix>files`, `<prefix>parts`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]*$')")
        .message("spec.sink.vast.tablePrefix must be made of letters, digits, '.', '_' and '-'"))]
    pub table_prefix: Option<String>,
    /// Secret with the keys `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (the VAST identity's
    /// S3 access key pair), in the scan's namespace; referenced by the shard pods, never read by
    /// the operator. The same Secret can serve `spec.source.credentialsSecret`.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
    /// Secret whose key `ca.crt` is the PEM CA bundle that signs the VIP's certificate (default:
    /// the worker image's system roots); `https://` endpoints only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret: Option<String>,
}

fn default_vast_schema() -> String {
    "exrscan".to_string()
}

/// An Arrow Flight SQL endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FlightSink {
    /// `host:port` of the Flight SQL server (no scheme: `tls` chooses it).
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.matches('^(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$')")
        .message("spec.sink.flight.endpoint must be host:port, e.g. vast-db.example.com:443 (no scheme: set tls instead)"))]
    pub endpoint: String,
    /// TLS to the server; plaintext gRPC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<FlightTls>,
    /// Secret with the keys `username` and `password`, or `token`, in the scan's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
    /// Database schema of the tables: letters, digits and `_` (the worker refuses other names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_]+$')")
        .message("spec.sink.flight.schema must be letters, digits and '_' (the worker refuses other names)"))]
    pub schema: Option<String>,
    /// Prefix of the table names (`<prefix>files`, `<prefix>parts`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$') || self == ''")
        .message("spec.sink.flight.tablePrefix must be a SQL identifier prefix (letters, digits, '_')"))]
    pub table_prefix: Option<String>,
}

/// TLS settings of the Flight SQL connection.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FlightTls {
    /// Secret whose key `ca.crt` is the PEM CA bundle that signs the server's certificate
    /// (default: the worker image's system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret: Option<String>,
}

/// An embedded DuckDB catalog.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DuckDbSink {
    /// The PersistentVolumeClaim (in the scan's namespace) holding the catalog file.
    #[schemars(length(min = 1, max = 253))]
    pub persistent_volume_claim: String,
    /// Path of the catalog file inside the volume.
    #[serde(default = "default_duckdb_path")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("!self.startsWith('/') && !self.split('/').exists(s, s == '..')")
        .message("spec.sink.duckdb.path must be relative to the volume and must not contain '..'"))]
    pub path: String,
}

fn default_duckdb_path() -> String {
    "exrscan.duckdb".to_string()
}

/// Worker pod settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Worker image (default: the operator's `--worker-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Resources of each worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Objects fetched at once by one shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub concurrency: Option<i32>,
    /// Bytes of the first ranged GET of each object (larger headers take a second GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 16777216))]
    pub header_bytes: Option<i64>,
    /// Kueue LocalQueue of the scan's Jobs: they carry the label `kueue.x-k8s.io/queue-name`,
    /// are created suspended, and Kueue alone decides when they run (the operator then leaves
    /// their `suspend` and `parallelism` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("spec.worker.queueName must be a LocalQueue name (a DNS label)"))]
    pub queue_name: Option<String>,
    /// Scheduling, pull Secrets and metadata of the worker pods and their ServiceAccount;
    /// the operator's defaults (`--worker-pod-defaults`) fill in what is not set here.
    #[serde(flatten)]
    pub pod: WorkerPodSettings,
}

/// Where the worker pods (planner and shards) may run, what they pull with, and the labels
/// and annotations of the pods and of the per-scan ServiceAccount `<scan>-worker`: set per
/// scan in `spec.worker`, and as the operator's defaults. A scan's value overrides the
/// default: maps are merged key by key (the scan's value wins), every other field (lists
/// included: an empty list removes the default's) replaces the default when set. None of
/// these change the run hash: they apply to the Jobs of the next run (the ServiceAccount's
/// annotations also to a run in progress).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPodSettings {
    /// Secrets (in the scan's namespace) to pull the worker image with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Node labels the worker pods require (the pod's `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the worker pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub tolerations: Option<Vec<Toleration>>,
    /// Node and pod (anti-)affinity of the worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the worker pods (it must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Extra labels of the worker pods (not of their Jobs). The operator's own keys
    /// (`exrscan.dev/…`, `app.kubernetes.io/name`, `…/managed-by`, `…/component`) and the Job
    /// controller's (`batch.kubernetes.io/…`, `job-name`, `controller-uid`) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    #[x_kube(validation = Rule::new(RESERVED_LABELS_RULE)
        .message("spec.worker.podLabels must not set the operator's or the Job controller's labels (exrscan.dev/*, app.kubernetes.io/name, app.kubernetes.io/managed-by, app.kubernetes.io/component, batch.kubernetes.io/*, job-name, controller-uid)"))]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra annotations of the worker pods (not of their Jobs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub pod_annotations: BTreeMap<String, String>,
    /// Annotations of the scan's worker ServiceAccount `<scan>-worker`, e.g.
    /// `eks.amazonaws.com/role-arn` (IRSA) or `iam.gke.io/gcp-service-account` (GKE Workload
    /// Identity), to reach the bucket without a `credentialsSecret`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub service_account_annotations: BTreeMap<String, String>,
}

/// Label keys the operator and the Job controller set on worker pods.
pub const RESERVED_LABELS: [&str; 5] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "job-name",
    "controller-uid",
];

/// Label key prefixes the operator and the Job controller set on worker pods.
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["exrscan.dev/", "batch.kubernetes.io/"];

/// The CEL form of [`is_reserved_label`] (a test keeps the two in step).
const RESERVED_LABELS_RULE: &str = "self.all(k, !k.startsWith('exrscan.dev/') && !k.startsWith('batch.kubernetes.io/') \
    && !(k in ['app.kubernetes.io/name', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/component', 'job-name', 'controller-uid']))";

/// Whether a pod label key is the operator's or the Job controller's.
pub fn is_reserved_label(key: &str) -> bool {
    RESERVED_LABELS.contains(&key) || RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Embedding settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingsSpec {
    /// Compute metadata and channel embeddings for every file.
    #[serde(default = "default_embeddings_enabled")]
    pub enabled: bool,
}

impl Default for EmbeddingsSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_embeddings_enabled() -> bool {
    true
}

impl ExrScanSpec {
    /// Shards running at once: `parallelism`, or all of them.
    pub fn effective_parallelism(&self) -> i32 {
        self.parallelism.unwrap_or(self.shards).min(self.shards)
    }

    /// Whether embeddings are computed (the default).
    pub fn embeddings_enabled(&self) -> bool {
        self.embeddings.as_ref().is_none_or(|e| e.enabled)
    }
}
