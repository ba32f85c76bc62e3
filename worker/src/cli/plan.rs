//! `exrscan plan s3://bucket/prefix --shards N [--configmap NAME]`: lists the prefix once
//! and cuts it into balanced key ranges, one per shard.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use exrscan::plan::configmap::{self, PublishError};
use exrscan::plan::stored::DEFAULT_SHARDS_PER_CHUNK;
use exrscan::shard::Outcome;
use exrscan::source::s3::S3Url;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::log::{self, LogFormat};
use super::s3_args::{FilterArgs, HeaderReadArgs, S3Args, user_agent};

/// Cut an S3 prefix into balanced partitions for N shards.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The prefix is listed once (about one LIST request per 1000 keys); the keys the globs keep \
are cut into N contiguous key ranges of (nearly) equal counts, shard i scanning range i. \
The plan is printed as JSON, or published into ConfigMaps: chunk k (shards k×M to k×M+M-1, \
M = --shards-per-configmap) into the key `partitions-<k>.json` of ConfigMap NAME-<k>, then \
the header into the key `plan.json` of ConfigMap NAME. The ConfigMaps must exist; each \
value is checked against the ConfigMap size limit before anything is written.

Exit status: 0 when the plan was made; 2 for bad usage or configuration (bad URL or glob, \
no such bucket, missing ConfigMap, a chunk too large for a ConfigMap); 3 when S3 or the Kubernetes API stayed unreachable; 4 when S3 refused the \
credentials (denied, expired, clock skew): a new attempt reads them again.")]
pub struct Args {
    /// The prefix to plan: s3://bucket/prefix.
    #[arg(value_name = "S3_URL")]
    url: String,
    /// Number of shards.
    #[arg(long, env = "EXRSCAN_SHARDS", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    shards: u32,
    /// Publish the plan into ConfigMap NAME (header) and NAME-<k> (chunk k) instead of printing it.
    #[arg(long, value_name = "NAME")]
    configmap: Option<String>,
    /// Shards per chunk ConfigMap when publishing.
    #[arg(long, value_name = "M", default_value_t = DEFAULT_SHARDS_PER_CHUNK,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    shards_per_configmap: u32,
    /// Namespace of the ConfigMap (else POD_NAMESPACE, else the kubeconfig's).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    filter: FilterArgs,
    /// Log format.
    #[arg(long, env = "EXRSCAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(args.log_format, None);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let outcome = runtime.block_on(plan(args));
    if let Some(error) = outcome.error() {
        tracing::error!(outcome = outcome.name(), %error, "planning failed");
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

async fn plan(args: &Args) -> Outcome {
    let url = match S3Url::parse(&args.url) {
        Ok(url) => url,
        Err(e) => return Outcome::Config(e.to_string()),
    };
    let (include, exclude) = args.filter.patterns();
    let source =
        match args.s3.source(&url, Vec::new(), (&include, &exclude), &HeaderReadArgs::default(), user_agent("plan")) {
            Ok(source) => source,
            Err(e) => return Outcome::Config(e.to_string()),
        };
    let plan = match source.plan(args.shards).await {
        Ok(plan) => plan,
        Err(e) => return Outcome::of_source(&e),
    };
    let stats = source.stats();
    tracing::info!(
        listed = plan.outline.listed,
        objects = plan.outline.objects,
        shards = plan.outline.shards,
        list_requests = stats.list_requests,
        "plan made"
    );
    match &args.configmap {
        Some(name) => {
            let api = match config_maps(args.namespace.as_deref()).await {
                Ok(api) => api,
                Err(e) => return kube_outcome(&e, format!("no Kubernetes client: {e}")),
            };
            match configmap::publish(&api, &plan, name, args.shards_per_configmap).await {
                Ok(()) => {
                    tracing::info!(configmap = %name, shards_per_configmap = args.shards_per_configmap, "plan written");
                    Outcome::Done
                }
                Err(e @ PublishError::Plan(_)) => Outcome::Config(e.to_string()),
                Err(PublishError::Write { name, source }) => {
                    kube_outcome(&source, format!("writing ConfigMap {name}: {source}"))
                }
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", plan.to_json()) {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Unavailable(format!("writing the plan: {e}")),
            }
        }
    }
}

/// The ConfigMaps of `namespace`, else of `POD_NAMESPACE`, else of the client's default namespace.
async fn config_maps(namespace: Option<&str>) -> Result<Api<ConfigMap>, kube::Error> {
    let client = kube::Client::try_default().await?;
    let namespace = namespace
        .map(str::to_owned)
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok(Api::namespaced(client, &namespace))
}

/// Exit 2 for what retrying cannot mend (a missing ConfigMap, refused access, no client
/// configuration), else 3.
fn kube_outcome(error: &kube::Error, message: String) -> Outcome {
    match error {
        kube::Error::Api(status) if matches!(status.code, 400 | 401 | 403 | 404 | 413 | 422) => {
            Outcome::Config(message)
        }
        kube::Error::InferConfig(_) | kube::Error::InferKubeconfig(_) => Outcome::Config(message),
        _ => Outcome::Unavailable(message),
    }
}
