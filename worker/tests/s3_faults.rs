//! Faults during a shard run against a real S3 server: the shard killed and run again,
//! the S3 server crashed and restarted mid-run, throttling, credentials refused or rotated,
//! a tiny header budget. Nothing lost, nothing twice.

mod bucket;
mod fixtures;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bucket::{BUCKET, PREFIX, TestResult, Uploaded, catalog_keys, exrscan_s3, last_json, run, upload};
use serde_json::Value;
use testenv::{S3Options, S3Server};

fn server(options: S3Options) -> S3Server {
    S3Server::start_with(S3Options { audit: true, ..options }).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes a one-shard plan of the prefix and returns its path.
fn one_shard_plan(s3: &S3Server, dir: &Path) -> std::path::PathBuf {
    let out = run(exrscan_s3(s3).args(["plan", &format!("s3://{BUCKET}/{PREFIX}"), "--shards", "1"]));
    let path = dir.join("plan.json");
    std::fs::write(&path, &out.stdout).expect("plan written");
    path
}

fn start_shard(s3: &S3Server, plan: &Path, db: &Path, extra: &[&str]) -> Child {
    exrscan_s3(s3)
        .args(["shard", "--index", "0", "--plan"])
        .arg(plan)
        .args(["--sink", &format!("duckdb://{}", db.display())])
        .args(extra)
        .env("EXRSCAN_TERMINATION_LOG", db.with_extension("termination"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exrscan shard starts")
}

/// Waits until the server has answered `n` GETs of the shard; fails if the shard exits first.
fn wait_for_gets(s3: &S3Server, child: &mut Child, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
            }
            let gets = s3.audit().expect("audit").entries().iter().filter(|e| e.api.name == "GetObject").count();
            eprintln!("the shard exited ({status}) after {gets} audited GETs: {stderr}");
            return false;
        }
        let gets = s3.audit().expect("audit").entries().iter().filter(|e| e.api.name == "GetObject").count();
        if gets >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn finish(child: Child) -> Value {
    let out = child.wait_with_output().expect("shard exits");
    assert_eq!(out.status.code(), Some(0), "shard: {}", String::from_utf8_lossy(&out.stderr));
    last_json(&out)
}

/// Every readable object exactly once in the catalog.
fn assert_complete(db: &Path, uploaded: &Uploaded) {
    let keys = catalog_keys(db);
    let duplicated: Vec<_> = keys.iter().filter(|(_, n)| **n != 1).collect();
    assert!(duplicated.is_empty(), "rows written twice: {duplicated:?}");
    assert_eq!(keys.into_keys().collect::<BTreeSet<_>>(), uploaded.readable, "every readable object indexed");
}

#[test]
fn a_killed_shard_rerun_resumes_without_duplicates_or_rereading() -> TestResult {
    let s3 = server(S3Options::default());
    let uploaded = upload(&s3, 12);
    let dir = testenv::work_dir("s3-kill")?;
    let plan = one_shard_plan(&s3, dir.path());
    let db = dir.path().join("catalog.duckdb");
    s3.audit().expect("audit").clear();

    // One GET at a time, so that the kill lands part-way through.
    let mut first = start_shard(&s3, &plan, &db, &["--batch-files", "20", "--concurrency", "1"]);
    assert!(wait_for_gets(&s3, &mut first, 300), "the shard was still running after 300 GETs");
    first.kill()?;
    let _ = first.wait();
    let committed = catalog_keys(&db);
    assert!(
        !committed.is_empty() && committed.len() < uploaded.readable.len(),
        "killed part-way: {} rows",
        committed.len()
    );

    s3.audit().expect("audit").clear();
    let report = finish(start_shard(&s3, &plan, &db, &[]));
    assert_complete(&db, &uploaded);
    let skipped = report["counts"]["unchanged"].as_u64().unwrap_or_default();
    assert!(skipped >= committed.len() as u64, "the re-run skips what was committed: {report}");
    assert_eq!(
        report["counts"]["inserted"].as_u64().unwrap_or_default() + committed.len() as u64,
        uploaded.readable.len() as u64
    );
    let entries = s3.audit().expect("audit").settle(Duration::from_millis(700), Duration::from_secs(30));
    let refetched: BTreeSet<&str> =
        entries.iter().filter(|e| e.api.name == "GetObject").map(|e| e.api.object.as_str()).collect();
    assert!(committed.keys().all(|k| !refetched.contains(k.as_str())), "committed objects are not read again");
    assert_eq!(refetched.len() as u64 + skipped, uploaded.exr.len() as u64, "everything else is read");
    Ok(())
}

#[test]
fn a_shard_rides_out_an_s3_restart() -> TestResult {
    let mut s3 = server(S3Options::default());
    let uploaded = upload(&s3, 20);
    let dir = testenv::work_dir("s3-restart")?;
    let plan = one_shard_plan(&s3, dir.path());
    let db = dir.path().join("catalog.duckdb");
    s3.audit().expect("audit").clear();

    let mut shard = start_shard(&s3, &plan, &db, &["--concurrency", "8"]);
    assert!(wait_for_gets(&s3, &mut shard, 300), "the shard was still running when S3 went down");
    s3.stop();
    std::thread::sleep(Duration::from_secs(2));
    s3.restart()?;
    let report = finish(shard);
    assert!(report["s3"]["retries"].as_u64().unwrap_or_default() > 0, "the outage was retried: {report}");
    assert_eq!(report["counts"]["discovered"], uploaded.exr.len() as u64, "{report}");
    assert_eq!(report["counts"]["failed"], uploaded.broken().len() as u64, "no object lost to the outage: {report}");
    assert_complete(&db, &uploaded);
    Ok(())
}

#[test]
fn throttling_is_retried_until_every_object_is_read() -> TestResult {
    // MinIO answers 429 SlowDown-style refusals beyond two requests in flight.
    let s3 = server(S3Options { max_requests: Some(2), ..S3Options::default() });
    let uploaded = upload(&s3, 6);
    let dir = testenv::work_dir("s3-throttle")?;
    let plan = one_shard_plan(&s3, dir.path());
    let db = dir.path().join("catalog.duckdb");
    s3.audit().expect("audit").clear();

    let report = finish(start_shard(&s3, &plan, &db, &["--concurrency", "64"]));
    // Refused requests never reach MinIO's handlers, so its audit log does not show them.
    assert!(report["s3"]["retries"].as_u64().unwrap_or_default() > 0, "{report}");
    assert_eq!(report["counts"]["failed"], uploaded.broken().len() as u64, "no object lost to throttling: {report}");
    assert_complete(&db, &uploaded);
    Ok(())
}

#[test]
fn configuration_errors_exit_2_refused_credentials_4_and_outages_3() -> TestResult {
    let mut s3 = server(S3Options::default());
    upload(&s3, 1);
    let dir = testenv::work_dir("s3-exit")?;
    let plan = one_shard_plan(&s3, dir.path());
    let db = dir.path().join("catalog.duckdb");
    let code = |cmd: &mut std::process::Command| cmd.output().expect("exrscan runs").status.code();

    let mut bad_secret = exrscan_s3(&s3);
    bad_secret.env("AWS_SECRET_ACCESS_KEY", "wrong-secret").args([
        "plan",
        &format!("s3://{BUCKET}/{PREFIX}"),
        "--shards",
        "2",
    ]);
    assert_eq!(code(&mut bad_secret), Some(4), "refused credentials: a new attempt reads them again");
    assert_eq!(code(exrscan_s3(&s3).args(["plan", "s3://no-such-bucket/x", "--shards", "2"])), Some(2));
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"version\": 7}")?;
    let log = dir.path().join("termination");
    let out = exrscan_s3(&s3)
        .args(["shard", "--index", "0", "--sink", "duckdb:///dev/null/x.duckdb", "--plan"])
        .arg(&garbage)
        .env("EXRSCAN_TERMINATION_LOG", &log)
        .output()?;
    assert_eq!(out.status.code(), Some(2), "unreadable plan");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&log)?)?;
    assert_eq!(report["outcome"], "config", "{report}");
    assert_eq!(
        code(exrscan_s3(&s3).args(["shard", "--index", "5", "--sink", "duckdb:///tmp/x", "--plan"]).arg(&plan)),
        Some(2)
    );

    s3.stop();
    let out = exrscan_s3(&s3)
        .args([
            "shard",
            "--index",
            "0",
            "--s3-retry-seconds",
            "2",
            "--sink",
            &format!("duckdb://{}", db.display()),
            "--plan",
        ])
        .arg(&plan)
        .env("EXRSCAN_TERMINATION_LOG", &log)
        .output()?;
    assert_eq!(out.status.code(), Some(3), "S3 down past the retries: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&log)?)?;
    assert_eq!(report["outcome"], "unavailable", "{report}");
    Ok(())
}

