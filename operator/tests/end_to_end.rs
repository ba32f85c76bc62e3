//! End to end with every real part: the control plane, the node agent running the real
//! `exrscan` worker binary as the planner and shard pods, MinIO holding a few thousand
//! generated EXRs, and as the sink either Apache Arrow's Flight SQL server (basic auth,
//! credentials from a Secret) or the VAST protocol twin (SigV4 keys from a Secret, read back
//! with VAST's official SDK). The scan's final counts must equal the rows in the sink; a
//! rescan inserts nothing and counts everything unchanged.

mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use exrscan_crds::Phase;
use futures::StreamExt;
use harness::{Harness, kubectl_ok};
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use object_store::{ObjectStoreExt, PutPayload};
use testenv::flightsql::FlightSqlOptions;
use testenv::vasttwin::{self, VastTwin};
use testenv::{FlightSqlServer, S3Server};

const COPIES: usize = 25;
const SHARDS: i32 = 4;
/// Copies for the restart test: enough that the run outlives a kill and a Lease handover.
const RESTART_COPIES: usize = 10;
/// Copies for the scheduled test, before and between its two runs.
const SCHEDULE_COPIES: usize = 4;

/// Generates the corpus and asks `exrscan inspect` which files it reads: relative path → ok.
fn corpus(dir: &Path) -> BTreeMap<String, (PathBuf, bool)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/generate.py");
    let python = testenv::paths::python().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(python).arg(&script).arg(dir).output().expect("python runs");
    assert!(out.status.success(), "generate.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("corpus dir").flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    let exrscan = testenv::paths::workspace_bin("exrscan").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(exrscan).args(["inspect", "--json"]).args(&files).output().expect("exrscan inspect runs");
    let mut corpus = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
        let path = PathBuf::from(record["path"].as_str().expect("path"));
        let rel = path.strip_prefix(dir).expect("under the corpus").to_string_lossy().into_owned();
        corpus.insert(rel, (path, record["ok"] == true));
    }
    assert_eq!(corpus.len(), files.len(), "one inspect record per file");
    corpus
}

