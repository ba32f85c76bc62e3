//! Test-only writer of header bytes, for cases the OpenEXR bindings cannot write (hostile,
//! malformed or unusual headers) and for synthetic headers in other modules' tests.

use super::{FLAG_MULTIPART, MAGIC};

/// One attribute's bytes: name, type name, size, value.
pub(crate) fn attribute(name: &str, type_name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + type_name.len() + 6 + value.len());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(type_name.as_bytes());
    out.push(0);
    out.extend_from_slice(&(value.len() as i32).to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn i32s(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A `chlist` value: (name, pixel type, x sampling, y sampling).
pub(crate) fn channel_list(channels: &[(&str, i32, i32, i32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, pixel_type, xs, ys) in channels {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(&pixel_type.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&xs.to_le_bytes());
        out.extend_from_slice(&ys.to_le_bytes());
    }
    out.push(0);
    out
}

/// A `string` attribute.
pub(crate) fn string(name: &str, value: &str) -> Vec<u8> {
    attribute(name, "string", value.as_bytes())
}

/// The attributes of a part (without its terminating null byte).
#[derive(Debug, Clone)]
pub(crate) struct PartBytes {
    pub(crate) attributes: Vec<Vec<u8>>,
}

impl PartBytes {
    /// A valid scan-line part: the given half channels, `width`×`height`, compression code.
    pub(crate) fn scanline(channels: &[&str], width: i32, height: i32, compression: u8) -> Self {
        let list: Vec<_> = channels.iter().map(|c| (*c, 1, 1, 1)).collect();
        let window = i32s(&[0, 0, width - 1, height - 1]);
        Self {
            attributes: vec![
                attribute("channels", "chlist", &channel_list(&list)),
                attribute("compression", "compression", &[compression]),
                attribute("dataWindow", "box2i", &window),
                attribute("displayWindow", "box2i", &window),
                attribute("lineOrder", "lineOrder", &[0]),
                attribute("pixelAspectRatio", "float", &f32s(&[1.0])),
                attribute("screenWindowCenter", "v2f", &f32s(&[0.0, 0.0])),
                attribute("screenWindowWidth", "float", &f32s(&[1.0])),
            ],
        }
    }

    pub(crate) fn with(mut self, attribute: Vec<u8>) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Drops the attribute called `name`.
    pub(crate) fn without(mut self, name: &str) -> Self {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        self.attributes.retain(|a| !a.starts_with(&prefix));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.attributes.concat();
        out.push(0);
        out
    }
}

/// A whole header: magic, version 2 with `flags`, the parts, and for multi-part files the
/// empty header that ends the list.
pub(crate) fn file(flags: u32, parts: &[PartBytes]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(2 | flags).to_le_bytes());
    for part in parts {
        out.extend_from_slice(&part.bytes());
    }
    if flags & FLAG_MULTIPART != 0 {
        out.push(0);
    }
    out
}
