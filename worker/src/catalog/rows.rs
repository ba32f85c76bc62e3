//! [`CatalogBuilder`]: parsed headers in, the four tables' rows out.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;

use super::batch::CatalogBatch;
use super::schema::{CHANNEL_DIMS, METADATA_DIMS, Table, vector_item};
use super::write_id::WriteId;
use super::{CatalogError, file_id};
use crate::embed::Embeddings;
use crate::header::{Box2i, Header};
use crate::record::{Record, frame_number};

/// Where a file came from, as the catalog records it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// The file's URI (`file:///abs/path`, `s3://bucket/key`): part of its `file_id`.
    pub uri: String,
    /// Bucket of an object store source; `None` for local files.
    pub bucket: Option<String>,
    /// Object key, or the path relative to the scanned directory.
    pub key: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Last modification time, when the source knows it.
    pub last_modified: Option<SystemTime>,
    /// Entity tag of an object store source (as the server quotes it); `None` for local files.
    pub etag: Option<String>,
}

/// The scan that indexed the files (`files.scan_name`, `files.scan_uid`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanInfo {
    /// The ExrScan resource's name (or a name given on the command line).
    pub name: Option<String>,
    /// The ExrScan resource's UID.
    pub uid: Option<String>,
}

/// Accumulates rows for the four tables, then yields them as one [`CatalogBatch`].
#[derive(Debug, Default)]
pub struct CatalogBuilder {
    scan: ScanInfo,
    files: Vec<FileRow>,
    parts: Vec<PartRow>,
    channels: Vec<ChannelRow>,
    attributes: Vec<AttributeRow>,
    /// Channel fingerprints of the parts; channel rows point into this.
    fingerprints: Vec<Vec<f32>>,
    bytes: usize,
}

#[derive(Debug)]
struct FileRow {
    file_id: String,
    source: SourceFile,
    header_bytes: i64,
    header_hash: String,
    version: i32,
    frame_number: Option<i64>,
    part_count: i32,
    channel_count: i32,
    multipart: bool,
    deep: bool,
    tiled: bool,
    multiview: bool,
    long_names: bool,
    metadata_embedding: Option<Vec<f32>>,
    channel_fingerprint: Option<Vec<f32>>,
    inspected_at: i64,
    raw_header_json: String,
}

#[derive(Debug)]
struct PartRow {
    file: usize,
    part_index: i32,
    name: Option<String>,
    view: Option<String>,
    part_type: String,
    compression: String,
    data_window: Box2i,
    display_window: Box2i,
    pixel_aspect_ratio: f32,
    line_order: String,
    tiles: Option<(i64, i64, String, String)>,
    channel_count: i32,
    attribute_count: i32,
}

#[derive(Debug)]
struct ChannelRow {
    file: usize,
    part_index: i32,
    channel_index: i32,
    name: String,
    layer: Option<String>,
    component: String,
    pixel_type: String,
    x_sampling: i32,
    y_sampling: i32,
    p_linear: bool,
    fingerprint: Option<usize>,
}

#[derive(Debug)]
struct AttributeRow {
    file: usize,
    part_index: i32,
    name: String,
    type_name: String,
    value_json: String,
    value_text: Option<String>,
    value_int: Option<i64>,
    value_float: Option<f64>,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Microseconds since the epoch, as the catalog's timestamps hold them.
pub fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

impl CatalogBuilder {
    /// A builder stamping rows with `scan`.
    pub fn new(scan: ScanInfo) -> Self {
        Self { scan, ..Self::default() }
    }

