//! `exrscan plan`, `exrscan shard` and `exrscan scan s3://…` against a real S3 server
//! (MinIO), whose audit log says which requests each process really made.

mod bucket;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bucket::{BUCKET, PREFIX, TestResult, catalog_keys, exrscan_s3, last_json, run, upload};
use exrscan::plan::Plan;
use testenv::audit::AuditEntry;
use testenv::{S3Options, S3Server};

const SHARDS: u32 = 4;
const COPIES: usize = 20;

fn audited_server() -> S3Server {
    S3Server::start_with(S3Options { audit: true, ..S3Options::default() }).unwrap_or_else(|e| panic!("{e}"))
}

/// The audit entries once MinIO has delivered them: at least `at_least` entries of `api`
/// (waiting up to a minute: delivery lags under load), then none new for a second.
fn settled_with(s3: &S3Server, api: &str, at_least: usize) -> Vec<AuditEntry> {
    let audit = s3.audit().expect("audit enabled");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while audit.entries().iter().filter(|e| e.api.name == api).count() < at_least
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    audit.settle(Duration::from_secs(1), Duration::from_secs(30))
}

fn settled(s3: &S3Server) -> Vec<AuditEntry> {
    s3.audit().expect("audit enabled").settle(Duration::from_secs(1), Duration::from_secs(30))
}

/// The requests of one process (named in its User-Agent) to one API.
fn requests<'a>(entries: &'a [AuditEntry], agent: &str, api: &str) -> Vec<&'a AuditEntry> {
    entries.iter().filter(|e| e.user_agent.contains(agent) && e.api.name == api).collect()
}

