//! The catalog lookups of a batch: which file_ids the catalog holds (the write's idempotence
//! check), and the resume check — which listed files it already holds with the same URI,
//! size and ETag (S3 objects) or modification time (local files, which have no ETag), so
//! that a re-run skips them without reading their headers. Flight SQL
//! binds the values as the parameters of a prepared statement (one row, a column per
//! value: `IN (?, ?, …)`); DuckDB asks for the range of URIs between the first and the
//! last listed ([`IndexedQuery::range`]). Results are read through [`text_column`], which
//! takes any of Arrow's text types.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};

use super::SinkError;
use crate::catalog::{SourceFile, micros};

/// Keys bound in one lookup statement (at most): larger lookups take several. Servers cap
/// the parameters of a statement (SQLite: 32,766).
pub(super) const MAX_KEYS: usize = 1000;

/// `?, ?, …`: `n` placeholders.
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `values` as the parameters of one execution: one row, a text column per value.
pub(super) fn parameters<'v>(values: impl IntoIterator<Item = &'v str>) -> Result<RecordBatch, SinkError> {
    let columns: Vec<ArrayRef> = values.into_iter().map(|v| Arc::new(StringArray::from(vec![v])) as ArrayRef).collect();
    let fields: Vec<Field> = (0..columns.len()).map(|i| Field::new(format!("p{i}"), DataType::Utf8, false)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| SinkError::Failed(format!("building query parameters: {e}")))
}

/// Column `index` of a query's `result`, named `name` in errors, as UTF-8 text: `Utf8`,
/// `LargeUtf8` and `Utf8View` are accepted (servers differ); anything else, or a result
/// with fewer columns, is an error.
pub(super) fn text_column(result: &RecordBatch, index: usize, name: &str) -> Result<StringArray, SinkError> {
    let Some(column) = result.columns().get(index) else {
        return Err(SinkError::Schema(format!(
            "the server's answer has {} columns; expected {name} as column {}",
            result.num_columns(),
            index + 1
        )));
    };
    match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(column, &DataType::Utf8)
                .map_err(|e| SinkError::Schema(format!("reading {name}: {e}")))?;
            Ok(text.as_string::<i32>().clone())
        }
        other => Err(SinkError::Schema(format!("{name} comes back as {other}, not text"))),
    }
}

/// Column `index` of a query's `result`, named `name` in errors, as 64-bit integers: any
/// type that casts without loss (other integers, text holding integers); else an error.
pub(super) fn int_column(result: &RecordBatch, index: usize, name: &str) -> Result<ArrayRef, SinkError> {
    let Some(column) = result.columns().get(index) else {
        return Err(SinkError::Schema(format!(
            "the server's answer has {} columns; expected {name} as column {}",
            result.num_columns(),
            index + 1
        )));
    };
    let strict = arrow::compute::CastOptions { safe: false, ..Default::default() };
    arrow::compute::cast_with_options(column, &DataType::Int64, &strict)
        .map_err(|_| SinkError::Schema(format!("{name} comes back as {}, not an integer", column.data_type())))
}

/// Adds to `found` the `file_id`s of an existence check's `result` (its first column).
pub(super) fn collect_ids(result: &RecordBatch, found: &mut HashSet<String>) -> Result<(), SinkError> {
    let ids = text_column(result, 0, "files.file_id")?;
    found.extend(ids.iter().flatten().map(str::to_owned));
    Ok(())
}

/// The columns a resume check reads, in this order.
pub(super) const INDEXED_COLUMNS: [&str; 4] = ["source_uri", "size_bytes", "etag", "last_modified"];

/// What, besides the size, tells that a listed file is the one the catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version<'a> {
    /// An S3 object's ETag.
    Etag(&'a str),
    /// A local file's modification time, in microseconds since the epoch.
    Modified(i64),
}

/// The files of a resume check and how to read its answer.
pub(super) struct IndexedQuery<'a> {
    /// URI → (size, version) as listed, for the files with an ETag or a modification time
    /// (no NUL in the URI).
    wanted: HashMap<&'a str, (u64, Version<'a>)>,
    /// The URIs of `wanted`, in listing order.
    uris: Vec<&'a str>,
}

impl<'a> IndexedQuery<'a> {
    /// The check of `files`.
    pub fn new(files: &'a [SourceFile]) -> Self {
        let mut wanted = HashMap::with_capacity(files.len());
        let mut uris = Vec::with_capacity(files.len());
        for file in files {
            let version = match (file.etag.as_deref(), file.last_modified) {
                (Some(etag), _) => Version::Etag(etag),
                (None, Some(modified)) => Version::Modified(micros(modified)),
                (None, None) => continue,
            };
            if !file.uri.contains('\0') && wanted.insert(file.uri.as_str(), (file.size_bytes, version)).is_none() {
                uris.push(file.uri.as_str());
            }
        }
        Self { wanted, uris }
    }

    /// The URIs to look up; empty when no file can be checked.
    pub fn uris(&self) -> &[&'a str] {
        &self.uris
    }

