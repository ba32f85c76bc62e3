//! `exrscan-operator run` settings: flags, else environment variables, else defaults.

use std::net::SocketAddr;
use std::time::Duration;

use exrscan_crds::WorkerPodSettings;

use crate::telemetry::LogFormat;

/// Settings of the controller.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    /// Namespaces to watch, comma-separated (default: all namespaces).
    #[arg(long, env = "EXRSCAN_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Worker image of scans that do not set spec.worker.image.
    #[arg(long, env = "EXRSCAN_WORKER_IMAGE", default_value = concat!("ghcr.io/exrscan/exrscan:", env!("CARGO_PKG_VERSION")))]
    pub worker_image: String,
    /// Worker pod settings of scans that do not set their own in spec.worker, as JSON with
    /// the fields of spec.worker's pod settings (imagePullSecrets, nodeSelector, tolerations,
    /// affinity, priorityClassName, podLabels, podAnnotations, serviceAccountAnnotations).
    #[arg(long, env = "EXRSCAN_WORKER_POD_DEFAULTS", value_name = "JSON", value_parser = parse_worker_pod_defaults)]
    pub worker_pod_defaults: Option<WorkerPodSettings>,
    /// Seconds between re-checks of finished scans.
    #[arg(long, env = "EXRSCAN_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between re-checks of active scans (pod and Job changes trigger them sooner).
    #[arg(long, env = "EXRSCAN_ACTIVE_RESYNC_SECONDS", default_value_t = 30)]
    pub active_resync_seconds: u64,
    /// Seconds between two reconciles of a running scan, whatever changes in between (its
    /// status, and so its counts, is written at most this often).
    #[arg(long, env = "EXRSCAN_RUNNING_INTERVAL_SECONDS", default_value_t = 2)]
    pub running_interval_seconds: u64,
    /// Least seconds between two progress reports of one shard (runs of more than 50
    /// shards at once report less often: 50 writes per second per run at most).
    #[arg(long, env = "EXRSCAN_PROGRESS_INTERVAL_SECONDS", default_value_t = 5)]
    pub progress_interval_seconds: u64,
    /// Scans reconciled at once.
    #[arg(long, env = "EXRSCAN_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "EXRSCAN_METRICS_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_address: SocketAddr,
    /// Elect a leader on a Lease (disable only when running a single replica).
    #[arg(long, env = "EXRSCAN_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "EXRSCAN_LEASE_NAME", default_value = "exrscan-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the operator pod's namespace, else `default`).
    #[arg(long, env = "EXRSCAN_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a leader's Lease lasts without renewal.
    #[arg(long, env = "EXRSCAN_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// This replica's identity on the Lease (default: POD_NAME, else hostname and pid).
    #[arg(long, env = "EXRSCAN_IDENTITY")]
    pub identity: Option<String>,
    /// Seconds a pod may wait for a reason waiting does not cure (missing Secret, image pull
    /// error) before its scan fails with that reason.
    #[arg(long, env = "EXRSCAN_STUCK_POD_SECONDS", default_value_t = 300)]
    pub stuck_pod_seconds: u64,
    /// Log format.
    #[arg(long, env = "EXRSCAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl RunConfig {
    /// Requeue interval of finished scans.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds.max(1))
    }

    /// Requeue interval of active scans.
    pub fn active_resync(&self) -> Duration {
        Duration::from_secs(self.active_resync_seconds.max(1))
    }

    /// Least time between two reconciles of a running scan.
    pub fn running_interval(&self) -> Duration {
        Duration::from_secs(self.running_interval_seconds)
    }

    /// Least interval between two progress reports of one shard.
    pub fn progress_interval(&self) -> Duration {
        Duration::from_secs(self.progress_interval_seconds)
    }

    /// How long a pod may fail to start before its scan fails.
    pub fn stuck_pod_grace(&self) -> Duration {
        Duration::from_secs(self.stuck_pod_seconds)
    }

    /// The Lease's namespace.
    pub fn lease_namespace(&self) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".to_string())
    }

    /// This replica's identity.
    pub fn identity(&self) -> String {
        self.identity.clone().or_else(|| std::env::var("POD_NAME").ok()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    }
}