/// Uploads copies `copies` of the corpus under `show/shotNNN/` plus a non-EXR per shot;
/// returns (EXR objects, readable EXR objects).
async fn upload(
    s3: &S3Server,
    corpus: &BTreeMap<String, (PathBuf, bool)>,
    copies: std::ops::Range<usize>,
) -> (usize, usize) {
    let store = s3.store("renders").unwrap_or_else(|e| panic!("{e}"));
    let mut objects = Vec::new();
    let (mut exr, mut readable) = (0, 0);
    for copy in copies {
        for (rel, (path, ok)) in corpus {
            if rel.ends_with(".exr") {
                exr += 1;
                readable += usize::from(*ok);
            }
            objects.push((format!("show/shot{copy:03}/{rel}"), std::fs::read(path).expect("corpus file")));
        }
        objects.push((format!("show/shot{copy:03}/notes.txt"), b"not an image".to_vec()));
    }
    let failures: Vec<String> = futures::stream::iter(objects)
        .map(|(key, body)| {
            let store = &store;
            async move {
                store
                    .put(&object_store::path::Path::from(key.as_str()), PutPayload::from(body))
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
        })
        .buffer_unordered(32)
        .filter_map(|e| async move { e })
        .collect()
        .await;
    assert!(failures.is_empty(), "uploads failed: {failures:?}");
    (exr, readable)
}

/// Names of the scan's shard Jobs (the planner has its own).
async fn shard_jobs(h: &Harness) -> Vec<String> {
    h.jobs("default", "show")
        .await
        .into_iter()
        .filter(|j| {
            j.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/component")).map(String::as_str)
                == Some("shard")
        })
        .filter_map(|j| j.metadata.name)
        .collect()
}

/// The catalog a scan writes to, read back with that catalog's own client.
enum Catalog {
    /// Apache Arrow's Flight SQL server with basic auth.
    Flight(FlightSqlServer),
    /// The VAST protocol twin.
    Vast(VastTwin),
}

impl Catalog {
    fn start_flight() -> Catalog {
        let flight = FlightSqlServer::start_with(FlightSqlOptions {
            basic_auth: Some(("exrscan".into(), "s3cret".into())),
            // Bulk ingest: arrow-rs 60's prepared-statement update sends its parameters in a
            // separate DoPut, which arrow-go's server does not take (EOF reading the parameters).
            bulk_ingest: true,
            ..Default::default()
        });
        Catalog::Flight(flight.unwrap_or_else(|e| panic!("{e}")))
    }

    fn start_vast() -> Catalog {
        Catalog::Vast(VastTwin::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// The Secret the scan's `sink` names.
    fn secret(&self) -> (&'static str, Vec<(&'static str, &'static str)>) {
        match self {
            Catalog::Flight(_) => ("sink-creds", vec![("username", "exrscan"), ("password", "s3cret")]),
            Catalog::Vast(_) => (
                "sink-creds",
                vec![
                    ("AWS_ACCESS_KEY_ID", vasttwin::ACCESS_KEY_ID),
                    ("AWS_SECRET_ACCESS_KEY", vasttwin::SECRET_ACCESS_KEY),
                ],
            ),
        }
    }

    /// The manifest's `spec.sink`.
    fn sink_yaml(&self) -> String {
        match self {
            Catalog::Flight(f) => {
                format!("  sink:\n    flight:\n      endpoint: {}\n      credentialsSecret: sink-creds\n", f.addr())
            }
            Catalog::Vast(v) => format!(
                "  sink:\n    vast:\n      endpoint: {}\n      bucket: {}\n      schema: exrscan/e2e\n      credentialsSecret: sink-creds\n",
                v.endpoint(),
                vasttwin::BUCKET
            ),
        }
    }

    /// Rows of `files`: through the Flight SQL server with ADBC (basic auth), or through the
    /// VAST twin with VAST's SDK.
    fn rows(&self) -> i64 {
        let out = match self {
            Catalog::Flight(flight) => {
                let code = "import sys\n\
                    import adbc_driver_flightsql.dbapi as fs\n\
                    with fs.connect(sys.argv[1], db_kwargs={'username': 'exrscan', 'password': 's3cret'}) as c:\n\
                    \x20   cur = c.cursor()\n\
                    \x20   cur.execute('SELECT count(*) FROM files')\n\
                    \x20   print(cur.fetchone()[0])\n";
                testenv::python::run(code, &[&flight.adbc_uri()]).unwrap_or_else(|e| panic!("ADBC read-back: {e}"))
            }
            Catalog::Vast(twin) => {
                let args = ["--endpoint", &twin.endpoint(), "--bucket", vasttwin::BUCKET, "--schema", "exrscan/e2e"];
                let json = vasttwin::run_sdk("sdk_sql.py", &[&args[..], &["SELECT count(*) AS n FROM files"]].concat())
                    .unwrap_or_else(|e| panic!("SDK read-back: {e}"));
                let rows: serde_json::Value = serde_json::from_str(&json).expect("JSON rows");
                rows[0]["n"].to_string()
            }
        };
        out.trim().parse().unwrap_or_else(|e| panic!("row count {out:?}: {e}"))
    }
}

/// Everything but the operator: MinIO holding `copies` copies of the corpus, the catalog,
/// the control plane with a node agent running the real worker, and the Secrets.
struct Env {
    _work: tempfile::TempDir,
    corpus: BTreeMap<String, (PathBuf, bool)>,
    s3: S3Server,
    catalog: Catalog,
    h: Harness,
    _agent: testenv::kube::NodeAgent,
    /// EXR objects uploaded.
    exr: usize,
    /// Those the worker can read.
    readable: usize,
}

impl Env {
    async fn start(copies: usize, catalog: Catalog) -> Env {
        let work = testenv::work_dir("operator-e2e").expect("work dir");
        let corpus = corpus(&work.path().join("corpus"));
        let s3 = S3Server::start().unwrap_or_else(|e| panic!("{e}"));
        s3.create_bucket("renders").unwrap_or_else(|e| panic!("{e}"));
        let (exr, readable) = upload(&s3, &corpus, 0..copies).await;
        let h = Harness::start(false).await;
        let agent = h.exrscan_agent();
        h.secrets(&[
            ("s3-creds", vec![("AWS_ACCESS_KEY_ID", s3.access_key()), ("AWS_SECRET_ACCESS_KEY", s3.secret_key())]),
            catalog.secret(),
        ])
        .await;
        Env { _work: work, corpus, s3, catalog, h, _agent: agent, exr, readable }
    }

    /// The ExrScan `default/show` over every copy, with this `spec.rescan`.
    fn manifest(&self, rescan: &str) -> String {
        self.manifest_with(rescan, "")
    }

    /// [`Self::manifest`] with more `spec` lines.
    fn manifest_with(&self, rescan: &str, spec: &str) -> String {
        format!(
            "apiVersion: exrscan.dev/v1alpha1\nkind: ExrScan\nmetadata:\n  name: show\n  namespace: default\nspec:\n  source:\n    bucket: renders\n    prefix: show/\n    endpoint: {endpoint}\n    region: {region}\n    forcePathStyle: true\n    credentialsSecret: s3-creds\n{sink}  shards: {SHARDS}\n  rescan: \"{rescan}\"\n{spec}",
            endpoint = self.s3.endpoint(),
            region = testenv::s3::REGION,
            sink = self.catalog.sink_yaml(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_worker_indexes_s3_into_flight_sql() {
    index_and_rescan(Env::start(COPIES, Catalog::start_flight()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_worker_indexes_s3_into_vast() {
    index_and_rescan(Env::start(COPIES, Catalog::start_vast()).await).await;
}

/// A sharded scan to Succeeded with counts equal to the rows in the catalog, then a rescan
/// that writes nothing.
async fn index_and_rescan(env: Env) {
    let (h, catalog, exr, readable) = (&env.h, &env.catalog, env.exr, env.readable);
    assert!(exr > 2000, "a few thousand objects: {exr}");
    let _op = h.operator("op-1", &[]);
    let manifest = |rescan: &str| env.manifest(rescan);
    let (ok, err) = h.apply(&manifest("1"));
    assert!(ok, "{err}");
    // While it runs, `kubectl get exs` shows the shards' live counts short of the total.
    let live = h
        .wait_scan("default", "show", Duration::from_secs(120), "live counts while running", |s| {
            let st = s.status.as_ref();
            let processed = st.and_then(|st| st.counts.as_ref()).map_or(0, |c| c.processed);
            st.and_then(|st| st.phase) == Some(Phase::Running) && processed > 0 && (processed as usize) < exr
        })
        .await;
    let running = kubectl_ok(&h.cluster, &["get", "exs", "show", "--no-headers"]);
    eprintln!("while running: {running}");
    assert!(running.contains("Running"), "{running}");
    assert_eq!(shard_jobs(h).await.len(), 1, "one Job for the run");
    let live_processed = live.status.and_then(|s| s.counts).map_or(0, |c| c.processed);
    let done = h
        .wait_scan("default", "show", Duration::from_secs(300), "Succeeded", |s| {
            matches!(s.status.as_ref().and_then(|s| s.phase), Some(Phase::Succeeded | Phase::Failed))
        })
        .await;
    let st = done.status.clone().expect("status");
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}\n{}", h.diagnostics());
    let counts = st.counts.expect("counts");
    eprintln!("first run: {counts:?}");
    assert_eq!(counts.discovered as usize, exr, "every EXR key found once");
    assert_eq!(counts.processed as usize, exr);
    assert_eq!(counts.inserted as usize, readable);
    assert_eq!(counts.failed as usize, exr - readable, "damaged files are counted, not fatal");
    assert!(counts.bytes_read > 0);
    assert_eq!(catalog.rows(), counts.inserted, "status counts equal the rows in the sink");
    assert!(live_processed < counts.processed, "counts grew after {live_processed} were seen live");
    assert_eq!(st.shards.map(|s| (s.total, s.succeeded)), Some((SHARDS, SHARDS)));
    // kstatus: Ready and Complete true, nothing reconciling or stalled, generation observed.
    let condition = |t: &str| st.conditions.iter().find(|c| c.type_ == t).map(|c| c.status.clone());
    for (t, want) in [("Ready", "True"), ("Complete", "True"), ("Progressing", "False"), ("Failed", "False")] {
        assert_eq!(condition(t).as_deref(), Some(want), "condition {t}: {:?}", st.conditions);
    }
    for t in ["Reconciling", "Stalled"] {
        assert_ne!(condition(t).as_deref(), Some("True"), "condition {t}: {:?}", st.conditions);
    }
    assert_eq!(st.observed_generation, done.metadata.generation);
    assert!(!st.failures.is_empty() || readable == exr, "damaged files are sampled in status.failures");
    let table = kubectl_ok(&h.cluster, &["get", "exs", "show", "--no-headers"]);
    assert!(table.contains("Succeeded") && table.contains(&format!("{SHARDS}/{SHARDS}")), "{table}");

    // Re-applying the same manifest starts nothing.
    let (ok, err) = h.apply(&manifest("1"));
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(shard_jobs(h).await.len(), 1, "an unchanged re-apply makes no Job");
    assert_eq!(h.scan("default", "show").await.status.and_then(|s| s.run), st.run, "same run");

    // Rescan: nothing new is written, everything is unchanged.
    let (ok, err) = h.apply(&manifest("2"));
    assert!(ok, "{err}");
    let first_run = st.run.clone();
    let first_job = st.job_name.clone();
    let again = h
        .wait_scan("default", "show", Duration::from_secs(300), "the rescan to finish", |s| {
            let st = s.status.as_ref();
            st.and_then(|st| st.run.clone()) != first_run
                && matches!(st.and_then(|s| s.phase), Some(Phase::Succeeded | Phase::Failed))
        })
        .await;
    let st = again.status.expect("status");
    assert_eq!(st.phase, Some(Phase::Succeeded));
    let jobs = shard_jobs(h).await;
    assert!(
        st.job_name != first_job && st.job_name.as_ref().is_some_and(|n| jobs.contains(n)),
        "a new Job for the rescan: {jobs:?}"
    );
    let counts2 = st.counts.expect("counts");
    eprintln!("rescan: {counts2:?}");
    assert_eq!((counts2.inserted, counts2.unchanged as usize, counts2.failed), (0, readable, counts.failed));
    assert_eq!(catalog.rows(), counts.inserted, "the rescan wrote nothing");
    assert_eq!(st.last_run.and_then(|r| r.counts).map(|c| c.inserted), Some(counts.inserted));
}

/// The operator is killed (SIGKILL) while the real workers run and a new replica takes over
/// the Lease: the scan completes with the same single shard Job and counts equal to the rows
/// in the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_mid_run_completes_with_one_job() {
    let env = Env::start(RESTART_COPIES, Catalog::start_flight()).await;
    let h = &env.h;
    let op = h.operator("op-1", &[]);
    let (ok, err) = h.apply(&env.manifest("1"));
    assert!(ok, "{err}");
    // Killed as soon as the shards run (the status, written at its pace, may lag behind).
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), "default");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let job = loop {
        if let Some(name) = shard_jobs(h).await.into_iter().next() {
            let active = jobs.get(&name).await.ok().and_then(|j| j.status).and_then(|s| s.active).unwrap_or(0);
            if active > 0 {
                break name;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no shard ran within 120 s\n{}", h.diagnostics());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut op = op;
    op.server.kill();
    let at_kill = jobs.get(&job).await.expect("the shard Job").status.unwrap_or_default();
    eprintln!("killed the operator with the Job at {:?}/{SHARDS} succeeded", at_kill.succeeded);
    assert!(at_kill.completion_time.is_none(), "the kill came before the Job finished: {at_kill:?}");
    let _op2 = h.operator("op-2", &[]);
    let done = h
        .wait_scan("default", "show", Duration::from_secs(300), "Succeeded after the restart", |s| {
            matches!(s.status.as_ref().and_then(|s| s.phase), Some(Phase::Succeeded | Phase::Failed))
        })
        .await;
    let st = done.status.expect("status");
    assert_eq!(st.phase, Some(Phase::Succeeded), "{:?}\n{}", st.conditions, h.diagnostics());
    assert_eq!(st.job_name.as_ref(), Some(&job), "the new replica adopted the running Job");
    assert_eq!(shard_jobs(h).await, vec![job], "no duplicate Job");
    let counts = st.counts.expect("counts");
    eprintln!("after the restart: {counts:?}");
    assert_eq!((counts.processed as usize, counts.inserted as usize), (env.exr, env.readable));
    assert_eq!(env.catalog.rows(), counts.inserted, "status counts equal the rows in the sink");
}

/// A scheduled scan (`* * * * *`): nothing runs before its first tick (phase Scheduled, Ready
/// for kstatus); each tick's run indexes only what is new, the rest costing its LIST entry
/// and no GET; a spec change alone starts no run; `status.history` keeps the earlier run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_index_what_landed_since_the_last_tick() {
    let env = Env::start(SCHEDULE_COPIES, Catalog::start_flight()).await;
    let h = &env.h;
    let _op = h.operator("op-1", &[]);
    let schedule = "  schedule: \"* * * * *\"\n  startingDeadlineSeconds: 50\n";
    let (ok, err) = h.apply(&env.manifest_with("1", schedule));
    assert!(ok, "{err}");
    let waiting = h
        .wait_scan("default", "show", Duration::from_secs(30), "phase Scheduled", |s| {
            s.status.as_ref().and_then(|s| s.phase) == Some(Phase::Scheduled)
                || s.status.as_ref().is_some_and(|s| s.run.is_some())
        })
        .await;
    let st = waiting.status.expect("status");
    if st.run.is_none() {
        assert!(st.next_schedule_time.is_some(), "{st:?}");
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str());
        assert_eq!(ready, Some("True"), "waiting for its first tick is Ready: {:?}", st.conditions);
        assert!(shard_jobs(h).await.is_empty(), "no Job before the first tick");
    }

    let finished = |s: &exrscan_crds::ExrScan| {
        s.status.as_ref().is_some_and(|s| s.run.is_some() && s.phase.is_some_and(Phase::is_finished))
    };
    let first = h.wait_scan("default", "show", Duration::from_secs(150), "the first tick's run", finished).await;
    let st1 = first.status.expect("status");
    assert_eq!(st1.phase, Some(Phase::Succeeded), "{:?}\n{}", st1.conditions, h.diagnostics());
    let counts1 = st1.counts.expect("counts");
    assert_eq!((counts1.processed as usize, counts1.inserted as usize), (env.exr, env.readable));
    assert!(st1.last_schedule_time.is_some() && st1.last_successful_time.is_some(), "{st1:?}");

    // New renders land, and the spec changes: no run starts before the next tick.
    let (new_exr, new_readable) = upload(&env.s3, &env.corpus, SCHEDULE_COPIES..SCHEDULE_COPIES + 2).await;
    let (ok, err) = h.apply(&env.manifest_with("2", schedule));
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_edit = h.scan("default", "show").await.status.expect("status");
    assert!(
        after_edit.run == st1.run || after_edit.last_schedule_time != st1.last_schedule_time,
        "a spec change alone started run {:?}",
        after_edit.run
    );

    let second = h
        .wait_scan("default", "show", Duration::from_secs(150), "the next tick's run", |s| {
            finished(s) && s.status.as_ref().is_some_and(|s| s.run != st1.run)
        })
        .await;
    let st2 = second.status.expect("status");
    assert_eq!(st2.phase, Some(Phase::Succeeded), "{:?}\n{}", st2.conditions, h.diagnostics());
    let counts2 = st2.counts.expect("counts");
    eprintln!("first tick: {counts1:?}\nnext tick: {counts2:?}");
    assert_eq!(counts2.processed as usize, env.exr + new_exr);
    assert_eq!((counts2.inserted as usize, counts2.unchanged as usize), (new_readable, env.readable));
    // Copies are alike: the bytes read are those of the two new copies alone.
    assert_eq!(counts2.bytes_read * SCHEDULE_COPIES as i64, counts1.bytes_read * 2, "unchanged objects cost no GET");
    assert!(st2.last_schedule_time > st1.last_schedule_time, "{st2:?}");
    assert_eq!(st2.history.first().and_then(|r| r.run.clone()), st1.run, "the first run is in the history");
    assert_eq!(env.catalog.rows() as usize, env.readable + new_readable, "each file once in the catalog");
}
