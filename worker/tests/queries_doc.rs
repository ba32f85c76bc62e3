//! Every `sql` block of docs/queries.md, run with `exrscan query` against a catalog of
//! `samples/` as `make demo` makes it, and checked against DuckDB's own Python client: the
//! page and the catalog cannot drift apart. `sql trino` blocks are Trino forms (no Trino
//! here); any other info string on a SQL block fails the test, so none is skipped unseen.

mod fixtures;

use std::path::Path;
use std::process::Command;

use fixtures::{TestResult, duckdb_rows, samples_dir};
use serde_json::Value;

/// The fenced blocks of `markdown` whose info string starts with `sql`: (info, body, line).
fn sql_blocks(markdown: &str) -> Vec<(String, String, usize)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for (n, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) if info.starts_with("sql") => {
                open = Some((info.trim().to_string(), String::new(), n + 1))
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some((_, body, _)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "an unclosed ```sql block");
    blocks
}

fn exrscan() -> Command {
    Command::new(testenv::paths::workspace_bin("exrscan").expect("the exrscan binary is built"))
}

#[test]
fn every_query_of_the_page_runs_and_returns_rows() -> TestResult {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/queries.md"))?;
    let blocks = sql_blocks(&page);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    let scan = exrscan().args(["scan", "--scan-name", "demo", "--sink", &sink]).arg(samples_dir()).output()?;
    assert!(scan.status.success(), "{}", String::from_utf8_lossy(&scan.stderr));

    let (mut run, mut trino) = (0, 0);
    for (info, sql, line) in &blocks {
        match info.as_str() {
            "sql trino" => {
                trino += 1;
                continue;
            }
            "sql" => run += 1,
            other => panic!("docs/queries.md:{line}: ```{other} is neither `sql` (run here) nor `sql trino`"),
        }
        let out = exrscan().args(["query", "--format", "json", "--sink", &sink]).arg(sql).output()?;
        assert!(
            out.status.success(),
            "docs/queries.md:{line} failed:\n{sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> =
            String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        assert!(!rows.is_empty(), "docs/queries.md:{line} returns no rows on the samples:\n{sql}");
        let theirs = duckdb_rows(&db, sql.trim().trim_end_matches(';'));
        assert_eq!(rows.len(), theirs.len(), "docs/queries.md:{line}: DuckDB's client disagrees:\n{sql}");
    }
    assert!(run >= 12 && trino >= 4, "{run} blocks run, {trino} Trino blocks: the page lost its examples?");
    Ok(())
}

/// The page's statements about the samples' values hold.
#[test]
fn the_documented_values_are_the_stored_ones() -> TestResult {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/queries.md"))?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    let scan = exrscan().args(["scan", "--scan-name", "demo", "--sink", &sink]).arg(samples_dir()).output()?;
    assert!(scan.status.success(), "{}", String::from_utf8_lossy(&scan.stderr));
    let stored = duckdb_rows(&db, "SELECT DISTINCT compression FROM indexed_parts ORDER BY 1");
    let names: Vec<&str> = stored.iter().filter_map(|r| r["compression"].as_str()).collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        assert_eq!(*name, name.to_lowercase(), "compression values are lower-case");
        assert!(page.contains(&format!("`{name}`")), "compression `{name}` is listed on the page");
    }
    let fps = duckdb_rows(
        &db,
        "SELECT DISTINCT value_text, value_float FROM indexed_attributes WHERE name = 'framesPerSecond'",
    );
    assert_eq!(fps.len(), 1, "{fps:?}");
    assert_eq!((fps[0]["value_text"].as_str(), fps[0]["value_float"].as_f64()), (Some("24/1"), Some(24.0)));
    assert!(page.contains("`24/1` in `value_text` and `24.0` in `value_float`"));
    Ok(())
}
