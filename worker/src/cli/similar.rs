//! `exrscan similar FILE --sink URI -k N`: the indexed files nearest to FILE.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use exrscan::embed;
use exrscan::header;
use exrscan::sink::{SimilarBy, Sink};
use exrscan::source::local::file_uri;

use super::log::{self, LogFormat};
use super::sink_args::SinkArgs;

/// Which vector to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum By {
    /// The 384-d metadata embedding (structure, channels, attributes).
    Metadata,
    /// The 128-d channel fingerprint (channel layout only).
    Channels,
}

/// List the indexed files most similar to FILE, with cosine similarity scores.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
FILE's header is read and embedded exactly as `scan` does; FILE itself (same file:// URI) \
is left out of the results. Only the newest version of each indexed file counts.")]
pub struct Args {
    /// The EXR file to compare with.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    sink: SinkArgs,
    /// How many files to list.
    #[arg(short = 'k', long = "top", default_value_t = 10)]
    k: usize,
    /// Which vector to compare.
    #[arg(long, value_enum, default_value_t = By::Metadata)]
    by: By,
    /// Print JSON lines ({"score", "source_uri", "file_id"}) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(LogFormat::Text, None);
    let path = std::fs::canonicalize(&args.file).with_context(|| format!("{}", args.file.display()))?;
    let mut file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let (header, _) = header::read_header(&mut file).with_context(|| format!("reading {}", path.display()))?;
    let embeddings = embed::embed(&header);
    let (by, vector): (SimilarBy, &[f32]) = match args.by {
        By::Metadata => (SimilarBy::Metadata, &embeddings.metadata),
        By::Channels => (SimilarBy::Channels, &embeddings.channels),
    };
    let uri = file_uri(&path).with_context(|| format!("{} is not a UTF-8 path", path.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let neighbours = runtime.block_on(async {
        let mut sink = args.sink.open().await?;
        anyhow::Ok(sink.similar(by, vector, args.k, Some(&uri)).await?)
    })?;
    let mut out = std::io::stdout().lock();
    for n in &neighbours {
        if args.json {
            let line = serde_json::json!({"score": n.score, "source_uri": n.source_uri, "file_id": n.file_id});
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{:.4}  {}  {}", n.score, n.source_uri, n.file_id)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
