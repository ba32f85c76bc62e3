//! The command line's habits: global -v/-q/--color, one log variable, --no-<flag>
//! booleans, shared defaults, shell completions, the man page, and `exrscan query`.

mod fixtures;

use std::process::{Command, Output};

use fixtures::{TestResult, sample_tree};
use serde_json::Value;

fn exrscan() -> Command {
    let mut cmd = Command::new(testenv::paths::workspace_bin("exrscan").expect("the exrscan binary is built"));
    for var in ["EXRSCAN_LOG", "RUST_LOG", "EXRSCAN_COLOR", "NO_COLOR", "EXRSCAN_EMBEDDINGS", "EXRSCAN_CONCURRENCY"] {
        cmd.env_remove(var);
    }
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("exrscan runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?} exited {:?}: {}", out.status.code(), stderr(&out));
    out
}

/// A catalog of the samples; returns its sink URI.
fn catalog(dir: &std::path::Path, extra: &[&str]) -> String {
    let tree = dir.join("renders");
    sample_tree(&tree, 1);
    let sink = format!("duckdb://{}", dir.join("catalog.duckdb").display());
    ok(exrscan().args(["scan", "--sink", &sink]).args(extra).arg(&tree));
    sink
}

/// -v and -q override EXRSCAN_LOG, which comes before RUST_LOG; --color decides escapes.
#[test]
fn verbosity_log_variables_and_colour() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = dir.path().join("renders");
    sample_tree(&tree, 1);
    let sink = format!("duckdb://{}", dir.path().join("catalog.duckdb").display());
    let scan = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = exrscan();
        cmd.args(args).args(["scan", "--sink", &sink]).arg(&tree).envs(env.iter().copied());
        stderr(&ok(&mut cmd))
    };
    assert!(scan(&[], &[]).contains("scan started"), "info by default");
    assert!(!scan(&["-q"], &[]).contains("scan started"), "-q: warnings and errors only");
    assert!(!scan(&[], &[("EXRSCAN_LOG", "warn")]).contains("scan started"));
    assert!(!scan(&[], &[("RUST_LOG", "warn")]).contains("scan started"), "RUST_LOG when EXRSCAN_LOG is unset");
    assert!(scan(&[], &[("EXRSCAN_LOG", "info"), ("RUST_LOG", "warn")]).contains("scan started"), "EXRSCAN_LOG first");
    assert!(scan(&["-v"], &[("EXRSCAN_LOG", "error")]).contains("scan started"), "-v overrides EXRSCAN_LOG");
    assert!(scan(&["--color", "always"], &[]).contains("\u{1b}["), "--color always colours a pipe");
    assert!(!scan(&["--color=never"], &[("EXRSCAN_COLOR", "always")]).contains("\u{1b}["), "--color never wins");
    assert!(!scan(&[], &[]).contains("\u{1b}["), "auto: no colour on a pipe");
    let both = output(exrscan().args(["-v", "-q", "scan", "--sink", &sink]).arg(&tree));
    assert_eq!(both.status.code(), Some(2), "-v and -q together are a usage error");
    Ok(())
}

/// Arguments, environment, and whether vectors are stored.
type EmbeddingsCase = (&'static [&'static str], &'static [(&'static str, &'static str)], bool);

/// `--no-embeddings` (and `--embeddings=false`, `EXRSCAN_EMBEDDINGS=false`) leave the vectors
/// null; the last of `--embeddings`/`--no-embeddings` wins.
#[test]
fn no_flags_turn_booleans_off() -> TestResult {
    let cases: [EmbeddingsCase; 5] = [
        (&[], &[], true),
        (&["--no-embeddings"], &[], false),
        (&["--embeddings=false"], &[], false),
        (&["--no-embeddings", "--embeddings"], &[("EXRSCAN_EMBEDDINGS", "false")], true),
        (&[], &[("EXRSCAN_EMBEDDINGS", "false")], false),
    ];
    for (i, (args, env, stored)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let tree = dir.path().join("renders");
        sample_tree(&tree, 1);
        let sink = format!("duckdb://{}", dir.path().join("catalog.duckdb").display());
        ok(exrscan().args(["scan", "--sink", &sink]).args(args).envs(env.iter().copied()).arg(&tree));
        let out = ok(exrscan().args([
            "query",
            "--format",
            "csv",
            "--sink",
            &sink,
            "SELECT count(metadata_embedding) > 0 AS stored FROM indexed_files",
        ]));
        assert_eq!(stdout(&out), format!("stored\n{stored}\n"), "case {i}: {args:?} {env:?}");
    }
    // A value needs `=`: the next word stays the positional argument it looks like.
    let dir = tempfile::tempdir()?;
    let out =
        output(exrscan().args(["scan", "--embeddings", "false", "--sink", "duckdb:///dev/null/x"]).arg(dir.path()));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    Ok(())
}

