//! The event consumers of `spec.events`: the Deployment `<scan>-follow` running
//! `exrscan follow` with the scan's source, filters and sink (the shard pods' template,
//! security context and worker ServiceAccount), the ConfigMap `<scan>-follow` each consumer
//! reports to under its pod name, and the Role and RoleBinding `<scan>-follow` that let the
//! worker ServiceAccount patch that one ConfigMap — nothing else.

use exrscan_crds::{EventsSpec, ExrScan, StartFrom};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, SecretVolumeSource, Volume};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::worker_pod::{self, literal, mount, secret_ref};
use super::{ScanRef, WorkerDefaults};
use crate::names::{self, Component};

/// Where a Kafka CA Secret is mounted.
pub const KAFKA_CA_MOUNT: &str = "/etc/exrscan/kafka-ca";

/// The consumer group: `spec.events.consumerGroup`, else `exrscan.<namespace>.<scan>`.
pub fn consumer_group(scan_ref: &ScanRef, events: &EventsSpec) -> String {
    events.consumer_group.clone().unwrap_or_else(|| format!("exrscan.{}.{}", scan_ref.namespace, scan_ref.name))
}

/// Seconds between two status reports of one consumer.
pub fn report_seconds(defaults: &WorkerDefaults) -> u64 {
    defaults.progress_interval.as_secs().max(1)
}

/// The consumers' Deployment: `spec.events.replicas` of them, none while `spec.suspend`.
pub fn deployment(scan: &ExrScan, scan_ref: &ScanRef, events: &EventsSpec, defaults: &WorkerDefaults) -> Deployment {
    let name = names::follow(&scan_ref.name);
    let labels = names::follow_labels(&scan_ref.name);
    let args = vec!["follow".to_string(), worker_pod::source_uri(scan)];
    let mut template = worker_pod::template(scan, scan_ref, "", Component::Follow, defaults, args);
    template.metadata = Some(ObjectMeta { labels: Some(labels.clone()), ..Default::default() });
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Always".into());
        if let Some(ca) = events.tls.as_ref().and_then(|t| t.ca_secret.as_ref()) {
            pod.volumes.get_or_insert_default().push(Volume {
                name: "kafka-ca".into(),
                secret: Some(SecretVolumeSource { secret_name: Some(ca.clone()), ..Default::default() }),
                ..Default::default()
            });
        }
        if let Some(container) = pod.containers.first_mut() {
            container.env.get_or_insert_default().extend(env(scan_ref, events, defaults));
            if events.tls.as_ref().is_some_and(|t| t.ca_secret.is_some()) {
                container.volume_mounts.get_or_insert_default().push(mount("kafka-ca", KAFKA_CA_MOUNT, true));
            }
            if let Some(resources) = &events.resources {
                container.resources = Some(resources.clone());
            }
        }
    }
    Deployment {
        metadata: scan_ref.owned_meta(name, labels.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(if scan.spec.suspend { 0 } else { events.replicas }),
            selector: LabelSelector { match_labels: Some(labels), ..Default::default() },
            template,
            ..Default::default()
        }),
        status: None,
    }
}

/// The Kafka and reporting environment of `exrscan follow` (`docs/continuous-indexing.md`):
/// credentials by Secret reference only.
fn env(scan_ref: &ScanRef, events: &EventsSpec, defaults: &WorkerDefaults) -> Vec<EnvVar> {
    let start = match events.start_from.unwrap_or_default() {
        StartFrom::Earliest => "earliest",
        StartFrom::Latest => "latest",
    };
    let mut env = vec![
        literal("EXRSCAN_KAFKA_BROKERS", &events.brokers.join(",")),
        literal("EXRSCAN_KAFKA_TOPIC", &events.topic),
        literal("EXRSCAN_KAFKA_GROUP", &consumer_group(scan_ref, events)),
        literal("EXRSCAN_KAFKA_START", start),
        literal("EXRSCAN_KAFKA_SECURITY_PROTOCOL", events.security_protocol()),
        literal("EXRSCAN_FOLLOW_STATUS_CONFIGMAP", &names::follow(&scan_ref.name)),
        literal("EXRSCAN_FOLLOW_STATUS_SECONDS", &report_seconds(defaults).to_string()),
    ];
    if let Some(objects) = events.batch_objects {
        env.push(literal("EXRSCAN_FOLLOW_BATCH_OBJECTS", &objects.to_string()));
    }
    if let Some(ms) = events.batch_milliseconds {
        env.push(literal("EXRSCAN_FOLLOW_BATCH_MS", &ms.to_string()));
    }
    if let Some(sasl) = &events.sasl {
        env.push(literal("EXRSCAN_KAFKA_SASL_MECHANISM", sasl.mechanism.as_str()));
        env.push(secret_ref("EXRSCAN_KAFKA_SASL_USERNAME", &sasl.credentials_secret, "username", false));
        env.push(secret_ref("EXRSCAN_KAFKA_SASL_PASSWORD", &sasl.credentials_secret, "password", false));
    }
    if events.tls.as_ref().is_some_and(|t| t.ca_secret.is_some()) {
        env.push(literal("EXRSCAN_KAFKA_CA", &format!("{KAFKA_CA_MOUNT}/ca.crt")));
    }
    env
}