    /// Adds one file's rows and returns its `file_id`. `embeddings` may be `None` when
    /// embeddings are disabled; the vector columns are then null.
    pub fn add(&mut self, source: SourceFile, header: &Header, embeddings: Option<&Embeddings>) -> String {
        let header_hash = header.header_hash_hex();
        let id = file_id(&source.uri, &header_hash);
        let file = self.files.len();
        let raw_header_json = {
            let mut out = Vec::new();
            // Writing JSON into a Vec cannot fail.
            let _ = Record::ok(&source.key, Some(source.size_bytes), header).write_line(&mut out);
            String::from_utf8_lossy(out.trim_ascii_end()).into_owned()
        };
        let channel_count: usize = header.parts.iter().map(|p| p.channels().len()).sum();
        let multiview = header.parts.iter().any(|p| p.view().is_some() || p.attribute("multiView").is_some());
        self.bytes += raw_header_json.len() + source.uri.len() + source.key.len() + 256;
        if embeddings.is_some() {
            self.bytes += 4 * (METADATA_DIMS + CHANNEL_DIMS);
        }

        for part in &header.parts {
            let part_index = count(part.index);
            let fingerprint = embeddings.and_then(|e| e.part_channels.get(part.index)).map(|f| {
                self.fingerprints.push(f.to_vec());
                self.fingerprints.len() - 1
            });
            for (channel_index, c) in part.channels().iter().enumerate() {
                let layer = c.layer();
                self.bytes += c.name.len() * 2 + 64 + fingerprint.map_or(0, |_| 4 * CHANNEL_DIMS);
                self.channels.push(ChannelRow {
                    file,
                    part_index,
                    channel_index: count(channel_index),
                    name: c.name.to_string(),
                    layer: (!layer.is_empty()).then(|| layer.to_string()),
                    component: c.component().to_string(),
                    pixel_type: c.pixel_type.to_string(),
                    x_sampling: c.x_sampling,
                    y_sampling: c.y_sampling,
                    p_linear: c.p_linear,
                    fingerprint,
                });
            }
            for a in part.attributes() {
                let row = AttributeRow {
                    file,
                    part_index,
                    name: a.name.to_string(),
                    type_name: a.type_name().to_string(),
                    value_json: a.value.to_json_string(),
                    value_text: Some(a.value.to_text()),
                    value_int: a.value.as_int(),
                    value_float: a.value.as_float(),
                };
                self.bytes += row.name.len()
                    + row.type_name.len()
                    + row.value_json.len()
                    + row.value_text.as_ref().map_or(0, String::len)
                    + 64;
                self.attributes.push(row);
            }
            self.bytes += 160;
            self.parts.push(PartRow {
                file,
                part_index,
                name: part.name().map(str::to_owned),
                view: part.view().map(str::to_owned),
                part_type: part.type_name().to_string(),
                compression: part.compression.to_string(),
                data_window: part.data_window,
                display_window: part.display_window,
                pixel_aspect_ratio: part.pixel_aspect_ratio,
                line_order: part.line_order.to_string(),
                tiles: part.tiles.map(|t| {
                    (i64::from(t.x_size), i64::from(t.y_size), t.level_mode.to_string(), t.rounding_mode.to_string())
                }),
                channel_count: count(part.channels().len()),
                attribute_count: count(part.attributes().len()),
            });
        }

        self.files.push(FileRow {
            file_id: id.clone(),
            header_bytes: i64::try_from(header.header_bytes).unwrap_or(i64::MAX),
            header_hash,
            version: i32::from(header.version),
            frame_number: frame_number(&source.key),
            part_count: count(header.parts.len()),
            channel_count: count(channel_count),
            multipart: header.multipart(),
            deep: header.deep(),
            tiled: header.tiled(),
            multiview,
            long_names: header.long_names(),
            metadata_embedding: embeddings.map(|e| e.metadata.to_vec()),
            channel_fingerprint: embeddings.map(|e| e.channels.to_vec()),
            inspected_at: micros(SystemTime::now()),
            raw_header_json,
            source,
        });
        id
    }

    /// Files added since the last [`finish`](Self::finish).
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Rows held over the four tables (for batching by rows).
    pub fn rows(&self) -> usize {
        self.files.len() + self.parts.len() + self.channels.len() + self.attributes.len()
    }

    /// Rough size in bytes of the rows held (for batching by bytes).
    pub fn estimated_bytes(&self) -> usize {
        self.bytes
    }

