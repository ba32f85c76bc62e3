//! Live status of a run: the shards' reports in the run's progress ConfigMaps (each
//! worker's latest counts, final once its index completed; they outlive the pods), the
//! failed pods' termination messages (why an attempt failed), and the Job's per-index
//! bookkeeping.

use std::collections::BTreeMap;
use std::time::Duration;

use exrscan_crds::report::ShardReport;
use exrscan_crds::status::MAX_FAILURES;
use exrscan_crds::{Counts, Failure, ShardCounts};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::names;
use crate::objects::progress::REPORTED_KEY;

/// One failed pod of a run (one failed attempt at a shard).
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The shard index (`batch.kubernetes.io/job-completion-index`); 0 for the planner.
    pub index: i32,
    /// Failures of this index before this pod (`batch.kubernetes.io/job-index-failure-count`):
    /// with the index, it names the attempt.
    pub previous_failures: u32,
    /// Its summary, if it wrote one.
    pub report: Option<ShardReport>,
    /// Exit code of the worker container, once terminated.
    pub exit_code: Option<i32>,
    /// The container's termination message when it is not a [`ShardReport`] (a crash's log tail).
    pub message: Option<String>,
    /// The pod's name.
    pub pod: String,
    /// When the container finished (RFC 3339), for ordering failures.
    pub finished_at: Option<String>,
}

impl Attempt {
    /// Reads a failed pod of a run.
    pub fn of(pod: &Pod) -> Attempt {
        let terminated: Option<&ContainerStateTerminated> = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == names::CONTAINER))
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let summary = terminated.and_then(|t| t.message.as_deref());
        Attempt {
            index: annotation(pod, names::COMPLETION_INDEX_ANNOTATION).unwrap_or(0),
            previous_failures: annotation(pod, names::INDEX_FAILURE_COUNT_ANNOTATION).unwrap_or(0),
            report: summary.and_then(ShardReport::parse),
            exit_code: terminated.map(|t| t.exit_code),
            message: summary.filter(|m| ShardReport::parse(m).is_none()).map(crash_line).filter(|m| !m.is_empty()),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            finished_at: terminated.and_then(|t| t.finished_at.as_ref()).map(|t| t.0.to_string()),
        }
    }

    /// Why this attempt failed, in one line.
    pub fn failure_reason(&self) -> String {
        let code = self.exit_code.map_or_else(|| "no exit code".to_string(), |c| format!("exit code {c}"));
        match (self.report.as_ref().and_then(|r| r.error.as_deref()), self.message.as_deref()) {
            (Some(e), _) | (None, Some(e)) => format!("{code}: {}", last_line(e)),
            (None, None) => code,
        }
    }
}

/// The number in annotation `name` of `pod`.
fn annotation<T: std::str::FromStr>(pod: &Pod, name: &str) -> Option<T> {
    pod.metadata.annotations.as_ref()?.get(name)?.parse().ok()
}

/// The failed attempts among `pods` (phase `Failed`), oldest first. Pods the cluster
/// disrupted (condition `DisruptionTarget`: eviction, preemption, a drained node) are not
/// failures of the shard: the Job retries them without counting, and so does this.
pub fn failed_attempts(pods: &[Pod]) -> Vec<Attempt> {
    let mut failed: Vec<Attempt> = pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed") && !disrupted(p))
        .map(Attempt::of)
        .collect();
    failed.sort_by(|a, b| (&a.finished_at, &a.pod).cmp(&(&b.finished_at, &b.pod)));
    failed
}

fn disrupted(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "DisruptionTarget" && c.status == "True"))
}

/// What the shards of a run reported, summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Counts summed over shards (each shard's latest report).
    pub counts: Counts,
    /// A bounded sample of objects that could not be indexed.
    pub failures: Vec<Failure>,
}

/// Sums the shard reports in a run's progress ConfigMaps (keys that are shard indexes;
/// entries that are not reports are ignored).
pub fn sum(maps: &[ConfigMap]) -> Progress {
    let mut progress = Progress::default();
    let entries = maps.iter().filter_map(|m| m.data.as_ref()).flatten();
    for (key, value) in entries {
        if key.parse::<u32>().is_err() {
            continue;
        }
        let Some(report) = ShardReport::parse(value) else { continue };
        progress.counts += report.counts;
        let room = MAX_FAILURES.saturating_sub(progress.failures.len());
        progress.failures.extend(report.failures.into_iter().take(room));
    }
    progress
}

/// The ShardFailed Events already published for the shards of progress map `map`: per
/// shard index, how many of its failed attempts were reported.
pub fn reported(map: &ConfigMap) -> BTreeMap<i32, u32> {
    map.data.as_ref().and_then(|d| d.get(REPORTED_KEY)).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default()
}

