//! `exrscan-operator run` settings: flags, else environment variables, else defaults.

use std::net::SocketAddr;
use std::time::Duration;

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
}
