//! A receiver for MinIO's audit webhook: MinIO posts one JSON entry per S3 request it
//! served (API name, bucket, object, status, user agent, query parameters), so tests can
//! check what a client really asked the server, without taking the client's word for it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::Error;

/// One request as MinIO's audit log records it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuditEntry {
    /// The API call and its outcome.
    pub api: AuditApi,
    /// `User-Agent` of the request.
    #[serde(rename = "userAgent")]
    pub user_agent: String,
    /// Query parameters of the request (`prefix`, `start-after`, `max-keys`, …).
    #[serde(rename = "requestQuery")]
    pub query: BTreeMap<String, String>,
}

/// The `api` object of an audit entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AuditApi {
    /// S3 API name (`ListObjectsV2`, `GetObject`, …).
    pub name: String,
    /// Bucket of the request.
    pub bucket: String,
    /// Object key of the request.
    pub object: String,
    /// HTTP status code of the answer.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
}

/// A loopback HTTP endpoint collecting audit entries; stops with the process.
#[derive(Debug, Clone)]
pub struct AuditLog {
    addr: SocketAddr,
    entries: Arc<Mutex<Vec<AuditEntry>>>,
}

impl AuditLog {
    /// Listens on a free loopback port.
    pub fn start() -> Result<Self, Error> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Io { context: "audit listener".into(), source: e })?;
        let addr = listener.local_addr().map_err(|e| Error::Io { context: "audit listener".into(), source: e })?;
        let entries = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&entries);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Ok(Self { addr, entries })
    }

    /// The URL MinIO posts to.
    pub fn endpoint(&self) -> String {
        format!("http://{}/audit", self.addr)
    }

    /// The entries received so far.
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Forgets the entries received so far.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Waits until no entry has arrived for `quiet` (at most `timeout`), then returns them.
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> Vec<AuditEntry> {
        let deadline = Instant::now() + timeout;
        let mut count = usize::MAX;
        let mut since = Instant::now();
        while Instant::now() < deadline {
            let now = self.entries.lock().unwrap_or_else(PoisonError::into_inner).len();
            if now != count {
                count = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.entries()
    }
}

/// Answers HTTP/1.1 POSTs on one connection (keep-alive), keeping the JSON bodies.
fn serve(stream: TcpStream, sink: &Mutex<Vec<AuditEntry>>) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        keep(&body, sink);
        if writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// Stores an entry, an array of entries, or entries one per line.
fn keep(body: &[u8], sink: &Mutex<Vec<AuditEntry>>) {
    let mut found: Vec<AuditEntry> = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => {
            items.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
        }
        Ok(value) => serde_json::from_value(value).into_iter().collect(),
        Err(_) => body.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect(),
    };
    sink.lock().unwrap_or_else(PoisonError::into_inner).append(&mut found);
}
