//! The `exrscan` command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The Kubernetes client (ring) and the S3 client (aws-lc-rs) both link a rustls
    // provider, so rustls cannot pick one by itself: the Kubernetes client's is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("exrscan: {error:#}");
            ExitCode::FAILURE
        }
    }
}
