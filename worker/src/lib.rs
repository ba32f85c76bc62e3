//! exrscan's worker library: the catalog rows and their sinks, the sources (local
//! directories, S3 partitions), the partition plan, the scan pipeline and the in-pod shard
//! run, over the header reader, `inspect` record and embeddings of [`exrscan_core`]
//! (re-exported as [`header`], [`record`] and [`embed`]).

pub use exrscan_core::{embed, header, record};

pub mod catalog;
pub mod configmap_entry;
pub mod follow;
pub mod plan;
pub mod retry;
pub mod scan;
pub mod shard;
pub mod sink;
pub mod source;
