//! OpenEXR header reader working on a byte prefix of a file.
//!
//! [`parse`] takes the first bytes of a file and either returns the complete [`Header`] (every
//! part, every attribute in file order with its exact type name and a typed value) or says how
//! long a prefix it needs ([`Progress::NeedMore`]), so that a ranged GET can be grown without
//! re-reading. It stops at the end of the header list: offset tables and pixels are never
//! touched.
//!
//! # Why not the `exr` crate
//!
//! The `exr` crate reads well-formed headers quickly, but it cannot serve as this reader:
//! - it reads from a `Read` stream and fails on end of input, so it cannot say how many more
//!   bytes it needs, nor how long the header was (needed for `header_bytes`/`header_hash`);
//! - it validates for decoding, and so refuses headers an indexer must still report, e.g.
//!   compression codes it does not know (12 and up, which OpenEXR 3.5 writes for LJ2K and
//!   ZSTD) and windows it finds odd;
//! - it folds attributes into its own model, which loses their order and the raw bytes of
//!   custom types that the catalog must keep.
//!
//! So the framing (magic, version flags, the attribute list of each part, the end of the
//! header list) is read here with a small bounds-checked reader, and values are decoded by
//! type name exactly as OpenEXR's `Header::readFrom` does. The `exr` crate is used in the
//! tests as an independent reader: on files both accept, both must agree.
//!
//! # Strictness
//!
//! Framing errors are fatal (a bad magic number, an unknown version or flag, a name without
//! its null byte, a negative size, a value that does not decode, the same attribute twice with
//! different types, a missing `channels`, `compression` or `tiles`, parts of a multi-part file
//! that disagree on shared attributes): OpenEXR refuses those too. Semantic oddities are
//! reported, never fatal: unknown compression, line order, pixel type or level codes, empty or
//! inverted windows, zero sampling. A repeated attribute of the same type keeps its first
//! position and its last value, as in OpenEXR.
//!
//! Where OpenEXR 3.1 (Debian's `exrheader`, the reference of the agreement tests) is lenient,
//! so is this reader: known types are read by their structure whatever their declared size;
//! absent windows, `pixelAspectRatio` and `lineOrder` take the defaults of OpenEXR's `Header()`;
//! a single-part image file's type comes from its tiled flag, not its `type` attribute.
//!
//! # Hostile input
//!
//! Nothing here panics on any input, and [`limits`] caps every size and count read from the
//! header, so memory stays bounded by a small multiple of [`limits::MAX_HEADER_BYTES`].

mod channel;
mod cursor;
mod error;
pub mod limits;
mod part;
mod prefix;
mod shared;
mod value;

#[cfg(test)]
pub(crate) mod build;
#[cfg(test)]
pub(crate) mod tests;

use sha2::{Digest, Sha256};

pub use channel::{Channel, PixelType};

/// An attribute or channel name. Names are short (a render header has dozens of them), so
/// they are stored inline up to 24 bytes rather than each in its own heap allocation.
pub type Name = compact_str::CompactString;
pub use error::HeaderError;
pub use part::{Attribute, Part, PartType};
pub use prefix::{ReadError, read_header};
pub use value::{
    AttributeValue, Box2f, Box2i, Chromaticities, Compression, DeepImageState, Envmap, KeyCode, LevelMode, LineOrder,
    Preview, Rational, RoundingMode, TileDescription, TimeCode,
};

use cursor::{Cursor, NameError};
use limits::{Budget, MAX_ATTRIBUTE_BYTES, MAX_HEADER_BYTES, MAX_NAME_BYTES, MAX_PARTS};
use value::DecodeError;

/// The four bytes every OpenEXR file starts with (20000630 little-endian).
pub const MAGIC: [u8; 4] = [0x76, 0x2f, 0x31, 0x01];
/// Version-field flag: single-part tiled file.
pub const FLAG_TILED: u32 = 0x200;
/// Version-field flag: names may be up to 255 bytes long.
pub const FLAG_LONG_NAMES: u32 = 0x400;
/// Version-field flag: single-part deep ("non-image") file.
pub const FLAG_NON_IMAGE: u32 = 0x800;
/// Version-field flag: multi-part file.
pub const FLAG_MULTIPART: u32 = 0x1000;
const KNOWN_FLAGS: u32 = FLAG_TILED | FLAG_LONG_NAMES | FLAG_NON_IMAGE | FLAG_MULTIPART;

