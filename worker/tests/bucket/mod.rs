//! A bucket of generated EXRs on a real S3 server (MinIO) for the S3 tests: the corpus
//! (`tests/corpus/generate.py`, including damaged files) copied under many shot prefixes,
//! plus objects the scan must leave alone, uploaded concurrently; and `exrscan` runs
//! against it.

#![allow(dead_code)] // Each test binary uses part of this module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::Value;
use testenv::S3Server;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The bucket every test uses.
pub const BUCKET: &str = "renders";
/// The scanned prefix.
pub const PREFIX: &str = "show/";

/// What was uploaded under [`PREFIX`].
#[derive(Debug, Default)]
pub struct Uploaded {
    /// Keys the default `*.exr` include keeps.
    pub exr: BTreeSet<String>,
    /// Of those, the keys whose header exrscan reads (`inspect` says ok locally).
    pub readable: BTreeSet<String>,
    /// Keys under the prefix the filter leaves out (`.txt`, `.png`).
    pub other: BTreeSet<String>,
}

impl Uploaded {
    /// Keys that fail (damaged, empty, not EXR).
    pub fn broken(&self) -> BTreeSet<String> {
        self.exr.difference(&self.readable).cloned().collect()
    }
}

/// The generated corpus (count scale 4: one header longer than 64 KiB), made once per
/// test binary; files relative path → whether `exrscan inspect` reads it.
pub fn corpus() -> &'static (PathBuf, BTreeMap<String, bool>) {
    static CORPUS: OnceLock<(PathBuf, BTreeMap<String, bool>)> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = testenv::work_dir("s3-corpus").expect("a work directory").keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/generate.py");
        let python = testenv::paths::python().unwrap_or_else(|e| panic!("{e}"));
        let out =
            Command::new(python).arg(&script).arg(&dir).args(["--count-scale", "4"]).output().expect("python runs");
        assert!(out.status.success(), "generate.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut files = Vec::new();
        let mut dirs = vec![dir.clone()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).expect("corpus dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        let out = exrscan().arg("inspect").arg("--json").args(&files).output().expect("exrscan inspect runs");
        let mut readable = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let record: Value = serde_json::from_str(line).expect("a JSON record");
            let path = record["path"].as_str().expect("path");
            let rel = Path::new(path).strip_prefix(&dir).expect("under the corpus").to_string_lossy().into_owned();
            readable.insert(rel, record["ok"] == true);
        }
        assert_eq!(readable.len(), files.len(), "one record per file");
        (dir, readable)
    })
}

/// The `exrscan` binary.
pub fn exrscan() -> Command {
    Command::new(testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}")))
}

/// `exrscan` with the S3 server's endpoint and credentials in its environment.
pub fn exrscan_s3(s3: &S3Server) -> Command {
    let mut cmd = exrscan();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("EXRSCAN_S3_ENDPOINT", s3.endpoint())
        .env("EXRSCAN_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_REGION", testenv::s3::REGION)
        .env("AWS_ACCESS_KEY_ID", s3.access_key())
        .env("AWS_SECRET_ACCESS_KEY", s3.secret_key())
        .env("EXRSCAN_LOG", "warn");
    cmd
}

/// Runs `cmd`, failing the test (with stderr) unless it exits 0.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("exrscan runs");
    assert!(out.status.success(), "{cmd:?} exited {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    out
}

/// The last stdout line as JSON (the shard report, the scan summary).
pub fn last_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Creates [`BUCKET`] and uploads `copies` copies of the corpus under `show/shotNNN/`, two
/// non-EXR objects per shot, and objects outside the prefix; 32 uploads at a time.
pub fn upload(s3: &S3Server, copies: usize) -> Uploaded {
    let (dir, readable) = corpus();
    s3.create_bucket(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    let store = s3.store(BUCKET).unwrap_or_else(|e| panic!("{e}"));
    let mut uploaded = Uploaded::default();
    let mut puts: Vec<(String, PathBuf)> = Vec::new();
    let mut blobs: Vec<(String, &'static [u8])> = Vec::new();
    for copy in 0..copies {
        let shot = format!("{PREFIX}shot{copy:03}/");
        for (rel, ok) in readable {
            let key = format!("{shot}{rel}");
            uploaded.exr.insert(key.clone());
            if *ok {
                uploaded.readable.insert(key.clone());
            }
            puts.push((key, dir.join(rel)));
        }
        for (name, body) in [("notes.txt", &b"not an image"[..]), ("thumb.png", &b"\x89PNG\r\n\x1a\n"[..])] {
            uploaded.other.insert(format!("{shot}{name}"));
            blobs.push((format!("{shot}{name}"), body));
        }
    }
    blobs.push(("elsewhere/outside.exr".into(), b"outside the prefix"));
    blobs.push(("shows-other/x.exr".into(), b"a sibling prefix"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let files = puts.into_iter().map(|(key, path)| (key, std::fs::read(path).expect("corpus file")));
        let all = files.chain(blobs.into_iter().map(|(k, b)| (k, b.to_vec())));
        let results: Vec<_> = futures::stream::iter(all)
            .map(|(key, body)| {
                let store = &store;
                async move {
                    // A throttled server (fault tests) may refuse more than the client's own
                    // retries cover: try again a few times.
                    let path = object_store::path::Path::from(key.as_str());
                    let mut attempt = 0;
                    loop {
                        match store.put(&path, PutPayload::from(body.clone())).await {
                            Ok(_) => return Ok(()),
                            Err(_) if attempt < 10 => {
                                attempt += 1;
                                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                            }
                            Err(e) => return Err((key, e)),
                        }
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for result in results {
            if let Err((key, e)) = result {
                panic!("uploading {key}: {e}");
            }
        }
    });
    uploaded
}

/// Every `source_uri` of a DuckDB catalog's `files` table, with its row count.
pub fn catalog_keys(db: &Path) -> BTreeMap<String, u64> {
    let rows = testenv::python::run(
        "import sys, duckdb, json\ncon = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(json.dumps(con.execute('SELECT key, count(*) FROM files GROUP BY key').fetchall()))",
        &[&db.to_string_lossy()],
    )
    .unwrap_or_else(|e| panic!("DuckDB read-back (Python duckdb) failed: {e}"));
    let rows: Vec<(String, u64)> = serde_json::from_str(rows.trim()).expect("rows");
    rows.into_iter().collect()
}
