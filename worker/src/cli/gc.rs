//! `exrscan gc --sink URI`: removes the rows the catalog's `indexed_*` views hide.

use std::process::ExitCode;
use std::time::Duration;

use exrscan::catalog::WriteId;
use exrscan::sink::Sink;

use super::log::{self, LogFormat};
use super::sink_args::SinkArgs;

/// Delete catalog rows that no reader sees: the second copy of a file written twice, and
/// rows of attempts that died before their `files` rows.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Safe while scans are writing: rows of an attempt younger than --orphan-grace-seconds are kept, \
since that attempt may still be writing. Prints the rows deleted per table as JSON.")]
pub struct Args {
    #[command(flatten)]
    sink: SinkArgs,
    /// Keep child rows without a `files` row if their attempt started less than this many
    /// seconds ago (it may still be writing).
    #[arg(long, env = "EXRSCAN_ORPHAN_GRACE_SECONDS", default_value_t = 3600, value_name = "SECONDS")]
    orphan_grace_seconds: u64,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(LogFormat::Text, None);
    let orphans_before = WriteId::started_before(Duration::from_secs(args.orphan_grace_seconds));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let counts = runtime.block_on(async {
        let mut sink = args.sink.open().await?;
        anyhow::Ok(sink.collect_garbage(&orphans_before).await?)
    })?;
    println!("{}", serde_json::to_string(&counts)?);
    Ok(ExitCode::SUCCESS)
}
