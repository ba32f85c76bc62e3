//! The catalog's promise under faults, end to end with the real parts: several
//! `exrscan scan` processes over the same keys of one MinIO bucket write one catalog at once
//! — one SIGKILLed mid-run, one whose batches outlast its sink deadline, the catalog server
//! killed and restarted once — then a clean rescan and `exrscan gc`. For each server setup
//! (Apache Arrow's reference Flight SQL server with and without transactions, over prepared
//! statements and bulk ingest; the VAST protocol twin; DuckDB, one writer at a time), the
//! catalog is read back independently (ADBC, VAST's SDK, DuckDB's Python client) and
//! compared file by file with a reference written by one undisturbed scan: through the
//! `indexed_*` views before `gc`, and the tables themselves after it, every file once with
//! exactly its own rows.

mod bucket;
mod fixtures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bucket::{BUCKET, PREFIX, TestResult, Uploaded, exrscan_s3, last_json, run, upload};
use fixtures::{adbc_rows, duckdb_rows, vast_rows};
use serde_json::{Value, json};
use testenv::flightsql::FlightSqlOptions;
use testenv::vasttwin::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use testenv::{FlightSqlServer, S3Server, VastTwin};

/// Copies of the corpus under the prefix.
const COPIES: usize = 6;

/// Per key: header hash and rows in parts, channels and attributes.
type Census = BTreeMap<String, (String, u64, u64, u64)>;

/// A query giving the [`Census`] of a catalog, through the views or the tables.
fn census_sql(views: bool) -> String {
    let name = |table: &str| if views { format!("indexed_{table}") } else { table.to_string() };
    let count =
        |table: &str| format!("(SELECT count(*) FROM {} c WHERE c.file_id = f.file_id) AS {table}", name(table));
    format!(
        "SELECT f.key, f.header_hash, {}, {}, {} FROM {} f",
        count("parts"),
        count("channels"),
        count("attributes"),
        name("files")
    )
}

fn census(rows: &[Value]) -> Census {
    let mut out = Census::new();
    for row in rows {
        let text = |k: &str| row[k].as_str().unwrap_or_default().to_string();
        let n = |k: &str| row[k].as_u64().unwrap_or_else(|| panic!("{k} in {row}"));
        let before = out.insert(text("key"), (text("header_hash"), n("parts"), n("channels"), n("attributes")));
        assert!(before.is_none(), "{} is in the catalog twice", text("key"));
    }
    out
}

/// Natural keys of each view that must not repeat, and the query counting repeats.
const REPEATS: [&str; 4] = [
    "SELECT count(*) - count(DISTINCT file_id) AS n FROM indexed_files",
    "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT file_id, part_index FROM indexed_parts) d) AS n \
     FROM indexed_parts",
    "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT file_id, part_index, channel_index \
     FROM indexed_channels) d) AS n FROM indexed_channels",
    "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT file_id, part_index, name FROM indexed_attributes) d) \
     AS n FROM indexed_attributes",
];