    /// `SELECT source_uri, size_bytes, etag, last_modified FROM <table> WHERE …` with a
    /// placeholder per URI (bound by [`Self::parameters`]), or `None` when there is nothing
    /// to check.
    pub fn sql(&self, table: &str) -> Option<String> {
        (!self.uris.is_empty()).then(|| {
            format!(
                "SELECT {} FROM {table} WHERE source_uri IN ({})",
                INDEXED_COLUMNS.join(", "),
                placeholders(self.uris.len())
            )
        })
    }

    /// The parameters of [`Self::sql`].
    pub fn parameters(&self) -> Result<RecordBatch, SinkError> {
        parameters(self.uris.iter().copied())
    }

    /// `SELECT source_uri, size_bytes, etag, last_modified FROM <table> WHERE source_uri
    /// BETWEEN ? AND ?` and its two parameters, the least and the greatest URI (byte order),
    /// or `None` when there is nothing to check. The answer holds every row of the range,
    /// also of files not listed; [`Self::collect`] keeps those of the listing. A chunk of a
    /// sorted listing (S3 lists in key order) is a narrow range: one query of two values
    /// instead of a lookup per key.
    pub fn range(&self, table: &str) -> Option<(String, [&'a str; 2])> {
        let first = self.uris.iter().min()?;
        let last = self.uris.iter().max()?;
        let sql = format!("SELECT {} FROM {table} WHERE source_uri BETWEEN ? AND ?", INDEXED_COLUMNS.join(", "));
        Some((sql, [first, last]))
    }

    /// Adds to `found` the URIs of rows of `batch` (the query's result, [`INDEXED_COLUMNS`])
    /// that match the listing. A result without the first three columns, or with columns
    /// of other types than text, integer, text, is an error. A `last_modified` that cannot
    /// be read as a time matches no local file (they are read again, nothing is lost).
    pub fn collect(&self, batch: &RecordBatch, found: &mut HashSet<String>) -> Result<(), SinkError> {
        let uris = text_column(batch, 0, "files.source_uri")?;
        let sizes = int_column(batch, 1, "files.size_bytes")?;
        let etags = text_column(batch, 2, "files.etag")?;
        let modified = micros_column(batch, 3);
        let sizes = sizes.as_primitive::<Int64Type>();
        let modified = modified.as_ref().map(|m| m.as_primitive::<Int64Type>());
        for row in 0..batch.num_rows() {
            if uris.is_null(row) || sizes.is_null(row) {
                continue;
            }
            let uri = uris.value(row);
            let Some((size, version)) = self.wanted.get(uri) else { continue };
            let same = match version {
                Version::Etag(etag) => etags.is_valid(row) && etags.value(row) == *etag,
                Version::Modified(t) => modified.is_some_and(|m| m.is_valid(row) && m.value(row) == *t),
            };
            if same && u64::try_from(sizes.value(row)).ok() == Some(*size) {
                found.insert(uri.to_string());
            }
        }
        Ok(())
    }
}

/// Column `index` of `result` as microseconds since the epoch: a timestamp of any unit, or
/// integers (a sink storing times as `scalars=integer`); `None` otherwise.
fn micros_column(result: &RecordBatch, index: usize) -> Option<ArrayRef> {
    let column = result.columns().get(index)?;
    let strict = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let column = match column.data_type() {
        DataType::Timestamp(_, _) => {
            arrow::compute::cast_with_options(column, &DataType::Timestamp(TimeUnit::Microsecond, None), &strict)
                .ok()?
        }
        DataType::Int64 | DataType::Int32 => column.clone(),
        _ => return None,
    };
    arrow::compute::cast_with_options(&column, &DataType::Int64, &strict).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn file(uri: &str, size: u64, etag: Option<&str>) -> SourceFile {
        SourceFile {
            uri: uri.into(),
            bucket: Some("b".into()),
            key: uri.into(),
            size_bytes: size,
            last_modified: None,
            etag: etag.map(Into::into),
        }
    }

    #[test]
    fn matches_uri_size_and_etag() -> Result<(), arrow::error::ArrowError> {
        let files = [
            file("s3://b/a.exr", 10, Some("\"e1\"")),
            file("s3://b/it's.exr", 20, Some("\"e2\"")),
            file("s3://b/c.exr", 5, None),
        ];
        let query = IndexedQuery::new(&files);
        assert_eq!(query.uris(), ["s3://b/a.exr", "s3://b/it's.exr"]);
        let sql = query.sql("files").unwrap_or_default();
        assert!(sql.ends_with("source_uri IN (?, ?)"), "one placeholder per URI: {sql}");
        let params = query.parameters().map_err(|e| arrow::error::ArrowError::ComputeError(e.to_string()))?;
        assert_eq!((params.num_rows(), params.num_columns()), (1, 2));
        assert_eq!(params.column(1).as_string::<i32>().value(0), "s3://b/it's.exr", "bound as is, not quoted");
        let schema = Arc::new(Schema::new(vec![
            Field::new("source_uri", DataType::Utf8, false),
            Field::new("size_bytes", DataType::Int64, false),
            Field::new("etag", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["s3://b/a.exr", "s3://b/it's.exr", "s3://b/a.exr"])),
                Arc::new(Int64Array::from(vec![10, 21, 10])),
                Arc::new(StringArray::from(vec![Some("\"e1\""), Some("\"e2\""), Some("\"old\"")])),
            ],
        )?;
        let mut found = HashSet::new();
        assert!(query.collect(&batch, &mut found).is_ok());
        assert_eq!(found, HashSet::from(["s3://b/a.exr".to_string()]), "the size of it's.exr changed");
        assert!(IndexedQuery::new(&files[2..]).sql("files").is_none());
        let (range, bounds) = query.range("files").unwrap_or_default();
        assert!(range.ends_with("WHERE source_uri BETWEEN ? AND ?"), "{range}");
        assert_eq!(bounds, ["s3://b/a.exr", "s3://b/it's.exr"], "the least and the greatest URI");
        assert!(IndexedQuery::new(&files[2..]).range("files").is_none());
        Ok(())
    }

    /// Local files have no ETag: their size and modification time (to the microsecond, as
    /// the catalog keeps it) tell whether the catalog holds them.
    #[test]
    fn matches_local_files_by_size_and_mtime() -> Result<(), arrow::error::ArrowError> {
        use arrow::array::TimestampMicrosecondArray;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let local = |uri: &str, size| SourceFile { last_modified: Some(t), bucket: None, ..file(uri, size, None) };
        let files = [local("file:///r/a.exr", 10), local("file:///r/b.exr", 10), local("file:///r/c.exr", 10)];
        let query = IndexedQuery::new(&files);
        assert_eq!(query.uris().len(), 3);
        let schema = Arc::new(Schema::new(vec![
            Field::new("source_uri", DataType::Utf8, false),
            Field::new("size_bytes", DataType::Int64, false),
            Field::new("etag", DataType::Utf8, true),
            Field::new("last_modified", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["file:///r/a.exr", "file:///r/b.exr", "file:///r/c.exr"])),
                Arc::new(Int64Array::from(vec![10, 10, 11])),
                Arc::new(StringArray::from(vec![None::<&str>, None, None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_700_000_000_123_456),
                        Some(1_700_000_000_123_457),
                        Some(1_700_000_000_123_456),
                    ])
                    .with_timezone("UTC"),
                ),
            ],
        )?;
        let mut found = HashSet::new();
        assert!(query.collect(&batch, &mut found).is_ok());
        assert_eq!(found, HashSet::from(["file:///r/a.exr".to_string()]), "b was touched, c changed size");
        Ok(())
    }

