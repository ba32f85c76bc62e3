//! `exrscan inspect` as a user runs it: records on stdout, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/fuzz/corpus/header").join(name)
}

fn inspect(args: &[&str], files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exrscan")).arg("inspect").args(args).args(files).output().expect("run exrscan")
}

fn records(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON record per line"))
        .collect()
}

#[test]
fn json_lines_one_per_file_and_bad_files_do_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.0002.exr");
    std::fs::write(&garbage, b"this is not an EXR file at all").unwrap();
    let truncated = dir.path().join("truncated.exr");
    let whole = std::fs::read(seed("multipart_views.exr")).unwrap();
    std::fs::write(&truncated, &whole[..200]).unwrap();
    let beauty = seed("beauty_aovs.1001.exr");
    let multipart = seed("multipart_views.exr");

    let output = inspect(&["--json"], &[&beauty, &garbage, &multipart, &truncated]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let records = records(&output);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["ok"], true);
    assert_eq!(records[0]["file"]["frame_number"], 1001);
    assert_eq!(records[0]["file"]["size_bytes"], std::fs::metadata(&beauty).unwrap().len());
    assert!(records[0].get("embeddings").is_none());
    assert_eq!(
        (records[1]["ok"].clone(), records[1]["error"].clone()),
        (false.into(), "not an OpenEXR file (bad magic number)".into())
    );
    assert_eq!(records[1]["file"]["frame_number"], 2);
    assert_eq!(records[2]["file"]["part_count"], 3);
    assert_eq!(records[3]["ok"], false);
    assert!(records[3]["error"].as_str().unwrap().starts_with("truncated header"), "{}", records[3]["error"]);
}

#[test]
fn embeddings_on_request() {
    let output = inspect(&["--json", "--embeddings"], &[&seed("tiled_ripmap.exr")]);
    assert!(output.status.success());
    let records = records(&output);
    assert_eq!(records[0]["embeddings"]["metadata"].as_array().unwrap().len(), 384);
    assert_eq!(records[0]["embeddings"]["channels"].as_array().unwrap().len(), 128);
}

#[test]
fn unreadable_files_are_reported_and_fail_the_run() {
    let missing = Path::new("/nonexistent/dir/beauty.1001.exr");
    let output = inspect(&["--json"], &[missing, &seed("deep_scanline.exr")]);
    assert_eq!(output.status.code(), Some(1));
    let records = records(&output);
    assert_eq!(records.len(), 2, "the run goes on after an unreadable file");
    assert_eq!(records[0]["ok"], false);
    assert!(records[0]["error"].as_str().unwrap().starts_with("open failed"));
    assert_eq!(records[1]["ok"], true);
}

#[test]
fn usage_errors_exit_with_2() {
    let output = inspect(&[], &[]);
    assert_eq!(output.status.code(), Some(2));
    let output = inspect(&["--no-such-flag"], &[&seed("deep_tile.exr")]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn readable_summary_without_json() {
    let output = inspect(&[], &[&seed("multipart_views.exr"), &seed("luminance_chroma.exr")]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("3 parts, multi-part, tiled"), "{text}");
    assert!(text.contains("part 2 \"depth\": tiledimage, piz, 4x4, tiles 2x2 one"), "{text}");
    assert!(text.contains("RY:half/2x2"), "{text}");
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text view prints every attribute with its type and value, as exrheader does.
#[test]
fn text_view_prints_attribute_values() {
    let output = inspect(&[], &[&seed("every_attribute_type.exr"), &seed("beauty_aovs.1001.exr")]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let out = text(&output);
    for expected in [
        "    compression (compression): ",
        "    dataWindow (box2i): ",
        "    lineOrder (lineOrder): increasing_y",
        "    pixelAspectRatio (float): 1",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains("(chlist)"), "channels are listed once, on their own line:\n{out}");
    let strings: Vec<&str> = out.lines().filter(|l| l.contains(" (string): ")).collect();
    assert!(!strings.is_empty() && strings.iter().all(|l| l.ends_with('"')), "strings are quoted: {strings:?}");
}

/// A directory is searched recursively; --include/--exclude choose the files, as for scan.
#[test]
fn directories_are_searched_recursively_with_globs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("shot010/comp")).unwrap();
    std::fs::copy(seed("beauty_aovs.1001.exr"), dir.path().join("shot010/beauty.1001.exr")).unwrap();
    std::fs::copy(seed("deep_scanline.exr"), dir.path().join("shot010/comp/deep.EXR")).unwrap();
    std::fs::write(dir.path().join("shot010/notes.txt"), b"not an image").unwrap();
    std::fs::copy(seed("deep_tile.exr"), dir.path().join("shot010/comp/deep.exr.bak")).unwrap();

    let output = inspect(&["--json"], &[dir.path()]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let paths: Vec<String> = records(&output).iter().map(|r| r["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths[0].ends_with("shot010/beauty.1001.exr") && paths[1].ends_with("shot010/comp/deep.EXR"), "{paths:?}");

    // A pattern with a `/` is anchored at the directory given (as in .gitignore).
    let output = inspect(&["--json", "--include", "*.exr,*.bak", "--exclude", "shot010/comp/deep.EXR"], &[dir.path()]);
    let paths: Vec<String> = records(&output).iter().map(|r| r["path"].as_str().unwrap().to_string()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths[0].ends_with("beauty.1001.exr") && paths[1].ends_with("deep.exr.bak"), "{paths:?}");

    let output = inspect(&["--json"], &[&dir.path().join("no-such-dir")]);
    assert_eq!(output.status.code(), Some(1), "a missing path fails the run");
}
