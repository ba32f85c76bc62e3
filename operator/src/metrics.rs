//! Prometheus metrics of the operator, served at `/metrics` in the OpenMetrics text format.
//!
//! Counters and the duration histogram are updated by reconciles; the per-phase scan gauge
//! and the file gauges are computed from the controllers' caches at scrape time, so they are
//! exact and cost nothing between scrapes.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exrscan_crds::{ExrScan, Phase};
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::names::Component;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CountLabels {
    count: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    component: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    jobs_created: Family<JobLabels, Counter>,
    scans: Family<PhaseLabels, Gauge>,
    files: Family<CountLabels, Gauge>,
    leader: Gauge<i64, AtomicI64>,
    api_requests: Family<RequestLabels, Counter>,
    stores: Mutex<Vec<Store<ExrScan>>>,
}

impl Metrics {
    /// Registers every metric under the `exrscan_operator` prefix.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("exrscan_operator");
        let reconciles = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let jobs_created = Family::<JobLabels, Counter>::default();
        let scans = Family::<PhaseLabels, Gauge>::default();
        let files = Family::<CountLabels, Gauge>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register("reconciles", "Reconciles of ExrScans", reconciles.clone());
        registry.register("reconcile_errors", "Reconciles that failed, by error kind", errors.clone());
        registry.register("reconcile_duration_seconds", "Duration of reconciles", duration.clone());
        registry.register("jobs_created", "Jobs created, by component (planner, shard)", jobs_created.clone());
        registry.register("scans", "ExrScans by phase", scans.clone());
        registry.register("files", "Objects handled by the current runs of all ExrScans, by count", files.clone());
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        registry.register(
            "api_requests",
            "Requests of the operator to the Kubernetes API, by verb and resource",
            api_requests.clone(),
        );
        Arc::new(Metrics {
            registry,
            reconciles,
            errors,
            duration,
            jobs_created,
            scans,
            files,
            leader,
            api_requests,
            stores: Mutex::new(Vec::new()),
        })
    }

    /// Records one reconcile.
    pub fn observe_reconcile(&self, took: Duration, error: Option<&str>) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
        if let Some(kind) = error {
            self.errors.get_or_create(&ErrorLabels { error: kind.to_string() }).inc();
        }
    }

    /// Records a created Job.
    pub fn job_created(&self, component: Component) {
        self.jobs_created.get_or_create(&JobLabels { component: component.as_str().to_string() }).inc();
    }

    /// Records a request to the Kubernetes API.
    pub fn api_request(&self, verb: &str, resource: &str) {
        self.api_requests.get_or_create(&RequestLabels { verb: verb.into(), resource: resource.into() }).inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Adds a controller cache to compute the scan gauges from.
    pub fn watch_store(&self, store: Store<ExrScan>) {
        if let Ok(mut stores) = self.stores.lock() {
            stores.push(store);
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        self.refresh_gauges();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn refresh_gauges(&self) {
        let mut by_phase = [0i64; Phase::ALL.len()];
        let mut totals = exrscan_crds::Counts::default();
        if let Ok(stores) = self.stores.lock() {
            for scan in stores.iter().flat_map(|s| s.state()) {
                let Some(status) = scan.status.as_ref() else {
                    by_phase[0] += 1;
                    continue;
                };
                let phase = status.phase.unwrap_or(Phase::Pending);
                if let Some(i) = Phase::ALL.iter().position(|p| *p == phase) {
                    by_phase[i] += 1;
                }
                if let Some(c) = status.counts {
                    totals += c;
                }
            }
        }
        for (phase, n) in Phase::ALL.iter().zip(by_phase) {
            self.scans.get_or_create(&PhaseLabels { phase: phase.as_str().to_string() }).set(n);
        }
        for (name, n) in [
            ("discovered", totals.discovered),
            ("processed", totals.processed),
            ("inserted", totals.inserted),
            ("unchanged", totals.unchanged),
            ("failed", totals.failed),
        ] {
            self.files.get_or_create(&CountLabels { count: name.to_string() }).set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.observe_reconcile(Duration::from_millis(3), None);
        m.observe_reconcile(Duration::from_millis(3), Some("kube"));
        m.job_created(Component::Shard);
        m.set_leader(true);
        m.api_request("patch", "exrscans/status");
        let text = m.render();
        assert!(text.contains("exrscan_operator_reconciles_total 2"), "{text}");
        assert!(text.contains("exrscan_operator_reconcile_errors_total{error=\"kube\"} 1"), "{text}");
        assert!(text.contains("exrscan_operator_jobs_created_total{component=\"shard\"} 1"), "{text}");
        assert!(text.contains("exrscan_operator_scans{phase=\"Running\"} 0"), "{text}");
        assert!(text.contains("exrscan_operator_files{count=\"processed\"} 0"), "{text}");
        assert!(text.contains("exrscan_operator_leader 1"), "{text}");
        assert!(
            text.contains("exrscan_operator_api_requests_total{verb=\"patch\",resource=\"exrscans/status\"} 1"),
            "{text}"
        );
        assert!(text.contains("exrscan_operator_reconcile_duration_seconds_count 2"), "{text}");
    }
}
