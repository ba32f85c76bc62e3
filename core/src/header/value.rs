//! Attribute values: one variant per OpenEXR attribute type, and their decoding from the
//! little-endian bytes of an attribute.

use sha2::{Digest, Sha256};

use super::Name;
use super::channel::{Channel, PixelType};
use super::cursor::{Cursor, NameError, SHORT};
use super::limits::{Budget, MAX_ATTRIBUTE_BYTES, MAX_NAME_BYTES};

/// An enum-like code as stored in the file, with OpenEXR's names for the known codes.
macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident($repr:ty) { $($code:literal => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        ///
        /// Codes OpenEXR does not define are kept; they print as `unknown(N)`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub $repr);

        impl $name {
            /// OpenEXR's name for the code, or `None` for a code it does not define.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some($text),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "unknown({})", self.0),
                }
            }
        }
    };
}

code_type! {
    /// Compression method of a part (`compression` attribute), named as OpenEXR's
    /// `getCompressionNameFromId` names it.
    ///
    /// The codes and names are OpenEXR 3.5's (`LJ2K_COMPRESSION` = 12, `ZSTD_COMPRESSION` =
    /// 13, `NUM_COMPRESSION_METHODS` = 14), the release that writes the newest codecs we index.
    Compression(u8) {
        0 => "none", 1 => "rle", 2 => "zips", 3 => "zip", 4 => "piz", 5 => "pxr24",
        6 => "b44", 7 => "b44a", 8 => "dwaa", 9 => "dwab", 10 => "htj2k256", 11 => "htj2k32",
        12 => "lj2k", 13 => "zstd",
    }
}

code_type! {
    /// Scan-line order of a part (`lineOrder` attribute).
    LineOrder(u8) { 0 => "increasing_y", 1 => "decreasing_y", 2 => "random_y" }
}

code_type! {
    /// Environment map kind (`envmap` attribute type).
    Envmap(u8) { 0 => "latlong", 1 => "cube" }
}

code_type! {
    /// State of deep samples (`deepImageState` attribute type).
    DeepImageState(u8) { 0 => "messy", 1 => "sorted", 2 => "non_overlapping", 3 => "tidy" }
}

code_type! {
    /// Resolution levels of a tiled part: the low nibble of a `tiledesc` mode byte.
    LevelMode(u8) { 0 => "one", 1 => "mipmap", 2 => "ripmap" }
}

code_type! {
    /// How level sizes are rounded: the high nibble of a `tiledesc` mode byte.
    RoundingMode(u8) { 0 => "down", 1 => "up" }
}

/// Integer rectangle, both corners inclusive (`box2i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Box2i {
    /// Lower corner (x, y).
    pub min: [i32; 2],
    /// Upper corner (x, y), inclusive.
    pub max: [i32; 2],
}

impl Box2i {
    /// Width in pixels (`max.x - min.x + 1`), computed without overflow; may be ≤ 0 for odd
    /// windows, which are reported rather than refused.
    pub fn width(&self) -> i64 {
        i64::from(self.max[0]) - i64::from(self.min[0]) + 1
    }

    /// Height in pixels (`max.y - min.y + 1`), computed without overflow.
    pub fn height(&self) -> i64 {
        i64::from(self.max[1]) - i64::from(self.min[1]) + 1
    }
}

/// Float rectangle (`box2f`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Box2f {
    /// Lower corner (x, y).
    pub min: [f32; 2],
    /// Upper corner (x, y).
    pub max: [f32; 2],
}

/// CIE x,y chromaticities of the primaries and white point (`chromaticities`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chromaticities {
    /// Red primary (x, y).
    pub red: [f32; 2],
    /// Green primary (x, y).
    pub green: [f32; 2],
    /// Blue primary (x, y).
    pub blue: [f32; 2],
    /// White point (x, y).
    pub white: [f32; 2],
}

