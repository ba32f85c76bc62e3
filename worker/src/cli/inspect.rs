//! `exrscan inspect PATH…`: reads the header of each file (never its pixels) and prints it:
//! a summary with every attribute's value, or one JSON record per file. A path may be a
//! file, a directory (searched recursively) or an `s3://` object or prefix.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use exrscan::embed::{self, Embeddings};
use exrscan::header::{self, AttributeValue, Header, ReadError};
use exrscan::plan::Partition;
use exrscan::record::{Record, frame_number};
use exrscan::source::local::LocalSource;
use exrscan::source::s3::{S3Source, S3Url};
use exrscan::source::{Source, SourceError};
use futures::StreamExt as _;

use super::log::{self, LogFormat};
use super::s3_args::{FilterArgs, HeaderReadArgs, S3Args, user_agent};

/// Print the header of each OpenEXR file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Only the header bytes are read (64 KiB first, more only for larger headers). A directory is \
searched recursively for the files --include/--exclude keep (default: names ending in .exr); \
s3://bucket/key.exr reads one object, any other s3:// URL lists a prefix (with the same \
globs). The text view prints each part's attributes as `name (type): value`, as exrheader does.

Exit status: 0 when every file was handled, including files whose header is not valid \
(they are reported with \"ok\": false); 1 when a file, directory, object or prefix could not \
be opened or read (it is still reported, with \"ok\": false and the error) or stdout failed; \
2 for usage errors.")]
pub struct Args {
    /// Files, directories or s3:// URLs to inspect.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Print one JSON record per file (JSON lines, schema_version 1) instead of text.
    #[arg(long)]
    json: bool,
    /// Add the metadata embedding (384-d) and channel fingerprint (128-d) to each record.
    #[arg(long)]
    embeddings: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    reads: HeaderReadArgs,
}

/// S3 headers read at once.
const S3_READS: usize = 16;

/// One inspected file.
struct Inspected {
    path: String,
    size_bytes: Option<u64>,
    outcome: Result<Header, String>,
    /// The file could not be opened or read (as opposed to holding a bad header).
    io_failed: bool,
}

impl Inspected {
    fn failed(path: String, error: String) -> Self {
        Self { path, size_bytes: None, outcome: Err(error), io_failed: true }
    }
}

/// Where results go: text or JSON on stdout.
struct Printer<'a> {
    out: BufWriter<io::StdoutLock<'a>>,
    line: Vec<u8>,
    json: bool,
    embeddings: bool,
    io_failed: bool,
}

impl Printer<'_> {
    fn print(&mut self, file: &Inspected) -> io::Result<()> {
        self.io_failed |= file.io_failed;
        let embeddings = match (&file.outcome, self.embeddings) {
            (Ok(header), true) => Some(embed::embed(header)),
            _ => None,
        };
        if self.json {
            self.line.clear();
            json_line(&mut self.line, file, self.embeddings, embeddings.as_ref());
            self.out.write_all(&self.line)
        } else {
            write_summary(&mut self.out, file, embeddings.as_ref())
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    log::init(LogFormat::Text, None);
    let stdout = io::stdout();
    let mut printer = Printer {
        out: BufWriter::with_capacity(256 * 1024, stdout.lock()),
        line: Vec::with_capacity(64 * 1024),
        json: args.json,
        embeddings: args.embeddings,
        io_failed: false,
    };
    let mut runtime: Option<tokio::runtime::Runtime> = None;
    let printed = (|| -> io::Result<()> {
        for path in &args.paths {
            if path.starts_with("s3://") {
                if runtime.is_none() {
                    runtime = Some(tokio::runtime::Builder::new_multi_thread().enable_all().build()?);
                }
                if let Some(runtime) = &runtime {
                    runtime.block_on(inspect_s3(args, path, &mut printer))?;
                }
            } else if Path::new(path).is_dir() {
                inspect_dir(args, path, &mut printer)?;
            } else {
                printer.print(&inspect_file(Path::new(path)))?;
            }
        }
        printer.out.flush()
    })();
    match printed {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing to stdout")?,
    }
    Ok(if printer.io_failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Every file under the directory `dir` that the globs keep, in name order.
fn inspect_dir(args: &Args, dir: &str, printer: &mut Printer<'_>) -> io::Result<()> {
    let source = match args.filter.filter() {
        Ok(filter) => LocalSource::new(Path::new(dir)).map(|source| source.with_filter(filter)),
        Err(e) => return printer.print(&Inspected::failed(dir.to_string(), e.to_string())),
    };
    let source = match source {
        Ok(source) => source,
        Err(e) => return printer.print(&Inspected::failed(dir.to_string(), e.to_string())),
    };
    let (found, mut listed) = tokio::sync::mpsc::channel(1024);
    let walker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        runtime.block_on(source.list(found)).map_err(io::Error::other)
    });
    while let Some(item) = listed.blocking_recv() {
        let file = match item {
            // Shown as given: below `dir`, not its absolute path.
            Ok(file) => inspect_file(&Path::new(dir).join(&file.key)),
            Err(e) => failure(e, dir),
        };
        printer.print(&file)?;
    }
    match walker.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => printer.print(&Inspected::failed(dir.to_string(), e.to_string())),
        Err(_) => Err(io::Error::other("the directory walk panicked")),
    }
}

