//! The pure core of exrscan: the OpenEXR [`header`] reader that works on a byte prefix of a
//! file, the `inspect` [`record`] (JSON lines and text), and the similarity-preserving
//! [`embed`]dings of a header. It does no I/O of its own and has no async, database or
//! Kubernetes dependency, so that it builds quickly under a fuzzer's sanitizers
//! (`core/fuzz`) and can be used on its own.

pub mod embed;
pub mod header;
pub mod record;