/// Film edge code (`keycode`), fields in OpenEXR's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCode {
    /// Film manufacturer code.
    pub film_mfc_code: i32,
    /// Film type code.
    pub film_type: i32,
    /// Prefix.
    pub prefix: i32,
    /// Count.
    pub count: i32,
    /// Perforation offset.
    pub perf_offset: i32,
    /// Perforations per frame.
    pub perfs_per_frame: i32,
    /// Perforations per count.
    pub perfs_per_count: i32,
}

/// A ratio (`rational`): signed numerator, unsigned denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    /// Numerator.
    pub n: i32,
    /// Denominator.
    pub d: u32,
}

/// Tile layout of a tiled part (`tiledesc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileDescription {
    /// Tile width in pixels.
    pub x_size: u32,
    /// Tile height in pixels.
    pub y_size: u32,
    /// Single level, mip-map or rip-map.
    pub level_mode: LevelMode,
    /// Level size rounding.
    pub rounding_mode: RoundingMode,
}

/// SMPTE time code (`timecode`) as stored: packed time and flags, and user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeCode {
    /// Packed BCD time and flag bits (OpenEXR's TV60 packing).
    pub time_and_flags: u32,
    /// Binary groups.
    pub user_data: u32,
}

impl TimeCode {
    fn bcd(self, low_bit: u32, bits: u32) -> u32 {
        let v = (self.time_and_flags >> low_bit) & ((1 << bits) - 1);
        (v & 0x0f) + 10 * (v >> 4)
    }

    fn flag(self, bit: u32) -> bool {
        self.time_and_flags & (1 << bit) != 0
    }

    /// Hours (bits 24–29, BCD).
    pub fn hours(self) -> u32 {
        self.bcd(24, 6)
    }

    /// Minutes (bits 16–22, BCD).
    pub fn minutes(self) -> u32 {
        self.bcd(16, 7)
    }

    /// Seconds (bits 8–14, BCD).
    pub fn seconds(self) -> u32 {
        self.bcd(8, 7)
    }

    /// Frame (bits 0–5, BCD).
    pub fn frame(self) -> u32 {
        self.bcd(0, 6)
    }

    /// Drop-frame flag (bit 6).
    pub fn drop_frame(self) -> bool {
        self.flag(6)
    }

    /// Color-frame flag (bit 7).
    pub fn color_frame(self) -> bool {
        self.flag(7)
    }

    /// Field/phase flag (bit 15).
    pub fn field_phase(self) -> bool {
        self.flag(15)
    }

    /// Binary group flags 0, 1, 2 (bits 23, 30, 31).
    pub fn bgf(self) -> [bool; 3] {
        [self.flag(23), self.flag(30), self.flag(31)]
    }
}

/// A preview image (`preview`): its size and the SHA-256 of its RGBA bytes, never the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preview {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// SHA-256 of the `width * height * 4` pixel bytes.
    pub sha256: [u8; 32],
}

/// The typed value of one attribute. The variant determines the OpenEXR type name
/// ([`AttributeValue::type_name`]). Values larger than a few words are boxed, so that the
/// common ones (ints, floats, strings, windows) keep attribute lists small.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// `box2i`
    Box2i(Box2i),
    /// `box2f`
    Box2f(Box2f),
    /// `chlist`, in file order (OpenEXR writes it sorted by name).
    ChannelList(Vec<Channel>),
    /// `chromaticities`
    Chromaticities(Box<Chromaticities>),
    /// `compression`
    Compression(Compression),
    /// `double`
    Double(f64),
    /// `envmap`
    Envmap(Envmap),
    /// `float`
    Float(f32),
    /// `floatvector`
    FloatVector(Vec<f32>),
    /// `int`
    Int(i32),
    /// `keycode`
    KeyCode(Box<KeyCode>),
    /// `lineOrder`
    LineOrder(LineOrder),
    /// `m33f`, row-major.
    M33f(Box<[[f32; 3]; 3]>),
    /// `m33d`, row-major.
    M33d(Box<[[f64; 3]; 3]>),
    /// `m44f`, row-major.
    M44f(Box<[[f32; 4]; 4]>),
    /// `m44d`, row-major.
    M44d(Box<[[f64; 4]; 4]>),
    /// `preview`
    Preview(Box<Preview>),
    /// `rational`
    Rational(Rational),
    /// `string` (bytes that are not UTF-8 are replaced by U+FFFD).
    String(String),
    /// `stringvector`
    StringVector(Vec<String>),
    /// `tiledesc`
    TileDescription(TileDescription),
    /// `timecode`
    TimeCode(TimeCode),
    /// `v2i`
    V2i([i32; 2]),
    /// `v2f`
    V2f([f32; 2]),
    /// `v2d`
    V2d([f64; 2]),
    /// `v3i`
    V3i([i32; 3]),
    /// `v3f`
    V3f([f32; 3]),
    /// `v3d`
    V3d([f64; 3]),
    /// `deepImageState`
    DeepImageState(DeepImageState),
    /// `bytes` (OpenEXR 3.4+): a type hint and opaque data.
    Bytes {
        /// Application-defined hint of what the bytes are.
        type_hint: Box<str>,
        /// The data.
        data: Box<[u8]>,
    },
    /// Any other type, including custom ones and `idmanifest` (compressed): the type name as
    /// written in the file and the value's raw bytes.
    Raw {
        /// Type name as written in the file.
        type_name: Box<str>,
        /// The value bytes.
        data: Box<[u8]>,
    },
}