    /// Builds the batch of everything added and empties the builder.
    pub fn finish(&mut self) -> Result<CatalogBatch, CatalogError> {
        let files = std::mem::take(&mut self.files);
        let parts = std::mem::take(&mut self.parts);
        let channels = std::mem::take(&mut self.channels);
        let attributes = std::mem::take(&mut self.attributes);
        let fingerprints = std::mem::take(&mut self.fingerprints);
        self.bytes = 0;
        let ids: Vec<&str> = files.iter().map(|f| f.file_id.as_str()).collect();
        let id_of = |file: usize| ids.get(file).copied().unwrap_or_default();
        let scan = &self.scan;
        // Replaced by each write attempt's own (`CatalogBatch::stamped`).
        let write_id = WriteId::new();
        let table_rows = |table, columns| batch(table, columns, &write_id);

        let files_batch = table_rows(
            Table::Files,
            vec![
                strings(files.iter().map(|f| Some(f.file_id.as_str()))),
                strings(files.iter().map(|f| Some(f.source.uri.as_str()))),
                strings(files.iter().map(|f| f.source.bucket.as_deref())),
                strings(files.iter().map(|f| Some(f.source.key.as_str()))),
                Arc::new(Int64Array::from_iter_values(
                    files.iter().map(|f| i64::try_from(f.source.size_bytes).unwrap_or(i64::MAX)),
                )),
                timestamps(files.iter().map(|f| f.source.last_modified.map(micros))),
                strings(files.iter().map(|f| f.source.etag.as_deref())),
                Arc::new(Int64Array::from_iter_values(files.iter().map(|f| f.header_bytes))),
                strings(files.iter().map(|f| Some(f.header_hash.as_str()))),
                Arc::new(Int32Array::from_iter_values(files.iter().map(|f| f.version))),
                Arc::new(files.iter().map(|f| f.frame_number).collect::<Int64Array>()),
                Arc::new(Int32Array::from_iter_values(files.iter().map(|f| f.part_count))),
                Arc::new(Int32Array::from_iter_values(files.iter().map(|f| f.channel_count))),
                flags(files.iter().map(|f| f.multipart)),
                flags(files.iter().map(|f| f.deep)),
                flags(files.iter().map(|f| f.tiled)),
                flags(files.iter().map(|f| f.multiview)),
                flags(files.iter().map(|f| f.long_names)),
                vectors(METADATA_DIMS, files.iter().map(|f| f.metadata_embedding.as_deref()))?,
                vectors(CHANNEL_DIMS, files.iter().map(|f| f.channel_fingerprint.as_deref()))?,
                strings(files.iter().map(|_| scan.name.as_deref())),
                strings(files.iter().map(|_| scan.uid.as_deref())),
                timestamps(files.iter().map(|f| Some(f.inspected_at))),
                strings(files.iter().map(|f| Some(f.raw_header_json.as_str()))),
            ],
        )?;

        let window = |get: fn(&Box2i) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(parts.iter().map(|p| get(&p.data_window))))
        };
        let display = |get: fn(&Box2i) -> i32| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(parts.iter().map(|p| get(&p.display_window))))
        };
        let corners: [fn(&Box2i) -> i32; 4] = [|b| b.min[0], |b| b.min[1], |b| b.max[0], |b| b.max[1]];
        let mut part_columns = vec![
            strings(parts.iter().map(|p| Some(id_of(p.file)))),
            Arc::new(Int32Array::from_iter_values(parts.iter().map(|p| p.part_index))) as ArrayRef,
            strings(parts.iter().map(|p| p.name.as_deref())),
            strings(parts.iter().map(|p| p.view.as_deref())),
            strings(parts.iter().map(|p| Some(p.part_type.as_str()))),
            strings(parts.iter().map(|p| Some(p.compression.as_str()))),
        ];
        part_columns.extend(corners.map(window));
        part_columns.extend(corners.map(display));
        part_columns.extend([
            Arc::new(Int64Array::from_iter_values(parts.iter().map(|p| p.data_window.width()))) as ArrayRef,
            Arc::new(Int64Array::from_iter_values(parts.iter().map(|p| p.data_window.height()))),
            Arc::new(Float32Array::from_iter_values(parts.iter().map(|p| p.pixel_aspect_ratio))),
            strings(parts.iter().map(|p| Some(p.line_order.as_str()))),
            Arc::new(parts.iter().map(|p| p.tiles.as_ref().map(|t| t.0)).collect::<Int64Array>()),
            Arc::new(parts.iter().map(|p| p.tiles.as_ref().map(|t| t.1)).collect::<Int64Array>()),
            strings(parts.iter().map(|p| p.tiles.as_ref().map(|t| t.2.as_str()))),
            strings(parts.iter().map(|p| p.tiles.as_ref().map(|t| t.3.as_str()))),
            Arc::new(Int32Array::from_iter_values(parts.iter().map(|p| p.channel_count))),
            Arc::new(Int32Array::from_iter_values(parts.iter().map(|p| p.attribute_count))),
        ]);
        let parts_batch = table_rows(Table::Parts, part_columns)?;

        let channels_batch = table_rows(
            Table::Channels,
            vec![
                strings(channels.iter().map(|c| Some(id_of(c.file)))),
                Arc::new(Int32Array::from_iter_values(channels.iter().map(|c| c.part_index))),
                Arc::new(Int32Array::from_iter_values(channels.iter().map(|c| c.channel_index))),
                strings(channels.iter().map(|c| Some(c.name.as_str()))),
                strings(channels.iter().map(|c| c.layer.as_deref())),
                strings(channels.iter().map(|c| Some(c.component.as_str()))),
                strings(channels.iter().map(|c| Some(c.pixel_type.as_str()))),
                Arc::new(Int32Array::from_iter_values(channels.iter().map(|c| c.x_sampling))),
                Arc::new(Int32Array::from_iter_values(channels.iter().map(|c| c.y_sampling))),
                flags(channels.iter().map(|c| c.p_linear)),
                vectors(
                    CHANNEL_DIMS,
                    channels.iter().map(|c| c.fingerprint.and_then(|i| fingerprints.get(i)).map(Vec::as_slice)),
                )?,
            ],
        )?;

        let attributes_batch = table_rows(
            Table::Attributes,
            vec![
                strings(attributes.iter().map(|a| Some(id_of(a.file)))),
                Arc::new(Int32Array::from_iter_values(attributes.iter().map(|a| a.part_index))),
                strings(attributes.iter().map(|a| Some(a.name.as_str()))),
                strings(attributes.iter().map(|a| Some(a.type_name.as_str()))),
                strings(attributes.iter().map(|a| Some(a.value_json.as_str()))),
                strings(attributes.iter().map(|a| a.value_text.as_deref())),
                Arc::new(attributes.iter().map(|a| a.value_int).collect::<Int64Array>()),
                Arc::new(attributes.iter().map(|a| a.value_float).collect::<Float64Array>()),
            ],
        )?;

        CatalogBatch::new([files_batch, parts_batch, channels_batch, attributes_batch])
    }
}

