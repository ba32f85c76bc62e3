//! The `exrscan scan` and `exrscan similar` commands over a local directory into DuckDB.

mod fixtures;

use std::process::Command;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use exrscan::catalog::{CatalogBatch, SourceFile, WriteId};
use exrscan::scan::{self, CancellationToken, ScanError, Tally};
use exrscan::sink::{AnySink, GcCounts, IndexedFile, Neighbour, SimilarBy, Sink, SinkError, Stored, Writer};
use exrscan::source::local::LocalSource;
use exrscan::source::{ReadHeader, Source, SourceError};
use fixtures::{TestResult, duckdb_rows, expected_rows, sample_tree, scalar};
use serde_json::Value;
use tokio::sync::mpsc;

fn exrscan() -> Command {
    Command::new(testenv::paths::workspace_bin("exrscan").expect("the exrscan binary is built"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("exrscan runs");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `name  value` lines of the text summary.
fn summary_value(summary: &str, name: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.split_whitespace().next()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in summary:\n{summary}"))
}

#[test]
fn scan_prints_a_summary_and_rerun_inserts_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    let files = sample_tree(&tree, 2) as u64;
    std::fs::write(tree.join("shot000/broken.exr"), b"not an exr at all")?;
    std::fs::write(tree.join("shot000/notes.txt"), b"ignored")?;
    let db = dir.path().join("cat/catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());

    let first = run(exrscan().args(["scan", "--sink", &sink]).arg(&tree));
    assert_eq!(summary_value(&first, "discovered"), files + 1, "{first}");
    assert_eq!(summary_value(&first, "processed"), files);
    assert_eq!(summary_value(&first, "inserted"), files);
    assert_eq!(summary_value(&first, "unchanged"), 0);
    assert_eq!(summary_value(&first, "failed"), 1);
    assert!(summary_value(&first, "bytes read") > 0);
    assert!(first.contains("elapsed"), "{first}");
    assert!(first.contains("failed: shot000/broken.exr:"), "the failure is named: {first}");

    let (f, p, c, a) = expected_rows(&tree.join("shot001"));
    let n = |sql: &str| scalar(&duckdb_rows(&db, sql)) as u64;
    assert_eq!(n("SELECT count(*) FROM files"), 2 * f);
    assert_eq!(n("SELECT count(*) FROM parts"), 2 * p);
    assert_eq!(n("SELECT count(*) FROM channels"), 2 * c);
    assert_eq!(n("SELECT count(*) FROM attributes"), 2 * a);

    let second = run(exrscan().args(["scan", "--json", "--batch-files", "3", "--sink", &sink]).arg(&tree));
    let summary: Value = serde_json::from_str(second.trim())?;
    assert_eq!(summary["inserted"], 0, "{summary}");
    assert_eq!(summary["unchanged"], files);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["rows_written"], 0);
    assert_eq!(n("SELECT count(*) FROM files"), 2 * f);
    Ok(())
}

/// A file whose name is not UTF-8 cannot be cataloged (keys and URIs are UTF-8): it is
/// counted as failed with its reason, not skipped unseen.
#[test]
fn a_file_whose_name_is_not_utf8_is_counted_as_failed() -> TestResult {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    let files = sample_tree(&tree, 1) as u64;
    let good = std::fs::read_dir(tree.join("shot000"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "exr"))
        .ok_or("a sample EXR")?;
    std::fs::copy(&good, tree.join("shot000").join(std::ffi::OsStr::from_bytes(b"beauty\xe9.exr")))?;
    let db = dir.path().join("catalog.duckdb");
    let out = run(exrscan().args(["scan", "--json", "--sink", &format!("duckdb://{}", db.display())]).arg(&tree));
    let summary: Value = serde_json::from_str(out.trim())?;
    assert_eq!(summary["inserted"], files, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    let reason = summary["failures"][0]["reason"].as_str().unwrap_or_default();
    let key = summary["failures"][0]["key"].as_str().unwrap_or_default();
    assert!(reason.contains("not UTF-8") && key.ends_with("beauty\u{FFFD}.exr"), "{summary}");
    Ok(())
}

/// A batch closes at whichever limit comes first: files, rows or bytes.
#[test]
fn batches_are_bounded_by_files_rows_and_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    let files = sample_tree(&tree, 2) as u64;
    let batches = |name: &str, limit: &[&str]| -> Result<Value, Box<dyn std::error::Error>> {
        let sink = format!("duckdb://{}", dir.path().join(name).display());
        let out = run(exrscan().args(["scan", "--json", "--sink", &sink]).args(limit).arg(&tree));
        Ok(serde_json::from_str(out.trim())?)
    };
    let one = batches("one.duckdb", &[])?;
    assert_eq!((one["batches"].as_u64(), one["inserted"].as_u64()), (Some(1), Some(files)));
    let rows = one["rows_written"].as_u64().unwrap_or_default();
    let by_files = batches("files.duckdb", &["--batch-files", "4"])?;
    assert_eq!(by_files["batches"].as_u64(), Some(files.div_ceil(4)));
    let by_rows = batches("rows.duckdb", &["--batch-rows", "100"])?;
    let n = by_rows["batches"].as_u64().unwrap_or_default();
    assert!(n >= rows / 200 && n > 1 && n < files, "{n} batches for {rows} rows: {by_rows}");
    let by_bytes = batches("bytes.duckdb", &["--batch-bytes", "1"])?;
    assert_eq!(by_bytes["batches"].as_u64(), Some(files), "one file per batch");
    for summary in [&by_files, &by_rows, &by_bytes] {
        assert_eq!((summary["inserted"].as_u64(), summary["rows_written"].as_u64()), (Some(files), Some(rows)));
    }
    Ok(())
}

#[test]
fn similar_lists_the_nearest_indexed_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    sample_tree(&tree, 1);
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    run(exrscan().args(["scan", "--sink", &sink]).arg(&tree));

    let query = tree.join("shot000/shot010_beauty.1002.exr");
    let out = run(exrscan().args(["similar", "-k", "3", "--sink", &sink]).arg(&query));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for line in &lines {
        let mut fields = line.split_whitespace();
        let score: f64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(-2.0);
        let uri = fields.next().unwrap_or_default();
        assert!(uri.contains("shot010_beauty.") && !uri.ends_with("1002.exr"), "{out}");
        assert!(score >= 0.95, "{out}");
    }

    // By channel layout: the stereo file's layout differs from the beauty's.
    let out = run(exrscan().args(["similar", "--by", "channels", "-k", "10", "--json", "--sink", &sink]).arg(&query));
    let results: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(results.len(), 8, "every other sample: {out}");
    let score_of = |name: &str| {
        results
            .iter()
            .find(|r| r["source_uri"].as_str().is_some_and(|u| u.ends_with(name)))
            .and_then(|r| r["score"].as_f64())
            .unwrap_or_else(|| panic!("{name} missing from {out}"))
    };
    assert!(score_of("shot010_beauty.1003.exr") > 0.999);
    assert!(score_of("shot010_aovs.1001.exr") < score_of("shot010_beauty.1003.exr"));
    let scores: Vec<f64> = results.iter().filter_map(|r| r["score"].as_f64()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    Ok(())
}

/// `similar` by the catalog's own names: the stored vector of the newest version is the
/// query, and the file itself is not among the results.
#[test]
fn similar_by_key_uri_or_file_id_leaves_the_file_itself_out() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    sample_tree(&tree, 1);
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    run(exrscan().args(["scan", "--sink", &sink]).arg(&tree));
    let uri = format!("file://{}", tree.join("shot000/shot010_beauty.1002.exr").canonicalize()?.display());
    let id_rows = duckdb_rows(&db, &format!("SELECT file_id FROM files WHERE source_uri = '{uri}'"));
    let file_id = id_rows[0]["file_id"].as_str().ok_or("a file_id")?.to_string();

    let by_file = run(exrscan()
        .args(["similar", "--json", "-k", "3", "--sink", &sink])
        .arg(tree.join("shot000/shot010_beauty.1002.exr")));
    for reference in [["--key", "shot000/shot010_beauty.1002.exr"], ["--uri", &uri], ["--file-id", &file_id]] {
        let out = run(exrscan().args(["similar", "--json", "-k", "3", "--sink", &sink]).args(reference));
        assert_eq!(out, by_file, "{reference:?} finds what the file itself finds");
        let results: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        assert_eq!(results.len(), 3, "{out}");
        assert!(results.iter().all(|r| r["source_uri"] != uri.as_str() && r["file_id"] != file_id.as_str()), "{out}");
        assert!(results[0]["score"].as_f64().unwrap_or_default() > 0.99, "{out}");
    }

    // A key under two roots is ambiguous; an unknown one is not in the catalog.
    let second = dir.path().join("other");
    sample_tree(&second, 1);
    run(exrscan().args(["scan", "--sink", &sink]).arg(&second));
    for (reference, message) in [
        (["--key", "shot000/shot010_beauty.1002.exr"], "2 indexed files have the key"),
        (["--file-id", "0000"], "no indexed file has file_id `0000`"),
    ] {
        let out = exrscan().args(["similar", "--sink", &sink]).args(reference).output()?;
        assert_eq!(out.status.code(), Some(1), "{reference:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{reference:?}: {stderr}");
    }
    let usage = exrscan().args(["similar", "--sink", &sink]).output()?;
    assert_eq!(usage.status.code(), Some(2), "nothing to compare with is a usage error");
    let usage = exrscan().args(["similar", "--key", "a", "--uri", "b", "--sink", &sink]).output()?;
    assert_eq!(usage.status.code(), Some(2), "one reference at a time");
    Ok(())
}

/// --include/--exclude choose the files of a local directory, as the keys of a prefix.
#[test]
fn include_and_exclude_globs_apply_to_local_directories() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    sample_tree(&tree, 2);
    let sink = format!("duckdb://{}", dir.path().join("catalog.duckdb").display());
    let out = run(exrscan()
        .args(["scan", "--json", "--sink", &sink, "--include", "shot010_*.exr", "--exclude", "shot001/**,*deep*"])
        .arg(&tree));
    let summary: Value = serde_json::from_str(out.trim())?;
    let expected = fixtures::sample_names().iter().filter(|n| n.starts_with("shot010_") && !n.contains("deep")).count();
    assert_eq!(summary["discovered"], expected as u64, "only shot000's shot010 frames but the deep one: {summary}");
    let bad = exrscan().args(["scan", "--sink", &sink, "--include", "a[b"]).arg(&tree).output()?;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad glob `a[b`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    Ok(())
}

