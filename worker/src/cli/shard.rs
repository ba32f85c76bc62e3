//! `exrscan shard --plan FILE [--index I]`: the in-pod entry point of a sharded scan.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use exrscan::catalog::ScanInfo;
use exrscan::plan::read_shard;
use exrscan::scan::{self, ScanOptions, Tally};
use exrscan::shard::progress::ShardProgress;
use exrscan::shard::{Outcome, Report, termination_log};
use exrscan::sink::{AnySink, Writer};
use exrscan::source::s3::{S3Counts, S3Url};

use super::log::{self, LogFormat};
use super::s3_args::{HeaderReadArgs, S3Args, user_agent};
use super::sink_args::SinkArgs;

/// Scan the partitions of one shard of a plan into the catalog.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Lists only the shard's partitions, reads each kept object's header with ranged GETs, and \
writes new files to the sink in batches; objects the catalog already holds with the same \
URI, size and ETag are skipped unread, so a re-run resumes. Progress is patched into the \
shard's key of the run's progress ConfigMap (EXRSCAN_PROGRESS_CONFIGMAP, \
EXRSCAN_PROGRESS_SHARDS_PER_CONFIGMAP, POD_NAMESPACE); the summary \
(JSON, at most 4 KiB) is written to EXRSCAN_TERMINATION_LOG or /dev/termination-log and \
printed on stdout.

Exit status: 0 done (objects that could not be read are counted as failed); 2 bad \
configuration (unreadable plan, bad sink URI, refused sink credentials, no such bucket): \
retrying cannot help; 3 S3 or the sink unavailable past the retries, or stopped by \
SIGTERM/SIGINT after writing what it had read: retry the shard; 4 S3 refused the \
credentials (denied, expired token, clock skew): retry the shard in a new pod, which reads \
them again.")]
pub struct Args {
    /// The plan made by `exrscan plan`: printed, or a published header `plan.json` with the
    /// chunk files `partitions-<k>.json` beside it (only the shard's own chunk is read).
    #[arg(long, env = "EXRSCAN_PLAN", value_name = "FILE")]
    plan: PathBuf,
    /// Shard index (else JOB_COMPLETION_INDEX).
    #[arg(long, env = "JOB_COMPLETION_INDEX", value_name = "I")]
    index: u32,
    #[command(flatten)]
    sink: SinkArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    reads: HeaderReadArgs,
    /// Headers read at once.
    #[arg(long, env = "EXRSCAN_CONCURRENCY", default_value_t = scan::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Files per sink batch (at most).
    #[arg(long, env = "EXRSCAN_BATCH_FILES", default_value_t = 1000)]
    batch_files: usize,
    /// Bytes of rows per sink batch (at most, approximately).
    #[arg(long, env = "EXRSCAN_BATCH_BYTES", default_value_t = 16 * 1024 * 1024)]
    batch_bytes: usize,
    /// Compute and store embeddings (the default; EXRSCAN_EMBEDDINGS=false turns them off).
    #[arg(long, env = "EXRSCAN_EMBEDDINGS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_name = "BOOL", overrides_with = "no_embeddings")]
    embeddings: bool,
    /// Do not compute embeddings: the vector columns stay null.
    #[arg(long, overrides_with = "embeddings")]
    no_embeddings: bool,
    /// Scan name stamped on the files rows.
    #[arg(long, env = "EXRSCAN_SCAN_NAME")]
    scan_name: Option<String>,
    /// Scan UID stamped on the files rows.
    #[arg(long, env = "EXRSCAN_SCAN_UID")]
    scan_uid: Option<String>,
    /// Seconds between two progress patches of the progress ConfigMap.
    #[arg(long, env = "EXRSCAN_PROGRESS_INTERVAL", default_value = "5", value_parser = parse_seconds, value_name = "SECONDS")]
    progress_interval: Duration,
    /// Log format.
    #[arg(long, env = "EXRSCAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
}

/// `5`, `5s` or `2.5` seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let number = text.trim().trim_end_matches('s');
    let seconds: f64 = number.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds.is_finite() && seconds > 0.0 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!("`{text}` must be a positive number of seconds"))
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(args.log_format, None);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let (report, outcome) = runtime.block_on(shard(args));
    match &outcome {
        Outcome::Done => tracing::info!(summary = %report.to_json(), "shard done"),
        other => tracing::error!(outcome = other.name(), error = other.error().unwrap_or_default(), "shard stopped"),
    }
    let path = termination_log();
    if let Err(e) = report.write(&path) {
        tracing::warn!(path = %path.display(), error = %e, "could not write the termination message");
    }
    println!("{}", report.to_json());
    Ok(ExitCode::from(outcome.exit_code()))
}

async fn shard(args: &Args) -> (Report, Outcome) {
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let mut shards = 0;
    let mut s3 = S3Counts::default();
    let outcome = run_shard(args, &tally, &mut shards, &mut s3).await;
    let report = Report::new(args.index, shards, &outcome, &tally.summary(started.elapsed()), s3);
    (report, outcome)
}

async fn run_shard(args: &Args, tally: &Arc<Tally>, shards: &mut u32, s3: &mut S3Counts) -> Outcome {
    let (plan, partition) = match read_shard(&args.plan, args.index) {
        Ok(read) => read,
        Err(e) => return Outcome::Config(format!("plan {}: {e}", args.plan.display())),
    };
    *shards = plan.outline.shards;
    let url = S3Url { bucket: plan.outline.bucket.clone(), prefix: plan.outline.prefix.clone() };
    let agent = user_agent(&format!("shard {}/{}", args.index, plan.outline.shards));
    let source =
        match args.s3.source(&url, vec![partition], (&plan.outline.include, &plan.outline.exclude), &args.reads, agent)
        {
            Ok(source) => Arc::new(source),
            Err(e) => return Outcome::Config(e.to_string()),
        };
    let uri = match args.sink.uri() {
        Ok(uri) => uri,
        Err(e) => return Outcome::Config(format!("{e:#}")),
    };
    let credentials = match args.sink.credentials() {
        Ok(credentials) => credentials,
        Err(e) => return Outcome::Config(format!("{e:#}")),
    };
    let sink = match AnySink::open(&uri, &credentials, &args.sink.retry()).await {
        Ok(sink) => sink,
        Err(e) => return Outcome::of_sink(&e),
    };
    let mut writer = Writer::new(sink, args.sink.retry());
    let options = ScanOptions {
        concurrency: args.concurrency.max(1),
        batch_files: args.batch_files.max(1),
        batch_bytes: args.batch_bytes.max(1),
        batch_rows: ScanOptions::default().batch_rows,
        embeddings: args.embeddings && !args.no_embeddings,
        scan: ScanInfo { name: args.scan_name.clone(), uid: args.scan_uid.clone() },
        skip_indexed: true,
    };
    let patcher = match ShardProgress::from_env(args.index).await {
        Ok(Some(progress)) => Some(progress.start(Arc::clone(tally), args.progress_interval)),
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(%error, "no Kubernetes client: progress is not reported");
            None
        }
    };
    let stop = match super::signals::stop_on_signals() {
        Ok(stop) => stop,
        Err(e) => return Outcome::Unavailable(format!("installing the signal handlers: {e}")),
    };
    tracing::info!(shard = args.index, shards = plan.outline.shards, source = %url, sink = %uri, "shard started");
    let result = scan::run(Arc::clone(&source), &mut writer, &options, tally, &stop).await;
    if let Some(patcher) = patcher {
        patcher.finish().await;
    }
    *s3 = source.stats();
    match result {
        Ok(_) => Outcome::Done,
        Err(e) => Outcome::of_scan(&e),
    }
}
