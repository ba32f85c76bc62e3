//! The Arrow schemas of the four catalog tables. Every sink stores exactly these columns;
//! sinks for limited servers change only how a column is encoded (see `sink::flight`).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

/// Dimensions of `files.metadata_embedding`.
pub const METADATA_DIMS: usize = 384;
/// Dimensions of `channels.channel_fingerprint`.
pub const CHANNEL_DIMS: usize = 128;

/// One of the catalog tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// One row per indexed file (per `file_id`).
    Files,
    /// One row per part of a file.
    Parts,
    /// One row per channel of a part.
    Channels,
    /// One row per attribute of a part.
    Attributes,
}

impl Table {
    /// All tables, parents first.
    pub const ALL: [Table; 4] = [Table::Files, Table::Parts, Table::Channels, Table::Attributes];

    /// The order an attempt writes the tables in: `files` last, as the mark of a complete
    /// file (see `sink::canonical`).
    pub const WRITE_ORDER: [Table; 4] = [Table::Parts, Table::Channels, Table::Attributes, Table::Files];

    /// The table's name without any prefix.
    pub fn name(self) -> &'static str {
        match self {
            Table::Files => "files",
            Table::Parts => "parts",
            Table::Channels => "channels",
            Table::Attributes => "attributes",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<[SchemaRef; 4]> =
            LazyLock::new(|| [files(), parts(), channels(), attributes()].map(Arc::new));
        SCHEMAS[self as usize].clone()
    }
}

/// The element field of vector columns (non-null `Float32`).
pub fn vector_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Float32, false))
}

/// `FixedSizeList<Float32>` of `dims` elements: how vectors are held in Arrow.
pub fn vector_type(dims: usize) -> DataType {
    // The dimensions are small constants; they fit an i32.
    DataType::FixedSizeList(vector_item(), dims as i32)
}

/// Timestamps are UTC microseconds.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn int32(name: &str) -> Field {
    Field::new(name, DataType::Int32, false)
}

fn flag(name: &str) -> Field {
    Field::new(name, DataType::Boolean, false)
}

/// Name of the last column of every table: the [`WriteId`](super::WriteId) of the attempt
/// that wrote the row.
pub const WRITE_ID: &str = "write_id";

fn write_id() -> Field {
    text(WRITE_ID, false)
}

fn files() -> Schema {
    Schema::new(vec![
        text("file_id", false),
        text("source_uri", false),
        text("bucket", true),
        text("key", false),
        Field::new("size_bytes", DataType::Int64, false),
        Field::new("last_modified", timestamp_type(), true),
        // The object's ETag (S3), so a listing can prove an object unchanged.
        text("etag", true),
        Field::new("header_bytes", DataType::Int64, false),
        text("header_hash", false),
        int32("version"),
        Field::new("frame_number", DataType::Int64, true),
        int32("part_count"),
        int32("channel_count"),
        flag("multipart"),
        flag("deep"),
        flag("tiled"),
        flag("multiview"),
        flag("long_names"),
        Field::new("metadata_embedding", vector_type(METADATA_DIMS), true),
        // The file's channel fingerprint over all parts (each part's is in `channels`).
        Field::new("channel_fingerprint", vector_type(CHANNEL_DIMS), true),
        text("scan_name", true),
        text("scan_uid", true),
        Field::new("inspected_at", timestamp_type(), false),
        text("raw_header_json", false),
        write_id(),
    ])
}

fn parts() -> Schema {
    let window = |prefix: &str| {
        ["min_x", "min_y", "max_x", "max_y"].map(|c| Field::new(format!("{prefix}_{c}"), DataType::Int32, true))
    };
    let mut fields = vec![
        text("file_id", false),
        int32("part_index"),
        text("name", true),
        text("view", true),
        text("type", false),
        text("compression", true),
    ];
    fields.extend(window("data_window"));
    fields.extend(window("display_window"));
    fields.extend([
        Field::new("width", DataType::Int64, true),
        Field::new("height", DataType::Int64, true),
        Field::new("pixel_aspect_ratio", DataType::Float32, true),
        text("line_order", true),
        Field::new("tile_x_size", DataType::Int64, true),
        Field::new("tile_y_size", DataType::Int64, true),
        text("tile_level_mode", true),
        text("tile_rounding_mode", true),
        int32("channel_count"),
        int32("attribute_count"),
        write_id(),
    ]);
    Schema::new(fields)
}

fn channels() -> Schema {
    Schema::new(vec![
        text("file_id", false),
        int32("part_index"),
        int32("channel_index"),
        text("name", false),
        text("layer", true),
        text("component", false),
        text("type", false),
        int32("x_sampling"),
        int32("y_sampling"),
        flag("p_linear"),
        Field::new("channel_fingerprint", vector_type(CHANNEL_DIMS), true),
        write_id(),
    ])
}

fn attributes() -> Schema {
    Schema::new(vec![
        text("file_id", false),
        int32("part_index"),
        text("name", false),
        text("type", false),
        text("value_json", false),
        text("value_text", true),
        Field::new("value_int", DataType::Int64, true),
        Field::new("value_float", DataType::Float64, true),
        write_id(),
    ])
}
