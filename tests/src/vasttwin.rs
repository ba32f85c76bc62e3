//! The VAST DataBase protocol twin (`tests/vast/vasttwin`, a Python server over DuckDB judged
//! by VAST's official SDK) on loopback, over a DuckDB file so that a test can kill and
//! restart it on the same port without losing what was committed. It runs on the
//! `venv-vast` Python (`$EXRSCAN_VAST_PYTHON`), which `tests/env/setup.sh` creates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Server, free_port};
use crate::{Error, work_dir};

/// The key pair the twin accepts.
pub const ACCESS_KEY_ID: &str = "exrscan-test-access";
/// The secret of [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "exrscan-test-secret";
/// The bucket the twin serves.
pub const BUCKET: &str = "catalog";

/// A running twin; killed and its database removed on drop.
#[derive(Debug)]
pub struct VastTwin {
    server: Option<Server>,
    addr: SocketAddr,
    dir: TempDir,
    options: VastTwinOptions,
}

/// Optional behaviour of the twin (all off by default).
#[derive(Debug, Clone, Default)]
pub struct VastTwinOptions {
    /// Record every request to [`VastTwin::record_path`].
    pub record: bool,
    /// Serve HTTPS with this PEM certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// `tests/vast`, where the `vasttwin` package and the SDK-side scripts are.
pub fn vast_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vast")
}

/// The Python of the `venv-vast` venv (`$EXRSCAN_VAST_PYTHON`, default the cache's).
pub fn python() -> Result<PathBuf, Error> {
    let path = std::env::var_os("EXRSCAN_VAST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::paths::cache_dir().join("venv-vast/bin/python"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Missing {
            what: format!("the VAST SDK venv at {}", path.display()),
            hint: "run `make test` (or tests/env/setup.sh) to create it".into(),
        })
    }
}

/// Seconds a transaction may stay idle in the twin before it is rolled back.
pub const IDLE_TRANSACTION_SECONDS: u64 = 15;

impl VastTwin {
    /// Starts the twin on a free loopback port with an empty database.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(VastTwinOptions::default())
    }

    /// Starts the twin with optional behaviour.
    pub fn start_with(options: VastTwinOptions) -> Result<Self, Error> {
        let dir = work_dir("vasttwin")?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut twin = Self { server: None, addr, dir, options };
        twin.restart()?;
        Ok(twin)
    }

    /// Kills the twin (SIGKILL, like a crash); committed rows stay in its file.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts the twin again on the same address and database.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        let mut cmd = Command::new(python()?);
        cmd.arg("-m")
            .arg("vasttwin")
            .arg("--db")
            .arg(self.database_path())
            .arg("--bucket")
            .arg(BUCKET)
            .arg("--port")
            .arg(self.addr.port().to_string())
            // Transactions left idle by a client that gave up (a request timed out on a loaded
            // machine, a killed worker) are rolled back, as a VAST cluster does, instead of
            // holding the twin's write lock for the default 300 s.
            .arg("--tx-timeout")
            .arg(IDLE_TRANSACTION_SECONDS.to_string())
            .env("PYTHONPATH", vast_dir())
            .env("VAST_TWIN_KEYS", format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}"));
        if self.options.record {
            cmd.arg("--record").arg(self.record_path());
        }
        if let Some((cert, key)) = &self.options.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        let mut server = Server::spawn("VAST twin", cmd, &self.dir.path().join("vasttwin.log"))?;
        server.wait_for_port(self.addr, Duration::from_secs(60))?;
        self.server = Some(server);
        Ok(())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://…` with TLS), as the SDK takes it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.options.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The sink URI for the schema `schema` (nested with `/`); with TLS, without a `ca`.
    pub fn uri(&self, schema: &str) -> String {
        let tls = self.options.tls.is_some();
        format!("vast://{}?bucket={BUCKET}&schema={schema}&tls={tls}", self.addr)
    }

    /// The JSON-lines recording of the requests (with `record`).
    pub fn record_path(&self) -> PathBuf {
        self.dir.path().join("requests.jsonl")
    }

    /// The DuckDB file behind the twin.
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("twin.duckdb")
    }
}

/// Runs `script` (under `tests/vast`) with the SDK venv and the twin's keys; its stdout.
pub fn run_sdk(script: &str, args: &[&str]) -> Result<String, Error> {
    let mut cmd = Command::new(python()?);
    cmd.arg(vast_dir().join(script))
        .args(args)
        .env("PYTHONPATH", vast_dir())
        .env("VAST_TWIN_KEYS", format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}"));
    crate::output(script, cmd)
}
