//! Command-line options shared by the commands that open a catalog sink.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use exrscan::sink::{AnySink, Credentials, RetryPolicy, SinkUri, flight, vast};

/// Where the catalog is and how to reach it.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Catalog sink: duckdb:///path/catalog.duckdb, flight+grpc://host:port or
    /// flight+grpc+tls://host:port, with Flight SQL options as query parameters
    /// (schema, table_prefix, ca, domain, create, ingest, transactions, vectors, scalars,
    /// timeout_s, max_message_bytes), or vast://host[:port]?bucket=NAME (schema, table_prefix,
    /// tls, ca, timeout_s); see docs/sinks.md.
    #[arg(long, env = "EXRSCAN_SINK", value_name = "URI")]
    pub sink: String,
    /// Flight SQL user name for the basic-auth handshake (password from
    /// EXRSCAN_FLIGHT_PASSWORD or --flight-password-file).
    #[arg(long, env = "EXRSCAN_FLIGHT_USERNAME", value_name = "NAME")]
    pub flight_username: Option<String>,
    /// File holding the Flight SQL password.
    #[arg(long, env = "EXRSCAN_FLIGHT_PASSWORD_FILE", value_name = "PATH")]
    pub flight_password_file: Option<PathBuf>,
    /// File holding a Flight SQL bearer token (or set EXRSCAN_FLIGHT_TOKEN).
    #[arg(long, env = "EXRSCAN_FLIGHT_TOKEN_FILE", value_name = "PATH")]
    pub flight_token_file: Option<PathBuf>,
    /// Flight SQL: PEM file of the CA of the server's certificate (overrides `ca=`).
    #[arg(long, env = "EXRSCAN_FLIGHT_CA", value_name = "PATH")]
    pub flight_ca: Option<PathBuf>,
    /// Flight SQL: schema of the tables (overrides `schema=`).
    #[arg(long, env = "EXRSCAN_FLIGHT_SCHEMA", value_name = "NAME")]
    pub flight_schema: Option<String>,
    /// Flight SQL: prefix of the table names (overrides `table_prefix=`).
    #[arg(long, env = "EXRSCAN_FLIGHT_TABLE_PREFIX", value_name = "PREFIX")]
    pub flight_table_prefix: Option<String>,
    /// VAST: file holding the access key id (or set EXRSCAN_VAST_ACCESS_KEY_ID).
    #[arg(long, env = "EXRSCAN_VAST_ACCESS_KEY_ID_FILE", value_name = "PATH")]
    pub vast_access_key_id_file: Option<PathBuf>,
    /// VAST: file holding the secret access key (or set EXRSCAN_VAST_SECRET_ACCESS_KEY).
    #[arg(long, env = "EXRSCAN_VAST_SECRET_ACCESS_KEY_FILE", value_name = "PATH")]
    pub vast_secret_access_key_file: Option<PathBuf>,
    /// Give up on an unavailable sink after this many seconds of retries.
    #[arg(long, env = "EXRSCAN_SINK_RETRY_SECONDS", default_value_t = 120, value_name = "SECONDS")]
    pub sink_retry_seconds: u64,
}

fn secret(file: Option<&PathBuf>, env: &str) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    Ok(std::env::var(env).ok().filter(|v| !v.is_empty()))
}

impl SinkArgs {
    /// The parsed URI, with the Flight SQL overrides applied.
    pub fn uri(&self) -> anyhow::Result<SinkUri> {
        let mut uri: SinkUri = self.sink.parse()?;
        if let SinkUri::Flight(options) = &mut uri {
            if let Some(ca) = &self.flight_ca {
                options.set("ca", &ca.to_string_lossy())?;
            }
            if let Some(schema) = &self.flight_schema {
                options.set("schema", schema)?;
            }
            if let Some(prefix) = &self.flight_table_prefix {
                options.set("table_prefix", prefix)?;
            }
            options.check()?;
        }
        Ok(uri)
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy { max_elapsed: Duration::from_secs(self.sink_retry_seconds), ..RetryPolicy::default() }
    }

    /// Sink credentials from the flags, files and environment.
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        Ok(Credentials {
            flight: flight::Credentials {
                username: self.flight_username.clone(),
                password: secret(self.flight_password_file.as_ref(), "EXRSCAN_FLIGHT_PASSWORD")?,
                token: secret(self.flight_token_file.as_ref(), "EXRSCAN_FLIGHT_TOKEN")?,
            },
            vast: vast::Credentials {
                access_key_id: secret(self.vast_access_key_id_file.as_ref(), "EXRSCAN_VAST_ACCESS_KEY_ID")?
                    .unwrap_or_default(),
                secret_access_key: secret(self.vast_secret_access_key_file.as_ref(), "EXRSCAN_VAST_SECRET_ACCESS_KEY")?
                    .unwrap_or_default(),
            },
        })
    }

    /// Opens the sink.
    pub async fn open(&self) -> anyhow::Result<AnySink> {
        let uri = self.uri()?;
        let sink = AnySink::open(&uri, &self.credentials()?, &self.retry())
            .await
            .with_context(|| format!("opening the sink {uri}"))?;
        Ok(sink)
    }
}
