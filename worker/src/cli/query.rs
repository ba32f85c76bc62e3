//! `exrscan query SQL --sink URI`: runs one SQL statement on the catalog and prints the rows.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use arrow::datatypes::Schema;
use exrscan::sink::{SinkUri, duckdb, flight};

use super::log::{self, LogFormat};
use super::rows::{self, Format};
use super::sink_args::SinkArgs;

/// Run one SQL statement on the catalog and print its rows.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Query the indexed_files, indexed_parts, indexed_channels and indexed_attributes views: they \
show each file once (docs/queries.md has examples). A DuckDB catalog is opened read-only (it \
cannot be queried while a scan writes it); a Flight SQL server runs the statement in its own \
dialect. vast:// catalogs have no SQL: query them with Trino or VAST's SDK.

Exit status: 0 when the statement ran (with or without rows); 1 when it failed or the \
catalog could not be reached; 2 for usage errors (including a vast:// sink).")]
pub struct Args {
    /// The SQL statement; `-` reads it from stdin.
    #[arg(value_name = "SQL")]
    sql: String,
    #[command(flatten)]
    sink: SinkArgs,
    /// Output: an aligned table, CSV with a header line, or JSON lines.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Exit status of a usage error.
const USAGE: u8 = 2;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(LogFormat::Text, None);
    let sql = if args.sql == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the SQL from stdin")?;
        text
    } else {
        args.sql.clone()
    };
    let uri = args.sink.uri()?;
    let (schema, batches) = match &uri {
        SinkUri::Duckdb(path) => {
            let (schema, batches) = duckdb::query(path, &sql)?;
            (schema.as_ref().clone(), batches)
        }
        SinkUri::Flight(options) => {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
            let credentials = args.sink.credentials()?;
            let (schema, batches) = runtime.block_on(async {
                let mut sink = args
                    .sink
                    .retry()
                    .run(|| flight::FlightSink::connect(options.clone(), credentials.flight.clone()))
                    .await
                    .with_context(|| format!("opening the sink {uri}"))?;
                anyhow::Ok(sink.sql(&sql).await?)
            })?;
            let schema = match (schema, batches.first()) {
                (Some(schema), _) => schema.as_ref().clone(),
                (None, Some(batch)) => batch.schema().as_ref().clone(),
                (None, None) => Schema::empty(),
            };
            (schema, batches)
        }
        SinkUri::Vast(_) => {
            eprintln!("exrscan: vast:// catalogs have no SQL endpoint: query them with Trino or VAST's SDK");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = rows::print(&mut out, args.format, &schema, &batches).and_then(|()| Ok(out.flush()?));
    match printed {
        Err(rows::PrintError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the rows")?,
    }
    Ok(ExitCode::SUCCESS)
}