#[test]
fn shards_cover_every_object_exactly_once_and_list_only_their_partitions() -> TestResult {
    let s3 = audited_server();
    let uploaded = upload(&s3, COPIES);
    assert!(uploaded.exr.len() > 2500, "a few thousand objects: {}", uploaded.exr.len());
    let url = format!("s3://{BUCKET}/{PREFIX}");
    s3.audit().expect("audit").clear();

    let out = run(exrscan_s3(&s3).args(["plan", &url, "--shards", &SHARDS.to_string()]));
    let plan = Plan::from_json(&String::from_utf8_lossy(&out.stdout))?;
    assert_eq!(plan.outline.objects, uploaded.exr.len() as u64, "the plan counts the EXR keys");
    assert_eq!(plan.outline.listed, (uploaded.exr.len() + uploaded.other.len()) as u64);
    let share = plan.outline.objects / u64::from(SHARDS);
    for p in &plan.partitions {
        assert!(p.objects.abs_diff(share) <= 1, "balanced: {p:?} (share {share})");
    }
    let entries = settled_with(&s3, "ListObjectsV2", plan.outline.listed.div_ceil(1000) as usize);
    let plan_lists = requests(&entries, "(plan)", "ListObjectsV2");
    assert_eq!(plan_lists.len() as u64, plan.outline.listed.div_ceil(1000), "one LIST per 1000 keys to plan");

    let dir = testenv::work_dir("s3-shards")?;
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, plan.to_json())?;
    s3.audit().expect("audit").clear();
    // All shards at once, as an Indexed Job runs them, each with its own catalog file so
    // that what each wrote can be told apart.
    let children: Vec<_> = (0..SHARDS)
        .map(|i| {
            let db = dir.path().join(format!("shard{i}.duckdb"));
            let log = dir.path().join(format!("termination-{i}"));
            let child = exrscan_s3(&s3)
                .args(["shard", "--plan"])
                .arg(&plan_file)
                .args(["--sink", &format!("duckdb://{}", db.display())])
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("EXRSCAN_TERMINATION_LOG", &log)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("exrscan shard starts");
            (i, db, log, child)
        })
        .collect();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let (mut discovered, mut failed, mut inserted) = (0, 0, 0);
    for (i, db, log, child) in children {
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0), "shard {i}: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log)?)?;
        assert_eq!(report, last_json(&out), "the termination message is the printed report");
        assert!(std::fs::metadata(&log)?.len() <= 4096);
        assert_eq!(report["shard"], i);
        assert_eq!(report["outcome"], "done");
        let counts = &report["counts"];
        discovered += counts["discovered"].as_u64().unwrap_or_default();
        inserted += counts["inserted"].as_u64().unwrap_or_default();
        failed += counts["failed"].as_u64().unwrap_or_default();
        assert_eq!(counts["processed"], counts["discovered"], "shard {i}: every object handled: {report}");
        assert_eq!(counts["unchanged"], 0, "shard {i}: a fresh catalog: {report}");
        assert_eq!(report["headersRead"], counts["inserted"], "shard {i}: {report}");
        assert!(!report["failures"].as_array().is_none_or(Vec::is_empty), "failures are sampled: {report}");
        let partition = &plan.partitions[i as usize];
        for (key, rows) in catalog_keys(&db) {
            assert_eq!(rows, 1, "{key} written once");
            assert!(partition.contains(&key), "shard {i} indexed {key} outside its partition {partition:?}");
            *seen.entry(key).or_default() += 1;
        }
    }
    assert_eq!(discovered, uploaded.exr.len() as u64);
    assert_eq!(inserted, uploaded.readable.len() as u64);
    assert_eq!(failed, uploaded.broken().len() as u64);
    let indexed: BTreeSet<String> = seen.keys().cloned().collect();
    assert_eq!(indexed, uploaded.readable, "the union of the shards is every readable object");
    assert!(seen.values().all(|n| *n == 1), "no object in two shards");

    // What the server saw: each shard listed only inside its partition, under the prefix,
    // and fetched only its own objects.
    let entries = settled(&s3);
    for (i, partition) in plan.partitions.iter().enumerate() {
        let agent = format!("shard {i}/{SHARDS}");
        let lists = requests(&entries, &agent, "ListObjectsV2");
        assert!(!lists.is_empty(), "shard {i} listed");
        assert!(lists.len() as u64 <= partition.listed.div_ceil(1000) + 1, "shard {i}: {} LISTs", lists.len());
        for list in &lists {
            assert_eq!(list.api.bucket, BUCKET);
            assert_eq!(list.query.get("prefix").map(String::as_str), Some(PREFIX), "{list:?}");
            assert!(!list.query.contains_key("continuation-token"), "pages by start-after: {list:?}");
            let max_keys: u64 = list.query.get("max-keys").and_then(|m| m.parse().ok()).unwrap_or(u64::MAX);
            assert!(max_keys <= 1000, "{list:?}");
            match (list.query.get("start-after"), &partition.after) {
                (None, None) => {}
                (Some(start), after) => {
                    assert!(
                        after.as_ref().is_none_or(|a| start >= a),
                        "shard {i} started before its partition: {list:?}"
                    );
                    assert!(
                        partition.until.as_ref().is_none_or(|u| start < u),
                        "shard {i} started past its end: {list:?}"
                    );
                }
                (None, Some(after)) => panic!("shard {i} listed from the start of the prefix, not after {after}"),
            }
        }
        let gets = requests(&entries, &agent, "GetObject");
        assert!(gets.iter().all(|g| partition.contains(&g.api.object)), "shard {i} read outside its partition");
        let read: BTreeSet<&str> = gets.iter().map(|g| g.api.object.as_str()).collect();
        assert!(read.iter().all(|k| !k.ends_with(".txt") && !k.ends_with(".png")), "filtered keys are never read");
    }
    let total_lists = requests(&entries, "shard ", "ListObjectsV2").len() as u64;
    assert!(
        total_lists <= plan.outline.listed.div_ceil(1000) + u64::from(SHARDS),
        "{total_lists} LISTs over the shards"
    );
    Ok(())
}