/// The progress map (its position in the run's list) holding shard `index`.
pub fn map_of(index: i32) -> usize {
    usize::try_from(index / names::SHARDS_PER_PROGRESS_MAP).unwrap_or(0)
}

/// The shard counts of an Indexed Job. Its failed pods are the Job controller's durable
/// count (pods disrupted by the cluster are not counted; deleting pods does not lower it).
pub fn shard_counts(job: &Job, total: i32) -> ShardCounts {
    let status = job.status.as_ref();
    let succeeded = status
        .and_then(|s| s.completed_indexes.as_deref())
        .map(count_indexes)
        .or_else(|| status.and_then(|s| s.succeeded))
        .unwrap_or(0);
    let failed = status.and_then(|s| s.failed_indexes.as_deref()).map(count_indexes).unwrap_or(0);
    ShardCounts {
        total,
        active: status.and_then(|s| s.active).unwrap_or(0),
        succeeded,
        failed,
        failed_attempts: status.and_then(|s| s.failed).unwrap_or(0),
        summary: format!("{succeeded}/{total}"),
    }
}

/// Counts the indexes of a Job's interval list (`"0-2,5,7-8"` → 6).
pub fn count_indexes(list: &str) -> i32 {
    list.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| match part.trim().split_once('-') {
            Some((a, b)) => match (a.parse::<i32>(), b.parse::<i32>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => i32::from(part.trim().parse::<i32>().is_ok()),
        })
        .sum()
}

/// Why a container waits that waiting does not cure: the pod cannot start as specified (a
/// missing Secret or key, a bad image reference, an image that cannot be pulled).
pub const STUCK_REASONS: [&str; 6] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// A pod that cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// The pod's name.
    pub pod: String,
    /// Its container's waiting reason (one of [`STUCK_REASONS`]).
    pub reason: String,
    /// The kubelet's message (e.g. which Secret is missing).
    pub message: String,
}

/// The first pod among `pods` that has not stopped, is older than `grace` and whose worker
/// container waits for one of [`STUCK_REASONS`].
pub fn stuck(pods: &[Pod], now: Timestamp, grace: Duration) -> Option<Stuck> {
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    pods.iter().find_map(|pod| {
        let created = pod.metadata.creation_timestamp.as_ref()?.0;
        if now.as_second().saturating_sub(created.as_second()) < grace {
            return None;
        }
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let waiting = status
            .container_statuses
            .as_ref()?
            .iter()
            .find(|c| c.name == names::CONTAINER)?
            .state
            .as_ref()?
            .waiting
            .as_ref()?;
        let reason = waiting.reason.as_deref().filter(|r| STUCK_REASONS.contains(r))?;
        Some(Stuck {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            reason: reason.to_string(),
            message: waiting.message.clone().unwrap_or_default(),
        })
    })
}

/// The telling line of a crashed process's log tail: a Rust panic's message, else the last
/// line that is not a `note:`.
fn crash_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if let Some(i) = lines.iter().position(|l| l.contains("panicked at"))
        && let Some(message) = lines.get(i + 1)
    {
        return format!("panicked: {message}");
    }
    lines.iter().rev().find(|l| !l.starts_with("note:")).map(|l| l.to_string()).unwrap_or_default()
}

