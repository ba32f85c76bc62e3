//! The `exrscan inspect --json` record (`schema_version` 1): one JSON object per file, as
//! specified in DESIGN.md.

mod frame;
mod value;

#[cfg(test)]
mod tests;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

pub use frame::frame_number;
pub use value::ValueJson;

use crate::embed::Embeddings;
use crate::header::{Header, Part};
use value::{ChannelJson, F32, Tiles, Window};

/// Version of the record's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The record of one file: its header, or why it could not be read.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    path: &'a str,
    size_bytes: Option<u64>,
    outcome: Result<&'a Header, &'a str>,
    /// `None`: no `embeddings` key; `Some(None)`: `"embeddings": null`.
    embeddings: Option<Option<&'a Embeddings>>,
}

impl<'a> Record<'a> {
    /// Record of a file whose header was read.
    pub fn ok(path: &'a str, size_bytes: Option<u64>, header: &'a Header) -> Self {
        Self { path, size_bytes, outcome: Ok(header), embeddings: None }
    }

    /// Record of a file that could not be read (`"ok": false`) with a one-line reason.
    pub fn failed(path: &'a str, size_bytes: Option<u64>, error: &'a str) -> Self {
        Self { path, size_bytes, outcome: Err(error), embeddings: None }
    }

    /// Adds the `embeddings` key (`null` when `None`, e.g. for a failed file).
    pub fn with_embeddings(mut self, embeddings: Option<&'a Embeddings>) -> Self {
        self.embeddings = Some(embeddings);
        self
    }

    /// Appends the record as one line of JSON (with its newline) to `out`.
    pub fn write_line(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    }
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let header = self.outcome.ok();
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("schema_version", &SCHEMA_VERSION)?;
        m.serialize_entry("path", self.path)?;
        m.serialize_entry("ok", &header.is_some())?;
        m.serialize_entry("error", &self.outcome.err())?;
        m.serialize_entry("file", &FileJson { record: self, header })?;
        m.serialize_entry("parts", &PartsJson(header.map_or(&[], |h| &h.parts)))?;
        if let Some(embeddings) = self.embeddings {
            m.serialize_entry("embeddings", &embeddings.map(EmbeddingsJson))?;
        }
        m.end()
    }
}

/// Bytes as lowercase hex.
pub(crate) struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct FileJson<'a> {
    record: &'a Record<'a>,
    header: Option<&'a Header>,
}

impl Serialize for FileJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.header;
        let mut m = s.serialize_map(Some(10))?;
        m.serialize_entry("size_bytes", &self.record.size_bytes)?;
        m.serialize_entry("header_bytes", &h.map(|h| h.header_bytes))?;
        m.serialize_entry("header_hash", &h.map(|h| Hex(&h.header_hash)))?;
        m.serialize_entry("version", &h.map(|h| h.version))?;
        m.serialize_entry("multipart", &h.map(Header::multipart))?;
        m.serialize_entry("deep", &h.map(Header::deep))?;
        m.serialize_entry("tiled", &h.map(Header::tiled))?;
        m.serialize_entry("long_names", &h.map(Header::long_names))?;
        m.serialize_entry("part_count", &h.map(|h| h.parts.len()))?;
        m.serialize_entry("frame_number", &frame_number(self.record.path))?;
        m.end()
    }
}

struct PartsJson<'a>(&'a [Part]);

impl Serialize for PartsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(PartJson))
    }
}

struct PartJson<'a>(&'a Part);

impl Serialize for PartJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(Some(13))?;
        m.serialize_entry("index", &p.index)?;
        m.serialize_entry("name", &p.name())?;
        m.serialize_entry("view", &p.view())?;
        m.serialize_entry("type", p.type_name())?;
        m.serialize_entry("compression", &p.compression.to_string())?;
        m.serialize_entry("data_window", &Window(&p.data_window))?;
        m.serialize_entry("display_window", &Window(&p.display_window))?;
        m.serialize_entry("pixel_aspect_ratio", &F32(p.pixel_aspect_ratio))?;
        m.serialize_entry("line_order", &p.line_order.to_string())?;
        m.serialize_entry("tiles", &p.tiles.as_ref().map(Tiles))?;
        m.serialize_entry("channels", &ChannelsJson(p))?;
        m.serialize_entry("attributes", &AttributesJson(p))?;
        m.end()
    }
}

struct ChannelsJson<'a>(&'a Part);

impl Serialize for ChannelsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.channels().iter().map(ChannelJson))
    }
}

/// Every attribute keyed by name, in file order, as `{"type": …, "value": …}`.
struct AttributesJson<'a>(&'a Part);

impl Serialize for AttributesJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let attributes = self.0.attributes();
        let mut m = s.serialize_map(Some(attributes.len()))?;
        for a in attributes {
            m.serialize_entry(&a.name, &TypedJson { type_name: a.type_name(), value: ValueJson(&a.value) })?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct TypedJson<'a> {
    #[serde(rename = "type")]
    type_name: &'a str,
    value: ValueJson<'a>,
}

struct EmbeddingsJson<'a>(&'a Embeddings);

impl Serialize for EmbeddingsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metadata", &self.0.metadata[..])?;
        m.serialize_entry("channels", &self.0.channels[..])?;
        m.end()
    }
}
