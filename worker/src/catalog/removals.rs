//! The `removals` table: objects an S3 event reported removed (`ObjectRemoved:*`), one row
//! per (`source_uri`, `sequencer`). History is kept: the rows of a removed file stay in the
//! four catalog tables, and queries leave it out by joining `removals` (see
//! `docs/queries.md`). Rows are insert-only and idempotent: recording the same event
//! again writes nothing.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::rows::micros;
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

/// `removals` as rows of [`removals_schema`], each stamped `recorded_at`.
pub fn removals_batch(removals: &[Removal], recorded_at: SystemTime) -> Result<RecordBatch, super::CatalogError> {
    let text = |value: fn(&Removal) -> &str| -> ArrayRef {
        Arc::new(removals.iter().map(|r| Some(value(r))).collect::<StringArray>())
    };
    let times = |values: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    };
    let columns = vec![
        text(|r| &r.source_uri),
        text(|r| &r.bucket),
        text(|r| &r.key),
        text(|r| &r.sequencer),
        text(|r| &r.event_name),
        times(removals.iter().map(|r| r.event_time.map(micros)).collect()),
        times(vec![Some(micros(recorded_at)); removals.len()]),
    ];
    Ok(RecordBatch::try_new(removals_schema(), columns)?)
}

/// The removals of `removals` whose (`source_uri`, `sequencer`) is not in `recorded`: what
/// is left to write for an idempotent record on a catalog without unique keys.
pub fn unrecorded(removals: &[Removal], recorded: &HashSet<(String, String)>) -> Vec<Removal> {
    let mut seen = HashSet::new();
    removals
        .iter()
        .filter(|r| !recorded.contains(&(r.source_uri.clone(), r.sequencer.clone())))
        .filter(|r| seen.insert((r.source_uri.as_str(), r.sequencer.as_str())))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(uri: &str, sequencer: &str) -> Removal {
        Removal {
            source_uri: uri.into(),
            bucket: "b".into(),
            key: uri.trim_start_matches("s3://b/").into(),
            sequencer: sequencer.into(),
            event_name: "ObjectRemoved:Delete".into(),
            event_time: (sequencer == "02").then_some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2)),
        }
    }

    #[test]
    fn rows_have_the_schema_and_only_new_removals_are_left_to_write() -> Result<(), super::super::CatalogError> {
        let all = [removal("s3://b/a.exr", "01"), removal("s3://b/a.exr", "02"), removal("s3://b/a.exr", "02")];
        let recorded = [("s3://b/a.exr".to_string(), "01".to_string())].into_iter().collect();
        let left = unrecorded(&all, &recorded);
        assert_eq!(left, vec![all[1].clone()]);
        let rows = removals_batch(&left, SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(3))?;
        assert_eq!((rows.schema(), rows.num_rows()), (removals_schema(), 1));
        use arrow::array::AsArray;
        let times = rows.column(5).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.value(0), 2_000_000);
        Ok(())
    }
}
