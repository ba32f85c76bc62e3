//! `exrscan inspect FILE…`: reads each file's header (never its pixels) and prints a record.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use exrscan::embed::{self, Embeddings};
use exrscan::header::{self, Header, ReadError};
use exrscan::record::{Record, frame_number};

/// Print the header of each OpenEXR file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Only the header bytes are read (64 KiB first, more only for larger headers).

Exit status: 0 when every file was handled, including files whose header is not valid \
(they are reported with \"ok\": false); 1 when a file could not be opened or read (it is \
still reported, with \"ok\": false and the I/O error) or stdout failed; 2 for usage errors.")]
pub struct Args {
    /// Files to inspect.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print one JSON record per file (JSON lines, schema_version 1) instead of a summary.
    #[arg(long)]
    json: bool,
    /// Add the metadata embedding (384-d) and channel fingerprint (128-d) to each record.
    #[arg(long)]
    embeddings: bool,
}

/// One inspected file.
struct Inspected {
    path: String,
    size_bytes: Option<u64>,
    outcome: Result<Header, String>,
    io_failed: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut line = Vec::with_capacity(64 * 1024);
    let mut io_failed = false;
    for path in &args.files {
        let file = inspect(path);
        io_failed |= file.io_failed;
        let embeddings = match (&file.outcome, args.embeddings) {
            (Ok(header), true) => Some(embed::embed(header)),
            _ => None,
        };
        let written = if args.json {
            line.clear();
            json_line(&mut line, &file, args.embeddings, embeddings.as_ref());
            out.write_all(&line)
        } else {
            write_summary(&mut out, &file, embeddings.as_ref())
        };
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            other => other.context("writing to stdout")?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other.context("writing to stdout")?,
    }
    Ok(if io_failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn inspect(path: &PathBuf) -> Inspected {
    let display = path.to_string_lossy().into_owned();
    let opened = File::open(path).and_then(|f| f.metadata().map(|m| (f, m.len())));
    let (mut file, size) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            return Inspected {
                path: display,
                size_bytes: None,
                outcome: Err(format!("open failed: {e}")),
                io_failed: true,
            };
        }
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
    }
    if let Some(e) = embeddings {
        writeln!(out, "  embeddings: metadata {:.4?}…, channels {:.4?}…", &e.metadata[..4], &e.channels[..4])?;
    }
    Ok(())
}
