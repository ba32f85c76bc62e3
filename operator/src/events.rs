//! `spec.events` in the reconcile: the consumers' Deployment, ConfigMap, Role and
//! RoleBinding (`objects::follow`) are server-side applied when the spec changes (and every
//! resync, undoing edits), deleted when `spec.events` is removed; `status.events` sums what
//! the consumers report under their pod names. Between applies a reconcile reads two objects
//! (the Deployment and the ConfigMap), at the scan's pace.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use exrscan_crds::{EventsSpec, EventsStatus, ExrScan};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::names;
use crate::objects::{ScanRef, WorkerDefaults, follow, pod_settings, rbac};
use crate::pace::Pacer;
use crate::reconcile::Error;

/// The key under which the counts of consumers gone for [`RETIRE_AFTER`] are kept.
pub const RETIRED_KEY: &str = "retired";

/// A consumer's entry not updated for this long is folded into [`RETIRED_KEY`] (its pod is
/// gone), so the ConfigMap does not grow with every pod the Deployment ever had.
pub const RETIRE_AFTER: Duration = Duration::from_secs(3600);

/// One consumer's report (`exrscan follow --status-configmap`; the worker's `StatsSnapshot`).
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(default)]
pub struct Report {
    /// Objects written.
    pub inserted: u64,
    /// Objects already in the catalog.
    pub unchanged: u64,
    /// Objects that could not be read.
    pub failed: u64,
    /// Removals recorded.
    pub removals: u64,
    /// Skipped messages and events, by reason.
    pub malformed: u64,
    pub test_events: u64,
    pub other_events: u64,
    pub outside_prefix: u64,
    pub filtered: u64,
    /// -1 while unknown.
    pub lag: i64,
    /// Unix milliseconds of the newest event written; 0: none.
    pub last_event_ms: i64,
    /// Unix milliseconds of the report.
    pub updated_ms: i64,
}

impl Report {
    fn add(&mut self, other: &Report) {
        self.inserted = self.inserted.saturating_add(other.inserted);
        self.unchanged = self.unchanged.saturating_add(other.unchanged);
        self.failed = self.failed.saturating_add(other.failed);
        self.removals = self.removals.saturating_add(other.removals);
        self.malformed = self.malformed.saturating_add(other.malformed);
        self.test_events = self.test_events.saturating_add(other.test_events);
        self.other_events = self.other_events.saturating_add(other.other_events);
        self.outside_prefix = self.outside_prefix.saturating_add(other.outside_prefix);
        self.filtered = self.filtered.saturating_add(other.filtered);
        self.last_event_ms = self.last_event_ms.max(other.last_event_ms);
    }
}

/// The consumers' reports in `cm`, by key (entries that do not parse are left out).
pub fn reports(cm: &ConfigMap) -> BTreeMap<String, Report> {
    cm.data
        .iter()
        .flatten()
        .filter_map(|(key, text)| serde_json::from_str(text).ok().map(|r| (key.clone(), r)))
        .collect()
}

/// `status.events` from the reports at `now_ms`: counts summed over every entry (the
/// retired one included), lag over the entries updated within `fresh`.
pub fn summarize(reports: &BTreeMap<String, Report>, now_ms: i64, fresh: Duration) -> EventsStatus {
    let mut total = Report::default();
    let mut lag: Option<i64> = None;
    let fresh_ms = i64::try_from(fresh.as_millis()).unwrap_or(i64::MAX);
    for (key, report) in reports {
        total.add(report);
        if key != RETIRED_KEY && report.lag >= 0 && now_ms.saturating_sub(report.updated_ms) <= fresh_ms {
            lag = Some(lag.unwrap_or(0).saturating_add(report.lag));
        }
    }
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let skipped = [total.malformed, total.test_events, total.other_events, total.outside_prefix, total.filtered]
        .into_iter()
        .fold(0u64, u64::saturating_add);
    EventsStatus {
        lag,
        indexed: signed(total.inserted),
        unchanged: signed(total.unchanged),
        failed: signed(total.failed),
        removals: signed(total.removals),
        skipped: signed(skipped),
        last_event_time: (total.last_event_ms > 0)
            .then(|| Timestamp::from_millisecond(total.last_event_ms).ok())
            .flatten()
            .map(Time),
        replicas: 0,
        replicas_ready: 0,
    }
}

