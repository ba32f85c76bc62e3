//! Sink URIs: `duckdb:///path/catalog.duckdb`, `flight+grpc://host:port?…`,
//! `flight+grpc+tls://host:port?…`, `vast://host[:port]?bucket=…`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::SinkError;
use super::flight::FlightOptions;
use super::vast::VastOptions;

/// A parsed sink URI.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkUri {
    /// An embedded DuckDB database file (created if missing).
    Duckdb(PathBuf),
    /// An Arrow Flight SQL server.
    Flight(FlightOptions),
    /// VAST DataBase's tabular API.
    Vast(VastOptions),
}

impl FromStr for SinkUri {
    type Err = SinkError;

    fn from_str(uri: &str) -> Result<Self, SinkError> {
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
            SinkError::Config(format!("`{uri}` is not a sink URI (duckdb:///path or flight+grpc://host:port)"))
        })?;
        match scheme {
            "duckdb" => {
                let path = percent_decode(rest)?;
                if path.is_empty() || path.contains('?') {
                    return Err(SinkError::Config(format!("`{uri}`: expected duckdb:///path/to/catalog.duckdb")));
                }
                Ok(SinkUri::Duckdb(PathBuf::from(path)))
            }
            "flight+grpc" | "flight+grpc+tls" => {
                let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
                let authority = authority.trim_end_matches('/');
                if authority.is_empty() || authority.contains('/') {
                    return Err(SinkError::Config(format!("`{uri}`: expected {scheme}://host:port[?options]")));
                }
                if authority.contains('@') {
                    return Err(SinkError::Config(
                        "credentials do not belong in the sink URI; use --flight-username/--flight-password-file or --flight-token-file (or their EXRSCAN_FLIGHT_* variables)".into(),
                    ));
                }
                FlightOptions::from_uri_parts(scheme == "flight+grpc+tls", authority, &query_pairs(query)?)
                    .map(SinkUri::Flight)
            }
            "vast" => {
                let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
                VastOptions::from_uri_parts(authority.trim_end_matches('/'), &query_pairs(query)?).map(SinkUri::Vast)
            }
            other => Err(SinkError::Config(format!(
                "unknown sink scheme `{other}`: use duckdb:///path, flight+grpc://host:port, flight+grpc+tls://host:port or vast://host:port?bucket=NAME"
            ))),
        }
    }
}

impl fmt::Display for SinkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkUri::Duckdb(path) => write!(f, "duckdb://{}", path.display()),
            SinkUri::Flight(options) => {
                write!(f, "flight+grpc{}://{}", if options.tls { "+tls" } else { "" }, options.authority)
            }
            SinkUri::Vast(options) => {
                write!(f, "vast://{}?bucket={}&schema={}", options.authority, options.bucket, options.schema)
            }
        }
    }
}

/// The decoded `key=value` pairs of a URI's query.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, SinkError> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(pairs)
}

/// Decodes `%XX` escapes.
fn percent_decode(text: &str) -> Result<String, SinkError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| SinkError::Config(format!("bad %-escape in `{text}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SinkError::Config(format!("`{text}` is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_paths() {
        assert_eq!("duckdb:///tmp/x.duckdb".parse::<SinkUri>().ok(), Some(SinkUri::Duckdb("/tmp/x.duckdb".into())));
        assert_eq!("duckdb://rel/x%20y.duckdb".parse::<SinkUri>().ok(), Some(SinkUri::Duckdb("rel/x y.duckdb".into())));
        assert!("duckdb://".parse::<SinkUri>().is_err());
    }

    #[test]
    fn refuses_unknown_schemes_and_credentials() {
        assert!(matches!("postgres://h/db".parse::<SinkUri>(), Err(SinkError::Config(_))));
        assert!(matches!("catalog.duckdb".parse::<SinkUri>(), Err(SinkError::Config(_))));
        assert!(matches!("flight+grpc://u:p@h:1".parse::<SinkUri>(), Err(SinkError::Config(_))));
        assert!(matches!("flight+grpc://h:1?bogus=1".parse::<SinkUri>(), Err(SinkError::Config(_))));
    }

    #[test]
    fn vast_options() {
        let Ok(SinkUri::Vast(o)) =
            "vast://127.0.0.1:9000/?bucket=db&schema=exrscan%2Fprod&tls=false".parse::<SinkUri>()
        else {
            panic!("vast URI did not parse");
        };
        assert_eq!(o.endpoint(), "http://127.0.0.1:9000");
        assert_eq!(o.schema, "exrscan/prod");
        assert!(matches!("vast://h:1".parse::<SinkUri>(), Err(SinkError::Config(_))), "no bucket");
        assert!(matches!("vast://ak:sk@h:1?bucket=b".parse::<SinkUri>(), Err(SinkError::Config(_))));
    }

    #[test]
    fn flight_options() {
        let Ok(SinkUri::Flight(o)) =
            "flight+grpc+tls://vast.example:443/?schema=vfx&table_prefix=exr_&vectors=blob".parse::<SinkUri>()
        else {
            panic!("flight URI did not parse");
        };
        assert_eq!(o.endpoint(), "https://vast.example:443");
        assert_eq!(o.table_name(crate::catalog::Table::Files), "\"vfx\".\"exr_files\"");
    }
}
