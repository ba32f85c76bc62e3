//! The `vast://` sink against the VAST protocol twin (`tests/vast/vasttwin`, itself judged by
//! VAST's official SDK), read back by the SDK: `exrscan scan` of samples/ and a rescan that
//! writes nothing, `exrscan similar`, `exrscan sink-check`, and request conformance — the
//! sink and the SDK (`tests/vast/reference.py`) perform the same catalog operations against
//! recording twins, and the recordings must agree field by field.

mod fixtures;

use std::path::Path;
use std::process::{Command, Output};

use exrscan::catalog::{CatalogBatch, CatalogBuilder, ScanInfo, SourceFile, Table, WriteId};
use exrscan::sink::vast::{Credentials, VastOptions, VastSink};
use exrscan::sink::{Sink, SinkUri};
use fixtures::{TestResult, expected_rows, sample_names, samples_dir, vast_rows};
use serde_json::Value;
use testenv::vasttwin::{ACCESS_KEY_ID, BUCKET, SECRET_ACCESS_KEY};
use testenv::{VastTwin, VastTwinOptions};

fn credentials() -> Credentials {
    Credentials { access_key_id: ACCESS_KEY_ID.into(), secret_access_key: SECRET_ACCESS_KEY.into() }
}

/// `exrscan` with the twin's keys in its environment.
fn exrscan() -> Command {
    let mut cmd = Command::new(testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}")));
    cmd.env("EXRSCAN_VAST_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("EXRSCAN_VAST_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("EXRSCAN_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("exrscan runs");
    assert!(out.status.success(), "{cmd:?} exited {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    out
}

fn count(twin: &VastTwin, schema: &str, relation: &str) -> u64 {
    fixtures::scalar(&vast_rows(&twin.endpoint(), schema, &format!("SELECT count(*) AS n FROM {relation}"))) as u64
}

#[test]
fn scan_rescan_and_similar_through_the_twin_read_back_by_the_sdk() -> TestResult {
    let twin = VastTwin::start()?;
    let schema = "exrscan/e2e";
    let sink = twin.uri(schema);
    let files = sample_names().len() as u64;
    let expected = expected_rows(&samples_dir());

    let first = run(exrscan().args(["scan", "--json", "--batch-files", "4", "--sink", &sink]).arg(samples_dir()));
    let summary: Value = serde_json::from_slice(&first.stdout)?;
    assert_eq!((summary["inserted"].as_u64(), summary["failed"].as_u64()), (Some(files), Some(0)), "{summary}");
    let counts = Table::ALL.map(|t| count(&twin, schema, t.name()));
    assert_eq!(counts, [expected.0, expected.1, expected.2, expected.3], "rows of the four tables");
    assert_eq!(count(&twin, schema, "indexed_files"), files);

    // Values survive: a vector bit for bit, a timestamp, a nullable ETag (a local scan has none).
    let rows = vast_rows(
        &twin.endpoint(),
        schema,
        "SELECT metadata_embedding, channel_fingerprint, inspected_at, etag, frame_number FROM files \
         WHERE key = 'shot010_beauty.1003.exr'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let header = exrscan::header::parse_complete(&std::fs::read(samples_dir().join("shot010_beauty.1003.exr"))?)?;
    let embeddings = exrscan::embed::embed(&header);
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array().into_iter().flatten().filter_map(Value::as_f64).map(|f| f as f32).collect()
    };
    assert_eq!(floats(&rows[0]["metadata_embedding"]), embeddings.metadata.to_vec());
    assert_eq!(floats(&rows[0]["channel_fingerprint"]), embeddings.channels.to_vec());
    assert_eq!(rows[0]["frame_number"], 1003);
    assert!(rows[0]["etag"].is_null());
    assert!(rows[0]["inspected_at"].as_str().is_some_and(|t| t.starts_with("20") && t.ends_with("+00:00")), "{rows:?}");

    let second = run(exrscan().args(["scan", "--json", "--sink", &sink]).arg(samples_dir()));
    let summary: Value = serde_json::from_slice(&second.stdout)?;
    assert_eq!(
        (summary["inserted"].as_u64(), summary["unchanged"].as_u64(), summary["rows_written"].as_u64()),
        (Some(0), Some(files), Some(0)),
        "the rescan writes nothing: {summary}"
    );
    assert_eq!(count(&twin, schema, "files"), files);

    let similar = run(exrscan()
        .args(["similar", "--json", "-k", "3", "--sink", &sink])
        .arg(samples_dir().join("shot010_beauty.1001.exr")));
    let neighbours: Vec<Value> =
        String::from_utf8_lossy(&similar.stdout).lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(neighbours.len(), 3, "{neighbours:?}");
    let uris: Vec<&str> = neighbours.iter().filter_map(|n| n["source_uri"].as_str()).collect();
    assert!(uris.iter().all(|u| !u.ends_with("shot010_beauty.1001.exr")), "the query file is left out: {uris:?}");
    assert!(uris[0].contains("shot010_beauty.100"), "another beauty frame is nearest: {uris:?}");
    let scores: Vec<f64> = neighbours.iter().filter_map(|n| n["score"].as_f64()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]) && scores[0] > 0.9, "best first: {scores:?}");
    Ok(())
}

/// The sample files as one batch, stamped.
fn sample_batch() -> Result<CatalogBatch, Box<dyn std::error::Error>> {
    let mut builder = CatalogBuilder::new(ScanInfo { name: Some("conformance".into()), uid: None });
    for name in sample_names().into_iter().take(3) {
        let bytes = std::fs::read(samples_dir().join(&name))?;
        let header = exrscan::header::parse_complete(&bytes)?;
        let source = SourceFile {
            uri: format!("s3://renders/conformance/{name}"),
            bucket: Some("renders".into()),
            key: format!("conformance/{name}"),
            size_bytes: bytes.len() as u64,
            last_modified: None,
            etag: Some(format!("\"{name}\"")),
        };
        builder.add(source, &header, Some(&exrscan::embed::embed(&header)));
    }
    Ok(builder.finish()?.stamped(&WriteId::new())?)
}

/// Writes each table of `batch` as an Arrow IPC stream `<table>.arrow` (reference.py's `--rows`).
fn write_rows(batch: &CatalogBatch, dir: &Path) -> TestResult {
    for table in Table::ALL {
        let rows = batch.table(table);
        let file = std::fs::File::create(dir.join(format!("{}.arrow", table.name())))?;
        let mut writer = arrow::ipc::writer::StreamWriter::try_new(file, &rows.schema())?;
        writer.write(rows)?;
        writer.finish()?;
    }
    Ok(())
}

fn recording(twin: &VastTwin) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(twin.record_path())?;
    Ok(text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?)
}