/// `path` replaced at once (written beside it, then renamed), as a Secret update does.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let next = path.with_extension("next");
    std::fs::write(&next, text)?;
    std::fs::rename(&next, path)
}

/// No failure sample blames the credentials: they are not bad objects.
fn assert_no_credential_failures(report: &Value) {
    let failures = report["failures"].as_array().cloned().unwrap_or_default();
    let blamed: Vec<_> = failures
        .iter()
        .filter(|f| f["reason"].as_str().is_some_and(|r| r.contains("credentials") || r.contains("403")))
        .collect();
    assert!(blamed.is_empty(), "objects failed for the credentials: {blamed:?}");
}

#[test]
fn refused_credentials_stop_the_shard_with_exit_4_and_no_object_fails() -> TestResult {
    let s3 = server(S3Options::default());
    let uploaded = upload(&s3, 20);
    let dir = testenv::work_dir("s3-credentials")?;
    let plan = one_shard_plan(&s3, dir.path());
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());

    // Wrong keys from the start: the listing is refused, the shard says why, never the secret.
    const WRONG: &str = "wrong-secret-never-printed";
    let out = exrscan_s3(&s3)
        .env("AWS_SECRET_ACCESS_KEY", WRONG)
        .args(["shard", "--index", "0", "--sink", &sink, "--plan"])
        .arg(&plan)
        .env("EXRSCAN_TERMINATION_LOG", db.with_extension("termination"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let report = last_json(&out);
    assert_eq!(report["outcome"], "credentials", "{report}");
    assert!(report["error"].as_str().is_some_and(|e| e.contains("SignatureDoesNotMatch")), "{report}");
    assert_eq!(report["counts"]["failed"], 0, "{report}");
    let termination = std::fs::read_to_string(db.with_extension("termination"))?;
    for text in [&*stderr, &String::from_utf8_lossy(&out.stdout), &termination] {
        assert!(!text.contains(WRONG), "the secret leaked: {text}");
    }

    // The mounted Secret rotated to a wrong key mid-run: the running shard picks the change
    // up, its reads are refused, and it stops instead of failing every object after it.
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(&secret)?;
    std::fs::write(secret.join("access_key_id"), s3.access_key())?;
    std::fs::write(secret.join("secret_access_key"), s3.secret_key())?;
    let secret_dir = secret.to_string_lossy().into_owned();
    let slow = ["--concurrency", "1", "--batch-files", "20", "--s3-credentials-dir", &secret_dir];
    s3.audit().expect("audit").clear();
    let mut shard = start_shard(&s3, &plan, &db, &slow);
    assert!(wait_for_gets(&s3, &mut shard, 100), "the shard was still running after 100 GETs");
    replace(&secret.join("secret_access_key"), "rotated-to-a-wrong-secret")?;
    let out = shard.wait_with_output()?;
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let report = last_json(&out);
    assert_eq!(report["outcome"], "credentials", "{report}");
    assert!(report["error"].as_str().is_some_and(|e| e.contains("SignatureDoesNotMatch")), "{report}");
    assert_no_credential_failures(&report);
    let failed = report["counts"]["failed"].as_u64().unwrap_or(u64::MAX);
    assert!(failed <= uploaded.broken().len() as u64, "only damaged objects failed: {report}");
    assert!(report["counts"]["inserted"].as_u64().unwrap_or_default() > 0, "read before the rotation: {report}");

    // Rotated back: the next attempt (a new process) finishes the shard.
    replace(&secret.join("secret_access_key"), s3.secret_key())?;
    let report = finish(start_shard(&s3, &plan, &db, &["--s3-credentials-dir", &secret_dir]));
    assert_eq!(report["outcome"], "done", "{report}");
    assert_complete(&db, &uploaded);
    Ok(())
}

#[test]
fn a_header_budget_smaller_than_one_header_still_reads_everything() -> TestResult {
    let s3 = server(S3Options::default());
    let uploaded = upload(&s3, 2);
    let dir = testenv::work_dir("s3-budget")?;
    let plan = one_shard_plan(&s3, dir.path());
    let db = dir.path().join("catalog.duckdb");
    // 4 KiB: less than the first read (64 KiB) and than the corpus's longest header
    // (over 64 KiB), so every header is read alone, the long one taking the whole budget.
    let report = finish(start_shard(&s3, &plan, &db, &["--concurrency", "64", "--header-budget", "4096"]));
    assert_eq!(report["counts"]["failed"], uploaded.broken().len() as u64, "{report}");
    assert!(
        report["s3"]["getRequests"].as_u64().unwrap_or_default()
            > report["s3"]["headersInOneGet"].as_u64().unwrap_or_default(),
        "some header needed a second GET: {report}"
    );
    assert_complete(&db, &uploaded);
    Ok(())
}

/// Puts `body_path`'s bytes at `key` with boto3 (object_store cannot send a key starting with
/// `/`) and returns the keys MinIO then lists under `/` and under `extra/`.
fn put_raw(
    s3: &S3Server,
    key: &str,
    body_path: &Path,
) -> Result<(Vec<String>, Vec<String>), Box<dyn std::error::Error>> {
    let listed = testenv::python::run(
        "import sys, json, boto3\nfrom botocore.config import Config\n\
         endpoint, key_id, secret, bucket, key, path = sys.argv[1:]\n\
         s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id=key_id, aws_secret_access_key=secret,\n\
             region_name='us-east-1', config=Config(s3={'addressing_style': 'path'}))\n\
         s3.put_object(Bucket=bucket, Key=key, Body=open(path, 'rb').read())\n\
         keys = lambda p: [o['Key'] for o in s3.list_objects_v2(Bucket=bucket, Prefix=p).get('Contents', [])]\n\
         print(json.dumps([keys('/'), keys('extra/')]))",
        &[&s3.endpoint(), s3.access_key(), s3.secret_key(), BUCKET, key, &body_path.to_string_lossy()],
    )?;
    Ok(serde_json::from_str(listed.trim())?)
}

#[test]
fn a_key_put_with_a_leading_slash_is_read_as_itself_and_a_slash_prefix_is_refused() -> TestResult {
    let s3 = server(S3Options::default());
    upload(&s3, 1);
    let (corpus, readable) = bucket::corpus();
    let (rel, _) = readable.iter().find(|(_, ok)| **ok).ok_or("a readable corpus file")?;
    let body = corpus.join(rel);
    let (under_slash, under_extra) = put_raw(&s3, "/extra/lead.exr", &body)?;
    // MinIO drops the leading `/` when it stores the object: no key starts with `/`.
    assert_eq!((under_slash, under_extra), (Vec::<String>::new(), vec!["extra/lead.exr".to_string()]));

    // A scan of the whole bucket (which first looks for keys starting with `/`) reads it as
    // what it is.
    let dir = testenv::work_dir("s3-slash")?;
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    run(exrscan_s3(&s3).args(["scan", "--json", "--sink", &sink, &format!("s3://{BUCKET}/")]));
    let size = testenv::python::run(
        "import sys, duckdb\ncon = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(con.execute(\"SELECT size_bytes FROM files WHERE key = 'extra/lead.exr'\").fetchall())",
        &[&db.to_string_lossy()],
    )?;
    assert_eq!(size.trim(), format!("[({},)]", std::fs::metadata(&body)?.len()), "indexed once, as itself");

    // A prefix starting with `/` names keys the S3 client cannot request: refused.
    let out = exrscan_s3(&s3).args(["plan", &format!("s3://{BUCKET}//extra/"), "--shards", "1"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the prefix starts with `/`"), "{stderr}");
    Ok(())
}

/// The test CA and a certificate for 127.0.0.1 signed by it ([`fixtures::certificates`]),
/// laid out as MinIO's `certs/public.crt` and `certs/private.key`; returns the CA's PEM file.
fn certificates(dir: &Path) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let (ca, cert, key) = fixtures::certificates(dir)?;
    std::fs::create_dir_all(dir.join("certs"))?;
    std::fs::copy(cert, dir.join("certs/public.crt"))?;
    std::fs::copy(key, dir.join("certs/private.key"))?;
    Ok(ca)
}

#[test]
fn a_private_ca_is_trusted_with_s3_ca_and_refused_without() -> TestResult {
    let mut s3 = S3Server::start()?;
    let uploaded = upload(&s3, 1);
    let dir = testenv::work_dir("s3-tls")?;
    let ca = certificates(dir.path())?;
    s3.serve_tls(&dir.path().join("certs"))?;
    assert!(s3.endpoint().starts_with("https://"));
    let url = format!("s3://{BUCKET}/{PREFIX}");

    let out =
        run(exrscan_s3(&s3).args(["plan", &url, "--shards", "1", "--s3-retry-seconds", "20", "--s3-ca"]).arg(&ca));
    let plan: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(plan["objects"], uploaded.exr.len() as u64, "listed over TLS with the private CA");

    let started = Instant::now();
    let out = exrscan_s3(&s3).args(["plan", &url, "--shards", "1", "--s3-retry-seconds", "20"]).output()?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an untrusted certificate is a configuration error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(15), "and is not retried");
    Ok(())
}