impl AttributeValue {
    /// The OpenEXR type name, spelled exactly as OpenEXR spells it (for [`AttributeValue::Raw`],
    /// exactly as the file spells it).
    pub fn type_name(&self) -> &str {
        match self {
            Self::Box2i(_) => "box2i",
            Self::Box2f(_) => "box2f",
            Self::ChannelList(_) => "chlist",
            Self::Chromaticities(_) => "chromaticities",
            Self::Compression(_) => "compression",
            Self::Double(_) => "double",
            Self::Envmap(_) => "envmap",
            Self::Float(_) => "float",
            Self::FloatVector(_) => "floatvector",
            Self::Int(_) => "int",
            Self::KeyCode(_) => "keycode",
            Self::LineOrder(_) => "lineOrder",
            Self::M33f(_) => "m33f",
            Self::M33d(_) => "m33d",
            Self::M44f(_) => "m44f",
            Self::M44d(_) => "m44d",
            Self::Preview(_) => "preview",
            Self::Rational(_) => "rational",
            Self::String(_) => "string",
            Self::StringVector(_) => "stringvector",
            Self::TileDescription(_) => "tiledesc",
            Self::TimeCode(_) => "timecode",
            Self::V2i(_) => "v2i",
            Self::V2f(_) => "v2f",
            Self::V2d(_) => "v2d",
            Self::V3i(_) => "v3i",
            Self::V3f(_) => "v3f",
            Self::V3d(_) => "v3d",
            Self::DeepImageState(_) => "deepImageState",
            Self::Bytes { .. } => "bytes",
            Self::Raw { type_name, .. } => type_name,
        }
    }
}

/// Why the bytes of a known attribute type do not decode.
pub(super) type ValueError = &'static str;

/// Why an attribute value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// The bytes do not form a value of the type.
    Bad(ValueError),
    /// A count cap was reached: what was counted and the cap.
    TooMany(&'static str, usize),
    /// The bytes end inside a value read by its structure ([`decode_by_structure`]); the
    /// value needs at least this many bytes.
    Short(usize),
}

impl From<ValueError> for DecodeError {
    fn from(reason: ValueError) -> Self {
        Self::Bad(reason)
    }
}