/// Requests that only the SDK sends, for its own bookkeeping: the bucket check (`HEAD`), the
/// column, sorting and statistics reads of a table it loads, and the listings after a
/// create. The sink lists before it creates, as the SDK does, and skips the rest (allowed
/// difference 1).
fn is_sdk_bookkeeping(r: &Value) -> bool {
    let command = r["query"][0][0].as_str().unwrap_or_default();
    r["method"] == "HEAD"
        || (r["method"] == "GET" && matches!(command, "schema" | "table" | "column" | "sorted-columns" | "stats"))
}

fn is_call(r: &Value, method: &str, command: &str) -> bool {
    r["method"] == method && r["query"][0][0] == command
}

/// The compared requests of a recording: without bookkeeping, and without the SDK's
/// data-endpoint discovery — before a select it begins and at once rolls back a transaction
/// at each VIP the table's statistics name, to learn the VIP's CNode; the sink queries the
/// endpoint it was given (allowed difference 4).
fn compared(records: &[Value]) -> Vec<Value> {
    let kept: Vec<&Value> = records.iter().filter(|r| !is_sdk_bookkeeping(r)).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < kept.len() {
        if is_call(kept[i], "POST", "transaction")
            && kept.get(i + 1).is_some_and(|r| is_call(r, "DELETE", "transaction"))
        {
            i += 2;
            continue;
        }
        out.push(normalized(kept[i]));
        i += 1;
    }
    out
}

/// A request as compared: without what differs between any two runs or clients.
fn normalized(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(headers) = r["headers"].as_object_mut() {
        // Transport and identity: `host` (the port), `user-agent` (the client's name),
        // `accept*`/`connection` (the HTTP library's), `content-length` and
        // `x-amz-content-sha256` (flatbuffer bytes may be laid out differently; the decoded
        // bodies are compared instead), `tabular-txid` (the server's ids). Allowed
        // differences 2–3.
        for volatile in [
            "host",
            "user-agent",
            "accept",
            "accept-encoding",
            "connection",
            "content-length",
            "content-type",
            "x-amz-content-sha256",
            "tabular-txid",
        ] {
            headers.remove(volatile);
        }
    }
    r
}

