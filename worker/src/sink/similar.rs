//! Nearest-neighbour queries over the stored embeddings.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use super::SinkError;
use super::flight::decode_vector;
use super::lookup::{int_column, text_column};
use crate::catalog::schema::{CHANNEL_DIMS, METADATA_DIMS};

/// Which stored vector a similarity query compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarBy {
    /// `files.metadata_embedding` (384-d).
    Metadata,
    /// `files.channel_fingerprint` (128-d, all parts of the file).
    Channels,
}

impl SimilarBy {
    /// The `files` column holding the vectors.
    pub fn column(self) -> &'static str {
        match self {
            SimilarBy::Metadata => "metadata_embedding",
            SimilarBy::Channels => "channel_fingerprint",
        }
    }

    /// The vectors' dimensions.
    pub fn dims(self) -> usize {
        match self {
            SimilarBy::Metadata => METADATA_DIMS,
            SimilarBy::Channels => CHANNEL_DIMS,
        }
    }
}

/// One result of a similarity query.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// The indexed file's `file_id`.
    pub file_id: String,
    /// Its source URI.
    pub source_uri: String,
    /// Cosine similarity to the query, in [-1, 1].
    pub score: f32,
}

/// An indexed file named the way the catalog names it, for a similarity query by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexedFile {
    /// One header version, by `file_id`.
    FileId(String),
    /// A `source_uri` (its newest version counts).
    Uri(String),
    /// A `key`: an object key, or a path below a scanned directory (the newest version of
    /// each URI with that key counts; several roots or buckets may hold the same key).
    Key(String),
}

impl IndexedFile {
    /// The `files` column it is matched on.
    pub fn column(&self) -> &'static str {
        match self {
            IndexedFile::FileId(_) => "file_id",
            IndexedFile::Uri(_) => "source_uri",
            IndexedFile::Key(_) => "key",
        }
    }

    /// The value matched.
    pub fn value(&self) -> &str {
        match self {
            IndexedFile::FileId(v) | IndexedFile::Uri(v) | IndexedFile::Key(v) => v,
        }
    }

    /// `SELECT source_uri, inspected_at, <vector> FROM <table> WHERE <column> = ?`: the rows
    /// [`Stored::collect`] reads.
    pub(super) fn sql(&self, by: SimilarBy, table: &str) -> String {
        let vector = by.column();
        format!(
            "SELECT source_uri, inspected_at, {vector} FROM {table} WHERE {} = ? AND {vector} IS NOT NULL",
            self.column()
        )
    }
}

/// A stored vector of an indexed file.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The file's source URI.
    pub source_uri: String,
    /// The vector of its newest version.
    pub vector: Vec<f32>,
}

/// The newest stored vector per URI, from rows `(source_uri, inspected_at, vector)`.
#[derive(Debug, Default)]
pub(super) struct Newest {
    by_uri: HashMap<String, (i64, Vec<f32>)>,
}

impl Newest {
    /// Takes the rows of one result batch; a vector in no encoding known is skipped.
    pub(super) fn collect(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let uris = text_column(batch, 0, "files.source_uri")?;
        let times = int_column(batch, 1, "files.inspected_at")?;
        let times = times.as_primitive::<Int64Type>();
        let Some(vectors) = batch.columns().get(2) else {
            return Err(SinkError::Schema("the vector column is missing from the server's answer".into()));
        };
        for row in 0..batch.num_rows() {
            if uris.is_null(row) || times.is_null(row) {
                continue;
            }
            let Some(vector) = decode_vector(vectors.as_ref(), row) else { continue };
            let (uri, time) = (uris.value(row), times.value(row));
            if self.by_uri.get(uri).is_none_or(|(t, _)| *t < time) {
                self.by_uri.insert(uri.to_string(), (time, vector));
            }
        }
        Ok(())
    }

    /// One per URI, by URI.
    pub(super) fn finish(self) -> Vec<Stored> {
        let mut all: Vec<Stored> =
            self.by_uri.into_iter().map(|(source_uri, (_, vector))| Stored { source_uri, vector }).collect();
        all.sort_by(|a, b| a.source_uri.cmp(&b.source_uri));
        all
    }
}

/// Client-side top-k for servers that cannot compute cosine similarity: keeps, per source
/// URI, the newest `file_id`, then the `k` best scores.
#[derive(Debug, Default)]
pub(super) struct TopK {
    latest: HashMap<String, (i64, Neighbour)>,
}

impl TopK {
    /// Offers one stored vector inspected at `inspected_at`.
    pub(super) fn offer(&mut self, query: &[f32], file_id: &str, source_uri: &str, inspected_at: i64, vector: &[f32]) {
        if let Some((t, _)) = self.latest.get(source_uri)
            && *t >= inspected_at
        {
            return;
        }
        let score = crate::embed::cosine(query, vector);
        let neighbour = Neighbour { file_id: file_id.to_string(), source_uri: source_uri.to_string(), score };
        self.latest.insert(source_uri.to_string(), (inspected_at, neighbour));
    }

    /// The `k` best, best first (ties by URI).
    pub(super) fn finish(self, k: usize, exclude_uri: Option<&str>) -> Vec<Neighbour> {
        let mut all: Vec<Neighbour> =
            self.latest.into_values().map(|(_, n)| n).filter(|n| Some(n.source_uri.as_str()) != exclude_uri).collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.source_uri.cmp(&b.source_uri)));
        all.truncate(k);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_per_uri_and_best_first() {
        let q = [1.0, 0.0];
        let mut top = TopK::default();
        top.offer(&q, "old", "file:///a", 1, &[0.0, 1.0]);
        top.offer(&q, "new", "file:///a", 2, &[1.0, 0.0]);
        top.offer(&q, "b", "file:///b", 1, &[1.0, 1.0]);
        top.offer(&q, "self", "file:///q", 1, &[1.0, 0.0]);
        let got = top.finish(5, Some("file:///q"));
        let ids: Vec<&str> = got.iter().map(|n| n.file_id.as_str()).collect();
        assert_eq!(ids, ["new", "b"]);
        assert!((got[0].score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn newest_vector_per_uri() -> Result<(), SinkError> {
        use std::sync::Arc;

        use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let vectors = FixedSizeListArray::try_new(
            Arc::clone(&item),
            2,
            Arc::new(Float32Array::from(vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5])),
            None,
        )
        .map_err(|e| SinkError::Failed(e.to_string()))?;
        let schema = Schema::new(vec![
            Field::new("source_uri", DataType::Utf8, false),
            Field::new("inspected_at", DataType::Int64, false),
            Field::new("v", DataType::FixedSizeList(item, 2), true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["s3://b/a.exr", "s3://b/a.exr", "file:///x/a.exr"])),
                Arc::new(Int64Array::from(vec![2, 1, 5])),
                Arc::new(vectors),
            ],
        )
        .map_err(|e| SinkError::Failed(e.to_string()))?;
        let mut newest = Newest::default();
        newest.collect(&batch)?;
        let got = newest.finish();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].source_uri.as_str(), got[0].vector.as_slice()), ("file:///x/a.exr", &[0.5, 0.5][..]));
        assert_eq!((got[1].source_uri.as_str(), got[1].vector.as_slice()), ("s3://b/a.exr", &[1.0, 0.0][..]));
        let sql = IndexedFile::Key("a.exr".into()).sql(SimilarBy::Channels, "files");
        assert!(sql.ends_with("WHERE key = ? AND channel_fingerprint IS NOT NULL"), "{sql}");
        Ok(())
    }
}