/// The merge patch folding the entries not updated within [`RETIRE_AFTER`] into
/// [`RETIRED_KEY`], or `None` when there are none.
pub fn retire(reports: &BTreeMap<String, Report>, now_ms: i64) -> Option<serde_json::Value> {
    let after = i64::try_from(RETIRE_AFTER.as_millis()).unwrap_or(i64::MAX);
    let stale: Vec<&String> = reports
        .iter()
        .filter(|(key, r)| *key != RETIRED_KEY && now_ms.saturating_sub(r.updated_ms) > after)
        .map(|(key, _)| key)
        .collect();
    if stale.is_empty() {
        return None;
    }
    let mut retired = reports.get(RETIRED_KEY).copied().unwrap_or_default();
    let mut data = serde_json::Map::new();
    for key in stale {
        retired.add(&reports[key]);
        data.insert(key.clone(), serde_json::Value::Null);
    }
    retired.lag = -1;
    retired.updated_ms = now_ms;
    data.insert(RETIRED_KEY.into(), serde_json::to_string(&retired).unwrap_or_default().into());
    Some(serde_json::json!({ "data": data }))
}

/// Brings the consumers of `scan` in line with `spec.events` and returns `status.events`.
/// `had_events`: the last status had consumers (so there may be objects to delete).
pub async fn reconcile(
    scan: &ExrScan,
    scan_ref: &ScanRef,
    client: &Client,
    defaults: &WorkerDefaults,
    pacer: &Pacer,
    had_events: bool,
) -> Result<Option<EventsStatus>, Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &scan_ref.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &scan_ref.namespace);
    let name = names::follow(&scan_ref.name);
    let Some(events) = &scan.spec.events else {
        if had_events {
            remove(scan_ref, client).await?;
        }
        pacer.forget(&scan_ref.uid);
        return Ok(None);
    };
    let due = pacer.wait(&scan_ref.uid, scan.metadata.generation).is_none();
    let (deployment, cm) = if due {
        apply(scan, scan_ref, client, events, defaults).await?
    } else {
        match (deployments.get_opt(&name).await?, config_maps.get_opt(&name).await?) {
            (Some(d), Some(cm)) if scan_ref.controls(&d.metadata) => (d, cm),
            // Deleted (or replaced) behind the operator's back: applied again.
            _ => apply(scan, scan_ref, client, events, defaults).await?,
        }
    };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let reports = reports(&cm);
    if let Some(mut patch) = retire(&reports, now_ms) {
        // Guarded by the resourceVersion read: a consumer writing meanwhile makes it wait.
        patch["metadata"] = serde_json::json!({ "resourceVersion": cm.metadata.resource_version });
        match config_maps.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A consumer that missed three reports no longer counts towards the lag.
    let fresh = Duration::from_secs(3 * follow::report_seconds(defaults) + 10);
    let mut status = summarize(&reports, now_ms, fresh);
    status.replicas = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    status.replicas_ready = deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    Ok(Some(status))
}

/// Server-side applies the worker ServiceAccount, the consumers' Role, RoleBinding,
/// ConfigMap and Deployment; returns the Deployment and ConfigMap as applied.
async fn apply(
    scan: &ExrScan,
    scan_ref: &ScanRef,
    client: &Client,
    events: &EventsSpec,
    defaults: &WorkerDefaults,
) -> Result<(Deployment, ConfigMap), Error> {
    let ns = &scan_ref.namespace;
    let params = PatchParams::apply(names::MANAGER).force();
    let annotations = pod_settings::effective(scan, &defaults.pod).service_account_annotations;
    apply_one::<ServiceAccount>(client, ns, &params, rbac::service_account(scan_ref, &annotations)).await?;
    apply_one::<Role>(client, ns, &params, follow::role(scan_ref)).await?;
    apply_one::<RoleBinding>(client, ns, &params, follow::role_binding(scan_ref)).await?;
    let cm = apply_one::<ConfigMap>(client, ns, &params, follow::config_map(scan_ref)).await?;
    let deployment =
        apply_one::<Deployment>(client, ns, &params, follow::deployment(scan, scan_ref, events, defaults)).await?;
    Ok((deployment, cm))
}

