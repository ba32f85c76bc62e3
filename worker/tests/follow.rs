//! `exrscan follow` on the real parts: an Apache Kafka broker (KRaft, from Maven Central's
//! jars), MinIO publishing its bucket notifications to it (so a PutObject really produces
//! the S3 event), and a catalog read back by an independent client (DuckDB's Python
//! client, the ADBC Flight SQL driver).

mod bucket;
mod fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bucket::{BUCKET, PREFIX, TestResult, exrscan_s3, last_json, run};
use fixtures::{adbc_rows, duckdb_rows, sample_names, samples_dir};
use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};
use testenv::flightsql::FlightSqlOptions;
use testenv::{Delivery, FlightSqlServer, KafkaServer, KafkaTarget, S3Options, S3Server};

/// The notification topic.
const TOPIC: &str = "renders-events";

/// The `s3:TestEvent` S3 sends when a notification is configured.
const TEST_EVENT: &[u8] =
    br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-06T00:00:00.000Z","Bucket":"renders"}"#;

/// A broker and a MinIO server whose bucket [`BUCKET`] notifies it of every creation and
/// removal through a queue directory (nothing lost while the broker is down); the topic is
/// made (by sending it a [`TEST_EVENT`]) before any consumer starts.
fn servers() -> (KafkaServer, S3Server) {
    servers_with(Delivery::Queued, None)
}

