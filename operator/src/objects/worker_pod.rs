//! The pod template of the worker image, for the planner, the shards and the event
//! consumers: the environment of the worker contract, Secret *references* (never values),
//! volumes and a locked-down security context.

use exrscan_crds::{ExrScan, Sink, VastSink};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, EnvVar, EnvVarSource, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{ScanRef, WorkerDefaults};
use crate::names::{self, Component};

/// The worker program inside the image.
pub const PROGRAM: &str = "exrscan";
/// Where a Flight CA Secret is mounted.
pub const FLIGHT_CA_MOUNT: &str = "/etc/exrscan/flight-ca";
/// Where a VAST CA Secret is mounted.
pub const VAST_CA_MOUNT: &str = "/etc/exrscan/vast-ca";
/// Where an S3 CA Secret (`spec.source.caSecret`) is mounted.
pub const S3_CA_MOUNT: &str = "/etc/exrscan/s3-ca";
/// Where a DuckDB claim is mounted.
pub const DUCKDB_MOUNT: &str = "/var/lib/exrscan/catalog";

/// The image to run: the scan's `spec.worker.image`, else the operator's default.
pub fn image<'a>(scan: &'a ExrScan, default_image: &'a str) -> &'a str {
    scan.spec.worker.as_ref().and_then(|w| w.image.as_deref()).unwrap_or(default_image)
}

