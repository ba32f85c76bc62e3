//! One part of a file: its attributes in file order, and the required ones in typed form.

use std::collections::HashMap;

use super::channel::Channel;
use super::error::HeaderError;
use super::value::{self, AttributeValue, Box2i, Compression, LineOrder, TileDescription};
use super::{FLAG_MULTIPART, FLAG_NON_IMAGE, FLAG_TILED, Name};

/// One attribute: its name as written in the file and its typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Name (bytes that are not UTF-8 are replaced by U+FFFD).
    pub name: Name,
    /// Typed value; its variant gives the type name.
    pub value: AttributeValue,
}

impl Attribute {
    /// OpenEXR type name, exactly as OpenEXR (or, for custom types, the file) spells it.
    pub fn type_name(&self) -> &str {
        self.value.type_name()
    }
}

/// How a part stores its pixels (the `type` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartType {
    /// `scanlineimage`
    ScanlineImage,
    /// `tiledimage`
    TiledImage,
    /// `deepscanline`
    DeepScanline,
    /// `deeptile`
    DeepTile,
    /// A `type` string OpenEXR does not define (see [`Part::type_name`]).
    Unknown,
}

impl PartType {
    fn from_name(name: &str) -> Self {
        match name {
            "scanlineimage" => Self::ScanlineImage,
            "tiledimage" => Self::TiledImage,
            "deepscanline" => Self::DeepScanline,
            "deeptile" => Self::DeepTile,
            _ => Self::Unknown,
        }
    }

    /// OpenEXR's name for the type; `None` for [`PartType::Unknown`].
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::ScanlineImage => Some("scanlineimage"),
            Self::TiledImage => Some("tiledimage"),
            Self::DeepScanline => Some("deepscanline"),
            Self::DeepTile => Some("deeptile"),
            Self::Unknown => None,
        }
    }

    /// Deep scan-line or deep tiled.
    pub fn is_deep(self) -> bool {
        matches!(self, Self::DeepScanline | Self::DeepTile)
    }

    /// Tiled or deep tiled.
    pub fn is_tiled(self) -> bool {
        matches!(self, Self::TiledImage | Self::DeepTile)
    }
}

/// One part of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Position of the part in the file.
    pub index: usize,
    /// Storage type: for single-part image files the tiled flag (`tiledimage` or
    /// `scanlineimage`, whatever `type` says, as in OpenEXR); otherwise the `type` attribute,
    /// or without one, inferred from the flags and the `tiles` attribute.
    pub part_type: PartType,
    /// `compression`
    pub compression: Compression,
    /// `dataWindow` ((0, 0) – (63, 63) when absent, as in OpenEXR).
    pub data_window: Box2i,
    /// `displayWindow` ((0, 0) – (63, 63) when absent, as in OpenEXR).
    pub display_window: Box2i,
    /// `pixelAspectRatio` (1.0 when absent, as in OpenEXR).
    pub pixel_aspect_ratio: f32,
    /// `lineOrder` (`increasing_y` when absent, as in OpenEXR).
    pub line_order: LineOrder,
    /// `tiles`, when present (required for tiled parts).
    pub tiles: Option<TileDescription>,
    attributes: Vec<Attribute>,
    channels: usize,
    name: Option<usize>,
    view: Option<usize>,
    type_attribute: Option<usize>,
}

impl Part {
    /// Every attribute of the part, required ones included, in file order.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The channels (`channels` attribute), in file order.
    pub fn channels(&self) -> &[Channel] {
        match self.attributes.get(self.channels).map(|a| &a.value) {
            Some(AttributeValue::ChannelList(channels)) => channels,
            _ => &[],
        }
    }

    /// The part's `name` attribute (required in multi-part files).
    pub fn name(&self) -> Option<&str> {
        self.string_at(self.name)
    }

    /// The part's `view` attribute (multi-view files).
    pub fn view(&self) -> Option<&str> {
        self.string_at(self.view)
    }

    /// The storage type's name: OpenEXR's for known types, the `type` attribute's text for
    /// unknown ones.
    pub fn type_name(&self) -> &str {
        match self.part_type.name() {
            Some(name) => name,
            None => self.string_at(self.type_attribute).unwrap_or_default(),
        }
    }

