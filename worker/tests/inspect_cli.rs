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
