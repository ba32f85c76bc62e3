//! `exrscan similar (FILE | --key K | --uri U | --file-id ID) --sink URI -k N`: the indexed
//! files nearest to a file, local or already in the catalog.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use exrscan::embed;
use exrscan::header;
use exrscan::sink::{IndexedFile, SimilarBy, Sink};
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

/// List the indexed files most similar to a file, with cosine similarity scores.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The file to compare with is a local FILE, whose header is read and embedded exactly as \
`scan` does, or an indexed file named by --key, --uri or --file-id, whose stored vector \
(of its newest version, for --key and --uri) is used, so that no local copy is needed and an \
object in a bucket is found by its s3:// URI. The file itself (same URI) is left out of the \
results; a local copy of an indexed object is not, since its URI differs: name the object \
instead. Only the newest version of each indexed file counts.

Exit status: 0 when the neighbours were listed (none in an empty catalog); 1 when FILE \
cannot be read, the named file is not in the catalog (or has no embeddings), a key names \
files under several roots or buckets, or the catalog failed; 2 for usage errors.")]
#[command(group = clap::ArgGroup::new("reference").required(true).args(["file", "key", "uri", "file_id"]))]
pub struct Args {
    /// A local EXR file to compare with.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// An indexed file by `key`: an object key, or a path below a scanned directory.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// An indexed file by `source_uri` (s3://bucket/key or file:///path).
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// An indexed file by `file_id` (one header version).
    #[arg(long, value_name = "ID")]
    file_id: Option<String>,
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

impl Args {
    /// The indexed file named by --key, --uri or --file-id.
    fn indexed(&self) -> Option<IndexedFile> {
        let Args { key, uri, file_id, .. } = self;
        (key.clone().map(IndexedFile::Key))
            .or_else(|| uri.clone().map(IndexedFile::Uri))
            .or_else(|| file_id.clone().map(IndexedFile::FileId))
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(LogFormat::Text, None);
    let by = match args.by {
        By::Metadata => SimilarBy::Metadata,
        By::Channels => SimilarBy::Channels,
    };
    let local = match &args.file {
        Some(file) => Some(embed_local(file, by)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let neighbours = runtime.block_on(async {
        let mut sink = args.sink.open().await?;
        let (uri, vector) = match (local, args.indexed()) {
            (Some(local), _) => local,
            (None, Some(which)) => {
                let mut found = sink.stored(by, &which).await?;
                match found.len() {
                    0 => bail!(
                        "no indexed file has {} `{}` and a stored {} vector",
                        which.column(),
                        which.value(),
                        by.column()
                    ),
                    1 => {}
                    n => bail!(
                        "{n} indexed files have the key `{}` ({}); name one with --uri",
                        which.value(),
                        found.iter().map(|s| s.source_uri.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
                let stored = found.remove(0);
                (stored.source_uri, stored.vector)
            }
            (None, None) => bail!("give FILE, --key, --uri or --file-id"),
        };
        anyhow::Ok(sink.similar(by, &vector, args.k, Some(&uri)).await?)
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

/// The `file://` URI and the `by` vector of a local file.
fn embed_local(file: &Path, by: SimilarBy) -> anyhow::Result<(String, Vec<f32>)> {
    let path = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let mut opened = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let (header, _) = header::read_header(&mut opened).with_context(|| format!("reading {}", path.display()))?;
    let embeddings = embed::embed(&header);
    let vector = match by {
        SimilarBy::Metadata => embeddings.metadata.to_vec(),
        SimilarBy::Channels => embeddings.channels.to_vec(),
    };
    let uri = file_uri(&path).with_context(|| format!("{} is not a UTF-8 path", path.display()))?;
    Ok((uri, vector))
}
