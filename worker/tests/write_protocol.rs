//! The write protocol (`docs/sinks.md`, "Exactly once") step by step against the real
//! servers — Apache Arrow's reference Flight SQL server with and without transactions, over
//! prepared statements and bulk ingest, DuckDB, and the VAST protocol twin — with the states
//! faults leave written on purpose: child rows of attempts killed before their `files` rows
//! (old and young), a file committed by two writers, and a timed-out attempt that lands after
//! its retry. Read back independently (ADBC, DuckDB's Python client, VAST's SDK), the
//! `indexed_*` views (on VAST, their SQL over the tables) show every file once with exactly
//! its rows; `gc` removes what they hide and nothing else.

mod fixtures;

use std::path::Path;
use std::time::{Duration, SystemTime};

use exrscan::catalog::{CatalogBatch, CatalogBuilder, ScanInfo, SourceFile, Table, WriteId};
use exrscan::sink::Credentials;
use exrscan::sink::{AnySink, GcCounts, RetryPolicy, Sink, SinkUri, Writer};
use fixtures::{TestResult, adbc_rows, duckdb_rows, sample_names, samples_dir, vast_credentials, vast_rows};
use serde_json::{Value, json};
use testenv::flightsql::FlightSqlOptions;
use testenv::{FlightSqlServer, VastTwin};

/// The sample files as one batch (the rows a writer would build).
fn sample_batch() -> Result<CatalogBatch, Box<dyn std::error::Error>> {
    let mut builder = CatalogBuilder::new(ScanInfo { name: Some("protocol".into()), uid: None });
    for name in sample_names() {
        let path = samples_dir().join(&name);
        let bytes = std::fs::read(&path)?;
        let header = exrscan::header::parse_complete(&bytes)?;
        let source = SourceFile {
            uri: format!("file:///protocol/{name}"),
            bucket: None,
            key: name,
            size_bytes: bytes.len() as u64,
            last_modified: Some(SystemTime::now()),
            etag: None,
        };
        builder.add(source, &header, Some(&exrscan::embed::embed(&header)));
    }
    Ok(builder.finish()?)
}

/// The child rows of `batch` only: what an attempt killed before its `files` rows leaves.
fn children_only(batch: &CatalogBatch) -> Result<CatalogBatch, Box<dyn std::error::Error>> {
    let empty_files = batch.table(Table::Files).slice(0, 0);
    Ok(CatalogBatch::new([
        empty_files,
        batch.table(Table::Parts).clone(),
        batch.table(Table::Channels).clone(),
        batch.table(Table::Attributes).clone(),
    ])?)
}

fn rows(batch: &CatalogBatch, table: Table) -> u64 {
    batch.table(table).num_rows() as u64
}

fn retry() -> RetryPolicy {
    RetryPolicy { max_elapsed: Duration::from_secs(30), ..RetryPolicy::default() }
}

/// A catalog under test: how to open its sink and how to read it independently.
struct Catalog<'a> {
    uri: String,
    read: &'a dyn Fn(&str) -> Vec<Value>,
    /// Whether two attempts can both commit a file (no unique key on `files.file_id`).
    duplicates_possible: bool,
    /// The sink's secrets.
    credentials: Credentials,
}

impl Catalog<'_> {
    /// Runs `f` on a freshly opened sink, which it closes (a DuckDB reader needs the file).
    fn with_sink<T>(&self, f: impl AsyncFnOnce(AnySink) -> T) -> Result<T, Box<dyn std::error::Error>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let uri: SinkUri = self.uri.parse()?;
        Ok(runtime.block_on(async {
            let sink = AnySink::open(&uri, &self.credentials, &retry()).await?;
            Ok::<_, exrscan::sink::SinkError>(f(sink).await)
        })?)
    }

    fn count(&self, relation: &str) -> u64 {
        let rows = (self.read)(&format!("SELECT count(*) AS n FROM {relation}"));
        fixtures::scalar(&rows) as u64
    }

    /// Rows of the four tables, or of the four views.
    fn counts(&self, views: bool) -> [u64; 4] {
        Table::ALL.map(|t| self.count(&if views { format!("indexed_{}", t.name()) } else { t.name().to_string() }))
    }
}

