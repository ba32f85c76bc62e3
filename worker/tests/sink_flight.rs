//! The Flight SQL sink against Apache Arrow's reference Flight SQL server (arrow-go,
//! SQLite), read back by an independent client (the ADBC Flight SQL driver): values,
//! re-runs, a server killed and restarted mid-run, authentication, TLS with a custom CA,
//! the bulk-ingest path and a server without transactions.

mod fixtures;

use std::time::Duration;

use exrscan::sink::flight::{Credentials, FlightSink, IngestPath, ScalarEncoding, VectorEncoding};
use exrscan::sink::{AnySink, SimilarBy, Sink, SinkError, SinkUri};
use fixtures::{TestResult, adbc_rows, blob_floats, check_files, expected_rows, sample_tree, scalar, scan};
use serde_json::{Value, json};
use testenv::FlightSqlServer;
use testenv::flightsql::FlightSqlOptions;

fn counts(uri: &str, kwargs: &Value) -> (u64, u64, u64, u64) {
    let one = |table: &str| scalar(&adbc_rows(uri, &format!("SELECT count(*) AS n FROM {table}"), kwargs)) as u64;
    (one("files"), one("parts"), one("channels"), one("attributes"))
}

fn distinct_file_ids(uri: &str, kwargs: &Value) -> u64 {
    scalar(&adbc_rows(uri, "SELECT count(DISTINCT file_id) AS n FROM files", kwargs)) as u64
}

fn none() -> Value {
    json!({})
}

#[test]
fn rows_read_back_by_adbc_and_rerun_inserts_nothing() -> TestResult {
    let server = FlightSqlServer::start()?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 3) as u64;

    let first = scan(&tree, &server.uri(), Credentials::default(), 5)?;
    assert_eq!((first.counts.processed, first.counts.inserted, first.counts.failed), (files, files, 0));
    assert_eq!(counts(&server.adbc_uri(), &none()), expected_rows(&tree));

    let rows = adbc_rows(
        &server.adbc_uri(),
        "SELECT source_uri, header_bytes, header_hash, file_id, size_bytes FROM files",
        &none(),
    );
    assert_eq!(check_files(&rows), files as usize);

    // Limited server: vectors as little-endian f32 blobs, booleans 0/1, timestamps in µs.
    let beauty = adbc_rows(
        &server.adbc_uri(),
        "SELECT source_uri, frame_number, deep, multipart, inspected_at, metadata_embedding, channel_fingerprint \
         FROM files WHERE key = 'shot001/shot010_beauty.1003.exr'",
        &none(),
    );
    assert_eq!(beauty.len(), 1, "{beauty:?}");
    let b = &beauty[0];
    assert_eq!(b["frame_number"], 1003);
    assert_eq!((b["deep"].as_i64(), b["multipart"].as_i64()), (Some(0), Some(0)));
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64;
    let inspected = b["inspected_at"].as_i64().unwrap_or_default();
    assert!((now_us - inspected).abs() < 600_000_000, "inspected_at {inspected} is not µs since the epoch");
    let path = tree.join("shot001/shot010_beauty.1003.exr");
    let expected = exrscan::embed::embed(&exrscan::header::parse_complete(&std::fs::read(&path)?)?);
    let stored = blob_floats(b["metadata_embedding"].as_str().unwrap_or_default());
    assert_eq!(stored, expected.metadata.to_vec(), "metadata embedding survives the round trip bit for bit");
    assert_eq!(blob_floats(b["channel_fingerprint"].as_str().unwrap_or_default()), expected.channels.to_vec());
    let part_fingerprints = adbc_rows(
        &server.adbc_uri(),
        "SELECT count(*) AS n FROM channels WHERE length(channel_fingerprint) = 512",
        &none(),
    );
    assert_eq!(
        scalar(&part_fingerprints) as u64,
        expected_rows(&tree).2,
        "every channel row has its part's 128-d fingerprint"
    );
    let attribute = adbc_rows(
        &server.adbc_uri(),
        "SELECT a.value_text, a.value_float FROM attributes a JOIN files f ON a.file_id = f.file_id \
         WHERE f.key = 'shot000/shot010_beauty.1001.exr' AND a.name = 'dwaCompressionLevel'",
        &none(),
    );
    assert_eq!(attribute.len(), 1, "{attribute:?}");
    assert_eq!(attribute[0]["value_float"], 45.0);

    let second = scan(&tree, &server.uri(), Credentials::default(), 5)?;
    assert_eq!((second.counts.inserted, second.counts.unchanged, second.rows_written), (0, files, 0));
    assert_eq!(counts(&server.adbc_uri(), &none()), expected_rows(&tree));
    Ok(())
}