/// The ConfigMap the consumers report to (created empty; each pod patches its own key).
pub fn config_map(scan_ref: &ScanRef) -> ConfigMap {
    ConfigMap {
        metadata: scan_ref.owned_meta(names::follow(&scan_ref.name), names::follow_labels(&scan_ref.name)),
        ..Default::default()
    }
}

/// The Role letting the consumers patch their ConfigMap, and nothing else.
pub fn role(scan_ref: &ScanRef) -> Role {
    let name = names::follow(&scan_ref.name);
    Role {
        metadata: scan_ref.owned_meta(name.clone(), names::follow_labels(&scan_ref.name)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![name]),
            verbs: vec!["patch".into()],
            ..Default::default()
        }]),
    }
}

/// Binds the consumers' Role to the worker ServiceAccount.
pub fn role_binding(scan_ref: &ScanRef) -> RoleBinding {
    let name = names::follow(&scan_ref.name);
    RoleBinding {
        metadata: scan_ref.owned_meta(name.clone(), names::follow_labels(&scan_ref.name)),
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "Role".into(), name },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names::worker_account(&scan_ref.name),
            namespace: Some(scan_ref.namespace.clone()),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;
    use exrscan_crds::{KafkaSasl, KafkaTls, SaslMechanism};
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn events() -> EventsSpec {
        EventsSpec {
            brokers: vec!["kafka-0:9092".into(), "kafka-1:9092".into()],
            topic: "renders-events".into(),
            replicas: 2,
            ..Default::default()
        }
    }

    fn with_events(events: EventsSpec, suspend: bool) -> ExrScan {
        let mut spec = fixtures::flight_spec();
        spec.suspend = suspend;
        spec.events = Some(events);
        fixtures::scan(spec)
    }

    fn env_value(d: &Deployment, name: &str) -> Option<String> {
        let c = &d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec").containers[0];
        c.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone())
    }

    #[test]
    fn deployment_runs_follow_like_a_shard() {
        let scan = with_events(events(), false);
        let r = ScanRef::of(&scan).expect("ref");
        let d = deployment(&scan, &r, &events(), &fixtures::defaults());
        assert_eq!(d.metadata.name.as_deref(), Some("renders-follow"));
        let owner = &d.metadata.owner_references.clone().expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("ExrScan", Some(true)));
        let spec = d.spec.clone().expect("spec");
        assert_eq!(spec.replicas, Some(2));
        let labels = spec.selector.match_labels.clone().expect("selector");
        assert_eq!(labels.get("app.kubernetes.io/component").map(String::as_str), Some("follow"));
        assert_eq!(labels.get("exrscan.dev/scan").map(String::as_str), Some("renders"));
        assert_eq!(spec.template.metadata.and_then(|m| m.labels), Some(labels), "the pods match the selector");
        let pod = spec.template.spec.expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
        assert_eq!(pod.service_account_name.as_deref(), Some("renders-worker"));
        assert!(pod.security_context.and_then(|s| s.seccomp_profile).is_some());
        let c = &pod.containers[0];
        assert_eq!(c.args.as_deref(), Some(&["follow".to_string(), "s3://renders/show/seq".to_string()][..]));
        let security = c.security_context.clone().expect("container security context");
        assert_eq!(
            (security.read_only_root_filesystem, security.run_as_non_root, security.allow_privilege_escalation),
            (Some(true), Some(true), Some(false))
        );
        // The shard's source, filters and sink; no plan, no run progress.
        for (name, want) in [
            ("EXRSCAN_SINK", "flight+grpc+tls://vastdb:443"),
            ("EXRSCAN_S3_ENDPOINT", "http://minio:9000"),
            ("EXRSCAN_INCLUDE", "*.exr,*.EXR"),
            ("EXRSCAN_EXCLUDE", "tmp/*"),
            ("EXRSCAN_KAFKA_BROKERS", "kafka-0:9092,kafka-1:9092"),
            ("EXRSCAN_KAFKA_TOPIC", "renders-events"),
            ("EXRSCAN_KAFKA_GROUP", "exrscan.vfx.renders"),
            ("EXRSCAN_KAFKA_START", "earliest"),
            ("EXRSCAN_KAFKA_SECURITY_PROTOCOL", "plaintext"),
            ("EXRSCAN_FOLLOW_STATUS_CONFIGMAP", "renders-follow"),
            ("EXRSCAN_FOLLOW_STATUS_SECONDS", "5"),
        ] {
            assert_eq!(env_value(&d, name).as_deref(), Some(want), "{name}");
        }
        let names: Vec<_> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(names.iter().all(|n| !n.starts_with("EXRSCAN_PROGRESS")), "{names:?}");
        assert!(names.contains(&"AWS_ACCESS_KEY_ID") && names.contains(&"EXRSCAN_FLIGHT_PASSWORD"));
        let mounts: Vec<_> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/etc/exrscan/flight-ca"]);
    }

    #[test]
    fn batch_settings_reach_the_consumers_only_when_set() {
        let scan = with_events(events(), false);
        let r = ScanRef::of(&scan).expect("ref");
        let d = deployment(&scan, &r, &events(), &fixtures::defaults());
        for name in ["EXRSCAN_FOLLOW_BATCH_OBJECTS", "EXRSCAN_FOLLOW_BATCH_MS"] {
            assert_eq!(env_value(&d, name), None, "{name}: exrscan follow's own default");
        }
        let events = EventsSpec { batch_objects: Some(200), batch_milliseconds: Some(50), ..events() };
        let d = deployment(&with_events(events.clone(), false), &r, &events, &fixtures::defaults());
        assert_eq!(env_value(&d, "EXRSCAN_FOLLOW_BATCH_OBJECTS").as_deref(), Some("200"));
        assert_eq!(env_value(&d, "EXRSCAN_FOLLOW_BATCH_MS").as_deref(), Some("50"));
    }

    #[test]
    fn suspend_scales_to_zero() {
        let scan = with_events(events(), true);
        let r = ScanRef::of(&scan).expect("ref");
        assert_eq!(deployment(&scan, &r, &events(), &fixtures::defaults()).spec.and_then(|s| s.replicas), Some(0));
    }

    #[test]
    fn tls_and_sasl_come_from_secrets() {
        let events = EventsSpec {
            consumer_group: Some("renders-group".into()),
            start_from: Some(StartFrom::Latest),
            tls: Some(KafkaTls { ca_secret: Some("kafka-ca".into()) }),
            sasl: Some(KafkaSasl { mechanism: SaslMechanism::ScramSha512, credentials_secret: "kafka-user".into() }),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity("256Mi".into()))].into()),
                ..Default::default()
            }),
            ..events()
        };
        let scan = with_events(events.clone(), false);
        let r = ScanRef::of(&scan).expect("ref");
        let d = deployment(&scan, &r, &events, &fixtures::defaults());
        assert_eq!(env_value(&d, "EXRSCAN_KAFKA_GROUP").as_deref(), Some("renders-group"));
        assert_eq!(env_value(&d, "EXRSCAN_KAFKA_START").as_deref(), Some("latest"));
        assert_eq!(env_value(&d, "EXRSCAN_KAFKA_SECURITY_PROTOCOL").as_deref(), Some("sasl_ssl"));
        assert_eq!(env_value(&d, "EXRSCAN_KAFKA_SASL_MECHANISM").as_deref(), Some("SCRAM-SHA-512"));
        assert_eq!(env_value(&d, "EXRSCAN_KAFKA_CA").as_deref(), Some("/etc/exrscan/kafka-ca/ca.crt"));
        let pod = d.spec.and_then(|s| s.template.spec).expect("pod spec");
        let c = &pod.containers[0];
        for (var, key) in [("EXRSCAN_KAFKA_SASL_USERNAME", "username"), ("EXRSCAN_KAFKA_SASL_PASSWORD", "password")] {
            let e = c.env.iter().flatten().find(|e| e.name == var).expect(var);
            assert!(e.value.is_none(), "{var} is a reference, never a value");
            let s = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("secretKeyRef");
            assert_eq!((s.name.as_str(), s.key.as_str()), ("kafka-user", key));
        }
        let ca = pod.volumes.iter().flatten().find(|v| v.name == "kafka-ca").and_then(|v| v.secret.clone());
        assert_eq!(ca.and_then(|s| s.secret_name).as_deref(), Some("kafka-ca"));
        let mounts: Vec<_> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert!(mounts.contains(&"/etc/exrscan/kafka-ca"), "{mounts:?}");
        let memory = c.resources.as_ref().and_then(|r| r.limits.as_ref()).and_then(|l| l.get("memory"));
        assert_eq!(memory, Some(&Quantity("256Mi".into())), "spec.events.resources");
    }

    #[test]
    fn consumers_may_patch_their_config_map_only() {
        let r = ScanRef::of(&with_events(events(), false)).expect("ref");
        let role = role(&r);
        let rules = role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources.as_deref(), Some(&["configmaps".to_string()][..]));
        assert_eq!(rules[0].resource_names.as_deref(), Some(&["renders-follow".to_string()][..]));
        assert_eq!(rules[0].verbs, ["patch"]);
        let binding = role_binding(&r);
        assert_eq!(binding.role_ref.name, "renders-follow");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!((subject.name.as_str(), subject.namespace.as_deref()), ("renders-worker", Some("vfx")));
        let cm = config_map(&r);
        assert_eq!(cm.metadata.name.as_deref(), Some("renders-follow"));
        assert!(cm.data.is_none() && cm.metadata.owner_references.is_some());
        let labels = cm.metadata.labels.expect("labels");
        assert_eq!(labels.get("app.kubernetes.io/component").map(String::as_str), Some("follow"));
    }
}
