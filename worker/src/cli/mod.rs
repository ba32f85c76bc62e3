//! Command-line interface: one module per subcommand.

mod follow;
mod gc;
mod inspect;
mod log;
mod plan;
mod query;
mod rows;
mod s3_args;
mod scan;
mod shard;
mod signals;
mod similar;
mod sink_args;
mod sink_check;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// Indexes OpenEXR headers: inspect files, scan directories and buckets into a catalog.
#[derive(Debug, Parser)]
#[command(name = "exrscan", version, about)]
struct Cli {
    /// More log lines: -v debug, -vv trace (overrides EXRSCAN_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Fewer: -q warnings and errors only, no progress line; -qq errors only.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
    /// Colour of logs and help: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, env = "EXRSCAN_COLOR", default_value_t = log::Color::Auto, global = true)]
    color: log::Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Inspect(inspect::Args),
    Scan(scan::Args),
    Similar(similar::Args),
    Query(query::Args),
    Plan(plan::Args),
    Shard(shard::Args),
    Gc(gc::Args),
    Follow(Box<follow::Args>),
    SinkCheck(sink_check::Args),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
bash: exrscan completions bash > ~/.local/share/bash-completion/completions/exrscan
zsh:  exrscan completions zsh > \"${fpath[1]}/_exrscan\"
fish: exrscan completions fish > ~/.config/fish/completions/exrscan.fish")]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the man page (roff), or write one page per command into a directory.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
exrscan man > ~/.local/share/man/man1/exrscan.1
exrscan man --dir ~/.local/share/man/man1    # exrscan.1 and exrscan-scan.1, exrscan-inspect.1, …")]
struct ManArgs {
    /// Write exrscan.1 and a page per command into DIR instead of printing exrscan.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

/// The `--color` of the command line (before parsing it: help and usage errors are coloured
/// by it too), else `EXRSCAN_COLOR`, else auto.
fn color_before_parsing() -> clap::ColorChoice {
    let mut args = std::env::args().skip_while(|a| a != "--color" && !a.starts_with("--color="));
    let given = match args.next() {
        Some(arg) if arg == "--color" => args.next(),
        Some(arg) => arg.strip_prefix("--color=").map(str::to_owned),
        None => std::env::var("EXRSCAN_COLOR").ok(),
    };
    match given.as_deref() {
        Some("always") => clap::ColorChoice::Always,
        Some("never") => clap::ColorChoice::Never,
        _ if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    }
}

/// Parses the command line and runs the subcommand; returns the process exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    let matches = Cli::command().color(color_before_parsing()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    log::configure(log::Style {
        verbosity: (cli.verbose.min(100) as i8) - (cli.quiet.min(100) as i8),
        color: cli.color,
    });
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::Similar(args) => similar::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Shard(args) => shard::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::Follow(args) => follow::run(&args),
        Command::SinkCheck(args) => sink_check::run(&args),
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "exrscan", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(ManArgs { dir: Some(dir) }) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing into {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(ManArgs { dir: None }) => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command()).render(&mut out).context("writing the man page")?;
            out.flush().context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