/// The server is killed (SIGKILL) while the scan writes and restarted a moment later: the
/// scan retries, and every file lands exactly once with all its rows.
#[test]
fn server_killed_and_restarted_mid_run_loses_and_duplicates_nothing() -> TestResult {
    let mut server = FlightSqlServer::start()?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 120) as u64;
    // A response cut off by the kill is given up after 5 s (default 30 s).
    let uri = format!("{}?timeout_s=5", server.uri());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let scan = {
        let tree = tree.clone();
        runtime.spawn(async move {
            fixtures::scan_async(&tree, &uri, Credentials::default(), &fixtures::options(20))
                .await
                .map_err(|e| e.to_string())
        })
    };
    // Kill once some batches have committed, then restart after the client has seen it.
    wait_for_rows(&server, 100)?;
    server.stop();
    std::thread::sleep(Duration::from_millis(1500));
    server.restart()?;
    let summary = runtime.block_on(scan)??;

    assert!(summary.retries > 0, "the kill did not interrupt a write: {summary:?}");
    assert_eq!(summary.counts.processed, files);
    assert_eq!(summary.counts.inserted + summary.counts.unchanged, files);
    assert_eq!(summary.counts.failed, 0);
    assert_eq!(counts(&server.adbc_uri(), &none()), expected_rows(&tree), "rows lost or duplicated");
    assert_eq!(distinct_file_ids(&server.adbc_uri(), &none()), files);
    Ok(())
}

/// Waits until the server's database holds `n` files rows (read through SQLite's file).
fn wait_for_rows(server: &FlightSqlServer, n: i64) -> TestResult {
    let code = "import sqlite3, sys, time\n\
        deadline = time.time() + 120\n\
        while time.time() < deadline:\n\
        \x20   try:\n\
        \x20       c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True, timeout=1)\n\
        \x20       if c.execute('SELECT count(*) FROM files').fetchone()[0] >= int(sys.argv[2]): sys.exit(0)\n\
        \x20   except sqlite3.Error: pass\n\
        \x20   time.sleep(0.02)\n\
        sys.exit('timed out')";
    testenv::python::run(code, &[&server.database_path().to_string_lossy(), &n.to_string()])?;
    Ok(())
}

#[test]
fn basic_auth_handshake_token_expiry_and_refusal() -> TestResult {
    let mut server = FlightSqlServer::start_with(FlightSqlOptions {
        basic_auth: Some(("scanner".into(), "s3cret".into())),
        token: Some("static-token-1".into()),
        ..FlightSqlOptions::default()
    })?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 2) as u64;
    let creds = Credentials { username: Some("scanner".into()), password: Some("s3cret".into()), token: None };
    let kwargs = json!({"username": "scanner", "password": "s3cret"});

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let uri: SinkUri = server.uri().parse()?;
    let sink = runtime.block_on(AnySink::open(&uri, &creds.clone().into(), &fixtures::retry()))?;

    // Restarted server: the token it issued is gone; the sink authenticates again.
    server.restart()?;
    let mut writer = exrscan::sink::Writer::new(sink, fixtures::retry());
    let summary = runtime.block_on(async {
        let tally = exrscan::scan::Tally::default();
        let source = std::sync::Arc::new(exrscan::source::local::LocalSource::new(&tree)?);
        Ok::<_, Box<dyn std::error::Error>>(
            exrscan::scan::run(source, &mut writer, &fixtures::options(4), &tally, &Default::default()).await?,
        )
    })?;
    assert_eq!(summary.counts.inserted, files);
    assert!(summary.retries > 0, "the expired token should have cost a retry");
    assert_eq!(counts(&server.adbc_uri(), &kwargs).0, files);

    // A pre-issued bearer token.
    let token = Credentials { token: Some("static-token-1".into()), ..Credentials::default() };
    let rerun = scan(&tree, &server.uri(), token, 4)?;
    assert_eq!((rerun.counts.inserted, rerun.counts.unchanged), (0, files));

    // Wrong password: an authentication error at once, not retried for a minute.
    let started = std::time::Instant::now();
    let wrong = Credentials { password: Some("nope".into()), ..creds.clone() };
    let refused = runtime.block_on(AnySink::open(&uri, &wrong.into(), &fixtures::retry()));
    assert!(matches!(refused, Err(SinkError::Auth(_))), "{:?}", refused.err());
    assert!(started.elapsed() < Duration::from_secs(10));
    let anonymous = runtime.block_on(AnySink::open(&uri, &Credentials::default().into(), &fixtures::retry()));
    assert!(matches!(anonymous, Err(SinkError::Auth(_))), "{:?}", anonymous.err());
    Ok(())
}

