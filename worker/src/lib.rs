//! exrscan's worker library: the OpenEXR header reader, the `inspect` record,
//! similarity-preserving embeddings of headers, the catalog rows and their sinks, the
//! sources (local directories, S3 partitions), the partition plan, the scan pipeline and
//! the in-pod shard run.

pub mod catalog;
pub mod embed;
pub mod follow;
pub mod header;
pub mod plan;
pub mod record;
pub mod retry;
pub mod scan;
pub mod shard;
pub mod sink;
pub mod source;
