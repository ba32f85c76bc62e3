//! `exrscan sink-check --sink vast://…`: proves a VAST DataBase sink end to end before a scan.

use std::process::ExitCode;

use anyhow::Context as _;
use exrscan::sink::SinkUri;
use exrscan::sink::vast::VastSink;

use super::log::{self, LogFormat};
use super::sink_args::SinkArgs;

/// Check a VAST DataBase sink: create a scratch table in the sink's schema, insert a row,
/// read it back and drop it.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Prints one line, `ok: …`, and exits 0; or prints what failed and exits 1. Opening the sink \
also creates the schema and the four catalog tables if they are missing.")]
pub struct Args {
    #[command(flatten)]
    sink: SinkArgs,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(LogFormat::Text, None);
    let SinkUri::Vast(options) = args.sink.uri()? else {
        anyhow::bail!("sink-check takes a vast:// sink (DuckDB and Flight SQL sinks are checked by opening them)");
    };
    let credentials = args.sink.credentials()?.vast;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let what = format!("opening vast://{}", options.authority);
        let mut sink =
            args.sink.retry().run(|| VastSink::connect(options.clone(), credentials.clone())).await.context(what)?;
        anyhow::Ok(sink.check().await.context("the scratch-table round trip")?)
    })?;
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}
