//! `exrscan follow --brokers … --topic … --group … s3://bucket/prefix --sink URI`: indexes
//! new and changed objects seconds after they land, from the bucket's S3 event
//! notifications on a Kafka topic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use exrscan::catalog::ScanInfo;
use exrscan::follow::report::StatusReport;
use exrscan::follow::{FollowOptions, FollowStats, Follower, KafkaOptions, Scope};
use exrscan::plan::Plan;
use exrscan::scan::ScanOptions;
use exrscan::sink::Writer;
use exrscan::source::filter::KeyFilter;
use exrscan::source::s3::S3Url;

use super::log::{self, LogFormat};
use super::s3_args::{FilterArgs, HeaderReadArgs, S3Args, user_agent};
use super::sink_args::SinkArgs;

/// Follow a bucket prefix's S3 event notifications on Kafka and index new renders as they land.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Events (MinIO, VAST's event broker, AWS through a Kafka bridge) are gathered into \
micro-batches, indexed through the same pipeline as `scan` (ranged GETs of the headers \
only), and the offsets are committed only once the batch is in the catalog: an event is \
never lost, and the catalog holds every file once. ObjectRemoved events are recorded in \
the `removals` table; the files' rows are kept. Malformed messages, s3:TestEvent and keys \
outside the prefix or globs are counted and skipped. A `follow stats` log line reports the \
consumer lag and the counts; --metrics-address serves them at /metrics, with /healthz and \
/readyz. See docs/continuous-indexing.md.

Exit status: 0 after SIGTERM/SIGINT (the batch being gathered is written and committed \
first); 1 on a configuration error or a sink that refuses for good.")]
pub struct Args {
    /// The followed prefix: s3://bucket/prefix.
    #[arg(value_name = "S3_PREFIX")]
    source: String,
    /// Kafka bootstrap brokers (host:port, comma-separated).
    #[arg(long, env = "EXRSCAN_KAFKA_BROKERS", value_name = "HOSTS")]
    brokers: String,
    /// Topic(s) of the bucket notifications (comma-separated).
    #[arg(long, env = "EXRSCAN_KAFKA_TOPIC", value_name = "TOPIC", value_delimiter = ',', required = true)]
    topic: Vec<String>,
    /// Consumer group: one per followed prefix (its committed offsets are the progress).
    #[arg(long, env = "EXRSCAN_KAFKA_GROUP", value_name = "GROUP")]
    group: String,
    /// Where a group without committed offsets starts reading.
    #[arg(long, env = "EXRSCAN_KAFKA_START", value_parser = ["earliest", "latest"], default_value = "earliest")]
    start: String,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(long, env = "EXRSCAN_KAFKA_SECURITY_PROTOCOL", value_name = "PROTOCOL")]
    kafka_security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    #[arg(long, env = "EXRSCAN_KAFKA_SASL_MECHANISM", value_name = "MECHANISM")]
    kafka_sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long, env = "EXRSCAN_KAFKA_SASL_USERNAME", value_name = "NAME")]
    kafka_sasl_username: Option<String>,
    /// File holding the SASL password (or set EXRSCAN_KAFKA_SASL_PASSWORD).
    #[arg(long, env = "EXRSCAN_KAFKA_SASL_PASSWORD_FILE", value_name = "PATH")]
    kafka_sasl_password_file: Option<PathBuf>,
    /// PEM file of the CA of the brokers' certificates.
    #[arg(long, env = "EXRSCAN_KAFKA_CA", value_name = "PATH")]
    kafka_ca: Option<PathBuf>,
    /// PEM client certificate (mutual TLS).
    #[arg(long, env = "EXRSCAN_KAFKA_CERT", value_name = "PATH", requires = "kafka_key")]
    kafka_cert: Option<PathBuf>,
    /// PEM client key (mutual TLS).
    #[arg(long, env = "EXRSCAN_KAFKA_KEY", value_name = "PATH", requires = "kafka_cert")]
    kafka_key: Option<PathBuf>,
    /// Further librdkafka consumer settings, NAME=VALUE (repeatable; not for secrets).
    #[arg(long = "kafka-option", value_name = "NAME=VALUE", value_parser = name_value)]
    kafka_options: Vec<(String, String)>,
    #[command(flatten)]
    sink: SinkArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    reads: HeaderReadArgs,
    /// Distinct objects per micro-batch (at most).
    #[arg(long, env = "EXRSCAN_FOLLOW_BATCH_OBJECTS", default_value_t = 1000)]
    batch_objects: usize,
    /// Milliseconds a micro-batch waits for more events after its oldest was fetched.
    #[arg(long, env = "EXRSCAN_FOLLOW_BATCH_MS", default_value_t = 250)]
    batch_ms: u64,
    /// Headers read at once.
    #[arg(long, env = "EXRSCAN_CONCURRENCY", default_value_t = 32)]
    concurrency: usize,
    /// Compute and store embeddings (`false`: vector columns stay null).
    #[arg(long, env = "EXRSCAN_EMBEDDINGS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    embeddings: bool,
    /// Scan name stamped on the files rows.
    #[arg(long, env = "EXRSCAN_SCAN_NAME")]
    scan_name: Option<String>,
    /// Scan UID stamped on the files rows.
    #[arg(long, env = "EXRSCAN_SCAN_UID")]
    scan_uid: Option<String>,
    /// Serve /metrics (OpenMetrics), /healthz and /readyz on this address (e.g. 0.0.0.0:9090).
    #[arg(long, env = "EXRSCAN_METRICS_ADDRESS", value_name = "HOST:PORT")]
    metrics_address: Option<SocketAddr>,
    /// Seconds between two `follow stats` log lines.
    #[arg(long, env = "EXRSCAN_FOLLOW_STATS_SECONDS", default_value_t = 30)]
    stats_seconds: u64,
    /// ConfigMap (in `POD_NAMESPACE`) where the counters are reported under `POD_NAME`
    /// (set by the operator for `spec.events`).
    #[arg(long, env = "EXRSCAN_FOLLOW_STATUS_CONFIGMAP", value_name = "NAME")]
    status_configmap: Option<String>,
    /// Seconds between two reports to `--status-configmap`.
    #[arg(long, env = "EXRSCAN_FOLLOW_STATUS_SECONDS", default_value_t = 10)]
    status_seconds: u64,
    /// Log format.
    #[arg(long, env = "EXRSCAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn name_value(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if name.contains("password") || name.contains("secret") {
        return Err(format!("`{name}` holds a secret: use the --kafka-sasl-password-file or environment instead"));
    }
    Ok((name.trim().to_string(), value.to_string()))
}