/// Request conformance: the same operations by the SDK and by the sink, recorded by two
/// twins, compared field by field (method, path, query, headers, decoded bodies, status).
#[test]
fn requests_match_the_official_sdk_field_by_field() -> TestResult {
    let batch = sample_batch()?;
    let dir = tempfile::tempdir()?;
    write_rows(&batch, dir.path())?;

    let reference = VastTwin::start_with(VastTwinOptions { record: true, ..Default::default() })?;
    testenv::vasttwin::run_sdk(
        "reference.py",
        &[
            "--endpoint",
            &reference.endpoint(),
            "--bucket",
            BUCKET,
            "--shard",
            "shard-0",
            "--rows",
            &dir.path().to_string_lossy(),
        ],
    )?;

    let twin = VastTwin::start_with(VastTwinOptions { record: true, ..Default::default() })?;
    let SinkUri::Vast(options) = twin.uri("exrscan/shard-0").parse()? else { panic!("a vast URI") };
    let options: VastOptions = options;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut sink = VastSink::connect(options, credentials()).await?;
        sink.write(&batch).await?;
        let ids: Vec<String> = batch.file_ids()[..2].iter().cloned().chain(["absent".to_string()]).collect();
        let found = sink.existing(&ids).await?;
        assert_eq!(found.len(), 2, "{found:?}");
        let uris = batch.table(Table::Files).column_by_name("source_uri").cloned();
        let uris = uris.as_ref().and_then(|c| arrow::array::AsArray::as_string_opt::<i32>(c.as_ref()).cloned());
        let listed: Vec<SourceFile> = uris
            .iter()
            .flat_map(|u| u.iter().flatten().take(2).map(str::to_owned).collect::<Vec<_>>())
            .map(|uri| SourceFile {
                uri: uri.clone(),
                bucket: None,
                key: uri,
                size_bytes: 1,
                last_modified: None,
                etag: Some("\"e\"".into()),
            })
            .collect();
        assert_eq!(listed.len(), 2);
        sink.indexed(&listed).await?;
        Ok::<_, exrscan::sink::SinkError>(())
    })?;

    let sdk = compared(&recording(&reference)?);
    let ours = compared(&recording(&twin)?);
    let summary = |rs: &[Value]| -> Vec<String> {
        rs.iter()
            .map(|r| format!("{} {}?{}", r["method"], r["path"], r["query"][0][0].as_str().unwrap_or("")))
            .collect()
    };
    assert_eq!(summary(&ours), summary(&sdk), "the same requests in the same order");
    for (i, (a, b)) in ours.iter().zip(&sdk).enumerate() {
        for field in ["method", "path", "query", "headers", "body", "status"] {
            assert_eq!(a[field], b[field], "request {i} ({}): {field} differs", summary(&sdk)[i]);
        }
    }
    // The comparison saw the substance: rows, created schemas, pushed-down predicates.
    let inserted = |r: &Value| r["body"]["arrow"]["rows"].as_array().map_or(0, Vec::len);
    assert_eq!(ours.iter().map(inserted).sum::<usize>(), batch.rows(), "every row of the batch was compared");
    assert!(ours.iter().any(|r| r["body"]["arrow_schema"].as_array().is_some_and(|f| f.len() > 20)));
    let query = ours.iter().find(|r| is_call(r, "GET", "data")).map(|r| &r["body"]["query_data"]);
    assert!(
        query.is_some_and(|q| q["filter"]["call"] == "and" && q["projection"] == serde_json::json!([0])),
        "{query:?}"
    );
    assert!(ours.iter().any(|r| r["headers"]["tabular-limit-rows"] == "131072"));
    // What the comparison covered: every kind of call the catalog's write path makes.
    let kinds: std::collections::BTreeSet<String> = sdk
        .iter()
        .map(|r| format!("{} {}", r["method"].as_str().unwrap_or(""), r["query"][0][0].as_str().unwrap_or("")))
        .collect();
    for kind in
        ["GET transaction", "POST transaction", "PUT transaction", "POST schema", "POST table", "POST rows", "GET data"]
    {
        assert!(kinds.contains(kind), "{kind} is compared: {kinds:?}");
    }
    Ok(())
}

