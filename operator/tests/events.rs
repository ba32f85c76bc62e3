//! `spec.events` with every real part: the control plane, the node agent running the real
//! `exrscan` binary in the consumer pods of the scan's `<scan>-follow` Deployment, an
//! Apache Kafka broker, MinIO publishing its bucket notifications to it (a PutObject really
//! produces the event), and Apache Arrow's Flight SQL server as the catalog, read back with
//! the ADBC driver. An upload lands in the catalog and in `status.events` within seconds;
//! `spec.suspend` scales the consumers to 0; removing `spec.events` deletes them.

mod harness;

use std::time::{Duration, Instant};

use exrscan_crds::{ExrScan, Phase};
use harness::Harness;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams};
use object_store::{ObjectStoreExt, PutPayload};
use testenv::flightsql::FlightSqlOptions;
use testenv::{Delivery, FlightSqlServer, KafkaServer, KafkaTarget, S3Options, S3Server};

/// The notification topic.
const TOPIC: &str = "renders-events";

/// The `s3:TestEvent` S3 sends when a notification is configured; it also makes the topic.
const TEST_EVENT: &[u8] =
    br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-06T00:00:00.000Z","Bucket":"renders"}"#;

/// Rows of `files` with this `source_uri`, through the Flight SQL server with ADBC.
fn rows_of(flight: &FlightSqlServer, uri: &str) -> i64 {
    let code = "import sys\n\
        import adbc_driver_flightsql.dbapi as fs\n\
        with fs.connect(sys.argv[1], db_kwargs={'username': 'exrscan', 'password': 's3cret'}) as c:\n\
        \x20   cur = c.cursor()\n\
        \x20   cur.execute(\"SELECT count(*) FROM files WHERE source_uri = '\" + sys.argv[2] + \"'\")\n\
        \x20   print(cur.fetchone()[0])\n";
    let out = testenv::python::run(code, &[&flight.adbc_uri(), uri]).unwrap_or_else(|e| panic!("ADBC read-back: {e}"));
    out.trim().parse().unwrap_or_else(|e| panic!("row count {out:?}: {e}"))
}

fn manifest(s3: &S3Server, flight: &FlightSqlServer, kafka: &KafkaServer, extra: &str) -> String {
    format!(
        "apiVersion: exrscan.dev/v1alpha1\nkind: ExrScan\nmetadata:\n  name: show\n  namespace: default\nspec:\n  source:\n    bucket: renders\n    prefix: show/\n    endpoint: {endpoint}\n    region: {region}\n    forcePathStyle: true\n    credentialsSecret: s3-creds\n  sink:\n    flight:\n      endpoint: {flight}\n      credentialsSecret: sink-creds\n{extra}",
        endpoint = s3.endpoint(),
        region = testenv::s3::REGION,
        flight = flight.addr(),
    )
    .replace("BROKERS", &kafka.bootstrap())
}

const EVENTS: &str = "  events:\n    brokers: [\"BROKERS\"]\n    topic: renders-events\n";

