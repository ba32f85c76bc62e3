//! How to reach a bucket: `s3://bucket/prefix` URLs, endpoint, region, addressing style,
//! credentials (environment or mounted files), a custom CA, and the `object_store` client
//! built from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{Certificate, ClientConfigKey, ClientOptions, RetryConfig};

use super::credentials::{CredentialsError, SecretDirCredentials};

/// Why an S3 source cannot be set up. Retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    /// The URL is not `s3://bucket[/prefix]`.
    #[error("`{0}` is not an s3://bucket/prefix URL")]
    Url(String),
    /// The prefix starts with `/`: its keys cannot be requested as they are.
    #[error("`{0}`: the prefix starts with `/`; the S3 client cannot request keys starting with `/`")]
    SlashPrefix(String),
    /// A file named by an option could not be read.
    #[error("reading {path}: {reason}")]
    File { path: String, reason: String },
    /// The mounted credentials are unreadable or incomplete.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// `object_store` refused the settings.
    #[error("S3 client: {0}")]
    Client(String),
}

/// A bucket and a key prefix: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix (may be empty); listed as is, so `renders/` lists under that folder
    /// and `renders/shot01` also matches `renders/shot010/…`.
    pub prefix: String,
}

impl S3Url {
    /// Parses `s3://bucket[/prefix]`. A prefix starting with `/` (`s3://bucket//x`) is
    /// refused: the S3 client cannot request keys starting with `/`.
    pub fn parse(url: &str) -> Result<Self, S3ConfigError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| S3ConfigError::Url(url.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = !bucket.is_empty()
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid_bucket {
            return Err(S3ConfigError::Url(url.to_string()));
        }
        if prefix.starts_with('/') {
            return Err(S3ConfigError::SlashPrefix(url.to_string()));
        }
        Ok(Self { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Settings of the S3 client.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL (`https://s3.example.com`, `http://127.0.0.1:9000`); AWS when `None`.
    pub endpoint: Option<String>,
    /// Region (signing); `us-east-1` when neither given nor in `AWS_REGION`.
    pub region: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub force_path_style: bool,
    /// PEM bundle of extra trusted CAs (a private endpoint's certificate).
    pub ca_file: Option<PathBuf>,
    /// A mounted Secret directory of credentials, re-read when its files change
    /// ([`SecretDirCredentials`]); otherwise `AWS_*` variables, web identity (IRSA),
    /// container or instance credentials, as `object_store` finds them.
    pub credentials_dir: Option<PathBuf>,
    /// `User-Agent` of every request (shows the shard in server logs).
    pub user_agent: Option<String>,
    /// Timeout of one request.
    pub request_timeout: Option<Duration>,
}

/// Inserts `bucket.` before the host of `endpoint` (virtual-hosted-style addressing).
fn virtual_hosted(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
        None => format!("{bucket}.{endpoint}"),
    }
}

impl S3Options {
    /// The `object_store` client for `bucket`. `object_store`'s own retries are off: the
    /// source retries with its own bounded backoff and counts what it does.
    pub fn build(&self, bucket: &str) -> Result<AmazonS3, S3ConfigError> {
        // The HTTP client's TLS uses the process's rustls provider: ring, unless the program
        // installed one already (a no-op then).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(self.request_timeout.unwrap_or(Duration::from_secs(30)))
            .with_pool_max_idle_per_host(256);
        if let Some(agent) = &self.user_agent {
            client = client.with_config(ClientConfigKey::UserAgent, agent.clone());
        }
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| S3ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?;
            let certificates = Certificate::from_pem_bundle(&pem)
                .map_err(|e| S3ConfigError::File { path: path.display().to_string(), reason: e.to_string() })?;
            if certificates.is_empty() {
                return Err(S3ConfigError::File { path: path.display().to_string(), reason: "no certificate".into() });
            }
            for certificate in certificates {
                client = client.with_root_certificate(certificate);
            }
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig { max_retries: 0, ..RetryConfig::default() });
        if let Some(endpoint) = &self.endpoint {
            let endpoint = endpoint.trim_end_matches('/');
            client = client.with_allow_http(endpoint.starts_with("http://"));
            builder = if self.force_path_style {
                builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false)
            } else {
                builder.with_endpoint(virtual_hosted(endpoint, bucket)).with_virtual_hosted_style_request(true)
            };
        } else {
            builder = builder.with_virtual_hosted_style_request(!self.force_path_style);
        }
        let region = self
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_string());
        builder = builder.with_region(region);
        if let Some(dir) = &self.credentials_dir {
            builder = builder.with_credentials(Arc::new(SecretDirCredentials::open(dir)?));
        }
        builder.with_client_options(client).build().map_err(|e| S3ConfigError::Client(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        let url = S3Url::parse("s3://renders/show/seq/").expect("valid");
        assert_eq!((url.bucket.as_str(), url.prefix.as_str()), ("renders", "show/seq/"));
        assert_eq!(S3Url::parse("s3://b").expect("valid").prefix, "");
        assert_eq!(url.to_string(), "s3://renders/show/seq/");
        for bad in ["renders/x", "s3:///x", "s3://Bad_Bucket/x", "file:///x", "s3://b//keys-with-a-leading-slash"] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn virtual_hosted_style_puts_the_bucket_in_the_host() {
        assert_eq!(virtual_hosted("https://s3.example.com", "b"), "https://b.s3.example.com");
    }
}
