//! The run hash: a short digest of what defines a run's results (source, sink, shards,
//! embeddings, `spec.rescan`). Re-applying an unchanged spec gives the same hash, so the
//! existing Jobs are found and nothing is created; changing any of these starts a new run.
//! Tuning (parallelism, worker image, resources, concurrency, headerBytes, the worker pods'
//! scheduling and metadata, `source.caSecret`, `maxFailedFiles`) and suspension do not: they
//! apply to the current run where Kubernetes allows it, or to the next one.

use exrscan_crds::{ExrScanSpec, Source};
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

/// Hex digits of the run hash (names derived from it must stay DNS labels).
pub const RUN_ID_LEN: usize = 8;

/// The run hash of `spec`.
pub fn run_id(spec: &ExrScanSpec) -> String {
    digest(defining(spec))
}

/// The run hash of `spec`'s run for the scheduled `tick`.
pub fn scheduled_run_id(spec: &ExrScanSpec, tick: Timestamp) -> String {
    let mut defining = defining(spec);
    defining["tick"] = tick.to_string().into();
    digest(defining)
}

fn defining(spec: &ExrScanSpec) -> serde_json::Value {
    // The CA that a private endpoint's certificate is checked with does not change what the
    // bucket holds.
    let source = Source { ca_secret: None, ..spec.source.clone() };
    serde_json::json!({
        "source": source,
        "sink": spec.sink,
        "shards": spec.shards,
        "embeddings": spec.embeddings_enabled(),
        "rescan": spec.rescan,
    })
}

fn digest(defining: serde_json::Value) -> String {
    // Keys in a fixed order and absent options omitted: the text is canonical, and fields
    // added to the API later (as options) do not change the hash of existing scans.
    let digest = Sha256::digest(defining.to_string().as_bytes());
    digest.iter().take(RUN_ID_LEN / 2).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use exrscan_crds::{FlightSink, Sink};

    fn spec() -> ExrScanSpec {
        ExrScanSpec {
            source: Source { bucket: "renders".into(), prefix: "show/".into(), ..Default::default() },
            sink: Sink {
                flight: Some(FlightSink { endpoint: "db:443".into(), ..Default::default() }),
                ..Default::default()
            },
            shards: 4,
            parallelism: None,
            worker: None,
            embeddings: None,
            suspend: false,
            rescan: None,
            backoff_limit_per_index: 3,
            ttl_seconds_after_finished: None,
            timeout_seconds: None,
            max_failed_files: None,
            schedule: None,
            time_zone: None,
            concurrency_policy: None,
            starting_deadline_seconds: None,
            events: None,
        }
    }

    #[test]
    fn stable_and_short() {
        let id = run_id(&spec());
        assert_eq!(id.len(), RUN_ID_LEN);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, run_id(&spec()));
    }

    #[test]
    fn defining_fields_change_it() {
        let base = run_id(&spec());
        let mut s = spec();
        s.rescan = Some("2024-06-01".into());
        assert_ne!(run_id(&s), base);
        let mut s = spec();
        s.source.prefix = "other/".into();
        assert_ne!(run_id(&s), base);
        let mut s = spec();
        s.shards = 8;
        assert_ne!(run_id(&s), base);
        let mut s = spec();
        s.embeddings = Some(exrscan_crds::EmbeddingsSpec { enabled: false });
        assert_ne!(run_id(&s), base);
    }

    #[test]
    fn tuning_and_suspend_do_not() {
        let base = run_id(&spec());
        let mut s = spec();
        s.parallelism = Some(2);
        s.suspend = true;
        s.backoff_limit_per_index = 9;
        s.ttl_seconds_after_finished = Some(60);
        s.max_failed_files = Some(0);
        s.source.ca_secret = Some("s3-ca".into());
        s.worker = Some(exrscan_crds::WorkerSpec {
            concurrency: Some(8),
            pod: exrscan_crds::WorkerPodSettings {
                node_selector: [("pool".to_string(), "batch".to_string())].into(),
                priority_class_name: Some("batch-low".into()),
                pod_labels: [("team".to_string(), "pipeline".to_string())].into(),
                service_account_annotations: [("eks.amazonaws.com/role-arn".to_string(), "arn".to_string())].into(),
                ..Default::default()
            },
            ..Default::default()
        });
        // embeddings explicitly enabled is the default
        s.embeddings = Some(exrscan_crds::EmbeddingsSpec { enabled: true });
        assert_eq!(run_id(&s), base);
    }

    /// A scan applied before an operator upgrade must keep its run hash after it, or every
    /// existing scan would run again: a field added to the source or sink (even an optional
    /// one that serialises a default) changes these. Change them only with a migration.
    #[test]
    fn golden() {
        let manifest = serde_json::json!({
            "source": {"bucket": "renders", "prefix": "show/"},
            "sink": {"flight": {"endpoint": "db:443"}},
            "shards": 4,
        });
        let spec: ExrScanSpec = serde_json::from_value(manifest).expect("spec");
        assert_eq!(run_id(&spec), GOLDEN[0]);
        let manifest = serde_json::json!({
            "source": {"bucket": "renders", "prefix": "show/", "endpoint": "https://s3.example.com",
                       "region": "eu-west-1", "forcePathStyle": true, "credentialsSecret": "s3",
                       "include": ["*.exr"], "exclude": ["tmp/*"]},
            "sink": {"flight": {"endpoint": "db:443", "tls": {"caSecret": "ca"}, "credentialsSecret": "db",
                                "schema": "vfx", "tablePrefix": "exr_"}},
            "shards": 16,
            "embeddings": {"enabled": false},
            "rescan": "2026-01-01",
        });
        let spec: ExrScanSpec = serde_json::from_value(manifest.clone()).expect("spec");
        assert_eq!(run_id(&spec), GOLDEN[1]);
        // The production pod settings, the S3 CA and the failure threshold are not in it.
        let mut production = manifest;
        production["source"]["caSecret"] = "s3-ca".into();
        production["maxFailedFiles"] = 10.into();
        production["worker"] = serde_json::json!({
            "imagePullSecrets": [{"name": "registry"}], "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists"}], "priorityClassName": "batch-low",
            "affinity": {"nodeAffinity": {}}, "podLabels": {"team": "vfx"}, "podAnnotations": {"a": "b"},
            "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"},
        });
        let spec: ExrScanSpec = serde_json::from_value(production).expect("spec");
        assert_eq!(run_id(&spec), GOLDEN[1]);
    }

    const GOLDEN: [&str; 2] = ["440b06ee", "9880d23b"];
}