/// The scenario every sink goes through.
fn protocol(catalog: &Catalog) -> TestResult {
    let batch = sample_batch()?;
    let files = batch.files() as u64;
    let expected = Table::ALL.map(|t| rows(&batch, t));
    let children = children_only(&batch)?;
    // Attempt ids by start time: an orphan older than the grace, the late (timed-out)
    // attempt, the first committed copy, a concurrent writer's copy, a young orphan.
    let old_orphan = WriteId::started_before(Duration::from_secs(2 * 3600));
    let late = WriteId::started_before(Duration::from_secs(60));
    let first = WriteId::new();
    let concurrent = WriteId::new();

    catalog.with_sink(async |mut sink| {
        sink.write(&children.stamped(&old_orphan)?).await?;
        sink.write(&batch.stamped(&first)?).await?;
        if catalog.duplicates_possible {
            sink.write(&batch.stamped(&late)?).await?;
            sink.write(&batch.stamped(&concurrent)?).await?;
        }
        sink.write(&children.stamped(&WriteId::new())?).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })??;

    let canonical = if catalog.duplicates_possible { &late } else { &first };
    let copies = if catalog.duplicates_possible { 3 } else { 1 };
    assert_eq!(catalog.counts(true), expected, "the views show every file once with exactly its rows");
    for table in Table::ALL {
        let view = format!("indexed_{}", table.name());
        let ids = (catalog.read)(&format!("SELECT DISTINCT write_id FROM {view}"));
        assert_eq!(ids, vec![json!({"write_id": canonical.as_str()})], "{view} shows the smallest committed attempt");
    }
    let distinct_parts = catalog.count("(SELECT DISTINCT file_id, part_index FROM indexed_parts) p");
    assert_eq!(distinct_parts, expected[1], "no part twice");
    let physical = catalog.counts(false);
    assert_eq!(physical[0], copies * files);
    assert_eq!(physical[1..], [(copies + 2) * expected[1], (copies + 2) * expected[2], (copies + 2) * expected[3]]);

    // A writer that checks existence first writes nothing: every file is committed.
    let outcome = catalog.with_sink(async |sink| Writer::new(sink, retry()).put(&batch).await)??;
    assert_eq!((outcome.inserted, outcome.unchanged, outcome.rows), (0, files, 0));

    // Garbage collection with an hour's grace: the old orphan and the extra copies go, the
    // young orphan (an attempt that may still be writing) stays.
    let hour = WriteId::started_before(Duration::from_secs(3600));
    let gc = catalog.with_sink(async |mut sink| sink.collect_garbage(&hour).await)??;
    let extra = copies - 1;
    assert_eq!(
        gc,
        GcCounts {
            files: extra * files,
            parts: (extra + 1) * expected[1],
            channels: (extra + 1) * expected[2],
            attributes: (extra + 1) * expected[3]
        }
    );
    assert_eq!(catalog.counts(true), expected, "gc changes nothing readers see");
    assert_eq!(catalog.counts(false), [files, 2 * expected[1], 2 * expected[2], 2 * expected[3]]);

    // Without grace the young orphan goes too; then the tables are exactly the views.
    let now = WriteId::started_before(Duration::ZERO);
    let gc = catalog.with_sink(async |mut sink| sink.collect_garbage(&now).await)??;
    assert_eq!(gc, GcCounts { files: 0, parts: expected[1], channels: expected[2], attributes: expected[3] });
    assert_eq!(catalog.counts(false), expected);
    let again = catalog.with_sink(async |mut sink| sink.collect_garbage(&now).await)??;
    assert_eq!(again, GcCounts::default(), "a second collection finds nothing");
    Ok(())
}

