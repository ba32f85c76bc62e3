//! The test venv's Python (PyPI `openexr`, `adbc-driver-flightsql`, `pyarrow`, …), used as an
//! independent client of what exrscan writes.

use std::process::Command;

use crate::{Error, paths};

/// Runs `code` (`python -c`) with `args` and returns its stdout; a non-zero exit is an
/// error carrying stderr.
pub fn run(code: &str, args: &[&str]) -> Result<String, Error> {
    let mut cmd = Command::new(paths::python()?);
    cmd.arg("-c").arg(code).args(args);
    crate::output("python", cmd)
}