/// [`servers`] with MinIO's `delivery` to the broker and its `senders` (see [`KafkaTarget`]).
fn servers_with(delivery: Delivery, senders: Option<usize>) -> (KafkaServer, S3Server) {
    let kafka = KafkaServer::start().unwrap_or_else(|e| panic!("{e}"));
    kafka.produce(TOPIC, &[TEST_EVENT]).unwrap_or_else(|e| panic!("{e}"));
    let target = KafkaTarget { brokers: kafka.bootstrap(), topic: TOPIC.into(), delivery, senders };
    let s3 = S3Server::start_with(S3Options { kafka: Some(target), ..S3Options::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    s3.create_bucket(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    s3.notify_kafka(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    (kafka, s3)
}

/// A running `exrscan follow`, its JSON log in a file.
struct Follow {
    child: Child,
    log: PathBuf,
}

impl Follow {
    fn start(s3: &S3Server, kafka: &KafkaServer, sink: &str, log: &Path, extra: &[&str]) -> Self {
        let mut cmd: Command = exrscan_s3(s3);
        cmd.args(["follow", &format!("s3://{BUCKET}/{PREFIX}"), "--sink", sink])
            .args(["--brokers", &kafka.bootstrap(), "--topic", TOPIC, "--group", "follow-test"])
            .args(["--stats-seconds", "1", "--log-format", "json"])
            .env("EXRSCAN_LOG", "info,exrscan::follow=debug");
        if !extra.contains(&"--concurrency") {
            // Eight header reads at once are plenty for the tests' few objects.
            cmd.args(["--concurrency", "8"]);
        }
        cmd.args(extra);
        let out = std::fs::File::options().create(true).append(true).open(log).expect("log file");
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(out).spawn().expect("exrscan follow starts");
        Self { child, log: log.to_path_buf() }
    }

    /// The fields of the last `follow stats` line (of any run logging to the same file).
    fn stats(&self) -> Value {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["fields"]["message"] == "follow stats")
            .map(|line| line["fields"].clone())
            .unwrap_or(Value::Null)
    }

    /// Waits until the stats satisfy `ready`; panics with the log's tail after `limit`.
    fn wait_for(&mut self, limit: Duration, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let stats = self.stats();
            if ready(&stats) {
                return stats;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exrscan follow exited ({status}) waiting for {what}: {}", self.tail());
            }
            assert!(started.elapsed() < limit, "no {what} after {limit:?}; last stats {stats}; log: {}", self.tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Batches of at least one object written and committed, as the per-batch debug lines
    /// count them (a batch of only the topic's `s3:TestEvent` does not count).
    fn object_batches_logged(&self) -> usize {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == "batch written and committed")
            .filter(|line| line["fields"]["objects"].as_u64().is_some_and(|n| n > 0))
            .count()
    }

    /// Per batch of objects: its objects and milliseconds gathering, writing (header reads
    /// and the sink) and committing, from the per-batch debug lines.
    fn batch_phases(&self) -> Vec<[u64; 4]> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == "batch written and committed")
            .map(|line| ["objects", "gather_ms", "write_ms", "commit_ms"].map(|f| n(&line["fields"], f)))
            .filter(|phases| phases[0] > 0)
            .collect()
    }

    /// The address the latest run serves `/metrics` on (`--metrics-address 127.0.0.1:0`).
    fn metrics_address(&self) -> String {
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let address = text
                .lines()
                .rev()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| line["fields"]["message"] == "serving /metrics, /healthz and /readyz")
                .and_then(|line| line["fields"]["address"].as_str().map(str::to_owned));
            if let Some(address) = address {
                return address;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no metrics address logged: {}", self.tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then waits for a clean exit; returns the final stats.
    fn stop(mut self) -> Value {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "follow did not stop on SIGTERM: {}", self.tail());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "follow exited {status} after SIGTERM: {}", self.tail());
        self.stats()
    }

    /// SIGKILL (a crashed pod).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Follow {
    /// A test that fails leaves no consumer running (killing an exited one does nothing).
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` over HTTP/1.0: the status code and the body.
fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

/// The value of the metric line that starts with `series ` (name and labels), if any.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

/// Uploads each (key, local file) pair, `parallel` at a time.
/// Uploads each (key, local file) pair, `parallel` at a time; returns each upload's key,
/// size and ETag.
fn put_all(s3: &S3Server, files: &[(String, PathBuf)], parallel: usize) -> Vec<(String, usize, Option<String>)> {
    let store = s3.store(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    runtime().block_on(async {
        let puts = futures::stream::iter(files).map(|(key, path)| {
            let store = &store;
            async move {
                let body = std::fs::read(path).expect("sample");
                let size = body.len();
                let put = store.put(&object_store::path::Path::from(key.as_str()), PutPayload::from(body)).await;
                put.map(|done| (key.clone(), size, done.e_tag))
            }
        });
        let results = puts.buffer_unordered(parallel).collect::<Vec<_>>().await;
        results.into_iter().map(|result| result.unwrap_or_else(|e| panic!("upload: {e}"))).collect()
    })
}

/// An S3 event notification of the creation of `key`, as MinIO sends it.
fn created_event(key: &str, size: usize, etag: Option<&str>, sequencer: usize) -> Vec<u8> {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let object = json!({"key": key, "size": size, "eTag": etag.unwrap_or_default().trim_matches('"'),
        "sequencer": format!("{sequencer:016X}")});
    let record = json!({"eventVersion": "2.0", "eventSource": "minio:s3", "eventTime": time,
        "eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}, "object": object}});
    serde_json::to_vec(&json!({"EventName": "s3:ObjectCreated:Put", "Key": format!("{BUCKET}/{key}"),
        "Records": [record]}))
    .expect("JSON")
}

/// When each key under `prefix` first appears in a message on [`TOPIC`], seen by a consumer
/// of its own, until `count` keys are seen or `limit` passes.
fn watch_topic(kafka: &KafkaServer, prefix: &str, count: usize, limit: Duration) -> BTreeMap<String, Instant> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("group.id", "latency-observer")
        .set("enable.auto.commit", "false")
        .create()
        .expect("observer");
    // Assigned, not subscribed: it reads at once, without joining a group.
    let mut partitions = rdkafka::TopicPartitionList::new();
    for partition in 0..testenv::kafka::PARTITIONS as i32 {
        partitions.add_partition_offset(TOPIC, partition, rdkafka::Offset::Beginning).expect("partition");
    }
    consumer.assign(&partitions).expect("assign");
    let mut seen = BTreeMap::new();
    let started = Instant::now();
    while seen.len() < count && started.elapsed() < limit {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        let now = Instant::now();
        let text = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        let key = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["Key"].as_str().map(str::to_owned));
        if let Some(key) = key.and_then(|k| k.strip_prefix(&format!("{BUCKET}/")).map(str::to_owned))
            && key.starts_with(prefix)
        {
            seen.entry(key).or_insert(now);
        }
    }
    seen
}

fn put_bytes(s3: &S3Server, key: &str, body: &[u8]) {
    let store = s3.store(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    runtime()
        .block_on(store.put(&object_store::path::Path::from(key), PutPayload::from(body.to_vec())))
        .unwrap_or_else(|e| panic!("upload {key}: {e}"));
}

fn delete(s3: &S3Server, key: &str) {
    let store = s3.store(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    runtime().block_on(store.delete(&object_store::path::Path::from(key))).unwrap_or_else(|e| panic!("{e}"));
}

/// `count` keys under `show/<wave>/`, cycling through the samples.
fn wave(name: &str, count: usize) -> Vec<(String, PathBuf)> {
    let samples = sample_names();
    (0..count)
        .map(|i| {
            let sample = &samples[i % samples.len()];
            (format!("{PREFIX}{name}/{i:04}_{sample}"), samples_dir().join(sample))
        })
        .collect()
}

fn n(stats: &Value, field: &str) -> u64 {
    stats[field].as_u64().unwrap_or(0)
}

#[test]
fn uploads_land_in_seconds_deletes_are_recorded_and_junk_is_counted_and_skipped() -> TestResult {
    let (kafka, s3) = servers();
    let dir = testenv::work_dir("follow")?;
    let catalog = dir.path().join("catalog.duckdb");
    // Messages that are not object events, straight onto the topic (after the test event).
    let accessed = br#"{"Records":[{"eventName":"s3:ObjectAccessed:Get","s3":{"bucket":{"name":"renders"},"object":{"key":"show/a.exr"}}}]}"#;
    kafka.produce(TOPIC, &[b"not json at all", b"{\"Records\": 7}", accessed])?;

    let sink = format!("duckdb://{}", catalog.display());
    let extra = ["--batch-ms", "200", "--metrics-address", "127.0.0.1:0"];
    let mut follow = Follow::start(&s3, &kafka, &sink, &dir.path().join("log"), &extra);
    let metrics = follow.metrics_address();
    assert_eq!(http_get(&metrics, "/healthz"), (200, "ok".to_string()));
    follow.wait_for(Duration::from_secs(120), "the junk messages", |s| n(s, "messages") >= 4);

    // One render: in the catalog (written and committed) within seconds of its upload.
    let first = wave("first", 1);
    let uploaded = Instant::now();
    put_all(&s3, &first, 1);
    follow.wait_for(Duration::from_secs(30), "the upload indexed", |s| n(s, "inserted") == 1);
    let latency = uploaded.elapsed();
    assert!(latency < Duration::from_secs(10), "upload → catalog took {latency:?}");

    // More renders, files the globs leave out, a key outside the prefix, a damaged EXR, one
    // render rewritten (same key, the events coalesce or the resume check skips it), and
    // two deletes.
    let more = wave("more", 12);
    put_all(&s3, &more, 4);
    put_bytes(&s3, &format!("{PREFIX}more/notes.txt"), b"not an image");
    put_bytes(&s3, "elsewhere/outside.exr", b"outside the prefix");
    put_bytes(&s3, &format!("{PREFIX}more/broken.exr"), b"\x76\x2f\x31\x01 not a header");
    put_all(&s3, &more[..1], 1);
    follow.wait_for(Duration::from_secs(60), "the renders indexed", |s| n(s, "inserted") == 13 && n(s, "failed") == 1);
    let removed = [more[1].0.clone(), more[2].0.clone()];
    for key in &removed {
        delete(&s3, key);
    }
    follow.wait_for(Duration::from_secs(60), "the deletes recorded and every offset committed", |s| {
        n(s, "removals") == 2 && s["lag"] == json!(0)
    });

    // The same counts on /metrics, scraped while it runs, and the lag per partition. The
    // lags come from librdkafka's statistics (every second), which can call a partition's lag
    // unknown for a moment (-1: left off the page; seen once in a CI run): scraped until
    // every partition shows one.
    assert_eq!(http_get(&metrics, "/readyz"), (200, "ready".to_string()));
    let lag_series =
        |partition| format!("exrscan_follow_partition_consumer_lag{{topic=\"{TOPIC}\",partition=\"{partition}\"}}");
    let scraping = Instant::now();
    let page = loop {
        let (status, page) = http_get(&metrics, "/metrics");
        assert_eq!(status, 200);
        let known = (0..testenv::kafka::PARTITIONS).all(|p| metric(&page, &lag_series(p)).is_some());
        if known || scraping.elapsed() > Duration::from_secs(30) {
            break page;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    for (series, value) in [
        ("exrscan_follow_objects_total{outcome=\"inserted\"}", 13.0),
        ("exrscan_follow_objects_total{outcome=\"failed\"}", 1.0),
        ("exrscan_follow_removals_total{outcome=\"recorded\"}", 2.0),
        ("exrscan_follow_skipped_total{reason=\"malformed\"}", 2.0),
        ("exrscan_follow_skipped_total{reason=\"test_event\"}", 1.0),
        ("exrscan_follow_skipped_total{reason=\"other_events\"}", 1.0),
        ("exrscan_follow_skipped_total{reason=\"outside_prefix\"}", 1.0),
        ("exrscan_follow_skipped_total{reason=\"filtered\"}", 1.0),
        ("exrscan_follow_consumer_lag", 0.0),
    ] {
        assert_eq!(metric(&page, series), Some(value), "{series} in {page}");
    }
    for partition in 0..testenv::kafka::PARTITIONS {
        let series = lag_series(partition);
        assert_eq!(metric(&page, &series), Some(0.0), "{series} in {page}");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    let last = metric(&page, "exrscan_follow_last_event_timestamp_seconds").unwrap_or_default();
    assert!(last > now - 300.0 && last <= now + 1.0, "last event {last}, now {now}");
    let batches = metric(&page, "exrscan_follow_batches_total").unwrap_or_default();
    assert!(batches >= 3.0, "{page}");
    assert_eq!(metric(&page, "exrscan_follow_batch_duration_seconds_count"), Some(batches), "{page}");
    assert!(metric(&page, "exrscan_follow_event_age_seconds_count").is_some_and(|n| n >= 2.0), "{page}");
    assert!(page.ends_with("# EOF\n"), "OpenMetrics ends with # EOF: {page}");
    let stats = follow.stop();

    assert_eq!(n(&stats, "malformed"), 2, "{stats}");
    assert_eq!(n(&stats, "test_events"), 1, "{stats}");
    assert_eq!(n(&stats, "other_events"), 1, "{stats}");
    assert_eq!(n(&stats, "filtered"), 1, "notes.txt: {stats}");
    assert_eq!(n(&stats, "outside_prefix"), 1, "elsewhere/outside.exr: {stats}");
    assert_eq!(n(&stats, "failed"), 1, "broken.exr: {stats}");
    assert_eq!(n(&stats, "removals"), 2, "{stats}");
    assert!(stats["last_event"].as_str().is_some_and(|t| t.starts_with("20")), "{stats}");

    // Read back by DuckDB's own client: every render once, the deleted ones still there
    // (history kept) and listed in `removals` with their sequencers.
    let rows = duckdb_rows(&catalog, "SELECT key, count(*) AS n FROM files GROUP BY key ORDER BY key");
    let found: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| (r["key"].as_str().unwrap_or_default().to_string(), r["n"].as_u64().unwrap_or(0)))
        .collect();
    let expected: BTreeSet<String> = first.iter().chain(&more).map(|(k, _)| k.clone()).collect();
    assert_eq!(found.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(found.values().all(|n| *n == 1), "a file twice: {found:?}");
    let removals = duckdb_rows(
        &catalog,
        "SELECT key, source_uri, sequencer, event_name, event_time IS NOT NULL AS timed FROM removals ORDER BY key",
    );
    assert_eq!(removals.len(), 2, "{removals:?}");
    for (row, key) in removals.iter().zip(&removed) {
        assert_eq!(row["key"], json!(key));
        assert_eq!(row["source_uri"], json!(format!("s3://{BUCKET}/{key}")));
        assert_eq!(row["event_name"], json!("ObjectRemoved:Delete"));
        assert!(!row["sequencer"].as_str().unwrap_or_default().is_empty(), "{row}");
        assert_eq!(row["timed"], json!(true));
    }
    // The query docs/queries.md gives for the files that exist now.
    let live = duckdb_rows(
        &catalog,
        "SELECT count(*) AS n FROM indexed_files f WHERE NOT EXISTS (SELECT 1 FROM removals r \
         WHERE r.source_uri = f.source_uri AND r.event_time >= f.last_modified)",
    );
    assert_eq!(live[0]["n"], json!(expected.len() - 2));
    Ok(())
}

/// Keys in the Flight SQL catalog's `files` table, with their row counts, read by ADBC.
fn flight_keys(flight: &FlightSqlServer) -> BTreeMap<String, u64> {
    let rows = adbc_rows(&flight.adbc_uri(), "SELECT key, count(*) AS n FROM files GROUP BY key", &json!({}));
    rows.iter().map(|r| (r["key"].as_str().unwrap_or_default().to_string(), r["n"].as_u64().unwrap_or(0))).collect()
}

fn wait_for_keys(flight: &FlightSqlServer, count: usize, limit: Duration) -> BTreeMap<String, u64> {
    let started = Instant::now();
    loop {
        let keys = flight_keys(flight);
        if keys.len() >= count {
            return keys;
        }
        assert!(started.elapsed() < limit, "{} of {count} files in the catalog after {limit:?}", keys.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_upload_exactly_once_through_a_killed_consumer_a_broker_restart_and_a_sink_outage() -> TestResult {
    let (mut kafka, s3) = servers();
    // The consumer is killed while batches flow, so often inside a batch's transaction.
    // The server expires an abandoned transaction as production servers do; the stock
    // example keeps it, and SQLite's write lock with it, for ever, and the restarted
    // consumer then retries "database is locked" without end (docs/sinks.md, abandoned
    // transactions; this test stalled so in 1 of 3 CI runs before).
    let idle = FlightSqlOptions { transaction_idle_timeout: Some(Duration::from_secs(3)), ..Default::default() };
    let mut flight = FlightSqlServer::start_with(idle)?;
    let dir = testenv::work_dir("follow-faults")?;
    let log = dir.path().join("log");
    // Small batches, so that a kill lands between batches and inside one; a short sink
    // retry, so that the outage outlasts the writer's own retries.
    // The killed consumer leaves the group after 6 s (the broker's least), not 45.
    let extra = [
        "--batch-ms",
        "200",
        "--batch-objects",
        "10",
        "--sink-retry-seconds",
        "3",
        "--kafka-option",
        "session.timeout.ms=6000",
        "--metrics-address",
        "127.0.0.1:0",
    ];
    let mut all = Vec::new();

    // Wave 1, uploaded slowly, with the consumer killed right after its first batch of
    // renders (while it gathers or writes the next).
    let mut follow = Follow::start(&s3, &kafka, &flight.uri(), &log, &extra);
    let wave1 = wave("w1", 300);
    std::thread::scope(|scope| {
        scope.spawn(|| put_all(&s3, &wave1, 2));
        let started = Instant::now();
        while follow.object_batches_logged() == 0 {
            assert!(started.elapsed() < Duration::from_secs(120), "no batch: {}", follow.tail());
            std::thread::sleep(Duration::from_millis(20));
        }
        follow.kill();
    });
    all.extend(wave1);
    let partial = flight_keys(&flight).len();
    assert!(partial > 0 && partial < all.len(), "the kill did not cut the wave ({partial} indexed)");
    // Wave 2 while no consumer runs.
    let wave2 = wave("w2", 30);
    put_all(&s3, &wave2, 8);
    all.extend(wave2);
    let follow = Follow::start(&s3, &kafka, &flight.uri(), &log, &extra);
    wait_for_keys(&flight, all.len(), Duration::from_secs(180));

    // The broker killed and started again; wave 3 uploaded while it is down (MinIO queues
    // the events) and after.
    kafka.stop();
    let wave3 = wave("w3", 20);
    put_all(&s3, &wave3[..10], 4);
    kafka.restart()?;
    put_all(&s3, &wave3[10..], 4);
    all.extend(wave3);
    wait_for_keys(&flight, all.len(), Duration::from_secs(240));

    // The catalog server down for a while: wave 4 waits, nothing is lost, and the consumer
    // says it is not ready meanwhile.
    let metrics = follow.metrics_address();
    assert_eq!(http_get(&metrics, "/readyz").0, 200);
    flight.stop();
    let wave4 = wave("w4", 30);
    put_all(&s3, &wave4, 8);
    all.extend(wave4);
    let down = Instant::now();
    while http_get(&metrics, "/readyz").0 != 503 {
        assert!(down.elapsed() < Duration::from_secs(60), "still ready with the sink down: {}", follow.tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(8).saturating_sub(down.elapsed()));
    flight.restart()?;
    let found = wait_for_keys(&flight, all.len(), Duration::from_secs(180));
    let back = Instant::now();
    while http_get(&metrics, "/readyz").0 != 200 {
        assert!(back.elapsed() < Duration::from_secs(30), "not ready after the sink came back: {}", follow.tail());
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = follow.stop();

    let expected: BTreeSet<String> = all.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(found.keys().cloned().collect::<BTreeSet<_>>(), expected, "every upload, none missing");
    let twice: Vec<_> = found.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "files in the catalog more than once: {twice:?}");
    assert!(n(&stats, "batch_retries") >= 1, "the sink outage made a batch wait: {stats}");
    assert_eq!(n(&stats, "failed"), 0, "{stats}");
    Ok(())
}

/// SIGTERM while a batch waits on an S3 outage (its reads retry for up to 120 s): the
/// consumer leaves the batch uncommitted and exits 0 within the stop grace (10 s); the next
/// consumer reads the batch again and indexes it.
#[test]
fn sigterm_during_an_s3_outage_exits_within_the_grace_and_the_batch_is_read_again() -> TestResult {
    let (kafka, mut s3) = servers();
    let dir = testenv::work_dir("follow-sigterm")?;
    let catalog = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", catalog.display());
    let log = dir.path().join("log");
    // Uploaded without an event; its event is put on the topic once S3 is down.
    s3.notify_none(BUCKET)?;
    let uploaded = put_all(&s3, &wave("late", 1), 1);
    let (key, size, etag) = &uploaded[0];
    let mut follow = Follow::start(&s3, &kafka, &sink, &log, &["--batch-ms", "200"]);
    follow.wait_for(Duration::from_secs(120), "the test event", |s| n(s, "messages") >= 1);
    s3.stop();
    kafka.produce(TOPIC, &[created_event(key, *size, etag.as_deref(), 1).as_slice()])?;
    follow.wait_for(Duration::from_secs(60), "the event consumed", |s| n(s, "messages") >= 2);
    std::thread::sleep(Duration::from_secs(1));
    let stopping = Instant::now();
    let stats = follow.stop();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(25), "stopped after {took:?}, not within the grace");
    assert_eq!(n(&stats, "inserted"), 0, "{stats}");
    let log_text = std::fs::read_to_string(&log)?;
    assert!(log_text.contains("stopping with a batch not written"), "{log_text}");

    s3.restart()?;
    let mut follow = Follow::start(&s3, &kafka, &sink, &log, &["--batch-ms", "200"]);
    follow.wait_for(Duration::from_secs(120), "the batch read again and indexed", |s| n(s, "inserted") == 1);
    follow.stop();
    let rows = duckdb_rows(&catalog, "SELECT key FROM files");
    assert_eq!(rows, vec![json!({"key": key})]);
    Ok(())
}

/// Events lost upstream (the bucket's notifications switched off during some uploads) are
/// not seen by the consumer; the next sweep (`exrscan scan` of the prefix into the same
/// catalog) indexes exactly those, skips the others by their listing (size, ETag) without
/// reading them, and no file is in the catalog twice.
#[test]
fn a_sweep_catches_the_uploads_whose_events_were_lost_and_indexes_nothing_twice() -> TestResult {
    let (kafka, s3) = servers();
    let flight = FlightSqlServer::start()?;
    let dir = testenv::work_dir("follow-sweep")?;
    let follow = Follow::start(&s3, &kafka, &flight.uri(), &dir.path().join("log"), &["--batch-ms", "200"]);

    let before = wave("before", 12);
    put_all(&s3, &before, 4);
    wait_for_keys(&flight, before.len(), Duration::from_secs(120));
    s3.notify_none(BUCKET)?;
    let lost = wave("lost", 9);
    put_all(&s3, &lost, 4);
    s3.notify_kafka(BUCKET)?;
    let after = wave("after", 7);
    put_all(&s3, &after, 4);
    let followed = wait_for_keys(&flight, before.len() + after.len(), Duration::from_secs(120));
    // A moment for a lost event that would arrive after all: none may.
    std::thread::sleep(Duration::from_secs(2));
    let followed: BTreeSet<String> = followed.keys().cloned().chain(flight_keys(&flight).into_keys()).collect();
    let expected: BTreeSet<String> = before.iter().chain(&after).map(|(k, _)| k.clone()).collect();
    assert_eq!(followed, expected, "the consumer saw exactly the uploads with events");
    let stats = follow.stop();
    assert_eq!(n(&stats, "inserted"), expected.len() as u64, "{stats}");

    let url = format!("s3://{BUCKET}/{PREFIX}");
    let sweep = last_json(&run(exrscan_s3(&s3).args(["scan", "--json", "--sink", &flight.uri(), &url])));
    let indexed = (before.len() + after.len()) as u64;
    assert_eq!(sweep["inserted"], lost.len() as u64, "the sweep indexes the lost uploads: {sweep}");
    assert_eq!(sweep["unchanged"], indexed, "and skips the followed ones: {sweep}");
    assert_eq!(sweep["processed"], lost.len() as u64, "reading only the lost ones: {sweep}");
    assert_eq!(sweep["failed"], 0, "{sweep}");

    let found = flight_keys(&flight);
    let all: BTreeSet<String> = before.iter().chain(&lost).chain(&after).map(|(k, _)| k.clone()).collect();
    assert_eq!(found.keys().cloned().collect::<BTreeSet<_>>(), all, "every upload after the sweep");
    let twice: Vec<_> = found.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "files in the catalog more than once: {twice:?}");
    Ok(())
}

/// The first column of `sql`'s result as text, read through Flight SQL itself (the
/// benchmarks' pollers: a query whose result stays small, so that polling every 100 ms does
/// not load the server being measured).
async fn flight_column(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    use arrow::array::{Array, AsArray};
    let info = client.execute(sql.to_string(), None).await?;
    let mut values = Vec::new();
    for endpoint in info.endpoint {
        let Some(ticket) = endpoint.ticket else { continue };
        let mut stream = client.do_get(ticket).await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
            let column = column.as_string::<i32>();
            values.extend((0..column.len()).map(|i| column.value(i).to_string()));
        }
    }
    Ok(values)
}

/// The two write paths of the reference Flight SQL server: prepared statements (row by row,
/// the stock example) and bulk ingest (`CommandStatementIngest`).
fn write_paths() -> [(&'static str, FlightSqlOptions); 2] {
    [
        ("prepared statements", FlightSqlOptions::default()),
        ("bulk ingest", FlightSqlOptions { bulk_ingest: true, ..FlightSqlOptions::default() }),
    ]
}

/// The consumer's settings in the benchmarks: the defaults (250 ms / 1,000 objects per
/// batch, 32 header reads at once).
const BENCH_FOLLOW_ARGS: &[&str] = &["--concurrency", "32"];

/// MinIO's notification senders in the benchmarks: those of an 8-core server. On this
/// machine's 2 cores MinIO would start 2, each waiting for the broker's ack of one event,
/// which caps its delivery below 500 events/s here.
const BENCH_MINIO_SENDERS: usize = 8;

/// A broker, MinIO, a Flight SQL server and `exrscan follow` with the default settings,
/// warmed up by one upload.
fn bench_setup(
    delivery: Delivery,
    options: FlightSqlOptions,
    dir: &Path,
) -> (KafkaServer, S3Server, FlightSqlServer, Follow) {
    let (kafka, s3) = servers_with(delivery, Some(BENCH_MINIO_SENDERS));
    let flight = FlightSqlServer::start_with(options).unwrap_or_else(|e| panic!("{e}"));
    let mut follow = Follow::start(&s3, &kafka, &flight.uri(), &dir.join("log"), BENCH_FOLLOW_ARGS);
    follow.wait_for(Duration::from_secs(120), "the catalog opened", |s| n(s, "messages") >= 1);
    put_all(&s3, &wave("warm-up", 1), 1);
    wait_for_keys(&flight, 1, Duration::from_secs(120));
    (kafka, s3, flight, follow)
}

/// Upload → row latencies of one run, each sorted.
struct Latencies {
    /// End of the PutObject → first poll that shows the row.
    row: Vec<Duration>,
    /// End of the PutObject → its event on the topic (MinIO's delivery).
    topic: Vec<Duration>,
    /// Event on the topic → first poll that shows the row (the consumer and the sink).
    consumer: Vec<Duration>,
}

/// The `q` quantile of sorted `values`.
fn quantile(values: &[Duration], q: f64) -> Duration {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// Uploads `uploads` objects at a steady `rate` per second while a Flight SQL client polls
/// the catalog for their keys every 100 ms and another consumer watches the topic.
fn upload_to_row(kafka: &KafkaServer, s3: &S3Server, flight: &FlightSqlServer, rate: u64, uploads: usize) -> Latencies {
    let prefix = format!("{PREFIX}steady-{rate}/");
    let files = wave(&format!("steady-{rate}"), uploads);
    let on_topic = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch_topic(kafka, &prefix, uploads, Duration::from_secs(600)));
        let measured = upload_and_poll(s3, flight, &files, rate);
        (measured, watcher.join().expect("topic watcher"))
    });
    let ((uploaded, seen), on_topic) = on_topic;
    let mut latencies = Latencies { row: Vec::new(), topic: Vec::new(), consumer: Vec::new() };
    for (key, at) in &uploaded {
        let row = seen.get(key).copied();
        latencies.row.push(row.map_or(Duration::MAX, |row| row.saturating_duration_since(*at)));
        if let Some(event) = on_topic.get(key) {
            latencies.topic.push(event.saturating_duration_since(*at));
            latencies.consumer.push(row.map_or(Duration::MAX, |row| row.saturating_duration_since(*event)));
        }
    }
    for values in [&mut latencies.row, &mut latencies.topic, &mut latencies.consumer] {
        values.sort();
    }
    assert_eq!(latencies.row.len(), uploads);
    assert_eq!(latencies.topic.len(), uploads, "every upload's event seen on the topic");
    latencies
}

/// Uploads `files` at `rate` per second, polling the catalog every 100 ms: when each
/// upload ended, and when each key was first seen in `files`.
#[allow(clippy::type_complexity)]
fn upload_and_poll(
    s3: &S3Server,
    flight: &FlightSqlServer,
    files: &[(String, PathBuf)],
    rate: u64,
) -> (BTreeMap<String, Instant>, BTreeMap<String, Instant>) {
    let uploads = files.len();
    let files = files.to_vec();
    let store = s3.store(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    let addr = flight.addr();
    let measured = runtime().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
        let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
        let done = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, Instant>::new()));
        let uploads_task = {
            let done = std::sync::Arc::clone(&done);
            let files = files.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                let mut puts = Vec::new();
                for (key, path) in files {
                    tick.tick().await;
                    let (store, done) = (store.clone(), std::sync::Arc::clone(&done));
                    puts.push(tokio::spawn(async move {
                        let body = std::fs::read(&path).expect("sample");
                        store.put(&object_store::path::Path::from(key.as_str()), PutPayload::from(body)).await?;
                        done.lock().expect("lock").insert(key, Instant::now());
                        Ok::<(), object_store::Error>(())
                    }));
                }
                for put in puts {
                    put.await.expect("upload task")?;
                }
                Ok::<(), object_store::Error>(())
            })
        };
        // Keys are uploaded in order: each poll asks only for those from the first one not
        // yet seen, about the rows still in flight.
        let mut pending: BTreeSet<String> = files.iter().map(|(key, _)| key.clone()).collect();
        let mut seen = BTreeMap::<String, Instant>::new();
        let started = Instant::now();
        while let Some(low) = pending.first() {
            assert!(started.elapsed() < Duration::from_secs(600), "{} of {uploads} rows after 600 s", seen.len());
            let sql = format!("SELECT key FROM files WHERE key >= '{}'", low.replace('\'', "''"));
            let now = Instant::now();
            for key in tokio::time::timeout(Duration::from_secs(60), flight_column(&mut client, &sql)).await?? {
                if pending.remove(&key) {
                    seen.insert(key, now);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        uploads_task.await??;
        let uploaded = done.lock().expect("lock").clone();
        Ok::<_, Box<dyn std::error::Error>>((uploaded, seen))
    });
    measured.unwrap_or_else(|e| panic!("{e}"))
}

/// The CPU time each process of a benchmark uses over a run.
struct CpuUse(Vec<(&'static str, u32, Duration)>);

impl CpuUse {
    /// Notes the CPU time used so far by each named process that runs.
    fn start(processes: &[(&'static str, Option<u32>)]) -> Self {
        let at_start = processes.iter().filter_map(|(name, pid)| {
            let pid = (*pid)?;
            Some((*name, pid, testenv::process::cpu_time(pid)?))
        });
        Self(at_start.collect())
    }

    /// "CPU over the run: MinIO 4.1 s, …, of 2 cores × 10.5 s".
    fn report(&self, elapsed: Duration) -> String {
        let used: Vec<String> = self
            .0
            .iter()
            .map(|(name, pid, start)| match testenv::process::cpu_time(*pid) {
                Some(now) => format!("{name} {:.1} s", now.saturating_sub(*start).as_secs_f64()),
                None => format!("{name} (exited)"),
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        format!("CPU over the run: {}, of {cores} cores × {elapsed:.1?}", used.join(", "))
    }
}

/// Upload → row latency at `rate` uploads/s with the consumer's defaults, for each of
/// MinIO's deliveries and each write path of the reference server; prints p50/p95/max.
fn latency_bench(rate: u64, uploads: usize) {
    let setups = [Delivery::Queued, Delivery::Direct].into_iter().flat_map(|d| write_paths().map(|(p, o)| (d, p, o)));
    for (delivery, path, options) in setups {
        let dir = testenv::work_dir("follow-latency").unwrap_or_else(|e| panic!("{e}"));
        let (kafka, s3, flight, follow) = bench_setup(delivery, options, dir.path());
        let cpu = CpuUse::start(&[
            ("MinIO", s3.pid()),
            ("broker", kafka.pid()),
            ("catalog server", flight.pid()),
            ("exrscan follow", Some(follow.child.id())),
            ("uploader and pollers", Some(std::process::id())),
        ]);
        let started = Instant::now();
        let latencies = upload_to_row(&kafka, &s3, &flight, rate, uploads);
        let elapsed = started.elapsed();
        let cpu = cpu.report(elapsed);
        let phases = follow.batch_phases();
        let stats = follow.stop();
        let show = |values: &[Duration]| {
            format!(
                "p50 {:.2?}, p95 {:.2?}, max {:.2?}",
                quantile(values, 0.5),
                quantile(values, 0.95),
                quantile(values, 1.0)
            )
        };
        println!(
            "upload → row at {rate}/s, {uploads} uploads, {delivery:?} delivery, {path}: {}; upload → topic {}; \
             topic → row {}; {} batches; all rows after {elapsed:.2?}",
            show(&latencies.row),
            show(&latencies.topic),
            show(&latencies.consumer),
            n(&stats, "batches")
        );
        let median = |i: usize| {
            let mut values: Vec<u64> = phases.iter().map(|p| p[i]).collect();
            values.sort_unstable();
            values.get(values.len() / 2).copied().unwrap_or_default()
        };
        println!(
            "  per batch (median): {} objects, gathering {} ms, reads and write {} ms, commit {} ms",
            median(0),
            median(1),
            median(2),
            median(3)
        );
        println!("  {cpu}");
        assert_eq!(n(&stats, "inserted"), uploads as u64 + 1, "{stats}");
        assert!(quantile(&latencies.row, 1.0) < Duration::from_secs(300));
    }
}

/// Upload → row latency at a steady 50 uploads/s (docs/benchmarks.md). A benchmark, run
/// on request: `cargo test -p exrscan --test follow -- --ignored --nocapture upload_to_row_latency`.
#[test]
#[ignore = "benchmark (docs/benchmarks.md): run with --ignored"]
fn upload_to_row_latency_at_50_uploads_per_second() {
    latency_bench(50, 1000);
}

/// Upload → row latency at a steady 500 uploads/s (docs/benchmarks.md).
#[test]
#[ignore = "benchmark (docs/benchmarks.md): run with --ignored"]
fn upload_to_row_latency_at_500_uploads_per_second() {
    latency_bench(500, 5000);
}

/// The events per second one consumer sustains (docs/benchmarks.md): objects uploaded with
/// the bucket's notifications off, their creation events then put on the topic at once (so
/// MinIO's delivery rate is left out), drained by one consumer started after; rate = rows
/// after the first batch landed ÷ the time from then to the last row.
#[test]
#[ignore = "benchmark (docs/benchmarks.md): run with --ignored"]
fn events_per_second_one_consumer_sustains() {
    const BACKLOG: usize = 5000;
    for (path, options) in write_paths() {
        let dir = testenv::work_dir("follow-throughput").unwrap_or_else(|e| panic!("{e}"));
        let (kafka, s3, flight, follow) = bench_setup(Delivery::Queued, options, dir.path());
        follow.stop();
        s3.notify_none(BUCKET).unwrap_or_else(|e| panic!("{e}"));
        let uploaded = put_all(&s3, &wave("backlog", BACKLOG), 32);
        let events: Vec<Vec<u8>> = uploaded
            .iter()
            .enumerate()
            .map(|(i, (key, size, etag))| created_event(key, *size, etag.as_deref(), i))
            .collect();
        let events: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        kafka.produce(TOPIC, &events).unwrap_or_else(|e| panic!("{e}"));
        let follow = Follow::start(&s3, &kafka, &flight.uri(), &dir.path().join("log"), BENCH_FOLLOW_ARGS);
        let addr = flight.addr();
        let polled = runtime().block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
            let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
            let mut first = None;
            let polling = Instant::now();
            loop {
                let counted = flight_column(&mut client, "SELECT count(*) FROM files");
                let count: usize = tokio::time::timeout(Duration::from_secs(60), counted).await??[0].parse()?;
                let now = Instant::now();
                if count > 1 && first.is_none() {
                    first = Some((count, now));
                }
                if let (Some((count_first, at)), true) = (first, count > BACKLOG) {
                    return Ok::<_, Box<dyn std::error::Error>>((count_first, now.duration_since(at)));
                }
                assert!(polling.elapsed() < Duration::from_secs(600), "{count} of {BACKLOG} rows after 600 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (first, elapsed) = polled.unwrap_or_else(|e| panic!("{e}"));
        let stats = follow.stop();
        println!(
            "one consumer, {path}: {} events in {elapsed:?} = {:.0} events/s; {} batches",
            BACKLOG + 1 - first,
            (BACKLOG + 1 - first) as f64 / elapsed.as_secs_f64(),
            n(&stats, "batches")
        );
        assert_eq!(n(&stats, "inserted"), BACKLOG as u64, "{stats}");
    }
}
