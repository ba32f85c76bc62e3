//! The sinks' side of the shared retry policy ([`crate::retry`]): which sink errors are
//! worth a retry.

use std::time::Duration;

pub use crate::retry::RetryPolicy;
use crate::retry::{Backoff, Transient};

use super::SinkError;

impl Transient for SinkError {
    fn is_transient(&self) -> bool {
        // The inherent method (only `SinkError::Transient`).
        SinkError::is_transient(self)
    }
}

/// The next wait of `backoff`, or `None` when it has given up (for the [`super::Writer`]'s
/// own loops, which repair the sink between attempts).
pub(super) fn next_wait(backoff: &mut Backoff) -> Option<Duration> {
    backoff.next()
}