#[test]
fn sink_check_round_trips_a_scratch_table_and_reports_bad_keys() -> TestResult {
    let twin = VastTwin::start()?;
    let sink = twin.uri("exrscan/check");
    let out = run(exrscan().args(["sink-check", "--sink", &sink]));
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("ok: VAST 5.4.0.0 at http://127.0.0.1:"), "{line}");
    assert!(line.contains("bucket catalog, schema exrscan/check"), "{line}");
    // The scratch table is gone; the catalog's four tables stay.
    let tables = testenv::vasttwin::run_sdk(
        "sdk_sql.py",
        &["--endpoint", &twin.endpoint(), "--bucket", BUCKET, "--schema", "exrscan/check", "SELECT 1 AS n"],
    )?;
    assert_eq!(tables.trim(), "[{\"n\": 1}]");
    let listed = testenv::output("python", {
        let mut cmd = Command::new(testenv::vasttwin::python()?);
        cmd.args(["-c", LIST_TABLES, &twin.endpoint(), BUCKET, "exrscan/check"])
            .env("VAST_TWIN_KEYS", format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}"));
        cmd
    })?;
    assert_eq!(listed.trim(), "attributes channels files parts");

    let wrong = exrscan()
        .env("EXRSCAN_VAST_SECRET_ACCESS_KEY", "not-the-secret")
        .args(["sink-check", "--sink-retry-seconds", "1", "--sink", &sink])
        .output()?;
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("authentication failed") && stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "the secret stays out of errors: {stderr}");
    Ok(())
}

/// HTTPS with a custom CA: trusted with `ca=`, a configuration error (not retried) without.
#[test]
fn tls_with_a_custom_ca() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = fixtures::certificates(dir.path())?;
    let twin = VastTwin::start_with(VastTwinOptions { tls: Some((cert, key)), ..Default::default() })?;
    let sink = format!("{}&ca={}", twin.uri("exrscan/tls"), ca.display());
    assert!(sink.contains("tls=true"), "{sink}");
    let out = run(exrscan().args(["sink-check", "--sink", &sink]));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("ok: VAST 5.4.0.0 at https://127.0.0.1:"), "{line}");

    let started = std::time::Instant::now();
    let untrusted = exrscan().args(["sink-check", "--sink", &twin.uri("exrscan/tls")]).output()?;
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad sink configuration") && stderr.contains("certificate"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "not retried: {:?}", started.elapsed());
    Ok(())
}

/// Lists the tables of a schema with the SDK: `python -c LIST_TABLES endpoint bucket schema`.
const LIST_TABLES: &str = r#"
import os, sys, vastdb
access, _, secret = os.environ["VAST_TWIN_KEYS"].partition(":")
with vastdb.connect(endpoint=sys.argv[1], access=access, secret=secret).transaction() as tx:
    s = tx.bucket(sys.argv[2])
    for level in sys.argv[3].split("/"):
        s = s.schema(level)
    print(" ".join(sorted(s.tablenames())))
"#;

/// `exrscan follow`'s removals: a `removals` table made on first use, each event once by
/// (`source_uri`, `sequencer`) — a redelivered batch writes nothing again — read back by
/// the SDK, with the event time as VAST stores it.
#[test]
fn removals_are_recorded_once_and_read_back_by_the_sdk() -> TestResult {
    let twin = VastTwin::start()?;
    let schema = "exrscan/removals";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let uri: SinkUri = twin.uri(schema).parse()?;
        let mut sink = exrscan::sink::AnySink::open(&uri, &fixtures::vast_credentials(), &fixtures::retry()).await?;
        fixtures::record_sample_removals(&mut sink).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let rows = vast_rows(
        &twin.endpoint(),
        schema,
        "SELECT source_uri, key, sequencer, event_name, event_time FROM removals ORDER BY source_uri, sequencer",
    );
    fixtures::check_sample_removals(&rows);
    assert!(rows[0]["event_time"].as_str().is_some_and(|t| t.starts_with("2023-11-14 22:13:20")), "{rows:?}");
    Ok(())
}
