//! The per-scan worker identity: ServiceAccount `<scan>-worker` and a Role that lets its pods
//! write the plan into the current run's plan ConfigMaps (header and chunks) and their
//! progress into the current run's progress ConfigMaps (and read those) — nothing else: no
//! Pod access (a pod that could patch pods could change their images and take over their
//! ServiceAccounts), no Secret access (Secrets reach pods only by reference). The Role is
//! re-applied before each Job, naming that run's maps.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::ScanRef;
use crate::names;

/// The worker ServiceAccount, with `annotations` (IRSA, Workload Identity: the effective
/// `serviceAccountAnnotations`, see [`super::pod_settings`]).
pub fn service_account(scan: &ScanRef, annotations: &BTreeMap<String, String>) -> ServiceAccount {
    let mut metadata = scan.meta(names::worker_account(&scan.name));
    metadata.annotations = (!annotations.is_empty()).then(|| annotations.clone());
    ServiceAccount { metadata, ..Default::default() }
}

/// The worker Role of run `run` of `shards` shards.
pub fn role(scan: &ScanRef, run: &str, shards: i32) -> Role {
    Role {
        metadata: scan.meta(names::worker_account(&scan.name)),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                resource_names: Some(
                    std::iter::once(names::plan_config_map(&scan.name, run))
                        .chain(names::plan_chunk_maps(&scan.name, run, shards))
                        .collect(),
                ),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                resource_names: Some(names::progress_maps(&scan.name, run, shards)),
                // `get` too: `kubectl patch` reads the object before it patches it.
                verbs: vec!["get".into(), "patch".into()],
                ..Default::default()
            },
        ]),
    }
}

/// Binds the worker Role to the worker ServiceAccount.
pub fn role_binding(scan: &ScanRef) -> RoleBinding {
    let name = names::worker_account(&scan.name);
    RoleBinding {
        metadata: scan.meta(name.clone()),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(scan.namespace.clone()),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn least_privilege() {
        let scan = ScanRef::of(&fixtures::scan(fixtures::flight_spec())).expect("scan ref");
        let role = role(&scan, "abcd1234", 801);
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 2);
        let cm = &rules[0];
        assert_eq!(cm.resources.as_deref(), Some(&["configmaps".to_string()][..]));
        assert_eq!(
            cm.resource_names.clone().unwrap_or_default(),
            ["renders-abcd1234-plan", "renders-abcd1234-plan-0", "renders-abcd1234-plan-1", "renders-abcd1234-plan-2"]
        );
        let progress = &rules[1];
        assert_eq!(
            progress.resource_names.clone().unwrap_or_default(),
            (0..5).map(|k| format!("renders-abcd1234-progress-{k}")).collect::<Vec<_>>()
        );
        assert_eq!(progress.verbs, ["get", "patch"]);
        for rule in &rules {
            let resources = rule.resources.clone().unwrap_or_default();
            assert_eq!(resources, ["configmaps"], "no Pod, no Secret access");
            assert!(rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()), "named objects only");
            assert!(!rule.verbs.iter().any(|v| v == "*" || v == "delete" || v == "list"));
        }
        let binding = role_binding(&scan);
        assert_eq!(binding.role_ref.name, "renders-worker");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), ("renders-worker", Some("vfx")));
        let sa = service_account(&scan, &BTreeMap::new());
        assert_eq!(sa.metadata.annotations, None);
        let owner = &sa.metadata.owner_references.expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("ExrScan", Some(true)));
        let irsa = BTreeMap::from([("eks.amazonaws.com/role-arn".to_string(), "arn:aws:iam::1:role/r".to_string())]);
        let sa = service_account(&scan, &irsa);
        assert_eq!(sa.metadata.annotations, Some(irsa));
        assert_eq!(sa.metadata.labels, Some(names::scan_labels("renders")), "annotations only, labels unchanged");
    }
}
