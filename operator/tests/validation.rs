//! The API server itself refuses bad ExrScans (schema + CEL rules of the committed CRD), with
//! messages that say what to fix; the examples are accepted.

mod harness;

use exrscan_crds::{DuckDbSink, ExrScan, ExrScanSpec, Sink, Source};
use harness::{Harness, kubectl_ok, scan_yaml};
use kube::api::{Api, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_refuses_bad_specs_with_readable_messages() {
    let h = Harness::start(false).await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("zero shards", scan_yaml("default", "s1", 0, ""), "spec.shards: Invalid value: 0"),
        ("too many shards", scan_yaml("default", "s2", 20000, ""), "less than or equal to 10000"),
        (
            "parallelism above shards",
            scan_yaml("default", "s3", 2, "  parallelism: 5\n"),
            "spec.parallelism must not exceed spec.shards",
        ),
        (
            "empty bucket",
            scan_yaml("default", "s4", 1, "").replace("bucket: renders", "bucket: \"\""),
            "spec.source.bucket",
        ),
        (
            "bad bucket name",
            scan_yaml("default", "s5", 1, "").replace("bucket: renders", "bucket: My_Renders"),
            "must be an S3 bucket name",
        ),
        (
            "two sinks",
            scan_yaml("default", "s6", 1, "").replace(
                "      endpoint: 127.0.0.1:1\n",
                "      endpoint: 127.0.0.1:1\n    duckdb:\n      persistentVolumeClaim: c\n",
            ),
            "exactly one of spec.sink.vast, spec.sink.flight or spec.sink.duckdb must be set",
        ),
        (
            "no sink",
            scan_yaml("default", "s7", 1, "").replace("    flight:\n      endpoint: 127.0.0.1:1\n", "    {}\n"),
            "exactly one of spec.sink.vast, spec.sink.flight or spec.sink.duckdb must be set",
        ),
        (
            "sharded duckdb",
            scan_yaml("default", "s8", 4, "")
                .replace("    flight:\n      endpoint: 127.0.0.1:1\n", "    duckdb:\n      persistentVolumeClaim: c\n"),
            "a duckdb sink has a single writer and needs spec.shards: 1",
        ),
        (
            "tiny headerBytes",
            scan_yaml("default", "s9", 1, "  worker:\n    headerBytes: 10\n"),
            "greater than or equal to 1024",
        ),
        (
            "endpoint with a scheme",
            scan_yaml("default", "s10", 1, "").replace("endpoint: 127.0.0.1:1", "endpoint: grpc://db:443"),
            "spec.sink.flight.endpoint must be host:port",
        ),
        (
            "comma in a glob",
            scan_yaml("default", "s11", 1, "").replace("    prefix:", "    include: [\"{a,b}.exr\"]\n    prefix:"),
            "globs must not contain ','",
        ),
        (
            "vast endpoint without a scheme",
            scan_yaml("default", "s12", 4, "").replace(
                "    flight:\n      endpoint: 127.0.0.1:1\n",
                &"    vast:\n      endpoint: https://vip.example.com\n      bucket: db\n      credentialsSecret: vast\n".replace("https://vip", "vip"),
            ),
            "spec.sink.vast.endpoint must be http://host[:port] or https://host[:port]",
        ),
        (
            "vast schema with an empty level",
            scan_yaml("default", "s13", 4, "").replace(
                "    flight:\n      endpoint: 127.0.0.1:1\n",
                &format!("{}      schema: a//b\n", "    vast:\n      endpoint: https://vip.example.com\n      bucket: db\n      credentialsSecret: vast\n"),
            ),
            "spec.sink.vast.schema must be names",
        ),
        (
            "vast CA over plain HTTP",
            scan_yaml("default", "s14", 4, "").replace(
                "    flight:\n      endpoint: 127.0.0.1:1\n",
                &"    vast:\n      endpoint: https://vip.example.com\n      bucket: db\n      credentialsSecret: vast\n      caSecret: ca\n".replace("https://", "http://"),
            ),
            "spec.sink.vast.caSecret needs an https:// endpoint",
        ),
        (
            "vast without credentials",
            scan_yaml("default", "s15", 4, "")
                .replace("    flight:\n      endpoint: 127.0.0.1:1\n", "    vast:\n      endpoint: http://v\n      bucket: db\n"),
            "credentialsSecret: Required value",
        ),
        (
            "timeZone without a schedule",
            scan_yaml("default", "s16", 1, "  timeZone: Europe/London\n"),
            "spec.timeZone, spec.concurrencyPolicy and spec.startingDeadlineSeconds apply to a spec.schedule",
        ),
        (
            "unknown concurrencyPolicy",
            scan_yaml("default", "s17", 1, "  schedule: \"@hourly\"\n  concurrencyPolicy: Allow\n"),
            "Unsupported value: \"Allow\"",
        ),
        (
            "events into duckdb",
            scan_yaml("default", "s18", 1, "  events:\n    brokers: [\"k:9092\"]\n    topic: t\n")
                .replace("    flight:\n      endpoint: 127.0.0.1:1\n", "    duckdb:\n      persistentVolumeClaim: c\n"),
            "spec.events needs a flight or vast sink",
        ),
        (
            "events broker without a port",
            scan_yaml("default", "s19", 1, "  events:\n    brokers: [\"kafka-0\"]\n    topic: t\n"),
            "spec.events.brokers must be host:port entries",
        ),
        (
            "events topic with a space",
            scan_yaml("default", "s20", 1, "  events:\n    brokers: [\"k:9092\"]\n    topic: \"a b\"\n"),
            "spec.events.topic must be a Kafka topic name",
        ),
        (
            "events with no broker",
            scan_yaml("default", "s21", 1, "  events:\n    brokers: []\n    topic: t\n"),
            "spec.events.brokers: Invalid value",
        ),
        (
            "events SASL without a mechanism it knows",
            scan_yaml(
                "default",
                "s22",
                1,
                "  events:\n    brokers: [\"k:9092\"]\n    topic: t\n    sasl:\n      mechanism: GSSAPI\n      credentialsSecret: k\n",
            ),
            "Unsupported value: \"GSSAPI\"",
        ),
        (
            "events with no consumer",
            scan_yaml("default", "s23", 1, "  events:\n    brokers: [\"k:9092\"]\n    topic: t\n    replicas: 0\n"),
            "spec.events.replicas: Invalid value: 0",
        ),
        (
            "events batches that never gather",
            scan_yaml("default", "s24", 1, "  events:\n    brokers: [\"k:9092\"]\n    topic: t\n    batchMilliseconds: 5\n"),
            "spec.events.batchMilliseconds: Invalid value: 5",
        ),
        (
            "name too long",
            scan_yaml("default", &"n".repeat(49), 1, ""),
            "metadata.name must be a DNS label of at most 48 characters",
        ),
    ];
    let mut failures = Vec::new();
    for (what, yaml, expected) in &cases {
        let (ok, stderr) = h.apply(yaml);
        if ok || !stderr.contains(expected) {
            failures.push(format!("{what}: accepted={ok}, stderr: {stderr}"));
        } else {
            eprintln!("{what}: refused: {}", stderr.trim());
        }
    }
    assert!(failures.is_empty(), "{} case(s) not refused as expected:\n{}", failures.len(), failures.join("\n"));

    // Through the client: a 422 with the rule's message.
    let api: Api<ExrScan> = Api::namespaced(h.client.clone(), "default");
    let spec = ExrScanSpec {
        source: Source { bucket: "renders".into(), ..Default::default() },
        sink: Sink {
            duckdb: Some(DuckDbSink { persistent_volume_claim: "catalog".into(), path: "x.duckdb".into() }),
            ..Default::default()
        },
        shards: 3,
        parallelism: Some(4),
        worker: None,
        embeddings: None,
        suspend: false,
        rescan: None,
        backoff_limit_per_index: 3,
        ttl_seconds_after_finished: None,
        timeout_seconds: None,
        max_failed_files: None,
        schedule: None,
        time_zone: None,
        concurrency_policy: None,
        starting_deadline_seconds: None,
        events: None,
    };
    match api.create(&PostParams::default(), &ExrScan::new("client-side", spec.clone())).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("spec.parallelism must not exceed spec.shards"), "{}", status.message);
            assert!(status.message.contains("a duckdb sink has a single writer"), "{}", status.message);
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    let mut good = spec;
    good.shards = 1;
    good.parallelism = None;
    let created =
        api.create(&PostParams::default(), &ExrScan::new("client-side", good)).await.expect("a valid scan is accepted");
    // Defaults are applied by the API server.
    assert_eq!(created.spec.backoff_limit_per_index, 3);
    assert_eq!(created.spec.source.prefix, "");

    // Updates are validated too.
    let (ok, stderr) = h.apply(&scan_yaml("default", "grow", 2, ""));
    assert!(ok, "{stderr}");
    let (ok, stderr) = h.apply(&scan_yaml("default", "grow", 2, "  parallelism: 3\n"));
    assert!(!ok && stderr.contains("spec.parallelism must not exceed spec.shards"), "{stderr}");

    // The examples are valid.
    kubectl_ok(&h.cluster, &["create", "namespace", "pipeline"]);
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let out = kubectl_ok(&h.cluster, &["apply", "--dry-run=server", "-f", &examples.display().to_string()]);
    let files = std::fs::read_dir(&examples)
        .expect("examples/")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml")))
        .count();
    assert_eq!(out.lines().count(), files, "every example is accepted: {out}");
}
