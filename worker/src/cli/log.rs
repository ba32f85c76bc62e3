//! Logging of the commands: `tracing` to stderr, text or JSON, around a live progress line.
//! The level comes from `-v`/`-q` when given, else `EXRSCAN_LOG` (also read by the operator),
//! else `RUST_LOG`, else `info`; colours from `--color` (and `NO_COLOR`).

use std::io::{self, IsTerminal as _, Write};
use std::sync::OnceLock;

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

/// When to colour what is written to a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Color {
    /// When the stream is a terminal and `NO_COLOR` is unset.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to colour a stream that is (or is not) a terminal.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// The global `-v`/`-q`/`--color` options, set once by [`configure`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// `-v` count minus `-q` count.
    pub verbosity: i8,
    /// Colour choice.
    pub color: Color,
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// Records the global options (the first call wins).
pub fn configure(style: Style) {
    let _ = STYLE.set(style);
}

/// The global options.
pub fn style() -> Style {
    STYLE.get().copied().unwrap_or_default()
}

/// Whether `-q` was given: no progress line, only warnings and errors.
pub fn quiet() -> bool {
    style().verbosity < 0
}

/// The filter: `-v`/`-q` first, then `EXRSCAN_LOG`, then `RUST_LOG`, then `info`.
fn filter(verbosity: i8) -> EnvFilter {
    let level = match verbosity {
        i8::MIN..=-2 => Some("error"),
        -1 => Some("warn"),
        0 => None,
        1 => Some("debug"),
        2..=i8::MAX => Some("trace"),
    };
    if let Some(level) = level {
        return EnvFilter::new(level);
    }
    ["EXRSCAN_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()).and_then(|v| EnvFilter::try_new(v).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"))
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
    let style = style();
    let writer = move || Stderr(bar.clone());
    let ansi = style.color.enabled(io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(style.verbosity))
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
