//! The `exrscan` command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // One TLS provider for the whole process (ring: the Kubernetes, Flight SQL and S3
    // clients all use rustls), whatever features other crates unify into rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("exrscan: {error:#}");
            ExitCode::FAILURE
        }
    }
}
