//! `exrscan inspect --json` agrees with OpenEXR's `exrheader` (Debian package `openexr`) on
//! every generated corpus file, every real-world file fetched through pip and every committed
//! sample: part count, attribute name→type per part, channels, compression and windows, and
//! which files are rejected. The comparison itself is `tests/corpus/compare.py`.
//!
//! Needs: the `exrscan` binary in this test's target directory (`cargo build -p exrscan`), the
//! test venv (`$EXRSCAN_PYTHON` or `~/.cache/exrscan/venv`, with `tests/corpus/requirements.txt`)
//! and `exrheader` on `PATH` (`apt-get install openexr`).

mod corpus_env;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use testenv::paths;

/// The `exrscan` binary next to this test, refusing one older than the worker's sources.
fn exrscan() -> PathBuf {
    let bin = paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}; build it with `cargo build -p exrscan`"));
    let built = modified(&bin);
    let stale: Vec<PathBuf> =
        source_files(&corpus_env::repo_root().join("worker/src")).into_iter().filter(|f| modified(f) > built).collect();
    assert!(stale.is_empty(), "{} is older than {:?}: rebuild it with `cargo build -p exrscan`", bin.display(), stale);
    bin
}

fn modified(path: &Path) -> SystemTime {
    path.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(source_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn require_exrheader() {
    paths::tool("exrheader")
        .unwrap_or_else(|e| panic!("{e} (exrheader comes from the Debian package openexr: apt-get install openexr)"));
}

fn compare(exrscan: &Path, dirs: &[&Path]) -> Output {
    Command::new(corpus_env::python())
        .arg(corpus_env::script("compare.py"))
        .arg("--exrscan")
        .arg(exrscan)
        .args(dirs)
        .output()
        .expect("run compare.py")
}

/// Runs compare.py and asserts full agreement on `expected_files` files.
fn assert_agreement(dirs: &[&Path], expected_files: usize) {
    require_exrheader();
    let out = compare(&exrscan(), dirs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "exrscan and exrheader disagree ({}), see the report above\n{stderr}", out.status);
    let summary = format!("compare: {expected_files} files, {expected_files} agree, 0 disagree");
    assert!(stdout.contains(&summary), "expected `{summary}` in:\n{stdout}");
}

#[test]
fn generated_corpus_agrees_with_exrheader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let n = corpus_env::generate(dir.path());
    assert!(n >= 100, "the generator wrote only {n} files");
    assert_agreement(&[dir.path()], n);
}

#[test]
fn realworld_files_agree_with_exrheader() {
    let dir = corpus_env::realworld();
    let n = corpus_env::exr_files(&dir).len();
    assert!(n >= 50, "expected OpenEXR's ~53 test images in {}, found {n}", dir.display());
    assert_agreement(&[&dir], n);
}

#[test]
fn committed_samples_agree_with_exrheader() {
    let dir = corpus_env::repo_root().join("samples");
    let n = corpus_env::exr_files(&dir).len();
    assert!(n >= 8, "expected the committed samples in {}, found {n}", dir.display());
    assert_agreement(&[&dir], n);
}

/// The comparison must catch a lie: an `exrscan` whose output reports every half channel as
/// float and drops one attribute is a disagreement, and compare.py must say so and fail.
#[test]
fn compare_detects_a_wrong_report() {
    require_exrheader();
    let real = exrscan();
    let dir = tempfile::tempdir().expect("temp dir");
    let exr = dir.path().join("shot010_beauty.1001.exr");
    std::fs::copy(corpus_env::repo_root().join("samples/shot010_beauty.1001.exr"), &exr).expect("copy a sample");
    let liar = dir.path().join("lying-exrscan");
    let script = format!(
        "#!/bin/sh\n'{}' \"$@\" | sed -e 's/\"type\":\"half\"/\"type\":\"float\"/g' \
         -e 's/\"owner\":{{[^}}]*}},//'\n",
        real.display()
    );
    std::fs::write(&liar, script).expect("write the wrapper");
    std::fs::set_permissions(&liar, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod the wrapper");

    let out = compare(&liar, &[&exr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "compare.py must fail on a disagreement:\n{stdout}");
    assert!(stdout.contains("DISAGREE"), "{stdout}");
    assert!(stdout.contains("channel 'R' type: exrheader 'half', exrscan 'float'"), "{stdout}");
    assert!(stdout.contains("attribute 'owner': only in exrheader"), "{stdout}");
}
