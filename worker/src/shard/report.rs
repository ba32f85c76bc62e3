//! What a shard reports about itself (`docs/worker-contract.md`): its counts so far (and a
//! few failures) in its key of the run's progress ConfigMap while it runs and once more when
//! it ends, and its final summary, one JSON object of at most 4 KiB (the kubelet's limit on
//! a termination message), in the termination-message file.
//!
//! Both have the shape the operator parses (`{"counts":{…},"failures":[…],"error":…}`,
//! camelCase); the summary adds the shard index, its outcome, and request counts.

use std::path::Path;

use serde::Serialize;

use super::Outcome;
use crate::scan::{Counts, Failure, Summary};
use crate::source::s3::S3Counts;

/// Largest termination message Kubernetes keeps.
pub const MAX_REPORT_BYTES: usize = 4096;
/// Largest progress entry: a progress ConfigMap holds 200 shards' entries, well under the
/// 1 MiB object limit.
pub const MAX_PROGRESS_BYTES: usize = 2048;
/// Longest key or failure reason kept in the report.
const MAX_TEXT_CHARS: usize = 160;

/// A shard's counts as the operator sums them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCounts {
    /// Objects the listing kept (the include/exclude globs).
    pub discovered: u64,
    /// Objects handled: `inserted + unchanged + failed`.
    pub processed: u64,
    /// Objects written to the catalog.
    pub inserted: u64,
    /// Objects already in the catalog (skipped unread when the listing proved it).
    pub unchanged: u64,
    /// Objects that could not be indexed (damaged, not EXR, vanished).
    pub failed: u64,
    /// Header bytes read from S3.
    pub bytes_read: u64,
}

impl From<Counts> for ReportCounts {
    fn from(c: Counts) -> Self {
        Self {
            discovered: c.discovered,
            processed: c.inserted + c.unchanged + c.failed,
            inserted: c.inserted,
            unchanged: c.unchanged,
            failed: c.failed,
            bytes_read: c.bytes_read,
        }
    }
}

/// A shard's progress entry: `{"counts":{…},"failures":[…]}`, the first failures shortened
/// and dropped from the end until it fits [`MAX_PROGRESS_BYTES`].
pub fn progress_json(counts: Counts, failures: &[Failure]) -> String {
    let mut failures: Vec<Failure> = failures
        .iter()
        .map(|f| Failure { key: shorten(&f.key, MAX_TEXT_CHARS), reason: shorten(&f.reason, MAX_TEXT_CHARS) })
        .collect();
    loop {
        let mut entry = serde_json::json!({ "counts": ReportCounts::from(counts) });
        if !failures.is_empty() {
            entry["failures"] = serde_json::json!(failures);
        }
        let text = entry.to_string();
        if text.len() <= MAX_PROGRESS_BYTES || failures.is_empty() {
            return text;
        }
        failures.pop();
    }
}

/// What a shard did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Counts of the whole run.
    pub counts: ReportCounts,
    /// The first failures (key and reason); fewer when the report would exceed 4 KiB.
    pub failures: Vec<Failure>,
    /// Why the shard stopped, if it did not finish.
    pub error: Option<String>,
    /// Shard index.
    pub shard: u32,
    /// Shards in the plan.
    pub shards: u32,
    /// `done`, `config`, `unavailable`, `interrupted` or `credentials` (exit code 0, 2, 3, 3, 4).
    pub outcome: &'static str,
    /// Headers read and parsed.
    pub headers_read: u64,
    /// Rows written over the four tables.
    pub rows_written: u64,
    /// Batches written.
    pub batches: u64,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// S3 requests.
    pub s3: S3Counts,
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

impl Report {
    /// The report of shard `shard` of `shards` from the scan's summary.
    pub fn new(shard: u32, shards: u32, outcome: &Outcome, summary: &Summary, s3: S3Counts) -> Self {
        Self {
            counts: summary.counts.into(),
            failures: summary
                .failures
                .iter()
                .map(|f| Failure { key: shorten(&f.key, MAX_TEXT_CHARS), reason: shorten(&f.reason, MAX_TEXT_CHARS) })
                .collect(),
            error: outcome.error().map(|e| shorten(e, 600)),
            shard,
            shards,
            outcome: outcome.name(),
            headers_read: summary.counts.processed,
            rows_written: summary.rows_written,
            batches: summary.batches,
            elapsed_s: (summary.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            s3,
        }
    }

    /// The report as one line of JSON of at most [`MAX_REPORT_BYTES`], dropping failure
    /// examples from the end until it fits.
    pub fn to_json(&self) -> String {
        let mut report = self.clone();
        loop {
            let text = serde_json::to_string(&report).unwrap_or_default();
            if text.len() <= MAX_REPORT_BYTES || report.failures.is_empty() {
                return text;
            }
            report.failures.pop();
        }
    }

    /// Writes the report to `path` (the termination-message file).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn summary(failures: Vec<Failure>) -> Summary {
        Summary {
            counts: Counts { discovered: 300, processed: 80, inserted: 70, unchanged: 20, failed: 200, bytes_read: 1 },
            rows_written: 40,
            batches: 1,
            retries: 0,
            elapsed: Duration::from_millis(1500),
            failures,
        }
    }

    #[test]
    fn has_the_shape_the_operator_reads_and_stays_within_four_kib() {
        let failures = (0..200)
            .map(|i| Failure {
                key: format!("renders/shot{i:04}/{}.exr", "x".repeat(300)),
                reason: "bad magic ".repeat(50),
            })
            .collect();
        let report =
            Report::new(3, 4, &Outcome::Unavailable("e".repeat(5000)), &summary(failures), S3Counts::default());
        let json = report.to_json();
        assert!(json.len() <= MAX_REPORT_BYTES, "{}", json.len());
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["shard"], 3);
        assert_eq!(value["outcome"], "unavailable");
        assert_eq!(value["counts"]["failed"], 200);
        assert_eq!(value["counts"]["processed"], 290, "inserted + unchanged + failed");
        assert_eq!(value["counts"]["bytesRead"], 1);
        assert_eq!(value["headersRead"], 80);
        assert!(value["error"].as_str().is_some_and(|e| e.chars().count() <= 601));
        assert!(!value["failures"].as_array().is_none_or(Vec::is_empty), "keeps some examples");
    }

    #[test]
    fn progress_holds_the_counts_and_a_bounded_failure_sample() {
        let value: serde_json::Value =
            serde_json::from_str(&progress_json(summary(Vec::new()).counts, &[])).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"counts": {"discovered": 300, "processed": 290, "inserted": 70,
            "unchanged": 20, "failed": 200, "bytesRead": 1}})
        );
        let failures: Vec<Failure> = (0..20)
            .map(|i| Failure { key: format!("renders/{i}/{}.exr", "k".repeat(1000)), reason: "bad magic".repeat(40) })
            .collect();
        let text = progress_json(summary(Vec::new()).counts, &failures);
        assert!(text.len() <= MAX_PROGRESS_BYTES, "{}", text.len());
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let kept = value["failures"].as_array().map_or(0, Vec::len);
        assert!((1..20).contains(&kept), "some failures, shortened: {kept}");
    }
}
