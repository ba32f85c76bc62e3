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

    /// Parses a sink URI. Errors show the URI with any user information masked
    /// ([`redacted`]): a URI is logged and may end up in a pod's termination message.
    fn from_str(uri: &str) -> Result<Self, SinkError> {
        let shown = redacted(uri);
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| {
            SinkError::Config(format!("`{shown}` is not a sink URI (duckdb:///path or flight+grpc://host:port)"))
        })?;
        match scheme {
            "duckdb" => {
                let path = percent_decode(rest)?;
                if path.is_empty() || path.contains('?') {
                    return Err(SinkError::Config(format!("`{shown}`: expected duckdb:///path/to/catalog.duckdb")));
                }
                Ok(SinkUri::Duckdb(PathBuf::from(path)))
            }
            "flight+grpc" | "flight+grpc+tls" => {
                if has_userinfo(rest) {
                    return Err(SinkError::Config(format!(
                        "`{shown}`: credentials do not belong in the sink URI; {WHERE_CREDENTIALS_GO}"
                    )));
                }
                let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
                let authority = authority.trim_end_matches('/');
                if authority.is_empty() || authority.contains('/') {
                    return Err(SinkError::Config(format!("`{shown}`: expected {scheme}://host:port[?options]")));
                }
                let options =
                    || FlightOptions::from_uri_parts(scheme == "flight+grpc+tls", authority, &query_pairs(query)?);
                match options() {
                    Ok(options) => Ok(SinkUri::Flight(options)),
                    // The error would quote the options, where the `@` may end a password
                    // written with a raw `?`.
                    Err(_) if query.contains('@') => Err(SinkError::Config(format!(
                        "`{shown}`: bad options; if the `@` ends user information, remove it: \
                         {WHERE_CREDENTIALS_GO}"
                    ))),
                    Err(e) => Err(e),
                }
            }
            "vast" => {
                if has_userinfo(rest) {
                    return Err(SinkError::Config(format!(
                        "`{shown}`: credentials do not belong in the sink URI; {WHERE_VAST_CREDENTIALS_GO}"
                    )));
                }
                let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
                match VastOptions::from_uri_parts(authority.trim_end_matches('/'), &query_pairs(query)?) {
                    Ok(options) => Ok(SinkUri::Vast(options)),
                    Err(_) if query.contains('@') => Err(SinkError::Config(format!(
                        "`{shown}`: bad options; if the `@` ends user information, remove it: \
                         {WHERE_VAST_CREDENTIALS_GO}"
                    ))),
                    Err(e) => Err(e),
                }
            }
            other => Err(SinkError::Config(format!(
                "unknown sink scheme `{other}` in `{shown}`: use duckdb:///path, flight+grpc://host:port, \
                 flight+grpc+tls://host:port or vast://host:port?bucket=NAME"
            ))),
        }
    }
}

/// Where Flight SQL credentials go instead of the URI.
const WHERE_CREDENTIALS_GO: &str = "give them with --flight-username and --flight-password-file, or \
     --flight-token-file (or the EXRSCAN_FLIGHT_USERNAME, EXRSCAN_FLIGHT_PASSWORD(_FILE) and \
     EXRSCAN_FLIGHT_TOKEN(_FILE) variables; in a cluster, the ExrScan's sink.flight.credentialsSecret)";

/// Where VAST credentials go instead of the URI.
const WHERE_VAST_CREDENTIALS_GO: &str = "give them with --vast-access-key-id-file and \
     --vast-secret-access-key-file (or the EXRSCAN_VAST_ACCESS_KEY_ID(_FILE) and \
     EXRSCAN_VAST_SECRET_ACCESS_KEY(_FILE) variables)";

/// The decoded `key=value` pairs of a URI's query.
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, SinkError> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(pairs)
}

/// Whether the part of a URI after `scheme://` starts with user information (`user@`,
/// `user:password@`): an `@` before the query. (A password with a raw `/` would end the
/// authority early; it is still user information.)
fn has_userinfo(rest: &str) -> bool {
    rest.split('?').next().is_some_and(|before_query| before_query.contains('@'))
}

/// `uri` as it may be shown: everything between `scheme://` and the last `@` replaced by
/// `***`. Errs on the side of hiding: a password may hold `/`, `?` or `#` unescaped.
fn redacted(uri: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return match uri.rfind('@') {
            Some(at) => format!("***{}", &uri[at..]).into(),
            None => uri.into(),
        };
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]).into(),
        None => uri.into(),
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

    /// The error of any URI with a password never shows the password, and says where
    /// credentials go.
    #[test]
    fn passwords_never_reach_the_error() {
        for uri in [
            "flight+grpc://user:hunter2@host:1/db",
            "flight+grpc://user:hunter2@host:1",
            "flight+grpc+tls://user:hun/ter2@host:1?schema=vfx",
            "flight+grpc://user:hun?ter2@host:1",
            "postgres://user:hunter2@host/db",
            "user:hunter2@host:1",
            "flight+grpc://user:hunter2@",
            "vast://AKID:hunter2@vip:443?bucket=db",
            "vast://vip:443?bucket=db&AKID:hunter2@",
        ] {
            let message = match uri.parse::<SinkUri>() {
                Err(e @ SinkError::Config(_)) => e.to_string(),
                other => panic!("{uri}: expected a configuration error, got {other:?}"),
            };
            assert!(!message.contains("hunter2") && !message.contains("ter2"), "{uri}: {message}");
            assert!(!message.contains("user:"), "{uri}: {message}");
        }
        let Err(e) = "flight+grpc://user:hunter2@host:1/db".parse::<SinkUri>() else { panic!("accepted") };
        let message = e.to_string();
        assert!(message.contains("`flight+grpc://***@host:1/db`"), "{message}");
        assert!(message.contains("--flight-username") && message.contains("--flight-token-file"), "{message}");
        // An `@` in an option value is not user information.
        assert!("flight+grpc+tls://h:1?ca=/etc/ca@2.pem".parse::<SinkUri>().is_ok());
        assert_eq!(redacted("flight+grpc://h:1?ca=/a@b.pem"), "flight+grpc://***@b.pem", "errs on hiding");
        assert_eq!(redacted("flight+grpc://h:1"), "flight+grpc://h:1");
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