#[test]
fn one_process_scans_the_whole_prefix_and_a_rerun_reads_nothing_unchanged() -> TestResult {
    let s3 = audited_server();
    let uploaded = upload(&s3, 4);
    let dir = testenv::work_dir("s3-scan")?;
    let db = dir.path().join("catalog.duckdb");
    let sink = format!("duckdb://{}", db.display());
    let url = format!("s3://{BUCKET}/{PREFIX}");
    s3.audit().expect("audit").clear();

    let first = last_json(&run(exrscan_s3(&s3).args(["scan", "--json", "--sink", &sink, &url])));
    assert_eq!(first["discovered"], uploaded.exr.len() as u64, "{first}");
    assert_eq!(first["processed"], uploaded.readable.len() as u64, "{first}");
    assert_eq!(first["inserted"], uploaded.readable.len() as u64, "{first}");
    assert_eq!(first["failed"], uploaded.broken().len() as u64, "{first}");
    let keys = catalog_keys(&db);
    assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), uploaded.readable);
    let entries = settled(&s3);
    let gets = requests(&entries, "(scan)", "GetObject");
    let objects: BTreeSet<&str> = gets.iter().map(|g| g.api.object.as_str()).collect();
    assert_eq!(objects.len(), uploaded.exr.len(), "every EXR key fetched, nothing else");
    let one_get = objects.len() as f64 / gets.len() as f64;
    assert!(one_get >= 0.99, "{} GETs for {} objects", gets.len(), objects.len());
    assert!(gets.len() > objects.len(), "the header longer than 64 KiB took a second GET");
    let rows = testenv::python::run(
        "import sys, duckdb, json\ncon = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(json.dumps(con.execute(\"SELECT count(*) FILTER (WHERE etag IS NULL OR bucket <> 'renders' OR NOT starts_with(source_uri, 's3://renders/show/')), count(*) FROM files\").fetchone()))",
        &[&db.to_string_lossy()],
    )?;
    let (bad, total): (u64, u64) = serde_json::from_str(rows.trim())?;
    assert_eq!((bad, total), (0, uploaded.readable.len() as u64), "URIs, bucket and ETag are recorded");

    s3.audit().expect("audit").clear();
    let second = last_json(&run(exrscan_s3(&s3).args(["scan", "--json", "--sink", &sink, &url])));
    assert_eq!(second["inserted"], 0, "{second}");
    assert_eq!(second["unchanged"], uploaded.readable.len() as u64, "{second}");
    assert_eq!(second["processed"], 0, "unchanged objects are not read again: {second}");
    let entries = settled(&s3);
    let regets: BTreeSet<String> =
        requests(&entries, "(scan)", "GetObject").iter().map(|g| g.api.object.clone()).collect();
    assert_eq!(regets, uploaded.broken(), "only the objects that failed are fetched again");
    Ok(())
}

#[test]
fn the_resume_check_works_against_flight_sql_too() -> TestResult {
    let s3 = audited_server();
    let uploaded = upload(&s3, 2);
    let flight = testenv::FlightSqlServer::start_with(testenv::flightsql::FlightSqlOptions {
        bulk_ingest: true,
        ..Default::default()
    })?;
    let url = format!("s3://{BUCKET}/{PREFIX}");
    let scan = |s3: &S3Server| last_json(&run(exrscan_s3(s3).args(["scan", "--json", "--sink", &flight.uri(), &url])));
    let first = scan(&s3);
    assert_eq!(first["inserted"], uploaded.readable.len() as u64, "{first}");
    s3.audit().expect("audit").clear();
    let second = scan(&s3);
    assert_eq!(second["inserted"], 0, "{second}");
    assert_eq!(second["unchanged"], uploaded.readable.len() as u64, "{second}");
    assert_eq!(second["processed"], 0, "nothing unchanged is read again: {second}");
    let entries = settled(&s3);
    let regets: BTreeSet<String> =
        requests(&entries, "(scan)", "GetObject").iter().map(|g| g.api.object.clone()).collect();
    assert_eq!(regets, uploaded.broken(), "only the objects that failed are fetched again");
    Ok(())
}