impl Args {
    fn kafka(&self) -> anyhow::Result<KafkaOptions> {
        let password = match &self.kafka_sasl_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            None => std::env::var("EXRSCAN_KAFKA_SASL_PASSWORD").ok().filter(|p| !p.is_empty()),
        };
        Ok(KafkaOptions {
            brokers: self.brokers.clone(),
            group: self.group.clone(),
            security_protocol: self.kafka_security_protocol.clone(),
            sasl_mechanism: self.kafka_sasl_mechanism.clone(),
            sasl_username: self.kafka_sasl_username.clone(),
            sasl_password: password,
            ca: self.kafka_ca.clone(),
            certificate: self.kafka_cert.clone(),
            key: self.kafka_key.clone(),
            start: self.start.clone(),
            extra: self.kafka_options.clone(),
        })
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(args.log_format, None);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(follow(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn follow(args: &Args) -> anyhow::Result<()> {
    let url = S3Url::parse(&args.source)?;
    let (include, exclude) = args.filter.patterns();
    let whole = Plan::whole(&url.bucket, &url.prefix, &include, &exclude).partitions;
    let s3 = Arc::new(args.s3.source(&url, whole, (&include, &exclude), &args.reads, user_agent("follow"))?);
    let scope =
        Scope { bucket: url.bucket.clone(), prefix: url.prefix.clone(), filter: KeyFilter::new(&include, &exclude)? };
    let stats = Arc::new(FollowStats::new());
    let stop = super::signals::stop_on_signals().context("installing the signal handlers")?;
    if let Some(address) = args.metrics_address {
        let (bound, server) = exrscan::follow::http::serve(address, Arc::clone(&stats), stop.clone().cancelled_owned())
            .await
            .with_context(|| format!("serving metrics on {address}"))?;
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::warn!(%error, "the metrics server stopped");
            }
        });
        tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
    }
    let sink = args.sink.open().await?;
    let mut writer = Writer::new(sink, args.sink.retry());
    let consumer = args.kafka()?.consumer(&args.topic, Arc::clone(&stats))?;
    let options = FollowOptions {
        batch_objects: args.batch_objects.max(1),
        batch_wait: Duration::from_millis(args.batch_ms),
        scan: ScanOptions {
            concurrency: args.concurrency,
            embeddings: args.embeddings,
            scan: ScanInfo { name: args.scan_name.clone(), uid: args.scan_uid.clone() },
            ..ScanOptions::default()
        },
        max_retry_wait: Duration::from_secs(10),
        stats_every: Duration::from_secs(args.stats_seconds.max(1)),
    };
    tracing::info!(
        source = %url, sink = %args.sink.uri()?, brokers = %args.brokers, topics = ?args.topic, group = %args.group,
        "following S3 events"
    );
    let reporter = match &args.status_configmap {
        Some(name) => match StatusReport::from_env(name).await {
            Ok(report) => report.map(|r| r.start(Arc::clone(&stats), Duration::from_secs(args.status_seconds.max(1)))),
            Err(error) => {
                tracing::warn!(%error, configmap = %name, "no Kubernetes client: the follow status is not reported");
                None
            }
        },
        None => None,
    };
    let followed = Follower::new(&consumer, s3, &mut writer, scope, options, stats).run(&stop).await;
    if let Some(reporter) = reporter {
        reporter.finish().await;
    }
    followed?;
    tracing::info!("stopped");
    Ok(())
}