/// Whether values of `type_name` are read by their structure, ignoring the declared size.
///
/// OpenEXR 3.1 (Debian's `exrheader`) reads every known type except `string`, `stringvector`
/// and `floatvector` this way (`TypedAttribute::readValueFrom` ignores the size), and the next
/// attribute starts where the value ends; files with wrong declared sizes (e.g. a `chlist` of
/// 0x30303030 bytes) are accepted. Unknown types (`bytes` included) take the declared size.
pub(super) fn read_by_structure(type_name: &[u8]) -> bool {
    matches!(
        type_name,
        b"box2i"
            | b"box2f"
            | b"chlist"
            | b"chromaticities"
            | b"compression"
            | b"double"
            | b"envmap"
            | b"float"
            | b"int"
            | b"keycode"
            | b"lineOrder"
            | b"m33f"
            | b"m33d"
            | b"m44f"
            | b"m44d"
            | b"preview"
            | b"rational"
            | b"tiledesc"
            | b"timecode"
            | b"v2i"
            | b"v2f"
            | b"v2d"
            | b"v3i"
            | b"v3f"
            | b"v3d"
            | b"deepImageState"
    )
}

/// Decodes a value of a [`read_by_structure`] type from the front of `bytes` (the header from
/// the value on, capped by the caller); returns it and the number of bytes it takes, or
/// [`DecodeError::Short`] when `bytes` end inside it. No size read from the file drives an
/// allocation: channel lists grow per channel present, previews are hashed in place.
pub(super) fn decode_by_structure(
    type_name: &[u8],
    bytes: &[u8],
    budget: &mut Budget,
) -> Result<(AttributeValue, usize), DecodeError> {
    let mut c = Cursor::new(bytes);
    match decode_from(type_name, &mut c, budget) {
        Ok(value) => Ok((value, c.position())),
        Err(DecodeError::Bad(reason)) if reason == SHORT => Err(DecodeError::Short(c.wanted())),
        Err(error) => Err(error),
    }
}

/// Decodes the `data` (of the declared size) of an attribute of type `type_name`. Unknown
/// types become [`AttributeValue::Raw`]; the value must fill `data` exactly.
pub(super) fn decode(type_name: &[u8], data: &[u8], budget: &mut Budget) -> Result<AttributeValue, DecodeError> {
    let mut c = Cursor::new(data);
    let value = decode_from(type_name, &mut c, budget)?;
    if c.remaining() != 0 {
        return Err(DecodeError::Bad("value is longer than its type"));
    }
    Ok(value)
}

fn decode_from(type_name: &[u8], c: &mut Cursor<'_>, budget: &mut Budget) -> Result<AttributeValue, DecodeError> {
    use AttributeValue as V;
    let value = match type_name {
        b"box2i" => V::Box2i(Box2i { min: c.i32s()?, max: c.i32s()? }),
        b"box2f" => V::Box2f(Box2f { min: c.f32s()?, max: c.f32s()? }),
        b"chlist" => V::ChannelList(channel_list(c, budget)?),
        b"chromaticities" => V::Chromaticities(Box::new(Chromaticities {
            red: c.f32s()?,
            green: c.f32s()?,
            blue: c.f32s()?,
            white: c.f32s()?,
        })),
        b"compression" => V::Compression(Compression(c.u8()?)),
        b"double" => V::Double(c.f64()?),
        b"envmap" => V::Envmap(Envmap(c.u8()?)),
        b"float" => V::Float(c.f32()?),
        b"floatvector" => {
            if !c.remaining().is_multiple_of(4) {
                return Err(DecodeError::Bad("size is not a multiple of 4"));
            }
            V::FloatVector(c.rest().chunks_exact(4).map(|b| Cursor::new(b).f32()).collect::<Result<_, _>>()?)
        }
        b"int" => V::Int(c.i32()?),
        b"keycode" => {
            let [film_mfc_code, film_type, prefix, count, perf_offset, perfs_per_frame, perfs_per_count] = c.i32s()?;
            V::KeyCode(Box::new(KeyCode {
                film_mfc_code,
                film_type,
                prefix,
                count,
                perf_offset,
                perfs_per_frame,
                perfs_per_count,
            }))
        }
        b"lineOrder" => V::LineOrder(LineOrder(c.u8()?)),
        b"m33f" => V::M33f(Box::new([c.f32s()?, c.f32s()?, c.f32s()?])),
        b"m33d" => V::M33d(Box::new([c.f64s()?, c.f64s()?, c.f64s()?])),
        b"m44f" => V::M44f(Box::new([c.f32s()?, c.f32s()?, c.f32s()?, c.f32s()?])),
        b"m44d" => V::M44d(Box::new([c.f64s()?, c.f64s()?, c.f64s()?, c.f64s()?])),
        b"preview" => V::Preview(Box::new(preview(c)?)),
        b"rational" => V::Rational(Rational { n: c.i32()?, d: c.u32()? }),
        b"string" => V::String(text(c.rest())),
        b"stringvector" => V::StringVector(string_vector(c, budget)?),
        b"tiledesc" => {
            let x_size = c.u32()?;
            let y_size = c.u32()?;
            let mode = c.u8()?;
            V::TileDescription(TileDescription {
                x_size,
                y_size,
                level_mode: LevelMode(mode & 0x0f),
                rounding_mode: RoundingMode(mode >> 4),
            })
        }
        b"timecode" => V::TimeCode(TimeCode { time_and_flags: c.u32()?, user_data: c.u32()? }),
        b"v2i" => V::V2i(c.i32s()?),
        b"v2f" => V::V2f(c.f32s()?),
        b"v2d" => V::V2d(c.f64s()?),
        b"v3i" => V::V3i(c.i32s()?),
        b"v3f" => V::V3f(c.f32s()?),
        b"v3d" => V::V3d(c.f64s()?),
        b"deepImageState" => V::DeepImageState(DeepImageState(c.u8()?)),
        b"bytes" => {
            let hint_len = usize::try_from(c.u32()?).map_err(|_| "type hint too long")?;
            let hint = c.take(hint_len).ok_or("type hint longer than the value")?;
            V::Bytes { type_hint: text(hint).into(), data: c.rest().into() }
        }
        _ => V::Raw { type_name: text(type_name).into(), data: c.rest().into() },
    };
    Ok(value)
}

