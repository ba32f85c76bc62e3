//! Deterministic, similarity-preserving embeddings of a header.
//!
//! Two vectors, both L2-normalised and bit-identical across runs and machines (no model, no
//! random state, no platform maths beyond IEEE `sqrt`):
//! - a 384-d **metadata** embedding of the whole file;
//! - a 128-d **channel fingerprint** per part (and one for the file), from channels only.
//!
//! Both are signed feature hashing of structural tokens: layer, channel and component names
//! with their pixel types and sampling, part types, compression, tiling, resolution
//! (exact and power-of-two class), channel counts, and every other attribute's name and type
//! with a bucketed value (integers and floats by binary magnitude, enums by code, text by
//! value). Values that change from frame to frame (time codes, key codes, matrices, vectors)
//! contribute only their name and type, and the file name never enters, so frames of one
//! sequence land together; a changed free-text attribute moves one low-weight token. Channel
//! tokens carry the most weight, so different AOV layouts land far apart.

mod hash;

use hash::{Bits, Features, Token};

use crate::header::{AttributeValue, Header, Part};

/// Token kinds, hashed at compile time.
mod kind {
    use super::Token;

    pub(super) const ATTRIBUTE: Token = Token::new("attribute");
    pub(super) const CHANNEL: Token = Token::new("channel");
    pub(super) const CHANNEL_COUNT: Token = Token::new("channel_count");
    pub(super) const COMPONENT: Token = Token::new("component");
    pub(super) const COMPRESSION: Token = Token::new("compression");
    pub(super) const DISPLAY: Token = Token::new("display");
    pub(super) const FRAMING: Token = Token::new("framing");
    pub(super) const LAYER: Token = Token::new("layer");
    pub(super) const LINE_ORDER: Token = Token::new("line_order");
    pub(super) const P_LINEAR: Token = Token::new("p_linear");
    pub(super) const PART_NAME: Token = Token::new("part_name");
    pub(super) const PART_TYPE: Token = Token::new("part_type");
    pub(super) const PARTS: Token = Token::new("parts");
    pub(super) const PIXEL_ASPECT: Token = Token::new("pixel_aspect");
    pub(super) const RESOLUTION: Token = Token::new("resolution");
    pub(super) const RESOLUTION_CLASS: Token = Token::new("resolution_class");
    pub(super) const SAMPLING: Token = Token::new("sampling");
    pub(super) const TILES: Token = Token::new("tiles");
    pub(super) const VIEW: Token = Token::new("view");
}

/// Dimensions of the metadata embedding.
pub const METADATA_DIM: usize = 384;
/// Dimensions of a channel fingerprint.
pub const CHANNEL_DIM: usize = 128;

/// Structure of the part (type, compression, resolution, tiling, names).
const W_STRUCTURE: f32 = 1.0;
/// A channel (full name and pixel type) and its layer.
const W_CHANNEL: f32 = 1.0;
/// A channel's component name alone (`R`, `X`…), shared across layers.
const W_COMPONENT: f32 = 0.5;
/// An attribute's name and type.
const W_ATTRIBUTE: f32 = 0.5;
/// An attribute's bucketed value.
const W_VALUE: f32 = 0.35;

/// Attributes already represented by structural tokens (or sized by the pixel data).
fn is_structural(name: &str) -> bool {
    matches!(
        name,
        "channels"
            | "chunkCount"
            | "compression"
            | "dataWindow"
            | "displayWindow"
            | "lineOrder"
            | "name"
            | "pixelAspectRatio"
            | "tiles"
            | "type"
            | "view"
    )
}

/// The embeddings of one header.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Metadata embedding of the file.
    pub metadata: [f32; METADATA_DIM],
    /// Channel fingerprint of the file (all parts).
    pub channels: [f32; CHANNEL_DIM],
    /// Channel fingerprint of each part, in part order.
    pub part_channels: Vec<[f32; CHANNEL_DIM]>,
}

/// Computes the embeddings of a header.
pub fn embed(header: &Header) -> Embeddings {
    let mut metadata = Features::<METADATA_DIM>::new(Bits::High);
    let mut file_channels = Features::<CHANNEL_DIM>::new(Bits::Low);
    let mut part_channels = Vec::with_capacity(header.parts.len());

    metadata.add(kind::PARTS.int(header.parts.len() as i64).finish(), W_STRUCTURE);
    for part in &header.parts {
        let mut channels = Features::<CHANNEL_DIM>::new(Bits::Low);
        structure_tokens(part, &mut metadata);
        channel_tokens(part, &mut metadata, &mut channels);
        attribute_tokens(part, &mut metadata);
        let fingerprint = channels.normalized();
        file_channels.add_scaled(&fingerprint, 1.0);
        part_channels.push(fingerprint);
    }
    Embeddings { metadata: metadata.normalized(), channels: file_channels.normalized(), part_channels }
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { (dot / (aa.sqrt() * bb.sqrt())) as f32 }
}