/// A source error as a record: its location (else `default`) as the path, its reason as
/// the error.
fn failure(error: SourceError, default: &str) -> Inspected {
    let (location, reason) = match error {
        SourceError::Unusable { location, reason }
        | SourceError::Entry { location, reason }
        | SourceError::Unavailable { location, reason }
        | SourceError::Credentials { location, reason } => (location, reason),
        SourceError::File { reason } => (default.to_string(), reason),
    };
    Inspected::failed(location, reason)
}

/// One object (`s3://bucket/key.exr`) or every object under a prefix that the globs keep.
async fn inspect_s3(args: &Args, url: &str, printer: &mut Printer<'_>) -> io::Result<()> {
    let parsed = match S3Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => return printer.print(&Inspected::failed(url.to_string(), e.to_string())),
    };
    let (include, exclude) = args.filter.patterns();
    let whole = vec![Partition::everything(0)];
    let source = match args.s3.source(&parsed, whole, (&include, &exclude), &args.reads, user_agent("inspect")) {
        Ok(source) => Arc::new(source),
        Err(e) => return printer.print(&Inspected::failed(url.to_string(), e.to_string())),
    };
    let single = parsed.prefix.len() > 4
        && parsed.prefix.get(parsed.prefix.len() - 4..).is_some_and(|end| end.eq_ignore_ascii_case(".exr"));
    if single {
        let file = match source.object(&parsed.prefix).await {
            Ok(file) => read_s3(&source, file).await,
            Err(e) => failure(e, url),
        };
        return printer.print(&file);
    }
    let (found, listed) = tokio::sync::mpsc::channel(1024);
    let lister = {
        let source = Arc::clone(&source);
        tokio::spawn(async move { source.list(found).await })
    };
    let mut reads = tokio_stream_of(listed)
        .map(|item| {
            let source = Arc::clone(&source);
            async move {
                match item {
                    Ok(file) => read_s3(&source, file).await,
                    Err(e) => failure(e, url),
                }
            }
        })
        .buffered(S3_READS);
    while let Some(file) = reads.next().await {
        printer.print(&file)?;
    }
    match lister.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => printer.print(&failure(e, url)),
        Err(e) => Err(io::Error::other(format!("the listing task failed: {e}"))),
    }
}

fn tokio_stream_of<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Reads the header of an S3 object. A header that is not valid is reported as such; a
/// request that failed (outage, refused credentials, missing object) counts as I/O.
async fn read_s3(source: &S3Source, file: exrscan::catalog::SourceFile) -> Inspected {
    match source.read_header(&file).await {
        Ok(read) => {
            let seen = read.file.unwrap_or(file);
            Inspected { path: seen.uri, size_bytes: Some(seen.size_bytes), outcome: Ok(read.header), io_failed: false }
        }
        Err(e) => {
            let io_failed = !matches!(e, SourceError::File { .. });
            Inspected { path: file.uri, size_bytes: Some(file.size_bytes), outcome: Err(e.to_string()), io_failed }
        }
    }
}

