//! exrscan's test environment: the real programs the product talks to, started on
//! loopback for a test and stopped when their handle is dropped.
//!
//! Every start function fails with [`Error`] naming the missing or failing part; tests
//! turn that into a failure, never a skip. The programs come from `tests/env/setup.sh`
//! (run by `make test`), cached under `~/.cache/exrscan`.

pub use flightsql::FlightSqlServer;
pub use kafka::KafkaServer;
pub use s3::{Delivery, KafkaTarget, S3Options, S3Server};
pub use vasttwin::{VastTwin, VastTwinOptions};

pub mod audit;
pub mod flightsql;
pub mod images;
pub mod kafka;
pub mod kube;
pub mod netns;
pub mod node_agent;
pub mod paths;
pub mod process;
pub mod python;
pub mod s3;
pub mod vasttwin;

/// Why a part of the test environment is not available.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program or file the environment needs is not installed.
    #[error("test environment: {what} is missing: {hint}")]
    Missing { what: String, hint: String },
    /// A server did not start or did not become ready.
    #[error("test environment: {what} failed to start: {reason}")]
    Start { what: String, reason: String },
    /// A program the environment ran exited with an error.
    #[error("test environment: {what} failed ({status}): {stderr}")]
    Command { what: String, status: std::process::ExitStatus, stderr: String },
    /// A local I/O operation failed.
    #[error("test environment: {context}: {source}")]
    Io { context: String, source: std::io::Error },
}

/// A fresh directory for one test's servers and files, removed on drop unless
/// `EXRSCAN_KEEP_TEST_DIRS` is set (then its path is printed for post-mortems).
pub fn work_dir(label: &str) -> Result<tempfile::TempDir, Error> {
    let base = std::env::temp_dir().join("exrscan-tests");
    std::fs::create_dir_all(&base)
        .map_err(|e| Error::Io { context: format!("creating {}", base.display()), source: e })?;
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("{label}-"))
        .tempdir_in(&base)
        .map_err(|e| Error::Io { context: "creating a test directory".into(), source: e })?;
    if std::env::var_os("EXRSCAN_KEEP_TEST_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping test directory {}", dir.path().display());
    }
    Ok(dir)
}

/// Runs `cmd` to completion and returns its stdout, or [`Error::Command`] with its stderr.
pub fn output(what: &str, mut cmd: std::process::Command) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| Error::Start { what: what.to_string(), reason: format!("{e} ({cmd:?})") })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            what: what.to_string(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