/// A pod template running `exrscan ARGS` as `component` of a run.
pub fn template(
    scan: &ExrScan,
    scan_ref: &ScanRef,
    run: &str,
    component: Component,
    defaults: &WorkerDefaults,
    args: Vec<String>,
) -> PodTemplateSpec {
    let mut env = vec![
        literal("EXRSCAN_SCAN_NAME", &scan_ref.name),
        literal("EXRSCAN_SCAN_UID", &scan_ref.uid),
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
    ];
    env.extend(source_env(scan));
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(secret) = &scan.spec.source.ca_secret {
        volumes.push(secret_volume("s3-ca", secret));
        mounts.push(mount("s3-ca", S3_CA_MOUNT, true));
    }
    match component {
        Component::Planner => {}
        Component::Shard => {
            env.extend(sink_env(&scan.spec.sink));
            env.extend(tuning_env(scan));
            env.extend(super::progress::env(scan, scan_ref, run, defaults.progress_interval));
            volumes.push(plan_volume(scan, scan_ref, run));
            mounts.push(mount("plan", names::PLAN_MOUNT, true));
            let (v, m) = sink_volumes(&scan.spec.sink);
            volumes.extend(v);
            mounts.extend(m);
        }
        Component::Follow => {
            env.extend(sink_env(&scan.spec.sink));
            env.extend(tuning_env(scan));
            let (v, m) = sink_volumes(&scan.spec.sink);
            volumes.extend(v);
            mounts.extend(m);
        }
    }
    let container = Container {
        name: names::CONTAINER.into(),
        image: Some(image(scan, &defaults.image).to_string()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![PROGRAM.into()]),
        args: Some(args),
        env: Some(env),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources: scan.spec.worker.as_ref().and_then(|w| w.resources.clone()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names::run_labels(&scan_ref.name, run, component)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: Some(names::worker_account(&scan_ref.name)),
            containers: vec![container],
            volumes: (!volumes.is_empty()).then_some(volumes),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
                // The DuckDB claim is made group-writable for the worker (uid/gid 65532 in
                // our image; any uid gets this supplementary group), changed only when its
                // root directory does not match yet, so big volumes are not re-chowned.
                fs_group: Some(WORKER_GROUP),
                fs_group_change_policy: Some("OnRootMismatch".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    super::pod_settings::apply(&super::pod_settings::effective(scan, &defaults.pod), &mut template);
    template
}

/// The group of the worker image's user, given to mounted volumes (`fsGroup`).
const WORKER_GROUP: i64 = 65532;

/// `s3://BUCKET/PREFIX`, the planner's source argument.
pub fn source_uri(scan: &ExrScan) -> String {
    format!("s3://{}/{}", scan.spec.source.bucket, scan.spec.source.prefix.trim_start_matches('/'))
}

/// The sink URI of `EXRSCAN_SINK`.
pub fn sink_uri(sink: &Sink) -> String {
    match (&sink.vast, &sink.flight, &sink.duckdb) {
        (Some(v), _, _) => vast_uri(v),
        (None, Some(f), _) => {
            let scheme = if f.tls.is_some() { "flight+grpc+tls" } else { "flight+grpc" };
            format!("{scheme}://{}", f.endpoint)
        }
        (None, None, Some(d)) => format!("duckdb://{DUCKDB_MOUNT}/{}", d.path),
        // The CRD's CEL rule makes exactly one sink present; an empty sink gets an empty URI
        // that the worker refuses (exit code 2).
        (None, None, None) => String::new(),
    }
}

/// `vast://host[:port]?bucket=…&schema=…&tls=…`: the CRD's patterns admit only characters
/// that need no escaping in a query.
fn vast_uri(v: &VastSink) -> String {
    let (tls, authority) = match v.endpoint.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, v.endpoint.strip_prefix("http://").unwrap_or(&v.endpoint)),
    };
    let mut uri =
        format!("vast://{}?bucket={}&schema={}&tls={tls}", authority.trim_end_matches('/'), v.bucket, v.schema);
    if let Some(prefix) = v.table_prefix.as_deref().filter(|p| !p.is_empty()) {
        uri.push_str(&format!("&table_prefix={prefix}"));
    }
    if v.ca_secret.is_some() {
        uri.push_str(&format!("&ca={VAST_CA_MOUNT}/ca.crt"));
    }
    uri
}

fn source_env(scan: &ExrScan) -> Vec<EnvVar> {
    let s = &scan.spec.source;
    let mut env = Vec::new();
    if let Some(secret) = &s.credentials_secret {
        env.push(secret_ref("AWS_ACCESS_KEY_ID", secret, "AWS_ACCESS_KEY_ID", false));
        env.push(secret_ref("AWS_SECRET_ACCESS_KEY", secret, "AWS_SECRET_ACCESS_KEY", false));
        env.push(secret_ref("AWS_SESSION_TOKEN", secret, "AWS_SESSION_TOKEN", true));
    }
    if let Some(endpoint) = &s.endpoint {
        env.push(literal("EXRSCAN_S3_ENDPOINT", endpoint));
    }
    if let Some(region) = &s.region {
        env.push(literal("AWS_REGION", region));
    }
    if s.ca_secret.is_some() {
        env.push(literal("EXRSCAN_S3_CA", &format!("{S3_CA_MOUNT}/ca.crt")));
    }
    env.push(literal("EXRSCAN_S3_FORCE_PATH_STYLE", if s.force_path_style { "true" } else { "false" }));
    if !s.include.is_empty() {
        env.push(literal("EXRSCAN_INCLUDE", &s.include.join(",")));
    }
    if !s.exclude.is_empty() {
        env.push(literal("EXRSCAN_EXCLUDE", &s.exclude.join(",")));
    }
    env
}

fn sink_env(sink: &Sink) -> Vec<EnvVar> {
    let mut env = vec![literal("EXRSCAN_SINK", &sink_uri(sink))];
    if let Some(v) = &sink.vast {
        env.push(secret_ref("EXRSCAN_VAST_ACCESS_KEY_ID", &v.credentials_secret, "AWS_ACCESS_KEY_ID", false));
        env.push(secret_ref("EXRSCAN_VAST_SECRET_ACCESS_KEY", &v.credentials_secret, "AWS_SECRET_ACCESS_KEY", false));
    }
    if let Some(f) = &sink.flight {
        if let Some(secret) = &f.credentials_secret {
            env.push(secret_ref("EXRSCAN_FLIGHT_USERNAME", secret, "username", true));
            env.push(secret_ref("EXRSCAN_FLIGHT_PASSWORD", secret, "password", true));
            env.push(secret_ref("EXRSCAN_FLIGHT_TOKEN", secret, "token", true));
        }
        if f.tls.as_ref().is_some_and(|t| t.ca_secret.is_some()) {
            env.push(literal("EXRSCAN_FLIGHT_CA", &format!("{FLIGHT_CA_MOUNT}/ca.crt")));
        }
        if let Some(schema) = &f.schema {
            env.push(literal("EXRSCAN_FLIGHT_SCHEMA", schema));
        }
        if let Some(prefix) = &f.table_prefix {
            env.push(literal("EXRSCAN_FLIGHT_TABLE_PREFIX", prefix));
        }
    }
    env
}

fn tuning_env(scan: &ExrScan) -> Vec<EnvVar> {
    let mut env = vec![literal("EXRSCAN_EMBEDDINGS", if scan.spec.embeddings_enabled() { "true" } else { "false" })];
    if let Some(w) = &scan.spec.worker {
        if let Some(c) = w.concurrency {
            env.push(literal("EXRSCAN_CONCURRENCY", &c.to_string()));
        }
        if let Some(h) = w.header_bytes {
            env.push(literal("EXRSCAN_HEADER_BYTES", &h.to_string()));
        }
    }
    env
}

/// The run's plan header and chunk ConfigMaps projected into one directory (their keys
/// differ). Each is optional: the operator creates them all before the planner, so one
/// missing later (deleted by hand) lets the pod start, and the shard fails at once with exit
/// code 2 naming the missing file, instead of the pod waiting to mount it.
fn plan_volume(scan: &ExrScan, scan_ref: &ScanRef, run: &str) -> Volume {
    let header = names::plan_config_map(&scan_ref.name, run);
    let chunks = names::plan_chunk_maps(&scan_ref.name, run, scan.spec.shards);
    let sources = std::iter::once(header)
        .chain(chunks)
        .map(|name| VolumeProjection {
            config_map: Some(ConfigMapProjection { name, optional: Some(true), items: None }),
            ..Default::default()
        })
        .collect();
    Volume {
        name: "plan".into(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), default_mode: None }),
        ..Default::default()
    }
}