    fn string_at(&self, index: Option<usize>) -> Option<&str> {
        match self.attributes.get(index?).map(|a| &a.value) {
            Some(AttributeValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Builds the part from its attributes: checks and copies out the required ones.
    pub(super) fn new(index: usize, attributes: Vec<Attribute>, flags: u32) -> Result<Self, HeaderError> {
        use AttributeValue as V;
        let mut at = Slots::default();
        for (i, attribute) in attributes.iter().enumerate() {
            let slot = match attribute.name.as_str() {
                "channels" => &mut at.channels,
                "compression" => &mut at.compression,
                "dataWindow" => &mut at.data_window,
                "displayWindow" => &mut at.display_window,
                "lineOrder" => &mut at.line_order,
                "pixelAspectRatio" => &mut at.pixel_aspect_ratio,
                "tiles" => &mut at.tiles,
                "name" => &mut at.name,
                "view" => &mut at.view,
                "type" => &mut at.type_attribute,
                _ => continue,
            };
            *slot = Some(i);
        }
        let typed = Typed { part: index, attributes: &attributes };
        let missing = |attribute: &'static str| HeaderError::MissingAttribute { part: index, attribute };

        typed.get(at.channels, "channels", "chlist", |v| matches!(v, V::ChannelList(_)).then_some(()))?;
        let compression = typed.get(at.compression, "compression", "compression", |v| match v {
            V::Compression(c) => Some(*c),
            _ => None,
        })?;
        let data_window = typed.get(at.data_window, "dataWindow", "box2i", box2i)?;
        let display_window = typed.get(at.display_window, "displayWindow", "box2i", box2i)?;
        let line_order = typed.get(at.line_order, "lineOrder", "lineOrder", |v| match v {
            V::LineOrder(l) => Some(*l),
            _ => None,
        })?;
        let pixel_aspect_ratio = typed.get(at.pixel_aspect_ratio, "pixelAspectRatio", "float", |v| match v {
            V::Float(f) => Some(*f),
            _ => None,
        })?;
        let tiles = typed.get(at.tiles, "tiles", "tiledesc", |v| match v {
            V::TileDescription(t) => Some(*t),
            _ => None,
        })?;
        let is_string = |v: &AttributeValue| matches!(v, V::String(_)).then_some(());
        typed.get(at.name, "name", "string", is_string)?;
        typed.get(at.view, "view", "string", is_string)?;
        let type_name = typed.get(at.type_attribute, "type", "string", |v| match v {
            V::String(s) => Some(s.as_str()),
            _ => None,
        })?;

        // OpenEXR's InputFile overrides the `type` of a single-part image file with what the
        // tiled flag says (old writers left stale types behind), so the flag wins here too.
        let single_part_image = flags & (FLAG_MULTIPART | FLAG_NON_IMAGE) == 0;
        let part_type = match type_name {
            Some(name) if !single_part_image => PartType::from_name(name),
            _ => infer_type(flags, tiles.is_some()),
        };
        if part_type.is_tiled() && tiles.is_none() {
            return Err(missing("tiles"));
        }
        Ok(Self {
            index,
            part_type,
            compression: compression.ok_or_else(|| missing("compression"))?,
            // OpenEXR's Header::readFrom fills in a default `Header()`, so a file without these
            // keeps its defaults (64×64 windows, aspect 1.0, increasing_y) and is accepted.
            data_window: data_window.unwrap_or(DEFAULT_WINDOW),
            display_window: display_window.unwrap_or(DEFAULT_WINDOW),
            pixel_aspect_ratio: pixel_aspect_ratio.unwrap_or(1.0),
            line_order: line_order.unwrap_or(LineOrder(0)),
            tiles,
            channels: at.channels.ok_or_else(|| missing("channels"))?,
            name: at.name,
            view: at.view,
            type_attribute: at.type_attribute,
            attributes,
        })
    }
}

/// The windows of OpenEXR's default `Header()`: (0, 0) – (63, 63).
const DEFAULT_WINDOW: Box2i = Box2i { min: [0, 0], max: [63, 63] };

/// Positions of the attributes a part needs in typed form.
#[derive(Default)]
struct Slots {
    channels: Option<usize>,
    compression: Option<usize>,
    data_window: Option<usize>,
    display_window: Option<usize>,
    line_order: Option<usize>,
    pixel_aspect_ratio: Option<usize>,
    tiles: Option<usize>,
    name: Option<usize>,
    view: Option<usize>,
    type_attribute: Option<usize>,
}

/// Typed access to a part's attributes by position, with OpenEXR's expected types.
struct Typed<'a> {
    part: usize,
    attributes: &'a [Attribute],
}

impl<'a> Typed<'a> {
    /// The value at `slot` picked by `pick`; a value `pick` refuses is a [`HeaderError::WrongType`].
    fn get<T>(
        &self,
        slot: Option<usize>,
        name: &'static str,
        expected: &'static str,
        pick: impl Fn(&'a AttributeValue) -> Option<T>,
    ) -> Result<Option<T>, HeaderError> {
        let Some(attribute) = slot.and_then(|i| self.attributes.get(i)) else {
            return Ok(None);
        };
        match pick(&attribute.value) {
            Some(value) => Ok(Some(value)),
            None => Err(HeaderError::WrongType {
                part: self.part,
                attribute: name,
                expected,
                found: attribute.type_name().to_owned(),
            }),
        }
    }
}

fn box2i(value: &AttributeValue) -> Option<Box2i> {
    match value {
        AttributeValue::Box2i(b) => Some(*b),
        _ => None,
    }
}

/// The storage type of a part without a `type` attribute. Single-part files say it in their
/// flags; for a malformed multi-part file without `type`, a `tiles` attribute is the best clue.
fn infer_type(flags: u32, has_tiles: bool) -> PartType {
    let tiled = if flags & FLAG_MULTIPART != 0 { has_tiles } else { flags & FLAG_TILED != 0 };
    let deep = flags & FLAG_MULTIPART == 0 && flags & FLAG_NON_IMAGE != 0;
    match (deep, tiled || (deep && has_tiles)) {
        (false, false) => PartType::ScanlineImage,
        (false, true) => PartType::TiledImage,
        (true, false) => PartType::DeepScanline,
        (true, true) => PartType::DeepTile,
    }
}

/// Attributes in file order while a part is read. A repeated name of the same type keeps its
/// first position and takes the new value (OpenEXR's `Header::readFrom` does the same); a
/// repeated name of another type is an error. Names are compared after U+FFFD replacement, so
/// the record's keys are unique.
pub(super) struct AttributeList {
    attributes: Vec<Attribute>,
    /// One bit per name class ([`name_class`]) seen so far: a name whose bit is clear is new
    /// without comparing it to any other.
    seen: u128,
    /// Name → position, built once the list outgrows a linear scan, so that a hostile header
    /// with many attributes costs O(n) rather than O(n²).
    index: Option<HashMap<Name, usize>>,
}

/// Beyond this many attributes, duplicates are found by hashing instead of scanning.
const LINEAR_SCAN: usize = 48;

impl Default for AttributeList {
    fn default() -> Self {
        // Room for a typical render header, so the list rarely grows; kept under 1 KiB, where
        // glibc's allocator stays on its fast paths.
        Self { attributes: Vec::with_capacity(15), seen: 0, index: None }
    }
}

impl AttributeList {
    pub(super) fn insert(&mut self, part: usize, name: &[u8], value: AttributeValue) -> Result<(), HeaderError> {
        let name = value::name(name);
        match self.position(&name) {
            Some(i) => {
                let existing = &mut self.attributes[i];
                if existing.type_name() != value.type_name() {
                    return Err(HeaderError::TypeConflict {
                        part,
                        first: existing.type_name().to_owned(),
                        second: value.type_name().to_owned(),
                        attribute: name.into(),
                    });
                }
                existing.value = value;
            }
            None => {
                if let Some(index) = &mut self.index {
                    index.insert(name.clone(), self.attributes.len());
                }
                self.attributes.push(Attribute { name, value });
            }
        }
        Ok(())
    }

    fn position(&mut self, name: &str) -> Option<usize> {
        let bit = 1u128 << name_class(name);
        if self.seen & bit == 0 {
            self.seen |= bit;
            return None;
        }
        if self.attributes.len() <= LINEAR_SCAN {
            return self.attributes.iter().position(|a| a.name == name);
        }
        let attributes = &self.attributes;
        let index =
            self.index.get_or_insert_with(|| attributes.iter().enumerate().map(|(i, a)| (a.name.clone(), i)).collect());
        index.get(name).copied()
    }

    pub(super) fn into_vec(self) -> Vec<Attribute> {
        self.attributes
    }
}

/// A cheap class of a name, 0..128, from its length and end bytes.
fn name_class(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let first = bytes.first().copied().unwrap_or(0);
    let last = bytes.last().copied().unwrap_or(0);
    (bytes.len() as u32).wrapping_mul(31).wrapping_add(u32::from(first) * 7).wrapping_add(u32::from(last)) % 128
}
