//! The sinks' side of the shared retry policy ([`crate::retry`]): which sink errors are
//! worth a retry.

pub use crate::retry::RetryPolicy;
use crate::retry::Transient;

use super::SinkError;

impl Transient for SinkError {
    fn is_transient(&self) -> bool {
        // The inherent method (only `SinkError::Transient`).
        SinkError::is_transient(self)
    }
}