fn last_line(text: &str) -> &str {
    text.trim().lines().last().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobStatus;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn pod(name: &str, index: i32, phase: &str, terminated: Option<(i32, &str, i64)>) -> Pod {
        let annotations = BTreeMap::from([
            (names::COMPLETION_INDEX_ANNOTATION.to_string(), index.to_string()),
            (names::INDEX_FAILURE_COUNT_ANNOTATION.to_string(), "1".to_string()),
        ]);
        let state = terminated.map(|(code, message, at)| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                message: Some(message.to_string()),
                finished_at: Some(Time(Timestamp::from_second(at).expect("time"))),
                ..Default::default()
            }),
            ..Default::default()
        });
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), annotations: Some(annotations), ..Default::default() },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(vec![ContainerStatus { name: "worker".into(), state, ..Default::default() }]),
                ..Default::default()
            }),
        }
    }

    fn map(entries: &[(&str, String)]) -> ConfigMap {
        ConfigMap {
            data: Some(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn sums_each_shards_latest_report() {
        let maps = [
            map(&[
                (
                    "0",
                    r#"{"counts":{"discovered":10,"processed":10,"inserted":6,"unchanged":4,"bytesRead":100},"failures":[{"key":"a.exr","reason":"truncated"}]}"#.into(),
                ),
                ("1", r#"{"counts":{"processed":3,"inserted":3,"bytesRead":30}}"#.into()),
                (REPORTED_KEY, r#"{"1":2}"#.into()),
                ("2", "not a report".into()),
            ]),
            map(&[("200", r#"{"counts":{"processed":1,"failed":1}}"#.into())]),
        ];
        let progress = sum(&maps);
        assert_eq!(progress.counts.processed, 14);
        assert_eq!(progress.counts.inserted, 9);
        assert_eq!(progress.counts.unchanged, 4);
        assert_eq!(progress.counts.failed, 1);
        assert_eq!(progress.counts.discovered, 10);
        assert_eq!(progress.counts.bytes_read, 130);
        assert_eq!(progress.failures, vec![Failure { key: "a.exr".into(), reason: "truncated".into() }]);
        assert_eq!(reported(&maps[0]), BTreeMap::from([(1, 2)]));
        assert!(reported(&maps[1]).is_empty());
        assert_eq!((map_of(199), map_of(200)), (0, 1));
    }

    #[test]
    fn failed_attempts_are_the_failed_pods_not_disrupted() {
        let mut evicted = pod("s3-a", 3, "Failed", Some((143, "terminated", 5)));
        if let Some(status) = evicted.status.as_mut() {
            status.conditions = Some(vec![k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                ..Default::default()
            }]);
        }
        let pods = vec![
            pod("s0-a", 0, "Failed", Some((3, r#"{"counts":{"processed":4},"error":"S3 unreachable"}"#, 10))),
            pod("s0-b", 0, "Succeeded", Some((0, r#"{"counts":{"processed":10}}"#, 20))),
            pod("s2-a", 2, "Failed", Some((137, "thread main panicked\nout of memory", 15))),
            pod("s1-a", 1, "Running", None),
            evicted,
        ];
        let failed = failed_attempts(&pods);
        let seen: Vec<_> =
            failed.iter().map(|a| (a.pod.as_str(), a.index, a.previous_failures, a.failure_reason())).collect();
        assert_eq!(
            seen,
            vec![
                ("s0-a", 0, 1, "exit code 3: S3 unreachable".to_string()),
                ("s2-a", 2, 1, "exit code 137: out of memory".to_string())
            ]
        );
    }

    #[test]
    fn crash_logs_give_their_panic_message() {
        let log = "INFO plan made\n\nthread 'main' panicked at src/x.rs:1:2:\n\nno CryptoProvider\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(crash_line(log), "panicked: no CryptoProvider");
        assert_eq!(crash_line("a\nkilled\nnote: x\n"), "killed");
    }

    #[test]
    fn failures_are_bounded() {
        let failures: Vec<String> = (0..50).map(|i| format!(r#"{{"key":"k{i}","reason":"bad"}}"#)).collect();
        let summary = format!(r#"{{"counts":{{"failed":50}},"failures":[{}]}}"#, failures.join(","));
        let entries: Vec<(&str, String)> = vec![("0", summary.clone()), ("1", summary.clone()), ("2", summary)];
        let progress = sum(&[map(&entries)]);
        assert_eq!(progress.counts.failed, 150);
        assert_eq!(progress.failures.len(), MAX_FAILURES);
    }

    #[test]
    fn index_lists() {
        assert_eq!(count_indexes(""), 0);
        assert_eq!(count_indexes("3"), 1);
        assert_eq!(count_indexes("0-2,5,7-8"), 6);
        assert_eq!(count_indexes("x,2-1"), 0);
    }

    #[test]
    fn shard_counts_from_job_status() {
        let job = Job {
            status: Some(JobStatus {
                active: Some(1),
                failed: Some(4),
                completed_indexes: Some("0-1,3".into()),
                failed_indexes: Some("2".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = shard_counts(&job, 5);
        assert_eq!((c.total, c.active, c.succeeded, c.failed, c.failed_attempts), (5, 1, 3, 1, 4));
        assert_eq!(c.summary, "3/5");
    }

    #[test]
    fn pods_that_cannot_start_are_stuck_after_the_grace_period() {
        use k8s_openapi::api::core::v1::ContainerStateWaiting;
        let waiting = |reason: &str, created: i64| {
            let mut p = pod("renders-x-0-abc", 0, "Pending", None);
            p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).expect("time")));
            p.status = Some(PodStatus {
                phase: Some("Pending".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: names::CONTAINER.into(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(reason.into()),
                            message: Some("secret \"s3-creds\" not found".into()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            p
        };
        let now = Timestamp::from_second(1_000).expect("time");
        let grace = Duration::from_secs(60);
        let found = stuck(&[waiting("CreateContainerConfigError", 900)], now, grace).expect("stuck");
        assert_eq!(found.reason, "CreateContainerConfigError");
        assert!(found.message.contains("s3-creds"));
        assert!(stuck(&[waiting("CreateContainerConfigError", 950)], now, grace).is_none(), "within the grace");
        assert!(stuck(&[waiting("ContainerCreating", 100)], now, grace).is_none(), "waiting that cures itself");
        assert!(stuck(&[waiting("ImagePullBackOff", 100)], now, grace).is_some());
    }
}