async fn apply_one<K>(client: &Client, namespace: &str, params: &PatchParams, object: K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(&object)?;
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    Ok(api.patch(&name, params, &Patch::Apply(&value)).await?)
}

/// Deletes the consumers' Deployment, ConfigMap, Role and RoleBinding (those this scan
/// controls; absent ones are fine).
async fn remove(scan_ref: &ScanRef, client: &Client) -> Result<(), Error> {
    let ns = &scan_ref.namespace;
    delete_owned::<Deployment>(client, ns, scan_ref).await?;
    delete_owned::<ConfigMap>(client, ns, scan_ref).await?;
    delete_owned::<RoleBinding>(client, ns, scan_ref).await?;
    delete_owned::<Role>(client, ns, scan_ref).await?;
    Ok(())
}

async fn delete_owned<K>(client: &Client, namespace: &str, scan_ref: &ScanRef) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = names::follow(&scan_ref.name);
    if let Some(object) = api.get_opt(&name).await?
        && scan_ref.controls(object.meta())
    {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(inserted: u64, lag: i64, last_event_ms: i64, updated_ms: i64) -> Report {
        Report { inserted, lag, last_event_ms, updated_ms, malformed: 1, filtered: 2, ..Default::default() }
    }

    #[test]
    fn entries_are_summed_and_only_fresh_ones_lag() {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([
                ("renders-follow-a".to_string(), serde_json::to_string(&report(5, 3, 1_000, 100_000)).unwrap()),
                ("renders-follow-b".to_string(), serde_json::to_string(&report(7, 4, 2_000, 99_000)).unwrap()),
                ("renders-follow-old".to_string(), serde_json::to_string(&report(1, 50, 500, 10_000)).unwrap()),
                ("garbage".to_string(), "not json".to_string()),
            ])),
            ..Default::default()
        };
        let reports = reports(&cm);
        assert_eq!(reports.len(), 3, "an entry that does not parse is left out");
        let status = summarize(&reports, 100_500, Duration::from_secs(40));
        assert_eq!(status.indexed, 13, "every pod's writes count, gone ones too");
        assert_eq!(status.skipped, 9);
        assert_eq!(status.lag, Some(7), "the stale entry's lag is left out");
        assert_eq!(status.last_event_time.map(|t| t.0.as_millisecond()), Some(2_000));
        let unknown = BTreeMap::from([("p".to_string(), report(0, -1, 0, 100_000))]);
        let status = summarize(&unknown, 100_000, Duration::from_secs(40));
        assert_eq!((status.lag, status.last_event_time), (None, None), "unknown until reported");
    }

    #[test]
    fn gone_consumers_are_folded_into_retired() {
        let hour = RETIRE_AFTER.as_millis() as i64;
        let reports = BTreeMap::from([
            ("live".to_string(), report(5, 3, 1_000, 2 * hour)),
            ("gone".to_string(), report(7, 4, 2_000, 10)),
            (RETIRED_KEY.to_string(), report(100, -1, 500, 5)),
        ]);
        let patch = retire(&reports, 2 * hour + 1).expect("a patch");
        assert_eq!(patch["data"]["gone"], serde_json::Value::Null);
        assert!(patch["data"].get("live").is_none());
        let retired: Report = serde_json::from_str(patch["data"][RETIRED_KEY].as_str().expect("text")).expect("report");
        assert_eq!((retired.inserted, retired.last_event_ms, retired.lag), (107, 2_000, -1));
        // The sums do not change by folding.
        let mut after = reports.clone();
        after.remove("gone");
        after.insert(RETIRED_KEY.into(), retired);
        let now = 2 * hour + 1;
        let fresh = Duration::from_secs(40);
        assert_eq!(summarize(&after, now, fresh), summarize(&reports, now, fresh));
        assert!(retire(&after, now).is_none(), "nothing more to fold");
    }
}