/// `exrscan` against the bucket, with the VAST twin's keys too.
fn exrscan(s3: &S3Server) -> Command {
    let mut cmd = exrscan_s3(s3);
    cmd.env("EXRSCAN_VAST_ACCESS_KEY_ID", ACCESS_KEY_ID).env("EXRSCAN_VAST_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
    cmd
}

/// `exrscan scan s3://renders/show/ --sink URI` with small batches, as a child process.
fn scan(s3: &S3Server, sink: &str, batch_files: usize, retry_seconds: u64) -> Command {
    let mut cmd = exrscan(s3);
    cmd.args(["scan", &format!("s3://{BUCKET}/{PREFIX}"), "--sink", sink, "--json", "--concurrency", "8"]).args([
        "--batch-files",
        &batch_files.to_string(),
        "--sink-retry-seconds",
        &retry_seconds.to_string(),
    ]);
    cmd
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("exrscan starts")
}

/// Waits for `child` (at most `limit`), returning its status and stderr.
fn finish(mut child: Child, limit: Duration) -> (ExitStatus, String, String) {
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        assert!(started.elapsed() < limit, "a writer did not finish within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("writer output");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A catalog server the test kills (SIGKILL) and starts again on the same address and data.
trait Restart {
    fn kill(&mut self);
    fn start_again(&mut self) -> Result<(), testenv::Error>;
}

impl Restart for FlightSqlServer {
    fn kill(&mut self) {
        self.stop();
    }

    fn start_again(&mut self) -> Result<(), testenv::Error> {
        self.restart()
    }
}

impl Restart for VastTwin {
    fn kill(&mut self) {
        self.stop();
    }

    fn start_again(&mut self) -> Result<(), testenv::Error> {
        self.restart()
    }
}

/// One catalog under test.
struct Setup<'a> {
    name: &'a str,
    /// Sink URI for the writers (and `timeout_s` appended for the slow one).
    sink: String,
    read: &'a dyn Fn(&str) -> Vec<Value>,
    /// Several writers at once (DuckDB takes one writing process).
    concurrent: bool,
    /// The catalog's write-ahead log, which grows with the first commit: the moment to
    /// kill a writer mid-run.
    log: PathBuf,
    /// The catalog server, restarted once mid-run.
    server: Option<&'a mut dyn Restart>,
}

fn faults(s3: &S3Server, uploaded: &Uploaded, reference: &Census, setup: Setup) -> TestResult {
    let name = setup.name;
    let separator = if setup.sink.contains('?') { '&' } else { '?' };
    let mut writers = vec![("killed", spawn(scan(s3, &setup.sink, 16, 120)))];
    if setup.concurrent {
        writers.push(("steady", spawn(scan(s3, &setup.sink, 16, 120))));
        writers.push(("overlapping", spawn(scan(s3, &setup.sink, 24, 120))));
        // Batches that outlast the deadline: attempts given up by the client while the
        // server may still be writing them.
        writers
            .push(("past its deadline", spawn(scan(s3, &format!("{}{separator}timeout_s=0.15", setup.sink), 48, 20))));
    }
    let started = Instant::now();
    while std::fs::metadata(&setup.log).map_or(0, |m| m.len()) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "{name}: nothing committed within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = &mut writers[0].1;
    assert!(killed.try_wait()?.is_none(), "{name}: the writer to kill had already finished; the test needs more files");
    killed.kill()?;
    if let Some(server) = setup.server {
        std::thread::sleep(Duration::from_millis(500));
        server.kill();
        std::thread::sleep(Duration::from_millis(1000));
        server.start_again()?;
    }
    for (role, child) in writers {
        let (status, _, stderr) = finish(child, Duration::from_secs(240));
        match role {
            "killed" => assert_eq!(status.code(), None, "{name}: killed by a signal"),
            "past its deadline" => {
                assert!(matches!(status.code(), Some(0 | 1)), "{name}: {role} writer exited {status}: {stderr}")
            }
            _ => assert!(status.success(), "{name}: {role} writer exited {status}: {stderr}"),
        }
    }

    // A clean rescan completes what the killed and failed writers left.
    let out = run(&mut scan(s3, &setup.sink, 64, 120));
    let summary = last_json(&out);
    let n = |k: &str| summary[k].as_u64().unwrap_or_else(|| panic!("{k} in {summary}"));
    assert_eq!(n("discovered"), uploaded.exr.len() as u64, "{name}: {summary}");
    assert_eq!(n("discovered"), n("inserted") + n("unchanged") + n("failed"), "{name}: the counts add up: {summary}");
    assert_eq!(n("failed"), uploaded.broken().len() as u64, "{name}: {summary}");

    // Readers of the views: every readable file once, with exactly its rows.
    assert_eq!(&census(&(setup.read)(&census_sql(true))), reference, "{name}: the views before gc");
    for sql in REPEATS {
        assert_eq!(fixtures::scalar(&(setup.read)(sql)), 0, "{name}: {sql}");
    }

    // gc removes everything the views hide: then the tables are exactly the views.
    let gc = run(exrscan(s3).args(["gc", "--sink", &setup.sink, "--orphan-grace-seconds", "0"]));
    let removed: Value = serde_json::from_slice(&gc.stdout)?;
    assert_eq!(&census(&(setup.read)(&census_sql(false))), reference, "{name}: the tables after gc ({removed})");
    for table in ["files", "parts", "channels", "attributes"] {
        let all = fixtures::scalar(&(setup.read)(&format!("SELECT count(*) AS n FROM {table}")));
        let seen = fixtures::scalar(&(setup.read)(&format!("SELECT count(*) AS n FROM indexed_{table}")));
        assert_eq!(all, seen, "{name}: {table} holds only what its view shows after gc ({removed})");
    }
    eprintln!("{name}: gc removed {removed}");
    Ok(())
}

/// The reference: one undisturbed scan of the prefix into a fresh DuckDB catalog.
fn reference(s3: &S3Server, dir: &Path) -> Census {
    let path = dir.join("reference.duckdb");
    run(&mut scan(s3, &format!("duckdb://{}", path.display()), 1000, 120));
    census(&duckdb_rows(&path, &census_sql(false)))
}

#[test]
fn every_file_once_under_concurrent_writers_kills_timeouts_and_restarts() -> TestResult {
    let s3 = S3Server::start()?;
    let uploaded = upload(&s3, COPIES);
    let dir = tempfile::tempdir()?;
    let reference = reference(&s3, dir.path());
    assert_eq!(reference.len(), uploaded.readable.len(), "the reference holds every readable file");

    // The killed writer's transaction is rolled back by the server once idle, as production
    // servers expire abandoned transactions; until then it holds SQLite's write lock.
    let idle = FlightSqlOptions { transaction_idle_timeout: Some(Duration::from_secs(3)), ..Default::default() };
    let flight = [
        ("prepared statements, transactions", idle.clone()),
        ("prepared statements, no transactions", FlightSqlOptions { no_transactions: true, ..idle.clone() }),
        ("bulk ingest, transactions", FlightSqlOptions { bulk_ingest: true, ..idle.clone() }),
        ("bulk ingest, no transactions", FlightSqlOptions { bulk_ingest: true, no_transactions: true, ..idle }),
    ];
    for (name, options) in flight {
        let mut server = FlightSqlServer::start_with(options)?;
        let adbc = server.adbc_uri();
        let read = |sql: &str| adbc_rows(&adbc, sql, &json!({}));
        // A response cut off by the server's kill is given up after 20 s (default 30 s);
        // without transactions every row is a commit of its own on this server, so a batch
        // on a busy machine can take several seconds.
        let sink = format!("{}?timeout_s=20", server.uri());
        let log = PathBuf::from(format!("{}-wal", server.database_path().display()));
        let setup = Setup { name, sink, read: &read, concurrent: true, log, server: Some(&mut server) };
        faults(&s3, &uploaded, &reference, setup)?;
    }

    let mut twin = VastTwin::start()?;
    let schema = "exrscan/faults";
    let endpoint = twin.endpoint();
    let read = |sql: &str| vast_rows(&endpoint, schema, sql);
    // As for Flight SQL, a deadline a busy machine does not reach by itself.
    let sink = format!("{}&timeout_s=20", twin.uri(schema));
    // DuckDB's log under the twin (the writers' schema and tables are its first commits).
    let log = PathBuf::from(format!("{}.wal", twin.database_path().display()));
    let setup = Setup { name: "VAST twin", sink, read: &read, concurrent: true, log, server: Some(&mut twin) };
    faults(&s3, &uploaded, &reference, setup)?;

    let path = dir.path().join("catalog.duckdb");
    let read = |sql: &str| duckdb_rows(&path, sql);
    let sink = format!("duckdb://{}", path.display());
    let log = dir.path().join("catalog.duckdb.wal");
    faults(
        &s3,
        &uploaded,
        &reference,
        Setup { name: "DuckDB", sink, read: &read, concurrent: false, log, server: None },
    )
}