    fn one_column(column: ArrayRef) -> RecordBatch {
        let field = Field::new("c", column.data_type().clone(), true);
        RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![column]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Servers answer text as `Utf8`, `LargeUtf8` or `Utf8View`: all are read.
    #[test]
    fn text_of_any_arrow_text_type() {
        use arrow::array::{LargeStringArray, StringViewArray};
        let id = "a".repeat(64);
        let columns: [ArrayRef; 3] = [
            Arc::new(StringArray::from(vec![id.as_str()])),
            Arc::new(LargeStringArray::from(vec![id.as_str()])),
            Arc::new(StringViewArray::from(vec![id.as_str()])),
        ];
        for column in columns {
            let kind = column.data_type().clone();
            let mut found = HashSet::new();
            let read = collect_ids(&one_column(column), &mut found);
            assert!(read.is_ok(), "{kind}: {read:?}");
            assert_eq!(found, HashSet::from([id.clone()]), "{kind}");
        }
    }

    /// Anything else, or a short answer, is a clear error, not a panic or an empty answer.
    #[test]
    fn other_types_and_short_answers_are_errors() -> Result<(), arrow::error::ArrowError> {
        let numbers = one_column(Arc::new(Int64Array::from(vec![1])));
        let error = collect_ids(&numbers, &mut HashSet::new()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("files.file_id comes back as Int64, not text"), "{error}");

        let files = [file("s3://b/a.exr", 10, Some("\"e1\""))];
        let query = IndexedQuery::new(&files);
        let short = one_column(Arc::new(arrow::array::StringViewArray::from(vec!["s3://b/a.exr"])));
        let error = query.collect(&short, &mut HashSet::new()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("has 1 columns; expected files.size_bytes as column 2"), "{error}");

        let schema = Arc::new(Schema::new(vec![
            Field::new("source_uri", DataType::LargeUtf8, false),
            Field::new("size_bytes", DataType::Utf8, false),
            Field::new("etag", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::LargeStringArray::from(vec!["s3://b/a.exr"])),
                Arc::new(StringArray::from(vec!["ten"])),
                Arc::new(arrow::array::StringViewArray::from(vec!["\"e1\""])),
            ],
        )?;
        let error = query.collect(&batch, &mut HashSet::new()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("files.size_bytes comes back as Utf8, not an integer"), "{error}");
        Ok(())
    }
}
