//! Command-line interface: one module per subcommand.

mod follow;
mod gc;
mod inspect;
mod log;
mod plan;
mod s3_args;
mod scan;
mod shard;
mod signals;
mod similar;
mod sink_args;
mod sink_check;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Indexes OpenEXR headers: inspect files, scan directories and buckets into a catalog.
#[derive(Debug, Parser)]
#[command(name = "exrscan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Inspect(inspect::Args),
    Scan(scan::Args),
    Similar(similar::Args),
    Plan(plan::Args),
    Shard(shard::Args),
    Gc(gc::Args),
    Follow(follow::Args),
    SinkCheck(sink_check::Args),
}

/// Parses the command line and runs the subcommand; returns the process exit code.
pub fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::Similar(args) => similar::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Shard(args) => shard::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::Follow(args) => follow::run(&args),
        Command::SinkCheck(args) => sink_check::run(&args),
    }
}
