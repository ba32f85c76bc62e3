//! What a worker pod reports about itself (the worker contract, `docs/worker-contract.md`):
//! its progress under its shard index in its run's progress ConfigMap while it runs (and
//! its final counts when it ends), and its summary in the container's termination message.
//! Both are a [`ShardReport`].

use serde::{Deserialize, Serialize};

use crate::status::{Counts, Failure};

/// Largest termination message Kubernetes keeps (bytes).
pub const MAX_SUMMARY_BYTES: usize = 4096;

/// A shard's counts so far (progress) or in total (summary).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    /// Objects handled so far.
    #[serde(default)]
    pub counts: Counts,
    /// A sample of objects that could not be indexed (summaries only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    /// Why the shard failed, in one line (summaries of failed shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ShardReport {
    /// Parses a progress entry or termination message; `None` if it is not a report
    /// (a crashed process may leave anything there).
    pub fn parse(text: &str) -> Option<ShardReport> {
        serde_json::from_str(text.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_and_unknown_fields() {
        let r = ShardReport::parse(r#"{"counts":{"processed":5,"bytesRead":10},"extra":1}"#).expect("a report");
        assert_eq!(r.counts.processed, 5);
        assert_eq!(r.counts.bytes_read, 10);
        assert_eq!(r.counts.inserted, 0);
        assert!(ShardReport::parse("panicked at main.rs").is_none());
    }
}
