//! The catalog's four tables (`files`, `parts`, `channels`, `attributes`) as Arrow record
//! batches: their schemas, the builder from parsed headers, and the batch a sink writes;
//! and the `removals` table of objects reported removed.

mod batch;
mod removals;
mod rows;
pub mod schema;
mod write_id;

use sha2::{Digest, Sha256};

pub use batch::{CatalogBatch, Oversize, row_sizes};
pub use removals::{REMOVALS, REMOVALS_KEY, Removal, removals_schema};
pub use rows::{CatalogBuilder, ScanInfo, SourceFile, micros};
pub use schema::Table;
pub use write_id::WriteId;

/// Why rows could not be turned into a catalog batch.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A record batch does not have its table's schema.
    #[error("record batch for table `{0}` does not have the catalog schema")]
    Schema(&'static str),
    /// A vector has the wrong number of dimensions.
    #[error("vector of {found} dimensions where {expected} are stored")]
    Dimensions { expected: usize, found: usize },
    /// Arrow refused the columns.
    #[error("building catalog rows: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// `file_id` of a file: SHA-256 of `source_uri`, a NUL byte and the header hash (hex), as
/// 64 lowercase hex digits. A changed header is a new `file_id`; the same header at another
/// URI is another file.
pub fn file_id(source_uri: &str, header_hash_hex: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source_uri.as_bytes());
    hasher.update([0u8]);
    hasher.update(header_hash_hex.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_id_is_sha256_of_uri_nul_hash() {
        // printf 'file:///a.exr\0abc' | sha256sum
        assert_eq!(file_id("file:///a.exr", "abc"), "873e29b2cab39ab4b5e0766a0bff22e5b5b814bc6cc1746c0c4b98eaab9479ad");
    }
}
