//! The catalog lookups of a batch: which file_ids the catalog holds (the write's idempotence
//! check), and the resume check — which listed objects it already holds with the same URI,
//! size and ETag, so that a re-run skips them without reading their headers. Flight SQL
//! sends them as SQL with literals; DuckDB binds the same values as one list parameter.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};

use super::SinkError;
use crate::catalog::{SourceFile, is_file_id};

/// `'text'` as an SQL string literal (quotes doubled).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `'id1','id2',…` after checking every id is a `file_id`.
pub(super) fn id_list(ids: &[String]) -> Result<String, SinkError> {
    let mut out = String::with_capacity(ids.len() * 67);
    for id in ids {
        if !is_file_id(id) {
            return Err(SinkError::Failed(format!("`{id}` is not a file_id")));
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&literal(id));
    }
    Ok(out)
}

/// The objects of a resume check and how to read its answer.
pub(super) struct IndexedQuery<'a> {
    /// URI → (size, ETag) as listed, for the objects with an ETag (no NUL in the URI).
    wanted: HashMap<&'a str, (u64, &'a str)>,
    /// The URIs of `wanted`, in listing order.
    uris: Vec<&'a str>,
}

impl<'a> IndexedQuery<'a> {
    /// The check of `files`.
    pub fn new(files: &'a [SourceFile]) -> Self {
        let mut wanted = HashMap::with_capacity(files.len());
        let mut uris = Vec::with_capacity(files.len());
        for file in files {
            let Some(etag) = file.etag.as_deref() else { continue };
            if !file.uri.contains('\0') && wanted.insert(file.uri.as_str(), (file.size_bytes, etag)).is_none() {
                uris.push(file.uri.as_str());
            }
        }
        Self { wanted, uris }
    }

    /// The URIs to look up; empty when no object can be checked (none has an ETag).
    pub fn uris(&self) -> &[&'a str] {
        &self.uris
    }

    /// `SELECT source_uri, size_bytes, etag FROM <table> WHERE …` with the URIs as literals,
    /// or `None` when there is nothing to check.
    pub fn sql(&self, table: &str) -> Option<String> {
        (!self.uris.is_empty()).then(|| {
            let list: Vec<String> = self.uris.iter().map(|uri| literal(uri)).collect();
            format!(
                "SELECT source_uri, size_bytes, etag FROM {table} WHERE etag IS NOT NULL AND source_uri IN ({})",
                list.join(",")
            )
        })
    }

    /// Adds to `found` the URIs of rows of `batch` (the query's result) that match the
    /// listing; columns of unexpected types match nothing.
    pub fn collect(&self, batch: &RecordBatch, found: &mut HashSet<String>) {
        if batch.num_columns() < 3 {
            return;
        }
        let (Some(uris), Some(etags)) =
            (batch.column(0).as_string_opt::<i32>(), batch.column(2).as_string_opt::<i32>())
        else {
            return;
        };
        let Ok(sizes) = arrow::compute::cast(batch.column(1), &DataType::Int64) else { return };
        let sizes = sizes.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            if uris.is_null(row) || etags.is_null(row) || sizes.is_null(row) {
                continue;
            }
            let uri = uris.value(row);
            if let Some((size, etag)) = self.wanted.get(uri)
                && u64::try_from(sizes.value(row)).ok() == Some(*size)
                && etags.value(row) == *etag
            {
                found.insert(uri.to_string());
            }
        }
    }
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
        assert!(sql.contains("'s3://b/it''s.exr'"), "quotes doubled: {sql}");
        assert!(!sql.contains("c.exr"), "no ETag, nothing to prove: {sql}");
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
        query.collect(&batch, &mut found);
        assert_eq!(found, HashSet::from(["s3://b/a.exr".to_string()]), "the size of it's.exr changed");
        assert!(IndexedQuery::new(&files[2..]).sql("files").is_none());
        Ok(())
    }
}
