//! `vast://host[:port]?bucket=…&schema=…` options and the sink's credentials.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::catalog::Table;
use crate::sink::SinkError;

/// Where the catalog lives on a VAST cluster and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct VastOptions {
    /// `host[:port]` of a VIP (or load balancer) serving the tabular API.
    pub authority: String,
    /// HTTPS (the default) or plain HTTP (`tls=false`, e.g. the loopback twin).
    pub tls: bool,
    /// PEM file of the CA of the server's certificate (else the system's trust store).
    pub ca: Option<PathBuf>,
    /// The database bucket holding the schema.
    pub bucket: String,
    /// The schema path, nested with `/` (`exrscan`, `exrscan/prod`).
    pub schema: String,
    /// Prefix of the four table names.
    pub table_prefix: String,
    /// Deadline of one sink operation (a batch's check or write, a connect).
    pub timeout: Duration,
}

impl VastOptions {
    /// Options from the URI's authority and decoded query pairs.
    pub fn from_uri_parts(authority: &str, pairs: &[(String, String)]) -> Result<Self, SinkError> {
        let mut options = Self {
            authority: authority.to_string(),
            tls: true,
            ca: None,
            bucket: String::new(),
            schema: "exrscan".into(),
            table_prefix: String::new(),
            timeout: Duration::from_secs(60),
        };
        for (key, value) in pairs {
            options.set(key, value)?;
        }
        options.check()?;
        Ok(options)
    }

    /// Sets one option by its URI name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SinkError> {
        let bad = |what: &str| SinkError::Config(format!("vast:// option {key}={value}: {what}"));
        match key {
            "bucket" => self.bucket = value.to_string(),
            "schema" => self.schema = value.trim_matches('/').to_string(),
            "table_prefix" => self.table_prefix = value.to_string(),
            "tls" => {
                self.tls = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("expected true or false")),
                }
            }
            "ca" => self.ca = Some(PathBuf::from(value)),
            "timeout_s" => {
                let seconds: f64 = value.parse().map_err(|_| bad("expected seconds"))?;
                self.timeout = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|t| !t.is_zero())
                    .ok_or_else(|| bad("expected a positive number of seconds"))?;
            }
            _ => {
                return Err(SinkError::Config(format!(
                    "unknown vast:// option `{key}` (bucket, schema, table_prefix, tls, ca, timeout_s)"
                )));
            }
        }
        Ok(())
    }

    /// Checks the options together.
    pub fn check(&self) -> Result<(), SinkError> {
        if self.authority.is_empty() || self.authority.contains(['/', '@']) {
            return Err(SinkError::Config(format!(
                "vast://{}: expected vast://host[:port]?bucket=NAME (credentials come from EXRSCAN_VAST_* or --vast-*-file)",
                self.authority
            )));
        }
        if self.bucket.is_empty() {
            return Err(SinkError::Config("vast:// needs bucket=NAME (the database bucket)".into()));
        }
        let plain =
            |name: &str| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain(&self.bucket) || !self.schema.split('/').all(plain) {
            return Err(SinkError::Config(format!(
                "vast:// bucket `{}` and schema `{}` must be made of letters, digits, `-`, `_` and `.` (schema levels joined by `/`)",
                self.bucket, self.schema
            )));
        }
        if !(self.table_prefix.is_empty() || plain(&self.table_prefix)) {
            return Err(SinkError::Config(format!(
                "vast:// table_prefix `{}`: letters, digits, -_. only",
                self.table_prefix
            )));
        }
        if !self.tls && self.ca.is_some() {
            return Err(SinkError::Config("vast:// ca= needs tls=true".into()));
        }
        Ok(())
    }

    /// `http[s]://host[:port]`.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.authority)
    }

    /// The table's name in the schema, with the prefix.
    pub fn table_name(&self, table: Table) -> String {
        self.prefixed(table.name())
    }

    /// `name` with the table prefix.
    pub fn prefixed(&self, name: &str) -> String {
        format!("{}{name}", self.table_prefix)
    }

    /// The URL path of `name` in the schema: `/<bucket>/<schema>/<name>`.
    pub fn table_path(&self, name: &str) -> String {
        format!("/{}/{}/{name}", self.bucket, self.schema)
    }
}

/// The S3-style key pair VAST signs requests with (SigV4).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Both keys are needed.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(SinkError::Config(
                "a vast:// sink needs EXRSCAN_VAST_ACCESS_KEY_ID and EXRSCAN_VAST_SECRET_ACCESS_KEY (or --vast-access-key-id-file and --vast-secret-access-key-file)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        text.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn parses_and_checks() -> Result<(), SinkError> {
        let o =
            VastOptions::from_uri_parts("vip.example:443", &pairs("bucket=db&schema=/exrscan/prod/&timeout_s=2.5"))?;
        assert_eq!(o.endpoint(), "https://vip.example:443");
        assert_eq!(o.schema, "exrscan/prod");
        assert_eq!(o.table_path(&o.table_name(Table::Files)), "/db/exrscan/prod/files");
        assert_eq!(o.timeout, Duration::from_millis(2500));
        let plain = VastOptions::from_uri_parts("127.0.0.1:9000", &pairs("bucket=db&tls=false&table_prefix=exr_"))?;
        assert_eq!(plain.endpoint(), "http://127.0.0.1:9000");
        assert_eq!(plain.table_name(Table::Parts), "exr_parts");
        for bad in ["schema=x", "bucket=db&tls=maybe", "bucket=db&bogus=1", "bucket=d b", "bucket=db&schema=a//b"] {
            assert!(VastOptions::from_uri_parts("h:1", &pairs(bad)).is_err(), "{bad}");
        }
        assert!(VastOptions::from_uri_parts("key:secret@h:1", &pairs("bucket=db")).is_err());
        Ok(())
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Credentials { access_key_id: "AKID".into(), secret_access_key: "s3cr3t".into() };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t"), "{shown}");
        assert!(Credentials::default().validate().is_err());
    }
}
