//! The DuckDB sink against real DuckDB: rows read back by DuckDB's own client, re-runs,
//! atomic batches, a killed writer, and `array_cosine_similarity`.

mod fixtures;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use exrscan::catalog::{CatalogBuilder, ScanInfo, SourceFile};
use exrscan::sink::duckdb::DuckdbSink;
use exrscan::sink::flight::Credentials;
use exrscan::sink::{SimilarBy, Sink, SinkError};
use fixtures::{TestResult, check_files, duckdb_rows, expected_rows, sample_tree, scalar, scan};
use serde_json::Value;

fn counts(db: &std::path::Path) -> (u64, u64, u64, u64) {
    let rows = duckdb_rows(
        db,
        "SELECT (SELECT count(*) FROM files) f, (SELECT count(*) FROM parts) p, \
         (SELECT count(*) FROM channels) c, (SELECT count(*) FROM attributes) a",
    );
    let get = |k: &str| rows[0][k].as_u64().unwrap_or_else(|| panic!("{k} in {rows:?}"));
    (get("f"), get("p"), get("c"), get("a"))
}

#[test]
fn scan_rows_read_back_by_duckdb_and_rerun_inserts_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 3) as u64;
    let db = dir.path().join("catalog.duckdb");
    let uri = format!("duckdb://{}", db.display());

    let first = scan(&tree, &uri, Credentials::default(), 7)?;
    assert_eq!(first.counts.discovered, files);
    assert_eq!(first.counts.processed, files);
    assert_eq!(first.counts.inserted, files);
    assert_eq!(first.counts.unchanged, 0);
    assert_eq!(first.counts.failed, 0);
    assert!(first.counts.bytes_read > 0);
    assert_eq!(counts(&db), expected_rows(&tree));

    // Values, checked by an independent client against the files themselves.
    let rows = duckdb_rows(&db, "SELECT source_uri, header_bytes, header_hash, file_id, size_bytes FROM files");
    assert_eq!(check_files(&rows), files as usize);
    let beauty = duckdb_rows(
        &db,
        "SELECT key, frame_number, part_count, channel_count, deep, multipart, scan_name, scan_uid, \
         len(metadata_embedding::FLOAT[]) AS dims, array_inner_product(metadata_embedding, metadata_embedding) AS norm2 \
         FROM files WHERE key = 'shot001/shot010_beauty.1002.exr'",
    );
    assert_eq!(beauty.len(), 1, "{beauty:?}");
    let b = &beauty[0];
    assert_eq!(b["frame_number"], 1002);
    assert_eq!(b["part_count"], 1);
    assert_eq!(b["channel_count"], 4);
    assert_eq!(b["deep"], false);
    assert_eq!(b["scan_name"], "test-scan");
    assert_eq!(b["scan_uid"], "uid-1");
    assert_eq!(b["dims"], 384);
    assert!((b["norm2"].as_f64().unwrap_or_default() - 1.0).abs() < 1e-4, "embedding is L2-normalised: {b:?}");
    let deep = duckdb_rows(&db, "SELECT count(*) n FROM files WHERE deep");
    assert_eq!(scalar(&deep), 3, "one deep sample per copy");
    let channels = duckdb_rows(
        &db,
        "SELECT c.name, c.layer, c.component, c.type, c.x_sampling FROM channels c JOIN files f USING (file_id) \
         WHERE f.key = 'shot000/plate_yc.1001.exr' ORDER BY c.channel_index",
    );
    let names: Vec<&str> = channels.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["BY", "RY", "Y"], "luminance/chroma channels, in file order");
    assert!(channels.iter().any(|c| c["x_sampling"] == 2), "chroma is subsampled: {channels:?}");
    let attribute = duckdb_rows(
        &db,
        "SELECT a.type, a.value_text, a.value_json FROM attributes a JOIN files f USING (file_id) \
         WHERE f.key = 'shot000/shot010_beauty.1001.exr' AND a.name = 'owner'",
    );
    assert_eq!(attribute.len(), 1);
    assert_eq!(attribute[0]["type"], "string");
    assert_eq!(attribute[0]["value_text"], "lighting");
    assert_eq!(attribute[0]["value_json"], "\"lighting\"");

    // A re-run writes nothing.
    let second = scan(&tree, &uri, Credentials::default(), 7)?;
    assert_eq!(second.counts.processed, 0, "unchanged files (size, mtime) are not read again");
    assert_eq!(second.counts.inserted, 0);
    assert_eq!(second.counts.unchanged, files);
    assert_eq!(second.rows_written, 0);
    assert_eq!(counts(&db), expected_rows(&tree));

    // A changed header is a new file_id; the old one stays (history).
    let target = tree.join("shot002/shot010_beauty.1001.exr");
    std::fs::copy(fixtures::samples_dir().join("shot010_stereo.1001.exr"), &target)?;
    let third = scan(&tree, &uri, Credentials::default(), 7)?;
    assert_eq!((third.counts.inserted, third.counts.unchanged), (1, files - 1));
    let versions = duckdb_rows(&db, "SELECT count(*) n FROM files WHERE key = 'shot002/shot010_beauty.1001.exr'");
    assert_eq!(scalar(&versions), 2);
    let dupes =
        duckdb_rows(&db, "SELECT count(*) n FROM (SELECT file_id FROM files GROUP BY file_id HAVING count(*) > 1)");
    assert_eq!(scalar(&dupes), 0);
    Ok(())
}

