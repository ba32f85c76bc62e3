//! Live status of a run from its pods and Job: each shard's progress annotation while it
//! runs, its termination-message summary once it ended, and the Job's per-index bookkeeping.

use std::collections::BTreeMap;
use std::time::Duration;

use exrscan_crds::report::{PROGRESS_ANNOTATION, ShardReport};
use exrscan_crds::status::MAX_FAILURES;
use exrscan_crds::{Counts, Failure, ShardCounts};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::names;

/// How one pod (one attempt at a shard) stands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttemptState {
    /// Failed: its summary (if any) is partial.
    Failed,
    /// Pending or running: its progress annotation is the latest word.
    Running,
    /// Finished its shard: its summary is final.
    Succeeded,
}

/// One pod of a run.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The shard index (`batch.kubernetes.io/job-completion-index`); 0 for the planner.
    pub index: i32,
    /// Where it stands.
    pub state: AttemptState,
    /// Its progress or summary, if it wrote one.
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
    /// Reads a pod of a run.
    pub fn of(pod: &Pod) -> Attempt {
        let annotations = pod.metadata.annotations.as_ref();
        let index = annotations
            .and_then(|a| a.get(names::COMPLETION_INDEX_ANNOTATION))
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let status = pod.status.as_ref();
        let state = match status.and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => AttemptState::Succeeded,
            Some("Failed") => AttemptState::Failed,
            _ => AttemptState::Running,
        };
        let terminated: Option<&ContainerStateTerminated> = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == names::CONTAINER))
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref());
        let summary = terminated.and_then(|t| t.message.as_deref());
        let progress = annotations.and_then(|a| a.get(PROGRESS_ANNOTATION)).map(String::as_str);
        let report = summary.and_then(ShardReport::parse).or_else(|| progress.and_then(ShardReport::parse));
        let message = summary.filter(|m| ShardReport::parse(m).is_none()).map(crash_line).filter(|m| !m.is_empty());
        Attempt {
            index,
            state,
            report,
            exit_code: terminated.map(|t| t.exit_code),
            message,
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

/// What the pods of a run add up to.
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    /// Counts summed over shards (per shard: the succeeded pod's summary, else the running
    /// pod's progress, else the last failed pod's partial summary).
    pub counts: Counts,
    /// A bounded sample of objects that could not be indexed.
    pub failures: Vec<Failure>,
    /// Failed pods, oldest first.
    pub failed_attempts: Vec<Attempt>,
}

/// Adds up the pods of a run.
pub fn aggregate(pods: &[Pod]) -> Aggregate {
    let attempts: Vec<Attempt> = pods.iter().map(Attempt::of).collect();
    let mut best: BTreeMap<i32, &Attempt> = BTreeMap::new();
    for a in &attempts {
        match best.get(&a.index) {
            Some(b) if (b.state.clone(), b.finished_at.clone()) >= (a.state.clone(), a.finished_at.clone()) => {}
            _ => {
                best.insert(a.index, a);
            }
        }
    }
    let mut agg = Aggregate::default();
    for a in best.values() {
        if let Some(r) = &a.report {
            agg.counts += r.counts;
            for f in &r.failures {
                if agg.failures.len() < MAX_FAILURES {
                    agg.failures.push(f.clone());
                }
            }
        }
    }
    let mut failed: Vec<Attempt> = attempts.into_iter().filter(|a| a.state == AttemptState::Failed).collect();
    failed.sort_by(|a, b| (&a.finished_at, &a.pod).cmp(&(&b.finished_at, &b.pod)));
    agg.failed_attempts = failed;
    agg
}

/// The shard counts of an Indexed Job.
pub fn shard_counts(job: &Job, total: i32, failed_attempts: usize) -> ShardCounts {
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
        failed_attempts: i32::try_from(failed_attempts).unwrap_or(i32::MAX),
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

    fn pod(name: &str, index: i32, phase: &str, progress: Option<&str>, terminated: Option<(i32, &str, i64)>) -> Pod {
        let mut annotations = BTreeMap::from([(names::COMPLETION_INDEX_ANNOTATION.to_string(), index.to_string())]);
        if let Some(p) = progress {
            annotations.insert(PROGRESS_ANNOTATION.to_string(), p.to_string());
        }
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

    #[test]
    fn sums_the_best_attempt_of_each_shard() {
        let pods = vec![
            // shard 0: failed once (partial summary), then succeeded
            pod(
                "s0-a",
                0,
                "Failed",
                None,
                Some((3, r#"{"counts":{"processed":4,"inserted":4},"error":"S3 unreachable"}"#, 10)),
            ),
            pod(
                "s0-b",
                0,
                "Succeeded",
                None,
                Some((
                    0,
                    r#"{"counts":{"discovered":10,"processed":10,"inserted":6,"unchanged":4,"bytesRead":100},"failures":[{"key":"a.exr","reason":"truncated"}]}"#,
                    20,
                )),
            ),
            // shard 1: running with a progress annotation
            pod("s1-a", 1, "Running", Some(r#"{"counts":{"processed":3,"inserted":3,"bytesRead":30}}"#), None),
            // shard 2: crashed with a log tail, no summary
            pod("s2-a", 2, "Failed", None, Some((137, "thread main panicked\nout of memory", 15))),
        ];
        let agg = aggregate(&pods);
        assert_eq!(agg.counts.processed, 13);
        assert_eq!(agg.counts.inserted, 9);
        assert_eq!(agg.counts.unchanged, 4);
        assert_eq!(agg.counts.discovered, 10);
        assert_eq!(agg.counts.bytes_read, 130);
        assert_eq!(agg.failures, vec![Failure { key: "a.exr".into(), reason: "truncated".into() }]);
        let failed: Vec<_> = agg.failed_attempts.iter().map(|a| (a.pod.as_str(), a.failure_reason())).collect();
        assert_eq!(
            failed,
            vec![
                ("s0-a", "exit code 3: S3 unreachable".to_string()),
                ("s2-a", "exit code 137: out of memory".to_string())
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
        let pods: Vec<Pod> =
            (0..3).map(|i| pod(&format!("p{i}"), i, "Succeeded", None, Some((0, &summary, 1)))).collect();
        let agg = aggregate(&pods);
        assert_eq!(agg.counts.failed, 150);
        assert_eq!(agg.failures.len(), MAX_FAILURES);
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
                completed_indexes: Some("0-1,3".into()),
                failed_indexes: Some("2".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = shard_counts(&job, 5, 4);
        assert_eq!((c.total, c.active, c.succeeded, c.failed, c.failed_attempts), (5, 1, 3, 1, 4));
        assert_eq!(c.summary, "3/5");
    }

    #[test]
    fn pods_that_cannot_start_are_stuck_after_the_grace_period() {
        use k8s_openapi::api::core::v1::ContainerStateWaiting;
        let waiting = |reason: &str, created: i64| {
            let mut p = pod("renders-x-0-abc", 0, "Pending", None, None);
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