async fn follow_pods(h: &Harness) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), "default");
    let selector = "exrscan.dev/scan=show,app.kubernetes.io/component=follow";
    pods.list(&ListParams::default().labels(selector)).await.expect("pods listed").items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_indexed_by_the_scans_consumers_within_seconds() {
    let kafka = KafkaServer::start().unwrap_or_else(|e| panic!("{e}"));
    kafka.produce(TOPIC, &[TEST_EVENT]).unwrap_or_else(|e| panic!("{e}"));
    let target =
        KafkaTarget { brokers: kafka.bootstrap(), topic: TOPIC.into(), delivery: Delivery::Queued, senders: None };
    let s3 = S3Server::start_with(S3Options { kafka: Some(target), ..S3Options::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    s3.create_bucket("renders").unwrap_or_else(|e| panic!("{e}"));
    s3.notify_kafka("renders").unwrap_or_else(|e| panic!("{e}"));
    let flight = FlightSqlServer::start_with(FlightSqlOptions {
        basic_auth: Some(("exrscan".into(), "s3cret".into())),
        bulk_ingest: true,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let h = Harness::start(false).await;
    let _agent = h.exrscan_agent();
    h.secrets(&[
        ("s3-creds", vec![("AWS_ACCESS_KEY_ID", s3.access_key()), ("AWS_SECRET_ACCESS_KEY", s3.secret_key())]),
        ("sink-creds", vec![("username", "exrscan"), ("password", "s3cret")]),
    ])
    .await;
    let _op = h.operator("op-1", &[]);

    // A scan with a schedule (its runs sweep what events miss) and events.
    let scheduled = format!("  schedule: \"0 3 * * *\"\n{EVENTS}");
    let (ok, err) = h.apply(&manifest(&s3, &flight, &kafka, &scheduled));
    assert!(ok, "{err}");
    let started = Instant::now();
    let ready = h
        .wait_scan("default", "show", Duration::from_secs(90), "a ready consumer", |s| {
            s.status.as_ref().and_then(|s| s.events.as_ref()).is_some_and(|e| e.replicas_ready == 1)
        })
        .await;
    eprintln!("consumer ready after {:?}", started.elapsed());
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), "default");
    let deployment = deployments.get("show-follow").await.expect("the Deployment");
    let owner = &deployment.metadata.owner_references.clone().expect("owned")[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("ExrScan", ready.metadata.uid.as_deref().unwrap_or("")));
    assert_eq!(follow_pods(&h).await.len(), 1);

    // The TestEvent on the topic is skipped; a PutObject is indexed within seconds.
    let sample = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples"))
        .expect("samples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "exr"))
        .min()
        .expect("a sample EXR");
    let store = s3.store("renders").unwrap_or_else(|e| panic!("{e}"));
    let put = |key: &str, body: Vec<u8>| {
        let store = &store;
        let path = object_store::path::Path::from(key);
        async move { store.put(&path, PutPayload::from(body)).await.expect("uploaded") }
    };
    let uploaded = Instant::now();
    put("show/shot001/beauty.1001.exr", std::fs::read(&sample).expect("sample")).await;
    put("show/shot001/notes.txt", b"not an image".to_vec()).await;
    // In the catalog (polled through ADBC, each query costs some 0.5 s: an upper bound).
    let uri = "s3://renders/show/shot001/beauty.1001.exr";
    while rows_of(&flight, uri) == 0 {
        assert!(uploaded.elapsed() < Duration::from_secs(15), "not in the catalog\n{}", h.diagnostics());
    }
    let in_catalog = uploaded.elapsed();
    let indexed = h
        .wait_scan("default", "show", Duration::from_secs(30), "the upload in status.events", |s| {
            s.status.as_ref().and_then(|s| s.events.as_ref()).is_some_and(|e| e.indexed == 1 && e.skipped >= 2)
        })
        .await;
    let latency = uploaded.elapsed();
    let events = indexed.status.and_then(|s| s.events).expect("status.events");
    eprintln!("upload → row in the catalog within {in_catalog:?}, → status.events.indexed in {latency:?}: {events:?}");
    assert!(latency < Duration::from_secs(15), "{latency:?}");
    assert!(events.last_event_time.is_some(), "{events:?}");
    assert_eq!(rows_of(&flight, uri), 1, "the upload is in the catalog once");
    let lag = h
        .wait_scan("default", "show", Duration::from_secs(30), "the lag known and 0", |s| {
            s.status.as_ref().and_then(|s| s.events.as_ref()).and_then(|e| e.lag) == Some(0)
        })
        .await;
    assert_eq!(lag.status.and_then(|s| s.events).map(|e| e.indexed), Some(1));
    // The consumer reports under its pod name; nothing else is in the map.
    let cms: Api<ConfigMap> = Api::namespaced(h.client.clone(), "default");
    let keys: Vec<String> = cms.get("show-follow").await.expect("map").data.unwrap_or_default().into_keys().collect();
    let pods: Vec<String> = follow_pods(&h).await.into_iter().filter_map(|p| p.metadata.name).collect();
    assert_eq!(keys, pods, "one entry per consumer pod");
    // ... through the worker ServiceAccount, which may patch that map and nothing more.
    let can = |verb: &str, resource: &str| {
        let sa = "--as=system:serviceaccount:default:show-worker";
        let out = h.cluster.kubectl().args(["auth", "can-i", verb, resource, sa]).output().expect("kubectl runs");
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(can("patch", "configmap/show-follow"));
    for (verb, resource) in [("get", "configmap/show-follow"), ("patch", "configmap/other"), ("list", "pods")] {
        assert!(!can(verb, resource), "the worker may not {verb} {resource}");
    }

    // Suspended: no consumer runs; uploads wait on the topic.
    let (ok, err) = h.apply(&manifest(&s3, &flight, &kafka, &format!("  suspend: true\n{scheduled}")));
    assert!(ok, "{err}");
    h.wait_scan("default", "show", Duration::from_secs(30), "0 replicas", |s| {
        s.status.as_ref().and_then(|s| s.events.as_ref()).is_some_and(|e| e.replicas == 0 && e.replicas_ready == 0)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !follow_pods(&h).await.is_empty() {
        assert!(Instant::now() < deadline, "the consumer pod still runs while suspended\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(deployments.get("show-follow").await.expect("kept").spec.and_then(|s| s.replicas), Some(0));
    put("show/shot002/beauty.1001.exr", std::fs::read(&sample).expect("sample")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows_of(&flight, "s3://renders/show/shot002/beauty.1001.exr"), 0, "nothing consumed while suspended");

    // Resumed: the waiting event is indexed.
    let (ok, err) = h.apply(&manifest(&s3, &flight, &kafka, &scheduled));
    assert!(ok, "{err}");
    h.wait_scan("default", "show", Duration::from_secs(90), "the waiting upload indexed", |s| {
        s.status.as_ref().and_then(|s| s.events.as_ref()).is_some_and(|e| e.indexed == 2 && e.replicas_ready == 1)
    })
    .await;
    assert_eq!(rows_of(&flight, "s3://renders/show/shot002/beauty.1001.exr"), 1);

    // An upload whose event is lost (the bucket's notifications off) is caught by the next
    // scheduled run, beside the consumers: it sweeps the prefix, inserts the lost file, and
    // leaves what the events indexed unchanged; nothing is written twice.
    s3.notify_none("renders").unwrap_or_else(|e| panic!("{e}"));
    let lost = "s3://renders/show/shot003/beauty.1001.exr";
    put("show/shot003/beauty.1001.exr", std::fs::read(&sample).expect("sample")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows_of(&flight, lost), 0, "its event was lost");
    let every_minute = format!("  schedule: \"* * * * *\"\n{EVENTS}");
    let (ok, err) = h.apply(&manifest(&s3, &flight, &kafka, &every_minute));
    assert!(ok, "{err}");
    let swept = h
        .wait_scan("default", "show", Duration::from_secs(180), "the next tick's run", |s| {
            s.status.as_ref().is_some_and(|s| s.run.is_some() && s.phase.is_some_and(Phase::is_finished))
        })
        .await;
    let st = swept.status.expect("status");
    assert_eq!(st.phase, Some(Phase::Succeeded), "{:?}\n{}", st.conditions, h.diagnostics());
    assert!(st.last_schedule_time.is_some(), "a scheduled run: {st:?}");
    let counts = st.counts.expect("counts");
    assert_eq!((counts.discovered, counts.inserted, counts.unchanged), (3, 1, 2), "{counts:?}");
    assert_eq!(st.events.map(|e| (e.indexed, e.replicas_ready)), Some((2, 1)), "the consumers go on");
    for uri in ["s3://renders/show/shot001/beauty.1001.exr", "s3://renders/show/shot002/beauty.1001.exr", lost] {
        assert_eq!(rows_of(&flight, uri), 1, "{uri} written once");
    }

    // spec.events removed: the consumers and their objects go, and so does status.events.
    let (ok, err) = h.apply(&manifest(&s3, &flight, &kafka, "  schedule: \"0 3 * * *\"\n"));
    assert!(ok, "{err}");
    let gone: ExrScan = h
        .wait_scan("default", "show", Duration::from_secs(30), "status.events gone", |s| {
            s.status.as_ref().is_some_and(|s| s.events.is_none())
        })
        .await;
    assert!(gone.status.is_some());
    assert!(deployments.get_opt("show-follow").await.expect("get").is_none(), "the Deployment is deleted");
    assert!(cms.get_opt("show-follow").await.expect("get").is_none(), "the ConfigMap is deleted");
}
