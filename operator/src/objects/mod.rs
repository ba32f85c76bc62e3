//! Builders of the Kubernetes objects a scan owns: pure functions from the ExrScan (and its
//! run hash) to objects, so what the operator creates is unit-tested without a cluster.

pub mod follow;
pub mod plan;
pub mod pod_settings;
pub mod progress;
pub mod rbac;
pub mod shard_job;
pub mod worker_pod;

use std::collections::BTreeMap;

use exrscan_crds::ExrScan;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::names::{self, Component};

/// What the operator's settings give every scan's worker pods.
#[derive(Debug, Clone)]
pub struct WorkerDefaults {
    /// Image of scans that do not set `spec.worker.image`.
    pub image: String,
    /// Least interval between two progress reports of one shard; runs of many shards report
    /// less often (see [`progress::interval`]).
    pub progress_interval: std::time::Duration,
    /// Pod settings of scans that do not set their own (see [`pod_settings::effective`]).
    pub pod: exrscan_crds::WorkerPodSettings,
}

/// Why an object cannot be built for a scan.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The scan lacks a name, namespace or uid (it was not read from the API server).
    #[error("the ExrScan has no {0}")]
    MissingMetadata(&'static str),
}

/// Name, namespace and uid of a scan read from the API server.
#[derive(Debug, Clone)]
pub struct ScanRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    owner: OwnerReference,
}

impl ScanRef {
    /// Reads the identity of `scan`.
    pub fn of(scan: &ExrScan) -> Result<ScanRef, Error> {
        let name = scan.metadata.name.clone().ok_or(Error::MissingMetadata("name"))?;
        let namespace = scan.metadata.namespace.clone().ok_or(Error::MissingMetadata("namespace"))?;
        let uid = scan.metadata.uid.clone().ok_or(Error::MissingMetadata("uid"))?;
        let owner = scan.controller_owner_ref(&()).ok_or(Error::MissingMetadata("name or uid"))?;
        Ok(ScanRef { name, namespace, uid, owner })
    }

    /// Metadata of an owned object: in the scan's namespace, labelled, owned by the scan (so
    /// deleting the scan deletes it).
    pub fn owned_meta(&self, name: String, labels: std::collections::BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    /// Metadata of an owned object carrying the scan's labels.
    pub fn meta(&self, name: String) -> ObjectMeta {
        self.owned_meta(name, names::scan_labels(&self.name))
    }

    /// Whether this scan (this uid, not an earlier scan of the same name) controls `meta`'s object.
    pub fn controls(&self, meta: &ObjectMeta) -> bool {
        controller_uid(meta) == Some(self.uid.as_str())
    }
}

/// The uid of the controller owner of an object.
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true)).map(|o| o.uid.as_str())
}

/// The Kueue LocalQueue of a scan's Jobs, when the scan is queued.
pub fn queue_name(scan: &ExrScan) -> Option<&str> {
    scan.spec.worker.as_ref().and_then(|w| w.queue_name.as_deref())
}

/// Labels of a run's Job: its run labels, and Kueue's queue-name label when the scan is queued.
fn job_labels(scan: &ExrScan, scan_ref: &ScanRef, run: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = names::run_labels(&scan_ref.name, run, component);
    if let Some(queue) = queue_name(scan) {
        labels.insert(names::KUEUE_QUEUE_LABEL.to_string(), queue.to_string());
    }
    labels
}

/// What every Job of a run shares: a replacement pod only once its predecessor has fully
/// terminated (one pod per index at a time); created suspended when `spec.suspend` says so
/// or when Kueue is to admit it; `deadline` (seconds) as `activeDeadlineSeconds`. The TTL
/// is not set here: the operator sets it once the run's outcome is in the status.
fn run_job_spec(scan: &ExrScan, deadline: Option<i64>) -> JobSpec {
    JobSpec {
        pod_replacement_policy: Some(POD_REPLACEMENT_POLICY.into()),
        pod_failure_policy: Some(plan::pod_failure_policy()),
        suspend: Some(scan.spec.suspend || queue_name(scan).is_some()),
        active_deadline_seconds: deadline,
        ..Default::default()
    }
}

/// `podReplacementPolicy` of every Job: `Failed` (the default with a pod failure policy, set
/// explicitly so that it cannot silently change).
pub const POD_REPLACEMENT_POLICY: &str = "Failed";

#[cfg(test)]
pub(crate) mod fixtures {
    //! A scan as the API server returns it, for the builders' tests.
    use exrscan_crds::{ExrScan, ExrScanSpec, FlightSink, FlightTls, Sink, Source};

    pub fn defaults() -> super::WorkerDefaults {
        super::WorkerDefaults {
            image: "exrscan:1".into(),
            progress_interval: std::time::Duration::from_secs(5),
            pod: Default::default(),
        }
    }

    pub fn scan(spec: ExrScanSpec) -> ExrScan {
        let mut scan = ExrScan::new("renders", spec);
        scan.metadata.namespace = Some("vfx".into());
        scan.metadata.uid = Some("0b5e9c1e-uid".into());
        scan.metadata.generation = Some(1);
        scan
    }

    pub fn flight_spec() -> ExrScanSpec {
        ExrScanSpec {
            source: Source {
                bucket: "renders".into(),
                prefix: "show/seq".into(),
                endpoint: Some("http://minio:9000".into()),
                region: Some("us-east-1".into()),
                force_path_style: true,
                credentials_secret: Some("s3-creds".into()),
                ca_secret: None,
                include: vec!["*.exr".into(), "*.EXR".into()],
                exclude: vec!["tmp/*".into()],
            },
            sink: Sink {
                flight: Some(FlightSink {
                    endpoint: "vastdb:443".into(),
                    tls: Some(FlightTls { ca_secret: Some("vast-ca".into()) }),
                    credentials_secret: Some("vast-creds".into()),
                    schema: Some("vfx".into()),
                    table_prefix: Some("exr_".into()),
                }),
                ..Default::default()
            },
            shards: 4,
            parallelism: Some(2),
            worker: None,
            embeddings: None,
            suspend: false,
            rescan: None,
            backoff_limit_per_index: 3,
            ttl_seconds_after_finished: Some(600),
            timeout_seconds: None,
            max_failed_files: None,
            schedule: None,
            time_zone: None,
            concurrency_policy: None,
            starting_deadline_seconds: None,
            events: None,
        }
    }
}
