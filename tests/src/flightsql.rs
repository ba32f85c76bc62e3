//! Apache Arrow's reference Flight SQL server (arrow-go's SQLite-backed example) on
//! loopback, over a SQLite file so that a test can kill and restart it without losing
//! what was committed. Built by `tests/env/build-servers.sh` from `tests/env/go/flightsql`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Server, free_port};
use crate::{Error, paths, work_dir};

/// A running Flight SQL server; stopped and its database removed on drop.
#[derive(Debug)]
pub struct FlightSqlServer {
    server: Option<Server>,
    addr: SocketAddr,
    dir: TempDir,
    options: FlightSqlOptions,
}

/// Optional features of the test server (all off by default, like the stock example).
#[derive(Debug, Clone, Default)]
pub struct FlightSqlOptions {
    /// Require a basic-auth handshake with this user name and password; the server issues
    /// bearer tokens held in memory (a restart forgets them).
    pub basic_auth: Option<(String, String)>,
    /// Also accept this pre-issued bearer token.
    pub token: Option<String>,
    /// Serve TLS with this PEM certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Support Flight SQL bulk ingest (CommandStatementIngest) and say so in SqlInfo.
    pub bulk_ingest: bool,
    /// Say in SqlInfo that there are no transactions.
    pub no_transactions: bool,
    /// Roll back a transaction that no request has used for this long, as production
    /// servers expire idle transactions (the stock example keeps it, and SQLite's write
    /// lock, until it stops).
    pub transaction_idle_timeout: Option<Duration>,
    /// Listen on this address instead of 127.0.0.1 (e.g. [`crate::netns::NODE_IP`], where
    /// a real node's pods reach it).
    pub address: Option<std::net::Ipv4Addr>,
}

impl FlightSqlServer {
    /// Starts the server on a free loopback port with an empty database.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(FlightSqlOptions::default())
    }

    /// Starts the server with optional features.
    pub fn start_with(options: FlightSqlOptions) -> Result<Self, Error> {
        let dir = work_dir("flightsql")?;
        let addr: SocketAddr = (options.address.unwrap_or(std::net::Ipv4Addr::LOCALHOST), free_port()?).into();
        let mut flight = Self { server: None, addr, dir, options };
        flight.restart()?;
        Ok(flight)
    }

    /// Kills the server (SIGKILL, like a crash); committed data stays in its file.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts the server again on the same address and database.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        let mut cmd = Command::new(paths::tool("flightsql-server")?);
        cmd.arg("-host")
            .arg(self.addr.ip().to_string())
            .arg("-port")
            .arg(self.addr.port().to_string())
            .arg("-db")
            .arg(self.database_path());
        let o = &self.options;
        if let Some((user, password)) = &o.basic_auth {
            cmd.arg("-auth-user").arg(user).arg("-auth-password").arg(password);
        }
        if let Some(token) = &o.token {
            cmd.arg("-auth-token").arg(token);
        }
        if let Some((cert, key)) = &o.tls {
            cmd.arg("-tls-cert").arg(cert).arg("-tls-key").arg(key);
        }
        if o.bulk_ingest {
            cmd.arg("-ingest");
        }
        if o.no_transactions {
            cmd.arg("-no-transactions");
        }
        if let Some(idle) = o.transaction_idle_timeout {
            cmd.arg("-transaction-idle-timeout").arg(format!("{}ms", idle.as_millis()));
        }
        let mut server = Server::spawn("Flight SQL server", cmd, &self.dir.path().join("flightsql.log"))?;
        server.wait_for_port(self.addr, Duration::from_secs(30))?;
        self.server = Some(server);
        Ok(())
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sink URI exrscan takes for this server: `flight+grpc://127.0.0.1:PORT`
    /// (`flight+grpc+tls://…` with TLS).
    pub fn uri(&self) -> String {
        let tls = if self.options.tls.is_some() { "+tls" } else { "" };
        format!("flight+grpc{tls}://{}", self.addr)
    }

    /// The URI an ADBC Flight SQL client takes: `grpc://127.0.0.1:PORT` (`grpc+tls://…`).
    pub fn adbc_uri(&self) -> String {
        let tls = if self.options.tls.is_some() { "+tls" } else { "" };
        format!("grpc{tls}://{}", self.addr)
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("flightsql.log")
    }

    /// Prepared statements open on the server (created by clients and not closed yet), as
    /// its log last said; 0 before the first one.
    pub fn open_prepared_statements(&self) -> Result<usize, Error> {
        let path = self.log_path();
        let log = std::fs::read_to_string(&path)
            .map_err(|e| Error::Io { context: format!("reading {}", path.display()), source: e })?;
        Ok(log
            .lines()
            .rev()
            .find_map(|line| line.split_once("prepared statements open: ").and_then(|(_, n)| n.trim().parse().ok()))
            .unwrap_or(0))
    }

    /// The SQLite database file behind the server.
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("catalog.sqlite")
    }
}