/// Outcome of [`parse`] on a prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The prefix holds the whole header.
    Complete(Header),
    /// The header goes on past the prefix: a prefix of at least this many bytes (in total) is
    /// needed. This is a lower bound (exact when the prefix ends inside a value whose length
    /// is its declared size: strings, vectors, unknown types);
    /// callers should grow by at least a chunk, e.g. to `max(n, 2 * prefix.len())`.
    NeedMore(usize),
}

/// The header of an OpenEXR file: version, flags and every part.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// File format version (the low byte of the version field; always 2).
    pub version: u8,
    /// Flag bits of the version field (the field without its low byte).
    pub flags: u32,
    /// Bytes from the start of the file to the end of the header list, including the magic
    /// number, the version field and the terminating null byte(s).
    pub header_bytes: usize,
    /// SHA-256 of those `header_bytes` bytes.
    pub header_hash: [u8; 32],
    /// The parts, in file order (one for a single-part file).
    pub parts: Vec<Part>,
}

impl Header {
    /// Multi-part file (flag 0x1000).
    pub fn multipart(&self) -> bool {
        self.flags & FLAG_MULTIPART != 0
    }

    /// Long names allowed (flag 0x400).
    pub fn long_names(&self) -> bool {
        self.flags & FLAG_LONG_NAMES != 0
    }

    /// Some part holds deep data. For single-part files this is the non-image flag (0x800);
    /// multi-part files say it only in their parts' `type`.
    pub fn deep(&self) -> bool {
        self.parts.iter().any(|p| p.part_type.is_deep())
    }

    /// Some part is tiled. For single-part files this is the tiled flag (0x200).
    pub fn tiled(&self) -> bool {
        self.parts.iter().any(|p| p.part_type.is_tiled())
    }

    /// `header_hash` as 64 lowercase hex digits.
    pub fn header_hash_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.header_hash {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }
}

/// Reads the header from a prefix of a file. Never reads past the end of the header list.
pub fn parse(prefix: &[u8]) -> Result<Progress, HeaderError> {
    match read(prefix) {
        Ok(header) => Ok(Progress::Complete(header)),
        Err(Stop::NeedMore(needed)) if needed > MAX_HEADER_BYTES => {
            Err(HeaderError::TooLarge { limit: MAX_HEADER_BYTES })
        }
        Err(Stop::NeedMore(needed)) => Ok(Progress::NeedMore(needed)),
        Err(Stop::Invalid(error)) => Err(error),
    }
}

/// Reads the header from a whole file, or from a prefix that must hold the whole header
/// ([`HeaderError::Truncated`] otherwise).
pub fn parse_complete(file_bytes: &[u8]) -> Result<Header, HeaderError> {
    match parse(file_bytes)? {
        Progress::Complete(header) => Ok(header),
        Progress::NeedMore(needed) => Err(HeaderError::Truncated { needed, available: file_bytes.len() }),
    }
}

/// Why reading stopped before the end of the header.
enum Stop {
    NeedMore(usize),
    Invalid(HeaderError),
}

impl From<HeaderError> for Stop {
    fn from(error: HeaderError) -> Self {
        Self::Invalid(error)
    }
}

fn read(buf: &[u8]) -> Result<Header, Stop> {
    let magic_len = buf.len().min(MAGIC.len());
    if buf.get(..magic_len) != MAGIC.get(..magic_len) {
        return Err(HeaderError::NotExr.into());
    }
    let field = match buf.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
        Some(field) => u32::from_le_bytes(field),
        None => return Err(Stop::NeedMore(8)),
    };
    let version = (field & 0xff) as u8;
    let flags = field & !0xff;
    if version != 2 {
        return Err(HeaderError::UnsupportedVersion(version).into());
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(HeaderError::UnknownFlags(flags & !KNOWN_FLAGS).into());
    }
    let multipart = flags & FLAG_MULTIPART != 0;

    let mut pos = 8;
    let mut budget = Budget::new();
    let mut parts = Vec::new();
    loop {
        if multipart {
            match buf.get(pos) {
                None => return Err(Stop::NeedMore(pos + 1)),
                Some(0) => {
                    pos += 1;
                    break;
                }
                Some(_) => {}
            }
        }
        if parts.len() == MAX_PARTS {
            return Err(HeaderError::TooMany { what: "parts", limit: MAX_PARTS }.into());
        }
        let attributes = read_attributes(buf, &mut pos, parts.len(), &mut budget)?;
        parts.push(Part::new(parts.len(), attributes, flags)?);
        if !multipart {
            break;
        }
    }
    if parts.is_empty() {
        return Err(HeaderError::NoParts.into());
    }
    shared::check(&parts)?;
    if pos > MAX_HEADER_BYTES {
        return Err(HeaderError::TooLarge { limit: MAX_HEADER_BYTES }.into());
    }
    let header_hash = buf.get(..pos).map(|raw| Sha256::digest(raw).into()).unwrap_or_default();
    Ok(Header { version, flags, header_bytes: pos, header_hash, parts })
}

