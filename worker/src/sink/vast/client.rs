//! The HTTP side of the tabular API: signed requests with the SDK's common headers, S3-style
//! errors mapped onto [`SinkError`], the version probe and transactions.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use super::options::{Credentials, VastOptions};
use super::sigv4;
use crate::sink::SinkError;

/// `(1 << 48) - 1`: a sub-split's next row id once it is exhausted.
pub const INVALID_ROW_ID: u64 = (1 << 48) - 1;

/// Largest request body VAST takes (`MAX_TABULAR_REQUEST_SIZE` of the SDK).
pub const MAX_REQUEST_BYTES: usize = 5 << 20;

/// One tabular call.
pub struct Call {
    /// HTTP method.
    pub method: Method,
    /// `/<bucket>/<schema>[/<table>]`, or `/`.
    pub path: String,
    /// The bare command (`schema`, `table`, `rows`, `data`, `transaction`…).
    pub command: &'static str,
    /// The transaction of the call; `None`: no tabular headers at all (the version probe).
    pub txid: Option<u64>,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl Call {
    /// A call with the common tabular headers, inside transaction `txid` (`0`: none).
    pub fn new(method: Method, path: String, command: &'static str, txid: u64) -> Self {
        Self { method, path, command, txid: Some(txid), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// A successful answer.
pub struct Answer {
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: tonic::codegen::Bytes,
}

/// An HTTP client of one VAST endpoint with one key pair.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Credentials,
}

impl Client {
    /// A client of `options`' endpoint; no request is sent.
    pub fn new(options: &VastOptions, credentials: Credentials) -> Result<Self, SinkError> {
        credentials.validate()?;
        // TLS uses the process's rustls provider: ring, unless one was installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(options.timeout))
            .timeout(options.timeout)
            .user_agent(concat!("exrscan/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca {
            let bad = |reason: String| SinkError::Config(format!("vast:// ca={}: {reason}", path.display()));
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
            if certificates.is_empty() {
                return Err(bad("no certificate".into()));
            }
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder.build().map_err(|e| SinkError::Config(format!("HTTP client: {e}")))?;
        // `Host` as reqwest sends it (and the SDK signs it): the port unless it is the default.
        let url = reqwest::Url::parse(&options.endpoint())
            .map_err(|e| SinkError::Config(format!("vast://{}: {e}", options.authority)))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(SinkError::Config(format!("vast://{}: no host", options.authority))),
        };
        Ok(Self { http, endpoint: options.endpoint(), host, credentials })
    }

    /// Sends `call`; any status but 200 is an error.
    pub async fn send(&self, call: Call) -> Result<Answer, SinkError> {
        let query = [(call.command, "")];
        let signed = sigv4::sign(
            &sigv4::Request {
                method: call.method.as_str(),
                host: &self.host,
                path: &call.path,
                query: &query,
                body: &call.body,
            },
            &self.credentials,
            SystemTime::now(),
        );
        let mut headers = HeaderMap::new();
        let mut put = |name: &str, value: &str| -> Result<(), SinkError> {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| SinkError::Failed(format!("header {e}")))?;
            let value = HeaderValue::from_str(value).map_err(|e| SinkError::Failed(format!("header {name}: {e}")))?;
            headers.insert(name, value);
            Ok(())
        };
        if let Some(txid) = call.txid {
            put("tabular-txid", &txid.to_string())?;
            put("tabular-api-version-id", "1")?;
            put("tabular-client-name", "tabular-api")?;
        }
        for (name, value) in &call.headers {
            put(name, value)?;
        }
        put("x-amz-date", &signed.amz_date)?;
        put("x-amz-content-sha256", &signed.content_sha256)?;
        put("authorization", &signed.authorization)?;
        let url = format!("{}{}?{}", self.endpoint, call.path, call.command);
        let what = format!("{} {}?{}", call.method, call.path, call.command);
        let response = self
            .http
            .request(call.method, url)
            .headers(headers)
            .body(call.body)
            .send()
            .await
            .map_err(|e| transport_error(&what, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| transport_error(&what, &e))?;
        if status != StatusCode::OK {
            return Err(status_error(&what, status, &body));
        }
        Ok(Answer { headers, body })
    }

    /// The version probe: `GET /?transaction` answered with `Server: vast <a.b.c.d>`.
    pub async fn version(&self) -> Result<String, SinkError> {
        let call = Call {
            method: Method::GET,
            path: "/".into(),
            command: "transaction",
            txid: None,
            headers: vec![("tabular-get-vast-version", "true".into())],
            body: Vec::new(),
        };
        let answer = self.send(call).await?;
        let server = answer.headers.get("server").and_then(|v| v.to_str().ok()).unwrap_or_default();
        match server.strip_prefix("vast ") {
            Some(version)
                if version.split('.').count() == 4 && version.split('.').all(|p| p.parse::<u32>().is_ok()) =>
            {
                Ok(version.to_string())
            }
            _ => Err(SinkError::Config(format!(
                "{} is not a VAST DataBase endpoint (Server: `{server}`, expected `vast a.b.c.d`)",
                self.endpoint
            ))),
        }
    }

    /// Begins a transaction; its id.
    pub async fn begin(&self) -> Result<u64, SinkError> {
        let answer = self.send(Call::new(Method::POST, "/".into(), "transaction", 0)).await?;
        answer
            .headers
            .get("tabular-txid")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| SinkError::Failed("the server began a transaction without a tabular-txid".into()))
    }

    /// Commits `txid`.
    pub async fn commit(&self, txid: u64) -> Result<(), SinkError> {
        self.send(Call::new(Method::PUT, "/".into(), "transaction", txid)).await.map(drop)
    }

    /// Rolls `txid` back. A transaction the server does not know (expired, or lost in a
    /// restart) has ended already: that is a success.
    pub async fn rollback(&self, txid: u64) -> Result<(), SinkError> {
        match self.send(Call::new(Method::DELETE, "/".into(), "transaction", txid)).await {
            Err(e) if is_unknown_transaction(&e) => Ok(()),
            other => other.map(drop),
        }
    }
}

/// A request that got no answer: the server may be restarting or unreachable — unless TLS
/// refused its certificate, which no retry changes.
fn transport_error(what: &str, error: &reqwest::Error) -> SinkError {
    // The chain's texts hold the URL at most (credentials travel in headers only).
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if chain.contains("certificate") {
        return SinkError::Config(format!("TLS to the VAST endpoint: {what}: {chain}"));
    }
    let kind = if error.is_timeout() { "timed out" } else { "failed" };
    SinkError::Transient(format!("{what} {kind}: {chain}"))
}

/// The `<Code>` and `<Message>` of an S3-style XML error body.
fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

/// Maps a non-200 answer: 403 is an authentication failure; overload, timeouts, conflicts
/// between transactions and an unknown (expired, or lost in a restart) transaction are
/// transient; anything else is a failure.
fn status_error(what: &str, status: StatusCode, body: &[u8]) -> SinkError {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let code = xml_field(&text, "Code").unwrap_or_default();
    let message = xml_field(&text, "Message").unwrap_or_default();
    let detail = format!("{what}: {} {code}: {message}", status.as_u16());
    match status.as_u16() {
        403 => SinkError::Auth(detail),
        404 if code.contains("Transaction") => SinkError::Transient(detail),
        408 | 409 | 429 | 502 | 503 | 504 => SinkError::Transient(detail),
        _ => SinkError::Failed(detail),
    }
}

/// Whether `error` is the server's answer for a transaction it does not know.
fn is_unknown_transaction(error: &SinkError) -> bool {
    matches!(error, SinkError::Transient(m) if m.contains(": 404 ") && m.contains("Transaction"))
}

/// Whether `error` is the server's "already exists" answer to a create.
pub fn is_exists(error: &SinkError) -> bool {
    matches!(error, SinkError::Failed(m) | SinkError::Transient(m) if m.contains("AlreadyExists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_onto_sink_errors() {
        let xml = |code: &str| format!("<Error><Code>{code}</Code><Message>m</Message></Error>").into_bytes();
        let e = status_error("PUT /?transaction", StatusCode::NOT_FOUND, &xml("TabularTransactionNotFound"));
        assert!(e.is_transient() && is_unknown_transaction(&e), "{e}");
        assert!(matches!(status_error("x", StatusCode::FORBIDDEN, &xml("SignatureDoesNotMatch")), SinkError::Auth(_)));
        assert!(status_error("x", StatusCode::SERVICE_UNAVAILABLE, &xml("SlowDown")).is_transient());
        assert!(status_error("x", StatusCode::CONFLICT, &xml("Conflict")).is_transient());
        let missing = status_error("x", StatusCode::NOT_FOUND, &xml("NoSuchKey"));
        assert!(matches!(&missing, SinkError::Failed(m) if m.contains("404 NoSuchKey: m")), "{missing}");
        assert!(is_exists(&status_error("x", StatusCode::CONFLICT, &xml("TabularTableAlreadyExists"))));
    }
}