fn inspect_file(path: &Path) -> Inspected {
    let display = path.to_string_lossy().into_owned();
    let opened = File::open(path).and_then(|f| f.metadata().map(|m| (f, m.len())));
    let (mut file, size) = match opened {
        Ok(opened) => opened,
        Err(e) => return Inspected::failed(display, format!("open failed: {e}")),
    };
    // Bounded by the size, so that reaching the end of a short file costs no extra read.
    let (outcome, io_failed) = match header::read_header(&mut (&mut file).take(size)) {
        Ok((header, _)) => (Ok(header), false),
        Err(e @ ReadError::Io(_)) => (Err(e.to_string()), true),
        Err(e @ ReadError::Header(_)) => (Err(e.to_string()), false),
    };
    Inspected { path: display, size_bytes: Some(size), outcome, io_failed }
}

fn json_line(line: &mut Vec<u8>, file: &Inspected, with_embeddings: bool, embeddings: Option<&Embeddings>) {
    let record = match &file.outcome {
        Ok(header) => Record::ok(&file.path, file.size_bytes, header),
        Err(error) => Record::failed(&file.path, file.size_bytes, error),
    };
    let record = if with_embeddings { record.with_embeddings(embeddings) } else { record };
    record.append_line(line);
}

/// Longest attribute value printed whole in the text view, in characters.
const MAX_VALUE: usize = 200;

/// An attribute's value on one line: strings quoted (escapes for line breaks), string
/// vectors as lists of them, the rest as the catalog's `value_text`; cut at [`MAX_VALUE`].
fn value_text(value: &AttributeValue) -> String {
    let text = match value {
        AttributeValue::String(s) => format!("{s:?}"),
        AttributeValue::StringVector(items) => {
            format!("[{}]", items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))
        }
        other => other.to_text().replace('\n', "\\n"),
    };
    match text.char_indices().nth(MAX_VALUE) {
        Some((at, _)) => format!("{}… ({} characters)", &text[..at], text.chars().count()),
        None => text,
    }
}

fn write_summary(out: &mut impl Write, file: &Inspected, embeddings: Option<&Embeddings>) -> io::Result<()> {
    let header = match &file.outcome {
        Ok(header) => header,
        Err(error) => return writeln!(out, "{}: error: {error}", file.path),
    };
    write!(out, "{}: ", file.path)?;
    let parts = header.parts.len();
    write!(out, "{parts} part{}", if parts == 1 { "" } else { "s" })?;
    for (flag, name) in [
        (header.multipart(), "multi-part"),
        (header.tiled(), "tiled"),
        (header.deep(), "deep"),
        (header.long_names(), "long names"),
    ] {
        if flag {
            write!(out, ", {name}")?;
        }
    }
    write!(out, ", header {} bytes", header.header_bytes)?;
    if let Some(frame) = frame_number(&file.path) {
        write!(out, ", frame {frame}")?;
    }
    writeln!(out)?;
    for part in &header.parts {
        let dw = &part.data_window;
        write!(out, "  part {}", part.index)?;
        if let Some(name) = part.name() {
            write!(out, " {name:?}")?;
        }
        if let Some(view) = part.view() {
            write!(out, " view {view:?}")?;
        }
        write!(out, ": {}, {}, {}x{}", part.type_name(), part.compression, dw.width(), dw.height())?;
        if let Some(tiles) = part.tiles {
            write!(out, ", tiles {}x{} {}", tiles.x_size, tiles.y_size, tiles.level_mode)?;
        }
        writeln!(out, ", {} attributes", part.attributes().len())?;
        write!(out, "    channels ({}):", part.channels().len())?;
        for channel in part.channels() {
            write!(out, " {}:{}", channel.name, channel.pixel_type)?;
            if (channel.x_sampling, channel.y_sampling) != (1, 1) {
                write!(out, "/{}x{}", channel.x_sampling, channel.y_sampling)?;
            }
        }
        writeln!(out)?;
        for attribute in part.attributes() {
            if matches!(attribute.value, AttributeValue::ChannelList(_)) {
                continue;
            }
            writeln!(out, "    {} ({}): {}", attribute.name, attribute.type_name(), value_text(&attribute.value))?;
        }
    }
    if let Some(e) = embeddings {
        writeln!(out, "  embeddings: metadata {:.4?}…, channels {:.4?}…", &e.metadata[..4], &e.channels[..4])?;
    }
    Ok(())
}
