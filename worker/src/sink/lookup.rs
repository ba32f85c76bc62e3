//! The resume check: which listed objects the catalog already holds with the same URI,
//! size and ETag, so that a re-run skips them without reading their headers. One query
//! per batch of listed objects, the same SQL for both sinks.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};

use crate::catalog::SourceFile;

/// `'text'` as an SQL string literal (quotes doubled); `None` for text with a NUL byte.
fn literal(text: &str) -> Option<String> {
    (!text.contains('\0')).then(|| format!("'{}'", text.replace('\'', "''")))
}

/// The objects of a check and the query answering it.
pub(super) struct IndexedQuery<'a> {
    /// URI → (size, ETag) as listed.
    wanted: HashMap<&'a str, (u64, &'a str)>,
    /// `SELECT source_uri, size_bytes, etag FROM <files> WHERE …`, or `None` when no
    /// object can be checked (none has an ETag).
    pub sql: Option<String>,
}

impl<'a> IndexedQuery<'a> {
    /// The check of `files` against the `files` table named `table`.
    pub fn new(table: &str, files: &'a [SourceFile]) -> Self {
        let mut wanted = HashMap::with_capacity(files.len());
        let mut uris = Vec::with_capacity(files.len());
        for file in files {
            let (Some(etag), Some(uri)) = (file.etag.as_deref(), literal(&file.uri)) else { continue };
            if wanted.insert(file.uri.as_str(), (file.size_bytes, etag)).is_none() {
                uris.push(uri);
            }
        }
        let sql = (!uris.is_empty()).then(|| {
            format!(
                "SELECT source_uri, size_bytes, etag FROM {table} WHERE etag IS NOT NULL AND source_uri IN ({})",
                uris.join(",")
            )
        });
        Self { wanted, sql }
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
        let query = IndexedQuery::new("files", &files);
        let sql = query.sql.as_deref().unwrap_or_default();
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
        assert!(IndexedQuery::new("files", &files[2..]).sql.is_none());
        Ok(())
    }
}
