//! `status.conditions` from the phase, following Kubernetes conventions: every condition is
//! always present, `lastTransitionTime` moves only when its status flips, and
//! `observedGeneration` says which spec it describes.
//!
//! `Ready`, `Progressing`, `Complete` and `Failed` describe the run; `Reconciling` and
//! `Stalled` are the abnormal-true pair that kstatus (Flux, `kubectl wait`, cli-utils) reads:
//! a running scan is in progress, a failed one has failed, a finished one is current.

use exrscan_crds::Phase;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The phase of a run and why, as the operator concluded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The phase.
    pub phase: Phase,
    /// CamelCase reason (`Planning`, `ShardFailed`, …).
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// The run's Jobs are to be ended once this outcome is recorded (their pods cannot start,
    /// or too many files failed).
    pub stop_jobs: bool,
}

impl Outcome {
    /// An outcome.
    pub fn new(phase: Phase, reason: &str, message: impl Into<String>) -> Outcome {
        Outcome { phase, reason: reason.to_string(), message: message.into(), stop_jobs: false }
    }

    /// This outcome, ending the run's Jobs once it is recorded.
    pub fn stopping_jobs(self) -> Outcome {
        Outcome { stop_jobs: true, ..self }
    }
}

/// The conditions for `outcome`, keeping the transition times of `previous` where a
/// condition's status did not change.
pub fn conditions(outcome: &Outcome, previous: &[Condition], generation: Option<i64>, now: &Time) -> Vec<Condition> {
    let o = outcome;
    let active = matches!(o.phase, Phase::Pending | Phase::Planning | Phase::Running);
    let (progressing_reason, progressing_message) =
        if active { (o.reason.as_str(), o.message.as_str()) } else { (o.phase.as_str(), o.message.as_str()) };
    let desired: [(&str, bool, &str, &str); 6] = [
        ("Ready", matches!(o.phase, Phase::Succeeded | Phase::Scheduled), o.reason.as_str(), o.message.as_str()),
        ("Progressing", active, progressing_reason, progressing_message),
        ("Complete", o.phase == Phase::Succeeded, o.phase.as_str(), o.message.as_str()),
        ("Failed", o.phase == Phase::Failed, o.reason.as_str(), o.message.as_str()),
        ("Reconciling", active, o.reason.as_str(), o.message.as_str()),
        ("Stalled", o.phase == Phase::Failed, o.reason.as_str(), o.message.as_str()),
    ];
    desired
        .into_iter()
        .map(|(type_, on, reason, message)| {
            let status = if on { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message: message.to_string(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The conditions of a scan whose reconcile fails (`reason`: what the API server or the
/// operator said, e.g. `QuotaExceeded`, `Forbidden`, `AdmissionDenied`): `Stalled` and not
/// `Ready` or `Reconciling`, so that kstatus reads the scan as failed, not current, until a
/// reconcile succeeds again (which recomputes every condition). The others stay as they were.
pub fn blocked(
    reason: &str,
    message: &str,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut result = previous.to_vec();
    for (type_, on) in [("Ready", false), ("Reconciling", false), ("Stalled", true)] {
        let status = if on { "True" } else { "False" };
        let condition = Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: generation,
            last_transition_time: previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
        };
        match result.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = condition,
            None => result.push(condition),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).expect("time"))
    }

    fn get<'a>(c: &'a [Condition], t: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == t).expect("condition present")
    }

    #[test]
    fn running_then_succeeded() {
        let running = conditions(&Outcome::new(Phase::Running, "Running", "2/4 shards"), &[], Some(1), &at(100));
        assert_eq!(running.len(), 6);
        assert_eq!(get(&running, "Ready").status, "False");
        assert_eq!(get(&running, "Progressing").status, "True");
        assert_eq!(get(&running, "Reconciling").status, "True");
        assert_eq!(get(&running, "Complete").status, "False");

        // Same status later: transition times stay.
        let still = conditions(&Outcome::new(Phase::Running, "Running", "3/4 shards"), &running, Some(1), &at(200));
        assert_eq!(get(&still, "Progressing").last_transition_time, at(100));
        assert_eq!(get(&still, "Progressing").message, "3/4 shards");

        let done = conditions(&Outcome::new(Phase::Succeeded, "Succeeded", "4/4"), &still, Some(2), &at(300));
        assert_eq!(get(&done, "Ready").status, "True");
        assert_eq!(get(&done, "Ready").last_transition_time, at(300));
        assert_eq!(get(&done, "Complete").status, "True");
        assert_eq!(get(&done, "Progressing").status, "False");
        assert_eq!(get(&done, "Progressing").reason, "Succeeded");
        assert_eq!(get(&done, "Reconciling").status, "False");
        assert_eq!(get(&done, "Failed").status, "False");
        assert_eq!(get(&done, "Failed").last_transition_time, at(100), "Failed stayed False");
        assert!(done.iter().all(|c| c.observed_generation == Some(2)));
    }

    #[test]
    fn failed_is_stalled() {
        let c = conditions(&Outcome::new(Phase::Failed, "ShardFailed", "shard 2 failed"), &[], Some(1), &at(5));
        assert_eq!(get(&c, "Failed").status, "True");
        assert_eq!(get(&c, "Failed").reason, "ShardFailed");
        assert_eq!(get(&c, "Stalled").status, "True");
        assert_eq!(get(&c, "Ready").status, "False");
        assert_eq!(get(&c, "Ready").reason, "ShardFailed");
    }

    #[test]
    fn suspended_is_neither_progressing_nor_failed() {
        let c = conditions(&Outcome::new(Phase::Suspended, "Suspended", "spec.suspend is true"), &[], None, &at(5));
        for t in ["Ready", "Progressing", "Complete", "Failed", "Reconciling", "Stalled"] {
            assert_eq!(get(&c, t).status, "False", "{t}");
        }
        assert_eq!(get(&c, "Progressing").reason, "Suspended");
    }

    #[test]
    fn a_failing_reconcile_is_stalled_until_one_succeeds() {
        let running = conditions(&Outcome::new(Phase::Planning, "Planning", "listing"), &[], Some(1), &at(5));
        let c = blocked("QuotaExceeded", "exceeded quota: jobs", &running, Some(1), &at(9));
        assert_eq!((get(&c, "Stalled").status.as_str(), get(&c, "Stalled").reason.as_str()), ("True", "QuotaExceeded"));
        assert_eq!(get(&c, "Stalled").last_transition_time, at(9));
        assert_eq!(get(&c, "Reconciling").status, "False", "kstatus reads Reconciling before Stalled");
        assert_eq!(get(&c, "Ready").status, "False");
        assert_eq!(get(&c, "Progressing").status, "True", "the others stay");
        let again = blocked("QuotaExceeded", "exceeded quota: jobs", &c, Some(1), &at(20));
        assert_eq!(again, c, "a repeated failure writes nothing new");
        let recovered = conditions(&Outcome::new(Phase::Planning, "Planning", "listing"), &again, Some(1), &at(30));
        assert_eq!(get(&recovered, "Stalled").status, "False");
        assert_eq!(get(&recovered, "Reconciling").status, "True");
    }
}