/// A local rescan reads only files whose size or modification time changed.
#[test]
fn local_rescans_skip_unchanged_files_by_size_and_mtime() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    let files = sample_tree(&tree, 2) as u64;
    let sink = format!("duckdb://{}", dir.path().join("catalog.duckdb").display());
    let scan = || -> Result<Value, Box<dyn std::error::Error>> {
        Ok(serde_json::from_str(run(exrscan().args(["scan", "--json", "--sink", &sink]).arg(&tree)).trim())?)
    };
    assert_eq!(scan()?["inserted"], files);
    let again = scan()?;
    assert_eq!((again["processed"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(files)), "{again}");
    assert_eq!(again["bytes_read"], 0, "{again}");

    // Same bytes, new mtime: read again, and found unchanged by its header.
    let touched = std::fs::File::options().write(true).open(tree.join("shot001/plate_yc.1001.exr"))?;
    touched.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))?;
    let after_touch = scan()?;
    assert_eq!(
        (after_touch["processed"].as_u64(), after_touch["inserted"].as_u64()),
        (Some(1), Some(0)),
        "{after_touch}"
    );
    // Read once more: the catalog holds the old mtime only (nothing was written).
    assert_eq!(scan()?["processed"], 1);
    Ok(())
}

#[test]
fn bad_sink_uris_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (uri, message) in [
        ("postgres://db/x", "unknown sink scheme"),
        ("flight+grpc://user:pw@host:1", "credentials do not belong in the sink URI"),
        ("flight+grpc://host:1?vectors=maybe", "vectors=maybe"),
    ] {
        let out = exrscan().args(["scan", "--sink", uri]).arg(dir.path()).output().expect("exrscan runs");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{uri}: {stderr}");
    }
}

