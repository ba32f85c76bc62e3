//! The Flight SQL sink against Apache Arrow's reference Flight SQL server (arrow-go,
//! SQLite), read back by an independent client (the ADBC Flight SQL driver): values,
//! re-runs, a server killed and restarted mid-run, authentication, TLS with a custom CA,
//! the bulk-ingest path and a server without transactions, rows of megabytes, lookups with
//! bound parameters, abandoned attempts and abandoned transactions.

mod fixtures;

use std::path::Path;
use std::time::{Duration, Instant};

use exrscan::catalog::{CatalogBatch, CatalogBuilder, ScanInfo, SourceFile};
use exrscan::sink::flight::{Credentials, FlightSink, IngestPath, ScalarEncoding, VectorEncoding};
use exrscan::sink::{AnySink, SimilarBy, Sink, SinkError, SinkUri, Writer};
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

/// Without transactions, `files` rows are written last and mark a file complete: a file
/// whose `files` rows are missing (an attempt that died half-way) is written again, the
/// `indexed_*` views show its rows once, and `exrscan gc` removes the dead attempt's rows.
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
    let view = |table: &str| {
        scalar(&adbc_rows(&server.adbc_uri(), &format!("SELECT count(*) AS n FROM indexed_{table}"), &none())) as u64
    };
    let expected = expected_rows(&tree);
    let seen = (view("files"), view("parts"), view("channels"), view("attributes"));
    assert_eq!(seen, expected, "the views show each file's rows once");
    assert!(counts(&server.adbc_uri(), &none()).1 > expected.1, "the dead attempt's rows are still in the tables");

    let exrscan = testenv::paths::workspace_bin("exrscan")?;
    let gc = std::process::Command::new(exrscan)
        .args(["gc", "--sink", &server.uri(), "--orphan-grace-seconds", "0"])
        .output()?;
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    assert_eq!(counts(&server.adbc_uri(), &none()), expected, "gc leaves each file's rows once");
    assert_eq!(distinct_file_ids(&server.adbc_uri(), &none()), files);
    Ok(())
}

/// A copy of the single-part sample `plate_yc.1001.exr` with string attributes `note0`,
/// `note1`, … of the given sizes added to its header. Each becomes an `attributes` row of
/// about twice its size (`value_json` and `value_text`), and all of them are in the file's
/// `files.raw_header_json`.
fn with_notes(sizes: &[usize]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let sample = std::fs::read(fixtures::samples_dir().join("plate_yc.1001.exr"))?;
    let header = exrscan::header::parse_complete(&sample)?;
    assert_eq!(header.parts.len(), 1, "a single-part sample");
    let end = header.header_bytes - 1; // the null byte that ends the attribute list
    let mut out = sample[..end].to_vec();
    for (i, &bytes) in sizes.iter().enumerate() {
        out.extend_from_slice(format!("note{i}\0string\0").as_bytes());
        out.extend_from_slice(&i32::try_from(bytes)?.to_le_bytes());
        out.extend(std::iter::repeat_n(b'x', bytes));
    }
    out.extend_from_slice(&sample[end..]);
    Ok(out)
}

