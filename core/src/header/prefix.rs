//! Reading just the header bytes of a file from a stream, growing the read on demand.

use std::io::{self, Read};

use thiserror::Error;

use super::limits::MAX_HEADER_BYTES;
use super::{Header, HeaderError, Progress, parse};

/// First read size: holds the whole header of most render files (a few KiB; many-AOV
/// headers, previews and huge attribute sets take one more read, sized by what the parser
/// asks for). Larger first reads cost copying pixel bytes that are never looked at.
pub const INITIAL_READ: usize = 8 * 1024;

/// Why [`read_header`] failed.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The stream could not be read.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a readable header.
    #[error(transparent)]
    Header(#[from] HeaderError),
}

/// Reads the header from the start of `reader`, reading [`INITIAL_READ`] bytes first and more
/// only when the header goes on. Returns the header and the number of bytes read, which is
/// at most the header length rounded up to the growth step, never the whole file.
pub fn read_header(reader: &mut impl Read) -> Result<(Header, usize), ReadError> {
    let mut buf = Vec::new();
    let mut want = INITIAL_READ;
    loop {
        let eof = fill(reader, &mut buf, want)?;
        match parse(&buf)? {
            Progress::Complete(header) => return Ok((header, buf.len())),
            Progress::NeedMore(needed) if eof => {
                return Err(HeaderError::Truncated { needed, available: buf.len() }.into());
            }
            Progress::NeedMore(needed) => {
                want = needed.max(buf.len().saturating_mul(2)).min(MAX_HEADER_BYTES);
            }
        }
    }
}

/// Reads until `buf` holds `want` bytes or the stream ends; returns whether it ended.
fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let missing = want.saturating_sub(buf.len());
    let got = reader.by_ref().take(missing as u64).read_to_end(buf)?;
    Ok(got < missing)
}
