//! Where a scan's worker pods run and what they carry: `spec.worker`'s pod settings over the
//! operator's defaults (`--worker-pod-defaults`), set on the planner's and shards' pod
//! template and on the worker ServiceAccount, and on nothing else (not on the Jobs).

use std::collections::BTreeMap;

use exrscan_crds::{ExrScan, WorkerPodSettings};
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The pod settings of `scan`: its own over `defaults`. Maps (`nodeSelector`, `podLabels`,
/// `podAnnotations`, `serviceAccountAnnotations`) are merged key by key, the scan's value
/// winning; every other field the scan sets (an empty list included) replaces the default.
pub fn effective(scan: &ExrScan, defaults: &WorkerPodSettings) -> WorkerPodSettings {
    let Some(own) = scan.spec.worker.as_ref().map(|w| &w.pod) else { return defaults.clone() };
    WorkerPodSettings {
        image_pull_secrets: own.image_pull_secrets.clone().or_else(|| defaults.image_pull_secrets.clone()),
        node_selector: merged(&defaults.node_selector, &own.node_selector),
        tolerations: own.tolerations.clone().or_else(|| defaults.tolerations.clone()),
        affinity: own.affinity.clone().or_else(|| defaults.affinity.clone()),
        priority_class_name: own.priority_class_name.clone().or_else(|| defaults.priority_class_name.clone()),
        pod_labels: merged(&defaults.pod_labels, &own.pod_labels),
        pod_annotations: merged(&defaults.pod_annotations, &own.pod_annotations),
        service_account_annotations: merged(&defaults.service_account_annotations, &own.service_account_annotations),
    }
}

fn merged(defaults: &BTreeMap<String, String>, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut map = defaults.clone();
    map.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    map
}

/// Sets `settings` on a worker pod `template` whose labels are the operator's: extra labels
/// never replace one of them (the CRD and the operator's flag parser refuse such keys; this
/// holds even for an object that bypassed them).
pub fn apply(settings: &WorkerPodSettings, template: &mut PodTemplateSpec) {
    let metadata = template.metadata.get_or_insert_with(Default::default);
    let labels = metadata.labels.get_or_insert_with(Default::default);
    for (key, value) in &settings.pod_labels {
        if !exrscan_crds::is_reserved_label(key) {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    if !settings.pod_annotations.is_empty() {
        metadata.annotations.get_or_insert_with(Default::default).extend(settings.pod_annotations.clone());
    }
    let spec = template.spec.get_or_insert_with(Default::default);
    spec.image_pull_secrets = settings.image_pull_secrets.clone().filter(|s| !s.is_empty());
    spec.node_selector = (!settings.node_selector.is_empty()).then(|| settings.node_selector.clone());
    spec.tolerations = settings.tolerations.clone().filter(|t| !t.is_empty());
    spec.affinity = settings.affinity.clone();
    spec.priority_class_name = settings.priority_class_name.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;
    use exrscan_crds::WorkerSpec;
    use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, NodeAffinity, Toleration};

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn toleration(key: &str) -> Toleration {
        Toleration { key: Some(key.into()), operator: Some("Exists".into()), ..Default::default() }
    }

    fn defaults() -> WorkerPodSettings {
        WorkerPodSettings {
            image_pull_secrets: Some(vec![LocalObjectReference { name: "studio-registry".into() }]),
            node_selector: map(&[("pool", "batch"), ("zone", "a")]),
            tolerations: Some(vec![toleration("batch")]),
            affinity: Some(Affinity { node_affinity: Some(NodeAffinity::default()), ..Default::default() }),
            priority_class_name: Some("batch-low".into()),
            pod_labels: map(&[("team", "pipeline"), ("cost-center", "vfx")]),
            pod_annotations: map(&[("sidecar.istio.io/inject", "false")]),
            service_account_annotations: map(&[("eks.amazonaws.com/role-arn", "arn:aws:iam::1:role/default")]),
        }
    }

    #[test]
    fn without_own_settings_the_defaults_apply() {
        let scan = fixtures::scan(fixtures::flight_spec());
        assert_eq!(effective(&scan, &defaults()), defaults());
        assert_eq!(effective(&scan, &WorkerPodSettings::default()), WorkerPodSettings::default());
    }

    #[test]
    fn maps_merge_and_other_fields_replace() {
        let mut spec = fixtures::flight_spec();
        spec.worker = Some(WorkerSpec {
            pod: WorkerPodSettings {
                tolerations: Some(vec![]),
                priority_class_name: Some("render-high".into()),
                node_selector: map(&[("zone", "b")]),
                pod_labels: map(&[("team", "lighting")]),
                service_account_annotations: map(&[("eks.amazonaws.com/role-arn", "arn:aws:iam::1:role/show")]),
                ..Default::default()
            },
            ..Default::default()
        });
        let settings = effective(&fixtures::scan(spec), &defaults());
        assert_eq!(settings.node_selector, map(&[("pool", "batch"), ("zone", "b")]));
        assert_eq!(settings.pod_labels, map(&[("cost-center", "vfx"), ("team", "lighting")]));
        assert_eq!(settings.pod_annotations, defaults().pod_annotations);
        assert_eq!(
            settings.service_account_annotations,
            map(&[("eks.amazonaws.com/role-arn", "arn:aws:iam::1:role/show")])
        );
        assert_eq!(settings.tolerations, Some(vec![]), "an empty list removes the default's");
        assert_eq!(settings.priority_class_name.as_deref(), Some("render-high"));
        assert_eq!(settings.image_pull_secrets, defaults().image_pull_secrets, "unset: the default");
        assert_eq!(settings.affinity, defaults().affinity);
    }

    #[test]
    fn the_operators_labels_are_kept() {
        let mut template = PodTemplateSpec {
            metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                labels: Some(map(&[("exrscan.dev/run", "abcd1234"), ("app.kubernetes.io/component", "shard")])),
                ..Default::default()
            }),
            spec: None,
        };
        let mut settings = defaults();
        settings.tolerations = Some(vec![]);
        settings.pod_labels.extend(map(&[
            ("exrscan.dev/run", "other"),
            ("exrscan.dev/scan", "other"),
            ("app.kubernetes.io/component", "planner"),
        ]));
        apply(&settings, &mut template);
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        assert_eq!(
            labels,
            map(&[
                ("app.kubernetes.io/component", "shard"),
                ("cost-center", "vfx"),
                ("exrscan.dev/run", "abcd1234"),
                ("team", "pipeline")
            ])
        );
        let spec = template.spec.expect("pod spec");
        assert_eq!(spec.tolerations, None, "no tolerations: the field is left out");
        assert_eq!(spec.priority_class_name.as_deref(), Some("batch-low"));
        assert_eq!(spec.node_selector, Some(defaults().node_selector));
    }
}