fn sink_volumes(sink: &Sink) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let flight_ca = sink.flight.as_ref().and_then(|f| f.tls.as_ref()).and_then(|t| t.ca_secret.as_ref());
    let vast_ca = sink.vast.as_ref().and_then(|v| v.ca_secret.as_ref());
    for (name, secret, path) in [("flight-ca", flight_ca, FLIGHT_CA_MOUNT), ("vast-ca", vast_ca, VAST_CA_MOUNT)] {
        if let Some(secret) = secret {
            volumes.push(secret_volume(name, secret));
            mounts.push(mount(name, path, true));
        }
    }
    if let Some(d) = &sink.duckdb {
        volumes.push(Volume {
            name: "catalog".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: d.persistent_volume_claim.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        });
        mounts.push(mount("catalog", DUCKDB_MOUNT, false));
    }
    (volumes, mounts)
}

/// A volume of the Secret `secret` (a CA bundle).
fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret.into()), ..Default::default() }),
        ..Default::default()
    }
}

pub(super) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(read_only), ..Default::default() }
}

pub(super) fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
    }
}

pub(super) fn secret_ref(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(optional) }),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;
    use exrscan_crds::{DuckDbSink, Sink, VastSink};

    fn env_of(t: &PodTemplateSpec) -> Vec<EnvVar> {
        t.spec.as_ref().expect("spec").containers[0].env.clone().unwrap_or_default()
    }

    fn value(env: &[EnvVar], name: &str) -> Option<String> {
        env.iter().find(|e| e.name == name).and_then(|e| e.value.clone())
    }

    #[test]
    fn shard_env_follows_the_contract() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let r = ScanRef::of(&scan).expect("ref");
        let t = template(&scan, &r, "abcd1234", Component::Shard, &fixtures::defaults(), vec!["shard".into()]);
        let env = env_of(&t);
        assert_eq!(value(&env, "EXRSCAN_SINK").as_deref(), Some("flight+grpc+tls://vastdb:443"));
        assert_eq!(value(&env, "EXRSCAN_FLIGHT_CA").as_deref(), Some("/etc/exrscan/flight-ca/ca.crt"));
        assert_eq!(value(&env, "EXRSCAN_FLIGHT_SCHEMA").as_deref(), Some("vfx"));
        assert_eq!(value(&env, "EXRSCAN_FLIGHT_TABLE_PREFIX").as_deref(), Some("exr_"));
        assert_eq!(value(&env, "EXRSCAN_S3_ENDPOINT").as_deref(), Some("http://minio:9000"));
        assert_eq!(value(&env, "AWS_REGION").as_deref(), Some("us-east-1"));
        assert_eq!(value(&env, "EXRSCAN_S3_FORCE_PATH_STYLE").as_deref(), Some("true"));
        assert_eq!(value(&env, "EXRSCAN_INCLUDE").as_deref(), Some("*.exr,*.EXR"));
        assert_eq!(value(&env, "EXRSCAN_EXCLUDE").as_deref(), Some("tmp/*"));
        assert_eq!(value(&env, "EXRSCAN_EMBEDDINGS").as_deref(), Some("true"));
        assert_eq!(value(&env, "EXRSCAN_SCAN_NAME").as_deref(), Some("renders"));
        assert_eq!(value(&env, "EXRSCAN_SCAN_UID").as_deref(), Some("0b5e9c1e-uid"));
        let pod_name = env.iter().find(|e| e.name == "POD_NAME").expect("POD_NAME");
        let field = pod_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).expect("fieldRef");
        assert_eq!(field.field_path, "metadata.name");
        // Secrets are referenced, never copied.
        for (var, secret, key, optional) in [
            ("AWS_ACCESS_KEY_ID", "s3-creds", "AWS_ACCESS_KEY_ID", false),
            ("AWS_SECRET_ACCESS_KEY", "s3-creds", "AWS_SECRET_ACCESS_KEY", false),
            ("AWS_SESSION_TOKEN", "s3-creds", "AWS_SESSION_TOKEN", true),
            ("EXRSCAN_FLIGHT_USERNAME", "vast-creds", "username", true),
            ("EXRSCAN_FLIGHT_PASSWORD", "vast-creds", "password", true),
            ("EXRSCAN_FLIGHT_TOKEN", "vast-creds", "token", true),
        ] {
            let e = env.iter().find(|e| e.name == var).expect(var);
            assert!(e.value.is_none(), "{var} must not carry a value");
            let r = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("secretKeyRef");
            assert_eq!((r.name.as_str(), r.key.as_str(), r.optional), (secret, key, Some(optional)));
        }
        let spec = t.spec.expect("spec");
        assert_eq!(spec.service_account_name.as_deref(), Some("renders-worker"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let c = &spec.containers[0];
        assert_eq!(c.command.as_deref(), Some(&["exrscan".to_string()][..]));
        let mounts: Vec<_> = c.volume_mounts.clone().unwrap_or_default().into_iter().map(|m| m.mount_path).collect();
        assert_eq!(mounts, vec!["/etc/exrscan/plan", "/etc/exrscan/flight-ca"]);
    }

    #[test]
    fn shards_see_the_plan_header_and_every_chunk() {
        let mut spec = fixtures::flight_spec();
        spec.shards = 1_000;
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        let t = template(&scan, &r, "abcd1234", Component::Shard, &fixtures::defaults(), vec![]);
        let volumes = t.spec.expect("spec").volumes.expect("volumes");
        let plan = volumes.iter().find(|v| v.name == "plan").expect("plan volume");
        let sources = plan.projected.as_ref().and_then(|p| p.sources.clone()).expect("projected");
        let maps: Vec<_> = sources.iter().filter_map(|s| s.config_map.as_ref()).collect();
        let names: Vec<_> = maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["renders-abcd1234-plan", "renders-abcd1234-plan-0", "renders-abcd1234-plan-1", "renders-abcd1234-plan-2"]
        );
        assert_eq!(sources.len(), maps.len(), "ConfigMaps only");
        for map in maps {
            assert_eq!(map.optional, Some(true), "a missing map fails the shard, not the mount");
            assert!(map.items.is_none(), "all keys: each chunk's key is its own");
        }
    }

    #[test]
    fn planner_gets_no_sink_credentials() {
        let scan = fixtures::scan(fixtures::flight_spec());
        let r = ScanRef::of(&scan).expect("ref");
        let t = template(&scan, &r, "abcd1234", Component::Planner, &fixtures::defaults(), vec!["plan".into()]);
        let env = env_of(&t);
        assert!(env.iter().all(|e| !e.name.starts_with("EXRSCAN_FLIGHT") && e.name != "EXRSCAN_SINK"));
        assert!(env.iter().any(|e| e.name == "AWS_ACCESS_KEY_ID"));
        assert!(t.spec.expect("spec").volumes.is_none());
    }

    #[test]
    fn duckdb_sink_mounts_the_claim() {
        let mut spec = fixtures::flight_spec();
        spec.shards = 1;
        spec.sink = Sink {
            duckdb: Some(DuckDbSink { persistent_volume_claim: "catalog-pvc".into(), path: "db/exr.duckdb".into() }),
            ..Default::default()
        };
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        let t = template(&scan, &r, "abcd1234", Component::Shard, &fixtures::defaults(), vec![]);
        assert_eq!(
            value(&env_of(&t), "EXRSCAN_SINK").as_deref(),
            Some("duckdb:///var/lib/exrscan/catalog/db/exr.duckdb")
        );
        let volumes = t.spec.clone().expect("spec").volumes.expect("volumes");
        let claim = volumes.iter().find_map(|v| v.persistent_volume_claim.as_ref()).expect("claim");
        assert_eq!(claim.claim_name, "catalog-pvc");
        let security = t.spec.as_ref().and_then(|s| s.security_context.clone()).expect("pod security context");
        assert_eq!(security.fs_group, Some(65532), "the claim is writable by the non-root worker");
    }

    #[test]
    fn vast_sink_passes_the_uri_and_secret_references() {
        let mut spec = fixtures::flight_spec();
        spec.sink = Sink {
            vast: Some(VastSink {
                endpoint: "https://vip.vast.example.com:8443/".into(),
                bucket: "exrscan-db".into(),
                schema: "exrscan/prod".into(),
                table_prefix: Some("exr_".into()),
                credentials_secret: "vast-keys".into(),
                ca_secret: Some("vast-ca".into()),
            }),
            ..Default::default()
        };
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        let t = template(&scan, &r, "abcd1234", Component::Shard, &fixtures::defaults(), vec![]);
        let env = env_of(&t);
        assert_eq!(
            value(&env, "EXRSCAN_SINK").as_deref(),
            Some(
                "vast://vip.vast.example.com:8443?bucket=exrscan-db&schema=exrscan/prod&tls=true\
                 &table_prefix=exr_&ca=/etc/exrscan/vast-ca/ca.crt"
            )
        );
        for (name, key) in [
            ("EXRSCAN_VAST_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
            ("EXRSCAN_VAST_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ] {
            let var = env.iter().find(|e| e.name == name).expect(name);
            assert!(var.value.is_none(), "{name} is a reference, never a value");
            let selector = var.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()).expect("secretKeyRef");
            assert_eq!(
                (selector.name.as_str(), selector.key.as_str(), selector.optional),
                ("vast-keys", key, Some(false))
            );
        }
        let c = &t.spec.as_ref().expect("spec").containers[0];
        let mounts: Vec<_> = c.volume_mounts.clone().unwrap_or_default().into_iter().map(|m| m.mount_path).collect();
        assert_eq!(mounts, vec!["/etc/exrscan/plan", "/etc/exrscan/vast-ca"]);

        let plain = VastSink {
            endpoint: "http://127.0.0.1:9090".into(),
            bucket: "b".into(),
            schema: "s".into(),
            ..Default::default()
        };
        assert_eq!(
            sink_uri(&Sink { vast: Some(plain), ..Default::default() }),
            "vast://127.0.0.1:9090?bucket=b&schema=s&tls=false"
        );
    }

    #[test]
    fn source_uri_joins_bucket_and_prefix() {
        let mut spec = fixtures::flight_spec();
        spec.source.prefix = "/a/b/".into();
        assert_eq!(source_uri(&fixtures::scan(spec)), "s3://renders/a/b/");
    }

    #[test]
    fn s3_ca_secret_is_mounted_for_the_planner_and_the_shards() {
        let mut spec = fixtures::flight_spec();
        spec.source.ca_secret = Some("minio-ca".into());
        let scan = fixtures::scan(spec);
        let r = ScanRef::of(&scan).expect("ref");
        for component in [Component::Planner, Component::Shard] {
            let t = template(&scan, &r, "abcd1234", component, &fixtures::defaults(), vec![]);
            assert_eq!(value(&env_of(&t), "EXRSCAN_S3_CA").as_deref(), Some("/etc/exrscan/s3-ca/ca.crt"));
            let spec = t.spec.expect("spec");
            let volume = spec.volumes.unwrap_or_default().into_iter().find(|v| v.name == "s3-ca").expect("volume");
            assert_eq!(volume.secret.and_then(|s| s.secret_name).as_deref(), Some("minio-ca"));
            let mount = spec.containers[0].volume_mounts.clone().unwrap_or_default();
            let mount = mount.iter().find(|m| m.name == "s3-ca").expect("mount");
            assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/etc/exrscan/s3-ca", Some(true)));
        }
        let t = template(
            &fixtures::scan(fixtures::flight_spec()),
            &r,
            "x",
            Component::Shard,
            &fixtures::defaults(),
            vec![],
        );
        assert_eq!(value(&env_of(&t), "EXRSCAN_S3_CA"), None, "no CA Secret: the system roots");
    }
}
