//! Logging of the long-running commands: `tracing` to stderr, text or JSON, level from
//! `EXRSCAN_LOG` (default `info`); lines are written around a live progress line.

use std::io::{self, Write};

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for pods).
    Json,
}

/// Writes to stderr, suspending the progress line (if any) while it does.
#[derive(Clone)]
struct Stderr(Option<ProgressBar>);

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.0 {
            Some(bar) => bar.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Installs the global subscriber (once; later calls keep the first).
pub fn init(format: LogFormat, bar: Option<ProgressBar>) {
    let filter = EnvFilter::try_from_env("EXRSCAN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = move || Stderr(bar.clone());
    // Colours only on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_target(false).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
