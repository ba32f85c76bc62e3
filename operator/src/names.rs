//! Names and labels of the objects the operator creates for a scan (the worker contract,
//! `docs/worker-contract.md`).

use std::collections::BTreeMap;

/// Label with the owning scan's name, on every object and pod of a scan.
pub const SCAN_LABEL: &str = "exrscan.dev/scan";
/// Label with the run hash, on the Jobs and their pods.
pub const RUN_LABEL: &str = "exrscan.dev/run";
/// `app.kubernetes.io/component`: `planner`, `shard`, `follow` or `progress`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`, the selector of everything the operator watches.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGER: &str = "exrscan-operator";
/// The key of the plan header the planner writes (last, once every chunk is written).
pub const PLAN_KEY: &str = "plan.json";
/// Shards whose partitions one plan chunk ConfigMap holds (`exrscan plan
/// --shards-per-configmap`): 401 S3 keys of at most 1,024 bytes, JSON-escaped at worst to
/// 2,048 bytes each, take under 840 KB of the 1 MiB a ConfigMap holds; 10,000 shards make
/// 25 chunk maps, each a source of the shard pods' plan volume.
pub const SHARDS_PER_PLAN_MAP: i32 = 400;
/// Shards whose progress one progress ConfigMap holds: at most ~2 KiB per shard (counts and
/// a few shortened failures), so a map stays well under the 1 MiB object limit and no map
/// takes every shard's writes.
pub const SHARDS_PER_PROGRESS_MAP: i32 = 200;
/// Where shard pods see the plan: the header and every chunk, projected into one directory.
pub const PLAN_MOUNT: &str = "/etc/exrscan/plan";
/// The worker container's name (pod failure policy rules name it).
pub const CONTAINER: &str = "worker";
/// The Job label that hands a Job to Kueue (its LocalQueue's name).
pub const KUEUE_QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// The pod annotation where the Job controller puts an Indexed Job pod's index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// The pod annotation with the failures of an Indexed Job pod's index before it was created.
pub const INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";

/// What a pod of a scan does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The single pod that writes the plan.
    Planner,
    /// One shard of the Indexed Job.
    Shard,
    /// An event consumer of `spec.events` (`exrscan follow`).
    Follow,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Planner => "planner",
            Component::Shard => "shard",
            Component::Follow => "follow",
        }
    }
}

/// `<scan>-<run>-plan`: the ConfigMap holding the plan header of a run.
pub fn plan_config_map(scan: &str, run: &str) -> String {
    format!("{scan}-{run}-plan")
}

/// The plan chunk ConfigMaps of a run of `shards` shards: `<scan>-<run>-plan-<k>` holds the
/// partitions of shards `k * SHARDS_PER_PLAN_MAP ..` under the key `partitions-<k>.json`.
pub fn plan_chunk_maps(scan: &str, run: &str, shards: i32) -> Vec<String> {
    chunk_names(&plan_config_map(scan, run), shards, SHARDS_PER_PLAN_MAP)
}

/// `<scan>-worker`: the ServiceAccount, Role and RoleBinding of the scan's pods.
pub fn worker_account(scan: &str) -> String {
    format!("{scan}-worker")
}

/// `<scan>-<run>-progress`: the name of a run's progress ConfigMaps, before `-<chunk>`.
pub fn progress_prefix(scan: &str, run: &str) -> String {
    format!("{scan}-{run}-progress")
}

/// The progress ConfigMaps of a run of `shards` shards: `<scan>-<run>-progress-<k>` holds
/// shards `k * SHARDS_PER_PROGRESS_MAP ..` (its keys are shard indexes).
pub fn progress_maps(scan: &str, run: &str, shards: i32) -> Vec<String> {
    chunk_names(&progress_prefix(scan, run), shards, SHARDS_PER_PROGRESS_MAP)
}

/// `<prefix>-<k>` for each chunk of `per_chunk` of `shards` shards.
fn chunk_names(prefix: &str, shards: i32, per_chunk: i32) -> Vec<String> {
    let chunks = (shards.max(1) - 1) / per_chunk + 1;
    (0..chunks).map(|k| format!("{prefix}-{k}")).collect()
}

/// `<scan>-plan-<run>`: the planner Job of a run.
pub fn planner_job(scan: &str, run: &str) -> String {
    format!("{scan}-plan-{run}")
}

/// `<scan>-<run>`: the Indexed Job of a run.
pub fn shard_job(scan: &str, run: &str) -> String {
    format!("{scan}-{run}")
}

/// Labels of every object the operator creates for `scan`.
pub fn scan_labels(scan: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "exrscan".to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
        (SCAN_LABEL.to_string(), scan.to_string()),
    ])
}

/// Labels of a run's Job and its pods.
pub fn run_labels(scan: &str, run: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = scan_labels(scan);
    labels.insert(RUN_LABEL.to_string(), run.to_string());
    labels.insert(COMPONENT_LABEL.to_string(), component.as_str().to_string());
    labels
}

/// [`COMPONENT_LABEL`] of a run's progress ConfigMaps.
pub const PROGRESS_COMPONENT: &str = "progress";
/// [`COMPONENT_LABEL`] of a run's plan header ConfigMap.
pub const PLAN_COMPONENT: &str = "plan";
/// [`COMPONENT_LABEL`] of a run's plan chunk ConfigMaps.
pub const PLAN_CHUNK_COMPONENT: &str = "plan-chunk";

/// Labels of a run's ConfigMaps of `component` (progress, plan header or plan chunks).
pub fn run_map_labels(scan: &str, run: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = scan_labels(scan);
    labels.insert(RUN_LABEL.to_string(), run.to_string());
    labels.insert(COMPONENT_LABEL.to_string(), component.to_string());
    labels
}

/// Label selector of every object and pod of a scan.
pub fn scan_selector(scan: &str) -> String {
    format!("{SCAN_LABEL}={scan}")
}

/// Label selector of the per-run ConfigMaps (plan header and chunks, progress) of every run
/// of a scan.
pub fn run_maps_selector(scan: &str) -> String {
    format!("{SCAN_LABEL}={scan},{COMPONENT_LABEL} in ({PROGRESS_COMPONENT}, {PLAN_COMPONENT}, {PLAN_CHUNK_COMPONENT})")
}

/// Label selector of a run's progress ConfigMaps.
pub fn progress_selector(scan: &str, run: &str) -> String {
    format!("{SCAN_LABEL}={scan},{RUN_LABEL}={run},{COMPONENT_LABEL}={PROGRESS_COMPONENT}")
}

/// Label selector of a run's pods of one component.
pub fn run_selector(scan: &str, run: &str, component: Component) -> String {
    format!("{SCAN_LABEL}={scan},{RUN_LABEL}={run},{COMPONENT_LABEL}={}", component.as_str())
}

/// `<scan>-follow`: the Deployment of a scan's event consumers, the ConfigMap they report
/// to, and the Role and RoleBinding that let them.
pub fn follow(scan: &str) -> String {
    format!("{scan}-follow")
}

/// Labels of a scan's event consumers (the Deployment's selector) and their objects.
pub fn follow_labels(scan: &str) -> BTreeMap<String, String> {
    let mut labels = scan_labels(scan);
    labels.insert(COMPONENT_LABEL.to_string(), Component::Follow.as_str().to_string());
    labels
}
