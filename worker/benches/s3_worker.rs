//! One S3 worker against loopback MinIO, in one run:
//! - `exrscan shard` (one shard of the whole prefix, DuckDB sink, embeddings on) — files/s,
//!   GETs per file, peak RSS;
//! - a bare ranged-GET loop (`object_store`, same concurrency, 64 KiB per object, nothing
//!   parsed or written) — files/s, the ceiling the worker is compared with;
//! - the previous tool's method (Python, boto3 256 KiB ranged GET + OpenImageIO per file,
//!   one process) — files/s, as a peer.
//!
//! The objects: `BENCH_COPIES` (default 600) copies of the realistic render headers in
//! `samples/` (beauty, AOVs, deep, stereo, tiled, luminance/chroma; 2–14 KB headers) plus two
//! copies of the generated corpus (`tests/corpus/generate.py --count-scale 4`: every header
//! shape, damaged files, and a 114 KB header that needs a second GET).
//!
//! Two CPU layouts, one after the other: **shared** (every process on every core, as the
//! kernel schedules them) and, on a machine with two cores or more, **split** (MinIO pinned
//! to CPU 0; the client — bare loop or worker — and the Flight SQL server pinned to CPU 1),
//! which stands for the deployment, where S3 is other machines and does not take the
//! worker's CPU.
//!
//! `cargo bench -p exrscan --bench s3_worker` (env `BENCH_COPIES`; `BENCH_CONCURRENCY`,
//! default 64; `BENCH_WORKER_ARGS`, more arguments for `exrscan shard`). Prints Markdown
//! rows. "GETs per file" counts every object fetched, "files in one GET" the readable
//! headers read with a single GET.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use testenv::flightsql::FlightSqlOptions;
use testenv::{FlightSqlServer, S3Server};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const BUCKET: &str = "bench";
const PREFIX: &str = "show/";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Uploads `copies` copies of each directory's files under `show/<name>NNN/`.
async fn upload(store: &Arc<dyn ObjectStore>, sets: &[(&str, &Path, usize)]) -> Result<usize> {
    let mut puts = Vec::new();
    for (name, dir, copies) in sets {
        let files = corpus_files(dir);
        for copy in 0..*copies {
            for file in &files {
                let rel = file.strip_prefix(dir)?.to_string_lossy().into_owned();
                puts.push((format!("{PREFIX}{name}{copy:04}/{rel}"), std::fs::read(file)?));
            }
        }
    }
    let n = puts.len();
    futures::stream::iter(puts)
        .map(|(key, body)| {
            let store = Arc::clone(store);
            async move { store.put(&object_store::path::Path::from(key.as_str()), PutPayload::from(body)).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(n)
}

/// Lists the prefix and GETs the first 64 KiB of every object, `concurrency` at a time.
async fn bare_loop(store: &Arc<dyn ObjectStore>, concurrency: usize) -> Result<(usize, f64)> {
    let started = Instant::now();
    let prefix = object_store::path::Path::from(PREFIX);
    let keys: Vec<_> = store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await?;
    let n = keys.len();
    futures::stream::iter(keys)
        .map(|path| {
            let store = Arc::clone(store);
            async move {
                let options = GetOptions { range: Some(GetRange::Bounded(0..64 * 1024)), ..GetOptions::default() };
                match store.get_opts(&path, options).await {
                    Ok(result) => result.bytes().await.map(|b| b.len()),
                    // The empty object answers 416, as it does for the worker.
                    Err(_) => Ok(0),
                }
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok((n, started.elapsed().as_secs_f64()))
}

/// Busy CPU seconds of the whole machine so far (all cores, `/proc/stat`, in USER_HZ = 100
/// ticks): over a run, it tells a CPU-bound run (client, MinIO and sink server share the
/// cores) from one that waits.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let ticks: Vec<f64> = cpu.split_whitespace().skip(1).take(8).filter_map(|v| v.parse().ok()).collect();
    ticks.iter().enumerate().filter(|(i, _)| !matches!(i, 3 | 4)).map(|(_, t)| t).sum::<f64>() / 100.0
}

/// The machine's CPUs (`/proc/stat`; unlike `available_parallelism`, not narrowed by pinning).
fn machine_cores() -> usize {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpus =
        stat.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count();
    cpus.max(1)
}

/// Pins every thread of process `pid` to CPU `cpu`; threads and children it starts later
/// inherit the pinning.
fn pin(pid: u32, cpu: usize) -> Result<()> {
    let out = Command::new("taskset").args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()]).output()?;
    if !out.status.success() {
        return Err(format!("taskset: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// `machine CPU ms per file | machine busy %` cells for a run (MinIO and any sink server
/// included).
fn cpu_cells(busy: f64, seconds: f64, files: usize) -> String {
    let cores = machine_cores() as f64;
    format!("{:.2} | {:.0} %", 1000.0 * busy / files as f64, 100.0 * busy / (seconds * cores))
}

struct WorkerRun {
    seconds: f64,
    /// Busy CPU seconds of the machine during the run.
    busy: f64,
    /// User + system CPU seconds of the worker process alone.
    own_cpu: f64,
    report: serde_json::Value,
    max_rss_kib: u64,
}

fn worker(s3: &S3Server, plan: &Path, work: &Path, concurrency: usize, sink: &str, round: &str) -> Result<WorkerRun> {
    let rss = work.join(format!("rss-{round}"));
    let (started, busy_before) = (Instant::now(), machine_busy_seconds());
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o"])
        .arg(&rss)
        .arg(env!("CARGO_BIN_EXE_exrscan"))
        .args(["shard", "--index", "0", "--plan"])
        .arg(plan)
        .args(["--sink", sink, "--concurrency", &concurrency.to_string()])
        .args(std::env::var("BENCH_WORKER_ARGS").unwrap_or_default().split_whitespace())
        .env("EXRSCAN_S3_ENDPOINT", s3.endpoint())
        .env("EXRSCAN_S3_FORCE_PATH_STYLE", "true")
        .env("AWS_REGION", testenv::s3::REGION)
        .env("AWS_ACCESS_KEY_ID", s3.access_key())
        .env("AWS_SECRET_ACCESS_KEY", s3.secret_key())
        .env("EXRSCAN_TERMINATION_LOG", work.join("termination"))
        .env("EXRSCAN_LOG", "warn")
        .output()?;
    let (seconds, busy) = (started.elapsed().as_secs_f64(), machine_busy_seconds() - busy_before);
    if !out.status.success() {
        return Err(format!("exrscan shard failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    let measured = std::fs::read_to_string(&rss)?;
    let fields: Vec<&str> = measured.trim().lines().last().unwrap_or_default().split_whitespace().collect();
    let [rss_kib, user, system] = fields[..] else { return Err(format!("unexpected time output: {measured}").into()) };
    let own_cpu = user.parse::<f64>()? + system.parse::<f64>()?;
    Ok(WorkerRun { seconds, busy, own_cpu, report, max_rss_kib: rss_kib.parse()? })
}

const PEER: &str = r#"
import sys, time, os, tempfile, boto3, OpenImageIO as oiio
endpoint, key, secret, bucket, prefix, limit = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    keys += [o["Key"] for o in page.get("Contents", [])]
keys = keys[: int(limit)]
tmp = os.path.join(tempfile.mkdtemp(), "header.exr")
ok = 0
start = time.perf_counter()
for k in keys:
    try:
        body = s3.get_object(Bucket=bucket, Key=k, Range="bytes=0-262143")["Body"].read()
    except Exception:
        continue
    with open(tmp, "wb") as f:
        f.write(body)
    inp = oiio.ImageInput.open(tmp)
    if inp:
        spec = inp.spec()
        _ = (spec.width, spec.height, spec.nchannels, spec.extra_attribs)
        inp.close()
        ok += 1
print(len(keys), ok, time.perf_counter() - start)
"#;

/// One layout's measurements: the best bare loop and DuckDB worker of three alternating
/// rounds, then one worker into a fresh Flight SQL server.
struct Layout {
    name: &'static str,
    bare_seconds: f64,
    bare_busy: f64,
    duckdb: WorkerRun,
    flight: WorkerRun,
}

struct Bench<'a> {
    runtime: &'a tokio::runtime::Runtime,
    store: &'a Arc<dyn ObjectStore>,
    s3: &'a S3Server,
    plan: &'a Path,
    work: &'a Path,
    concurrency: usize,
    objects: usize,
}

impl Bench<'_> {
    fn measure(&self, name: &'static str) -> Result<Layout> {
        let (mut bare_seconds, mut bare_busy, mut duckdb): (f64, f64, Option<WorkerRun>) = (f64::MAX, 0.0, None);
        for round in 0..3 {
            let busy_before = machine_busy_seconds();
            let (n, seconds) = self.runtime.block_on(bare_loop(self.store, self.concurrency))?;
            assert_eq!(n, self.objects);
            if seconds < bare_seconds {
                (bare_seconds, bare_busy) = (seconds, machine_busy_seconds() - busy_before);
            }
            let label = format!("{name}-{round}");
            let db = self.work.join(format!("catalog-{label}.duckdb"));
            let run =
                worker(self.s3, self.plan, self.work, self.concurrency, &format!("duckdb://{}", db.display()), &label)?;
            if duckdb.as_ref().is_none_or(|best| run.seconds < best.seconds) {
                duckdb = Some(run);
            }
        }
        // The same worker into Apache Arrow's Flight SQL server (bulk ingest), a fresh catalog.
        let server =
            FlightSqlServer::start_with(FlightSqlOptions { bulk_ingest: true, ..FlightSqlOptions::default() })?;
        let flight = worker(self.s3, self.plan, self.work, self.concurrency, &server.uri(), &format!("{name}-flight"))?;
        Ok(Layout { name, bare_seconds, bare_busy, duckdb: duckdb.ok_or("no worker run")?, flight })
    }

    fn print(&self, layout: &Layout) {
        let Layout { name, bare_seconds, bare_busy, duckdb, flight } = layout;
        let bare_rate = self.objects as f64 / bare_seconds;
        let share = |run: &WorkerRun| 100.0 * self.objects as f64 / run.seconds / bare_rate;
        let s3_counts = &duckdb.report["s3"];
        let headers = s3_counts["headersRead"].as_f64().unwrap_or(0.0);
        let gets = s3_counts["getRequests"].as_f64().unwrap_or(0.0);
        let fetched = duckdb.report["counts"]["discovered"].as_f64().unwrap_or(0.0);
        let one_get = s3_counts["headersInOneGet"].as_f64().unwrap_or(0.0);
        println!(
            "| {name}: bare ranged-GET loop (object_store, 64 KiB) | {bare_rate:.0} | 100 % | 1 | 100 % | | {} | |",
            cpu_cells(*bare_busy, *bare_seconds, self.objects)
        );
        println!(
            "| {name}: `exrscan shard` (DuckDB sink, embeddings) | {:.0} | {:.0} % | {:.3} | {:.2} % | {:.1} MiB | {} | {:.2} |",
            self.objects as f64 / duckdb.seconds,
            share(duckdb),
            gets / fetched.max(1.0),
            100.0 * one_get / headers.max(1.0),
            duckdb.max_rss_kib as f64 / 1024.0,
            cpu_cells(duckdb.busy, duckdb.seconds, self.objects),
            1000.0 * duckdb.own_cpu / self.objects as f64
        );
        println!(
            "| {name}: `exrscan shard` (Flight SQL sink, bulk ingest, embeddings) | {:.0} | {:.0} % | | | {:.1} MiB | {} | {:.2} |",
            self.objects as f64 / flight.seconds,
            share(flight),
            flight.max_rss_kib as f64 / 1024.0,
            cpu_cells(flight.busy, flight.seconds, self.objects),
            1000.0 * flight.own_cpu / self.objects as f64
        );
    }
}

fn main() -> Result<()> {
    let copies = env_number("BENCH_COPIES", 600);
    let concurrency = env_number("BENCH_CONCURRENCY", 64);
    let work = testenv::work_dir("bench-s3")?;
    let corpus = work.path().join("corpus");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/generate.py");
    let status =
        Command::new(testenv::paths::python()?).arg(&script).arg(&corpus).args(["--count-scale", "4"]).output()?;
    if !status.status.success() {
        return Err(format!("generate.py: {}", String::from_utf8_lossy(&status.stderr)).into());
    }
    let s3 = S3Server::start()?;
    s3.create_bucket(BUCKET)?;
    let store: Arc<dyn ObjectStore> = Arc::new(s3.store(BUCKET)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let objects = runtime.block_on(upload(&store, &[("shot", &samples, copies), ("corpus", &corpus, 2)]))?;
    eprintln!("uploaded {objects} objects");

    let plan = work.path().join("plan.json");
    let out = Command::new(env!("CARGO_BIN_EXE_exrscan"))
        .args([
            "plan",
            &format!("s3://{BUCKET}/{PREFIX}"),
            "--shards",
            "1",
            "--s3-endpoint",
            &s3.endpoint(),
            "--s3-force-path-style",
        ])
        .env("AWS_ACCESS_KEY_ID", s3.access_key())
        .env("AWS_SECRET_ACCESS_KEY", s3.secret_key())
        .output()?;
    std::fs::write(&plan, &out.stdout)?;

    let peer = testenv::python::run(PEER, &[&s3.endpoint(), s3.access_key(), s3.secret_key(), BUCKET, PREFIX, "2000"])?;
    let fields: Vec<f64> = peer.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let (peer_files, peer_seconds) =
        (fields.first().copied().unwrap_or(0.0), fields.get(2).copied().unwrap_or(f64::MAX));

    let bench =
        Bench { runtime: &runtime, store: &store, s3: &s3, plan: &plan, work: work.path(), concurrency, objects };
    let mut layouts = vec![bench.measure("shared")?];
    if machine_cores() >= 2 {
        pin(s3.pid().ok_or("MinIO is not running")?, 0)?;
        pin(std::process::id(), 1)?;
        layouts.push(bench.measure("split")?);
    } else {
        eprintln!("one CPU: no split layout");
    }

    let shared = &layouts[0];
    println!(
        "objects: {objects} ({} with a readable header), concurrency {concurrency}; {} CPUs",
        shared.duckdb.report["headersRead"],
        machine_cores()
    );
    println!(
        "| run | files/s | vs bare GET loop | GETs per file | files in one GET | peak RSS | machine CPU ms per file | machine busy | worker process CPU ms per file |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for layout in &layouts {
        bench.print(layout);
    }
    println!(
        "| shared: previous tool's method (boto3 256 KiB + OpenImageIO, Python, 1 process; {peer_files:.0} objects) | {:.0} | {:.0} % | 1 | | | | | |",
        peer_files / peer_seconds,
        100.0 * peer_files / peer_seconds / (objects as f64 / shared.bare_seconds)
    );
    Ok(())
}