/// A test sink: its writes fail permanently after `ok_writes` batches; its resume checks
/// record how many files each asked about and, with `all_indexed`, find every one.
#[derive(Default)]
struct TestSink {
    ok_writes: usize,
    all_indexed: bool,
    checks: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Sink for TestSink {
    async fn existing(&mut self, _ids: &[String]) -> Result<HashSet<String>, SinkError> {
        Ok(HashSet::new())
    }
    async fn write(&mut self, _batch: &CatalogBatch) -> Result<(), SinkError> {
        if self.ok_writes == 0 {
            return Err(SinkError::Failed("disk full".into()));
        }
        self.ok_writes -= 1;
        Ok(())
    }
    async fn indexed(&mut self, files: &[SourceFile]) -> Result<HashSet<String>, SinkError> {
        self.checks.lock().map_err(|e| SinkError::Failed(e.to_string()))?.push(files.len());
        Ok(if self.all_indexed { files.iter().map(|f| f.uri.clone()).collect() } else { HashSet::new() })
    }
    async fn recover(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn collect_garbage(&mut self, _: &WriteId) -> Result<GcCounts, SinkError> {
        Ok(GcCounts::default())
    }
    async fn stored(&mut self, _: SimilarBy, _: &IndexedFile) -> Result<Vec<Stored>, SinkError> {
        Ok(Vec::new())
    }
    async fn similar(
        &mut self,
        _: SimilarBy,
        _: &[f32],
        _: usize,
        _: Option<&str>,
    ) -> Result<Vec<Neighbour>, SinkError> {
        Ok(Vec::new())
    }
}

/// A sink that fails mid-run stops the scan with its error (while the listing and the
/// header reads still have work queued), instead of hanging.
#[test]
fn a_failing_sink_stops_the_scan() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    sample_tree(&tree, 200);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let mut writer = Writer::new(TestSink { ok_writes: 3, ..TestSink::default() }, fixtures::retry());
        let tally = Tally::default();
        let options = fixtures::options(5);
        let never = CancellationToken::new();
        let scan = scan::run(Arc::new(LocalSource::new(&tree)?), &mut writer, &options, &tally, &never);
        Ok::<_, Box<dyn std::error::Error>>(tokio::time::timeout(Duration::from_secs(60), scan).await)
    })?;
    match result {
        Ok(Err(ScanError::Sink(SinkError::Failed(reason)))) => assert_eq!(reason, "disk full"),
        Ok(other) => panic!("expected the sink's error, got {other:?}"),
        Err(_) => panic!("the scan hung after the sink failed"),
    }
    Ok(())
}

