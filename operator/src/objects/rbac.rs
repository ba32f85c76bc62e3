//! The per-scan worker identity: ServiceAccount `<scan>-worker` and a Role that lets its pods
//! write the plan into the one ConfigMap `<scan>-plan` and patch their own progress
//! annotation — nothing else (no Secret access: Secrets reach pods only by reference).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::ScanRef;
use crate::names;

/// The worker ServiceAccount.
pub fn service_account(scan: &ScanRef) -> ServiceAccount {
    ServiceAccount { metadata: scan.meta(names::worker_account(&scan.name)), ..Default::default() }
}

/// The worker Role.
pub fn role(scan: &ScanRef) -> Role {
    Role {
        metadata: scan.meta(names::worker_account(&scan.name)),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".into()]),
                resource_names: Some(vec![names::plan_config_map(&scan.name)]),
                verbs: vec!["get".into(), "patch".into(), "update".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["pods".into()]),
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
        let role = role(&scan);
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 2);
        let cm = &rules[0];
        assert_eq!(cm.resources.as_deref(), Some(&["configmaps".to_string()][..]));
        assert_eq!(cm.resource_names.as_deref(), Some(&["renders-plan".to_string()][..]));
        for rule in &rules {
            let resources = rule.resources.clone().unwrap_or_default();
            assert!(!resources.iter().any(|r| r == "secrets"), "no Secret access");
            assert!(!rule.verbs.iter().any(|v| v == "*" || v == "delete" || v == "list"));
        }
        let binding = role_binding(&scan);
        assert_eq!(binding.role_ref.name, "renders-worker");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), ("renders-worker", Some("vfx")));
        let sa = service_account(&scan);
        let owner = &sa.metadata.owner_references.expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("ExrScan", Some(true)));
    }
}
