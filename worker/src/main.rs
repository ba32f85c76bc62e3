//! The `exrscan` command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("exrscan: {error:#}");
            ExitCode::FAILURE
        }
    }
}