/// A local source whose listing comes in bursts of 50 files, 1 ms apart (as S3 pages do).
struct Bursts(LocalSource);

impl Source for Bursts {
    async fn list(&self, found: mpsc::Sender<Result<SourceFile, SourceError>>) -> Result<(), SourceError> {
        let (walked, mut walk) = mpsc::channel(4096);
        self.0.list(walked).await?;
        let mut sent = 0;
        while let Some(item) = walk.recv().await {
            sent += 1;
            if sent % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if found.send(item).await.is_err() {
                break;
            }
        }
        Ok(())
    }
    async fn read_header(&self, file: &SourceFile) -> Result<ReadHeader, SourceError> {
        self.0.read_header(file).await
    }
}

/// The listing is checked against the catalog in full chunks of 1,000 files, not in
/// whatever the listing had sent when the check looked (each check is a query).
#[test]
fn resume_checks_take_the_listing_in_full_chunks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    let files = sample_tree(&tree, 140);
    let checks = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let sink = TestSink { all_indexed: true, checks: Arc::clone(&checks), ..TestSink::default() };
        let mut writer = Writer::new(sink, fixtures::retry());
        let (never, tally, options) = (CancellationToken::new(), Tally::default(), fixtures::options(100));
        let source = Arc::new(Bursts(LocalSource::new(&tree)?));
        let scan = scan::run(source, &mut writer, &options, &tally, &never);
        Ok::<_, Box<dyn std::error::Error>>(tokio::time::timeout(Duration::from_secs(60), scan).await??)
    })?;
    assert_eq!((summary.counts.unchanged, summary.counts.processed), (files as u64, 0));
    let checks = checks.lock().map_err(|e| e.to_string())?.clone();
    assert_eq!(checks.iter().sum::<usize>(), files);
    // 1000 + 260; more only when the listing paused for 100 ms (a loaded machine).
    assert!(checks.len() <= 3, "{files} files in {} checks: {checks:?}", checks.len());
    Ok(())
}

