//! Command-line options of the commands that read S3: the endpoint and credentials, the
//! include/exclude globs, and the header read size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use exrscan::plan::Partition;
use exrscan::retry::RetryPolicy;
use exrscan::source::filter::{GlobError, KeyFilter, split_patterns};
use exrscan::source::s3::{
    DEFAULT_HEADER_BYTES, DEFAULT_RETRY, Retrier, S3ConfigError, S3Options, S3Source, S3Stats, S3Url,
};
use exrscan::source::{DEFAULT_HEADER_BUDGET, HeaderBudget};

/// How to reach the bucket.
#[derive(Debug, clap::Args)]
pub struct S3Args {
    /// S3 endpoint URL (https://s3.example.com, http://127.0.0.1:9000); AWS when unset.
    #[arg(long = "s3-endpoint", env = "EXRSCAN_S3_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Region used for signing (else AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long = "s3-region", env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Path-style requests (endpoint/bucket/key), as MinIO and many on-premises stores want.
    #[arg(long = "s3-force-path-style", env = "EXRSCAN_S3_FORCE_PATH_STYLE", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_name = "BOOL",
          overrides_with = "no_force_path_style")]
    pub force_path_style: bool,
    /// Virtual-host-style requests (bucket.endpoint/key), the default.
    #[arg(long = "no-s3-force-path-style", overrides_with = "force_path_style")]
    pub no_force_path_style: bool,
    /// PEM file of extra CA certificates to trust (a private endpoint's CA).
    #[arg(long = "s3-ca", env = "EXRSCAN_S3_CA", value_name = "PATH")]
    pub ca: Option<PathBuf>,
    /// Directory of a mounted Secret with files access_key_id, secret_access_key and
    /// optionally session_token, read again when they change (else AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, web identity, container or instance
    /// credentials).
    #[arg(long = "s3-credentials-dir", env = "EXRSCAN_S3_CREDENTIALS_DIR", value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// Give up on S3 after this many seconds of retrying one request (503 SlowDown, 5xx,
    /// connection errors).
    #[arg(long = "s3-retry-seconds", env = "EXRSCAN_S3_RETRY_SECONDS", default_value_t = 120, value_name = "SECONDS")]
    pub retry_seconds: u64,
    /// Timeout of one S3 request.
    #[arg(
        long = "s3-timeout-seconds",
        env = "EXRSCAN_S3_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub timeout_seconds: u64,
}

/// Which keys are scanned.
#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Comma-separated globs of the files to scan: keys below the S3 prefix, or paths below
    /// the directory (default `*.exr`, any depth; case-insensitive; `*` stays within a path
    /// segment, `**` crosses them).
    #[arg(long, env = "EXRSCAN_INCLUDE", value_name = "GLOBS")]
    pub include: Option<String>,
    /// Comma-separated globs of the files to leave out (as --include).
    #[arg(long, env = "EXRSCAN_EXCLUDE", value_name = "GLOBS")]
    pub exclude: Option<String>,
}

impl FilterArgs {
    /// The include and exclude patterns.
    pub fn patterns(&self) -> (Vec<String>, Vec<String>) {
        let split = |v: &Option<String>| v.as_deref().map(split_patterns).unwrap_or_default();
        (split(&self.include), split(&self.exclude))
    }

    /// The filter the patterns make.
    pub fn filter(&self) -> Result<KeyFilter, GlobError> {
        let (include, exclude) = self.patterns();
        KeyFilter::new(&include, &exclude)
    }
}

/// Why an S3 source could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] S3ConfigError),
    #[error(transparent)]
    Glob(#[from] GlobError),
}

impl S3Args {
    /// The client options; `user_agent` names the caller in the server's logs.
    pub fn options(&self, user_agent: String) -> S3Options {
        S3Options {
            endpoint: self.endpoint.clone().filter(|e| !e.is_empty()),
            region: self.region.clone().filter(|r| !r.is_empty()),
            force_path_style: self.force_path_style && !self.no_force_path_style,
            ca_file: self.ca.clone(),
            credentials_dir: self.credentials_dir.clone(),
            user_agent: Some(user_agent),
            request_timeout: Some(Duration::from_secs(self.timeout_seconds.max(1))),
        }
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy { max_elapsed: Duration::from_secs(self.retry_seconds), ..DEFAULT_RETRY }
    }

    /// A source over `partitions` of `url`, keeping keys that `include`/`exclude` select,
    /// reading headers as `reads` says.
    pub fn source(
        &self,
        url: &S3Url,
        partitions: Vec<Partition>,
        (include, exclude): (&[String], &[String]),
        reads: &HeaderReadArgs,
        user_agent: String,
    ) -> Result<S3Source, SetupError> {
        let filter = KeyFilter::new(include, exclude)?;
        let store = Arc::new(self.options(user_agent).build(&url.bucket)?);
        let retrier = Retrier::new(self.retry(), Arc::new(S3Stats::default()));
        let budget = HeaderBudget::new(reads.header_budget);
        Ok(S3Source::new(store, url, partitions, filter, reads.header_bytes, retrier, budget))
    }
}

/// How headers are read from S3.
#[derive(Debug, clap::Args)]
pub struct HeaderReadArgs {
    /// Bytes asked for by the first ranged GET of an object (more only if its header is longer).
    #[arg(long, env = "EXRSCAN_HEADER_BYTES", default_value_t = DEFAULT_HEADER_BYTES, value_name = "BYTES")]
    pub header_bytes: usize,
    /// S3 sources: header bytes held in memory at once over all concurrent reads (a header
    /// longer than this is read alone).
    #[arg(long, env = "EXRSCAN_HEADER_BUDGET", default_value_t = DEFAULT_HEADER_BUDGET, value_name = "BYTES")]
    pub header_budget: usize,
}

impl Default for HeaderReadArgs {
    /// The defaults (for the planner, which reads no header).
    fn default() -> Self {
        Self { header_bytes: DEFAULT_HEADER_BYTES, header_budget: DEFAULT_HEADER_BUDGET }
    }
}

/// `exrscan/VERSION` plus what this process is.
pub fn user_agent(role: &str) -> String {
    format!("exrscan/{} ({role})", env!("CARGO_PKG_VERSION"))
}