/// A batch whose `files` rows violate the primary key leaves no row in any table.
#[test]
fn a_failed_batch_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("catalog.duckdb");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bytes = std::fs::read(fixtures::samples_dir().join("shot010_aovs.1001.exr"))?;
    let header = exrscan::header::parse_complete(&bytes)?;
    let source = |uri: &str| SourceFile {
        uri: uri.to_string(),
        bucket: None,
        key: uri.rsplit('/').next().unwrap_or(uri).to_string(),
        size_bytes: bytes.len() as u64,
        last_modified: None,
        etag: None,
    };
    runtime.block_on(async {
        let mut sink = DuckdbSink::open(&db)?;
        let mut builder = CatalogBuilder::new(ScanInfo::default());
        let first = builder.add(source("file:///a/one.exr"), &header, None);
        sink.write(&builder.finish()?).await?;
        assert_eq!(sink.existing(&[first.clone(), "0".repeat(64)]).await?, HashSet::from([first]));

        // Same file again (bypassing the existence check) plus a new one: refused as a whole.
        builder.add(source("file:///a/two.exr"), &header, None);
        builder.add(source("file:///a/one.exr"), &header, None);
        let failed = sink.write(&builder.finish()?).await;
        assert!(matches!(failed, Err(SinkError::Failed(_))), "{failed:?}");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let one_file = expected_rows_of(&header);
    assert_eq!(counts(&db), one_file, "the failed batch left rows behind");
    Ok(())
}

fn expected_rows_of(header: &exrscan::header::Header) -> (u64, u64, u64, u64) {
    (
        1,
        header.parts.len() as u64,
        header.parts.iter().map(|p| p.channels().len() as u64).sum(),
        header.parts.iter().map(|p| p.attributes().len() as u64).sum(),
    )
}

/// `exrscan scan` killed (SIGKILL) mid-run, then run again: every file once, every child
/// row once.
#[test]
fn killed_writer_loses_nothing_and_duplicates_nothing() -> TestResult {
    let exrscan = testenv::paths::workspace_bin("exrscan")?;
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    let files = sample_tree(&tree, 300) as u64;
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    let run = || {
        let mut cmd = Command::new(&exrscan);
        cmd.args(["scan", "--batch-files", "40", "--json", "--sink", &sink]).arg(&tree);
        cmd
    };

    let mut child = run().stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    // Kill once some batches have landed, well before the end. A batch of 40 sample files
    // writes ~0.5 MB of log and the log grows while a commit is written, so only a log of
    // two batches' size proves that one commit is complete.
    let wal = db.with_extension("duckdb.wal");
    let two_batches_of_log = 2 * 40 * 12 * 1024;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if wal.metadata().map(|m| m.len() > two_batches_of_log).unwrap_or(false)
            || db.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    let status = child.wait()?;
    assert!(!status.success(), "the scan finished before it was killed; make the tree larger");

    let out = run().output()?;
    assert!(out.status.success(), "rerun failed: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout)?;
    let inserted = summary["inserted"].as_u64().unwrap_or_default();
    let unchanged = summary["unchanged"].as_u64().unwrap_or_default();
    assert_eq!(inserted + unchanged, files, "{summary}");
    assert!(unchanged > 0, "the killed run committed nothing: {summary}");
    assert!(inserted > 0, "the killed run was not killed mid-run: {summary}");
    assert_eq!(counts(&db), expected_rows(&tree));
    let dupes =
        duckdb_rows(&db, "SELECT count(*) n FROM (SELECT file_id FROM files GROUP BY file_id HAVING count(*) > 1)");
    assert_eq!(scalar(&dupes), 0);
    Ok(())
}

/// The nearest file to a beauty frame is another frame of the sequence, by DuckDB's
/// `array_cosine_similarity` and by `similar`.
#[test]
fn cosine_similarity_finds_the_neighbouring_frame() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("tree");
    sample_tree(&tree, 1);
    let db = dir.path().join("catalog.duckdb");
    scan(&tree, &format!("duckdb://{}", db.display()), Credentials::default(), 100)?;

    let rows = duckdb_rows(
        &db,
        "SELECT f.key, array_cosine_similarity(f.metadata_embedding, q.metadata_embedding) AS score \
         FROM files f, (SELECT metadata_embedding FROM files WHERE key = 'shot000/shot010_beauty.1001.exr') q \
         WHERE f.key <> 'shot000/shot010_beauty.1001.exr' ORDER BY score DESC, f.key",
    );
    let keys: Vec<&str> = rows.iter().filter_map(|r| r["key"].as_str()).collect();
    assert!(keys[0].starts_with("shot000/shot010_beauty.100"), "nearest: {rows:?}");
    assert!(keys[..3].iter().all(|k| k.starts_with("shot000/shot010_beauty.")), "{rows:?}");
    let best = rows[0]["score"].as_f64().unwrap_or_default();
    let aovs =
        rows.iter().find(|r| r["key"] == "shot000/shot010_aovs.1001.exr").map(|r| r["score"].as_f64().unwrap_or(1.0));
    assert!(best >= 0.95, "frames of one sequence are near: {rows:?}");
    assert!(aovs.is_some_and(|s| s < best - 0.2), "another AOV layout is far: {rows:?}");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let query_path = tree.join("shot000/shot010_beauty.1001.exr");
    let header = exrscan::header::parse_complete(&std::fs::read(&query_path)?)?;
    let embeddings = exrscan::embed::embed(&header);
    let query_uri = exrscan::source::local::file_uri(&std::fs::canonicalize(&query_path)?).unwrap_or_default();
    let neighbours = runtime.block_on(async {
        let mut sink = DuckdbSink::open(&db)?;
        sink.similar(SimilarBy::Metadata, &embeddings.metadata, 3, Some(&query_uri)).await
    })?;
    assert_eq!(neighbours.len(), 3);
    assert!(neighbours[0].source_uri.ends_with(keys[0]), "{neighbours:?} vs {keys:?}");
    assert!((f64::from(neighbours[0].score) - best).abs() < 1e-4);
    assert!(neighbours.iter().all(|n| n.source_uri != query_uri));
    Ok(())
}
