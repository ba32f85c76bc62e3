//! Options of the Flight SQL sink (from the URI's query) and its credentials (from flags,
//! environment or files; never from the URI).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::catalog::Table;
use crate::sink::SinkError;
use crate::sink::canonical::SqlNames;

/// An option that the sink may decide from the server's SqlInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice<T> {
    /// Decide from the server's SqlInfo (and the ingest path).
    #[default]
    Auto,
    /// Use this.
    Set(T),
}

/// How rows reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestPath {
    /// `CommandStatementIngest` with Arrow batches (needs SqlInfo `FLIGHT_SQL_SERVER_BULK_INGESTION`).
    Bulk,
    /// `INSERT` prepared statements with parameter batches.
    Prepared,
}

/// How vector columns are sent and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorEncoding {
    /// Arrow `FixedSizeList<Float32>` (needs bulk ingest).
    List,
    /// Little-endian `f32` bytes in a binary column (4 × dims bytes).
    Blob,
}

/// How boolean and timestamp columns are sent and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarEncoding {
    /// Arrow `Boolean` / `Timestamp(µs, UTC)`.
    Native,
    /// Integers: 0/1 (`Int8`) and microseconds since the Unix epoch (`Int64`).
    Integer,
}

/// Everything about a Flight SQL sink except its credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct FlightOptions {
    /// `host:port`.
    pub authority: String,
    /// TLS (`flight+grpc+tls`).
    pub tls: bool,
    /// PEM file of the CA that signed the server's certificate (instead of the system roots).
    pub ca_file: Option<PathBuf>,
    /// Server name to verify in its certificate, when it differs from the host.
    pub tls_domain: Option<String>,
    /// Schema holding the tables (`schema=`); none: the server's default.
    pub schema: Option<String>,
    /// Prefix of the table names (`table_prefix=`), e.g. `exr_` → `exr_files`.
    pub table_prefix: String,
    /// Create the schema and tables when missing (`create=true|false`).
    pub create: bool,
    /// `ingest=auto|bulk|prepared`.
    pub ingest: Choice<IngestPath>,
    /// `transactions=auto|on|off`.
    pub transactions: Choice<bool>,
    /// `vectors=auto|list|blob`.
    pub vectors: Choice<VectorEncoding>,
    /// `scalars=auto|native|integer` (booleans and timestamps).
    pub scalars: Choice<ScalarEncoding>,
    /// Deadline of one sink operation (`timeout_s=`): connecting, an existence check, a
    /// batch write. Past it the operation counts as failed transiently and is retried on a
    /// new connection.
    pub timeout: Duration,
    /// Largest Flight message the sink sends (`max_message_bytes=`): the rows of a table are
    /// sent as record batches of at most this many bytes each, and a file with a row that
    /// cannot fit is not written (it is reported as failed). Below the server's receive
    /// limit (gRPC's default is 4 MiB).
    pub max_message_bytes: usize,
}

/// Default of [`FlightOptions::max_message_bytes`]: 3 MiB, a margin below gRPC's default
/// receive limit of 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 3 * 1024 * 1024;

/// Smallest accepted [`FlightOptions::max_message_bytes`].
const MIN_MESSAGE_BYTES: usize = 256 * 1024;

fn choice<T>(key: &str, value: &str, options: &[(&str, T)]) -> Result<Choice<T>, SinkError>
where
    T: Copy,
{
    if value == "auto" {
        return Ok(Choice::Auto);
    }
    options.iter().find(|(name, _)| *name == value).map(|(_, v)| Choice::Set(*v)).ok_or_else(|| {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        SinkError::Config(format!("{key}={value}: expected auto or one of {}", names.join(", ")))
    })
}

fn identifier(key: &str, value: &str) -> Result<String, SinkError> {
    if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(value.to_string())
    } else {
        Err(SinkError::Config(format!("{key}={value}: only letters, digits and _ are allowed")))
    }
}

