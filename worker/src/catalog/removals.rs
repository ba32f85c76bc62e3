//! The `removals` table: objects an S3 event reported removed (`ObjectRemoved:*`), one row
//! per (`source_uri`, `sequencer`). History is kept: the rows of a removed file stay in the
//! four catalog tables, and queries leave it out by joining `removals` (see
//! `docs/queries.md`). Rows are insert-only and idempotent: recording the same event
//! again writes nothing.

use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::schema::timestamp_type;

/// The table's name (without any prefix).
pub const REMOVALS: &str = "removals";

/// The columns that identify a row.
pub const REMOVALS_KEY: [&str; 2] = ["source_uri", "sequencer"];

/// One removal event of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    /// `s3://bucket/key`, as in `files.source_uri`.
    pub source_uri: String,
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The event's sequencer (orders the events of one key); empty when not sent.
    pub sequencer: String,
    /// The event's name (`ObjectRemoved:Delete`, `ObjectRemoved:DeleteMarkerCreated`).
    pub event_name: String,
    /// The event's time, when it was sent.
    pub event_time: Option<SystemTime>,
}

/// The Arrow schema of `removals`; `recorded_at` is when the sink wrote the row.
pub fn removals_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = |name: &str| Field::new(name, DataType::Utf8, false);
        Arc::new(Schema::new(vec![
            text("source_uri"),
            text("bucket"),
            text("key"),
            text("sequencer"),
            text("event_name"),
            Field::new("event_time", timestamp_type(), true),
            Field::new("recorded_at", timestamp_type(), false),
        ]))
    });
    SCHEMA.clone()
}