fn flight_options(uri: &SinkUri) -> exrscan::sink::flight::FlightOptions {
    match uri {
        SinkUri::Flight(options) => options.clone(),
        other => panic!("{other} is not a Flight URI"),
    }
}

#[test]
fn tls_with_a_custom_ca() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = fixtures::certificates(dir.path())?;
    let server =
        FlightSqlServer::start_with(FlightSqlOptions { tls: Some((cert, key)), ..FlightSqlOptions::default() })?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 1) as u64;

    let uri = format!("{}?ca={}", server.uri(), ca.display());
    assert!(uri.starts_with("flight+grpc+tls://"));
    let summary = scan(&tree, &uri, Credentials::default(), 4)?;
    assert_eq!(summary.counts.inserted, files);
    let kwargs = json!({"adbc.flight.sql.client_option.tls_root_certs": std::fs::read_to_string(&ca)?});
    assert_eq!(counts(&server.adbc_uri(), &kwargs).0, files);

    // Without the CA the certificate is not trusted: a configuration error, not retried.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = std::time::Instant::now();
    let untrusted =
        runtime.block_on(AnySink::open(&server.uri().parse()?, &Credentials::default().into(), &fixtures::retry()));
    assert!(matches!(untrusted, Err(SinkError::Config(_))), "{:?}", untrusted.err());
    assert!(started.elapsed() < Duration::from_secs(10));
    Ok(())
}

#[test]
fn bulk_ingest_with_native_lists_when_the_server_supports_it() -> TestResult {
    let server = FlightSqlServer::start_with(FlightSqlOptions { bulk_ingest: true, ..FlightSqlOptions::default() })?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 2) as u64;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let uri: SinkUri = server.uri().parse()?;
    let sink = runtime.block_on(FlightSink::connect(flight_options(&uri), Credentials::default()))?;
    let plan = sink.plan();
    assert_eq!(plan.ingest, IngestPath::Bulk);
    assert!(plan.transactions);
    assert_eq!((plan.vectors, plan.scalars), (VectorEncoding::List, ScalarEncoding::Native));
    drop(sink);

    let summary = scan(&tree, &server.uri(), Credentials::default(), 3)?;
    assert_eq!(summary.counts.inserted, files);
    assert_eq!(counts(&server.adbc_uri(), &none()), expected_rows(&tree));
    // This server keeps lists as JSON text; the values are the embedding's.
    let row = adbc_rows(
        &server.adbc_uri(),
        "SELECT metadata_embedding, deep FROM files WHERE key = 'shot000/shot010_deep.1001.exr'",
        &none(),
    );
    let stored: Vec<f32> = serde_json::from_str(row[0]["metadata_embedding"].as_str().unwrap_or_default())?;
    let path = tree.join("shot000/shot010_deep.1001.exr");
    let expected = exrscan::embed::embed(&exrscan::header::parse_complete(&std::fs::read(&path)?)?);
    assert_eq!(stored, expected.metadata.to_vec());
    assert_eq!(row[0]["deep"], 1);

    let rerun = scan(&tree, &server.uri(), Credentials::default(), 3)?;
    assert_eq!((rerun.counts.inserted, rerun.counts.unchanged), (0, files));

    // `similar` over Flight SQL: vectors are compared client-side.
    let query = tree.join("shot001/shot010_beauty.1001.exr");
    let query_uri = exrscan::source::local::file_uri(&std::fs::canonicalize(&query)?).unwrap_or_default();
    let embeddings = exrscan::embed::embed(&exrscan::header::parse_complete(&std::fs::read(&query)?)?);
    let neighbours = runtime.block_on(async {
        let mut sink = AnySink::open(&uri, &Credentials::default().into(), &fixtures::retry()).await?;
        sink.similar(SimilarBy::Channels, &embeddings.channels, 4, Some(&query_uri)).await
    })?;
    assert_eq!(neighbours.len(), 4);
    assert!(neighbours.iter().all(|n| n.source_uri.contains("shot010_beauty.") && n.score > 0.999), "{neighbours:?}");
    Ok(())
}