impl FlightOptions {
    /// Options from the URI's parts: TLS scheme, `host:port` and the query's pairs.
    pub(crate) fn from_uri_parts(tls: bool, authority: &str, query: &[(String, String)]) -> Result<Self, SinkError> {
        let mut o = FlightOptions {
            authority: authority.to_string(),
            tls,
            ca_file: None,
            tls_domain: None,
            schema: None,
            table_prefix: String::new(),
            create: true,
            ingest: Choice::Auto,
            transactions: Choice::Auto,
            vectors: Choice::Auto,
            scalars: Choice::Auto,
            timeout: Duration::from_secs(30),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        };
        for (key, value) in query {
            o.set(key, value)?;
        }
        o.check()?;
        Ok(o)
    }

    /// Sets one option by its URI query name (`schema`, `table_prefix`, `ca`, …), e.g. from
    /// a flag or an environment variable that overrides the URI.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SinkError> {
        let o = self;
        match key {
            "ca" => o.ca_file = Some(PathBuf::from(value)),
            "domain" => o.tls_domain = Some(value.to_string()),
            "schema" => o.schema = Some(identifier(key, value)?),
            "table_prefix" => o.table_prefix = identifier(key, value)?,
            "create" => {
                o.create = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(SinkError::Config(format!("create={value}: expected true or false"))),
                }
            }
            "ingest" => {
                o.ingest = choice(key, value, &[("bulk", IngestPath::Bulk), ("prepared", IngestPath::Prepared)])?
            }
            "transactions" => o.transactions = choice(key, value, &[("on", true), ("off", false)])?,
            "vectors" => {
                o.vectors = choice(key, value, &[("list", VectorEncoding::List), ("blob", VectorEncoding::Blob)])?
            }
            "scalars" => {
                o.scalars =
                    choice(key, value, &[("native", ScalarEncoding::Native), ("integer", ScalarEncoding::Integer)])?
            }
            "timeout_s" => {
                o.timeout = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| {
                        SinkError::Config(format!("timeout_s={value}: expected a positive number of seconds"))
                    })?;
            }
            "max_message_bytes" => {
                o.max_message_bytes = value
                    .parse()
                    .ok()
                    .filter(|b| (MIN_MESSAGE_BYTES..=super::MAX_MESSAGE_BYTES).contains(b))
                    .ok_or_else(|| {
                        SinkError::Config(format!(
                            "max_message_bytes={value}: expected bytes from {MIN_MESSAGE_BYTES} to {}",
                            super::MAX_MESSAGE_BYTES
                        ))
                    })?;
            }
            other => {
                return Err(SinkError::Config(format!(
                    "unknown Flight SQL option `{other}` (known: ca, domain, schema, table_prefix, create, ingest, transactions, vectors, scalars, timeout_s, max_message_bytes)"
                )));
            }
        }
        Ok(())
    }

    /// Checks options that depend on each other.
    pub fn check(&self) -> Result<(), SinkError> {
        if !self.tls && (self.ca_file.is_some() || self.tls_domain.is_some()) {
            return Err(SinkError::Config("ca and domain need flight+grpc+tls://".into()));
        }
        Ok(())
    }

    /// The gRPC endpoint: `http://host:port` or `https://host:port`.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.authority)
    }

    /// A table's name for SQL text: quoted, qualified by the schema if any.
    pub fn table_name(&self, table: Table) -> String {
        self.names().table(table)
    }

    /// How the sink's tables and views are named in SQL.
    pub fn names(&self) -> SqlNames {
        SqlNames { schema: self.schema.clone(), prefix: self.table_prefix.clone() }
    }
}

/// Credentials for the Flight SQL server: a user name and password exchanged for a bearer
/// token in the Flight handshake, or a bearer token. Never printed.
#[derive(Clone, Default, PartialEq)]
pub struct Credentials {
    /// User name for the basic-auth handshake.
    pub username: Option<String>,
    /// Password for the basic-auth handshake.
    pub password: Option<String>,
    /// A bearer token issued out of band.
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// Checks that the credentials form one usable method.
    pub(crate) fn validate(&self) -> Result<(), SinkError> {
        match (&self.username, &self.password, &self.token) {
            (Some(_), Some(_), None) | (None, None, _) => Ok(()),
            (Some(_), None, _) => Err(SinkError::Config("a Flight SQL user name needs a password".into())),
            (None, Some(_), _) => Err(SinkError::Config("a Flight SQL password needs a user name".into())),
            (Some(_), Some(_), Some(_)) => {
                Err(SinkError::Config("give either a user name and password or a bearer token, not both".into()))
            }
        }
    }
}