/// `scan` and `shard` read the same number of headers at once unless told otherwise.
#[test]
fn scan_and_shard_share_the_default_concurrency() {
    let default_of = |command: &str| {
        let help = stdout(&ok(exrscan().args([command, "--help"])));
        let at = help.find("--concurrency").unwrap_or_else(|| panic!("{command} has --concurrency:\n{help}"));
        let rest = &help[at..];
        let default = rest.find("[default: ").map(|i| &rest[i + 10..]).unwrap_or_default();
        default.split(']').next().unwrap_or_default().to_string()
    };
    assert_eq!(default_of("scan"), "64");
    assert_eq!(default_of("shard"), "64");
}

/// Completion scripts for the usual shells, and a man page per command.
#[test]
fn completions_and_man_pages() -> TestResult {
    for (shell, marker) in [("bash", "_exrscan()"), ("zsh", "#compdef exrscan"), ("fish", "complete -c exrscan")] {
        let script = stdout(&ok(exrscan().args(["completions", shell])));
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(300)]);
        assert!(script.contains("similar") && script.contains("no-embeddings"), "{shell} knows the commands");
    }
    assert_eq!(output(exrscan().args(["completions", "tcsh"])).status.code(), Some(2));
    let page = stdout(&ok(exrscan().arg("man")));
    assert!(page.starts_with(".ie") || page.contains(".TH exrscan 1"), "{}", &page[..page.len().min(300)]);
    assert!(page.contains("inspect") && page.contains("query"), "the page lists the commands");
    let dir = tempfile::tempdir()?;
    ok(exrscan().args(["man", "--dir"]).arg(dir.path()));
    for name in ["exrscan.1", "exrscan-scan.1", "exrscan-query.1", "exrscan-similar.1"] {
        let page = std::fs::read_to_string(dir.path().join(name))?;
        assert!(page.contains(".TH"), "{name}");
    }
    Ok(())
}

/// `exrscan query`: table, CSV and JSON lines; exit 1 for a failed statement or a missing
/// catalog, 2 for a usage error (a vast:// sink has no SQL).
#[test]
fn query_prints_table_csv_and_json() -> TestResult {
    let dir = tempfile::tempdir()?;
    let sink = catalog(dir.path(), &["--scan-name", "demo"]);
    let sql = "SELECT key, part_count, deep, scan_name FROM indexed_files WHERE key LIKE '%deep%' OR key LIKE '%aovs%' ORDER BY key";
    let table = stdout(&ok(exrscan().args(["query", sql, "--sink", &sink])));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["key", "part_count", "deep", "scan_name"], "{table}");
    assert!(lines[1].starts_with("---"), "{table}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["shot000/shot010_aovs.1001.exr", "5", "false", "demo"]
    );
    assert_eq!(lines[4], "(2 rows)");
    let csv = stdout(&ok(exrscan().args(["query", "-f", "csv", sql, "--sink", &sink])));
    assert_eq!(
        csv,
        "key,part_count,deep,scan_name\nshot000/shot010_aovs.1001.exr,5,false,demo\nshot000/shot010_deep.1001.exr,1,true,demo\n"
    );
    let json = stdout(&ok(exrscan().args(["query", "--format", "json", sql, "--sink", &sink])));
    let rows: Vec<Value> = json.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(
        rows[1],
        serde_json::json!({"key": "shot000/shot010_deep.1001.exr", "part_count": 1, "deep": true, "scan_name": "demo"})
    );
    let vector = stdout(&ok(exrscan().args([
        "query",
        "-f",
        "json",
        "--sink",
        &sink,
        "SELECT channel_fingerprint FROM indexed_files LIMIT 1",
    ])));
    let vector: Value = serde_json::from_str(vector.trim())?;
    assert_eq!(vector["channel_fingerprint"].as_array().map(Vec::len), Some(128), "vectors are JSON arrays");
    let from_stdin = {
        use std::io::Write as _;
        let mut child = exrscan()
            .args(["query", "-f", "csv", "-", "--sink", &sink])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().ok_or("stdin")?.write_all(b"SELECT count(*) AS n FROM indexed_files")?;
        child.wait_with_output()?
    };
    assert_eq!(stdout(&from_stdin), "n\n9\n");

    let bad = output(exrscan().args(["query", "SELECT nope FROM indexed_files", "--sink", &sink]));
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("nope"), "the database's message: {}", stderr(&bad));
    let missing = format!("duckdb://{}", dir.path().join("missing.duckdb").display());
    let out = output(exrscan().args(["query", "SELECT 1", "--sink", &missing]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!dir.path().join("missing.duckdb").exists(), "a query creates no catalog");
    let vast = output(exrscan().args(["query", "SELECT 1", "--sink", "vast://127.0.0.1:1?bucket=b"]));
    assert_eq!(vast.status.code(), Some(2), "{}", stderr(&vast));
    assert_eq!(output(exrscan().args(["query", "--sink", &sink])).status.code(), Some(2), "no SQL");
    Ok(())
}
