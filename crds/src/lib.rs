//! The `ExrScan` custom resource (`exrscan.dev/v1alpha1`, short name `exs`): its API types,
//! the CRD generated from them ([`crd_yaml`], committed as `crds/exrscan.dev_exrscans.yaml`),
//! its Markdown reference ([`reference::markdown`], committed as `docs/crd-reference.md`) and
//! the shards' progress/summary reports of the worker contract ([`report`]).

pub mod events;
pub mod reference;
pub mod report;
pub mod spec;
pub mod status;

pub use events::{EventsSpec, EventsStatus, KafkaSasl, KafkaTls, SaslMechanism, StartFrom};
pub use spec::{
    ConcurrencyPolicy, DuckDbSink, EmbeddingsSpec, ExrScan, ExrScanSpec, FlightSink, FlightTls, Sink, Source, VastSink,
    WorkerPodSettings, WorkerSpec, is_reserved_label,
};
pub use status::{Counts, ExrScanStatus, Failure, Phase, RunSummary, ShardCounts};

use kube::CustomResourceExt;

/// Why the CRD could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Serialising the CRD failed.
    #[error("rendering the CRD: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The generated CRD has no schema where one was expected.
    #[error("the generated CRD has no OpenAPI schema")]
    NoSchema,
}

/// The CustomResourceDefinition of ExrScan as YAML, exactly as committed under `crds/`.
pub fn crd_yaml() -> Result<String, Error> {
    Ok(serde_yaml::to_string(&ExrScan::crd())?)
}