/// Why `--worker-pod-defaults` was refused.
#[derive(Debug, thiserror::Error)]
pub enum PodDefaultsError {
    /// Not JSON of the pod settings.
    #[error("not a JSON object of worker pod settings: {0}")]
    Json(#[from] serde_json::Error),
    /// A field the pod settings do not have (a typo would otherwise be ignored).
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// A pod label that would replace one of the operator's or the Job controller's.
    #[error("podLabels must not set `{0}`: the operator and the Job controller set it")]
    ReservedLabel(String),
}

/// Parses `--worker-pod-defaults`: every field must be one of the pod settings' (empty
/// values are ignored), and no pod label may be the operator's.
pub fn parse_worker_pod_defaults(text: &str) -> Result<WorkerPodSettings, PodDefaultsError> {
    let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)?;
    let mut settings: WorkerPodSettings = serde_json::from_value(given.clone().into())?;
    settings.priority_class_name = settings.priority_class_name.filter(|p| !p.is_empty());
    let known = serde_json::to_value(&settings)?;
    let is_empty = |v: &serde_json::Value| match v {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if let Some((field, _)) = given.iter().find(|(k, v)| !is_empty(v) && known.get(k.as_str()).is_none()) {
        return Err(PodDefaultsError::UnknownField(field.clone()));
    }
    if let Some(key) = settings.pod_labels.keys().find(|k| exrscan_crds::is_reserved_label(k)) {
        return Err(PodDefaultsError::ReservedLabel(key.clone()));
    }
    Ok(settings)
}

/// Longest wait for the answer to one API request (other than a watch).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `config` with `timeout` on connecting, sending and reading each response.
pub fn with_timeouts(mut config: kube::Config, timeout: Duration) -> kube::Config {
    config.connect_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    // Counted from each request, not from when its pooled connection went idle.
    config.reset_reader_on_write = true;
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunConfig,
    }

    #[test]
    fn defaults_and_flags() {
        let c = Cli::try_parse_from(["x"]).expect("defaults parse").run;
        assert!(c.namespaces.is_empty());
        assert_eq!(c.resync(), Duration::from_secs(300));
        assert!(c.leader_election);
        assert_eq!(c.lease_name, "exrscan-operator");
        assert_eq!(c.stuck_pod_grace(), Duration::from_secs(300));
        let c = Cli::try_parse_from([
            "x",
            "--namespaces",
            "a,b",
            "--leader-election",
            "false",
            "--lease-duration-seconds",
            "3",
        ])
        .expect("flags parse")
        .run;
        assert_eq!(c.namespaces, ["a", "b"]);
        assert!(!c.leader_election);
        assert_eq!(c.lease_duration_seconds, 3);
    }

    #[test]
    fn worker_pod_defaults_are_checked() {
        let json = r#"{"nodeSelector":{"pool":"batch"},"tolerations":[{"key":"batch","operator":"Exists"}],
            "priorityClassName":"","affinity":{},"podLabels":{"team":"pipeline"},
            "serviceAccountAnnotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::1:role/r"}}"#;
        let c = Cli::try_parse_from(["x", "--worker-pod-defaults", json]).expect("defaults parse").run;
        let pod = c.worker_pod_defaults.expect("defaults");
        assert_eq!(pod.node_selector.get("pool").map(String::as_str), Some("batch"));
        assert_eq!(pod.tolerations.map(|t| t.len()), Some(1));
        assert_eq!(pod.priority_class_name, None, "an empty name is no name");
        assert_eq!(pod.pod_labels.get("team").map(String::as_str), Some("pipeline"));
        assert!(Cli::try_parse_from(["x"]).expect("parse").run.worker_pod_defaults.is_none());
        for (bad, why) in [
            (r#"{"nodeSelectors":{"pool":"batch"}}"#, "unknown field `nodeSelectors`"),
            (r#"{"podLabels":{"exrscan.dev/run":"x"}}"#, "podLabels must not set `exrscan.dev/run`"),
            (r#"{"podLabels":{"app.kubernetes.io/managed-by":"me"}}"#, "podLabels must not set"),
            (r#"{"tolerations":"all"}"#, "not a JSON object of worker pod settings"),
            ("[]", "not a JSON object"),
        ] {
            let error = Cli::try_parse_from(["x", "--worker-pod-defaults", bad]).err().expect(bad).to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