/// Files whose attributes make rows of megabytes, next to each other among small ones in
/// one batch (splitting by the average row size, as arrow-flight's encoder does, put two
/// `files` rows of these in one message of 5,215,505 bytes): every message stays under the
/// server's 4 MiB receive limit, on both ingest paths, with no refused attempt. A file with a row of 5 MB, which no
/// message can carry, is reported failed with its reason and the rest of its batch is
/// written: the shard goes on.
#[test]
fn large_rows_travel_in_bounded_messages_and_a_file_too_large_fails_alone() -> TestResult {
    for bulk_ingest in [false, true] {
        let server = FlightSqlServer::start_with(FlightSqlOptions { bulk_ingest, ..FlightSqlOptions::default() })?;
        let dir = tempfile::tempdir()?;
        let tree = dir.path().join("tree");
        let small = sample_tree(&tree, 1) as u64;
        std::fs::create_dir_all(tree.join("big"))?;
        for i in 0..3 {
            let sizes: Vec<usize> = (0..4).map(|n| 650_000 + 4 * i + n).collect();
            std::fs::write(tree.join(format!("big/notes_{i}.exr")), with_notes(&sizes)?)?;
        }
        let expected = expected_rows(&tree);
        std::fs::create_dir_all(tree.join("huge"))?;
        std::fs::write(tree.join("huge/note.exr"), with_notes(&[2_500_000])?)?;

        let summary = scan(&tree, &server.uri(), Credentials::default(), 100)?;
        assert_eq!(summary.batches, 1, "one batch holds them all: {summary:?}");
        assert_eq!((summary.counts.inserted, summary.counts.failed), (small + 3, 1), "{summary:?}");
        assert_eq!(summary.retries, 0, "a message was refused: {summary:?}");
        let failure = &summary.failures[0];
        assert_eq!(failure.key, "huge/note.exr");
        let row_bytes: usize = failure
            .reason
            .strip_prefix("rows of ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        assert!(row_bytes > 4 * 1024 * 1024, "{failure:?}");
        assert!(failure.reason.ends_with("exceed the sink's message limit of 3014656 bytes per row"), "{failure:?}");
        assert_eq!(counts(&server.adbc_uri(), &none()), expected, "bulk ingest: {bulk_ingest}");
        let notes = adbc_rows(
            &server.adbc_uri(),
            "SELECT length(value_text) AS n FROM attributes WHERE name LIKE 'note%' ORDER BY n",
            &none(),
        );
        let lengths: Vec<i64> = notes.iter().filter_map(|r| r["n"].as_i64()).collect();
        assert_eq!(lengths, (650_000..650_012).collect::<Vec<i64>>());
    }
    Ok(())
}

/// The catalog batch of the samples, as if listed from `s3://bucket/<prefix>` with ETags.
fn sample_batch(prefix: &str) -> Result<(CatalogBatch, Vec<SourceFile>), Box<dyn std::error::Error>> {
    let mut builder = CatalogBuilder::new(ScanInfo::default());
    let mut listed = Vec::new();
    for name in fixtures::sample_names() {
        let bytes = std::fs::read(fixtures::samples_dir().join(&name))?;
        let header = exrscan::header::parse_complete(&bytes)?;
        let key = format!("{prefix}{name}");
        let file = SourceFile {
            uri: format!("s3://bucket/{key}"),
            bucket: Some("bucket".into()),
            key,
            size_bytes: bytes.len() as u64,
            last_modified: None,
            etag: Some(format!("\"etag-'{name}'\"")),
        };
        builder.add(file.clone(), &header, Some(&exrscan::embed::embed(&header)));
        listed.push(file);
    }
    Ok((builder.finish()?, listed))
}

/// The existence check and the resume check bind their keys as parameters: keys with
/// quotes are found as they are, on both ingest paths.
#[test]
fn lookups_bind_their_keys_as_parameters() -> TestResult {
    for bulk_ingest in [false, true] {
        let server = FlightSqlServer::start_with(FlightSqlOptions { bulk_ingest, ..FlightSqlOptions::default() })?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let (batch, listed) = sample_batch("it's a \"quoted\" key/")?;
        let mut writer = Writer::new(
            runtime.block_on(AnySink::open(
                &server.uri().parse()?,
                &Credentials::default().into(),
                &fixtures::retry(),
            ))?,
            fixtures::retry(),
        );
        let put = runtime.block_on(writer.put(&batch))?;
        assert_eq!(put.inserted, listed.len() as u64);

        let mut ids = batch.file_ids().to_vec();
        ids.push("f".repeat(64));
        let existing = runtime.block_on(writer.sink_mut().existing(&ids))?;
        assert_eq!(existing.len(), listed.len(), "every written file_id, not the made-up one");
        assert!(!existing.contains(&"f".repeat(64)));

        let mut asked = listed.clone();
        asked[0].size_bytes += 1; // changed since: not indexed
        let indexed = runtime.block_on(writer.indexed(&asked))?;
        assert_eq!(indexed.len(), listed.len() - 1, "{indexed:?}");
        assert!(!indexed.contains(&listed[0].uri) && indexed.contains(&listed[1].uri));
        let again = runtime.block_on(writer.put(&batch))?;
        assert_eq!((again.inserted, again.unchanged), (0, listed.len() as u64));
    }
    Ok(())
}

/// Holds SQLite's write lock on `database` from another process for `seconds`, from
/// about half a second after the call.
fn hold_write_lock(database: &Path, seconds: f64) -> std::thread::JoinHandle<Result<String, testenv::Error>> {
    let database = database.to_string_lossy().into_owned();
    let code = "import sqlite3, sys, time\n\
        c = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)\n\
        c.execute('BEGIN IMMEDIATE')\n\
        time.sleep(float(sys.argv[2]))\n\
        c.execute('ROLLBACK')";
    let handle = std::thread::spawn(move || testenv::python::run(code, &[&database, &seconds.to_string()]));
    std::thread::sleep(Duration::from_millis(1500));
    handle
}

/// Waits until the server's log says no prepared statement is open.
fn wait_for_no_prepared_statements(server: &FlightSqlServer, within: Duration) -> Result<usize, testenv::Error> {
    let started = Instant::now();
    loop {
        let open = server.open_prepared_statements()?;
        if open == 0 || started.elapsed() > within {
            return Ok(open);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A write abandoned at the sink's deadline (its INSERT waits for a lock held elsewhere)
/// closes its prepared statement and rolls back its transaction on the server: nothing of
/// it stays open, and the next write goes through and writes every row once.
#[test]
fn an_abandoned_write_leaves_no_prepared_statement_or_transaction_open() -> TestResult {
    let server = FlightSqlServer::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let uri: SinkUri = format!("{}?timeout_s=1", server.uri()).parse()?;
    let mut sink = runtime.block_on(AnySink::open(&uri, &Credentials::default().into(), &fixtures::retry()))?;
    let (batch, listed) = sample_batch("abandoned/")?;

    let holder = hold_write_lock(&server.database_path(), 3.0);
    let abandoned = runtime.block_on(sink.write(&batch));
    assert!(
        matches!(&abandoned, Err(SinkError::Transient(m)) if m.contains("no answer from the server within 1s")),
        "{abandoned:?}"
    );
    holder.join().map_err(|_| "lock holder panicked")??;
    let open = wait_for_no_prepared_statements(&server, Duration::from_secs(15))?;
    assert_eq!(open, 0, "a prepared statement was left open: {}", std::fs::read_to_string(server.log_path())?);

    runtime.block_on(sink.write(&batch))?;
    assert_eq!(counts(&server.adbc_uri(), &none()).0, listed.len() as u64);
    assert_eq!(distinct_file_ids(&server.adbc_uri(), &none()), listed.len() as u64);
    Ok(())
}

/// Begins a transaction on `server` that takes SQLite's write lock, and drops the
/// connection without ending it (as a writer killed mid-batch does).
fn abandon_a_transaction(runtime: &tokio::runtime::Runtime, server: &FlightSqlServer) -> TestResult {
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))?.connect().await?;
        let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
        let transaction = client.begin_transaction().await?;
        client.execute_update("CREATE TABLE held (x INTEGER)".into(), Some(transaction)).await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// A transaction abandoned by a killed writer holds SQLite's write lock. A server that
/// expires idle transactions (`-transaction-idle-timeout 2s`) frees it, and another writer
/// goes through within seconds; without that, the writer's error says what holds it.
#[test]
fn an_abandoned_transaction_blocks_others_only_until_the_server_expires_it() -> TestResult {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 1) as u64;

    let idle = Duration::from_secs(2);
    let server = FlightSqlServer::start_with(FlightSqlOptions {
        transaction_idle_timeout: Some(idle),
        ..FlightSqlOptions::default()
    })?;
    drop(runtime.block_on(AnySink::open(
        &server.uri().parse()?,
        &Credentials::default().into(),
        &fixtures::retry(),
    ))?);
    abandon_a_transaction(&runtime, &server)?;
    let started = Instant::now();
    let summary = scan(&tree, &server.uri(), Credentials::default(), 100)?;
    assert_eq!(summary.counts.inserted, files);
    assert!(started.elapsed() < Duration::from_secs(8), "blocked for {:?}", started.elapsed());
    let log = std::fs::read_to_string(server.log_path())?;
    assert!(log.contains("idle for more than 2s: rolled back"), "{log}");

    // Without expiry the lock stays: the error names the cause (after the server's own
    // 10 s busy timeout).
    let server = FlightSqlServer::start()?;
    let uri: SinkUri = format!("{}?timeout_s=20", server.uri()).parse()?;
    let mut sink = runtime.block_on(AnySink::open(&uri, &Credentials::default().into(), &fixtures::retry()))?;
    abandon_a_transaction(&runtime, &server)?;
    let (batch, _) = sample_batch("held/")?;
    let blocked = runtime.block_on(sink.write(&batch));
    assert!(
        matches!(&blocked, Err(SinkError::Transient(m))
            if m.contains("database is locked") && m.contains("another transaction holds the catalog's write lock")),
        "{blocked:?}"
    );
    Ok(())
}

/// The CLI over Flight SQL: `exrscan query`, `exrscan similar --uri` (the stored vector read
/// through a bound parameter), and a local rescan that reads nothing unchanged.
#[test]
fn query_similar_by_uri_and_rescans_over_flight_sql() -> TestResult {
    let server = FlightSqlServer::start()?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 1) as u64;
    let exrscan = || {
        let mut cmd =
            std::process::Command::new(testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}")));
        cmd.env("EXRSCAN_LOG", "warn");
        cmd
    };
    let ok = |cmd: &mut std::process::Command| -> Result<String, Box<dyn std::error::Error>> {
        let out = cmd.output()?;
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let sink = server.uri();
    let first: Value =
        serde_json::from_str(ok(exrscan().args(["scan", "--json", "--sink", &sink]).arg(&tree))?.trim())?;
    assert_eq!(first["inserted"], files, "{first}");
    let again: Value =
        serde_json::from_str(ok(exrscan().args(["scan", "--json", "--sink", &sink]).arg(&tree))?.trim())?;
    assert_eq!((again["processed"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(files)), "{again}");

    let csv = ok(exrscan().args(["query", "-f", "csv", "SELECT count(*) AS n FROM indexed_files", "--sink", &sink]))?;
    assert_eq!(csv, format!("n\n{files}\n"));
    let bad = exrscan().args(["query", "SELECT nope FROM indexed_files", "--sink", &sink]).output()?;
    assert_eq!(bad.status.code(), Some(1));

    let uri = format!("file://{}", tree.join("shot000/shot010_beauty.1001.exr").canonicalize()?.display());
    let out = ok(exrscan().args(["similar", "--json", "-k", "3", "--uri", &uri, "--sink", &sink]))?;
    let results: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(results.len(), 3, "{out}");
    assert!(results.iter().all(|r| r["source_uri"] != uri.as_str()), "not itself: {out}");
    assert!(results[0]["source_uri"].as_str().is_some_and(|u| u.contains("shot010_beauty.")), "{out}");
    Ok(())
}