/// The rows of `table`: `columns`, then the write id.
fn batch(table: Table, mut columns: Vec<ArrayRef>, write_id: &WriteId) -> Result<RecordBatch, CatalogError> {
    let rows = columns.first().map_or(0, |c| c.len());
    columns.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(write_id.as_str(), rows))));
    RecordBatch::try_new(table.schema(), columns).map_err(CatalogError::Arrow)
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn flags(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<BooleanArray>())
}

fn timestamps(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.collect::<TimestampMicrosecondArray>().with_timezone("UTC"))
}

/// A `FixedSizeList<Float32>` column; a missing vector is a null row (zeros underneath).
fn vectors<'a>(dims: usize, values: impl Iterator<Item = Option<&'a [f32]>>) -> Result<ArrayRef, CatalogError> {
    let mut flat = Vec::new();
    let mut valid = Vec::new();
    for value in values {
        match value {
            Some(v) if v.len() == dims => flat.extend_from_slice(v),
            Some(v) => return Err(CatalogError::Dimensions { expected: dims, found: v.len() }),
            None => flat.resize(flat.len() + dims, 0.0),
        }
        valid.push(value.is_some());
    }
    let nulls = valid.contains(&false).then(|| NullBuffer::from(valid));
    let size = i32::try_from(dims).map_err(|_| CatalogError::Dimensions { expected: dims, found: dims })?;
    let array = FixedSizeListArray::try_new(vector_item(), size, Arc::new(Float32Array::from(flat)), nulls)
        .map_err(CatalogError::Arrow)?;
    Ok(Arc::new(array))
}
