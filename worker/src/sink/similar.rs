//! Nearest-neighbour queries over the stored embeddings.

use std::collections::HashMap;

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
}
