//! `exrscan scan SOURCE --sink URI`: indexes every EXR header under SOURCE (a directory or
//! `s3://bucket/prefix`) into a catalog.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use exrscan::catalog::ScanInfo;
use exrscan::plan::Plan;
use exrscan::scan::progress::{Display, Reporter};
use exrscan::scan::{self, ScanError, ScanOptions, Summary, Tally};
use exrscan::sink::{AnySink, Writer};
use exrscan::source::Source;
use exrscan::source::local::LocalSource;
use exrscan::source::s3::S3Url;

use super::log::{self, LogFormat};
use super::s3_args::{FilterArgs, HeaderReadArgs, S3Args, user_agent};
use super::sink_args::SinkArgs;

/// Index the headers of every EXR file under SOURCE into a catalog.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Only header bytes are read. Files already in the catalog (same URI, same header) are \
counted as unchanged and nothing is written for them, so re-running inserts nothing. \
A progress line is shown on a terminal, log lines otherwise; a summary ends the run.

Exit status: 0 when the scan ran to the end (files that could not be read are counted as \
failed); 1 when the source or the sink failed; 130 when stopped by SIGINT/SIGTERM (the \
files read before the signal are written and the summary is printed; run again to resume).")]
pub struct Args {
    /// Directory (or single EXR file) to scan, or s3://bucket/prefix.
    #[arg(value_name = "SOURCE")]
    source: String,
    #[command(flatten)]
    sink: SinkArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    filter: FilterArgs,
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
    /// Catalog rows (over the four tables) per sink batch (at most).
    #[arg(long, env = "EXRSCAN_BATCH_ROWS", default_value_t = 100_000)]
    batch_rows: usize,
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
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Log format.
    #[arg(long, env = "EXRSCAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // Quiet: the progress goes to log lines, which -q filters out.
    let display =
        if log::quiet() { Display::Log { every: std::time::Duration::from_secs(10) } } else { Display::for_stderr() };
    let bar = match &display {
        Display::Bar(bar) => Some(bar.clone()),
        Display::Log { .. } => None,
    };
    log::init(args.log_format, bar);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let ended = runtime.block_on(scan(args, display))?;
    print_summary(&ended.summary, args.json).context("writing the summary")?;
    if ended.interrupted {
        eprintln!("exrscan: interrupted; the files read were written, run the same scan again to resume");
        return Ok(ExitCode::from(INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit status of a scan stopped by a signal (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// How a scan ended without error.
struct Ended {
    summary: Summary,
    /// Stopped by a signal before the end.
    interrupted: bool,
}

async fn scan(args: &Args, display: Display) -> anyhow::Result<Ended> {
    let sink = args.sink.open().await?;
    let mut writer = Writer::new(sink, args.sink.retry());
    let options = ScanOptions {
        concurrency: args.concurrency.max(1),
        batch_files: args.batch_files.max(1),
        batch_bytes: args.batch_bytes.max(1),
        batch_rows: args.batch_rows.max(1),
        embeddings: args.embeddings && !args.no_embeddings,
        scan: ScanInfo { name: args.scan_name.clone(), uid: args.scan_uid.clone() },
        skip_indexed: true,
    };
    if args.source.starts_with("s3://") {
        let url = S3Url::parse(&args.source)?;
        let (include, exclude) = args.filter.patterns();
        let whole = Plan::whole(&url.bucket, &url.prefix, &include, &exclude).partitions;
        let source = Arc::new(args.s3.source(&url, whole, (&include, &exclude), &args.reads, user_agent("scan"))?);
        tracing::info!(source = %url, sink = %args.sink.uri()?, "scan started");
        let ended = scan_source(Arc::clone(&source), &mut writer, &options, display).await?;
        let s3 = source.stats();
        tracing::info!(
            list_requests = s3.list_requests,
            get_requests = s3.get_requests,
            retries = s3.retries,
            headers_in_one_get = s3.headers_in_one_get,
            skipped_by_filter = s3.skipped_by_filter,
            "S3 requests"
        );
        return Ok(ended);
    }
    let source = Arc::new(LocalSource::new(Path::new(&args.source))?.with_filter(args.filter.filter()?));
    tracing::info!(source = %source.root().display(), sink = %args.sink.uri()?, "scan started");
    scan_source(source, &mut writer, &options, display).await
}

async fn scan_source<S: Source>(
    source: Arc<S>,
    writer: &mut Writer<AnySink>,
    options: &ScanOptions,
    display: Display,
) -> anyhow::Result<Ended> {
    let tally = Arc::new(Tally::default());
    let reporter = Reporter::start(Arc::clone(&tally), display);
    let stop = super::signals::stop_on_signals().context("installing the signal handlers")?;
    let result = scan::run(source, writer, options, &tally, &stop).await;
    reporter.finish().await;
    match result {
        Ok(summary) => Ok(Ended { summary, interrupted: false }),
        Err(ScanError::Interrupted(summary)) => Ok(Ended { summary: *summary, interrupted: true }),
        Err(e) => Err(e.into()),
    }
}

fn print_summary(summary: &Summary, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, summary)?;
        return writeln!(out);
    }
    let c = &summary.counts;
    let secs = summary.elapsed.as_secs_f64();
    writeln!(out, "discovered  {}", c.discovered)?;
    writeln!(out, "processed   {}", c.processed)?;
    writeln!(out, "inserted    {}", c.inserted)?;
    writeln!(out, "unchanged   {}", c.unchanged)?;
    writeln!(out, "failed      {}", c.failed)?;
    writeln!(
        out,
        "bytes read  {} ({:.1} KiB/file)",
        c.bytes_read,
        c.bytes_read as f64 / 1024.0 / c.processed.max(1) as f64
    )?;
    writeln!(
        out,
        "elapsed     {secs:.2} s ({:.0} files/s, {} rows in {} batches, {} retries)",
        c.processed as f64 / secs.max(1e-9),
        summary.rows_written,
        summary.batches,
        summary.retries
    )?;
    for failure in &summary.failures {
        writeln!(out, "failed: {}: {}", failure.key, failure.reason)?;
    }
    if c.failed > summary.failures.len() as u64 {
        writeln!(out, "… and {} more failures", c.failed - summary.failures.len() as u64)?;
    }
    Ok(())
}