/// Reads one part's attribute list, up to and including its terminating null byte.
fn read_attributes(buf: &[u8], pos: &mut usize, part: usize, budget: &mut Budget) -> Result<Vec<Attribute>, Stop> {
    let mut attributes = part::AttributeList::default();
    loop {
        let mut c = Cursor::at(buf, *pos);
        let name = read_name(&mut c, part, "attribute name")?;
        if name.is_empty() {
            *pos = c.position();
            return Ok(attributes.into_vec());
        }
        let type_name = read_name(&mut c, part, "attribute type name")?;
        let size = match c.take(4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
            Some(size) => i32::from_le_bytes(size),
            None => return Err(Stop::NeedMore(c.position() + 4)),
        };
        let Ok(size) = usize::try_from(size) else {
            return Err(HeaderError::NegativeSize { part, attribute: value::text(name) }.into());
        };
        let start = c.position();
        if value::read_by_structure(type_name) {
            let (value, len) = read_by_structure(buf, start, part, name, type_name, budget)?;
            attributes.insert(part, name, value)?;
            *pos = start + len;
            continue;
        }
        if size > MAX_ATTRIBUTE_BYTES {
            let error =
                HeaderError::AttributeTooLarge { part, attribute: value::text(name), size, limit: MAX_ATTRIBUTE_BYTES };
            return Err(error.into());
        }
        let end = start + size;
        let Some(data) = buf.get(start..end) else {
            // The value and at least the next name's first byte.
            return Err(Stop::NeedMore(end + 1));
        };
        if !budget.attribute() {
            return Err(HeaderError::TooMany { what: "attributes", limit: limits::MAX_ATTRIBUTES }.into());
        }
        let value =
            value::decode(type_name, data, budget).map_err(|error| decode_error(error, part, name, type_name))?;
        attributes.insert(part, name, value)?;
        *pos = end;
    }
}

/// Reads a value of a known type by its structure from `start`, ignoring its declared size as
/// OpenEXR 3.1 does (see [`value::read_by_structure`]); returns it and its length in bytes.
/// At most [`MAX_ATTRIBUTE_BYTES`] are looked at, so the declared size never drives allocation.
fn read_by_structure(
    buf: &[u8],
    start: usize,
    part: usize,
    name: &[u8],
    type_name: &[u8],
    budget: &mut Budget,
) -> Result<(AttributeValue, usize), Stop> {
    if !budget.attribute() {
        return Err(HeaderError::TooMany { what: "attributes", limit: limits::MAX_ATTRIBUTES }.into());
    }
    let end = buf.len().min(start.saturating_add(MAX_ATTRIBUTE_BYTES));
    let bytes = buf.get(start..end).unwrap_or_default();
    match value::decode_by_structure(type_name, bytes, budget) {
        Err(DecodeError::Short(wanted)) if end == buf.len() => Err(Stop::NeedMore(start + wanted)),
        result => result.map_err(|error| decode_error(error, part, name, type_name).into()),
    }
}

fn decode_error(error: DecodeError, part: usize, name: &[u8], type_name: &[u8]) -> HeaderError {
    match error {
        DecodeError::Bad(reason) => {
            HeaderError::BadValue { part, attribute: value::text(name), type_name: value::text(type_name), reason }
        }
        DecodeError::Short(_) => HeaderError::BadValue {
            part,
            attribute: value::text(name),
            type_name: value::text(type_name),
            reason: "value is longer than the attribute size limit",
        },
        DecodeError::TooMany(what, limit) => HeaderError::TooMany { what, limit },
    }
}

fn read_name<'a>(c: &mut Cursor<'a>, part: usize, what: &'static str) -> Result<&'a [u8], Stop> {
    c.name(MAX_NAME_BYTES).map_err(|error| match error {
        NameError::TooLong => Stop::Invalid(HeaderError::NameTooLong { part, what }),
        NameError::Unterminated => Stop::NeedMore(c.position() + c.remaining() + 1),
    })
}