/// A local source that asks the scan to stop (as SIGTERM does) when its `after`-th header
/// read starts.
struct StopsAfter {
    inner: LocalSource,
    reads: AtomicUsize,
    after: usize,
    stop: CancellationToken,
}

impl Source for StopsAfter {
    async fn list(&self, found: mpsc::Sender<Result<SourceFile, SourceError>>) -> Result<(), SourceError> {
        self.inner.list(found).await
    }
    async fn read_header(&self, file: &SourceFile) -> Result<ReadHeader, SourceError> {
        if self.reads.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.stop.cancel();
        }
        self.inner.read_header(file).await
    }
}

/// A stopped scan writes every header it read (the reads in flight included), ends with
/// `Interrupted`, and the next run indexes exactly the rest: nothing lost, nothing twice.
#[test]
fn a_stopped_scan_writes_what_it_read_and_the_next_run_resumes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    let files = sample_tree(&tree, 300) as u64;
    let db = dir.path().join("catalog.duckdb");
    let uri = format!("duckdb://{}", db.display()).parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let open = || runtime.block_on(AnySink::open(&uri, &Default::default(), &fixtures::retry()));

    let stop = CancellationToken::new();
    let source =
        StopsAfter { inner: LocalSource::new(&tree)?, reads: AtomicUsize::new(0), after: 500, stop: stop.clone() };
    let tally = Tally::default();
    let mut writer = Writer::new(open()?, fixtures::retry());
    let options = fixtures::options(64);
    let scan = scan::run(Arc::new(source), &mut writer, &options, &tally, &stop);
    let result = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(60), scan).await })?;
    assert!(matches!(result, Err(ScanError::Interrupted(_))), "{result:?}");
    drop(writer);
    let first = tally.summary(Duration::ZERO).counts;
    assert!(first.processed >= 500 && first.processed < files, "stopped part-way: {first:?}");
    assert_eq!(first.inserted, first.processed, "every header read was written: {first:?}");
    let n = |sql: &str| scalar(&duckdb_rows(&db, sql)) as u64;
    assert_eq!(n("SELECT count(*) FROM files"), first.inserted);

    let second = fixtures::scan(&tree, &uri.to_string(), exrscan::sink::Credentials::default(), 64)?.counts;
    assert_eq!(second.inserted, files - first.inserted, "{second:?}");
    assert_eq!(n("SELECT count(*) FROM files"), files);
    assert_eq!(n("SELECT count(DISTINCT source_uri) FROM files"), files);
    Ok(())
}