fn flight(options: FlightSqlOptions) -> TestResult {
    let server = FlightSqlServer::start_with(options)?;
    let adbc = server.adbc_uri();
    let read = |sql: &str| adbc_rows(&adbc, sql, &json!({}));
    protocol(&Catalog {
        uri: server.uri(),
        read: &read,
        duplicates_possible: true,
        credentials: Credentials::default(),
    })
}

#[test]
fn flight_prepared_with_transactions() -> TestResult {
    flight(FlightSqlOptions::default())
}

#[test]
fn flight_prepared_without_transactions() -> TestResult {
    flight(FlightSqlOptions { no_transactions: true, ..Default::default() })
}

#[test]
fn flight_bulk_ingest_with_transactions() -> TestResult {
    flight(FlightSqlOptions { bulk_ingest: true, ..Default::default() })
}

#[test]
fn flight_bulk_ingest_without_transactions() -> TestResult {
    flight(FlightSqlOptions { bulk_ingest: true, no_transactions: true, ..Default::default() })
}

#[test]
fn duckdb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("catalog.duckdb");
    let read = |sql: &str| duckdb_rows(&path, sql);
    let uri = format!("duckdb://{}", path.display());
    protocol(&Catalog { uri, read: &read, duplicates_possible: false, credentials: Credentials::default() })
}

/// VAST has transactions but no unique keys: two attempts can both commit a file.
#[test]
fn vast() -> TestResult {
    let twin = VastTwin::start()?;
    let schema = "exrscan/protocol";
    let endpoint = twin.endpoint();
    let read = |sql: &str| vast_rows(&endpoint, schema, sql);
    protocol(&Catalog {
        uri: twin.uri(schema),
        read: &read,
        duplicates_possible: true,
        credentials: vast_credentials(),
    })
}

/// A catalog written before write ids existed gets the column (empty ids, which sort first)
/// and the views when it is opened, and keeps its rows.
#[test]
fn duckdb_catalog_from_before_write_ids_is_upgraded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.duckdb");
    let uri = format!("duckdb://{}", path.display());
    let batch = sample_batch()?;
    let read = |sql: &str| duckdb_rows(&path, sql);
    let catalog =
        Catalog { uri: uri.clone(), read: &read, duplicates_possible: false, credentials: Credentials::default() };
    let stamped = batch.stamped(&WriteId::new())?;
    catalog.with_sink(async |mut sink| sink.write(&stamped).await)??;
    downgrade(&path)?;
    assert_eq!(catalog.count("files"), batch.files() as u64);
    let source_uri_index = || read("SELECT count(*) AS n FROM duckdb_indexes() WHERE index_name = 'files_source_uri'");
    assert_eq!(source_uri_index(), vec![json!({"n": 0})]);

    catalog.with_sink(async |_| ())?;
    assert_eq!(catalog.counts(true), Table::ALL.map(|t| rows(&batch, t)));
    assert_eq!(source_uri_index(), vec![json!({"n": 1})], "the resume check's index is added on open");
    let ids = read("SELECT DISTINCT write_id FROM indexed_attributes");
    assert_eq!(ids, vec![json!({"write_id": ""})]);
    Ok(())
}

/// Removes the write id column and the views, as a catalog of an earlier exrscan has it.
fn downgrade(path: &Path) -> TestResult {
    let code = "import sys, duckdb\ncon = duckdb.connect(sys.argv[1])\n\
                for t in ['attributes', 'channels', 'parts', 'files']:\n    con.execute(f'DROP VIEW indexed_{t}')\n\
                for t in ['attributes', 'channels', 'parts', 'files']:\n\
                \x20   con.execute(f'CREATE TABLE old_{t} AS SELECT * EXCLUDE (write_id) FROM {t}')\n\
                \x20   con.execute(f'DROP TABLE {t}')\n\
                \x20   con.execute(f'ALTER TABLE old_{t} RENAME TO {t}')\n\
                print('ok')";
    testenv::python::run(code, &[&path.to_string_lossy()])?;
    Ok(())
}