fn structure_tokens(part: &Part, metadata: &mut Features<METADATA_DIM>) {
    let add = |metadata: &mut Features<METADATA_DIM>, token: Token| metadata.add(token.finish(), W_STRUCTURE);
    add(metadata, kind::PART_TYPE.text(part.type_name()));
    add(metadata, kind::COMPRESSION.int(i64::from(part.compression.0)));
    add(metadata, kind::LINE_ORDER.int(i64::from(part.line_order.0)));
    let (w, h) = (part.data_window.width(), part.data_window.height());
    add(metadata, kind::RESOLUTION.int(w).int(h));
    add(metadata, kind::RESOLUTION_CLASS.int(magnitude(w)).int(magnitude(h)));
    let (dw, dh) = (part.display_window.width(), part.display_window.height());
    add(metadata, kind::DISPLAY.int(dw).int(dh));
    let framing = if part.data_window == part.display_window {
        "full"
    } else if contains(&part.display_window, &part.data_window) {
        "crop"
    } else {
        "overscan"
    };
    add(metadata, kind::FRAMING.text(framing));
    add(metadata, kind::PIXEL_ASPECT.int(rounded(f64::from(part.pixel_aspect_ratio), 1000.0)));
    if let Some(t) = part.tiles {
        add(
            metadata,
            kind::TILES
                .int(i64::from(t.x_size))
                .int(i64::from(t.y_size))
                .int(i64::from(t.level_mode.0))
                .int(i64::from(t.rounding_mode.0)),
        );
    }
    if let Some(name) = part.name() {
        add(metadata, kind::PART_NAME.text(name));
    }
    if let Some(view) = part.view() {
        add(metadata, kind::VIEW.text(view));
    }
}

fn channel_tokens(part: &Part, metadata: &mut Features<METADATA_DIM>, channels: &mut Features<CHANNEL_DIM>) {
    let mut add = |token: Token, weight: f32| {
        let hash = token.finish();
        metadata.add(hash, weight);
        channels.add(hash, weight);
    };
    add(kind::CHANNEL_COUNT.int(part.channels().len() as i64), W_CHANNEL);
    for channel in part.channels() {
        let (layer, component) = channel.split();
        add(kind::LAYER.text(layer), W_CHANNEL);
        add(kind::CHANNEL.text(&channel.name).int(i64::from(channel.pixel_type.0)), W_CHANNEL);
        add(kind::COMPONENT.text(component), W_COMPONENT);
        if (channel.x_sampling, channel.y_sampling) != (1, 1) {
            let token =
                kind::SAMPLING.text(layer).int(i64::from(channel.x_sampling)).int(i64::from(channel.y_sampling));
            add(token, W_CHANNEL);
        }
        if channel.p_linear {
            add(kind::P_LINEAR.text(&channel.name), W_COMPONENT);
        }
    }
}

fn attribute_tokens(part: &Part, metadata: &mut Features<METADATA_DIM>) {
    for attribute in part.attributes() {
        if is_structural(&attribute.name) {
            continue;
        }
        let named = kind::ATTRIBUTE.text(&attribute.name);
        metadata.add(named.text(attribute.type_name()).finish(), W_ATTRIBUTE);
        let value = named.text("=");
        match &attribute.value {
            AttributeValue::StringVector(items) => {
                let weight = W_VALUE / (items.len().max(1) as f32).sqrt();
                for item in items {
                    metadata.add(value.text(item).finish(), weight);
                }
            }
            other => {
                if let Some(token) = value_token(value, other) {
                    metadata.add(token.finish(), W_VALUE);
                }
            }
        }
    }
}

/// The bucketed value of an attribute, for types whose value is stable across the frames of
/// a sequence; `None` for the others.
fn value_token(token: Token, value: &AttributeValue) -> Option<Token> {
    use AttributeValue as V;
    Some(match value {
        V::Int(v) => token.int(magnitude(i64::from(*v))),
        V::Float(v) => token.int(float_class(f64::from(*v))),
        V::Double(v) => token.int(float_class(*v)),
        V::String(s) => token.text(s),
        V::Compression(c) => token.int(i64::from(c.0)),
        V::LineOrder(l) => token.int(i64::from(l.0)),
        V::Envmap(e) => token.int(i64::from(e.0)),
        V::DeepImageState(d) => token.int(i64::from(d.0)),
        V::Chromaticities(c) => {
            [c.red, c.green, c.blue, c.white].iter().flatten().fold(token, |t, v| t.int(rounded(f64::from(*v), 1000.0)))
        }
        V::Rational(r) if r.d != 0 => token.int(rounded(f64::from(r.n) / f64::from(r.d), 1000.0)),
        V::Box2i(b) => token.int(b.width()).int(b.height()),
        V::TileDescription(t) => token.int(i64::from(t.x_size)).int(i64::from(t.y_size)).int(i64::from(t.level_mode.0)),
        V::Preview(p) => token.int(i64::from(p.width)).int(i64::from(p.height)),
        V::FloatVector(v) => token.int(v.len() as i64),
        V::Bytes { type_hint, .. } => token.text(type_hint),
        _ => return None,
    })
}

/// Signed bit length: 0 for 0, ±(1 + floor(log2 |v|)) otherwise. Frames 1001 and 1002 share
/// a class; 1 and 1000 do not.
fn magnitude(v: i64) -> i64 {
    let bits = i64::from(64 - v.unsigned_abs().leading_zeros());
    if v < 0 { -bits } else { bits }
}

/// Class of a float: sign and binary exponent (read from the bits, so exact everywhere);
/// zero, infinities and NaN get classes of their own.
fn float_class(v: f64) -> i64 {
    if v == 0.0 {
        return 0;
    }
    if v.is_nan() {
        return i64::MAX;
    }
    let exponent = ((v.to_bits() >> 52) & 0x7ff) as i64 + 1;
    if v < 0.0 { -exponent } else { exponent }
}

/// `v * scale` rounded to an integer (NaN → 0, saturating).
fn rounded(v: f64, scale: f64) -> i64 {
    (v * scale).round() as i64
}

fn contains(outer: &crate::header::Box2i, inner: &crate::header::Box2i) -> bool {
    outer.min[0] <= inner.min[0]
        && outer.min[1] <= inner.min[1]
        && outer.max[0] >= inner.max[0]
        && outer.max[1] >= inner.max[1]
}

#[cfg(test)]
mod tests;
