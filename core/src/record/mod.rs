//! The `exrscan inspect --json` record (`schema_version` 1): one JSON object per file, as
//! specified in DESIGN.md.

mod frame;
mod json;
mod value;

#[cfg(test)]
mod tests;

pub use frame::frame_number;

use crate::embed::Embeddings;
use crate::header::{Header, Part};
use json::JsonOut;

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

    /// Appends the record as one line of JSON, newline included, to `buf`.
    pub fn append_line(&self, buf: &mut Vec<u8>) {
        let mut j = JsonOut::new(buf);
        self.write(&mut j);
        j.raw(b"\n");
    }

    /// Writes the record as one line of JSON, newline included, to `out`.
    pub fn write_line(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(8 * 1024);
        self.append_line(&mut buf);
        out.write_all(&buf)
    }

    fn write(&self, j: &mut JsonOut<'_>) {
        let header = self.outcome.ok();
        j.raw(b"{\"schema_version\":");
        j.uint(SCHEMA_VERSION);
        j.raw(b",\"path\":");
        j.string(self.path);
        j.raw(b",\"ok\":");
        j.bool(header.is_some());
        j.raw(b",\"error\":");
        j.opt_string(self.outcome.err());
        j.raw(b",\"file\":");
        self.write_file(j, header);
        j.raw(b",\"parts\":");
        j.array(header.map_or(&[][..], |h| &h.parts), write_part);
        if let Some(embeddings) = self.embeddings {
            j.raw(b",\"embeddings\":");
            match embeddings {
                Some(e) => {
                    j.raw(b"{\"metadata\":");
                    j.array(&e.metadata, |j, v| j.f32(*v));
                    j.raw(b",\"channels\":");
                    j.array(&e.channels, |j, v| j.f32(*v));
                    j.raw(b"}");
                }
                None => j.raw(b"null"),
            }
        }
        j.raw(b"}");
    }

    fn write_file(&self, j: &mut JsonOut<'_>, header: Option<&Header>) {
        j.raw(b"{\"size_bytes\":");
        match self.size_bytes {
            Some(size) => j.uint(size),
            None => j.raw(b"null"),
        }
        match header {
            Some(h) => {
                j.raw(b",\"header_bytes\":");
                j.uint(h.header_bytes as u64);
                j.raw(b",\"header_hash\":");
                j.hex(&h.header_hash);
                j.raw(b",\"version\":");
                j.uint(h.version);
                for (key, value) in [
                    (&b",\"multipart\":"[..], h.multipart()),
                    (b",\"deep\":", h.deep()),
                    (b",\"tiled\":", h.tiled()),
                    (b",\"long_names\":", h.long_names()),
                ] {
                    j.raw(key);
                    j.bool(value);
                }
                j.raw(b",\"part_count\":");
                j.uint(h.parts.len() as u64);
            }
            None => j.raw(
                b",\"header_bytes\":null,\"header_hash\":null,\"version\":null,\"multipart\":null,\
                  \"deep\":null,\"tiled\":null,\"long_names\":null,\"part_count\":null",
            ),
        }
        j.raw(b",\"frame_number\":");
        match frame_number(self.path) {
            Some(frame) => j.int(frame),
            None => j.raw(b"null"),
        }
        j.raw(b"}");
    }
}

fn write_part(j: &mut JsonOut<'_>, p: &Part) {
    j.raw(b"{\"index\":");
    j.uint(p.index as u64);
    j.raw(b",\"name\":");
    j.opt_string(p.name());
    j.raw(b",\"view\":");
    j.opt_string(p.view());
    j.raw(b",\"type\":");
    j.string(p.type_name());
    j.raw(b",\"compression\":");
    value::named(j, p.compression.name(), &p.compression);
    j.raw(b",\"data_window\":");
    value::window(j, &p.data_window);
    j.raw(b",\"display_window\":");
    value::window(j, &p.display_window);
    j.raw(b",\"pixel_aspect_ratio\":");
    j.f32(p.pixel_aspect_ratio);
    j.raw(b",\"line_order\":");
    value::named(j, p.line_order.name(), &p.line_order);
    j.raw(b",\"tiles\":");
    match &p.tiles {
        Some(tiles) => value::tiles(j, tiles),
        None => j.raw(b"null"),
    }
    j.raw(b",\"channels\":");
    j.array(p.channels(), value::channel);
    // Every attribute keyed by name, in file order, as {"type": …, "value": …}.
    j.raw(b",\"attributes\":{");
    for (i, a) in p.attributes().iter().enumerate() {
        if i > 0 {
            j.raw(b",");
        }
        j.string(&a.name);
        j.raw(b":{\"type\":");
        j.string(a.type_name());
        j.raw(b",\"value\":");
        value::value(j, &a.value);
        j.raw(b"}");
    }
    j.raw(b"}}");
}