/// `vectors=blob` through bulk ingest: little-endian f32 bytes in a binary column.
#[test]
fn bulk_ingest_with_blob_vectors() -> TestResult {
    let server = FlightSqlServer::start_with(FlightSqlOptions { bulk_ingest: true, ..FlightSqlOptions::default() })?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 1) as u64;
    let uri = format!("{}?vectors=blob&scalars=integer&table_prefix=exr_", server.uri());
    let summary = scan(&tree, &uri, Credentials::default(), 4)?;
    assert_eq!(summary.counts.inserted, files);
    let row = adbc_rows(
        &server.adbc_uri(),
        "SELECT metadata_embedding, tiled FROM exr_files WHERE key = 'shot000/env_sky_latlong_mip.exr'",
        &none(),
    );
    assert_eq!(row.len(), 1, "{row:?}");
    let path = tree.join("shot000/env_sky_latlong_mip.exr");
    let expected = exrscan::embed::embed(&exrscan::header::parse_complete(&std::fs::read(&path)?)?);
    assert_eq!(blob_floats(row[0]["metadata_embedding"].as_str().unwrap_or_default()), expected.metadata.to_vec());
    assert_eq!(row[0]["tiled"], 1);
    assert_eq!(
        scalar(&adbc_rows(&server.adbc_uri(), "SELECT count(*) AS n FROM exr_channels", &none())) as u64,
        expected_rows(&tree).2
    );
    Ok(())
}

/// Without transactions, `files` rows are written last and mark a file complete: child
/// rows of a file without one (an attempt that died half-way) are replaced, not doubled.
#[test]
fn without_transactions_files_rows_are_written_last() -> TestResult {
    let server =
        FlightSqlServer::start_with(FlightSqlOptions { no_transactions: true, ..FlightSqlOptions::default() })?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 2) as u64;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let uri: SinkUri = server.uri().parse()?;
    let sink = runtime.block_on(FlightSink::connect(flight_options(&uri), Credentials::default()))?;
    assert!(!sink.plan().transactions);
    drop(sink);

    let first = scan(&tree, &server.uri(), Credentials::default(), 4)?;
    assert_eq!(first.counts.inserted, files);
    assert_eq!(counts(&server.adbc_uri(), &none()), expected_rows(&tree));

    // As if the attempt had died before writing these files rows.
    let code = "import sqlite3, sys\n\
        c = sqlite3.connect(sys.argv[1], timeout=10)\n\
        n = c.execute(\"DELETE FROM files WHERE key LIKE '%shot010_aovs.1001.exr'\").rowcount\n\
        c.commit()\n\
        print(n)";
    let deleted = testenv::python::run(code, &[&server.database_path().to_string_lossy()])?;
    assert_eq!(deleted.trim(), "2");

    let second = scan(&tree, &server.uri(), Credentials::default(), 4)?;
    assert_eq!((second.counts.inserted, second.counts.unchanged), (2, files - 2));
    assert_eq!(counts(&server.adbc_uri(), &none()), expected_rows(&tree), "child rows doubled");
    assert_eq!(distinct_file_ids(&server.adbc_uri(), &none()), files);
    Ok(())
}