/// Text from the file: UTF-8 kept as is, other bytes replaced by U+FFFD.
pub(super) fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// An attribute or channel name from its bytes, invalid UTF-8 replaced by U+FFFD.
pub(super) fn name(bytes: &[u8]) -> Name {
    match std::str::from_utf8(bytes) {
        Ok(text) => Name::new(text),
        Err(_) => Name::from(String::from_utf8_lossy(bytes)),
    }
}

fn channel_list(c: &mut Cursor<'_>, budget: &mut Budget) -> Result<Vec<Channel>, DecodeError> {
    let mut channels = Vec::with_capacity(24);
    loop {
        let name = c.name(MAX_NAME_BYTES).map_err(|error| match error {
            NameError::TooLong => "channel name longer than 255 bytes",
            NameError::Unterminated => SHORT,
        })?;
        if name.is_empty() {
            return Ok(channels);
        }
        budget.channel()?;
        let pixel_type = PixelType(c.i32()?);
        let p_linear = c.u8()? != 0;
        c.take(3).ok_or(SHORT)?;
        let x_sampling = c.i32()?;
        let y_sampling = c.i32()?;
        channels.push(Channel { name: self::name(name), pixel_type, p_linear, x_sampling, y_sampling });
    }
}

fn string_vector(c: &mut Cursor<'_>, budget: &mut Budget) -> Result<Vec<String>, DecodeError> {
    let mut strings = Vec::new();
    while c.remaining() > 0 {
        budget.string()?;
        let len = usize::try_from(c.i32()?).map_err(|_| "negative string length")?;
        let s = c.take(len).ok_or("string longer than the value")?;
        strings.push(text(s));
    }
    Ok(strings)
}

fn preview(c: &mut Cursor<'_>) -> Result<Preview, ValueError> {
    let width = c.u32()?;
    let height = c.u32()?;
    let len = u64::from(width).checked_mul(u64::from(height)).and_then(|n| n.checked_mul(4));
    let len = len.and_then(|n| usize::try_from(n).ok()).filter(|&n| n <= MAX_ATTRIBUTE_BYTES);
    let pixels = c.take(len.ok_or("pixels exceed the attribute size limit")?).ok_or(SHORT)?;
    Ok(Preview { width, height, sha256: Sha256::digest(pixels).into() })
}
