//! Where EXR files come from: a [`Source`] lists files and reads their headers only.
//! [`local::LocalSource`] walks a directory; [`s3::S3Source`] lists partitions of a bucket
//! prefix and reads headers with ranged GETs.

mod budget;
pub mod filter;
pub mod local;
pub mod s3;

use std::future::Future;

use tokio::sync::mpsc;

pub use budget::{DEFAULT_HEADER_BUDGET, HeaderBudget, Held};

use crate::catalog::SourceFile;
use crate::header::Header;

/// Why a source could not list or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source as a whole is unusable (e.g. the directory does not exist).
    #[error("{location}: {reason}")]
    Unusable { location: String, reason: String },
    /// One entry could not be listed (the listing goes on).
    #[error("{location}: {reason}")]
    Entry { location: String, reason: String },
    /// One file could not be read or its header is not valid (the scan goes on).
    #[error("{reason}")]
    File { reason: String },
    /// The source stopped answering (retries exhausted): the scan stops, a re-run resumes.
    #[error("{location}: {reason}")]
    Unavailable { location: String, reason: String },
    /// The source refused the credentials (denied, expired, clock skew): no file can be
    /// read with them, so the scan stops; a new process reads the credentials again.
    /// `reason` names the refusal, never a credential.
    #[error("{location}: {reason}")]
    Credentials { location: String, reason: String },
}

/// A header read from a source.
#[derive(Debug)]
pub struct ReadHeader {
    /// The parsed header.
    pub header: Header,
    /// Bytes read from the file to get it.
    pub bytes_read: u64,
    /// The file as the read saw it, when that differs from the listing (e.g. an object
    /// replaced in between: its size, time and ETag from the read's response).
    pub file: Option<SourceFile>,
    /// The share of the [`HeaderBudget`] the read took; drop it once the header's rows are
    /// built (empty for sources without a budget).
    pub held: Held,
}

/// A place holding EXR files.
pub trait Source: Send + Sync + 'static {
    /// Lists the EXR files, sending each (or a per-entry error) to `found`; returns early
    /// when the receiver is gone. Fails only when the source as a whole is unusable.
    fn list(
        &self,
        found: mpsc::Sender<Result<SourceFile, SourceError>>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Reads the header of `file`, reading as few bytes as the header needs.
    fn read_header(&self, file: &SourceFile) -> impl Future<Output = Result<ReadHeader, SourceError>> + Send;
}
