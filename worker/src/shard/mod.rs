//! The in-pod shard run (`exrscan shard`): the partitions of one shard index of a
//! [`Plan`](crate::plan::Plan) through the scan pipeline, progress patched onto the Pod,
//! and a final [`Report`] in the termination message, with an exit code the Job's pod
//! failure policy can act on ([`Outcome`]).

mod outcome;
pub mod progress;
mod report;

pub use outcome::Outcome;
pub use report::{MAX_REPORT_BYTES, Report, ReportCounts, progress_json};

/// Where the report goes when `EXRSCAN_TERMINATION_LOG` is not set.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The termination-message path: `EXRSCAN_TERMINATION_LOG`, else `/dev/termination-log`.
pub fn termination_log() -> std::path::PathBuf {
    std::env::var_os("EXRSCAN_TERMINATION_LOG").map(Into::into).unwrap_or_else(|| TERMINATION_LOG.into())
}