#[test]
fn include_and_exclude_globs_choose_what_is_planned_and_read() -> TestResult {
    let s3 = audited_server();
    let uploaded = upload(&s3, 2);
    let wanted: BTreeSet<String> = uploaded
        .exr
        .iter()
        .filter(|k| (k.contains("/sequence/") || k.contains("/broken/")) && !k.ends_with("/empty.exr"))
        .cloned()
        .collect();
    assert!(wanted.len() > 10);
    let url = format!("s3://{BUCKET}/{PREFIX}");
    let globs = |cmd: &mut std::process::Command| {
        cmd.env("EXRSCAN_INCLUDE", "shot*/sequence/**, **/BROKEN/*.exr").env("EXRSCAN_EXCLUDE", "empty.exr");
    };
    let mut plan_cmd = exrscan_s3(&s3);
    globs(&mut plan_cmd);
    let plan = Plan::from_json(&String::from_utf8_lossy(&run(plan_cmd.args(["plan", &url, "--shards", "2"])).stdout))?;
    assert_eq!(plan.outline.objects, wanted.len() as u64);
    assert_eq!(plan.outline.exclude, ["empty.exr"], "the plan carries the globs to the shards");

    let dir = testenv::work_dir("s3-globs")?;
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, plan.to_json())?;
    s3.audit().expect("audit").clear();
    for index in ["0", "1"] {
        // The shards filter with the plan's globs, whatever their own environment says.
        run(exrscan_s3(&s3)
            .args(["shard", "--index", index, "--plan"])
            .arg(&plan_file)
            .args(["--sink", &format!("duckdb://{}", dir.path().join("c.duckdb").display())])
            .env("EXRSCAN_INCLUDE", "*.png")
            .env("EXRSCAN_TERMINATION_LOG", dir.path().join("termination")));
    }
    let entries = settled(&s3);
    let read: BTreeSet<String> =
        requests(&entries, "shard", "GetObject").iter().map(|g| g.api.object.clone()).collect();
    assert_eq!(read, wanted);
    Ok(())
}

/// `exrscan inspect` on S3: one object by its key (one HEAD, then ranged GETs), or every
/// object under a prefix that the globs keep; a missing object fails the run.
#[test]
fn inspect_reads_objects_and_prefixes() -> TestResult {
    let s3 = S3Server::start().unwrap_or_else(|e| panic!("{e}"));
    let uploaded = upload(&s3, 1);
    let shot = format!("{PREFIX}shot000/");
    let url = format!("s3://{BUCKET}/{shot}");
    let out = run(exrscan_s3(&s3).args(["inspect", "--json", &url]));
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let listed: BTreeSet<String> =
        records.iter().filter_map(|r| r["path"].as_str()).map(|p| p.replace(&format!("s3://{BUCKET}/"), "")).collect();
    assert_eq!(listed, uploaded.exr, "one record per EXR key under the prefix, nothing else");
    let ok: BTreeSet<String> = records
        .iter()
        .filter(|r| r["ok"] == true)
        .filter_map(|r| r["path"].as_str())
        .map(|p| p.replace(&format!("s3://{BUCKET}/"), ""))
        .collect();
    assert_eq!(ok, uploaded.readable, "the same headers read as from local copies");

    let one = uploaded.readable.iter().next().ok_or("a readable key")?;
    let out = run(exrscan_s3(&s3).args(["inspect", &format!("s3://{BUCKET}/{one}")]));
    let text = String::from_utf8(out.stdout)?;
    assert!(text.starts_with(&format!("s3://{BUCKET}/{one}: ")), "{text}");
    assert!(text.contains("    dataWindow (box2i): "), "attribute values: {text}");

    let filtered = run(exrscan_s3(&s3).args(["inspect", "--json", "--include", "*deep*", &url]));
    let paths: Vec<String> = String::from_utf8(filtered.stdout)?.lines().map(str::to_owned).collect();
    let deep = uploaded.exr.iter().filter(|k| k.rsplit('/').next().is_some_and(|n| n.contains("deep"))).count();
    assert!(deep > 0 && paths.len() == deep, "{} records for {deep} deep keys", paths.len());

    let missing = exrscan_s3(&s3).args(["inspect", &format!("s3://{BUCKET}/{shot}missing.1001.exr")]).output()?;
    assert_eq!(missing.status.code(), Some(1), "{}", String::from_utf8_lossy(&missing.stderr));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("missing.1001.exr: error: not found"));
    Ok(())
}
